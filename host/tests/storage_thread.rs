//! The storage thread behind `PersistentGrid`: `run_storage_overlapped` leaves a flush committing
//! (the caller goes on, the flush is not done until its answers are handed in after the waker),
//! every other call waits for it, and an adapter that dies fails its requests instead of hanging.
// In tests a panic is the failure report: unwrap means "this must succeed".
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use onegrid_core::{Command, MARK_KEY, Reply, Value, WireEvent};
use onegrid_host::PersistentGrid;
use onegrid_host::storage::{self, Storage, StorageError};

/// A SQLite file whose writes wait, each, for the test to let one through; a write of key
/// `panic` panics instead.
struct Gated {
    inner: Box<dyn Storage>,
    gate: Arc<Mutex<mpsc::Receiver<()>>>,
}

impl Gated {
    fn pass(&self, keys: impl IntoIterator<Item = impl AsRef<str>>) {
        if keys.into_iter().any(|k| k.as_ref() == "panic") {
            panic!("the adapter broke");
        }
        self.gate.lock().unwrap().recv_timeout(Duration::from_secs(30)).expect("the test lets the write through");
    }
}

impl Storage for Gated {
    fn load_all_keys(&mut self, map: &str) -> Result<Vec<String>, StorageError> {
        self.inner.load_all_keys(map)
    }
    fn load_all(&mut self, map: &str, keys: &[String]) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        self.inner.load_all(map, keys)
    }
    fn store(&mut self, map: &str, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.pass([key]);
        self.inner.store(map, key, value)
    }
    fn store_all(&mut self, map: &str, entries: &[(String, Vec<u8>)]) -> Result<(), StorageError> {
        self.pass(entries.iter().map(|(k, _)| k));
        self.inner.store_all(map, entries)
    }
    fn delete(&mut self, map: &str, key: &str) -> Result<(), StorageError> {
        self.pass([key]);
        self.inner.delete(map, key)
    }
    fn delete_all(&mut self, map: &str, keys: &[String]) -> Result<(), StorageError> {
        self.pass(keys);
        self.inner.delete_all(map, keys)
    }
}

struct Setup {
    grid: PersistentGrid,
    location: String,
    open_gate: mpsc::Sender<()>,
    wakes: Arc<AtomicUsize>,
}

fn setup(name: &str) -> Setup {
    let location = common::fresh_dir(&format!("storage-thread-{name}")).join("grid.db").to_str().unwrap().to_owned();
    let (open_gate, gate) = mpsc::channel();
    let storage = Gated { inner: storage::open(&location).unwrap(), gate: Arc::new(Mutex::new(gate)) };
    let mut grid = PersistentGrid::open(common::runtime(), "node-a", Box::new(storage)).unwrap();
    let wakes = Arc::new(AtomicUsize::new(0));
    let counted = wakes.clone();
    grid.set_storage_waker(Arc::new(move || {
        counted.fetch_add(1, Ordering::SeqCst);
    }));
    Setup { grid, location, open_gate, wakes }
}

fn set(key: &str, value: i64) -> Command {
    Command::Set { map: "todos".into(), key: key.into(), value: Value::from(value), ttl_ms: None }
}

/// Starts a flush of `key` without running its storage work: its id.
fn start_flush(g: &mut PersistentGrid, key: &str) -> u64 {
    g.sync(set(key, 1)).unwrap();
    match g.sync(Command::Flush).unwrap() {
        Reply::Count(id) => id,
        other => panic!("Flush answered {other:?}"),
    }
}

fn flush_ended(events: &[WireEvent], id: u64) -> Option<&WireEvent> {
    events.iter().find(
        |e| matches!(e, WireEvent::Flushed { flush_id } | WireEvent::FlushFailed { flush_id, .. } if *flush_id == id),
    )
}

/// The task keys stored (without the map's mark).
fn stored(location: &str) -> Vec<String> {
    let mut keys = storage::open(location).unwrap().load_all_keys("todos").unwrap();
    keys.retain(|k| k != MARK_KEY);
    keys.sort();
    keys
}

fn wait_for(wakes: &AtomicUsize, n: usize) {
    for _ in 0..3000 {
        if wakes.load(Ordering::SeqCst) >= n {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the waker was not called {n} times");
}

#[test]
fn an_overlapped_flush_is_done_only_once_its_answers_are_in() {
    let Setup { mut grid, location, open_gate, wakes } = setup("overlap");
    let id = start_flush(&mut grid, "a");

    // The flush's writes are left on the storage thread, held at the gate.
    grid.run_storage_overlapped().unwrap();
    let events = grid.take_events();
    assert!(flush_ended(&events, id).is_none(), "the flush ended before its write: {events:?}");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(wakes.load(Ordering::SeqCst), 0, "woken before the write went through");
    assert_eq!(stored(&location), Vec::<String>::new());

    // The grid goes on meanwhile: a write, and another call that leaves nothing to wait for.
    grid.sync(set("b", 2)).unwrap();
    grid.run_storage_overlapped().unwrap();
    assert!(flush_ended(&grid.take_events(), id).is_none());

    open_gate.send(()).unwrap();
    wait_for(&wakes, 1);
    assert_eq!(stored(&location), ["a"], "committed before the waker was called");
    grid.run_storage_overlapped().unwrap();
    assert!(matches!(flush_ended(&grid.take_events(), id), Some(WireEvent::Flushed { .. })));
    assert_eq!(wakes.load(Ordering::SeqCst), 1);
}

#[test]
fn every_other_call_waits_for_writes_left_committing() {
    let Setup { mut grid, location, open_gate, wakes } = setup("wait");
    let id = start_flush(&mut grid, "a");
    grid.run_storage_overlapped().unwrap();
    assert_eq!(stored(&location), Vec::<String>::new());

    // A blocking flush behind it: both writes pass the gate, in order, before it returns.
    let gate = std::thread::spawn(move || {
        for _ in 0..2 {
            std::thread::sleep(Duration::from_millis(50));
            open_gate.send(()).unwrap();
        }
    });
    grid.call(set("b", 2)).unwrap();
    grid.flush().unwrap();
    gate.join().unwrap();
    assert_eq!(stored(&location), ["a", "b"]);
    assert!(matches!(flush_ended(&grid.take_events(), id), Some(WireEvent::Flushed { .. })));
    assert_eq!(wakes.load(Ordering::SeqCst), 1, "the overlapped batch still woke its caller");
}

#[test]
fn a_dead_adapter_fails_its_writes_and_nothing_hangs() {
    let Setup { mut grid, location, open_gate: _, wakes } = setup("dead");
    let id = start_flush(&mut grid, "panic");
    grid.run_storage_overlapped().unwrap();
    // The adapter panicked on the storage thread: a later call collects a failed flush.
    let mut failed = false;
    for _ in 0..300 {
        grid.run_storage_overlapped().unwrap();
        if let Some(ended) = flush_ended(&grid.take_events(), id).cloned() {
            let WireEvent::FlushFailed { error, .. } = ended else { panic!("{ended:?}") };
            assert_eq!(error.code, "STORAGE", "{error:?}");
            assert!(error.message.contains("the storage thread has stopped"), "{}", error.message);
            failed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(failed, "the flush never ended");
    assert_eq!(wakes.load(Ordering::SeqCst), 0);
    // Later calls fail with the same reason instead of waiting forever.
    let err = grid.flush().unwrap_err();
    assert!(err.to_string().contains("the storage thread has stopped"), "{err}");
    assert_eq!(stored(&location), Vec::<String>::new());
}
