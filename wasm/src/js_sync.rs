//! The sync half of `RawGrid`: the grid's [`Hub`] (SPEC section 8) as the JavaScript wrapper drives
//! it (`wasm/js/sync.js`). The module never calls JavaScript: the wrapper opens connections, hands
//! each frame from the peer in with one call (`syncReceive`), and after writes, frames and storage
//! events it pumps: one `syncPoll` takes every connection's outgoing frames, events and state at
//! once. Storage events reach the hub in [`crate::js_storage`], where the storage driver takes
//! them; the hub's group commits are flushes the driver then runs like any other.
//!
//! `syncPoll`'s output (postcard, read by `sync.js`): per connection with news, `1`, then
//! `(varint id, u8 state, varint pending, Vec<bytes> frames, Vec<event> events)`; then `0`, then a
//! `u8` that is 1 when drift reports wait in `takeDrifts`. States: 0 connecting, 1 syncing, 2
//! synced, 3 closed. Events:
//!
//! | tag | event | fields |
//! |---|---|---|
//! | 0 | the peer said hello (accepting side: accept or refuse) | `String node_id, Option<String> token` |
//! | 1 | the handshake is over | `String node_id` |
//! | 2 | a problem that leaves the connection open (a kind mismatch, an oversized record) | `String code, String message` |
//! | 3 | closed | `String code, String message, u8 by_peer` |
//!
//! `syncAccept` takes `(Option<Vec<String>> read, Option<Vec<String>> write)` in the input.

use onegrid_core::codec::{put_str, put_varint};
use onegrid_core::sync::{ConnId, ConnState, Event, Permissions};
use wasm_bindgen::prelude::*;

use crate::interop::decode_exact;
use crate::js_api::{RawGrid, args, wall};

fn state_code(state: ConnState) -> u8 {
    match state {
        ConnState::Connecting => 0,
        ConnState::Syncing => 1,
        ConnState::Synced => 2,
        ConnState::Closed => 3,
    }
}

/// Writes `event` (see the module docs); drift reports go to the grid's list for `onDrift`
/// instead. Returns false for events the wrapper does not take.
fn put_event(out: &mut Vec<u8>, drifts: &mut Vec<onegrid_core::Drift>, event: Event) -> bool {
    match event {
        Event::Hello { node_id, token } => {
            out.push(0);
            put_str(out, &node_id);
            match token {
                Some(token) => {
                    out.push(1);
                    put_str(out, &token);
                }
                None => out.push(0),
            }
        }
        Event::Connected { node_id } => {
            out.push(1);
            put_str(out, &node_id);
        }
        Event::KindMismatch { map, local, remote } => {
            out.push(2);
            put_str(out, "KIND_MISMATCH");
            let message = format!(
                "map \"{map}\" is {} here and {} on the peer: it is not synced",
                local.as_str(),
                remote.as_str()
            );
            put_str(out, &message);
        }
        Event::Oversized { map, bytes } => {
            out.push(2);
            put_str(out, "LIMIT");
            put_str(
                out,
                &format!("map \"{map}\": a record needs a frame of {bytes} bytes, over the limit; it is not sent"),
            );
        }
        Event::Closed { code, message, by_peer } => {
            out.push(3);
            put_str(out, &code);
            put_str(out, &message);
            out.push(u8::from(by_peer));
        }
        Event::Drift(drift) => {
            drifts.push(drift);
            return false;
        }
        Event::Synced | Event::Acked { .. } => return false,
    }
    true
}

#[wasm_bindgen]
impl RawGrid {
    /// Opens a connection that says hello (with `token`); returns its id.
    #[wasm_bindgen(js_name = syncConnect)]
    pub fn sync_connect(&mut self, token: Option<String>) -> u32 {
        let id = self.hub.connect(&mut self.grid, token);
        self.conns.push((id, ConnState::Connecting));
        id.0
    }

    /// Opens a connection that waits for a hello; returns its id.
    #[wasm_bindgen(js_name = syncIncoming)]
    pub fn sync_incoming(&mut self) -> u32 {
        let id = self.hub.incoming(&mut self.grid);
        self.conns.push((id, ConnState::Connecting));
        id.0
    }

    /// Takes a frame from connection `conn`'s peer (a bad one closes the connection with an error
    /// frame: `syncPoll` reports it).
    #[wasm_bindgen(js_name = syncReceive)]
    pub fn sync_receive(&mut self, conn: u32, now: f64, frame: &[u8]) {
        self.hub.handle_frame(&mut self.grid, ConnId(conn), wall(now), frame);
    }

    /// Accepts connection `conn` (after its hello); input: what the peer may read and write.
    #[wasm_bindgen(js_name = syncAccept)]
    pub fn sync_accept(&mut self, conn: u32, len: u32) -> Result<(), JsValue> {
        let (read, write) = decode_exact(args(&self.input, len)?, "permissions")?;
        self.hub.accept(&mut self.grid, ConnId(conn), Permissions::new(read, write));
        Ok(())
    }

    /// Refuses connection `conn` (after its hello) with `reason`, which its peer is sent.
    #[wasm_bindgen(js_name = syncRefuse)]
    pub fn sync_refuse(&mut self, conn: u32, reason: &str) {
        self.hub.refuse(ConnId(conn), reason);
    }

    /// Connection `conn`'s transport is gone: it closes (`syncPoll` reports it).
    #[wasm_bindgen(js_name = syncClose)]
    pub fn sync_close(&mut self, conn: u32) {
        self.hub.close(ConnId(conn));
    }

    /// A position in the change log: every local write made so far is at or before it.
    #[wasm_bindgen(js_name = syncMarker)]
    pub fn sync_marker(&mut self) -> f64 {
        self.hub.marker(&mut self.grid) as f64
    }

    /// True when connection `conn`'s peer has acknowledged every local write up to `marker`.
    #[wasm_bindgen(js_name = syncAcked)]
    pub fn sync_acked(&self, conn: u32, marker: f64) -> bool {
        self.hub.is_acked(ConnId(conn), marker as u64)
    }

    /// Local writes connection `conn`'s peer has not acknowledged; for a connection the hub no
    /// longer has, every local write it has logged.
    #[wasm_bindgen(js_name = syncPending)]
    pub fn sync_pending(&mut self, conn: u32) -> f64 {
        self.hub.marker(&mut self.grid);
        self.hub.pending_writes(ConnId(conn)) as f64
    }

    /// Pumps every connection: frames to send, events, states, to the output (see the module
    /// docs); returns its length. Closed connections are reported once, then forgotten.
    #[wasm_bindgen(js_name = syncPoll)]
    pub fn sync_poll(&mut self, now: f64) -> u32 {
        let now = wall(now);
        // Moves the maps' changes into the log even with no connection open.
        self.hub.marker(&mut self.grid);
        let out = &mut self.output;
        out.clear();
        // A connection's poll can give another work (a frame applied, a flush): go round until
        // a round finds nothing.
        loop {
            let mut moved = false;
            let mut at = 0;
            while at < self.conns.len() {
                let (id, told) = self.conns[at];
                let mut frames = Vec::new();
                while let Some(frame) = self.hub.poll_transmit(&mut self.grid, id, now) {
                    frames.push(frame);
                }
                let (mut events, mut count) = (Vec::new(), 0u64);
                while let Some(event) = self.hub.poll_event(id) {
                    count += u64::from(put_event(&mut events, &mut self.drifts, event));
                }
                let state = self.hub.state(id);
                if !frames.is_empty() || count > 0 || state != told {
                    moved = true;
                    out.push(1);
                    put_varint(out, u64::from(id.0));
                    out.push(state_code(state));
                    put_varint(out, self.hub.pending_writes(id));
                    put_varint(out, frames.len() as u64);
                    for frame in &frames {
                        put_varint(out, frame.len() as u64);
                        out.extend_from_slice(frame);
                    }
                    put_varint(out, count);
                    out.extend_from_slice(&events);
                }
                self.conns[at].1 = state;
                if state == ConnState::Closed {
                    self.hub.remove(id);
                    self.conns.remove(at);
                } else {
                    at += 1;
                }
            }
            if !moved {
                break;
            }
        }
        out.push(0);
        out.push(u8::from(!self.drifts.is_empty()));
        out.len() as u32
    }
}
