//! SPEC section 4: the OR map.

mod common;

use common::{clock, ts};
use onegrid_core::{ClockConfig, Error, Hlc, NodeId, OrMap, OrRecord, Origin, Timestamp, Value};

fn rec(value: Value, millis: u64, counter: u32, id: &str) -> OrRecord {
    OrRecord { value, timestamp: ts(millis, counter, id), ttl_ms: None }
}

#[test]
fn add_twice_gives_two_records_tagged_by_their_timestamps() {
    let (mut m, mut c) = (OrMap::new(), clock("a"));
    let r1 = m.add(&mut c, 10, "k", Value::from("x"), None).expect("add");
    let r2 = m.add(&mut c, 10, "k", Value::from("x"), None).expect("add");
    assert_eq!(r1.tag(), "10:0:a");
    assert_eq!(r2.tag(), "10:1:a");
    assert_eq!(m.get("k", 10), vec![&Value::from("x"), &Value::from("x")]);
}

#[test]
fn get_returns_values_oldest_first_whatever_the_arrival_order() {
    let (mut m, mut c) = (OrMap::new(), clock("z"));
    m.apply(&mut c, 0, "k", rec(Value::from("late"), 30, 0, "b")).expect("apply");
    m.apply(&mut c, 0, "k", rec(Value::from("early"), 10, 0, "b")).expect("apply");
    m.apply(&mut c, 0, "k", rec(Value::from("middle"), 20, 0, "b")).expect("apply");
    assert_eq!(m.get("k", 0), vec![&Value::from("early"), &Value::from("middle"), &Value::from("late")]);
}

#[test]
fn remove_tombstones_every_structurally_equal_value_and_returns_tags() {
    let (mut m, mut c) = (OrMap::new(), clock("a"));
    let obj = || Value::map([("id", Value::from(7)), ("tags", Value::list([Value::from("x")]))]).expect("map");
    m.add(&mut c, 10, "k", obj(), None).expect("add");
    m.add(&mut c, 10, "k", Value::from("keep"), None).expect("add");
    m.add(&mut c, 10, "k", obj(), Some(1)).expect("add"); // expired by wall 20, still removed
    let removed = m.remove("k", &obj()).expect("remove");
    assert_eq!(removed, vec!["10:0:a".to_string(), "10:2:a".to_string()]);
    assert_eq!(m.get("k", 10), vec![&Value::from("keep")]);
    assert_eq!(m.tombstones(), removed);
    // Numbers compare by value: an integral float equals the integer.
    m.add(&mut c, 10, "n", Value::Int(1), None).expect("add");
    assert_eq!(m.remove("n", &Value::Float(1.0)).expect("remove").len(), 1);
}

#[test]
fn remove_of_an_unknown_key_or_value_does_nothing() {
    let (mut m, mut c) = (OrMap::new(), clock("a"));
    m.add(&mut c, 10, "k", Value::from(1), None).expect("add");
    let root = m.root();
    assert!(m.remove("other", &Value::from(1)).expect("remove").is_empty());
    assert!(m.remove("k", &Value::from(2)).expect("remove").is_empty());
    assert_eq!(m.root(), root);
    assert!(m.tombstones().is_empty());
}

#[test]
fn a_remove_that_arrives_before_its_add_wins() {
    let (mut m, mut c) = (OrMap::new(), clock("z"));
    assert!(m.apply_tombstone(&ts(10, 0, "b")));
    let merged = m.apply(&mut c, 0, "k", rec(Value::from(1), 10, 0, "b")).expect("apply");
    assert!(!merged.accepted);
    assert!(m.get("k", 0).is_empty());
    assert_eq!(m.root(), 0, "tombstones are not hashed");
    assert_eq!(c.last(), (0, 0), "a refused record does not update the clock");
}

#[test]
fn applying_twice_is_harmless() {
    let (mut m, mut c) = (OrMap::new(), clock("z"));
    assert!(m.apply(&mut c, 0, "k", rec(Value::from(1), 10, 0, "b")).expect("apply").accepted);
    let root = m.root();
    assert!(!m.apply(&mut c, 0, "k", rec(Value::from(1), 10, 0, "b")).expect("apply").accepted);
    assert_eq!(m.get("k", 0).len(), 1);
    assert_eq!(m.root(), root);
    assert!(m.apply_tombstone(&ts(9, 0, "q")), "a new tombstone");
    assert!(!m.apply_tombstone(&ts(9, 0, "q")), "the same tombstone again is not new");
}

#[test]
fn concurrent_add_and_remove_keeps_the_unobserved_add() {
    let (mut a, mut ca) = (OrMap::new(), clock("a"));
    let (mut b, mut cb) = (OrMap::new(), clock("b"));
    let first = a.add(&mut ca, 10, "k", Value::from("x"), None).expect("add");
    b.apply(&mut cb, 10, "k", first.clone()).expect("apply");
    // Concurrently: b removes "x" (observing only `first`), a adds "x" again.
    let tags = b.remove("k", &Value::from("x")).expect("remove");
    assert_eq!(tags, vec![first.tag()]);
    let second = a.add(&mut ca, 11, "k", Value::from("x"), None).expect("add");
    // Exchange: tombstones and records both ways.
    let tombstones: Vec<Timestamp> = tags.iter().map(|t| Timestamp::parse(t).expect("tag")).collect();
    a.merge_key(&mut ca, 12, "k", vec![], &tombstones).expect("merge");
    b.merge_key(&mut cb, 12, "k", vec![first, second.clone()], &[]).expect("merge");
    assert_eq!(a.get("k", 12), vec![&Value::from("x")]);
    assert_eq!(b.get("k", 12), vec![&Value::from("x")]);
    assert_eq!(a.get_records("k"), &[second][..]);
    assert_eq!(a.root(), b.root());
}

#[test]
fn merge_key_reports_added_records_and_new_tombstones() {
    let (mut m, mut c) = (OrMap::new(), clock("z"));
    m.apply_tombstone(&ts(1, 0, "b"));
    let outcome = m
        .merge_key(
            &mut c,
            0,
            "k",
            vec![rec(Value::from(1), 1, 0, "b"), rec(Value::from(2), 2, 0, "b"), rec(Value::from(3), 3, 0, "b")],
            &[ts(1, 0, "b"), ts(3, 0, "b")],
        )
        .expect("merge");
    assert_eq!(outcome.added, 1);
    assert_eq!(outcome.new_tombstones, 1);
    assert_eq!(m.get("k", 0), vec![&Value::from(2)]);
}

#[test]
fn strict_merge_key_is_all_or_nothing() {
    let mut c = Hlc::new(NodeId::new("z").expect("node"), ClockConfig { max_drift_ms: 100, strict: true });
    let mut m = OrMap::new();
    let err = m
        .merge_key(
            &mut c,
            0,
            "k",
            vec![rec(Value::from(1), 1, 0, "b"), rec(Value::from(2), 500, 0, "b")],
            &[ts(7, 0, "q")],
        )
        .expect_err("drift");
    assert!(matches!(err, Error::ClockDrift(_)));
    assert!(m.get("k", 0).is_empty());
    assert!(m.tombstones().is_empty(), "not even the tombstones were applied");
    // A drifting record that is tombstoned in the same batch is refused, so it is not drift.
    m.merge_key(&mut c, 0, "k", vec![rec(Value::from(2), 500, 0, "b")], &[ts(500, 0, "b")]).expect("no drift");
}

#[test]
fn ttl_filters_reads_only() {
    let (mut m, mut c) = (OrMap::new(), clock("a"));
    assert_eq!(m.add(&mut c, 100, "k", Value::from(1), Some(0)), Err(Error::InvalidTtl));
    m.add(&mut c, 100, "k", Value::from(1), Some(50)).expect("add");
    assert_eq!(m.get("k", 150).len(), 1);
    assert!(m.get("k", 151).is_empty());
    assert_eq!(m.len(151), 0);
    assert_eq!(m.get_records("k").len(), 1, "still stored");
    assert_ne!(m.root(), 0, "still hashed");
}

#[test]
fn prune_forgets_only_tombstones_strictly_older() {
    let mut m = OrMap::new();
    m.apply_tombstone(&ts(99, 5, "b"));
    m.apply_tombstone(&ts(100, 0, "b"));
    assert_eq!(m.prune(100), 1);
    assert_eq!(m.tombstones(), vec!["100:0:b".to_string()]);
}

#[test]
fn remove_then_readd_of_the_same_record_set_restores_the_root() {
    let (mut m, mut c) = (OrMap::new(), clock("z"));
    m.apply(&mut c, 0, "a", rec(Value::from(1), 1, 0, "b")).expect("apply");
    let before = m.root();
    m.apply(&mut c, 0, "b", rec(Value::from(2), 2, 0, "b")).expect("apply");
    assert_ne!(m.root(), before);
    let with_b = m.root();
    m.remove("b", &Value::from(2)).expect("remove");
    assert_eq!(m.root(), before, "a key with no live records has no entry");
    assert!(m.leaf_keys("").contains(&"a") && !m.leaf_keys("").contains(&"b"));
    // The same record set again: the same tag, so its tombstone must be forgotten first.
    assert!(!m.apply(&mut c, 0, "b", rec(Value::from(2), 2, 0, "b")).expect("apply").accepted, "tombstoned");
    assert_eq!(m.prune(3), 1);
    assert!(m.apply(&mut c, 0, "b", rec(Value::from(2), 2, 0, "b")).expect("apply").accepted);
    assert_eq!(m.root(), with_b, "re-adding the record gives the earlier root again");
}

#[test]
fn the_reserved_key_is_refused() {
    let (mut m, mut c) = (OrMap::new(), clock("a"));
    assert_eq!(
        m.add(&mut c, 1, "__tombstones__", Value::Null, None),
        Err(Error::ReservedKey { key: "__tombstones__" })
    );
    assert_eq!(m.remove("__tombstones__", &Value::Null), Err(Error::ReservedKey { key: "__tombstones__" }));
}

#[test]
fn entries_are_sorted_and_events_flow_when_enabled() {
    let (mut m, mut c) = (OrMap::new(), clock("a"));
    m.record_events(true);
    m.add(&mut c, 1, "b", Value::from(1), None).expect("add");
    m.add(&mut c, 1, "a", Value::from(2), None).expect("add");
    m.remove("b", &Value::from(1)).expect("remove");
    m.apply_tombstone(&ts(1, 1, "a"));
    assert!(m.entries(1).is_empty());
    let events: Vec<(String, Origin)> = std::iter::from_fn(|| m.poll_event()).map(|e| (e.key, e.origin)).collect();
    assert_eq!(
        events,
        vec![
            ("b".into(), Origin::Local),
            ("a".into(), Origin::Local),
            ("b".into(), Origin::Local),
            ("a".into(), Origin::Remote)
        ]
    );
    m.add(&mut c, 1, "d", Value::from(1), None).expect("add");
    m.add(&mut c, 1, "c", Value::from(1), None).expect("add");
    assert_eq!(m.live_keys(1), vec!["c", "d"]);
}
