//! Sync through the byte ABI's commands: a client and a server replica (the grid and its hub, as
//! the module's grid table keeps them) driven only by encoded requests and replies, as a host
//! drives the module. The storage manager's flush events reach the hub inside `Storage`, so the
//! server acknowledges a write only after the flush holding it, and one flush covers every frame
//! handed in together.

mod common;

use common::storage::Fake;
use onegrid_core::codec::{decode_reply, decode_request, encode_reply, encode_request};
use onegrid_core::sync::{ConnState, Frame};
use onegrid_core::{
    ClockConfig, Command, Grid, InFrame, NodeId, Replica, Reply, Request, StorageConfig, StorageOp, SyncEvent,
    SyncOutput, Value,
};

const WALL: u64 = 1_700_000_000_000;

/// A code of the driver's choosing (`onegrid serve` refuses a bad token with it).
const UNAUTHORIZED: &str = "UNAUTHORIZED";

/// One command through its bytes both ways.
fn call(replica: &mut Replica, command: Command) -> Reply {
    let request = decode_request(&encode_request(&Request { grid: 1, wall: WALL, command })).expect("request");
    let reply = replica
        .execute(request.wall, request.command)
        .unwrap_or_else(|e| Reply::Error(onegrid_core::WireError::from(&e)));
    decode_reply(&encode_reply(&reply)).expect("reply")
}

fn count(reply: Reply) -> u32 {
    match reply {
        Reply::Count(n) => u32::try_from(n).expect("a handle"),
        other => panic!("{other:?}"),
    }
}

fn poll(replica: &mut Replica, conns: Vec<u32>) -> Vec<SyncOutput> {
    match call(replica, Command::SyncPoll { conns }) {
        Reply::Sync(outputs) => outputs,
        other => panic!("{other:?}"),
    }
}

/// Runs the storage work of `replica` on `fake` until there is none; returns the ops run.
fn run_storage(replica: &mut Replica, fake: &mut Fake) -> Vec<StorageOp> {
    let (mut answers, mut ran) = (Vec::new(), Vec::new());
    loop {
        match call(replica, Command::Storage { answers: std::mem::take(&mut answers) }) {
            Reply::Storage { requests, .. } if requests.is_empty() => return ran,
            Reply::Storage { requests, .. } => {
                for r in requests {
                    answers.push((r.id, fake.execute(&r.op)));
                    ran.push(r.op);
                }
            }
            other => panic!("{other:?}"),
        }
    }
}

struct Pair {
    client: Replica,
    cc: u32,
    server: Replica,
    cs: u32,
    fake: Fake,
    /// Every event each side reported.
    client_events: Vec<SyncEvent>,
    server_events: Vec<SyncEvent>,
}

impl Pair {
    fn new() -> Self {
        let node = |id: &str| NodeId::new(id).expect("node");
        let mut client = Replica::new(Grid::new(node("client"), ClockConfig::default()));
        let server_grid = Grid::with_storage(node("server"), ClockConfig::default(), StorageConfig::default());
        let mut server = Replica::new(server_grid);
        let cc = count(call(&mut client, Command::SyncConnect { token: Some("t".into()) }));
        let cs = count(call(&mut server, Command::SyncIncoming));
        Self { client, cc, server, cs, fake: Fake::default(), client_events: Vec::new(), server_events: Vec::new() }
    }

    /// Client to server: its frames go in with one `SyncFrames`.
    fn client_to_server(&mut self) -> usize {
        let outputs = poll(&mut self.client, vec![self.cc]);
        let mut frames = Vec::new();
        for output in outputs {
            self.client_events.extend(output.events);
            frames.extend(output.frames.into_iter().map(|bytes| InFrame { conn: self.cs, bytes }));
        }
        let n = frames.len();
        if n > 0 {
            assert_eq!(call(&mut self.server, Command::SyncFrames { frames }), Reply::Done);
        }
        n
    }

    /// Server to client, accepting a hello with every permission.
    fn server_to_client(&mut self) -> usize {
        let mut n = 0;
        for output in poll(&mut self.server, vec![]) {
            for event in &output.events {
                if let SyncEvent::Hello { token, .. } = event {
                    assert_eq!(token.as_deref(), Some("t"));
                    let accept = Command::SyncAccept { conn: output.conn, read: None, write: None };
                    assert_eq!(call(&mut self.server, accept), Reply::Done);
                }
            }
            self.server_events.extend(output.events);
            let frames: Vec<InFrame> =
                output.frames.into_iter().map(|bytes| InFrame { conn: self.cc, bytes }).collect();
            n += frames.len();
            if !frames.is_empty() {
                call(&mut self.client, Command::SyncFrames { frames });
            }
        }
        n
    }

    /// Hands frames the server sent to the client.
    fn deliver(&mut self, frames: Vec<Vec<u8>>) {
        let frames = frames.into_iter().map(|bytes| InFrame { conn: self.cc, bytes }).collect();
        assert_eq!(call(&mut self.client, Command::SyncFrames { frames }), Reply::Done);
    }

    fn settle(&mut self) {
        for _ in 0..50 {
            let moved = self.client_to_server();
            run_storage(&mut self.server, &mut self.fake);
            let back = self.server_to_client();
            if moved + back == 0 {
                let mut c = poll(&mut self.client, vec![self.cc]).remove(0);
                let mut s = poll(&mut self.server, vec![self.cs]).remove(0);
                self.client_events.append(&mut c.events);
                self.server_events.append(&mut s.events);
                let (c, s) = (c.state, s.state);
                if c == ConnState::Synced && s == ConnState::Synced {
                    return;
                }
            }
        }
        panic!("no quiescence");
    }
}

#[test]
fn a_client_and_a_server_with_storage_sync_through_the_commands_and_one_flush_acknowledges_many_frames() {
    let mut pair = Pair::new();
    let (m, clock) = pair.server.grid.lww("server-map", WALL).expect("lww");
    m.set(clock, WALL, "s", Value::from("from the server"), None).expect("set");
    pair.settle();
    assert!(pair.server_events.iter().any(|e| matches!(e, SyncEvent::Connected { node_id } if node_id == "client")));
    assert_eq!(
        pair.client.grid.lww("server-map", WALL).expect("lww").0.get("s", WALL),
        Some(Value::from("from the server"))
    );

    // Many writes, each pushed as its own frame, handed in together: one StoreAll for them all.
    let mut frames = Vec::new();
    for i in 0..20u64 {
        let set = Command::Set { map: "todo".into(), key: format!("k{i}"), value: Value::from(i as i64), ttl_ms: None };
        assert_eq!(call(&mut pair.client, set), Reply::Done);
        for output in poll(&mut pair.client, vec![pair.cc]) {
            assert_eq!(output.pending, i + 1);
            frames.extend(output.frames.into_iter().map(|bytes| InFrame { conn: pair.cs, bytes }));
        }
    }
    let marker = count(call(&mut pair.client, Command::SyncMarker));
    assert_eq!(frames.len(), 20, "the map's catch-up, then a frame per write");
    assert_eq!(call(&mut pair.server, Command::SyncFrames { frames }), Reply::Done);
    // Nothing is acknowledged before the flush.
    let before: Vec<Vec<u8>> = poll(&mut pair.server, vec![pair.cs]).into_iter().flat_map(|o| o.frames).collect();
    assert!(before.iter().all(|f| !matches!(Frame::decode(f, usize::MAX), Ok(Frame::Ack { .. }))), "{before:?}");
    pair.deliver(before);
    let ran = run_storage(&mut pair.server, &mut pair.fake);
    let stores: Vec<&StorageOp> = ran.iter().filter(|op| matches!(op, StorageOp::StoreAll { .. })).collect();
    assert_eq!(stores.len(), 1, "one flush for twenty frames: {ran:?}");
    // The first write made the map, which the catch-up delivers (its Root waited for the
    // server's load); the other nineteen went as pushes.
    assert!((1..20).all(|i| pair.fake.data["todo"].contains_key(&format!("k{i}"))), "the pushed keys are stored");
    let after: Vec<Vec<u8>> = poll(&mut pair.server, vec![pair.cs]).into_iter().flat_map(|o| o.frames).collect();
    let decoded: Vec<Frame> = after.iter().map(|f| Frame::decode(f, usize::MAX).expect("frame")).collect();
    assert!(decoded.iter().any(|f| matches!(f, Frame::Ack { upto } if *upto >= 20)), "{decoded:?}");
    pair.deliver(after);
    pair.settle();
    assert!((0..20).all(|i| pair.fake.data["todo"].contains_key(&format!("k{i}"))), "every key is stored");
    assert!(pair.client_events.iter().any(|e| matches!(e, SyncEvent::Acked { marker: m } if *m >= u64::from(marker))));
    assert!(pair.client.hub.is_acked(onegrid_core::sync::ConnId(pair.cc), u64::from(marker)));
    assert_eq!(poll(&mut pair.client, vec![pair.cc])[0].pending, 0);
}

#[test]
fn refusals_carry_their_code_closed_connections_report_and_unknown_ones_poll_as_closed() {
    let mut pair = Pair::new();
    pair.client_to_server();
    let hello = poll(&mut pair.server, vec![]);
    assert!(matches!(&hello[0].events[..], [SyncEvent::Hello { node_id, .. }] if node_id == "client"));
    let refuse = Command::SyncRefuse { conn: pair.cs, code: UNAUTHORIZED.into(), reason: "no token".into() };
    assert_eq!(call(&mut pair.server, refuse), Reply::Done);
    let out = poll(&mut pair.server, vec![pair.cs]);
    assert_eq!(out[0].state, ConnState::Closed);
    assert!(matches!(
        Frame::decode(&out[0].frames[0], usize::MAX),
        Ok(Frame::Error { code, message }) if code == UNAUTHORIZED && message == "no token"
    ));
    assert!(
        out[0]
            .events
            .iter()
            .any(|e| matches!(e, SyncEvent::Closed { code, by_peer: false, .. } if code == UNAUTHORIZED))
    );
    pair.deliver(out[0].frames.clone());
    let out = poll(&mut pair.client, vec![pair.cc]);
    assert_eq!(out[0].state, ConnState::Closed);
    assert!(out[0].events.iter().any(|e| matches!(e, SyncEvent::Closed { by_peer: true, .. })));

    // The transport of an open connection goes: it closes and is forgotten.
    let conn = count(call(&mut pair.server, Command::SyncIncoming));
    assert_eq!(call(&mut pair.server, Command::SyncClose { conn }), Reply::Done);
    let out = poll(&mut pair.server, vec![]);
    assert!(
        out.iter().any(|o| o.conn == conn
            && o.events.iter().any(|e| matches!(e, SyncEvent::Closed { code, .. } if code == "CLOSED")))
    );
    assert_eq!(call(&mut pair.server, Command::SyncRemove { conn }), Reply::Done);
    assert_eq!(poll(&mut pair.server, vec![conn])[0].state, ConnState::Closed);
    assert!(poll(&mut pair.server, vec![]).iter().all(|o| o.conn != conn));

    // A grid without its hub refuses sync commands.
    let mut bare = Grid::new(NodeId::new("bare").expect("node"), ClockConfig::default());
    assert!(bare.execute(WALL, Command::SyncIncoming).is_err());
}
