//! SPEC section 7 and the codec: snapshots and stored values round-trip, and every kind of bad
//! input is an error that says what was wrong (never a panic).

mod common;

use common::clock;
use onegrid_core::codec::{
    FORMAT_VERSION, decode_snapshot, decode_stored, encode_lww_rows, encode_lww_snapshot, encode_or_snapshot,
    encode_stored,
};
use onegrid_core::{
    Encoded, Error, ErrorKind, Hlc, LwwMap, LwwRecord, NodeId, OrMap, OrRecord, Snapshot, StoredValue, Timestamp, Value,
};

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

/// The message of a refused snapshot, after checking it was refused as `MALFORMED` (tests then
/// check the message names the defect: these errors are about the bytes, so saying which is
/// wrong is the message's job).
fn decode_error(bytes: &[u8]) -> String {
    let err = decode_snapshot(bytes).expect_err("must be rejected");
    assert_eq!(err.kind(), ErrorKind::Malformed, "{err}");
    err.to_string()
}

/// The message of a value refused by `Encoded::from_bytes`, after checking its kind.
fn value_error(bytes: &[u8], kind: ErrorKind) -> String {
    let err = Encoded::from_bytes(bytes).expect_err("must be rejected");
    assert_eq!(err.kind(), kind, "{err}");
    err.to_string()
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
fn a_snapshot_of_many_small_objects_takes_a_few_bytes_a_record() {
    // The benchmarks' shape: keys `key-<i>`, values `{ n, name, done }`, one writer, one batch.
    let (mut m, mut a) = (LwwMap::new(), clock("writer-a"));
    let entries = (0..10_000i64)
        .map(|i| {
            let value =
                Value::map([("n", Value::from(i)), ("name", Value::from("item")), ("done", Value::Bool(i % 2 == 0))]);
            (format!("key-{i}"), value.expect("map"))
        })
        .collect();
    m.set_many(&mut a, 1_700_000_000_000, entries).expect("set");
    let bytes = encode_lww_snapshot(&m);
    // Row by row this took 48 bytes a record.
    assert!(bytes.len() < 10_000 * 4, "{} bytes", bytes.len());
    let Snapshot::Lww(records) = decode_snapshot(&bytes).expect("decodes") else { panic!("kind") };
    assert_eq!(records.len(), 10_000);
    let original: Vec<(Box<str>, LwwRecord)> = m.records().into_iter().map(|(k, r)| (k.into(), r)).collect();
    assert_eq!(records, original);
}

/// A small random generator, so the round trips below cover many layouts yet fail reproducibly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn value(&mut self, depth: u32) -> Value {
        match self.below(if depth > 2 { 6 } else { 9 }) {
            0 => Value::Null,
            1 => Value::Bool(self.below(2) == 0),
            2 => Value::Int([0, -1, 7, i64::MIN, i64::MAX, self.next() as i64][self.below(6) as usize]),
            3 => Value::from([0.5, -2.25, 1e300, f64::MIN_POSITIVE][self.below(4) as usize]),
            4 => Value::from(["", "item", "héllo 😀", "a longer string, repeated"][self.below(4) as usize]),
            5 => Value::from(vec![0u8, 255, self.below(256) as u8]),
            6 => Value::list((0..self.below(3)).map(|_| self.value(depth + 1))),
            _ => {
                // Few key sets, so objects share shapes; sometimes many, past the shape table.
                let wide = self.below(8) == 0;
                let keys = ["a", "b", "name", "é", "ê"];
                let count = self.below(4);
                let entries: Vec<(String, Value)> = (0..count)
                    .map(|i| {
                        let key = if wide { format!("k{}", self.below(1_000)) } else { keys[i as usize].to_string() };
                        (key, self.value(depth + 1))
                    })
                    .collect();
                Value::map(entries.into_iter().collect::<std::collections::BTreeMap<_, _>>()).expect("map")
            }
        }
    }
}

#[test]
fn lww_snapshots_of_random_maps_round_trip() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..60 {
        let mut m = LwwMap::new();
        let mut clocks: Vec<Hlc> = ["a", "node-b", "c.3"].iter().map(|id| clock(id)).collect();
        let size = [0, 1, 2, 40, 300][round % 5];
        for _ in 0..size {
            // Keys share prefixes, some split inside a two-byte character ("é" and "ê").
            let key = format!("{}{}", ["", "k", "ké", "kê", "key-"][rng.below(5) as usize], rng.below(500));
            let c = &mut clocks[rng.below(3) as usize];
            let wall = [0, 1_700_000_000_000, u64::MAX - 10][rng.below(3) as usize] + rng.below(3);
            match rng.below(6) {
                0 => {
                    m.remove(c, wall, &key).expect("remove");
                }
                1 => {
                    m.set(c, wall, &key, rng.value(0), Some(1 + rng.below(u64::MAX - 1))).expect("set");
                }
                _ => {
                    m.set(c, wall, &key, rng.value(0), None).expect("set");
                }
            }
        }
        let bytes = encode_lww_snapshot(&m);
        let Snapshot::Lww(records) = decode_snapshot(&bytes).expect("decodes") else { panic!("kind") };
        let original: Vec<(Box<str>, LwwRecord)> = m.records().into_iter().map(|(k, r)| (k.into(), r)).collect();
        assert_eq!(records, original, "round {round}");
        let mut copy = LwwMap::new();
        let mut reader = clock("reader");
        copy.merge_all(&mut reader, 0, records).expect("merge");
        assert_eq!(encode_lww_snapshot(&copy), bytes, "round {round}: same records, same bytes");
    }
}

#[test]
fn every_corruption_of_an_lww_snapshot_is_handled_without_panicking() {
    let mut rng = Rng(7);
    let mut m = LwwMap::new();
    let mut c = clock("a");
    for i in 0..40 {
        m.set(&mut c, 1_000, &format!("key-{i}"), rng.value(0), None).expect("set");
    }
    m.remove(&mut c, 1_000, "gone").expect("remove");
    let bytes = encode_lww_snapshot(&m);
    for at in 0..bytes.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut bad = bytes.clone();
            bad[at] ^= flip;
            // Either an error or another valid snapshot; never a panic, and never a value that
            // would not pass the checks every value passes.
            if let Ok(Some(snapshot)) = onegrid_core::codec::decode_lww_snapshot_raw(&bad) {
                for value in snapshot.records().iter().filter_map(|r| r.value.as_ref()) {
                    let checked = Encoded::take_canonical(value.as_bytes());
                    assert!(matches!(checked, Ok((_, []))), "byte {at} ^ {flip:#x}: {checked:?}");
                }
            }
        }
    }
    for len in 0..bytes.len() {
        assert!(matches!(decode_snapshot(&bytes[..len]), Err(Error::Decode { .. })), "truncated at {len}");
    }
}

/// A one-record LWW snapshot ("k" = 1, written at 10:0 by n1), column by column as
/// `lww_columns` lays it out, so one test can break one column at a time.
fn one_record_columns() -> Vec<Vec<u8>> {
    vec![
        vec![FORMAT_VERSION, 2, 1, 2, b'n', b'1', 1], // version, tag, nodes ["n1"], 1 record
        vec![2, 1, 0],                                // key prefix lengths: one run of 0
        vec![2, 1, 2],                                // key suffix lengths: one run of +1
        vec![1, b'k'],                                // key suffixes
        vec![2, 1, 20],                               // millis: 10
        vec![2, 1, 0],                                // counters
        vec![2, 1, 0],                                // node indexes
        vec![2, 1, 0],                                // TTLs: none
        vec![2, 1, 2],                                // shapes: 1, the plain column
        vec![0],                                      // no shapes in the table
        vec![2, 1, 4],                                // plain types: 2, an integer
        vec![2, 1, 4],                                // integers: one run of +2, to zigzag 2, that is 1
        vec![0],                                      // booleans
        vec![0],                                      // floats
        vec![0],                                      // string numbers
        vec![0],                                      // string texts
        vec![0],                                      // whole values
    ]
}

#[test]
fn a_snapshot_may_not_decode_to_more_than_the_message_limit() {
    // Keys "a", "aa", "aaa", ...: each shares all of the one before and adds one byte, so n input
    // bytes stand for n * n / 2 bytes of keys. 12 000 of them would be 72 MB.
    let n: u64 = 12_000;
    let mut columns = one_record_columns();
    let runs = |pairs: &[(u64, u64)]| {
        let mut part = Vec::new();
        for &(run, zigzag) in pairs {
            onegrid_core::codec::put_varint(&mut part, run);
            onegrid_core::codec::put_varint(&mut part, zigzag);
        }
        let mut out = Vec::new();
        onegrid_core::codec::put_varint(&mut out, part.len() as u64);
        out.extend(part);
        out
    };
    columns[0] = vec![FORMAT_VERSION, 2, 1, 2, b'n', b'1'];
    onegrid_core::codec::put_varint(&mut columns[0], n);
    columns[1] = runs(&[(1, 0), (n - 1, 2)]); // shared prefix 0, then one more each time
    columns[2] = runs(&[(1, 2), (n - 1, 0)]); // suffix length 1 throughout
    columns[3] = vec![];
    onegrid_core::codec::put_varint(&mut columns[3], n);
    columns[3].extend(std::iter::repeat_n(b'a', n as usize));
    for column in &mut columns[4..8] {
        *column = runs(&[(n, 0)]); // millis, counters, nodes, TTLs: 0
    }
    columns[8] = runs(&[(n, 0)]); // tombstones
    columns[10] = vec![0]; // no plain values
    columns[11] = vec![0];
    let bytes = columns.concat();
    assert!(bytes.len() < 13_000);
    let msg = decode_error(&bytes);
    assert!(msg.contains("more than 67108864 bytes (64 MiB or 64 times its size"), "{msg}");
}

#[test]
fn broken_columns_are_rejected_with_what_was_wrong() {
    let snapshot = |edit: &dyn Fn(&mut Vec<Vec<u8>>)| {
        let mut columns = one_record_columns();
        edit(&mut columns);
        columns.concat()
    };
    let Snapshot::Lww(records) = decode_snapshot(&snapshot(&|_| {})).expect("the unbroken layout decodes") else {
        panic!("kind")
    };
    assert_eq!(records[0].0.as_ref(), "k");
    assert_eq!(records[0].1.value, Some(Value::Int(1)));
    assert_eq!(records[0].1.timestamp, Timestamp::parse("10:0:n1").expect("ts"));

    type Edit = Box<dyn Fn(&mut Vec<Vec<u8>>)>;
    let cases: Vec<(Edit, &str)> = vec![
        (Box::new(|c| c[0][6] = 3), "the record count is larger than the keys allow"),
        (Box::new(|c| c[1] = vec![2, 1, 2]), "shares more bytes than the previous key has"),
        (Box::new(|c| c[3] = vec![1, 0xff]), "a key is not valid UTF-8"),
        (Box::new(|c| c[4] = vec![2, 0, 20]), "a run of no numbers"),
        (Box::new(|c| c[4] = vec![4, 1, 20, 1, 2]), "a column holds more than its records use"),
        (Box::new(|c| c[5] = vec![6, 1, 0xfe, 0xff, 0xff, 0xff, 0x3f]), "a counter is out of range"),
        (Box::new(|c| c[6] = vec![2, 1, 2]), "node index 1 is out of range"),
        (Box::new(|c| c[8] = vec![2, 1, 6]), "a value refers to a shape the table does not have"),
        (Box::new(|c| c[10] = vec![2, 1, 12]), "a value has an unknown type"),
        (Box::new(|c| c[10] = vec![2, 1, 2]), "a column is missing booleans"),
        (
            Box::new(|c| (c[10], c[11], c[12]) = (vec![2, 1, 2], vec![0], vec![1, 0b10])),
            "bits set after its last boolean",
        ),
        (Box::new(|c| (c[10], c[14]) = (vec![2, 1, 8], vec![2, 1, 2])), "a string refers to one not yet given"),
        (Box::new(|c| (c[10], c[13]) = (vec![2, 1, 6], vec![8, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f])), "NaN"),
        (Box::new(|c| c[11] = vec![0]), "it is truncated"),
        (Box::new(|c| c[16] = vec![5, 0]), "a length is larger than the input"),
        (Box::new(|c| c.push(vec![0])), "1 unexpected bytes after the end"),
    ];
    for (edit, expected) in cases {
        let bytes = snapshot(&*edit);
        let msg = decode_error(&bytes);
        assert!(msg.starts_with("malformed snapshot"), "{msg}");
        assert!(msg.contains(expected), "expected {expected:?} in {msg:?}");
    }
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

/// An LWW snapshot of exactly these rows: nothing checked, nothing sorted.
fn lww_snapshot(nodes: &[&str], rows: &[LwwRow<'_>]) -> Vec<u8> {
    let values: Vec<Option<Encoded>> = rows.iter().map(|r| r.1.as_ref().map(Encoded::new)).collect();
    let rows: Vec<_> = rows
        .iter()
        .zip(&values)
        .map(|(&(key, _, millis, counter, node, ttl), value)| {
            (key, value.as_ref().map(Encoded::as_bytes), millis, counter, node, ttl)
        })
        .collect();
    encode_lww_rows(nodes, &rows)
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
    assert_eq!(raw.records().len(), full.len());
    for (r, (key, record)) in raw.records().iter().zip(&full) {
        assert_eq!(raw.key(r), &**key);
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
        (
            lww_snapshot(&["n1"], &[("k", Some(Value::Float(f64::NAN)), 5, 0, 0, None)]),
            "NaN and infinities are not allowed",
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
        (
            // Unsorted keys inside a value kept whole (an object in a list).
            lww_snapshot(
                &["n1"],
                &[(
                    "k",
                    Some(Value::List(
                        vec![Value::Map(vec![("b".into(), Value::Null), ("a".into(), Value::Null)].into())].into(),
                    )),
                    5,
                    0,
                    0,
                    None,
                )],
            ),
            "map keys must be unique and sorted",
        ),
        (
            // NaN in an object's field column.
            lww_snapshot(
                &["n1"],
                &[("k", Some(Value::Map(vec![("x".into(), Value::Float(f64::INFINITY))].into())), 5, 0, 0, None)],
            ),
            "NaN and infinities are not allowed",
        ),
        (versioned(&(7u8,)), "unknown type tag"),
        (
            lww_snapshot(&["n1"], &[("b", None, 5, 0, 0, None), ("a", None, 5, 0, 0, None)]),
            "\"a\" is repeated or out of order",
        ),
        (lww_snapshot(&["n1"], &[("a", None, 5, 0, 0, None), ("a", None, 6, 0, 0, None)]), "repeated or out of order"),
        (
            // The empty key twice: the first record's key being empty must not skip the order check.
            lww_snapshot(&["n1"], &[("", None, 5, 0, 0, None), ("", None, 6, 0, 0, None), ("ab", None, 7, 0, 0, None)]),
            "repeated or out of order",
        ),
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
    let mut value = Vec::new();
    for _ in 0..10_000 {
        value.extend([6, 1]);
    }
    value.push(0);
    let body = encode_lww_rows(&["n1"], &[("k", Some(&value), 5, 0, 0, None)]);
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
    use onegrid_core::{Encoded, ErrorKind};

    use super::value_error;
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
        assert!(value_error(&bytes(&dup), ErrorKind::InvalidValue).contains("appears twice"));
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
        assert!(value_error(&bytes(&nested_dup), ErrorKind::InvalidValue).contains("appears twice"));
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
            let err = value_error(&b, ErrorKind::Malformed);
            assert!(err.contains(reason), "{b:?}: the message names the defect: {err}");
        }
        let mut deep = [6, 1].repeat(65);
        deep.push(0);
        assert!(value_error(&deep, ErrorKind::Malformed).contains("deeper than 64"));
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
    use onegrid_core::{ErrorKind, MapKind, MapStatus, Reply, StorageOp, StorageRequest, WireError, WireEvent};

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
        Reply::Error(onegrid_core::WireError::new(onegrid_core::ErrorKind::KindMismatch, "kind mismatch: \u{e9}")),
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
                WireEvent::LoadFailed { map: "m".into(), error: WireError::new(ErrorKind::Storage, "down") },
                WireEvent::Flushed { flush_id: 7 },
                WireEvent::FlushFailed { flush_id: 1 << 40, error: WireError::new(ErrorKind::KindMismatch, long) },
                WireEvent::Refused {
                    map: "m".into(),
                    asked: MapKind::Or,
                    error: WireError::new(ErrorKind::KindMismatch, "kind mismatch"),
                },
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
