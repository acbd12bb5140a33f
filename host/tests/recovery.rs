//! A [`PersistentGrid`] outlives its module instance: after a trap or a memory-limit hit it reopens
//! its grid on a fresh instance, its maps reload from storage, and the writes it had not flushed are
//! replayed, on a real SQLite file and a real PostgreSQL server (`$ONEGRID_TEST_POSTGRES`).
// In tests a panic is the failure report: unwrap means "this must succeed".
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use onegrid_core::storage::StorageOp;
use onegrid_core::{Command, Reply, Value};
use onegrid_host::persistent::{GridError, PersistentGrid, Recovery};
use onegrid_host::storage::{self, Storage, StorageError};
use onegrid_host::{HostError, Runtime, pkg};

fn fixed_clock() -> u64 {
    common::WALL
}

/// The real module with an 8 MiB memory cap: importing [`common::big_snapshot`] goes past it.
fn tight_runtime() -> &'static Runtime {
    static TIGHT: OnceLock<Runtime> = OnceLock::new();
    TIGHT.get_or_init(|| {
        let mut config = common::config();
        config.memory_limit = 8 << 20;
        Runtime::new(pkg::WASM, config).unwrap()
    })
}

fn db_file(name: &str) -> String {
    common::fresh_dir(&format!("recovery-{name}")).join("grid.db").to_str().unwrap().to_owned()
}

fn grid(runtime: &Runtime, location: &str, node: &str) -> PersistentGrid {
    PersistentGrid::open(runtime, node, storage::open(location).unwrap()).unwrap().with_clock(fixed_clock)
}

fn set(key: &str, value: i64) -> Command {
    Command::Set { map: "todos".into(), key: key.into(), value: Value::from(value), ttl_ms: None }
}

fn add(key: &str, value: &str) -> Command {
    Command::Add { map: "tags".into(), key: key.into(), value: Value::from(value), ttl_ms: None }
}

fn or_remove(key: &str, value: &str) -> Command {
    Command::OrRemove { map: "tags".into(), key: key.into(), value: Value::from(value) }
}

fn get(g: &mut PersistentGrid, key: &str) -> Option<Value> {
    match g.call(Command::Get { map: "todos".into(), key: key.into() }).unwrap() {
        Reply::Value(v) => v,
        other => panic!("Get answered {other:?}"),
    }
}

fn or_get(g: &mut PersistentGrid, key: &str) -> Vec<Value> {
    match g.call(Command::OrGet { map: "tags".into(), key: key.into() }).unwrap() {
        Reply::Values(v) => v,
        other => panic!("OrGet answered {other:?}"),
    }
}

/// An import too big for the tight runtime's memory: the instance is lost while it runs.
fn too_big() -> Command {
    Command::Import { map: "big".into(), snapshot: common::big_snapshot().to_vec() }
}

/// What [`flushed_and_unflushed_writes`] leaves, as `g` must read it.
fn assert_all_there(g: &mut PersistentGrid) {
    assert_eq!(get(g, "flushed"), Some(Value::from(1)));
    assert_eq!(get(g, "flushed-then-removed"), None);
    assert_eq!(get(g, "unflushed"), Some(Value::from(2)));
    assert_eq!(get(g, "many-1"), Some(Value::from(11)));
    assert_eq!(get(g, "many-2"), Some(Value::from(12)));
    assert_eq!(or_get(g, "k"), vec![Value::from("unflushed")]);
    assert_eq!(or_get(g, "new"), vec![Value::from("a"), Value::from("b")]);
}

/// The writes [`flushed_and_unflushed_writes`] leaves unflushed: 3 to "todos", 4 to "tags".
const UNFLUSHED: usize = 7;

/// Writes to an LWW and an OR map, flushes, writes more of every kind without flushing.
fn flushed_and_unflushed_writes(g: &mut PersistentGrid) {
    g.call(set("flushed", 1)).unwrap();
    g.call(set("flushed-then-removed", 0)).unwrap();
    g.call(add("k", "flushed")).unwrap();
    g.flush().unwrap();

    g.call(set("unflushed", 2)).unwrap();
    let entries = vec![("many-1".into(), Value::from(11)), ("many-2".into(), Value::from(12))];
    g.call(Command::SetMany { map: "todos".into(), entries }).unwrap();
    g.call(Command::Remove { map: "todos".into(), key: "flushed-then-removed".into() }).unwrap();
    g.call(add("k", "unflushed")).unwrap();
    g.call(or_remove("k", "flushed")).unwrap();
    g.call(add("new", "a")).unwrap();
    g.call(add("new", "b")).unwrap();
}

/// The memory limit is hit with unflushed writes of both map kinds: later calls work, nothing is
/// lost, and a fresh grid on the same storage sees all of it once flushed.
fn unflushed_writes_survive_a_lost_instance(location: &str) {
    let mut g = grid(tight_runtime(), location, "node-a");
    flushed_and_unflushed_writes(&mut g);

    let err = g.call(too_big()).unwrap_err();
    let recovery = recovered(&err);
    assert!(matches!(&err, GridError::InstanceLost { cause: HostError::MemoryLimit { .. }, .. }), "{err}");
    assert!(err.to_string().contains("reopened on a fresh instance: 7 unflushed writes replayed, 0 lost"), "{err}");
    assert!(recovery.cause.contains("more than the limit"), "{recovery:?}");
    assert_eq!((recovery.instances_lost, recovery.replayed, recovery.lost_writes()), (1, UNFLUSHED, 0));
    assert_eq!(g.take_recoveries(), vec![recovery]);
    assert_eq!(g.logged_writes(), UNFLUSHED, "replayed writes are unflushed still");

    assert_all_there(&mut g);
    g.call(set("after", 3)).unwrap();
    g.flush().unwrap();
    assert_eq!(g.logged_writes(), 0, "a flush forgets what it made durable");
    let mut fresh = grid(common::runtime(), location, "node-b");
    assert_all_there(&mut fresh);
    assert_eq!(get(&mut fresh, "after"), Some(Value::from(3)));
}

#[test]
fn sqlite_unflushed_writes_survive_a_lost_instance() {
    unflushed_writes_survive_a_lost_instance(&db_file("survive"));
}

#[test]
fn postgres_unflushed_writes_survive_a_lost_instance() {
    unflushed_writes_survive_a_lost_instance(&common::postgres_schema_url());
}

/// The report in an [`GridError::InstanceLost`] whose grid was reopened.
fn recovered(err: &GridError) -> Recovery {
    match err {
        GridError::InstanceLost { recovery: Ok(recovery), .. } => (**recovery).clone(),
        other => panic!("expected a lost instance and a reopened grid, got: {other}"),
    }
}

/// Storage whose next `store_all` of `map`, once armed, fails with a reason too big for the tight
/// runtime's memory: the instance is lost when the flush hands that answer back, after the other
/// maps' writes were committed.
struct HugeFailure {
    inner: Box<dyn Storage>,
    map: &'static str,
    armed: Arc<AtomicBool>,
}

impl Storage for HugeFailure {
    fn load_all_keys(&mut self, map: &str) -> Result<Vec<String>, StorageError> {
        self.inner.load_all_keys(map)
    }
    fn load_all(&mut self, map: &str, keys: &[String]) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        self.inner.load_all(map, keys)
    }
    fn store(&mut self, map: &str, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.inner.store(map, key, value)
    }
    fn store_all(&mut self, map: &str, entries: &[(String, Vec<u8>)]) -> Result<(), StorageError> {
        if map == self.map && self.armed.swap(false, Ordering::Relaxed) {
            return Err(StorageError::on_map("test", "store_all", map, "x".repeat(16 << 20)));
        }
        self.inner.store_all(map, entries)
    }
    fn delete(&mut self, map: &str, key: &str) -> Result<(), StorageError> {
        self.inner.delete(map, key)
    }
    fn delete_all(&mut self, map: &str, keys: &[String]) -> Result<(), StorageError> {
        self.inner.delete_all(map, keys)
    }
    /// A group holding the armed map fails whole without firing, so that its writes run one by one
    /// and the huge failure comes in order, after the maps before it were stored.
    fn write_all(&mut self, writes: &[&StorageOp]) -> Result<(), StorageError> {
        let armed_map = |op: &&StorageOp| matches!(op, StorageOp::StoreAll { map, .. } if map == self.map);
        if self.armed.load(Ordering::Relaxed) && writes.iter().any(armed_map) {
            return Err(StorageError::on_map("test", "write_all", self.map, "the group holds the armed map"));
        }
        self.inner.write_all(writes)
    }
}

#[test]
fn a_flush_that_loses_the_instance_replays_only_the_maps_it_did_not_store() {
    let location = db_file("mid-flush");
    let armed = Arc::new(AtomicBool::new(false));
    let storage = HugeFailure { inner: storage::open(&location).unwrap(), map: "todos", armed: armed.clone() };
    let mut g = PersistentGrid::open(tight_runtime(), "node-a", Box::new(storage)).unwrap().with_clock(fixed_clock);
    flushed_and_unflushed_writes(&mut g);

    armed.store(true, Ordering::Relaxed);
    let err = g.flush().unwrap_err();
    let recovery = recovered(&err);
    // "tags" was stored whole before the loss: replaying its adds would add their values twice.
    assert_eq!((recovery.already_stored, recovery.replayed, recovery.lost_writes()), (4, 3, 0), "{err}");
    assert_all_there(&mut g);
    g.flush().unwrap();
    assert_all_there(&mut grid(common::runtime(), &location, "node-b"));
}

#[test]
fn writes_past_the_replay_limit_are_reported_lost() {
    let location = db_file("limit");
    let mut g = grid(tight_runtime(), &location, "node-a").with_replay_limit(100);
    for i in 0..10 {
        g.call(set(&format!("k{i}"), i)).unwrap();
    }
    let fit = g.logged_writes();
    assert!(0 < fit && fit < 10, "{fit} of 10 writes fit in 100 bytes");

    let recovery = recovered(&g.call(too_big()).unwrap_err());
    assert_eq!((recovery.replayed, recovery.unlogged, recovery.lost_writes()), (fit, 10 - fit, 10 - fit));
    for i in 0..10 {
        let expected = (i < fit).then(|| Value::from(i as i64));
        assert_eq!(get(&mut g, &format!("k{i}")), expected, "k{i}: the log keeps the first writes, in order");
    }
    g.flush().unwrap();
    g.call(set("after", 1)).unwrap();
    assert_eq!(g.logged_writes(), 1, "after a flush the log has room again");
}

#[test]
fn a_write_the_reopened_grid_refuses_is_handed_back_with_why_and_one_it_holds_aside_is_taken_back() {
    let location = db_file("refused");
    let mut g = grid(tight_runtime(), &location, "node-a");
    let write = Command::Set { map: "m".into(), key: "k".into(), value: Value::from(1), ttl_ms: None };
    let import = Command::Import { map: "m".into(), snapshot: common::lww_snapshot(2) };
    g.call(write.clone()).unwrap();
    g.call(import.clone()).unwrap();
    g.call(set("kept", 1)).unwrap();
    // Meanwhile another node stores "m" as an OR map: the LWW writes cannot go into it any more.
    let mut other = grid(common::runtime(), &location, "node-b");
    other.call(Command::Add { map: "m".into(), key: "k".into(), value: Value::from("x"), ttl_ms: None }).unwrap();
    other.flush().unwrap();

    let recovery = recovered(&g.call(too_big()).unwrap_err());
    // The write goes into the map's early map, as any write to a map still loading does, and the
    // load holds it aside; the import, which waits for the load, is refused and handed back.
    assert_eq!((recovery.replayed, recovery.not_replayed.len()), (2, 1), "{recovery:?}");
    let refused = &recovery.not_replayed[0];
    assert_eq!((&refused.command, refused.wall), (&import, common::WALL));
    assert_eq!(refused.code, "KIND_MISMATCH", "{}", refused.reason);
    assert_eq!(get(&mut g, "kept"), Some(Value::from(1)));
    // The held write is never stored over the OR map: flushes fail naming it until it is taken back.
    let err = g.flush().unwrap_err();
    assert_eq!(err.code(), "KIND_MISMATCH", "{err}");
    let Reply::Bytes(early) = g.call(Command::TakeEarlyWrites { map: "m".into() }).unwrap() else { panic!("bytes") };
    assert!(!early.is_empty());
    g.flush().unwrap();
    assert_eq!(g.logged_writes(), 0);
    let mut reader = grid(common::runtime(), &location, "reader");
    assert_eq!(get(&mut reader, "kept"), Some(Value::from(1)));
    let tags = reader.call(Command::OrGet { map: "m".into(), key: "k".into() }).unwrap();
    assert_eq!(tags, Reply::Values(vec![Value::from("x")]));
}
