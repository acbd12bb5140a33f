//! SPEC sections 1 and 6 across restarts: a node that comes back with the same id (and a clock that
//! stands still or steps back) never issues a timestamp its earlier life issued, writes made while a
//! map loads win over what is stored, and the kind of a stored map is learnt even when this node
//! loads none of its keys. Each restart is a fresh `StorageManager` over the same fake storage.

mod common;

use common::storage::*;
use common::{node, ts};
use onegrid_core::codec::encode_stored;
use onegrid_core::{
    ClockConfig, Error, LwwRecord, MapKind, OrRecord, StorageConfig, StorageEvent, StorageManager, StoredValue, Value,
};
use proptest::prelude::*;

/// A manager for node "a" that loads only keys starting with "mine".
fn filtered(node_id: &str) -> StorageManager {
    let config = StorageConfig { is_related_key: Some(Box::new(|_map: &str, key: &str| key.starts_with("mine"))) };
    StorageManager::new(node(node_id), ClockConfig::default(), config)
}

fn node_a() -> StorageManager {
    StorageManager::new(node("a"), ClockConfig::default(), StorageConfig::default())
}

fn flush(m: &mut StorageManager, fake: &mut Fake) {
    let id = m.flush();
    fake.run(m);
    assert_eq!(events(m).last(), Some(&StorageEvent::Flushed { flush_id: id }));
}

fn or_values(fake: &Fake, map: &str, key: &str) -> Vec<Value> {
    match fake.stored(map, key) {
        Some(StoredValue::Or(records)) => records.into_iter().map(|r| r.value).collect(),
        None => Vec::new(),
        other => panic!("an OR key expected, found {other:?}"),
    }
}

#[test]
fn a_restarted_node_s_write_made_while_the_map_loads_wins_over_its_stored_one() {
    let mut fake = Fake::default();
    let mut first = node_a();
    load(&mut first, &mut fake, "m", None);
    set(&mut first, "m", "k", Value::from("x"), None).expect("set");
    flush(&mut first, &mut fake);

    // Same node id, same wall clock: the early write gets the same timestamp as the stored one.
    let mut second = node_a();
    second.get_map("m", None, WALL).expect("touch");
    set(&mut second, "m", "k", Value::from("y"), None).expect("early write");
    fake.run(&mut second);
    flush(&mut second, &mut fake);
    let Some(StoredValue::Lww(LwwRecord { value, .. })) = fake.stored("m", "k") else { panic!("an LWW record") };
    assert_eq!(value, Some(Value::from("y")), "the later write wins in storage");
    assert_eq!(second.lww("m").expect("lww").get("k", WALL), Some(Value::from("y")));
}

#[test]
fn a_restarted_node_s_or_add_made_while_the_map_loads_keeps_every_stored_record() {
    let mut fake = Fake::default();
    let mut first = node_a();
    load(&mut first, &mut fake, "m", Some(MapKind::Or));
    add(&mut first, "m", "k", Value::from("v1"), None).expect("add");
    flush(&mut first, &mut fake);

    let mut second = node_a();
    second.get_map("m", None, WALL).expect("touch");
    let early = add(&mut second, "m", "k", Value::from("v2"), None).expect("early add");
    // Added then removed while loading: the remove observed the early add, not the stored record.
    add(&mut second, "m", "gone", Value::from("g"), None).expect("early add");
    or_remove(&mut second, "m", "gone", &Value::from("g")).expect("early remove");
    fake.run(&mut second);
    flush(&mut second, &mut fake);
    assert_eq!(or_values(&fake, "m", "k"), vec![Value::from("v1"), Value::from("v2")]);
    let map = second.or("m").expect("or");
    assert_eq!(map.get("k", WALL), vec![&Value::from("v1"), &Value::from("v2")]);
    let tags: Vec<_> = map.get_records("k").iter().map(|r| r.timestamp.clone()).collect();
    assert_ne!(tags[0], tags[1], "the early add was re-stamped");
    assert!(tags[1] > early.timestamp, "the re-stamped add is later than every stored record");
    assert!(map.get("gone", WALL).is_empty());
}

#[test]
fn an_early_remove_of_a_re_stamped_add_does_not_remove_the_stored_record_with_its_tag() {
    let mut fake = Fake::default();
    let mut first = node_a();
    load(&mut first, &mut fake, "m", Some(MapKind::Or));
    add(&mut first, "m", "k", Value::from("stored"), None).expect("add");
    flush(&mut first, &mut fake);

    let mut second = node_a();
    second.get_map("m", None, WALL).expect("touch");
    add(&mut second, "m", "k", Value::from("early"), None).expect("early add with the stored tag");
    or_remove(&mut second, "m", "k", &Value::from("early")).expect("early remove");
    fake.run(&mut second);
    flush(&mut second, &mut fake);
    assert_eq!(or_values(&fake, "m", "k"), vec![Value::from("stored")]);
    assert_eq!(second.or("m").expect("or").get("k", WALL), vec![&Value::from("stored")]);
}

#[test]
fn a_restarted_node_never_reissues_a_tag_stored_under_a_key_it_does_not_load() {
    let mut fake = Fake::default();
    let mut first = node_a();
    load(&mut first, &mut fake, "m", Some(MapKind::Or));
    add(&mut first, "m", "theirs", Value::from("v1"), None).expect("add");
    flush(&mut first, &mut fake);

    // "theirs" is not loaded; the map's mark still tells the clock how far its earlier life went.
    let mut second = filtered("a");
    load(&mut second, &mut fake, "m", None);
    let added = add(&mut second, "m", "mine", Value::from("v2"), None).expect("add after the load");
    assert!(added.timestamp > ts(WALL, 0, "a"), "a fresh tag: {}", added.timestamp);
    flush(&mut second, &mut fake);

    let mut reader = node_a();
    load(&mut reader, &mut fake, "m", None);
    let map = reader.or("m").expect("or");
    assert_eq!(map.get("theirs", WALL), vec![&Value::from("v1")]);
    assert_eq!(map.get("mine", WALL), vec![&Value::from("v2")]);
}

#[test]
fn the_kind_of_a_map_none_of_whose_keys_load_comes_from_storage_not_the_hint() {
    for (stored, hint) in [(MapKind::Lww, MapKind::Or), (MapKind::Or, MapKind::Lww)] {
        let mut fake = Fake::default();
        let mut writer = node_a();
        load(&mut writer, &mut fake, "m", Some(stored));
        match stored {
            MapKind::Lww => set(&mut writer, "m", "theirs", Value::from(1), None).map(drop),
            MapKind::Or => add(&mut writer, "m", "theirs", Value::from(1), None).map(drop),
        }
        .expect("write");
        flush(&mut writer, &mut fake);

        let mut reader = filtered("b");
        let events = load(&mut reader, &mut fake, "m", None);
        assert_eq!(events, vec![StorageEvent::Ready { map: "m".into(), kind: stored }], "{stored}");
        let refused = reader.get_map("m", Some(hint), WALL);
        assert!(
            matches!(refused, Err(Error::KindMismatch { existing, requested, .. }) if existing == stored && requested == hint)
        );
        // A write of the other kind is refused, so nothing of it can corrupt the stored map.
        let write = match hint {
            MapKind::Lww => set(&mut reader, "m", "mine", Value::from(2), None).map(drop),
            MapKind::Or => add(&mut reader, "m", "mine", Value::from(2), None).map(drop),
        };
        assert!(matches!(write, Err(Error::KindMismatch { .. })), "{write:?}");
    }
}

#[test]
fn a_map_stored_before_marks_with_no_key_loaded_learns_its_kind_from_one_stored_value() {
    for (value, kind) in [
        (StoredValue::Lww(lww_rec(Value::from(1), 5, "x")), MapKind::Lww),
        (
            StoredValue::Or(vec![OrRecord { value: Value::from(1), timestamp: ts(5, 0, "x"), ttl_ms: None }]),
            MapKind::Or,
        ),
    ] {
        let mut fake = Fake::default();
        fake.put_raw("m", "theirs", encode_stored(&value));
        let mut reader = filtered("b");
        let events = load(&mut reader, &mut fake, "m", None);
        assert_eq!(events, vec![StorageEvent::Ready { map: "m".into(), kind }]);
        assert!(reader.map("m").expect("map").root() == 0, "the probed key is not loaded");
    }
}

#[test]
fn a_corrupt_mark_fails_the_load_naming_it() {
    let mut fake = Fake::default();
    fake.put("m", "__mark__", &StoredValue::Lww(lww_rec(Value::from(1), 5, "x")));
    let mut m = node_a();
    let events = load(&mut m, &mut fake, "m", None);
    let [StorageEvent::LoadFailed { error, .. }] = &events[..] else { panic!("{events:?}") };
    assert!(matches!(error, Error::CorruptStoredValue { key, .. } if key == "__mark__"), "{error}");
}

#[test]
fn the_mark_is_a_reserved_key() {
    let mut m = node_a();
    load(&mut m, &mut Fake::default(), "m", None);
    let refused = set(&mut m, "m", "__mark__", Value::from(1), None);
    assert_eq!(refused, Err(Error::ReservedKey { key: "__mark__" }));
}

/// One step of a randomized restart scenario on one LWW and one OR map.
#[derive(Clone, Debug)]
enum Step {
    Set(u8, u8),
    Remove(u8),
    Add(u8, u8),
    OrRemove(u8, u8),
    Flush,
    /// A restart: unflushed writes are lost; the clock moves by the delta (back, still or ahead).
    Restart(i64),
    /// Writes made before the restarted node's load answers arrive.
    TouchOnly,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u8..6, any::<u8>()).prop_map(|(k, v)| Step::Set(k, v)),
        1 => (0u8..6).prop_map(Step::Remove),
        3 => (0u8..6, 0u8..3).prop_map(|(k, v)| Step::Add(k, v)),
        1 => (0u8..6, 0u8..3).prop_map(|(k, v)| Step::OrRemove(k, v)),
        2 => Just(Step::Flush),
        1 => (-3i64..=3).prop_map(Step::Restart),
        1 => Just(Step::TouchOnly),
    ]
}

/// Even keys are loaded by a filtered node, odd ones are not.
fn key(k: u8) -> String {
    if k.is_multiple_of(2) { format!("mine{k}") } else { format!("theirs{k}") }
}

/// One life of node "a": its manager and its wall clock.
struct Life {
    m: StorageManager,
    wall: u64,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Random writes, flushes and restarts (clocks that stand still or step back, loads that race
    /// writes): storage always equals the in-memory state after a flush, and no acknowledged
    /// write is lost, except to a later write of the same key.
    #[test]
    fn restarts_never_lose_an_acknowledged_write(steps in proptest::collection::vec(step(), 1..60), filter in any::<bool>()) {
        let mut fake = Fake::default();
        let make = |filter: bool| if filter { filtered("a") } else { node_a() };
        let mut life = Life { m: node_a(), wall: WALL };
        // The latest value the test wrote to each LWW key, and each OR key's live values, as of
        // the last successful flush (acknowledged), and as written (pending).
        let mut acked_lww = std::collections::BTreeMap::new();
        let mut lww = std::collections::BTreeMap::new();
        let mut acked_or: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
        let mut or: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
        life.m.get_map("lww", Some(MapKind::Lww), life.wall).expect("lww");
        life.m.get_map("or", Some(MapKind::Or), life.wall).expect("or");
        fake.run(&mut life.m);
        events(&mut life.m);
        for step in steps {
            let wall = life.wall;
            match step {
                Step::Set(k, v) => {
                    let (map, clock) = life.m.lww_mut("lww", wall).expect("lww");
                    map.set(clock, wall, &key(k), Value::from(i64::from(v)), None).expect("set");
                    lww.insert(key(k), Some(Value::from(i64::from(v))));
                }
                Step::Remove(k) => {
                    let (map, clock) = life.m.lww_mut("lww", wall).expect("lww");
                    map.remove(clock, wall, &key(k)).expect("remove");
                    lww.insert(key(k), None);
                }
                Step::Add(k, v) => {
                    let (map, clock) = life.m.or_mut("or", wall).expect("or");
                    map.add(clock, wall, &key(k), Value::from(i64::from(v)), None).expect("add");
                    or.entry(key(k)).or_default().push(Value::from(i64::from(v)));
                }
                Step::OrRemove(k, v) => {
                    // Only once loaded, and of a key every node loads: a remove removes what the
                    // node has observed.
                    if life.m.is_map_loaded("or") && k.is_multiple_of(2) {
                        let (map, _) = life.m.or_mut("or", wall).expect("or");
                        map.remove(&format!("mine{k}"), &Value::from(i64::from(v))).expect("remove");
                        if let Some(values) = or.get_mut(&format!("mine{k}")) {
                            values.retain(|x| *x != Value::from(i64::from(v)));
                        }
                    }
                }
                Step::Flush => {
                    fake.run(&mut life.m);
                    let id = life.m.flush();
                    fake.run(&mut life.m);
                    let evs = events(&mut life.m);
                    prop_assert!(evs.contains(&StorageEvent::Flushed { flush_id: id }), "{:?}", evs);
                    acked_lww = lww.clone();
                    acked_or = or.clone();
                }
                Step::Restart(delta) => {
                    life = Life { m: make(filter), wall: life.wall.saturating_add_signed(delta) };
                    lww = acked_lww.clone();
                    or = acked_or.clone();
                    life.m.get_map("lww", Some(MapKind::Lww), life.wall).expect("lww");
                    life.m.get_map("or", Some(MapKind::Or), life.wall).expect("or");
                    fake.run(&mut life.m);
                    events(&mut life.m);
                }
                Step::TouchOnly => {
                    // A restart whose loads are still running while the next writes come.
                    life = Life { m: make(filter), wall: life.wall };
                    lww = acked_lww.clone();
                    or = acked_or.clone();
                    life.m.get_map("lww", Some(MapKind::Lww), life.wall).expect("lww");
                    life.m.get_map("or", Some(MapKind::Or), life.wall).expect("or");
                }
            }
        }
        fake.run(&mut life.m);
        let id = life.m.flush();
        fake.run(&mut life.m);
        let evs = events(&mut life.m);
        prop_assert!(evs.contains(&StorageEvent::Flushed { flush_id: id }), "{:?}", evs);
        // A fresh reader of storage sees exactly what the test wrote last.
        let mut reader = node_a();
        reader.get_map("lww", None, life.wall).expect("lww");
        reader.get_map("or", None, life.wall).expect("or");
        fake.run(&mut reader);
        for (key, value) in &lww {
            let got = reader.lww("lww").and_then(|m| m.get(key, life.wall));
            prop_assert_eq!(&got, value, "LWW key {}", key);
        }
        for (key, values) in &or {
            let mut got: Vec<Value> = reader.or("or").map(|m| m.get(key, life.wall).into_iter().cloned().collect()).unwrap_or_default();
            let mut want = values.clone();
            got.sort_by_key(|v| format!("{v:?}"));
            want.sort_by_key(|v| format!("{v:?}"));
            prop_assert_eq!(got, want, "OR key {}", key);
        }
        // Storage equals the writer's memory (all of it, when it loads every key).
        for map in ["lww", "or"].into_iter().filter(|_| !filter) {
            prop_assert_eq!(reader.map(map).map(|m| m.root()), life.m.map(map).map(|m| m.root()), "root of {}", map);
        }
    }
}
