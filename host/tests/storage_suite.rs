//! The storage suite (`tests/storage-suite/`) on the host: each grid a [`PersistentGrid`] (the
//! module in wasmtime, its storage manager driven over the byte ABI), its store a SQLite file or a
//! PostgreSQL schema (`$ONEGRID_TEST_POSTGRES`; without it the PostgreSQL test fails and says how to
//! start one), behind a spy that counts calls and fails them on demand.
#![allow(clippy::unwrap_used)]

mod common;

#[path = "../../tests/storage-suite/runner.rs"]
mod runner;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use onegrid_core::storage::StorageOp;
use onegrid_core::{AnyMap, ClockConfig, Command, Grid, MapKind, NodeId, Reply, WireEvent};
use onegrid_host::persistent::{GridError, PersistentGrid};
use onegrid_host::storage::{self, Storage, StorageError};
use runner::{Call, Code, Driver, Outcome, Ticket, Write};

thread_local! {
    /// The wall clock of the grid being called (a `PersistentGrid` takes a plain `fn`).
    static NOW: Cell<u64> = const { Cell::new(0) };
}

fn now() -> u64 {
    NOW.with(Cell::get)
}

/// What the spy of one store saw, and the failures it is to make.
#[derive(Default)]
struct Log {
    calls: Vec<Call>,
    fail_loads: usize,
    fail_writes: usize,
}

/// A real adapter that counts its calls and fails on demand.
struct Spy {
    inner: Box<dyn Storage>,
    log: Arc<Mutex<Log>>,
}

impl Spy {
    fn note(&self, op: &'static str, map: &str, keys: Option<Vec<String>>) -> Result<(), StorageError> {
        let mut log = self.log.lock().unwrap();
        log.calls.push(Call { op, map: map.to_owned(), keys });
        let fail = if op.starts_with("load") { &mut log.fail_loads } else { &mut log.fail_writes };
        if *fail > 0 {
            *fail -= 1;
            return Err(StorageError::on_map("spy", op, map, "disk on fire"));
        }
        Ok(())
    }
}

impl Storage for Spy {
    fn load_all_keys(&mut self, map: &str) -> Result<Vec<String>, StorageError> {
        self.note("loadAllKeys", map, None)?;
        self.inner.load_all_keys(map)
    }
    fn load_all(&mut self, map: &str, keys: &[String]) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        self.note("loadAll", map, Some(keys.to_vec()))?;
        self.inner.load_all(map, keys)
    }
    fn store(&mut self, map: &str, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.inner.store(map, key, value)
    }
    fn store_all(&mut self, map: &str, entries: &[(String, Vec<u8>)]) -> Result<(), StorageError> {
        self.note("storeAll", map, Some(entries.iter().map(|(k, _)| k.clone()).collect()))?;
        self.inner.store_all(map, entries)
    }
    fn delete(&mut self, map: &str, key: &str) -> Result<(), StorageError> {
        self.inner.delete(map, key)
    }
    fn delete_all(&mut self, map: &str, keys: &[String]) -> Result<(), StorageError> {
        self.note("deleteAll", map, Some(keys.to_vec()))?;
        self.inner.delete_all(map, keys)
    }
    /// Notes each write of a group as its own call, as the other drivers make them. With failures
    /// to make, the group fails unnoted, so its writes run (and fail) one by one.
    fn write_all(&mut self, writes: &[&StorageOp]) -> Result<(), StorageError> {
        if self.log.lock().unwrap().fail_writes > 0 {
            return Err(StorageError::on_map("spy", "write_all", "", "a failure is to be made"));
        }
        for op in writes {
            match op {
                StorageOp::StoreAll { map, entries } => {
                    self.note("storeAll", map, Some(entries.iter().map(|(k, _)| k.clone()).collect()))?
                }
                StorageOp::DeleteAll { map, keys } => self.note("deleteAll", map, Some(keys.clone()))?,
                StorageOp::LoadAllKeys { .. } | StorageOp::LoadAll { .. } => {}
            }
        }
        self.inner.write_all(writes)
    }
}

struct Store {
    location: String,
    log: Arc<Mutex<Log>>,
    /// A connection of its own, for what a step reads or writes straight in the store.
    direct: Box<dyn Storage>,
}

struct Open {
    grid: PersistentGrid,
    wall: u64,
}

struct Host {
    /// A new store's location.
    locate: Box<dyn FnMut(&str) -> String>,
    stores: BTreeMap<String, Store>,
    grids: BTreeMap<String, Open>,
    tickets: Vec<Outcome>,
}

fn code(e: &GridError) -> Code {
    e.code().to_owned()
}

impl Host {
    fn store(&mut self, name: &str) -> &mut Store {
        if !self.stores.contains_key(name) {
            let location = (self.locate)(name);
            let direct = storage::open(&location).unwrap();
            self.stores.insert(name.to_owned(), Store { location, log: Arc::default(), direct });
        }
        self.stores.get_mut(name).unwrap()
    }

    /// The grid, its clock set for the call.
    fn grid(&mut self, grid: &str) -> &mut PersistentGrid {
        let open = self.grids.get_mut(grid).expect("an open grid");
        NOW.with(|n| n.set(open.wall));
        &mut open.grid
    }

    fn call(&mut self, grid: &str, command: Command) -> Result<Reply, Code> {
        self.grid(grid).call(command).map_err(|e| code(&e))
    }
}

impl Driver for Host {
    fn open(&mut self, grid: &str, node: &str, store: &str, related: Option<&str>, clock: u64) {
        assert!(related.is_none(), "unsupported: the scenario should have been skipped");
        self.grids.remove(grid);
        let store = self.store(store);
        let spy = Spy { inner: storage::open(&store.location).unwrap(), log: store.log.clone() };
        let opened = PersistentGrid::open(common::runtime(), node, Box::new(spy)).unwrap().with_clock(now);
        self.grids.insert(grid.to_owned(), Open { grid: opened, wall: clock });
    }

    fn set_clock(&mut self, grid: &str, ms: u64) {
        self.grids.get_mut(grid).unwrap().wall = ms;
    }

    fn write(&mut self, grid: &str, write: Write) -> Result<(), Code> {
        let command = match write {
            Write::Set { map, key, value, ttl } => Command::Set { map, key, value, ttl_ms: ttl },
            Write::SetMany { map, entries } => Command::SetMany { map, entries },
            Write::Remove { map, key } => Command::Remove { map, key },
            Write::Add { map, key, value, ttl } => Command::Add { map, key, value, ttl_ms: ttl },
            Write::OrRemove { map, key, value } => Command::OrRemove { map, key, value },
            Write::Import { map, snapshot } => Command::Import { map, snapshot },
        };
        self.call(grid, command).map(drop)
    }

    fn touch(&mut self, _: &str, _: &str, _: MapKind) -> Result<(), Code> {
        unreachable!("unsupported: the scenario should have been skipped")
    }

    fn start_load(&mut self, grid: &str, map: &str, kind: Option<MapKind>) -> Ticket {
        // Storage blocks: the load has ended when `get_map` returns.
        let outcome = self.grid(grid).get_map(map, kind).map(Some).map_err(|e| code(&e));
        self.tickets.push(outcome);
        self.tickets.len() - 1
    }

    fn start_flush(&mut self, grid: &str) -> Ticket {
        let outcome = self.grid(grid).flush().map(|()| None).map_err(|e| code(&e));
        self.tickets.push(outcome);
        self.tickets.len() - 1
    }

    fn settle(&mut self) {}

    fn outcome(&mut self, ticket: Ticket) -> Option<Outcome> {
        Some(self.tickets[ticket].clone())
    }

    fn view(&mut self, grid: &str, map: &str) -> Result<AnyMap, Code> {
        // The byte ABI reads key by key: the map's snapshot, read back by the core, shows it whole.
        let snapshot = self.export(grid, map)?;
        let mut copy = Grid::new(NodeId::new("view").unwrap(), ClockConfig::default());
        copy.import_map(map, &snapshot, self.grids[grid].wall).unwrap();
        Ok(copy.map(map).unwrap().clone())
    }

    fn is_loading(&mut self, _: &str, _: &str) -> bool {
        false // a load ends within the call that starts it
    }

    fn take_early(&mut self, grid: &str, map: &str) -> Result<Option<Vec<u8>>, Code> {
        match self.call(grid, Command::TakeEarlyWrites { map: map.into() }) {
            Ok(Reply::Bytes(bytes)) => Ok(Some(bytes)),
            Ok(other) => panic!("TakeEarlyWrites answered {other:?}"),
            Err(code) if code == "NOT_FOUND" => Ok(None),
            Err(code) => Err(code),
        }
    }

    fn export(&mut self, grid: &str, map: &str) -> Result<Vec<u8>, Code> {
        match self.call(grid, Command::Export { map: map.into() })? {
            Reply::Bytes(bytes) => Ok(bytes),
            other => panic!("Export answered {other:?}"),
        }
    }

    fn map_loaded(&mut self, grid: &str) -> Vec<(String, u64)> {
        let events = self.grid(grid).take_events();
        events
            .into_iter()
            .filter_map(|e| match e {
                WireEvent::MapLoaded { map, count } => Some((map, count)),
                _ => None,
            })
            .collect()
    }

    fn calls(&mut self, store: &str) -> Vec<Call> {
        std::mem::take(&mut self.store(store).log.lock().unwrap().calls)
    }

    fn stored_keys(&mut self, store: &str, map: &str) -> Vec<String> {
        let mut keys = self.store(store).direct.load_all_keys(map).unwrap();
        keys.sort();
        keys
    }

    fn put_raw(&mut self, store: &str, map: &str, key: &str, bytes: &[u8]) {
        self.store(store).direct.store(map, key, bytes).unwrap();
    }

    fn delete_raw(&mut self, store: &str, map: &str, key: &str) {
        self.store(store).direct.delete(map, key).unwrap();
    }

    fn fail(&mut self, store: &str, loads: bool, count: usize) {
        let store = self.store(store);
        let mut log = store.log.lock().unwrap();
        *(if loads { &mut log.fail_loads } else { &mut log.fail_writes }) += count;
    }

    fn hold_loads(&mut self, _: &str, _: usize) {
        unreachable!("unsupported: the scenario should have been skipped")
    }

    fn release_loads(&mut self, _: &str) {
        unreachable!("unsupported: the scenario should have been skipped")
    }
}

fn host(locate: impl FnMut(&str) -> String + 'static) -> Host {
    Host { locate: Box::new(locate), stores: BTreeMap::new(), grids: BTreeMap::new(), tickets: Vec::new() }
}

/// Every scenario the host supports ran (`unsupported` in scenarios.json says which it cannot).
fn runs_every_supported_scenario(ran: usize) {
    let (supported, skipped) = runner::scenarios_for("host");
    assert_eq!(ran, supported.len());
    assert!(ran > skipped.len(), "most scenarios run on the host: {ran} ran, {} skipped", skipped.len());
}

#[test]
fn sqlite_runs_every_supported_scenario() {
    let ran = runner::run_suite("host", |index| {
        host(move |store| {
            let dir = common::fresh_dir(&format!("storage-suite-{index}-{store}"));
            dir.join("grid.db").to_str().unwrap().to_owned()
        })
    });
    runs_every_supported_scenario(ran);
}

#[test]
fn postgres_runs_every_supported_scenario() {
    let ran = runner::run_suite("host", |_| host(|_| common::postgres_schema_url()));
    runs_every_supported_scenario(ran);
}
