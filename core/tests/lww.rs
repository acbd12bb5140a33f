//! SPEC section 3: the LWW map.

mod common;

use common::clock;
use onegrid_core::{ClockConfig, Error, ErrorKind, Hlc, LwwMap, LwwRecord, NodeId, Origin, Timestamp, Value};

fn rec(value: Option<Value>, millis: u64, counter: u32, id: &str) -> LwwRecord {
    LwwRecord { value, timestamp: Timestamp::new(millis, counter, NodeId::new(id).expect("node")), ttl_ms: None }
}

#[test]
fn set_then_get_and_overwrite() {
    let (mut m, mut c) = (LwwMap::new(), clock("a"));
    m.set(&mut c, 10, "k", Value::from("v1"), None).expect("set");
    assert_eq!(m.get("k", 10), Some(Value::from("v1")));
    m.set(&mut c, 10, "k", Value::from("v2"), None).expect("set");
    assert_eq!(m.get("k", 10), Some(Value::from("v2")));
    assert_eq!(m.get_record("k").expect("record").timestamp.counter, 1);
    assert_eq!(m.len(10), 1);
}

#[test]
fn a_stored_null_is_not_a_tombstone() {
    let (mut m, mut c) = (LwwMap::new(), clock("a"));
    m.set(&mut c, 10, "k", Value::Null, None).expect("set");
    assert_eq!(m.get("k", 10), Some(Value::Null));
    assert!(m.get_record("k").expect("record").is_live());
    assert_eq!(m.len(10), 1);
}

#[test]
fn remove_stores_a_tombstone_even_for_an_unknown_key() {
    let (mut m, mut c) = (LwwMap::new(), clock("a"));
    let ts = m.remove(&mut c, 10, "never-seen").expect("remove");
    let r = m.get_record("never-seen").expect("tombstone stored");
    assert_eq!(r.value, None);
    assert_eq!(r.timestamp, ts);
    assert_eq!(m.get("never-seen", 10), None);
    assert_eq!(m.len(10), 0);
    assert_eq!(m.record_count(), 1);
    assert_ne!(m.root(), 0, "tombstones are in the tree");
}

#[test]
fn the_reserved_key_is_refused_everywhere() {
    let (mut m, mut c) = (LwwMap::new(), clock("a"));
    assert_eq!(
        m.set(&mut c, 1, "__tombstones__", Value::Null, None),
        Err(Error::ReservedKey { key: "__tombstones__" })
    );
    assert_eq!(m.remove(&mut c, 1, "__tombstones__"), Err(Error::ReservedKey { key: "__tombstones__" }));
    let merged = m.merge(&mut c, 1, "__tombstones__", rec(Some(Value::Null), 1, 0, "b"));
    assert_eq!(merged, Err(Error::ReservedKey { key: "__tombstones__" }));
    assert_eq!(m.record_count(), 0);
    assert_eq!(c.last(), (0, 0), "a refused merge does not touch the clock");
}

#[test]
fn ttl_must_be_positive_and_is_alive_at_exactly_millis_plus_ttl() {
    let (mut m, mut c) = (LwwMap::new(), clock("a"));
    assert_eq!(m.set(&mut c, 1_000, "k", Value::from(1), Some(0)), Err(Error::InvalidTtl));
    m.set(&mut c, 1_000, "k", Value::from(1), Some(500)).expect("set");
    assert_eq!(m.get("k", 1_500), Some(Value::from(1)), "alive at millis + ttl");
    assert_eq!(m.get("k", 1_501), None, "expired one millisecond later");
    assert_eq!(m.len(1_500), 1);
    assert_eq!(m.len(1_501), 0);
    assert!(m.entries(1_501).is_empty());
    // Expired records are still stored and hashed.
    assert_eq!(m.get_record("k").expect("kept").ttl_ms, Some(500));
    assert_ne!(m.root(), 0);
}

#[test]
fn merge_accepts_only_strictly_newer_records() {
    let (mut m, mut c) = (LwwMap::new(), clock("a"));
    assert!(m.merge(&mut c, 0, "k", rec(Some(Value::from(1)), 100, 0, "b")).expect("merge").accepted);
    assert!(!m.merge(&mut c, 0, "k", rec(Some(Value::from(2)), 99, 9, "z")).expect("merge").accepted);
    assert!(m.merge(&mut c, 0, "k", rec(Some(Value::from(3)), 100, 1, "a")).expect("merge").accepted);
    assert_eq!(m.get("k", 0), Some(Value::from(3)));
}

#[test]
fn equal_timestamps_are_rejected_and_the_value_never_breaks_a_tie() {
    let (mut m, mut c) = (LwwMap::new(), clock("a"));
    m.merge(&mut c, 0, "k", rec(Some(Value::from("a")), 100, 0, "b")).expect("merge");
    let root = m.root();
    let again = m.merge(&mut c, 0, "k", rec(Some(Value::from("zzz")), 100, 0, "b")).expect("merge");
    assert!(!again.accepted);
    assert_eq!(m.get("k", 0), Some(Value::from("a")));
    assert_eq!(m.root(), root);
}

#[test]
fn ties_in_millis_and_counter_go_to_the_greater_node_id_bytes() {
    let (mut m, mut c) = (LwwMap::new(), clock("x"));
    m.merge(&mut c, 0, "k", rec(Some(Value::from("from-B")), 100, 0, "B")).expect("merge");
    assert!(m.merge(&mut c, 0, "k", rec(Some(Value::from("from-a")), 100, 0, "a")).expect("merge").accepted);
    assert!(!m.merge(&mut c, 0, "k", rec(Some(Value::from("from-B")), 100, 0, "B")).expect("merge").accepted);
    assert_eq!(m.get("k", 0), Some(Value::from("from-a")));
}

#[test]
fn every_merge_advances_the_clock_even_when_the_record_loses() {
    let (mut m, mut c) = (LwwMap::new(), clock("a"));
    m.merge(&mut c, 0, "k", rec(Some(Value::from(1)), 500, 0, "b")).expect("merge");
    let loser = rec(Some(Value::from(2)), 500, 0, "b");
    assert!(!m.merge(&mut c, 0, "k", loser).expect("merge").accepted);
    assert_eq!(c.last(), (500, 2));
    let next = m.set(&mut c, 0, "other", Value::Null, None).expect("set");
    assert!(next > Timestamp::new(500, 0, NodeId::new("b").expect("node")));
}

#[test]
fn tombstones_win_by_timestamp_and_a_newer_write_resurrects() {
    let (mut m, mut c) = (LwwMap::new(), clock("a"));
    m.merge(&mut c, 0, "k", rec(Some(Value::from(1)), 100, 0, "b")).expect("merge");
    m.merge(&mut c, 0, "k", rec(None, 200, 0, "b")).expect("merge");
    assert_eq!(m.get("k", 0), None);
    // An older write does not resurrect the key.
    assert!(!m.merge(&mut c, 0, "k", rec(Some(Value::from(2)), 150, 0, "c")).expect("merge").accepted);
    assert_eq!(m.get("k", 0), None);
    // A newer one does.
    assert!(m.merge(&mut c, 0, "k", rec(Some(Value::from(3)), 201, 0, "c")).expect("merge").accepted);
    assert_eq!(m.get("k", 0), Some(Value::from(3)));
}

#[test]
fn strict_drift_fails_a_merge_with_no_change() {
    let mut c = Hlc::new(NodeId::new("a").expect("node"), ClockConfig { max_drift_ms: 1_000, strict: true });
    let mut m = LwwMap::new();
    let err = m.merge(&mut c, 0, "k", rec(Some(Value::from(1)), 5_000, 0, "b")).expect_err("drift");
    assert!(matches!(err, Error::ClockDrift(_)));
    assert_eq!(m.record_count(), 0);
    assert_eq!(c.last(), (0, 0));
}

#[test]
fn lenient_drift_is_reported_by_the_merge() {
    let mut c = Hlc::new(NodeId::new("a").expect("node"), ClockConfig { max_drift_ms: 1_000, strict: false });
    let mut m = LwwMap::new();
    let merged = m.merge(&mut c, 0, "k", rec(Some(Value::from(1)), 5_000, 0, "b")).expect("lenient");
    assert!(merged.accepted);
    assert_eq!(merged.drift.expect("drift").ahead_ms, 5_000);
}

#[test]
fn a_strict_batch_with_one_drifting_record_applies_nothing() {
    let mut c = Hlc::new(NodeId::new("a").expect("node"), ClockConfig { max_drift_ms: 1_000, strict: true });
    let mut m = LwwMap::new();
    let batch = vec![
        ("x".into(), rec(Some(Value::from(1)), 10, 0, "b")),
        ("y".into(), rec(Some(Value::from(2)), 9_999, 0, "b")),
    ];
    assert!(matches!(m.merge_all(&mut c, 0, batch), Err(Error::ClockDrift(_))));
    assert_eq!(m.record_count(), 0);
    assert_eq!(c.last(), (0, 0));
    // A bad value anywhere in the batch also leaves everything unchanged.
    let batch = vec![
        ("x".into(), rec(Some(Value::from(1)), 10, 0, "b")),
        ("y".into(), rec(Some(Value::Float(f64::NAN)), 10, 0, "b")),
    ];
    assert!(matches!(m.merge_all(&mut c, 0, batch), Err(Error::InvalidValue { .. })));
    assert_eq!(m.record_count(), 0);
}

#[test]
fn load_from_own_storage_never_fails_for_drift_but_advances_the_clock() {
    let mut c = Hlc::new(NodeId::new("a").expect("node"), ClockConfig { max_drift_ms: 10, strict: true });
    let mut m = LwwMap::new();
    assert!(m.load(&mut c, 0, "k", rec(Some(Value::from(1)), 1_000_000, 3, "a")).expect("load"));
    assert!(c.now(0).expect("the clock has room") > Timestamp::new(1_000_000, 3, NodeId::new("a").expect("node")));
}

#[test]
fn prune_drops_only_tombstones_strictly_older() {
    let (mut m, mut c) = (LwwMap::new(), clock("a"));
    m.merge(&mut c, 0, "old", rec(None, 99, 0, "b")).expect("merge");
    m.merge(&mut c, 0, "edge", rec(None, 100, 0, "b")).expect("merge");
    m.merge(&mut c, 0, "live", rec(Some(Value::from(1)), 1, 0, "b")).expect("merge");
    let mut fresh = LwwMap::new();
    fresh.merge(&mut c, 0, "edge", rec(None, 100, 0, "b")).expect("merge");
    fresh.merge(&mut c, 0, "live", rec(Some(Value::from(1)), 1, 0, "b")).expect("merge");
    assert_eq!(m.prune(100), 1);
    assert!(m.get_record("old").is_none());
    assert!(m.get_record("edge").is_some());
    assert!(m.get_record("live").is_some());
    assert_eq!(m.root(), fresh.root(), "a pruned key leaves no trace in the tree");
}

#[test]
fn removing_then_rewriting_the_same_records_restores_the_root() {
    let (mut m, mut c) = (LwwMap::new(), clock("a"));
    m.merge(&mut c, 0, "a", rec(Some(Value::from(1)), 1, 0, "b")).expect("merge");
    let before = m.root();
    m.merge(&mut c, 0, "b", rec(Some(Value::from(2)), 1, 0, "b")).expect("merge");
    let with_b = m.root();
    m.merge(&mut c, 0, "b", rec(None, 2, 0, "b")).expect("merge");
    assert_eq!(m.prune(3), 1);
    assert_eq!(m.root(), before, "the pruned key leaves no trace");
    assert!(m.merge(&mut c, 0, "b", rec(Some(Value::from(2)), 1, 0, "b")).expect("merge").accepted);
    assert_eq!(m.root(), with_b, "rewriting the record gives the earlier root again");
}

#[test]
fn entries_and_keys_are_sorted_and_skip_tombstones() {
    let (mut m, mut c) = (LwwMap::new(), clock("a"));
    for key in ["b", "a", "c"] {
        m.set(&mut c, 1, key, Value::from(key), None).expect("set");
    }
    m.remove(&mut c, 1, "b").expect("remove");
    assert_eq!(m.live_keys(1), vec!["a", "c"]);
    assert_eq!(m.entries(1), vec![("a", Value::from("a")), ("c", Value::from("c"))]);
    let keys: Vec<&str> = m.records().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec!["a", "b", "c"]);
}

#[test]
fn invalid_values_are_refused_and_change_nothing() {
    let (mut m, mut c) = (LwwMap::new(), clock("a"));
    for bad in [Value::Float(f64::NAN), Value::Float(f64::INFINITY), Value::list([Value::Float(f64::NEG_INFINITY)])] {
        let err = m.set(&mut c, 1, "k", bad, None).expect_err("invalid");
        assert_eq!(err.kind(), ErrorKind::InvalidValue, "{err}");
    }
    let mut deep = Value::Null;
    for _ in 0..65 {
        deep = Value::list([deep]);
    }
    assert_eq!(m.set(&mut c, 1, "k", deep, None).expect_err("too deep").kind(), ErrorKind::InvalidValue);
    assert_eq!(m.record_count(), 0);
    assert_eq!(c.last(), (0, 0), "a refused set does not tick the clock");
}

#[test]
fn change_events_are_recorded_only_when_enabled() {
    let (mut m, mut c) = (LwwMap::new(), clock("a"));
    m.set(&mut c, 1, "quiet", Value::Null, None).expect("set");
    assert_eq!(m.poll_event(), None);
    m.record_events(true);
    m.set(&mut c, 1, "k", Value::from(1), None).expect("set");
    m.merge(&mut c, 1, "r", rec(Some(Value::from(2)), 1, 0, "b")).expect("merge");
    m.merge(&mut c, 1, "r", rec(Some(Value::from(2)), 0, 0, "b")).expect("merge"); // loses: no event
    let e1 = m.poll_event().expect("event");
    assert_eq!((e1.key.as_str(), e1.origin), ("k", Origin::Local));
    let e2 = m.poll_event().expect("event");
    assert_eq!((e2.key.as_str(), e2.origin), ("r", Origin::Remote));
    assert_eq!(m.poll_event(), None);
}
