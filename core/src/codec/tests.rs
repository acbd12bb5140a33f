//! The hand-written encoders and readers of the codec against serde's derives of the wire structs
//! they mirror: the same bytes; and on valid encodings, damaged copies of them and random bytes,
//! the same result or the same error. The byte ABI's requests and replies have theirs in
//! `abi/tests.rs`, which shares the helpers here.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Debug;

use crate::codec::read::{MAX_RESERVE_BYTES, capacity_for};
use crate::codec::snapshot::{
    NodeTable, OR_SNAPSHOT_TAG, OrKeyWire, OrSnapshotWire, OrWire, decode_or_snapshot, encode_or_snapshot, or_snapshot,
};
use crate::codec::stored::{
    STORED, StoredOrWire, StoredValue, StoredWire, TimestampWire, decode_stored, encode_stored, encode_stored_lww,
    stored_value,
};
use crate::codec::value::{put_value, take_value, value_len};
use crate::codec::write::{put_varint, varint_len, write_postcard, write_versioned};
use crate::codec::{FORMAT_VERSION, in_decode, read_versioned};
use crate::hlc::{ClockConfig, Hlc, NodeId, Timestamp};
use crate::lww::{LwwMap, LwwRecord};
use crate::or_map::{OrMap, OrRecord};
use crate::value::Value;

// ---- the encoders ------------------------------------------------------------------------------

/// What `encode_or_snapshot_into` wrote through serde.
fn serde_or_snapshot(map: &OrMap) -> Vec<u8> {
    let records = map.records();
    let tags: Vec<String> = records.iter().flat_map(|(_, rs)| rs.iter().map(OrRecord::tag)).collect();
    let tombstones = map.tombstones();
    let mut table = NodeTable::default();
    let mut tag_at = tags.iter();
    let keys: Vec<OrKeyWire<'_>> = records
        .iter()
        .map(|(key, rs)| OrKeyWire {
            key,
            records: rs
                .iter()
                .map(|r| OrWire {
                    value: r.value.clone(),
                    millis: r.timestamp.millis,
                    counter: r.timestamp.counter,
                    node: table.of(&r.timestamp.node_id),
                    tag: tag_at.next().map_or("", String::as_str),
                    ttl_ms: r.ttl_ms,
                })
                .collect(),
        })
        .collect();
    let tombstones = tombstones.iter().map(String::as_str).collect();
    let mut out = vec![FORMAT_VERSION, OR_SNAPSHOT_TAG];
    write_postcard(&OrSnapshotWire { nodes: table.nodes, keys, tombstones }, &mut out);
    out
}

fn timestamp_wire(t: &Timestamp) -> TimestampWire<'_> {
    TimestampWire { millis: t.millis, counter: t.counter, node_id: t.node_id.as_str() }
}

/// What `encode_stored` wrote through serde.
fn serde_stored(value: &StoredValue) -> Vec<u8> {
    let tags: Vec<String>;
    let wire = match value {
        StoredValue::Lww(r) => {
            StoredWire::Lww { value: r.value.clone(), timestamp: timestamp_wire(&r.timestamp), ttl_ms: r.ttl_ms }
        }
        StoredValue::Or(records) => {
            tags = records.iter().map(OrRecord::tag).collect();
            StoredWire::Or(
                records
                    .iter()
                    .zip(&tags)
                    .map(|(r, tag)| StoredOrWire {
                        value: r.value.clone(),
                        timestamp: timestamp_wire(&r.timestamp),
                        tag,
                        ttl_ms: r.ttl_ms,
                    })
                    .collect(),
            )
        }
        StoredValue::OrTombstones(t) => {
            tags = t.iter().map(Timestamp::to_text).collect();
            StoredWire::OrTombstones(tags.iter().map(String::as_str).collect())
        }
        StoredValue::Mark(m) => StoredWire::Mark { kind: m.kind, millis: m.millis, counter: m.counter },
    };
    let mut out = Vec::new();
    write_versioned(&wire, &mut out);
    out
}

/// Values of every kind and edge (shared with the readers' tests and `abi/tests.rs`).
pub(crate) fn values() -> Vec<Value> {
    let nested = Value::map([
        ("b", Value::from(vec![0u8, 1, 255])),
        ("f", Value::from(-2.5e-300)),
        ("l", Value::list([Value::Null, Value::Bool(true), Value::Bool(false), Value::Int(i64::MIN)])),
        ("n", Value::Int(-64)),
        ("s", Value::from("h\u{e9}llo \u{1F600}")),
    ]);
    let nested = nested.expect("map");
    vec![
        Value::Null,
        Value::Int(0),
        Value::Int(63),
        Value::Int(64),
        Value::Int(-1),
        Value::Int(-65),
        Value::Int(i64::MAX),
        Value::Float(1.5),
        Value::Float(f64::MIN_POSITIVE),
        Value::from("text"),
        Value::from("x".repeat(300)),
        Value::from(vec![7u8; 200]),
        Value::list([nested.clone(), Value::list([])]),
        nested,
    ]
}

#[test]
fn put_value_writes_what_serde_writes() {
    for value in values() {
        let mut out = vec![9];
        put_value(&mut out, &value);
        let serde = postcard::to_allocvec(&value).expect("encode");
        assert_eq!(out[1..], serde[..], "{value:?}");
        assert_eq!(value_len(&value), serde.len(), "{value:?}");
    }
    for n in [0u64, 1, 127, 128, 16_383, 16_384, u64::from(u32::MAX), u64::MAX] {
        let mut out = Vec::new();
        put_varint(&mut out, n);
        assert_eq!(varint_len(n), out.len(), "{n}");
    }
}

#[test]
fn stored_values_and_or_snapshots_are_what_serde_writes() {
    let mut clock = Hlc::new(NodeId::new("node-a").expect("node"), ClockConfig::default());
    let mut other = Hlc::new(NodeId::new("b").expect("node"), ClockConfig::default());
    let mut map = OrMap::new();
    assert_eq!(encode_or_snapshot(&map), serde_or_snapshot(&map));
    for (i, value) in values().into_iter().enumerate() {
        let key = alloc::format!("key-{}", i % 4);
        let ttl = (i % 3 == 0).then_some(1_000 + i as u64 * 1_000_000);
        let c = if i % 2 == 0 { &mut clock } else { &mut other };
        map.add(c, 1_700_000_000_000 + i as u64, &key, value.clone(), ttl).expect("write");
        let lww = LwwRecord { value: Some(value), timestamp: c.now(5).expect("the clock has room"), ttl_ms: ttl };
        let stored = StoredValue::Lww(lww.clone());
        assert_eq!(encode_stored(&stored), serde_stored(&stored));
        let tombstone = StoredValue::Lww(LwwRecord { value: None, ..lww.clone() });
        assert_eq!(encode_stored(&tombstone), serde_stored(&tombstone));
        // As the flush writes them: from the map's own record.
        let mut m = LwwMap::new();
        m.merge(c, 5, "k", lww.clone()).expect("merge");
        let held = m.record_ref("k").expect("held");
        assert_eq!(encode_stored_lww(&held), serde_stored(&stored));
        let timestamp = c.now(5).expect("the clock has room");
        m.merge(c, 5, "k", LwwRecord { value: None, timestamp, ..lww }).expect("merge");
        let held = m.record_ref("k").expect("held");
        let tombstone = StoredValue::Lww(m.get_record("k").expect("held"));
        assert_eq!(encode_stored_lww(&held), serde_stored(&tombstone));
    }
    map.remove("key-2", &Value::Int(63)).expect("write");
    assert_eq!(encode_or_snapshot(&map), serde_or_snapshot(&map));
    for key in ["key-0", "key-1", "key-2", "key-3", "none"] {
        let or = StoredValue::Or(map.get_records(key).to_vec());
        assert_eq!(encode_stored(&or), serde_stored(&or));
    }
    let tags: Vec<Timestamp> = map.tombstones().iter().filter_map(|t| Timestamp::parse(t).ok()).collect();
    assert!(!tags.is_empty());
    for tags in [Vec::new(), tags] {
        let stored = StoredValue::OrTombstones(tags);
        assert_eq!(encode_stored(&stored), serde_stored(&stored));
    }
}

// ---- the readers -------------------------------------------------------------------------------

/// Every truncation; every byte replaced by values that stress tags, varints and lengths; a
/// byte inserted and one removed at every position.
pub(crate) fn damaged(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for len in 0..bytes.len() {
        out.push(bytes[..len].to_vec());
    }
    for at in 0..bytes.len() {
        let b = bytes[at];
        for v in [0, 1, 2, 3, 5, 7, 8, 0x0f, 0x10, 0x3f, 0x7f, 0x80, 0x81, 0xc0, 0xff, b ^ 1, b.wrapping_add(1)] {
            let mut copy = bytes.to_vec();
            copy[at] = v;
            out.push(copy);
        }
        for v in [0, 0x80, 0xff] {
            let mut copy = bytes.to_vec();
            copy.insert(at, v);
            out.push(copy);
        }
        let mut copy = bytes.to_vec();
        copy.remove(at);
        out.push(copy);
    }
    out.push([bytes, &[0]].concat());
    out
}

/// Random byte strings after `prefix`, small values and varint continuation bytes favoured.
pub(crate) fn random(prefix: &[u8], count: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut state = seed;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|_| {
            let len = (next() % 40) as usize;
            let mut bytes = prefix.to_vec();
            for _ in 0..len {
                let r = next();
                bytes.push(match r % 4 {
                    0 => (r >> 8) as u8,
                    1 => 0x80 | (r >> 8) as u8,
                    _ => ((r >> 8) % 9) as u8,
                });
            }
            bytes
        })
        .collect()
}

pub(crate) fn same<T: Debug, E: Debug>(bytes: &[u8], ours: Result<T, E>, serde: Result<T, E>) {
    assert_eq!(format!("{ours:?}"), format!("{serde:?}"), "bytes {bytes:?}");
}

fn check_value(bytes: &[u8]) {
    same(bytes, take_value(bytes), postcard::take_from_bytes::<Value>(bytes));
}

fn check_stored(bytes: &[u8]) {
    let serde = read_versioned::<StoredWire<'_>>(bytes, STORED).and_then(stored_value);
    same(bytes, decode_stored(bytes), serde);
}

fn check_or_snapshot(bytes: &[u8]) {
    if let [FORMAT_VERSION, OR_SNAPSHOT_TAG, ..] = bytes {
        // The tag and the body through serde, as one postcard tuple.
        let serde = read_versioned::<(u8, OrSnapshotWire<'_>)>(bytes, "snapshot")
            .and_then(|(_, wire)| or_snapshot(wire).map_err(in_decode("snapshot")));
        same(bytes, decode_or_snapshot(bytes), serde);
    }
}

fn deep(levels: usize, map: bool) -> Vec<u8> {
    let mut bytes = Vec::new();
    for _ in 0..levels {
        bytes.extend_from_slice(if map { &[7, 1, 1, b'k'] } else { &[6, 1] });
    }
    bytes.push(0);
    bytes
}

#[test]
fn values_read_as_serde_reads_them() {
    let mut inputs = vec![deep(63, false), deep(64, false), deep(65, false), deep(64, true), deep(65, true)];
    inputs.push(vec![2, 0x80, 0x00]); // a varint that is not minimal
    inputs.push(vec![3, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f]); // NaN
    inputs.push(vec![4, 2, 0xc3, 0x28]); // bad UTF-8
    inputs.push(vec![0x80, 0x01]); // tag 128
    for value in values() {
        let mut bytes = Vec::new();
        put_value(&mut bytes, &value);
        inputs.extend(damaged(&bytes));
        inputs.push(bytes);
    }
    inputs.extend(random(&[], 20_000, 0x9e37_79b9_7f4a_7c15));
    for bytes in &inputs {
        check_value(bytes);
    }
}

#[test]
fn stored_values_read_as_serde_reads_them() {
    let (mut clock, mut map) = (Hlc::new(NodeId::new("n-1").expect("node"), ClockConfig::default()), OrMap::new());
    let mut inputs = Vec::new();
    for (i, value) in values().into_iter().enumerate() {
        let ttl = (i % 2 == 0).then_some(1_000);
        let record = map.add(&mut clock, 1_000 + i as u64, "k", value.clone(), ttl).expect("add");
        let lww = LwwRecord { value: Some(value), timestamp: record.timestamp.clone(), ttl_ms: ttl };
        inputs.push(encode_stored(&StoredValue::Lww(lww)));
        inputs.push(encode_stored(&StoredValue::Lww(LwwRecord {
            value: None,
            timestamp: record.timestamp,
            ttl_ms: None,
        })));
    }
    inputs.push(encode_stored(&StoredValue::Or(map.get_records("k")[..2].to_vec())));
    let tags: Vec<Timestamp> = map.get_records("k").iter().map(|r| r.timestamp.clone()).take(3).collect();
    inputs.push(encode_stored(&StoredValue::OrTombstones(tags)));
    let mut all = Vec::new();
    for bytes in &inputs {
        all.extend(damaged(bytes));
        all.push(bytes.clone());
    }
    for prefix in [&[1u8][..], &[1, 0], &[1, 1], &[1, 2]] {
        all.extend(random(prefix, 10_000, 0x2545_f491_4f6c_dd1d));
    }
    all.push(Vec::new());
    all.push(vec![2, 0]);
    for bytes in &all {
        check_stored(bytes);
    }
}

#[test]
fn reservations_are_bounded_by_the_bytes_left_and_a_cap() {
    // 600 bytes hold at most 100 items of 6 bytes, whatever the count claims.
    assert_eq!(capacity_for(usize::MAX, 600, 6, 80), 100);
    assert_eq!(capacity_for(10, 600, 6, 80), 10);
    assert_eq!(capacity_for(1_000_000, 1 << 30, 1, 24), MAX_RESERVE_BYTES / 24);
    assert_eq!(capacity_for(5, 0, 1, 24), 0);
    assert_eq!(capacity_for(5, 10, 0, 0), 5);
}

#[test]
fn or_snapshots_read_as_serde_reads_them() {
    let (mut a, mut b) = (
        Hlc::new(NodeId::new("a").expect("node"), ClockConfig::default()),
        Hlc::new(NodeId::new("b").expect("node"), ClockConfig::default()),
    );
    let mut map = OrMap::new();
    let mut all = vec![encode_or_snapshot(&map)];
    for (i, value) in values().into_iter().enumerate() {
        let clock = if i % 2 == 0 { &mut a } else { &mut b };
        let key = format!("k{}", i % 3);
        map.add(clock, 1_000 + i as u64, &key, value, (i % 3 == 0).then_some(9)).expect("add");
    }
    map.remove("k1", &Value::Int(-1)).expect("remove");
    let bytes = encode_or_snapshot(&map);
    all.extend(damaged(&bytes));
    all.push(bytes);
    all.extend(random(&[1, 1], 20_000, 0x0123_4567_89ab_cdef));
    let mut one_key = vec![1, 1, 1, 1, b'a', 1, 1, b'k'];
    one_key.extend_from_slice(&[1, 0, 5, 0, 0]);
    one_key.extend(random(&[], 1, 7).concat());
    all.extend(damaged(&one_key));
    for bytes in &all {
        check_or_snapshot(bytes);
    }
}
