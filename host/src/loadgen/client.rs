//! [`SyncClient`]: one native replica (the core's `Grid` and `Hub`) on one WebSocket to a sync
//! server. The load generator runs hundreds of them in one process: the protocol is the core's
//! own, so what the server sees is what a browser's connection sends.

use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use onegrid_core::sync::{ConnId, ConnState, Event, Hub, SyncConfig};
use onegrid_core::{ClockConfig, Grid, NodeId, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::persistent::system_clock;
use crate::serve::http::SOCKET_BUFFER;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A replica connected to a server. Errors are strings naming what failed: the load generator
/// reports them and stops.
pub struct SyncClient {
    /// The replica.
    pub grid: Grid,
    hub: Hub,
    /// The connection of the current WebSocket.
    conn: Option<ConnId>,
    ws: Option<Ws>,
    node: String,
}

impl SyncClient {
    /// A replica `node` with nothing in it, not connected.
    pub fn new(node: &str) -> Result<Self, String> {
        let id = NodeId::new(node).map_err(|e| format!("node id {node:?}: {e}"))?;
        let grid = Grid::new(id, ClockConfig::default());
        Ok(Self { grid, hub: Hub::new(SyncConfig::default()), conn: None, ws: None, node: node.to_owned() })
    }

    /// Connects to `url` with `token` and waits until the server accepted the hello.
    pub async fn connect(&mut self, url: &str, token: Option<String>, timeout: Duration) -> Result<(), String> {
        self.disconnect();
        // The server's small buffers, and no Nagle delay, as browsers do.
        let config = WebSocketConfig::default().read_buffer_size(SOCKET_BUFFER).write_buffer_size(SOCKET_BUFFER);
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
            .await
            .map_err(|e| format!("{}: connect {url}: {e}", self.node))?;
        self.ws = Some(ws);
        self.conn = Some(self.hub.connect(&mut self.grid, token));
        self.run_until(timeout, "be accepted", |c| c.state() != ConnState::Connecting).await
    }

    /// Drops the WebSocket and forgets the connection (what was not acknowledged stays in the
    /// log and is sent again on the next connection).
    pub fn disconnect(&mut self) {
        self.ws = None;
        if let Some(conn) = self.conn.take() {
            self.hub.close(conn);
            while self.hub.poll_event(conn).is_some() {}
            self.hub.remove(conn);
        }
    }

    /// Where the connection is (`Closed` when not connected).
    pub fn state(&self) -> ConnState {
        self.conn.map_or(ConnState::Closed, |c| self.hub.state(c))
    }

    /// Local writes the server has not acknowledged.
    pub fn pending(&self) -> u64 {
        self.conn.map_or(u64::MAX, |c| self.hub.pending_writes(c))
    }

    /// A log position covering every write made so far; see [`SyncClient::is_acked`].
    pub fn marker(&mut self) -> u64 {
        self.hub.marker(&mut self.grid)
    }

    /// True once the server acknowledged every write up to `marker`.
    pub fn is_acked(&self, marker: u64) -> bool {
        self.conn.is_some_and(|c| self.hub.is_acked(c, marker))
    }

    /// Caught up both ways with nothing pending.
    pub fn synced(&self) -> bool {
        self.state() == ConnState::Synced
    }

    /// Sets `key` of LWW map `map`.
    pub fn set(&mut self, map: &str, key: &str, value: Value) -> Result<(), String> {
        let now = system_clock();
        let (m, clock) = self.grid.lww(map, now).map_err(|e| format!("map {map}: {e}"))?;
        m.set(clock, now, key, value, None).map(|_| ()).map_err(|e| format!("set {map}/{key}: {e}"))
    }

    /// Key `key` of LWW map `map`.
    pub fn get(&mut self, map: &str, key: &str) -> Option<Value> {
        let now = system_clock();
        self.grid.map(map)?;
        self.grid.lww(map, now).ok()?.0.get(key, now)
    }

    /// Sends every frame the connection has ready.
    pub async fn transmit(&mut self) -> Result<(), String> {
        let Some(conn) = self.conn else { return Err(format!("{}: not connected", self.node)) };
        let mut sent = false;
        while let Some(frame) = self.hub.poll_transmit(&mut self.grid, conn, system_clock()) {
            let ws = self.ws.as_mut().ok_or_else(|| format!("{}: not connected", self.node))?;
            ws.feed(Message::Binary(frame.into())).await.map_err(|e| format!("{}: send: {e}", self.node))?;
            sent = true;
        }
        if sent && let Some(ws) = self.ws.as_mut() {
            ws.flush().await.map_err(|e| format!("{}: send: {e}", self.node))?;
        }
        Ok(())
    }

    /// Handles whatever has arrived, waiting at most `wait` for the first frame, then sends what
    /// that made ready.
    pub async fn receive(&mut self, wait: Duration) -> Result<(), String> {
        let node = &self.node;
        let (Some(ws), Some(conn)) = (self.ws.as_mut(), self.conn) else {
            return Err(format!("{node}: not connected"));
        };
        let mut wait = wait;
        loop {
            match tokio::time::timeout(wait, ws.next()).await {
                Err(_) => break,
                Ok(Some(Ok(Message::Binary(bytes)))) => {
                    self.hub.handle_frame(&mut self.grid, conn, system_clock(), &bytes);
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Err(format!("{node}: the server closed the connection: {frame:?}"));
                }
                Ok(None) => return Err(format!("{node}: the server went away")),
                Ok(Some(Err(e))) => return Err(format!("{node}: receive: {e}")),
                Ok(Some(Ok(_))) => {}
            }
            wait = Duration::ZERO;
        }
        self.check_events()?;
        self.transmit().await
    }

    /// Sends and receives until `done` holds; an error after `timeout` says what it waited to `what`.
    pub async fn run_until(
        &mut self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&Self) -> bool,
    ) -> Result<(), String> {
        let start = Instant::now();
        self.transmit().await?;
        while !done(self) {
            if start.elapsed() > timeout {
                return Err(format!("{}: did not {what} within {timeout:?} (state {:?})", self.node, self.state()));
            }
            self.receive(Duration::from_millis(20)).await?;
        }
        Ok(())
    }

    /// Drains the connection's events; a close or refusal is an error.
    fn check_events(&mut self) -> Result<(), String> {
        let Some(conn) = self.conn else { return Ok(()) };
        while let Some(event) = self.hub.poll_event(conn) {
            if let Event::Closed { code, message, .. } = event {
                return Err(format!("{}: closed with {code}: {message}", self.node));
            }
        }
        Ok(())
    }
}
