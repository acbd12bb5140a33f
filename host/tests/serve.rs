//! `onegrid serve` as users start it: the binary on a loopback port with a SQLite file. It serves
//! the web app, the package (the very module it runs) and `/healthz`, refuses to expose every map
//! on a public address without a JWT secret, and stops gracefully on SIGTERM.
// In tests a panic is the failure report: unwrap means "this must succeed".
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{cache_dir, fresh_dir};
use sha2::{Digest, Sha256};

/// A running `onegrid serve` and the address it printed.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_onegrid"))
            .arg("serve")
            .args(args)
            .env("ONEGRID_CACHE_DIR", cache_dir())
            .env_remove("ONEGRID_JWT_SECRET")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("onegrid serve: open http://")
            .and_then(|rest| rest.strip_suffix('/'))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_owned();
        Self { child, addr }
    }

    /// `GET path`: (status, content type, body).
    fn get(&self, path: &str) -> (u16, String, Vec<u8>) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", self.addr).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let split = response.windows(4).position(|w| w == b"\r\n\r\n").expect("a header");
        let head = String::from_utf8_lossy(&response[..split]).into_owned();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let content_type = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type: ").map(str::to_owned))
            .unwrap_or_default();
        (status, content_type, response[split + 4..].to_vec())
    }

    /// Sends SIGTERM and waits: (exit status, everything it logged).
    fn terminate(mut self) -> Output {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        self.child.stdout = None;
        self.child.wait_with_output().unwrap()
    }
}

#[test]
fn serves_the_app_the_package_it_runs_and_its_health_then_stops_on_sigterm() {
    let db = fresh_dir("serve").join("grid.db");
    let server = Server::start(&["--addr", "127.0.0.1:0", "--db", db.to_str().unwrap()]);

    let (status, kind, body) = server.get("/healthz");
    assert_eq!((status, kind.as_str()), (200, "application/json"));
    let health: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["module_sha256"], onegrid_host::hex(&Sha256::digest(onegrid_host::pkg::WASM)));
    assert_eq!(health["storage"], "sqlite");

    let (status, kind, body) = server.get("/pkg/onegrid_bg.wasm");
    assert_eq!((status, kind.as_str()), (200, "application/wasm"));
    assert!(body == onegrid_host::pkg::WASM, "the package's module is the one the server runs");
    let (status, kind, _) = server.get("/pkg/onegrid.js");
    assert_eq!((status, kind.as_str()), (200, "text/javascript; charset=utf-8"));
    let (status, _, body) = server.get("/pkg/package.json");
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&body).unwrap()["name"], "onegrid");

    let (status, kind, body) = server.get("/");
    assert_eq!((status, kind.as_str()), (200, "text/html; charset=utf-8"));
    assert!(body.starts_with(b"<!doctype html>"));
    assert_eq!(server.get("/no-such-file").0, 404);
    assert_eq!(server.get("/pkg/no-such-file").0, 404);

    let stopped = server.terminate();
    let log = String::from_utf8_lossy(&stopped.stderr);
    assert!(stopped.status.success(), "{log}");
    let events: Vec<&str> = log.lines().filter_map(|l| l.split(" event=").nth(1)?.split(' ').next()).collect();
    assert_eq!(events, ["listening", "signal", "draining", "flushed", "stopped"], "{log}");
    assert!(db.exists(), "the grid's SQLite file");
}

#[test]
fn a_public_address_needs_a_jwt_secret() {
    let db = fresh_dir("serve-public").join("grid.db");
    let refused = Command::new(env!("CARGO_BIN_EXE_onegrid"))
        .args(["serve", "--addr", "0.0.0.0:0", "--db", db.to_str().unwrap()])
        .env("ONEGRID_CACHE_DIR", cache_dir())
        .env_remove("ONEGRID_JWT_SECRET")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("0.0.0.0:0") && message.contains("--jwt-secret"), "says why and what to do: {message}");
    assert!(!db.exists(), "nothing was opened");

    let server = Server::start(&["--addr", "0.0.0.0:0", "--db", db.to_str().unwrap(), "--jwt-secret", "s3cret"]);
    let port = server.addr.rsplit_once(':').unwrap().1.to_owned();
    let local = Server { addr: format!("127.0.0.1:{port}"), ..server };
    assert_eq!(local.get("/healthz").0, 200);
    assert!(local.terminate().status.success());
}

#[test]
fn bad_serve_arguments_are_usage_errors() {
    for args in [&["serve", "--db", "a.db", "--postgres", "postgres://x"][..], &["serve", "--addr", "nowhere"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_onegrid")).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}
