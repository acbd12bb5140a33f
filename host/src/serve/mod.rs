//! `onegrid serve`: the grid as a server. One [`PersistentGrid`](crate::PersistentGrid) (the
//! module in wasmtime, its maps on SQLite by default or PostgreSQL) behind an HTTP server that
//! serves the web app, the JavaScript package and sync over WebSocket at `/sync`.
//!
//! - [`grid`]: the grid on its own thread, reached by messages.
//! - [`sync`]: the sync connections: their tasks, and the grid thread's loop (group commit).
//! - [`http`]: the routes.
//! - [`auth`]: HS256 JWTs and the read/write claims.
//! - [`log`]: structured log lines.
//!
//! Exposure: a server on an address other than loopback must have a JWT secret, or anyone who can
//! reach it could read and write every map ([`ServeConfig::check`]). SIGTERM and Ctrl-C stop it
//! gracefully: no new connections, open requests finish, what the sync connections sent is applied
//! and flushed and acknowledged, each is closed, the grid flushes, then the process exits.

pub mod auth;
pub mod grid;
pub mod http;
pub mod log;
pub mod sync;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use onegrid_core::ClockConfig;

use sha2::Digest as _;

use self::grid::GridHandle;
use self::sync::SyncSettings;
use crate::persistent::PersistentGrid;
use crate::runtime::{Runtime, RuntimeConfig};
use crate::{pkg, storage};

/// The default address: loopback only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// The default SQLite file, in the working folder.
pub const DEFAULT_DB: &str = "./onegrid.db";

/// How `onegrid serve` runs.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Where to listen; port 0 picks a free one (the line on stdout says which).
    pub addr: SocketAddr,
    /// The storage: a SQLite file path or a `postgres://` URL.
    pub storage: String,
    /// The HS256 secret every connection's token must be signed with; `None` accepts any client.
    pub jwt_secret: Option<String>,
    /// The grid's node id.
    pub node_id: String,
    /// Apply (and log) a client's timestamp beyond the drift limit instead of refusing its frame.
    pub lenient_clock: bool,
    /// How sync connections are held (its `jwt_secret` is set from the one above).
    pub sync: SyncSettings,
}

impl ServeConfig {
    /// A configuration with the default sync settings and a strict clock.
    pub fn new(addr: SocketAddr, storage: String, jwt_secret: Option<String>, node_id: String) -> Self {
        Self { addr, storage, jwt_secret, node_id, lenient_clock: false, sync: SyncSettings::default() }
    }

    /// Refuses a configuration that would expose every map: a non-loopback address without a
    /// secret, or an empty secret.
    pub fn check(&self) -> Result<(), String> {
        match &self.jwt_secret {
            Some(secret) if secret.is_empty() => Err("the JWT secret is empty".into()),
            None if !self.addr.ip().is_loopback() => Err(format!(
                "refusing to serve on {} without a JWT secret: anyone who can reach that address could read and \
                 write every map. Serve on a loopback address (127.0.0.1), or set --jwt-secret (or \
                 ONEGRID_JWT_SECRET) so that every connection must present a token signed with it",
                self.addr
            )),
            _ => Ok(()),
        }
    }
}

/// Runs the server until SIGTERM or Ctrl-C; `ready` hears the bound address once it listens.
pub fn run(config: ServeConfig, ready: impl FnOnce(SocketAddr)) -> Result<(), String> {
    config.check()?;
    let storage_kind = if config.storage.contains("://") { "postgres" } else { "sqlite" };
    let runtime = Runtime::new(pkg::WASM, RuntimeConfig::default()).map_err(|e| e.to_string())?;
    let adapter = storage::open(&config.storage).map_err(|e| format!("cannot open storage {}: {e}", config.storage))?;
    // Strict by default: a client cannot stamp a write far ahead of the server's clock.
    let clock = ClockConfig { strict: !config.lenient_clock, ..ClockConfig::default() };
    let mut grid = PersistentGrid::open_with(&runtime, &config.node_id, adapter, clock).map_err(|e| e.to_string())?;
    // Every stored map is loaded before the server listens: a client's catch-up sees them all.
    sync::load_maps(&mut grid);
    let settings = SyncSettings { jwt_secret: config.jwt_secret.clone(), ..config.sync.clone() };
    let (handle, thread) = GridHandle::start_with(grid, settings.clone());
    let module_sha256 = crate::hex(&sha2::Sha256::digest(pkg::WASM));
    let (tasks, mut tasks_done) = tokio::sync::mpsc::channel::<()>(1);
    let state = http::AppState {
        grid: handle.clone(),
        module_sha256: module_sha256.clone(),
        storage: storage_kind,
        sync: Arc::new(settings),
        tasks,
    };

    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("onegrid-serve")
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let served: Result<(), String> = tokio.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.addr))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        log::info(
            "listening",
            &[
                ("addr", &addr),
                ("storage", &storage_kind),
                ("auth", &if config.jwt_secret.is_some() { "jwt" } else { "none" }),
                ("clock", &if config.lenient_clock { "lenient" } else { "strict" }),
                ("module_sha256", &module_sha256),
            ],
        );
        ready(addr);
        let stopping = handle.clone();
        let stop = async move {
            stop_signal().await;
            // Upgraded connections are not the HTTP server's to wait for: sync closes them.
            log::info("draining", &[("connections", &stopping.stats().counts().0)]);
            let _ = stopping.shutdown().await;
        };
        let app = http::router(state).into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app).with_graceful_shutdown(stop).await.map_err(|e| format!("the server failed: {e}"))?;
        // Every connection's task holds a sender: wait (a little) until each has closed.
        let _ = tokio::time::timeout(Duration::from_secs(5), tasks_done.recv()).await;
        match handle.flush().await {
            Ok(()) => log::info("flushed", &[]),
            Err(e) => log::warn("flush_failed", &[("error", &e)]),
        }
        Ok(())
    });
    drop(handle);
    // The grid's thread ends once the last handle is gone (the router's went with the server).
    let _grid = thread.join().map_err(|_| "the grid's thread panicked".to_owned())?;
    log::info("stopped", &[]);
    served
}

/// Resolves on SIGTERM (or SIGINT / Ctrl-C).
async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => log::info("signal", &[("signal", &"SIGINT")]),
        () = term => log::info("signal", &[("signal", &"SIGTERM")]),
    }
}
