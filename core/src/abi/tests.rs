//! The byte ABI's hand-written request and reply codec (`codec.rs`) against serde's derives of
//! [`Request`] and [`Reply`]: on valid encodings, damaged copies of them and random bytes, the same
//! result or the same error.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use crate::abi::codec::{check_size, decode_reply, decode_request, encode_reply, encode_request};
use crate::abi::{Command, InFrame, Reply, Request, SyncEvent, SyncOutput, WireDrift, WireError, WireEvent};
use crate::codec::tests::{damaged, random, same, values};
use crate::codec::{FORMAT_VERSION, read_versioned};
use crate::error::ErrorKind;
use crate::map_common::MapKind;
use crate::storage::{MapStatus, StorageOp, StorageRequest, StorageResult};
use crate::sync::types::ConnState;
use crate::value::Value;

fn check_request(bytes: &[u8]) {
    let serde = check_size(bytes, "request").and_then(|()| read_versioned::<Request>(bytes, "request"));
    same(bytes, decode_request(bytes), serde);
}

fn check_reply(bytes: &[u8]) {
    let serde = check_size(bytes, "reply").and_then(|()| read_versioned::<Reply>(bytes, "reply"));
    same(bytes, decode_reply(bytes), serde);
}

#[test]
fn requests_read_as_serde_reads_them() {
    let kv = |i: u64| (format!("key-{i}"), Value::Int(i as i64));
    let commands = vec![
        Command::Open { node_id: "n".into(), max_drift_ms: 60_000, strict: true },
        Command::OpenPersistent { node_id: "n".into(), max_drift_ms: 0, strict: false },
        Command::Close,
        Command::Set { map: "m".into(), key: "k".into(), value: values().pop().expect("v"), ttl_ms: Some(5) },
        Command::SetMany { map: "m".into(), entries: (0..3).map(kv).collect() },
        Command::Remove { map: "m".into(), key: "k".into() },
        Command::Get { map: "m".into(), key: "k".into() },
        Command::Add { map: "m".into(), key: "k".into(), value: Value::from("v"), ttl_ms: None },
        Command::OrRemove { map: "m".into(), key: "k".into(), value: Value::Bool(true) },
        Command::OrGet { map: "m".into(), key: "k".into() },
        Command::Root { map: "m".into() },
        Command::Export { map: "m".into() },
        Command::Import { map: "m".into(), snapshot: vec![1, 0, 0, 0] },
        Command::Prune { map: "m".into(), older_than: 1 << 40 },
        Command::GetMap { map: "m".into(), kind: None },
        Command::GetMap { map: "m".into(), kind: Some(MapKind::Lww) },
        Command::GetMap { map: "m".into(), kind: Some(MapKind::Or) },
        Command::Flush,
        Command::Storage {
            answers: vec![
                (1, StorageResult::Keys(vec!["a".into(), "b".into()])),
                (2, StorageResult::Values(vec![("a".into(), vec![1, 2])])),
                (3, StorageResult::Done),
                (u64::MAX, StorageResult::Failed("no".into())),
            ],
        },
        Command::TakeEarlyWrites { map: "m".into() },
        Command::SyncConnect { token: None },
        Command::SyncConnect { token: Some("a.b.c".into()) },
        Command::SyncIncoming,
        Command::SyncAccept { conn: 3, read: None, write: Some(vec!["todo:*".into(), "tags".into()]) },
        Command::SyncAccept { conn: u32::MAX, read: Some(vec![]), write: None },
        Command::SyncRefuse { conn: 1, code: "UNAUTHORIZED".into(), reason: "no token".into() },
        Command::SyncFrames {
            frames: vec![InFrame { conn: 1, bytes: vec![1, 0, 1] }, InFrame { conn: 300, bytes: (0..=255).collect() }],
        },
        Command::SyncFrames { frames: vec![] },
        Command::SyncPoll { conns: vec![] },
        Command::SyncPoll { conns: vec![1, 2, u32::MAX] },
        Command::SyncClose { conn: 7 },
        Command::SyncRemove { conn: 7 },
        Command::SyncMarker,
    ];
    let mut all = Vec::new();
    for command in commands {
        let bytes = encode_request(&Request { grid: 300, wall: 1_700_000_000_000, command });
        all.extend(damaged(&bytes));
        all.push(bytes);
    }
    all.extend(random(&[1], 10_000, 0x1234_5678_9abc_def1));
    all.extend(random(&[1, 1, 1], 10_000, 0x0fed_cba9_8765_4321));
    for tag in 0..27 {
        all.extend(random(&[1, 1, 1, tag], 2_000, 0x5555_aaaa_1234_0000 + u64::from(tag)));
    }
    all.push(Vec::new());
    for bytes in &all {
        check_request(bytes);
    }
}

#[test]
fn replies_read_as_serde_reads_them() {
    let request = |id, op| StorageRequest { id, op };
    let replies = vec![
        Reply::Done,
        Reply::Opened(u32::MAX),
        Reply::Value(None),
        Reply::Value(values().pop()),
        Reply::Values(values()),
        Reply::Tags(vec!["1:0:a".into(), "".into()]),
        Reply::Root(0xdead_beef),
        Reply::Bytes((0..=255).collect()),
        Reply::Count(u64::MAX),
        Reply::Error(crate::abi::WireError::new(crate::error::ErrorKind::NotFound, "no")),
        Reply::Status(MapStatus::Loading),
        Reply::Status(MapStatus::Loaded(MapKind::Or)),
        Reply::Storage {
            requests: vec![
                request(1, StorageOp::LoadAllKeys { map: "m".into() }),
                request(2, StorageOp::LoadAll { map: "m".into(), keys: vec!["a".into(), "b".into()] }),
                request(3, StorageOp::StoreAll { map: "m".into(), entries: vec![("a".into(), vec![1, 2])] }),
                request(u64::MAX, StorageOp::DeleteAll { map: "m".into(), keys: vec!["x".into()] }),
            ],
            events: vec![
                WireEvent::MapLoaded { map: "m".into(), count: 3 },
                WireEvent::Ready { map: "m".into(), kind: MapKind::Lww },
                WireEvent::LoadFailed { map: "m".into(), error: WireError::new(ErrorKind::Storage, "e") },
                WireEvent::Flushed { flush_id: 7 },
                WireEvent::FlushFailed { flush_id: 8, error: WireError::new(ErrorKind::Limit, "e") },
                WireEvent::Refused {
                    map: "m".into(),
                    asked: MapKind::Or,
                    error: WireError::new(ErrorKind::KindMismatch, "e"),
                },
            ],
        },
        Reply::Sync(vec![]),
        Reply::Sync(vec![
            SyncOutput {
                conn: 1,
                state: ConnState::Connecting,
                pending: 0,
                frames: vec![],
                more: false,
                events: vec![SyncEvent::Hello { node_id: "c".into(), token: Some("t".into()) }],
            },
            SyncOutput {
                conn: u32::MAX,
                state: ConnState::Closed,
                pending: u64::MAX,
                frames: vec![vec![1, 3, 9], (0..=255).collect()],
                more: true,
                events: vec![
                    SyncEvent::Hello { node_id: "c".into(), token: None },
                    SyncEvent::Connected { node_id: "s".into() },
                    SyncEvent::Synced,
                    SyncEvent::Acked { marker: 1 << 40 },
                    SyncEvent::Drift(WireDrift { remote: "1:0:a".into(), wall: 5, ahead_ms: 6, max_drift_ms: 7 }),
                    SyncEvent::KindMismatch { map: "m".into(), local: MapKind::Lww, remote: MapKind::Or },
                    SyncEvent::Oversized { map: "m".into(), bytes: 2 << 20 },
                    SyncEvent::Closed { code: "MALFORMED".into(), message: "bad".into(), by_peer: true },
                ],
            },
            SyncOutput { conn: 2, state: ConnState::Syncing, pending: 3, frames: vec![], more: false, events: vec![] },
            SyncOutput {
                conn: 4,
                state: ConnState::Synced,
                pending: 0,
                frames: vec![vec![1]],
                more: false,
                events: vec![],
            },
        ]),
    ];
    let mut all = Vec::new();
    for reply in &replies {
        let bytes = encode_reply(reply);
        all.extend(damaged(&bytes));
        all.push(bytes);
    }
    all.extend(random(&[1], 10_000, 0x6a09_e667_f3bc_c908));
    for tag in 0..13 {
        all.extend(random(&[1, tag], 2_000, 0xbb67_ae85_84ca_a73b + u64::from(tag)));
    }
    for op in 0..5 {
        all.extend(random(&[1, 10, 1, 0, op], 2_000, 0x3c6e_f372_fe94_f82b + u64::from(op)));
    }
    for event in 0..9 {
        all.extend(random(&[1, 12, 1, 1, 0, 0, 0, 0, 1, event], 2_000, 0x510e_527f_ade6_82d1 + u64::from(event)));
    }
    all.push(Vec::new());
    for bytes in &all {
        check_reply(bytes);
    }
}

#[test]
fn import_snapshots_encode_as_the_derived_byte_vec_layout() {
    let snapshot: Vec<u8> = (0..=255).collect();
    let command = Command::Import { map: "m".into(), snapshot: snapshot.clone() };
    let bytes = encode_request(&Request { grid: 300, wall: 1_700_000_000_000, command });
    // What serde derives for a `Vec<u8>` field: a length, then each byte as a `u8`.
    let derived = postcard::to_allocvec(&(300u32, 1_700_000_000_000u64, 11u32, "m", &snapshot)).expect("encode");
    assert_eq!(bytes[0], FORMAT_VERSION);
    assert_eq!(bytes[1..], derived[..]);
}
