//! SPEC section 6: the storage manager, driven by an in-test fake adapter.

mod common;

use common::storage::*;
use common::{node, ts};
use onegrid_core::{
    AnyMap, ClockConfig, Command, Error, ErrorKind, Grid, LwwRecord, MapKind, MapStatus, OrRecord, Reply,
    StorageConfig, StorageEvent, StorageManager, StorageOp, StorageResult, StoredValue, Timestamp, Value, WireEvent,
};

#[test]
fn get_map_returns_before_the_load_ends_and_is_loading_meanwhile() {
    let (mut m, mut fake) = (manager(), Fake::default());
    fake.put("m", "k", &StoredValue::Lww(lww_rec(Value::from(1), 5, "x")));
    assert_eq!(m.get_map("m", None, WALL), Ok(MapStatus::Loading));
    assert!(m.is_map_loading("m"));
    assert!(m.has_map("m"));
    fake.hold(&mut m); // LoadAllKeys taken, not answered
    assert!(m.is_map_loading("m"));
    fake.run(&mut m);
    assert!(!m.is_map_loading("m"));
    assert_eq!(m.get_map("m", None, WALL), Ok(MapStatus::Loaded(MapKind::Lww)));
    assert_eq!(m.lww("m").expect("lww").get("k", WALL), Some(Value::from(1)));
    assert_eq!(m.map_names(), vec!["m"]);
}

#[test]
fn concurrent_get_map_calls_share_one_load() {
    let (mut m, mut fake) = (manager(), Fake::default());
    fake.put("m", "k", &StoredValue::Lww(lww_rec(Value::from(1), 5, "x")));
    for _ in 0..3 {
        assert_eq!(m.get_map("m", None, WALL), Ok(MapStatus::Loading));
    }
    fake.hold(&mut m);
    assert_eq!(fake.held.len(), 1);
    fake.run(&mut m);
    assert_eq!(fake.count(is_load_keys), 1);
    assert_eq!(fake.count(|op| matches!(op, StorageOp::LoadAll { .. })), 1);
    assert_eq!(events(&mut m), loaded("m", 1, MapKind::Lww));
}

#[test]
fn a_stored_or_value_makes_the_map_or() {
    let (mut m, mut fake) = (manager(), Fake::default());
    let r = OrRecord { value: Value::from("v"), timestamp: ts(5, 0, "x"), ttl_ms: None };
    fake.put("m", "k", &StoredValue::Or(vec![r]));
    load(&mut m, &mut fake, "m", None);
    assert_eq!(m.get_map("m", None, WALL), Ok(MapStatus::Loaded(MapKind::Or)));
    assert_eq!(m.or("m").expect("or").get("k", WALL), vec![&Value::from("v")]);
}

#[test]
fn the_tombstones_key_alone_makes_the_map_or() {
    let (mut m, mut fake) = (manager(), Fake::default());
    fake.put("m", "__tombstones__", &StoredValue::OrTombstones(vec![ts(5, 0, "x")]));
    let ev = load(&mut m, &mut fake, "m", None);
    assert_eq!(m.get_map("m", None, WALL), Ok(MapStatus::Loaded(MapKind::Or)));
    assert!(m.or("m").expect("or").is_tombstoned(&ts(5, 0, "x")));
    // It loaded a stored value, with no key other than __tombstones__.
    assert_eq!(ev, loaded("m", 0, MapKind::Or));
}

#[test]
fn a_map_with_nothing_stored_takes_the_hint_else_lww() {
    let (mut m, mut fake) = (manager(), Fake::default());
    load(&mut m, &mut fake, "a", Some(MapKind::Or));
    load(&mut m, &mut fake, "b", None);
    assert_eq!(m.get_map("a", None, WALL), Ok(MapStatus::Loaded(MapKind::Or)));
    assert_eq!(m.get_map("b", None, WALL), Ok(MapStatus::Loaded(MapKind::Lww)));
}

#[test]
fn a_hint_that_disagrees_with_the_stored_map_is_a_kind_mismatch() {
    let (mut m, mut fake) = (manager(), Fake::default());
    fake.put("m", "k", &StoredValue::Lww(lww_rec(Value::from(1), 5, "x")));
    // While it loads, the hint binds nothing: the load takes the stored kind and refuses the caller.
    let ev = load(&mut m, &mut fake, "m", Some(MapKind::Or));
    let [
        StorageEvent::MapLoaded { .. },
        StorageEvent::Refused { asked: MapKind::Or, error, .. },
        StorageEvent::Ready { kind: MapKind::Lww, .. },
    ] = &ev[..]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(error.kind().code(), "KIND_MISMATCH");
    // Asking a loaded map for the other kind is an error at once.
    let err = m.get_map("m", Some(MapKind::Or), WALL).expect_err("mismatch");
    assert_eq!(err.kind(), ErrorKind::KindMismatch);
    let text = err.to_string();
    assert!(text.contains("LWW") && text.contains("OR"), "the message names both kinds: {text}");
}

#[test]
fn a_caller_without_a_hint_gets_the_stored_kind_whatever_another_caller_asked_for() {
    let (mut m, mut fake) = (manager(), Fake::default());
    fake.put("m", "k", &StoredValue::Lww(lww_rec(Value::from(1), 5, "x")));
    assert_eq!(m.get_map("m", None, WALL), Ok(MapStatus::Loading));
    assert_eq!(m.get_map("m", Some(MapKind::Or), WALL), Ok(MapStatus::Loading));
    fake.run(&mut m);
    let ev = events(&mut m);
    assert!(
        matches!(
            &ev[..],
            [
                StorageEvent::MapLoaded { .. },
                StorageEvent::Refused { asked: MapKind::Or, .. },
                StorageEvent::Ready { kind: MapKind::Lww, .. }
            ]
        ),
        "{ev:?}"
    );
    assert_eq!(m.lww("m").expect("lww").get("k", WALL), Some(Value::from(1)));
}

#[test]
fn an_early_handle_binds_the_load_and_finding_the_other_kind_fails_it() {
    let (mut m, mut fake) = (manager(), Fake::default());
    fake.put("m", "k", &StoredValue::Lww(lww_rec(Value::from(1), 5, "x")));
    m.open("m", MapKind::Or, WALL).expect("an OR handle while it loads");
    let ev = {
        fake.run(&mut m);
        events(&mut m)
    };
    let [StorageEvent::LoadFailed { error, .. }] = &ev[..] else { panic!("one LoadFailed expected: {ev:?}") };
    assert_eq!(error.kind(), ErrorKind::KindMismatch, "{error}");
    assert!(m.map("m").is_none(), "no map is served after a failed load (no early writes to keep)");
    // Without the wrong handle, the retry loads it as LWW.
    let ev = load(&mut m, &mut fake, "m", None);
    assert_eq!(ev, loaded("m", 1, MapKind::Lww));
}

#[test]
fn is_related_key_filters_what_is_loaded_but_tombstones_always_load() {
    let config = StorageConfig { is_related_key: Some(Box::new(|_map: &str, key: &str| key.starts_with("mine"))) };
    let mut m = StorageManager::new(node("me"), ClockConfig::default(), config);
    let mut fake = Fake::default();
    let rec = |key: &str, millis| OrRecord { value: Value::from(key), timestamp: ts(millis, 0, "x"), ttl_ms: None };
    fake.put("m", "mine-1", &StoredValue::Or(vec![rec("mine-1", 5)]));
    fake.put("m", "theirs", &StoredValue::Or(vec![rec("theirs", 6)]));
    fake.put("m", "__tombstones__", &StoredValue::OrTombstones(vec![ts(1, 0, "x")]));
    let ev = load(&mut m, &mut fake, "m", None);
    let asked: Vec<&Vec<String>> = fake
        .calls
        .iter()
        .filter_map(|op| if let StorageOp::LoadAll { keys, .. } = op { Some(keys) } else { None })
        .collect();
    assert_eq!(asked, vec![&vec!["__tombstones__".to_string(), "mine-1".to_string()]]);
    let or = m.or("m").expect("or");
    assert_eq!(or.live_keys(WALL), vec!["mine-1"]);
    assert!(or.is_tombstoned(&ts(1, 0, "x")));
    assert_eq!(ev, loaded("m", 1, MapKind::Or));
}

#[test]
fn map_loaded_fires_once_with_the_count_and_not_for_an_empty_map() {
    let (mut m, mut fake) = (manager(), Fake::default());
    fake.put("m", "a", &StoredValue::Lww(lww_rec(Value::from(1), 5, "x")));
    let tomb = LwwRecord { value: None, timestamp: ts(6, 0, "x"), ttl_ms: None };
    fake.put("m", "b", &StoredValue::Lww(tomb)); // tombstones count for LWW
    m.get_map("m", None, WALL).expect("get");
    m.get_map("m", None, WALL).expect("get");
    fake.run(&mut m);
    m.get_map("m", None, WALL).expect("get"); // loaded: no new load, no new event
    fake.run(&mut m);
    assert_eq!(events(&mut m), loaded("m", 2, MapKind::Lww));
    let ev = load(&mut m, &mut fake, "empty", None);
    assert_eq!(ev, vec![StorageEvent::Ready { map: "empty".into(), kind: MapKind::Lww }], "no MapLoaded");
    assert_eq!(m.get_map("empty", None, WALL), Ok(MapStatus::Loaded(MapKind::Lww)));
}

#[test]
fn a_failing_load_is_reported_and_the_next_touch_retries() {
    let (mut m, mut fake) = (manager(), Fake::default());
    fake.put("m", "k", &StoredValue::Lww(lww_rec(Value::from(1), 5, "x")));
    fake.fail_loads = 1;
    m.get_map("m", None, WALL).expect("get");
    m.get_map("m", None, WALL).expect("second waiter");
    fake.run(&mut m);
    let ev = events(&mut m);
    let [StorageEvent::LoadFailed { error, .. }] = &ev[..] else { panic!("one LoadFailed expected: {ev:?}") };
    assert_eq!(error.kind(), ErrorKind::Storage, "{error}");
    assert!(error.to_string().contains("disk on fire"), "carries the adapter's reason: {error}");
    assert_eq!(m.load_error("m"), Some(error));
    assert!(!m.is_map_loaded("m") && !m.is_map_loading("m"));
    assert!(m.lww("m").is_none(), "no empty map is served");
    // The next touch tries again, from the key list.
    assert_eq!(m.get_map("m", None, WALL), Ok(MapStatus::Loading));
    fake.run(&mut m);
    assert_eq!(fake.count(is_load_keys), 2);
    assert_eq!(events(&mut m), loaded("m", 1, MapKind::Lww));
    assert_eq!(m.lww("m").expect("lww").get("k", WALL), Some(Value::from(1)));
    assert_eq!(m.load_error("m"), None);
}

#[test]
fn early_writes_survive_and_win_over_loaded_records() {
    let (mut m, mut fake) = (manager(), Fake::default());
    // SPEC section 1: writes made while a map loads end up later than every stored record, so
    // they win over stored "old" and over stored "new" (ahead of this node's wall clock) alike.
    fake.put("m", "old", &StoredValue::Lww(lww_rec(Value::from("stored"), 5, "x")));
    fake.put("m", "new", &StoredValue::Lww(lww_rec(Value::from("stored"), WALL + 10, "x")));
    m.get_map("m", None, WALL).expect("get");
    set(&mut m, "m", "old", Value::from("early"), None).expect("early write");
    set(&mut m, "m", "new", Value::from("early"), None).expect("early write");
    set(&mut m, "m", "only-early", Value::from("early"), None).expect("early write");
    assert!(m.is_map_loading("m"));
    assert_eq!(m.lww("m").expect("early map").get("old", WALL), Some(Value::from("early")));
    fake.run(&mut m);
    let map = m.lww("m").expect("lww");
    assert_eq!(map.get("old", WALL), Some(Value::from("early")));
    assert_eq!(map.get("new", WALL), Some(Value::from("early")));
    assert_eq!(map.get("only-early", WALL), Some(Value::from("early")));
    // The clock moved past the stored record, and the early write to "new" was re-stamped past it.
    assert!(m.clock().last().0 >= WALL + 10);
    assert!(map.get_record("new").expect("record").timestamp > ts(WALL + 10, 0, "x"));
    assert_eq!(m.pending_writes("m"), 3, "every early write is pending");
}

#[test]
fn early_writes_of_the_other_kind_fail_the_load_and_are_kept() {
    let (mut m, mut fake) = (manager(), Fake::default());
    let r = OrRecord { value: Value::from("v"), timestamp: ts(5, 0, "x"), ttl_ms: None };
    fake.put("m", "k", &StoredValue::Or(vec![r]));
    m.get_map("m", None, WALL).expect("get");
    set(&mut m, "m", "a", Value::from(1), None).expect("early write");
    set(&mut m, "m", "b", Value::from(2), None).expect("early write");
    fake.run(&mut m);
    let ev = events(&mut m);
    let [StorageEvent::LoadFailed { error, .. }] = &ev[..] else { panic!("one LoadFailed expected: {ev:?}") };
    assert_eq!(error.kind(), ErrorKind::KindMismatch);
    let text = error.to_string();
    assert!(text.contains("2 early write"), "the message counts the held writes: {text}");
    assert!(matches!(error, Error::LoadKindMismatch { early_writes: 2, .. }));
    // Nothing of the wrong kind reaches storage, and it does not hold up flushes of other maps; but
    // while those writes are held aside, a flush cannot say every write is durable: it fails,
    // naming the map.
    set(&mut m, "other", "k", Value::from(1), None).expect("another map");
    let id = m.flush();
    fake.run(&mut m);
    assert_eq!(fake.count(|op| matches!(op, StorageOp::StoreAll { map, .. } if map == "m")), 0);
    assert!(fake.stored("other", "k").is_some());
    let Some(StorageEvent::FlushFailed { flush_id, kind, error }) = events(&mut m).pop() else {
        panic!("a failed flush")
    };
    assert_eq!(flush_id, id);
    assert_eq!(kind, ErrorKind::KindMismatch, "{error}");
    assert!(error.contains("\"m\"") && error.contains("2 write"), "names the map and the held writes: {error}");
    let Some(AnyMap::Lww(early)) = m.take_early_map("m") else { panic!("the early map is retrievable") };
    assert_eq!(early.get("b", WALL), Some(Value::from(2)));
    // Taken back: nothing is held, so the next flush succeeds.
    let id = m.flush();
    fake.run(&mut m);
    assert_eq!(events(&mut m).last(), Some(&StorageEvent::Flushed { flush_id: id }));
    // Once taken, the map loads as stored.
    let ev = load(&mut m, &mut fake, "m", None);
    assert_eq!(ev, loaded("m", 1, MapKind::Or));
    assert_eq!(m.get_map("m", None, WALL), Ok(MapStatus::Loaded(MapKind::Or)));
}

#[test]
fn only_winning_records_are_written_back() {
    let (mut m, mut fake) = (manager(), Fake::default());
    fake.put("m", "k", &StoredValue::Lww(lww_rec(Value::from("stored"), 500, "x")));
    load(&mut m, &mut fake, "m", None);
    let lost = merge(&mut m, "m", "k", lww_rec(Value::from("older"), 400, "y")).expect("merge");
    assert!(!lost.accepted);
    let won = merge(&mut m, "m", "w", lww_rec(Value::from("peer"), 600, "y")).expect("merge");
    assert!(won.accepted);
    m.flush();
    fake.run(&mut m);
    let stores: Vec<&StorageOp> = fake.calls.iter().filter(|op| is_store(op)).collect();
    let [StorageOp::StoreAll { entries, .. }] = &stores[..] else { panic!("one StoreAll expected: {stores:?}") };
    let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, vec!["__mark__", "w"]);
    assert_eq!(fake.stored("m", "k"), Some(StoredValue::Lww(lww_rec(Value::from("stored"), 500, "x"))));
}

#[test]
fn a_flush_after_10_000_writes_is_one_store_all() {
    let (mut m, mut fake) = (manager(), Fake::default());
    load(&mut m, &mut fake, "m", None);
    for i in 0..10_000 {
        set(&mut m, "m", &format!("k{i}"), Value::from(i), None).expect("set");
    }
    let id = m.flush();
    fake.hold(&mut m);
    assert_eq!(fake.held.len(), 1);
    fake.run(&mut m);
    assert_eq!(fake.count(is_store), 1);
    assert_eq!(fake.data["m"].len(), 10_001, "the records and the map's mark");
    assert_eq!(events(&mut m), vec![StorageEvent::Flushed { flush_id: id }]);
    assert_eq!(m.pending_writes("m"), 0);
    // Nothing left: the next flush writes nothing and is done at once.
    let id = m.flush();
    assert!(m.poll_storage().is_none());
    assert_eq!(events(&mut m), vec![StorageEvent::Flushed { flush_id: id }]);
}

#[test]
fn a_failed_flush_keeps_the_writes_pending_for_the_next_flush() {
    let (mut m, mut fake) = (manager(), Fake::default());
    load(&mut m, &mut fake, "m", None);
    set(&mut m, "m", "a", Value::from(1), None).expect("set");
    fake.fail_writes = 1;
    let first = m.flush();
    fake.run(&mut m);
    let ev = events(&mut m);
    let [StorageEvent::FlushFailed { flush_id, kind, error }] = &ev[..] else { panic!("FlushFailed expected: {ev:?}") };
    assert_eq!(*flush_id, first);
    assert_eq!(*kind, ErrorKind::Storage);
    assert!(error.contains("disk on fire"), "carries the adapter's reason: {error}");
    assert!(fake.stored("m", "a").is_none());
    assert_eq!(m.pending_writes("m"), 1);
    let second = m.flush();
    fake.run(&mut m);
    assert_eq!(events(&mut m), vec![StorageEvent::Flushed { flush_id: second }]);
    assert!(fake.stored("m", "a").is_some());
    assert_eq!(m.pending_writes("m"), 0);
}

#[test]
fn a_write_during_a_flush_stays_pending_after_it() {
    let (mut m, mut fake) = (manager(), Fake::default());
    load(&mut m, &mut fake, "m", None);
    set(&mut m, "m", "a", Value::from(1), None).expect("set");
    m.flush();
    fake.hold(&mut m);
    set(&mut m, "m", "a", Value::from(2), None).expect("set again while flushing");
    fake.run(&mut m);
    assert_eq!(m.pending_writes("m"), 1, "the newer value is not stored yet");
    m.flush();
    fake.run(&mut m);
    let Some(StoredValue::Lww(r)) = fake.stored("m", "a") else { panic!("stored") };
    assert_eq!(r.value, Some(Value::from(2)));
}

#[test]
fn a_corrupt_stored_value_fails_the_load_naming_the_key() {
    let (mut m, mut fake) = (manager(), Fake::default());
    fake.put("m", "good", &StoredValue::Lww(lww_rec(Value::from(1), 5, "x")));
    fake.put_raw("m", "bad-row", vec![1, 0xff, 0xff]);
    let ev = load(&mut m, &mut fake, "m", None);
    let [StorageEvent::LoadFailed { error, .. }] = &ev[..] else { panic!("one LoadFailed expected: {ev:?}") };
    assert_eq!(error.kind(), ErrorKind::Storage);
    let text = error.to_string();
    assert!(text.contains("\"bad-row\"") && text.contains("\"m\""), "the message names the row and the map: {text}");
    assert!(m.lww("m").is_none(), "nothing is half-applied");
    assert_eq!(m.clock().last(), (0, 0), "the clock saw nothing");
}

#[test]
fn ttls_and_or_tombstones_survive_a_store_and_reload() {
    let (mut m, mut fake) = (manager(), Fake::default());
    load(&mut m, &mut fake, "l", Some(MapKind::Lww));
    load(&mut m, &mut fake, "o", Some(MapKind::Or));
    set(&mut m, "l", "k", Value::from("v"), Some(500)).expect("set");
    add(&mut m, "o", "k", Value::from("x"), Some(700)).expect("add");
    add(&mut m, "o", "gone", Value::from("y"), None).expect("add");
    let removed = or_remove(&mut m, "o", "gone", &Value::from("y")).expect("remove");
    assert_eq!(removed.len(), 1);
    m.flush();
    fake.run(&mut m);
    assert!(fake.stored("o", "gone").is_none(), "a key with no records left is not stored");
    assert!(m.unload("l") && m.unload("o"));
    let mut m2 = manager();
    load(&mut m2, &mut fake, "l", None);
    load(&mut m2, &mut fake, "o", None);
    let rec = m2.lww("l").expect("lww").get_record("k").expect("record");
    assert_eq!(rec.ttl_ms, Some(500));
    assert_eq!(m2.lww("l").expect("lww").get("k", WALL + 501), None, "expired after the TTL");
    let or = m2.or("o").expect("or");
    assert_eq!(or.get_records("k")[0].ttl_ms, Some(700));
    let tag = Timestamp::parse(&removed[0]).expect("tag");
    assert!(or.is_tombstoned(&tag));
    assert!(or.get("gone", WALL).is_empty());
    // A re-delivered copy of the removed add stays removed after the reload.
    let stale = OrRecord { value: Value::from("y"), timestamp: tag, ttl_ms: None };
    assert!(!apply(&mut m2, "o", "gone", stale).expect("apply").accepted);
}

#[test]
fn removing_every_record_of_an_or_key_deletes_it_from_storage() {
    let (mut m, mut fake) = (manager(), Fake::default());
    let r = OrRecord { value: Value::from("v"), timestamp: ts(5, 0, "x"), ttl_ms: None };
    fake.put("m", "k", &StoredValue::Or(vec![r]));
    load(&mut m, &mut fake, "m", None);
    or_remove(&mut m, "m", "k", &Value::from("v")).expect("remove");
    m.flush();
    fake.run(&mut m);
    assert_eq!(fake.count(|op| matches!(op, StorageOp::DeleteAll { keys, .. } if keys == &["k".to_string()])), 1);
    assert!(fake.stored("m", "k").is_none());
    assert_eq!(fake.stored("m", "__tombstones__"), Some(StoredValue::OrTombstones(vec![ts(5, 0, "x")])));
}

#[test]
fn unload_then_touch_reloads() {
    let (mut m, mut fake) = (manager(), Fake::default());
    load(&mut m, &mut fake, "m", None);
    set(&mut m, "m", "k", Value::from(1), None).expect("set");
    assert!(!m.unload("m"), "a map with unflushed writes stays");
    m.flush();
    fake.run(&mut m);
    events(&mut m);
    assert!(m.unload("m"));
    assert!(!m.has_map("m"));
    assert_eq!(m.get_map("m", None, WALL), Ok(MapStatus::Loading));
    fake.run(&mut m);
    assert_eq!(fake.count(is_load_keys), 2);
    assert_eq!(events(&mut m), loaded("m", 1, MapKind::Lww));
    assert_eq!(m.lww("m").expect("lww").get("k", WALL), Some(Value::from(1)));
}

#[test]
fn hints_while_loading_bind_nothing_but_an_early_map_does() {
    let (mut m, _) = (manager(), ());
    assert_eq!(m.get_map("m", Some(MapKind::Or), WALL), Ok(MapStatus::Loading));
    assert_eq!(m.get_map("m", Some(MapKind::Lww), WALL), Ok(MapStatus::Loading));
    set(&mut m, "m", "k", Value::from(1), None).expect("an LWW write makes an LWW early map");
    let err = m.get_map("m", Some(MapKind::Or), WALL).expect_err("bound by the early map");
    assert_eq!(err.kind(), ErrorKind::KindMismatch, "{err}");
    let err = add(&mut m, "m", "k", Value::from(1), None).expect_err("OR write on an LWW-bound map");
    assert_eq!(err.kind(), ErrorKind::KindMismatch, "{err}");
}

#[test]
fn an_answer_to_no_pending_request_is_an_error() {
    let mut m = manager();
    assert_eq!(m.handle_storage(42, StorageResult::Done), Err(Error::UnknownStorageRequest { id: 42 }));
}

#[test]
fn a_map_id_stays_valid_across_an_unload_and_a_write_through_it_reloads() {
    let (mut m, mut fake) = (manager(), Fake::default());
    fake.put("m", "stored", &StoredValue::Lww(lww_rec(Value::from("s"), 5, "x")));
    let id = m.open("m", MapKind::Lww, WALL).expect("open");
    fake.run(&mut m);
    events(&mut m);
    assert!(m.unload("m"));
    assert!(m.map_at(id).is_none(), "an unloaded map has nothing to read");
    // A write through the old id touches the map again: it reloads, and the write is merged.
    match m.write_at(id, MapKind::Lww, WALL).expect("write") {
        (AnyMap::Lww(map), clock) => map.set(clock, WALL, "new", Value::from("n"), None).expect("set"),
        _ => panic!("an LWW map"),
    };
    assert!(m.is_map_loading("m"));
    fake.run(&mut m);
    assert_eq!(m.id_of("m"), Some(id));
    let map = m.lww("m").expect("lww");
    assert_eq!(map.get("stored", WALL), Some(Value::from("s")));
    assert_eq!(map.get("new", WALL), Some(Value::from("n")));
    assert_eq!(m.pending_keys("m"), vec!["new"]);
}

#[test]
fn a_manager_without_storage_makes_no_requests_and_flushes_at_once() {
    let mut m = StorageManager::in_memory(node("me"), ClockConfig::default());
    assert_eq!(m.get_map("a", None, WALL), Ok(MapStatus::Loaded(MapKind::Lww)));
    assert_eq!(m.get_map("b", Some(MapKind::Or), WALL), Ok(MapStatus::Loaded(MapKind::Or)));
    set(&mut m, "a", "k", Value::from(1), None).expect("set");
    assert_eq!(m.pending_writes("a"), 0, "nothing is tracked without storage");
    let flush_id = m.flush();
    assert!(m.poll_storage().is_none());
    assert_eq!(events(&mut m), vec![StorageEvent::Flushed { flush_id }]);
}

#[test]
fn a_refused_import_leaves_no_map_and_the_answer_to_its_load_is_ignored() {
    let mut grid =
        Grid::with_storage(node("me"), ClockConfig { max_drift_ms: 1_000, strict: true }, StorageConfig::default());
    let mut peer = Grid::new(node("peer"), ClockConfig::default());
    let (map, clock) = peer.lww("m", WALL + 60_000).expect("peer map");
    map.set(clock, WALL + 60_000, "k", Value::from(1), None).expect("set");
    let snapshot = peer.export_map("m").expect("export");
    let err = grid.import_map("m", &snapshot, WALL).expect_err("too far ahead in strict mode");
    assert_eq!(err.kind(), ErrorKind::ClockDrift, "{err}");
    assert!(!grid.storage().has_map("m"));
    assert!(grid.map_names().is_empty());
    // The load the import started is answered after all: ignored, and the map stays absent.
    let mut fake = Fake::default();
    fake.run(grid.storage_mut());
    assert!(events(grid.storage_mut()).is_empty());
    assert!(!grid.storage().has_map("m"));
}

#[test]
fn an_imported_snapshot_is_flushed_as_one_store_all() {
    let mut grid = Grid::with_storage(node("me"), ClockConfig::default(), StorageConfig::default());
    let mut fake = Fake::default();
    let mut peer = Grid::new(node("peer"), ClockConfig::default());
    let (map, clock) = peer.lww("m", WALL).expect("peer map");
    for i in 0..100 {
        map.set(clock, WALL, &format!("k{i}"), Value::from(i), None).expect("set");
    }
    let snapshot = peer.export_map("m").expect("export");
    assert_eq!(grid.import_map("m", &snapshot, WALL).expect("import").changed, 100);
    fake.run(grid.storage_mut());
    grid.storage_mut().flush();
    fake.run(grid.storage_mut());
    assert_eq!(fake.count(is_store), 1);
    assert_eq!(fake.data["m"].len(), 101, "the records and the map's mark");
}

#[test]
fn the_byte_abi_drives_a_load_and_a_flush_with_storage_commands() {
    let mut grid = Grid::with_storage(node("me"), ClockConfig::default(), StorageConfig::default());
    let mut fake = Fake::default();
    fake.put("m", "k", &StoredValue::Lww(lww_rec(Value::from("stored"), 5, "x")));
    let status = grid.execute(WALL, Command::GetMap { map: "m".into(), kind: None }).expect("get map");
    assert_eq!(status, Reply::Status(MapStatus::Loading));
    // The host's loop: poll, run, answer, until there is no more work.
    let mut answers = Vec::new();
    let mut seen = Vec::new();
    loop {
        let Reply::Storage { requests, events } = grid.execute(WALL, Command::Storage { answers }).expect("storage")
        else {
            panic!("a Storage reply")
        };
        seen.extend(events);
        if requests.is_empty() {
            break;
        }
        answers = requests.iter().map(|r| (r.id, fake.execute(&r.op))).collect();
    }
    assert_eq!(
        seen,
        vec![
            WireEvent::MapLoaded { map: "m".into(), count: 1 },
            WireEvent::Ready { map: "m".into(), kind: MapKind::Lww }
        ]
    );
    let value = grid.execute(WALL, Command::Get { map: "m".into(), key: "k".into() }).expect("get");
    assert_eq!(value, Reply::Value(Some(Value::from("stored"))));
    grid.execute(WALL, Command::Set { map: "m".into(), key: "n".into(), value: Value::from(2), ttl_ms: None })
        .expect("set");
    let Reply::Count(flush_id) = grid.execute(WALL, Command::Flush).expect("flush") else { panic!("a flush id") };
    let Reply::Storage { requests, .. } = grid.execute(WALL, Command::Storage { answers: vec![] }).expect("poll")
    else {
        panic!("a Storage reply")
    };
    assert_eq!(requests.len(), 1);
    let answers = requests.iter().map(|r| (r.id, fake.execute(&r.op))).collect();
    let Reply::Storage { events, .. } = grid.execute(WALL, Command::Storage { answers }).expect("answer") else {
        panic!("a Storage reply")
    };
    assert_eq!(events, vec![WireEvent::Flushed { flush_id }]);
    assert!(fake.stored("m", "n").is_some());
    // An answer to nothing pending is an error, not a panic.
    let err = grid.execute(WALL, Command::Storage { answers: vec![(999, StorageResult::Done)] });
    assert_eq!(err, Err(Error::UnknownStorageRequest { id: 999 }));
}

#[test]
fn a_load_leaves_pending_exactly_what_memory_has_beyond_storage() {
    // Stored: an OR key whose record is listed twice, and a tombstone list that repeats a tag.
    let r = OrRecord { value: Value::from("v"), timestamp: ts(5, 0, "x"), ttl_ms: None };
    let tags = vec![ts(3, 0, "x"), ts(3, 0, "x"), ts(4, 0, "y")];
    let mut fake = Fake::default();
    for map in ["same", "early"] {
        fake.put(map, "k", &StoredValue::Or(vec![r.clone(), r.clone()]));
        fake.put(map, "__tombstones__", &StoredValue::OrTombstones(tags.clone()));
    }
    let mut m = manager();
    load(&mut m, &mut fake, "same", None);
    assert_eq!(m.pending_writes("same"), 0, "memory holds what storage holds");

    // An add and its remove while the map loads: the key "e" holds nothing, so it is dirty, and
    // the tombstone list gained a tag.
    m.get_map("early", Some(MapKind::Or), WALL).expect("touch");
    add(&mut m, "early", "e", Value::from(1), None).expect("add");
    or_remove(&mut m, "early", "e", &Value::from(1)).expect("remove");
    fake.run(&mut m);
    assert!(m.is_map_loaded("early"));
    assert_eq!(m.pending_keys("early"), vec!["e"]);
    assert_eq!(m.pending_writes("early"), 2, "the key and the tombstone list");
}

#[test]
fn a_flush_waits_for_a_loading_map_and_then_stores_its_early_writes() {
    let (mut m, mut fake) = (manager(), Fake::default());
    fake.put("m", "stored", &StoredValue::Lww(lww_rec(Value::from("s"), 5, "x")));
    set(&mut m, "m", "early", Value::from("e"), None).expect("early write");
    fake.hold(&mut m); // the load's LoadAllKeys, not answered yet
    let flush_id = m.flush();
    assert!(events(&mut m).is_empty(), "not flushed while the map loads: the early write is not stored");
    fake.run(&mut m);
    let ev = events(&mut m);
    assert_eq!(ev.last(), Some(&StorageEvent::Flushed { flush_id }), "{ev:?}");
    assert!(fake.stored("m", "early").is_some());
    assert_eq!(m.pending_writes("m"), 0);
}

#[test]
fn a_flush_waiting_for_a_load_that_fails_fails_and_keeps_the_writes() {
    let (mut m, mut fake) = (manager(), Fake::default());
    set(&mut m, "m", "early", Value::from("e"), None).expect("early write");
    fake.fail_loads = 1;
    let flush_id = m.flush();
    fake.run(&mut m);
    let ev = events(&mut m);
    let Some(StorageEvent::FlushFailed { flush_id: id, kind, error }) = ev.last() else {
        panic!("FlushFailed expected: {ev:?}")
    };
    assert_eq!((*id, *kind), (flush_id, ErrorKind::Storage));
    assert!(
        error.contains("disk on fire") && error.contains("\"m\""),
        "names the map and the adapter's reason: {error}"
    );
    assert_eq!(m.pending_writes("m"), 1, "the early write stays pending");
    // The next flush tries the load again, and stores the write once it has loaded.
    let again = m.flush();
    fake.run(&mut m);
    assert_eq!(events(&mut m).last(), Some(&StorageEvent::Flushed { flush_id: again }));
    assert_eq!(fake.count(is_load_keys), 2);
    assert!(fake.stored("m", "early").is_some());
}

fn filtered_manager() -> StorageManager {
    let config = StorageConfig { is_related_key: Some(Box::new(|_map: &str, key: &str| key.starts_with("mine"))) };
    StorageManager::new(node("me"), ClockConfig::default(), config)
}

#[test]
fn a_write_to_a_key_the_load_left_out_is_merged_with_storage_before_it_is_stored() {
    let (mut m, mut fake) = (filtered_manager(), Fake::default());
    let stored = OrRecord { value: Value::from("stored"), timestamp: ts(5, 0, "x"), ttl_ms: None };
    fake.put("m", "theirs", &StoredValue::Or(vec![stored.clone()]));
    fake.put("m", "mine", &StoredValue::Or(vec![OrRecord { timestamp: ts(6, 0, "x"), ..stored.clone() }]));
    load(&mut m, &mut fake, "m", None);
    assert!(m.or("m").expect("or").get("theirs", WALL).is_empty(), "left out by is_related_key");
    add(&mut m, "m", "theirs", Value::from("local"), None).expect("add");
    let flush_id = m.flush();
    fake.run(&mut m);
    assert_eq!(events(&mut m).last(), Some(&StorageEvent::Flushed { flush_id }));
    let Some(StoredValue::Or(records)) = fake.stored("m", "theirs") else { panic!("stored OR records") };
    let values: Vec<&Value> = records.iter().map(|r| &r.value).collect();
    assert_eq!(values, vec![&Value::from("stored"), &Value::from("local")], "the stored record is kept");
    // Now loaded: the next write to it needs no second fill.
    add(&mut m, "m", "theirs", Value::from("again"), None).expect("add");
    let loads = fake.count(|op| matches!(op, StorageOp::LoadAll { .. }));
    m.flush();
    fake.run(&mut m);
    assert_eq!(fake.count(|op| matches!(op, StorageOp::LoadAll { .. })), loads);
}

#[test]
fn an_older_write_to_a_key_the_load_left_out_loses_to_the_stored_record() {
    let (mut m, mut fake) = (filtered_manager(), Fake::default());
    fake.put("m", "theirs", &StoredValue::Lww(lww_rec(Value::from("newer"), WALL + 50_000, "x")));
    load(&mut m, &mut fake, "m", None);
    set(&mut m, "m", "theirs", Value::from("older"), None).expect("set at WALL, before the stored record");
    let flush_id = m.flush();
    fake.run(&mut m);
    assert_eq!(events(&mut m).last(), Some(&StorageEvent::Flushed { flush_id }));
    assert_eq!(fake.count(is_store), 0, "nothing that lost is written");
    let Some(StoredValue::Lww(record)) = fake.stored("m", "theirs") else { panic!("an LWW record") };
    assert_eq!(record.value, Some(Value::from("newer")));
    assert_eq!(m.lww("m").expect("lww").get("theirs", WALL), Some(Value::from("newer")));
}

#[test]
fn an_early_write_after_the_key_list_to_a_left_out_key_is_merged_before_it_is_stored() {
    let (mut m, mut fake) = (filtered_manager(), Fake::default());
    fake.put("m", "theirs", &StoredValue::Lww(lww_rec(Value::from("newer"), WALL + 50_000, "x")));
    fake.put("m", "mine", &StoredValue::Lww(lww_rec(Value::from(1), 5, "x")));
    m.get_map("m", None, WALL).expect("get");
    // Answer LoadAllKeys only; LoadAll waits.
    let keys = m.poll_storage().expect("LoadAllKeys");
    let answer = fake.execute(&keys.op);
    m.handle_storage(keys.id, answer).expect("keys");
    set(&mut m, "m", "theirs", Value::from("early"), None).expect("early write");
    fake.run(&mut m);
    let flush_id = m.flush();
    fake.run(&mut m);
    assert_eq!(events(&mut m).last(), Some(&StorageEvent::Flushed { flush_id }));
    let Some(StoredValue::Lww(record)) = fake.stored("m", "theirs") else { panic!("an LWW record") };
    assert_eq!(record.value, Some(Value::from("newer")), "the early write was merged, and lost");
}

#[test]
fn a_failed_fill_fails_the_flush_and_keeps_the_write() {
    let (mut m, mut fake) = (filtered_manager(), Fake::default());
    fake.put("m", "theirs", &StoredValue::Lww(lww_rec(Value::from("s"), 5, "x")));
    load(&mut m, &mut fake, "m", None);
    set(&mut m, "m", "theirs", Value::from("local"), None).expect("set");
    fake.fail_loads = 1;
    let flush_id = m.flush();
    fake.run(&mut m);
    let ev = events(&mut m);
    assert!(
        matches!(ev.last(), Some(StorageEvent::FlushFailed { flush_id: id, kind: ErrorKind::Storage, .. }) if *id == flush_id),
        "{ev:?}"
    );
    assert_eq!(m.pending_writes("m"), 1);
    let again = m.flush();
    fake.run(&mut m);
    assert_eq!(events(&mut m).last(), Some(&StorageEvent::Flushed { flush_id: again }));
    let Some(StoredValue::Lww(record)) = fake.stored("m", "theirs") else { panic!("an LWW record") };
    assert_eq!(record.value, Some(Value::from("local")));
}
