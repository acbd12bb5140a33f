//! SPEC section 7 and the codec: snapshots and stored values round-trip, and every kind of bad
//! input is an error that says what was wrong (never a panic).

use onegrid_core::codec::{
    FORMAT_VERSION, decode_snapshot, decode_stored, encode_lww_snapshot, encode_or_snapshot, encode_stored,
};
use onegrid_core::{
    ClockConfig, Error, Hlc, LwwMap, LwwRecord, NodeId, OrMap, OrRecord, Snapshot, StoredValue, Timestamp, Value,
};

fn node(id: &str) -> NodeId {
    NodeId::new(id).expect("node")
}

fn clock(id: &str) -> Hlc {
    Hlc::new(node(id), ClockConfig::default())
}

fn sample_value() -> Value {
    Value::map([
        ("n", Value::from(-12)),
        ("f", Value::from(2.5)),
        ("s", Value::from("héllo 😀")),
        ("b", Value::from(vec![0u8, 1, 255])),
        ("l", Value::list([Value::Null, Value::Bool(true), Value::Int(i64::MAX)])),
    ])
    .expect("map")
}

fn sample_lww() -> LwwMap {
    let (mut m, mut a, mut b) = (LwwMap::new(), clock("a"), clock("b"));
    m.set(&mut a, 1_700_000_000_000, "obj", sample_value(), None).expect("set");
    m.set(&mut a, 1_700_000_000_000, "ttl", Value::from("short"), Some(5_000)).expect("set");
    m.set(&mut b, 1_700_000_000_001, "null", Value::Null, None).expect("set");
    m.remove(&mut b, 1_700_000_000_002, "gone").expect("remove");
    m
}

fn sample_or() -> OrMap {
    let (mut m, mut a) = (OrMap::new(), clock("a"));
    m.add(&mut a, 1_000, "k", sample_value(), None).expect("add");
    m.add(&mut a, 1_000, "k", Value::from(1), Some(60_000)).expect("add");
    m.add(&mut a, 1_000, "other", Value::from("x"), None).expect("add");
    m.remove("other", &Value::from("x")).expect("remove");
    m
}

/// Bytes of a version byte followed by postcard of `body` (test-side mirror of the layout).
fn versioned<T: serde::Serialize>(body: &T) -> Vec<u8> {
    let mut out = vec![FORMAT_VERSION];
    out.extend(postcard::to_allocvec(body).expect("encode"));
    out
}

fn decode_error(bytes: &[u8]) -> String {
    decode_snapshot(bytes).expect_err("must be rejected").to_string()
}

#[test]
fn lww_snapshots_round_trip_everything() {
    let m = sample_lww();
    let bytes = encode_lww_snapshot(&m);
    assert_eq!(bytes[0], FORMAT_VERSION);
    let Snapshot::Lww(records) = decode_snapshot(&bytes).expect("decodes") else { panic!("not an LWW snapshot") };
    let expected: Vec<(Box<str>, LwwRecord)> = m.records().into_iter().map(|(k, r)| (k.into(), r)).collect();
    assert_eq!(records, expected);
    let mut copy = LwwMap::new();
    copy.merge_all(&mut clock("c"), 0, records).expect("import");
    assert_eq!(copy.root(), m.root());
    assert_eq!(encode_lww_snapshot(&copy), bytes, "same state, same bytes");
    assert_eq!(copy.get_record("ttl").expect("kept").ttl_ms, Some(5_000), "TTL survives");
}

#[test]
fn or_snapshots_round_trip_records_and_tombstones() {
    let m = sample_or();
    let bytes = encode_or_snapshot(&m);
    let snapshot = decode_snapshot(&bytes).expect("decodes");
    let Snapshot::Or { keys, tombstones } = snapshot else { panic!("not an OR snapshot") };
    assert_eq!(tombstones, vec![Timestamp::parse("1000:2:a").expect("tag")]);
    let mut copy = OrMap::new();
    copy.merge_all(&mut clock("c"), 0, keys, &tombstones).expect("import");
    assert_eq!(copy.root(), m.root());
    assert_eq!(copy.tombstones(), m.tombstones());
    assert_eq!(encode_or_snapshot(&copy), bytes);
}

#[test]
fn a_snapshot_of_small_records_from_few_writers_is_compact() {
    let (mut m, mut a) = (LwwMap::new(), clock("writer-a"));
    for i in 0..1_000u32 {
        m.set(&mut a, 1_700_000_000_000 + u64::from(i), &format!("k{i:05}"), Value::from(i64::from(i)), None)
            .expect("set");
    }
    let bytes = encode_lww_snapshot(&m);
    // key (6) + length (1) + value (~3) + millis (6) + counter, node, ttl tags (3): well under 24 over.
    assert!(bytes.len() < 1_000 * (6 + 3 + 24), "{} bytes", bytes.len());
}

#[test]
fn stored_values_round_trip() {
    let lww = StoredValue::Lww(LwwRecord {
        value: Some(sample_value()),
        timestamp: Timestamp::parse("5:1:n").expect("ts"),
        ttl_ms: Some(9),
    });
    let tomb =
        StoredValue::Lww(LwwRecord { value: None, timestamp: Timestamp::parse("5:2:n").expect("ts"), ttl_ms: None });
    let or = StoredValue::Or(vec![OrRecord {
        value: Value::Null,
        timestamp: Timestamp::parse("7:0:m").expect("ts"),
        ttl_ms: None,
    }]);
    let tags =
        StoredValue::OrTombstones(vec![Timestamp::parse("1:0:a").expect("ts"), Timestamp::parse("2:0:b").expect("ts")]);
    for v in [lww, tomb, or, tags] {
        assert_eq!(decode_stored(&encode_stored(&v)).expect("decodes"), v);
    }
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    for bytes in [encode_lww_snapshot(&sample_lww()), encode_or_snapshot(&sample_or())] {
        for len in 0..bytes.len() {
            let err = decode_snapshot(&bytes[..len]).expect_err("truncated");
            assert!(matches!(err, Error::Decode { .. }), "{len}: {err}");
        }
    }
    let stored = encode_stored(&StoredValue::Or(vec![OrRecord {
        value: sample_value(),
        timestamp: Timestamp::parse("7:0:m").expect("ts"),
        ttl_ms: None,
    }]));
    for len in 0..stored.len() {
        assert!(decode_stored(&stored[..len]).is_err());
    }
}

#[test]
fn every_single_byte_corruption_is_handled_without_panicking() {
    let bytes = encode_or_snapshot(&sample_or());
    for at in 0..bytes.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut bad = bytes.clone();
            bad[at] ^= flip;
            // Either an error or a different valid snapshot; never a panic.
            let _ = decode_snapshot(&bad);
        }
    }
}

#[test]
fn empty_input_wrong_version_and_trailing_bytes_are_named() {
    assert_eq!(decode_error(&[]), "malformed snapshot: it is empty");
    let mut bytes = encode_lww_snapshot(&sample_lww());
    bytes[0] = 9;
    assert!(decode_error(&bytes).contains("format version 9 is not supported"));
    let mut bytes = encode_lww_snapshot(&sample_lww());
    bytes.extend([0, 0]);
    assert!(decode_error(&bytes).contains("2 unexpected bytes after the end"));
}

type LwwRow<'a> = (&'a str, Option<Value>, u64, u32, u32, Option<u64>);

fn lww_snapshot(nodes: &[&str], rows: &[LwwRow<'_>]) -> Vec<u8> {
    versioned(&(0u8, nodes, rows))
}

#[test]
fn the_hand_built_layout_decodes() {
    let bytes = lww_snapshot(&["n1"], &[("k", Some(Value::Int(1)), 5, 0, 0, None)]);
    let Snapshot::Lww(records) = decode_snapshot(&bytes).expect("valid") else { panic!("kind") };
    assert_eq!(records[0].1.timestamp, Timestamp::parse("5:0:n1").expect("ts"));
}

#[test]
fn the_raw_lww_decoder_agrees_with_the_full_one() {
    use onegrid_core::codec::decode_lww_snapshot_raw;
    let bytes = encode_lww_snapshot(&sample_lww());
    let Snapshot::Lww(full) = decode_snapshot(&bytes).expect("decodes") else { panic!("kind") };
    let raw = decode_lww_snapshot_raw(&bytes).expect("decodes").expect("an LWW snapshot");
    assert_eq!(raw.len(), full.len());
    for (r, (key, record)) in raw.iter().zip(&full) {
        assert_eq!(r.key, &**key);
        assert_eq!(r.value.as_ref().map(onegrid_core::Encoded::decode), record.value);
        assert_eq!((&r.timestamp, r.ttl_ms), (&record.timestamp, record.ttl_ms));
    }
    assert_eq!(decode_lww_snapshot_raw(&encode_or_snapshot(&sample_or())).expect("valid"), None, "OR: not its job");
    for len in 0..bytes.len() {
        assert!(decode_lww_snapshot_raw(&bytes[..len]).is_err(), "truncated at {len}");
    }
}

#[test]
fn bad_fields_are_rejected_with_what_was_wrong() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (lww_snapshot(&["bad id"], &[]), "invalid node id"),
        (lww_snapshot(&["n1"], &[("k", None, 5, 0, 1, None)]), "node index 1 is out of range"),
        (lww_snapshot(&["n1"], &[("__tombstones__", None, 5, 0, 0, None)]), "reserved"),
        (lww_snapshot(&["n1"], &[("k", None, 5, 0, 0, Some(0))]), "TTL"),
        (
            lww_snapshot(&["n1"], &[("k", Some(Value::Float(f64::NAN)), 5, 0, 0, None)]),
            "$: NaN and infinities are not allowed",
        ),
        (
            lww_snapshot(
                &["n1"],
                &[(
                    "k",
                    Some(Value::Map(vec![("b".into(), Value::Null), ("a".into(), Value::Null)].into())),
                    5,
                    0,
                    0,
                    None,
                )],
            ),
            "map keys must be unique and sorted",
        ),
        (versioned(&(7u8,)), "unknown type tag"),
        (
            lww_snapshot(&["n1"], &[("b", None, 5, 0, 0, None), ("a", None, 5, 0, 0, None)]),
            "\"a\" is repeated or out of order",
        ),
        (lww_snapshot(&["n1"], &[("a", None, 5, 0, 0, None), ("a", None, 6, 0, 0, None)]), "repeated or out of order"),
    ];
    for (bytes, expected) in cases {
        let msg = decode_error(&bytes);
        assert!(msg.starts_with("malformed snapshot"), "{msg}");
        assert!(msg.contains(expected), "expected {expected:?} in {msg:?}");
        // The import path's raw decoder refuses the same bytes.
        let raw = onegrid_core::codec::decode_lww_snapshot_raw(&bytes).expect_err(expected).to_string();
        assert!(raw.starts_with("malformed snapshot"), "{raw}");
    }
}

#[test]
fn values_nested_too_deep_are_rejected_before_recursing_further() {
    // 10 000 nested lists: tag 6 (List) and length 1, repeated, then Null.
    let mut body = vec![FORMAT_VERSION, 0, 1, 2, b'n', b'1', 1, 1, b'k', 1];
    for _ in 0..10_000 {
        body.extend([6, 1]);
    }
    body.push(0);
    body.extend([5, 0, 0, 0]);
    assert!(decode_error(&body).contains("nested deeper than 64"));
}

#[test]
fn or_records_whose_tag_is_not_their_timestamp_are_malformed() {
    type OrRow<'a> = (Value, u64, u32, u32, &'a str, Option<u64>);
    let snapshot = |tag: &str| {
        let rows: Vec<(&str, Vec<OrRow<'_>>)> = vec![("k", vec![(Value::Null, 5, 0, 0, tag, None)])];
        versioned(&(1u8, vec!["n1"], rows, Vec::<&str>::new()))
    };
    assert!(decode_snapshot(&snapshot("5:0:n1")).is_ok());
    for tag in ["5:1:n1", "05:0:n1", "5:0:n2", ""] {
        let msg = decode_error(&snapshot(tag));
        assert!(msg.contains("is not the text form of its timestamp"), "{tag:?}: {msg}");
    }
    let tombstone = versioned(&(1u8, vec!["n1"], Vec::<(&str, Vec<OrRow<'_>>)>::new(), vec!["not-a-tag"]));
    assert!(decode_error(&tombstone).contains("invalid timestamp"));
}

#[test]
fn invalid_utf8_is_named() {
    let mut bytes = lww_snapshot(&["n1"], &[("k", None, 5, 0, 0, None)]);
    let at = bytes.iter().rposition(|&b| b == b'k').expect("key byte");
    bytes[at] = 0xff;
    assert!(decode_error(&bytes).contains("not valid UTF-8"));
}

#[test]
fn a_kind_mismatch_is_reported_by_the_snapshot_kind() {
    assert_eq!(decode_snapshot(&encode_lww_snapshot(&sample_lww())).expect("ok").kind().as_str(), "lww");
    assert_eq!(decode_snapshot(&encode_or_snapshot(&sample_or())).expect("ok").kind().as_str(), "or");
}

mod encoded_values {
    use onegrid_core::Encoded;
    use onegrid_core::Value;
    use onegrid_core::codec::scan_value;

    fn bytes(v: &Value) -> Vec<u8> {
        postcard::to_allocvec(v).expect("encode")
    }

    #[test]
    fn canonical_bytes_are_adopted_as_they_are() {
        let v = Value::map([("a", Value::list([Value::Int(-5), Value::Float(0.5)])), ("b", Value::from("x"))])
            .expect("map");
        let b = bytes(&v);
        assert_eq!(scan_value(&b).expect("valid"), (b.len(), true));
        let e = Encoded::from_bytes(&b).expect("valid");
        assert_eq!(e.as_bytes(), &b[..]);
        assert_eq!(e.decode(), v);
    }

    #[test]
    fn unsorted_maps_are_made_canonical_and_duplicates_refused() {
        let unsorted = Value::Map(vec![("b".into(), Value::Null), ("a".into(), Value::Int(1))].into_boxed_slice());
        let b = bytes(&unsorted);
        assert!(!scan_value(&b).expect("valid").1);
        let e = Encoded::from_bytes(&b).expect("normalised");
        assert_eq!(e, Encoded::new(&Value::map([("a", Value::Int(1)), ("b", Value::Null)]).expect("map")));
        let dup = Value::Map(vec![("a".into(), Value::Null), ("a".into(), Value::Int(1))].into_boxed_slice());
        assert!(Encoded::from_bytes(&bytes(&dup)).expect_err("duplicate").to_string().contains("appears twice"));
    }

    #[test]
    fn nested_unsorted_maps_are_sorted_at_every_level() {
        let raw = |entries: Vec<(&str, Value)>| {
            Value::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect::<Vec<_>>().into_boxed_slice())
        };
        let inner = raw(vec![("z", Value::Int(1)), ("é", Value::Null), ("a", Value::from("x"))]);
        let value = raw(vec![
            ("b", Value::list([inner.clone(), Value::Int(2), raw(vec![("y", Value::Null), ("x", Value::Null)])])),
            ("a", inner.clone()),
            ("😀", Value::Bool(true)),
            ("\u{ff5e}", raw(vec![])),
        ]);
        let expected = value.clone().normalize().expect("normalises");
        let e = Encoded::from_bytes(&bytes(&value)).expect("canonicalised");
        assert_eq!(e.as_bytes(), Encoded::new(&expected).as_bytes());
        assert_eq!(e.decode(), expected);
        let nested_dup = raw(vec![("a", raw(vec![("k", Value::Null), ("k", Value::Int(1))]))]);
        assert!(Encoded::from_bytes(&bytes(&nested_dup)).expect_err("dup").to_string().contains("appears twice"));
    }

    #[test]
    fn bad_bytes_are_refused_with_a_reason() {
        let nan = {
            let mut b = vec![3];
            b.extend(f64::NAN.to_le_bytes());
            b
        };
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "truncated"),
            (vec![9], "unknown value type tag"),
            (vec![1, 2], "neither 0 nor 1"),
            (vec![2, 0x80, 0x00], "not minimally encoded"),
            (vec![2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02], "out of range"),
            (nan, "NaN"),
            (vec![4, 2, 0xc3, 0x28], "not valid UTF-8"),
            (vec![4, 5, b'a'], "larger than the input"),
            (vec![0, 0], "unexpected bytes after the end"),
        ];
        for (b, reason) in cases {
            let err = Encoded::from_bytes(&b).expect_err(reason).to_string();
            assert!(err.contains(reason), "{b:?}: {err}");
        }
        let mut deep = [6, 1].repeat(65);
        deep.push(0);
        assert!(Encoded::from_bytes(&deep).expect_err("deep").to_string().contains("deeper than 64"));
        let mut ok = [6, 1].repeat(64);
        ok.push(0);
        assert!(Encoded::from_bytes(&ok).is_ok());
    }
}

/// `encode_reply` is written by hand: it must give the bytes serde's derive gives, for every
/// variant and every storage request and event.
#[test]
fn hand_written_reply_encoding_matches_serde() {
    use onegrid_core::codec::{decode_reply, encode_reply};
    use onegrid_core::{MapKind, MapStatus, Reply, StorageOp, StorageRequest, WireEvent};

    let long = "k".repeat(200);
    let replies = vec![
        Reply::Done,
        Reply::Opened(0),
        Reply::Opened(u32::MAX),
        Reply::Value(None),
        Reply::Value(Some(sample_value())),
        Reply::Values(vec![]),
        Reply::Values(vec![Value::Null, sample_value(), Value::from(300), Value::from(-1.5)]),
        Reply::Tags(vec![]),
        Reply::Tags(vec!["0000000000001-00000-a".into(), long.clone()]),
        Reply::Root(0),
        Reply::Root(0xdead_beef),
        Reply::Bytes(vec![]),
        Reply::Bytes((0..=255).collect()),
        Reply::Count(0),
        Reply::Count(u64::MAX),
        Reply::Error("kind mismatch: \u{e9}".into()),
        Reply::Status(MapStatus::Loading),
        Reply::Status(MapStatus::Loaded(MapKind::Lww)),
        Reply::Status(MapStatus::Loaded(MapKind::Or)),
        Reply::Storage { requests: vec![], events: vec![] },
        Reply::Storage {
            requests: vec![
                StorageRequest { id: 1, op: StorageOp::LoadAllKeys { map: "m".into() } },
                StorageRequest {
                    id: 200,
                    op: StorageOp::LoadAll { map: long.clone(), keys: vec!["a".into(), "".into()] },
                },
                StorageRequest {
                    id: u64::MAX,
                    op: StorageOp::StoreAll {
                        map: "m".into(),
                        entries: vec![("a".into(), vec![1, 2, 3]), ("b".into(), vec![0; 300])],
                    },
                },
                StorageRequest { id: 3, op: StorageOp::DeleteAll { map: "m".into(), keys: vec!["x".into()] } },
                StorageRequest { id: 4, op: StorageOp::StoreAll { map: "e".into(), entries: vec![] } },
            ],
            events: vec![
                WireEvent::MapLoaded { map: "m".into(), count: 129 },
                WireEvent::Ready { map: "m".into(), kind: MapKind::Lww },
                WireEvent::Ready { map: "o".into(), kind: MapKind::Or },
                WireEvent::LoadFailed { map: "m".into(), error: "storage: down".into() },
                WireEvent::Flushed { flush_id: 7 },
                WireEvent::FlushFailed { flush_id: 1 << 40, error: long },
            ],
        },
    ];
    for reply in replies {
        let bytes = encode_reply(&reply);
        assert_eq!(bytes, versioned(&reply), "{reply:?}");
        assert_eq!(decode_reply(&bytes).expect("decode"), reply);
    }
}

#[test]
fn the_raw_stored_lww_decoder_agrees_with_the_full_one_and_declines_the_rest() {
    use onegrid_core::codec::{decode_stored_lww_raw, encode_stored};
    use onegrid_core::{Encoded, LwwRecord, OrRecord, StoredValue, Timestamp};
    let node = NodeId::new("writer-1").unwrap();
    let nested = Value::map([("a", Value::list([Value::from(1), Value::from(-2.5)])), ("b", Value::Null)]).unwrap();
    let records = [
        LwwRecord { value: Some(Value::from("v")), timestamp: Timestamp::new(5, 0, node.clone()), ttl_ms: None },
        LwwRecord { value: None, timestamp: Timestamp::new(6, 3, node.clone()), ttl_ms: None },
        LwwRecord {
            value: Some(nested),
            timestamp: Timestamp::new(u64::MAX >> 1, u32::MAX, node.clone()),
            ttl_ms: Some(500),
        },
    ];
    let mut nodes = Vec::new();
    for record in records {
        let bytes = encode_stored(&StoredValue::Lww(record.clone()));
        let raw = decode_stored_lww_raw(&bytes, &mut nodes).expect("an LWW record takes the fast path");
        assert_eq!(raw.value, record.value.as_ref().map(Encoded::new));
        assert_eq!((raw.timestamp, raw.ttl_ms), (record.timestamp, record.ttl_ms));
        // Anything cut short or trailing is left to the full decoder, which names what is wrong.
        assert!(decode_stored_lww_raw(&bytes[..bytes.len() - 1], &mut nodes).is_none());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_stored_lww_raw(&longer, &mut nodes).is_none());
    }
    assert_eq!(nodes.len(), 1, "one writer, one node id");
    let or = OrRecord { value: Value::from(1), timestamp: Timestamp::new(5, 0, node.clone()), ttl_ms: None };
    assert!(decode_stored_lww_raw(&encode_stored(&StoredValue::Or(vec![or])), &mut nodes).is_none());
    let tombstones = StoredValue::OrTombstones(vec![Timestamp::new(5, 0, node)]);
    assert!(decode_stored_lww_raw(&encode_stored(&tombstones), &mut nodes).is_none());
}
