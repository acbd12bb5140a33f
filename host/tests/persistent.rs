//! SPEC section 6 in the host: the module in wasmtime, its storage manager driven over the byte ABI
//! by [`PersistentGrid`], with a real SQLite file and a real PostgreSQL server behind it
//! (`$ONEGRID_TEST_POSTGRES`; without it the PostgreSQL test fails and says how to start one).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use onegrid_core::{Command, MapKind, Reply, Value, WireEvent};
use onegrid_host::persistent::{GridError, PersistentGrid};
use onegrid_host::storage::{self, Storage, StorageError};

const WALL: u64 = 1_700_000_000_000;

fn fixed_clock() -> u64 {
    WALL
}

fn later_clock() -> u64 {
    WALL + 1_000
}

fn db_file() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "persistent_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir); // may not exist
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("grid.db")
}

/// What every call of a [`Spy`] saw, shared with the test.
#[derive(Default)]
struct Log {
    calls: Vec<(&'static str, String, usize)>,
    fail_loads: usize,
    fail_writes: usize,
}

/// A real adapter, wrapped to count calls and to fail on demand.
struct Spy {
    inner: Box<dyn Storage>,
    log: Arc<Mutex<Log>>,
}

impl Spy {
    fn note(&self, op: &'static str, map: &str, n: usize) -> Result<(), StorageError> {
        let mut log = self.log.lock().unwrap();
        log.calls.push((op, map.to_owned(), n));
        let fail = if op.starts_with("load") { &mut log.fail_loads } else { &mut log.fail_writes };
        if *fail > 0 {
            *fail -= 1;
            // Any adapter error will do: borrow one from opening a file that cannot exist.
            return Err(storage::open("/proc/onegrid-cannot-be-here/grid.db").err().unwrap());
        }
        Ok(())
    }
}

impl Storage for Spy {
    fn load_all_keys(&mut self, map: &str) -> Result<Vec<String>, StorageError> {
        self.note("load_all_keys", map, 0)?;
        self.inner.load_all_keys(map)
    }
    fn load_all(&mut self, map: &str, keys: &[String]) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        self.note("load_all", map, keys.len())?;
        self.inner.load_all(map, keys)
    }
    fn store(&mut self, map: &str, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.note("store", map, 1)?;
        self.inner.store(map, key, value)
    }
    fn store_all(&mut self, map: &str, entries: &[(String, Vec<u8>)]) -> Result<(), StorageError> {
        self.note("store_all", map, entries.len())?;
        self.inner.store_all(map, entries)
    }
    fn delete(&mut self, map: &str, key: &str) -> Result<(), StorageError> {
        self.note("delete", map, 1)?;
        self.inner.delete(map, key)
    }
    fn delete_all(&mut self, map: &str, keys: &[String]) -> Result<(), StorageError> {
        self.note("delete_all", map, keys.len())?;
        self.inner.delete_all(map, keys)
    }
}

fn spy(location: &str) -> (Box<dyn Storage>, Arc<Mutex<Log>>) {
    let log = Arc::new(Mutex::new(Log::default()));
    (Box::new(Spy { inner: storage::open(location).unwrap(), log: log.clone() }), log)
}

fn grid(storage: Box<dyn Storage>, node: &str) -> PersistentGrid {
    PersistentGrid::open(common::runtime(), node, storage).unwrap().with_clock(fixed_clock)
}

fn set(map: &str, key: &str, value: Value, ttl_ms: Option<u64>) -> Command {
    Command::Set { map: map.into(), key: key.into(), value, ttl_ms }
}

fn get(g: &mut PersistentGrid, map: &str, key: &str) -> Option<Value> {
    match g.call(Command::Get { map: map.into(), key: key.into() }).unwrap() {
        Reply::Value(v) => v,
        other => panic!("Get answered {other:?}"),
    }
}

fn root(g: &mut PersistentGrid, map: &str) -> Reply {
    g.call(Command::Root { map: map.into() }).unwrap()
}

/// Writes LWW values (one with a TTL, one removed) and OR values (one removed), flushes, and checks
/// a second grid on a new connection loads all of it: values, TTLs and both kinds of tombstone.
fn round_trip(location: &str) {
    let mut a = grid(storage::open(location).unwrap(), "writer");
    a.call(set("todos", "t1", Value::from("milk"), None)).unwrap();
    a.call(set("todos", "ttl", Value::from("soon gone"), Some(500))).unwrap();
    a.call(set("todos", "gone", Value::from(1), None)).unwrap();
    a.call(Command::Remove { map: "todos".into(), key: "gone".into() }).unwrap();
    let add =
        |key: &str, v: &str| Command::Add { map: "tags".into(), key: key.into(), value: Value::from(v), ttl_ms: None };
    a.call(add("k", "x")).unwrap();
    a.call(add("removed", "y")).unwrap();
    a.call(Command::OrRemove { map: "tags".into(), key: "removed".into(), value: Value::from("y") }).unwrap();
    a.flush().unwrap();
    let roots = (root(&mut a, "todos"), root(&mut a, "tags"));
    drop(a);

    let mut b = grid(storage::open(location).unwrap(), "reader");
    assert_eq!(b.get_map("todos", None).unwrap(), MapKind::Lww);
    assert_eq!(b.get_map("tags", None).unwrap(), MapKind::Or);
    assert_eq!((root(&mut b, "todos"), root(&mut b, "tags")), roots);
    let events = b.take_events();
    assert!(events.contains(&WireEvent::MapLoaded { map: "todos".into(), count: 3 }), "{events:?}");
    assert!(events.contains(&WireEvent::MapLoaded { map: "tags".into(), count: 1 }), "{events:?}");
    assert_eq!(get(&mut b, "todos", "t1"), Some(Value::from("milk")));
    assert_eq!(get(&mut b, "todos", "ttl"), Some(Value::from("soon gone")));
    assert_eq!(get(&mut b, "todos", "gone"), None);
    let or_get =
        |g: &mut PersistentGrid, key: &str| g.call(Command::OrGet { map: "tags".into(), key: key.into() }).unwrap();
    assert_eq!(or_get(&mut b, "k"), Reply::Values(vec![Value::from("x")]));
    assert_eq!(or_get(&mut b, "removed"), Reply::Values(vec![]));
    // The TTL runs from the write, not from the load.
    let mut b = b.with_clock(later_clock);
    assert_eq!(get(&mut b, "todos", "ttl"), None);
    // A mismatched hint on a stored map is refused.
    let mut c = grid(storage::open(location).unwrap(), "third");
    let err = c.get_map("todos", Some(MapKind::Or)).unwrap_err();
    assert_eq!(err.code(), "KIND_MISMATCH", "{err}");
    assert!(matches!(&err, GridError::Refused(e) if e.message.contains("LWW")), "names the stored kind: {err}");
}

#[test]
fn sqlite_values_ttls_and_tombstones_survive_a_reload() {
    round_trip(db_file().to_str().unwrap());
}

#[test]
fn postgres_values_ttls_and_tombstones_survive_a_reload() {
    let url = common::postgres_schema_url();
    round_trip(&url);
}

#[test]
fn a_flush_after_10_000_writes_is_one_store_all() {
    let file = db_file();
    let (storage, log) = spy(file.to_str().unwrap());
    let mut g = grid(storage, "a");
    assert_eq!(g.get_map("m", Some(MapKind::Lww)).unwrap(), MapKind::Lww);
    let entries = (0..10_000).map(|i| (format!("k{i}"), Value::from(i))).collect();
    g.call(Command::SetMany { map: "m".into(), entries }).unwrap();
    log.lock().unwrap().calls.clear();
    g.flush().unwrap();
    assert_eq!(log.lock().unwrap().calls, vec![("store_all", "m".to_owned(), 10_001)], "the records and the map mark");
    g.flush().unwrap();
    assert_eq!(log.lock().unwrap().calls.len(), 1, "a flush with nothing new writes nothing");
}

#[test]
fn a_failed_load_is_reported_and_the_next_touch_retries() {
    let file = db_file();
    let mut seed = grid(storage::open(file.to_str().unwrap()).unwrap(), "seed");
    seed.call(set("m", "k", Value::from("stored"), None)).unwrap();
    seed.flush().unwrap();
    let (storage, log) = spy(file.to_str().unwrap());
    log.lock().unwrap().fail_loads = 1;
    let mut g = grid(storage, "a");
    let err = g.get_map("m", None).unwrap_err();
    assert!(
        matches!(&err, GridError::LoadFailed { map, error } if map == "m" && error.code == "STORAGE" && error.message.contains("sqlite: open")),
        "{err}"
    );
    assert_eq!(g.get_map("m", None).unwrap(), MapKind::Lww);
    assert_eq!(get(&mut g, "m", "k"), Some(Value::from("stored")));
}

#[test]
fn a_failed_flush_keeps_the_writes_for_the_next_one() {
    let file = db_file();
    let (storage, log) = spy(file.to_str().unwrap());
    let mut g = grid(storage, "a");
    g.call(set("m", "k", Value::from(1), None)).unwrap();
    log.lock().unwrap().fail_writes = 1;
    let err = g.flush().unwrap_err();
    assert!(
        matches!(&err, GridError::FlushFailed(e) if e.code == "STORAGE" && e.message.contains("map \"m\"")),
        "{err}"
    );
    g.flush().unwrap();
    let mut other = grid(storage::open(file.to_str().unwrap()).unwrap(), "b");
    assert_eq!(get(&mut other, "m", "k"), Some(Value::from(1)));
}

#[test]
fn a_write_loads_its_map_first_and_the_flushed_state_holds_both() {
    let file = db_file();
    let mut seed = grid(storage::open(file.to_str().unwrap()).unwrap(), "seed");
    seed.call(set("m", "stored", Value::from(1), None)).unwrap();
    seed.flush().unwrap();
    let mut g = grid(storage::open(file.to_str().unwrap()).unwrap(), "a");
    g.call(set("m", "new", Value::from(2), None)).unwrap();
    assert!(g.take_events().contains(&WireEvent::MapLoaded { map: "m".into(), count: 1 }), "loaded before the write");
    assert_eq!(get(&mut g, "m", "stored"), Some(Value::from(1)));
    g.flush().unwrap();
    let mut reader = grid(storage::open(file.to_str().unwrap()).unwrap(), "b");
    assert_eq!(get(&mut reader, "m", "stored"), Some(Value::from(1)));
    assert_eq!(get(&mut reader, "m", "new"), Some(Value::from(2)));
}

#[test]
fn an_import_of_the_other_kind_is_refused_and_later_flushes_still_work() {
    let file = db_file();
    let mut g = grid(storage::open(file.to_str().unwrap()).unwrap(), "a");
    let add = Command::Add { map: "tags".into(), key: "k".into(), value: Value::from("x"), ttl_ms: None };
    g.call(add).unwrap();
    g.flush().unwrap();
    let mut other = grid(storage::open(file.to_str().unwrap()).unwrap(), "b");
    let mut peer = grid(storage::open(db_file().to_str().unwrap()).unwrap(), "peer");
    peer.call(set("tags", "k", Value::from(1), None)).unwrap();
    let Reply::Bytes(snapshot) = peer.call(Command::Export { map: "tags".into() }).unwrap() else { panic!("bytes") };
    let err = other.call(Command::Import { map: "tags".into(), snapshot }).unwrap_err();
    assert_eq!(err.code(), "KIND_MISMATCH", "{err}");
    other.call(set("todos", "t", Value::from(1), None)).unwrap();
    other.flush().unwrap();
    // Read back from storage: the later flush stored its write, and the refused import nothing.
    let mut reader = grid(storage::open(file.to_str().unwrap()).unwrap(), "reader");
    assert_eq!(get(&mut reader, "todos", "t"), Some(Value::from(1)));
    let tags = reader.call(Command::OrGet { map: "tags".into(), key: "k".into() }).unwrap();
    assert_eq!(tags, Reply::Values(vec![Value::from("x")]));
    assert_eq!(reader.get_map("tags", None).unwrap(), MapKind::Or);
}

#[test]
fn a_corrupt_row_fails_the_load_naming_the_key_and_changes_nothing() {
    let file = db_file();
    let mut s = storage::open(file.to_str().unwrap()).unwrap();
    s.store("m", "bad", &[0xff, 0x01]).unwrap();
    drop(s);
    let mut g = grid(storage::open(file.to_str().unwrap()).unwrap(), "a");
    let err = g.get_map("m", None).unwrap_err();
    assert_eq!(err.code(), "STORAGE", "{err}");
    assert!(err.to_string().contains("key \"bad\" in map \"m\""), "the message names the key and the map: {err}");
    let refused = g.call(Command::Get { map: "m".into(), key: "bad".into() });
    assert!(refused.is_err(), "a map whose load failed serves nothing: {refused:?}");
}

#[test]
fn an_empty_storage_location_is_refused_not_opened_as_a_temporary_database() {
    let err = storage::open("").err().expect("an empty location is refused");
    assert!(err.to_string().contains("empty location"), "{err}");
}
