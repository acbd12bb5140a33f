//! SPEC section 6: what only the core's storage manager shows (its polling interface, unloading,
//! `MapId`s, a manager without storage, what its errors say, and storage written before map marks),
//! driven by an in-test fake adapter. The behaviour every driver shares is the storage suite
//! (`tests/storage-suite/`, run here by `storage_suite.rs`).

mod common;

use common::storage::*;
use common::{node, ts};
use onegrid_core::{
    AnyMap, ClockConfig, Command, Error, ErrorKind, Grid, MapKind, MapStatus, OrRecord, Reply, StorageConfig,
    StorageEvent, StorageManager, StorageResult, StoredValue, Value, WireEvent,
};

#[test]
fn writes_held_aside_are_counted_in_the_load_error_and_the_flush_error_names_their_map() {
    // What the errors say (their codes and the behaviour are in the storage suite's scenario
    // "early writes of the other kind fail the load and are held aside until taken back").
    let (mut m, mut fake) = (manager(), Fake::default());
    let r = OrRecord { value: Value::from("v"), timestamp: ts(5, 0, "x"), ttl_ms: None };
    fake.put("m", "k", &StoredValue::Or(vec![r]));
    m.get_map("m", None, WALL).expect("get");
    set(&mut m, "m", "a", Value::from(1), None).expect("early write");
    set(&mut m, "m", "b", Value::from(2), None).expect("early write");
    fake.run(&mut m);
    let ev = events(&mut m);
    let [StorageEvent::LoadFailed { error, .. }] = &ev[..] else { panic!("one LoadFailed expected: {ev:?}") };
    let text = error.to_string();
    assert!(text.contains("2 early write"), "the message counts the held writes: {text}");
    assert!(matches!(error, Error::LoadKindMismatch { early_writes: 2, .. }));
    m.flush();
    fake.run(&mut m);
    let Some(StorageEvent::FlushFailed { kind, error, .. }) = events(&mut m).pop() else { panic!("a failed flush") };
    assert_eq!(kind, ErrorKind::KindMismatch, "{error}");
    assert!(error.contains("\"m\"") && error.contains("2 write"), "names the map and the held writes: {error}");
    assert!(error.contains("TakeEarlyWrites") && error.contains("takeEarlyWrites"), "says how to take them: {error}");
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

fn filtered_manager() -> StorageManager {
    let config = StorageConfig { is_related_key: Some(Box::new(|_map: &str, key: &str| key.starts_with("mine"))) };
    StorageManager::new(node("me"), ClockConfig::default(), config)
}

/// Maps stored before map marks (the storage suite's grids always write one): a write after the
/// load to a key it left out is older than the stored record, and loses to it.
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

/// A map stored before map marks: an early write made after the key list came, to a key it left
/// out, is not re-stamped (nothing loaded is later), so it is merged with the stored record first.
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

/// The keys of the `StoreAll` requests among `requests`, map marks left out.
fn stored_keys(requests: &[onegrid_core::storage::StorageRequest]) -> Vec<String> {
    let entries = requests.iter().flat_map(|r| match &r.op {
        onegrid_core::storage::StorageOp::StoreAll { entries, .. } => entries.clone(),
        _ => Vec::new(),
    });
    entries.map(|(k, _)| k).filter(|k| !k.starts_with("__")).collect()
}

/// Answers `requests` with what the fake does with them, in the order given.
fn answer(m: &mut StorageManager, fake: &mut Fake, requests: Vec<onegrid_core::storage::StorageRequest>) {
    for r in requests {
        let result = fake.execute(&r.op);
        m.handle_storage(r.id, result).expect("pending request");
    }
}

#[test]
fn a_flush_carries_only_what_the_flushes_in_flight_do_not_and_they_end_in_order() {
    let (mut m, mut fake) = (manager(), Fake::default());
    load(&mut m, &mut fake, "m", Some(MapKind::Lww));
    set(&mut m, "m", "a", Value::from(1), None).expect("set");
    set(&mut m, "m", "b", Value::from(1), None).expect("set");
    let first = m.flush();
    fake.hold(&mut m);
    let first_requests = std::mem::take(&mut fake.held);
    assert_eq!(stored_keys(&first_requests), ["a", "b"]);
    set(&mut m, "m", "b", Value::from(2), None).expect("set again while in flight");
    set(&mut m, "m", "c", Value::from(2), None).expect("set");
    let second = m.flush();
    fake.hold(&mut m);
    let second_requests = std::mem::take(&mut fake.held);
    assert_eq!(stored_keys(&second_requests), ["b", "c"], "a is in flight and unchanged: not sent again");
    // The second is answered first: it holds only once the first does.
    answer(&mut m, &mut fake, second_requests);
    assert_eq!(events(&mut m), []);
    answer(&mut m, &mut fake, first_requests);
    assert_eq!(events(&mut m), [StorageEvent::Flushed { flush_id: first }, StorageEvent::Flushed { flush_id: second }]);
    assert_eq!(m.pending_writes("m"), 0);
}

#[test]
fn a_failed_write_fails_the_flushes_after_it_and_the_next_flush_carries_it_again() {
    let (mut m, mut fake) = (manager(), Fake::default());
    load(&mut m, &mut fake, "m", Some(MapKind::Lww));
    set(&mut m, "m", "a", Value::from(1), None).expect("set");
    let first = m.flush();
    fake.hold(&mut m);
    let first_requests = std::mem::take(&mut fake.held);
    set(&mut m, "m", "b", Value::from(1), None).expect("set");
    let second = m.flush();
    fake.hold(&mut m);
    let second_requests = std::mem::take(&mut fake.held);
    assert_eq!(stored_keys(&second_requests), ["b"]);
    fake.fail_writes = 1;
    answer(&mut m, &mut fake, first_requests);
    answer(&mut m, &mut fake, second_requests);
    let ev = events(&mut m);
    let [
        StorageEvent::FlushFailed { flush_id: f1, kind: k1, .. },
        StorageEvent::FlushFailed { flush_id: f2, kind: k2, error },
    ] = &ev[..]
    else {
        panic!("both flushes fail, in order: {ev:?}")
    };
    assert_eq!((*f1, *f2, *k1, *k2), (first, second, ErrorKind::Storage, ErrorKind::Storage));
    assert!(error.contains(&format!("an earlier flush ({first}) failed")), "says why: {error}");
    assert_eq!(fake.stored("m", "b").map(|_| ()), Some(()), "the second's own write was stored");
    assert_eq!(m.pending_writes("m"), 1, "a is still to be stored");
    let third = m.flush();
    fake.hold(&mut m);
    assert_eq!(stored_keys(&fake.held), ["a"], "the next flush carries the failed write again");
    fake.run(&mut m);
    assert_eq!(events(&mut m), [StorageEvent::Flushed { flush_id: third }]);
    assert!(fake.stored("m", "a").is_some());
    assert_eq!(m.pending_writes("m"), 0);
}
