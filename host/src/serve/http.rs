//! The HTTP routes: the web app (`GET /`, embedded from `www/`), the JavaScript package
//! (`GET /pkg/...`, whose `onegrid_bg.wasm` is byte for byte the module this server runs) and
//! `GET /healthz` with the connection counts, and WebSocket sync at `/sync` ([`super::sync`]).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::pkg;
use crate::serve::grid::GridHandle;
use crate::serve::sync::{self, SyncSettings};

mod www {
    include!(concat!(env!("OUT_DIR"), "/www_files.rs"));
}

/// What every route shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The grid's thread.
    pub grid: GridHandle,
    /// The module's SHA-256 in hex, as `onegrid info` prints it.
    pub module_sha256: String,
    /// Which storage holds the grid, for `/healthz` (`sqlite` or `postgres`).
    pub storage: &'static str,
    /// How sync connections are held.
    pub sync: Arc<SyncSettings>,
    /// Held by every connection's task: the server waits until all are dropped when it stops.
    pub tasks: tokio::sync::mpsc::Sender<()>,
}

/// The router of `onegrid serve`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/sync", get(sync_socket))
        .route("/pkg/{*file}", get(pkg_file))
        .fallback(get(www_file))
        .with_state(state)
}

/// `{"status":"ok",...}` once the grid's thread answers; 503 when it does not.
async fn healthz(State(state): State<AppState>) -> Response {
    let alive = state.grid.call(|_| ()).await.is_ok();
    let (sockets, synced) = state.grid.stats().counts();
    let body = serde_json::json!({
        "status": if alive { "ok" } else { "grid stopped" },
        "module_sha256": state.module_sha256,
        "abi": onegrid_core::ABI_VERSION,
        "storage": state.storage,
        "connections": {"open": sockets, "synced": synced},
    });
    let status = if alive { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// Bytes each sync WebSocket reads and writes through at once (here and in `bench-sync`'s
/// clients). The WebSocket layer's default is 128 KiB each way, which made an idle connection cost
/// the server about 140 KB, and zeroing it half of the bench's work; a larger message still
/// arrives whole (the buffer grows for it), only in more reads.
pub const SOCKET_BUFFER: usize = 4 << 10;

/// `GET /sync`: a WebSocket of the sync protocol, one frame per binary message. Messages up to
/// twice the frame limit reach the hub, which answers one over the limit with an error frame;
/// larger ones are cut by the WebSocket layer.
async fn sync_socket(
    upgrade: WebSocketUpgrade,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    State(state): State<AppState>,
) -> Response {
    let limit = state.sync.frame_limit.saturating_mul(2);
    let AppState { grid, sync: settings, tasks, .. } = state;
    upgrade
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(SOCKET_BUFFER)
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| async move {
            sync::connection(socket, addr, grid, settings).await;
            drop(tasks);
        })
}

/// A file of the package, as `onegrid pkg` writes it.
async fn pkg_file(Path(file): Path<String>) -> Response {
    if file == "package.json" {
        return asset(&file, pkg::package_json().into_bytes());
    }
    match pkg::FILES.iter().find(|(name, _)| *name == file) {
        Some((name, bytes)) => asset(name, bytes.to_vec()),
        None => not_found(),
    }
}

/// A file of the web app; `/` is `index.html`.
async fn www_file(uri: axum::http::Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    match www::FILES.iter().find(|(name, _)| *name == path) {
        Some((name, bytes)) => asset(name, bytes.to_vec()),
        None => not_found(),
    }
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "not found\n").into_response()
}

/// A file with its content type. `no-cache`: browsers revalidate, so an upgraded server is seen at
/// once (the service worker keeps the offline copy).
fn asset(name: &str, bytes: Vec<u8>) -> Response {
    let mut response = (StatusCode::OK, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(name)));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The content type of a file, by its extension.
pub fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "webmanifest") => "application/json",
        Some("wasm") => "application/wasm",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ts") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
