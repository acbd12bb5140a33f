//! Replicas driven through the byte ABI's commands ([`Command`]), on any [`Backend`] that runs
//! them: the core's `Replica` compiled for this machine ([`super::native`]) or the module in
//! wasmtime ([`Wasmtime`]).
//!
//! The pump is the JavaScript API's (`wasm/js/sync.js`), so these replicas make the same calls as
//! the Node ones: no sync call at all before the grid's first connection; after that, after every
//! input, `SyncPoll` of every open connection, `SyncAccept` (every map) of each hello it brought,
//! and `SyncPoll` again while something was accepted. A connection reported closed is removed
//! (`SyncRemove`), as the module's `syncPoll` does for JavaScript.

use onegrid_core::codec::{Snapshot, decode_snapshot, encode_request};
use onegrid_core::sync::ConnState;
use onegrid_core::{ClockConfig, Command, MapKind, Reply, Request, SyncEvent, Timestamp, Value};
use onegrid_host::{Client, Runtime};

use super::{ConnNews, MapFinal, News, Received, Replicas, Rng, Write, WriteOp};

/// What runs the commands: grids by handle, each with its hub.
pub trait Backend {
    /// The runtime's name, for messages.
    fn name(&self) -> &str;

    /// Opens grid `r` (node id `node_id`); returns its handle.
    fn open(&mut self, r: usize, node_id: &str) -> u32;

    /// Runs `command` on the grid `handle` at wall time `now`. A command the grid refuses comes
    /// back as `Reply::Error`.
    fn call(&mut self, handle: u32, now: u64, command: Command) -> Reply;

    /// See [`Replicas::storage`]: returns true when it handed the grid answers (it pumps then).
    fn storage(&mut self, _r: usize, _handle: u32, _now: u64, _rng: &mut Rng, _all: bool) -> bool {
        false
    }

    /// See [`Replicas::idle`].
    fn idle(&self, _r: usize) -> bool {
        true
    }

    /// See [`Replicas::early_acks`].
    fn early_acks(&self, _r: usize, _received: &[Vec<(String, Received)>], _upto: u64) -> Vec<String> {
        Vec::new()
    }
}

/// One grid as the pump keeps it.
struct Grid {
    handle: u32,
    /// Open connections, in the order opened.
    open: Vec<u32>,
    /// A connection was opened: from then on every input is followed by a pump (the JavaScript
    /// API makes a grid's `SyncHub` on its first `connect` or `accept`).
    hub: bool,
}

/// `n` replicas on a [`Backend`], driven as the JavaScript API drives its grids.
pub struct AbiReplicas<B> {
    /// The backend (e.g. to read a native replica's storage).
    pub backend: B,
    grids: Vec<Grid>,
}

impl<B: Backend> AbiReplicas<B> {
    /// Opens `n` replicas, `r0` to `r{n-1}`.
    pub fn new(mut backend: B, n: usize) -> Self {
        let grids =
            (0..n).map(|r| Grid { handle: backend.open(r, &format!("r{r}")), open: Vec::new(), hub: false }).collect();
        Self { backend, grids }
    }

    fn call(&mut self, r: usize, now: u64, command: Command) -> Reply {
        let handle = self.grids[r].handle;
        match self.backend.call(handle, now, command.clone()) {
            Reply::Error(e) => {
                panic!("{}: replica {r} refused {command:?}: {}: {}", self.backend.name(), e.code, e.message)
            }
            reply => reply,
        }
    }

    /// The pump (see the module docs).
    fn pump(&mut self, r: usize, now: u64) -> News {
        let mut news: Vec<ConnNews> = Vec::new();
        if !self.grids[r].hub {
            return news;
        }
        loop {
            let conns = self.grids[r].open.clone();
            let Reply::Sync(outputs) = self.call(r, now, Command::SyncPoll { conns }) else {
                panic!("{}: SyncPoll answered with something else", self.backend.name());
            };
            let mut accepted = false;
            for output in outputs {
                assert!(!output.more, "{}: a poll left frames behind", self.backend.name());
                let at = match news.iter().position(|n| n.conn == output.conn) {
                    Some(at) => at,
                    None => {
                        news.push(ConnNews {
                            conn: output.conn,
                            state: output.state,
                            pending: 0,
                            frames: Vec::new(),
                            problems: Vec::new(),
                        });
                        news.len() - 1
                    }
                };
                let entry = &mut news[at];
                entry.state = output.state;
                entry.pending = output.pending;
                entry.frames.extend(output.frames);
                for event in output.events {
                    match event {
                        SyncEvent::Hello { .. } => {
                            self.call(r, now, Command::SyncAccept { conn: output.conn, read: None, write: None });
                            accepted = true;
                        }
                        SyncEvent::KindMismatch { .. } => news[at].problems.push("KIND_MISMATCH".into()),
                        SyncEvent::Oversized { .. } => news[at].problems.push("LIMIT".into()),
                        // As the JavaScript API reports closes: not one of our own `close`.
                        SyncEvent::Closed { code, by_peer, .. } if by_peer || code != "CLOSED" => {
                            news[at].problems.push(code)
                        }
                        _ => {}
                    }
                }
                if output.state == ConnState::Closed {
                    self.call(r, now, Command::SyncRemove { conn: output.conn });
                    self.grids[r].open.retain(|c| *c != output.conn);
                }
            }
            if !accepted {
                break;
            }
        }
        news.sort_by_key(|n| n.conn);
        news
    }
}

impl<B: Backend> Replicas for AbiReplicas<B> {
    fn name(&self) -> &str {
        self.backend.name()
    }

    fn count(&self) -> usize {
        self.grids.len()
    }

    fn write(&mut self, r: usize, now: u64, op: &WriteOp) -> (Write, News) {
        let (map, key, value) = (op.map.to_string(), op.key.clone(), Value::from(op.value));
        let write = match (op.kind, op.remove) {
            (MapKind::Lww, remove) => {
                let command = if remove {
                    Command::Remove { map: map.clone(), key: key.clone() }
                } else {
                    Command::Set { map: map.clone(), key: key.clone(), value, ttl_ms: op.ttl }
                };
                self.call(r, now, command);
                // The record's timestamp, from the map's snapshot (the byte ABI has no record read).
                let Reply::Bytes(bytes) = self.call(r, now, Command::Export { map }) else { panic!("Export") };
                let Ok(Snapshot::Lww(records)) = decode_snapshot(&bytes) else { panic!("an LWW snapshot") };
                let record = records.into_iter().find(|(k, _)| **k == *key).expect("the record just written");
                Write::Lww(record.1.timestamp)
            }
            (MapKind::Or, false) => match self.call(r, now, Command::Add { map, key, value, ttl_ms: op.ttl }) {
                Reply::Tags(tags) if tags.len() == 1 => Write::Add(tag(&tags[0])),
                other => panic!("Add answered {other:?}"),
            },
            (MapKind::Or, true) => match self.call(r, now, Command::OrRemove { map, key, value }) {
                Reply::Tags(tags) => Write::Removed(tags.iter().map(|t| tag(t)).collect()),
                other => panic!("OrRemove answered {other:?}"),
            },
        };
        (write, self.pump(r, now))
    }

    fn open(&mut self, r: usize, now: u64, accepting: bool) -> (u32, News) {
        let command = if accepting { Command::SyncIncoming } else { Command::SyncConnect { token: None } };
        let Reply::Count(conn) = self.call(r, now, command) else { panic!("a connection's handle") };
        let conn = u32::try_from(conn).expect("a u32 handle");
        let grid = &mut self.grids[r];
        grid.open.push(conn);
        grid.hub = true;
        (conn, self.pump(r, now))
    }

    fn receive(&mut self, r: usize, now: u64, conn: u32, frame: &[u8]) -> News {
        let frames = vec![onegrid_core::InFrame { conn, bytes: frame.to_vec() }];
        self.call(r, now, Command::SyncFrames { frames });
        self.pump(r, now)
    }

    fn close(&mut self, r: usize, now: u64, conn: u32) -> News {
        self.call(r, now, Command::SyncClose { conn });
        self.pump(r, now)
    }

    fn finals(&mut self, r: usize, maps: &[(&str, MapKind)]) -> Vec<Option<MapFinal>> {
        let handle = self.grids[r].handle;
        maps.iter()
            .map(|(map, _)| {
                // Root and Export do not create a missing map; Root refuses it.
                let Reply::Root(root) = self.backend.call(handle, 0, Command::Root { map: (*map).into() }) else {
                    return None;
                };
                let Reply::Bytes(snapshot) = self.call(r, 0, Command::Export { map: (*map).into() }) else {
                    panic!("Export")
                };
                Some(MapFinal { root, snapshot })
            })
            .collect()
    }

    fn storage(&mut self, r: usize, now: u64, rng: &mut Rng, all: bool) -> News {
        let handle = self.grids[r].handle;
        if self.backend.storage(r, handle, now, rng, all) { self.pump(r, now) } else { News::new() }
    }

    fn idle(&self, r: usize) -> bool {
        self.backend.idle(r)
    }

    fn early_acks(&self, r: usize, received: &[Vec<(String, Received)>], upto: u64) -> Vec<String> {
        self.backend.early_acks(r, received, upto)
    }
}

fn tag(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap_or_else(|e| panic!("a tag {text:?}: {e}"))
}

/// The module in wasmtime: one instance holds every replica's grid.
pub struct Wasmtime {
    client: Client,
}

impl Wasmtime {
    /// A fresh instance of `runtime`'s module.
    pub fn new(runtime: &Runtime) -> Self {
        Self { client: Client::new(runtime).expect("instantiate the module") }
    }
}

impl Backend for Wasmtime {
    fn name(&self) -> &str {
        "wasmtime"
    }

    fn open(&mut self, _r: usize, node_id: &str) -> u32 {
        let config = ClockConfig::default();
        let open = Command::Open { node_id: node_id.into(), max_drift_ms: config.max_drift_ms, strict: config.strict };
        match self.call(0, 0, open) {
            Reply::Opened(handle) => handle,
            other => panic!("wasmtime: Open answered {other:?}"),
        }
    }

    fn call(&mut self, handle: u32, now: u64, command: Command) -> Reply {
        let request = encode_request(&Request { grid: handle, wall: now, command });
        self.client.call_bytes(&request).unwrap_or_else(|e| panic!("wasmtime: the call failed: {e}"))
    }
}
