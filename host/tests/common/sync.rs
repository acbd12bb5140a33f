//! What the sync tests share: `onegrid serve` as a real process on a loopback port (its log read
//! as it goes), and a client that is a native `onegrid_core::Grid` with its `Hub`, speaking the
//! protocol over a real WebSocket.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use onegrid_core::sync::{ConnId, ConnState, Event, Frame, Hub, SyncConfig};
use onegrid_core::{ClockConfig, Grid, NodeId, Timestamp, Value};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::common::cache_dir;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub const SECRET: &str = "the server's test secret";

/// Milliseconds since the Unix epoch (the server's clock is strict: the client must not run ahead).
pub fn now_ms() -> u64 {
    onegrid_host::persistent::system_clock()
}

/// A token signed with [`SECRET`] (or `secret`), valid for an hour, with `claims` added.
pub fn token_with(secret: &str, claims: serde_json::Value) -> String {
    let mut all = json!({"sub": "tester", "exp": now_ms() / 1000 + 3600});
    if let (Some(all), Some(extra)) = (all.as_object_mut(), claims.as_object()) {
        all.extend(extra.clone());
    }
    onegrid_host::serve::auth::sign(&all, secret.as_bytes())
}

pub fn token(claims: serde_json::Value) -> String {
    token_with(SECRET, claims)
}

/// A running `onegrid serve`, its address, and everything it has logged so far.
pub struct Server {
    child: Option<Child>,
    pub addr: String,
    log: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Starts `onegrid serve` on a free loopback port with `storage` (a SQLite path or a URL).
    pub fn start(storage: &str, extra: &[&str]) -> Self {
        Self::start_on("127.0.0.1:0", storage, extra)
    }

    pub fn start_on(addr: &str, storage: &str, extra: &[&str]) -> Self {
        let storage_args: [&str; 2] = if storage.contains("://") { ["--postgres", storage] } else { ["--db", storage] };
        let mut child = Command::new(env!("CARGO_BIN_EXE_onegrid"))
            .args(["serve", "--addr", addr])
            .args(storage_args)
            .args(extra)
            .env("ONEGRID_CACHE_DIR", cache_dir())
            .env_remove("ONEGRID_JWT_SECRET")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start onegrid serve");
        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            let mut line = String::new();
            while stderr.read_line(&mut line).is_ok_and(|n| n > 0) {
                sink.lock().expect("log").push_str(&line);
                line.clear();
            }
        });
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read the URL line");
        let Some(addr) = line.trim().strip_prefix("onegrid serve: open http://").and_then(|r| r.strip_suffix('/'))
        else {
            let _ = child.kill();
            let _ = child.wait();
            let _ = reader.join();
            panic!("no URL in {line:?}; the log: {}", log.lock().expect("log"));
        };
        Self { addr: addr.to_owned(), child: Some(child), log, reader: Some(reader) }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/sync", self.addr)
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    /// The log's lines of event `event`.
    pub fn events(&self, event: &str) -> Vec<String> {
        let needle = format!(" event={event} ");
        self.log()
            .lines()
            .filter(|l| l.contains(&needle) || l.ends_with(&needle[..needle.len() - 1]))
            .map(String::from)
            .collect()
    }

    /// Waits until the log has a line with every one of `parts`.
    pub fn wait_for_log(&self, parts: &[&str], timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self.log().lines().find(|l| parts.iter().all(|p| l.contains(p))) {
                return line.to_owned();
            }
            assert!(start.elapsed() < timeout, "no log line with {parts:?} in:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Fails the test if the server panicked anywhere (a task's panic does not stop the server, so
    /// only its log shows it).
    fn assert_no_panic(&self) {
        let log = self.log();
        assert!(!log.contains("panicked at"), "the server panicked:\n{log}");
    }

    /// SIGKILL: no flush, no goodbye.
    pub fn kill(mut self) {
        self.assert_no_panic();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }

    /// SIGTERM, and waits: the exit status and the whole log.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
        let status = child.wait().expect("wait");
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.assert_no_panic();
        (status, self.log())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.is_some() && !std::thread::panicking() {
            self.assert_no_panic();
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A client: a native grid and its hub, over one WebSocket at a time.
pub struct Peer {
    pub grid: Grid,
    pub hub: Hub,
    pub conn: Option<ConnId>,
    ws: Option<Ws>,
    /// Every event of every connection, in order.
    pub events: Vec<Event>,
    /// With `trace` on: every frame sent (`>`) and received (`<`), described.
    pub trace: Option<Vec<String>>,
}

/// A frame in a few words: its kind, its map, the keys of its records.
pub fn describe(bytes: &[u8]) -> String {
    let Ok(frame) = Frame::decode(bytes, usize::MAX) else { return format!("undecodable {} bytes", bytes.len()) };
    let keys = |payload: &[u8]| match onegrid_core::codec::decode_snapshot(payload) {
        Ok(onegrid_core::Snapshot::Lww(r)) => r.iter().map(|(k, _)| k.to_string()).collect::<Vec<_>>().join(","),
        Ok(onegrid_core::Snapshot::Or { keys, tombstones }) => {
            format!("{} t{}", keys.iter().map(|(k, _)| k.to_string()).collect::<Vec<_>>().join(","), tombstones.len())
        }
        Err(e) => format!("bad payload {e}"),
    };
    match &frame {
        Frame::Writes { map, payload } => format!("Writes {map} [{}]", keys(payload)),
        Frame::Records { map, mine, ask, payload, .. } => {
            format!("Records {map} mine={mine} ask={} [{}]", ask.len(), keys(payload))
        }
        other => format!("{other:?}").chars().take(120).collect(),
    }
}

impl Peer {
    pub fn new(node: &str) -> Self {
        Self {
            grid: Grid::new(NodeId::new(node).expect("node id"), ClockConfig::default()),
            hub: Hub::new(SyncConfig::default()),
            conn: None,
            ws: None,
            events: Vec::new(),
            trace: None,
        }
    }

    /// Connects to `url` and says hello with `token`.
    pub async fn connect(&mut self, url: &str, token: Option<String>) {
        self.try_connect(url, token).await.expect("connect");
    }

    pub async fn try_connect(&mut self, url: &str, token: Option<String>) -> Result<(), String> {
        self.disconnect();
        let (ws, _) = tokio_tungstenite::connect_async(url).await.map_err(|e| e.to_string())?;
        self.ws = Some(ws);
        self.conn = Some(self.hub.connect(&mut self.grid, token));
        Ok(())
    }

    /// Drops the WebSocket (the transport is gone) and forgets the connection.
    pub fn disconnect(&mut self) {
        self.ws = None;
        if let Some(conn) = self.conn.take() {
            self.hub.close(conn);
            self.drain_events(conn);
            self.hub.remove(conn);
        }
    }

    fn drain_events(&mut self, conn: ConnId) {
        while let Some(event) = self.hub.poll_event(conn) {
            self.events.push(event);
        }
    }

    pub fn state(&self) -> ConnState {
        self.conn.map_or(ConnState::Closed, |c| self.hub.state(c))
    }

    pub fn synced(&self) -> bool {
        self.state() == ConnState::Synced
    }

    /// Local writes not yet acknowledged.
    pub fn pending(&self) -> u64 {
        self.conn.map_or(u64::MAX, |c| self.hub.pending_writes(c))
    }

    pub fn marker(&mut self) -> u64 {
        self.hub.marker(&mut self.grid)
    }

    pub fn is_acked(&self, marker: u64) -> bool {
        self.conn.is_some_and(|c| self.hub.is_acked(c, marker))
    }

    /// The close the peer sent, if any: (code, message).
    pub fn refusal(&self) -> Option<(String, String)> {
        self.events.iter().find_map(|e| match e {
            Event::Closed { code, message, by_peer: true } => Some((code.clone(), message.clone())),
            _ => None,
        })
    }

    /// Sends what the hub has, then reads what arrives within `wait` (and right after).
    pub async fn step(&mut self, wait: Duration) {
        let Some(conn) = self.conn else { return };
        let now = now_ms();
        let mut out = Vec::new();
        while let Some(frame) = self.hub.poll_transmit(&mut self.grid, conn, now) {
            out.push(frame);
        }
        self.drain_events(conn);
        let Some(ws) = self.ws.as_mut() else { return };
        for frame in out {
            if let Some(trace) = self.trace.as_mut() {
                trace.push(format!("> {}", describe(&frame)));
            }
            if ws.send(Message::Binary(frame.into())).await.is_err() {
                return self.lost();
            }
        }
        let mut wait = wait;
        loop {
            match tokio::time::timeout(wait, ws.next()).await {
                Err(_) => break,
                Ok(Some(Ok(Message::Binary(bytes)))) => {
                    if let Some(trace) = self.trace.as_mut() {
                        trace.push(format!("< {}", describe(&bytes)));
                    }
                    self.hub.handle_frame(&mut self.grid, conn, now_ms(), &bytes);
                }
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return self.lost(),
                Ok(Some(Ok(_))) => {}
            }
            wait = Duration::from_millis(1);
        }
        while let Some(frame) = self.hub.poll_transmit(&mut self.grid, conn, now_ms()) {
            if let Some(trace) = self.trace.as_mut() {
                trace.push(format!("> {}", describe(&frame)));
            }
            let Some(ws) = self.ws.as_mut() else { return };
            if ws.send(Message::Binary(frame.into())).await.is_err() {
                return self.lost();
            }
        }
        self.drain_events(conn);
    }

    /// The transport closed under us.
    fn lost(&mut self) {
        self.ws = None;
        if let Some(conn) = self.conn {
            self.hub.close(conn);
            self.drain_events(conn);
        }
    }

    /// Steps until `done` holds; false after `timeout`.
    pub async fn until(&mut self, timeout: Duration, done: impl Fn(&mut Self) -> bool) -> bool {
        let start = Instant::now();
        loop {
            if done(self) {
                return true;
            }
            if start.elapsed() > timeout {
                return false;
            }
            self.step(Duration::from_millis(10)).await;
        }
    }

    pub fn set(&mut self, map: &str, key: &str, value: impl Into<Value>) -> Timestamp {
        let now = now_ms();
        let (m, clock) = self.grid.lww(map, now).expect("an LWW map");
        m.set(clock, now, key, value.into(), None).expect("set")
    }

    pub fn get(&mut self, map: &str, key: &str) -> Option<Value> {
        let now = now_ms();
        self.grid.map(map)?;
        self.grid.lww(map, now).ok()?.0.get(key, now)
    }

    pub fn add(&mut self, map: &str, key: &str, value: impl Into<Value>) {
        let now = now_ms();
        let (m, clock) = self.grid.or(map, now).expect("an OR map");
        m.add(clock, now, key, value.into(), None).expect("add");
    }

    pub fn or_remove(&mut self, map: &str, key: &str, value: impl Into<Value>) {
        let now = now_ms();
        let (m, _) = self.grid.or(map, now).expect("an OR map");
        m.remove(key, &value.into()).expect("remove");
    }

    pub fn or_get(&mut self, map: &str, key: &str) -> Vec<Value> {
        let now = now_ms();
        if self.grid.map(map).is_none() {
            return Vec::new();
        }
        let mut values: Vec<Value> =
            self.grid.or(map, now).expect("an OR map").0.get(key, now).into_iter().cloned().collect();
        values.sort_by_key(|v| v.to_canonical_json());
        values
    }

    /// The map's root, if it has the map.
    pub fn root(&self, map: &str) -> Option<u32> {
        self.grid.map(map).map(onegrid_core::AnyMap::root)
    }
}

/// Steps every peer until `done` holds for all; panics after `timeout` naming `what`.
pub async fn settle(peers: &mut [&mut Peer], timeout: Duration, what: &str, done: impl Fn(&mut Peer) -> bool) {
    let start = Instant::now();
    loop {
        let mut all = true;
        for peer in peers.iter_mut() {
            peer.step(Duration::from_millis(5)).await;
            all &= done(peer);
        }
        if all {
            return;
        }
        let states: Vec<_> = peers.iter().map(|p| (p.state(), p.pending())).collect();
        assert!(start.elapsed() < timeout, "{what}: not done after {timeout:?}: {states:?}");
    }
}

/// A raw WebSocket to the server, for traffic no client would send.
pub async fn raw(url: &str) -> Ws {
    tokio_tungstenite::connect_async(url).await.expect("connect").0
}

/// What a raw socket received until the server closed it (or `timeout`): the frames, and whether
/// it was closed.
pub async fn until_closed(ws: &mut Ws, timeout: Duration) -> (Vec<Frame>, bool) {
    let mut frames = Vec::new();
    let start = Instant::now();
    while start.elapsed() < timeout {
        match tokio::time::timeout(Duration::from_millis(50), ws.next()).await {
            Err(_) => {}
            Ok(Some(Ok(Message::Binary(bytes)))) => frames.push(Frame::decode(&bytes, usize::MAX).expect("a frame")),
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return (frames, true),
            Ok(Some(Ok(_))) => {}
        }
    }
    (frames, false)
}

/// The error frame among `frames`: (code, message).
pub fn error_of(frames: &[Frame]) -> Option<(String, String)> {
    frames.iter().find_map(|f| match f {
        Frame::Error { code, message } => Some((code.clone(), message.clone())),
        _ => None,
    })
}

/// A fresh SQLite file's path under the target's temporary folder.
pub fn sqlite(dir: &Path) -> String {
    dir.join("grid.db").to_string_lossy().into_owned()
}

/// Reads a whole file, for messages.
pub fn read(path: &Path) -> String {
    let mut text = String::new();
    let _ = std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text));
    text
}
