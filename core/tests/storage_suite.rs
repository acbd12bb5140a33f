//! The storage suite (`tests/storage-suite/`) on the core itself: grids whose storage manager is
//! driven by this file's loop over the fake adapter of `common/storage.rs`, which counts calls and
//! fails them on demand; the loop holds loads back when a step asks.

mod common;

#[path = "../../tests/storage-suite/runner.rs"]
mod runner;

use std::collections::BTreeMap;

use common::node;
use common::storage::Fake;
use onegrid_core::{
    AnyMap, ClockConfig, Command, Grid, MapKind, MapStatus, Reply, StorageConfig, StorageEvent, StorageOp,
    StorageRequest,
};
use runner::{Call, Code, Driver, Outcome, Ticket, Write};

#[derive(Default)]
struct Store {
    fake: Fake,
    /// While loads are held: how many more may pass first.
    hold: Option<usize>,
    /// Load requests held back: (grid, its generation, the request).
    held: Vec<(String, u64, StorageRequest)>,
}

struct Open {
    grid: Grid,
    store: String,
    wall: u64,
    /// Told apart from an earlier grid of the same name, whose held requests are dropped.
    generation: u64,
    map_loaded: Vec<(String, u64)>,
}

enum Waiting {
    Load { grid: String, map: String, hint: Option<MapKind> },
    Flush { grid: String, id: u64 },
}

#[derive(Default)]
struct Core {
    stores: BTreeMap<String, Store>,
    grids: BTreeMap<String, Open>,
    generations: u64,
    /// What each ticket waits for, and how it ended.
    tickets: Vec<(Waiting, Option<Outcome>)>,
}

fn code(e: &onegrid_core::Error) -> Code {
    e.kind().code().to_owned()
}

impl Core {
    fn open_grid(&mut self, grid: &str) -> &mut Open {
        self.grids.get_mut(grid).expect("an open grid")
    }

    /// Settles the tickets an event answers (as a driver hands answers to its callers).
    fn event(&mut self, grid: &str, event: StorageEvent) {
        let mut settle = |pick: &dyn Fn(&Waiting) -> bool, outcome: Outcome| {
            for (waiting, result) in &mut self.tickets {
                if result.is_none() && pick(waiting) {
                    *result = Some(outcome.clone());
                }
            }
        };
        let load_of = |name: &str, asked: Option<MapKind>| {
            let name = name.to_owned();
            let grid = grid.to_owned();
            move |w: &Waiting| match w {
                Waiting::Load { grid: g, map, hint } => {
                    *g == grid && *map == name && (asked.is_none() || *hint == asked)
                }
                Waiting::Flush { .. } => false,
            }
        };
        match event {
            StorageEvent::MapLoaded { map, count } => self.open_grid(grid).map_loaded.push((map, count as u64)),
            StorageEvent::Refused { map, asked, error } => settle(&load_of(&map, Some(asked)), Err(code(&error))),
            StorageEvent::Ready { map, kind } => settle(&load_of(&map, None), Ok(Some(kind))),
            StorageEvent::LoadFailed { map, error } => settle(&load_of(&map, None), Err(code(&error))),
            StorageEvent::Flushed { flush_id } => {
                let grid = grid.to_owned();
                settle(&move |w| matches!(w, Waiting::Flush { grid: g, id } if *g == grid && *id == flush_id), Ok(None))
            }
            StorageEvent::FlushFailed { flush_id, kind, .. } => {
                let grid = grid.to_owned();
                let pick =
                    move |w: &Waiting| matches!(w, Waiting::Flush { grid: g, id } if *g == grid && *id == flush_id);
                settle(&pick, Err(kind.code().to_owned()))
            }
        }
    }

    /// Answers one request of `grid` on its store, unless loads are held; true if it was answered.
    fn answer(&mut self, grid: &str, request: StorageRequest) {
        let open = &self.grids[grid];
        let (store, generation) = (open.store.clone(), open.generation);
        let store = self.stores.entry(store).or_default();
        let is_load = matches!(request.op, StorageOp::LoadAllKeys { .. } | StorageOp::LoadAll { .. });
        if is_load && let Some(pass) = &mut store.hold {
            if *pass == 0 {
                store.held.push((grid.to_owned(), generation, request));
                return;
            }
            *pass -= 1;
        }
        let result = store.fake.execute(&request.op);
        let open = self.open_grid(grid);
        open.grid.storage_mut().handle_storage(request.id, result).expect("a pending request");
    }
}

impl Driver for Core {
    fn open(&mut self, grid: &str, node_id: &str, store: &str, related: Option<&str>, clock: u64) {
        let prefix = related.map(String::from);
        let is_related_key = prefix.map(|p| Box::new(move |_: &str, key: &str| key.starts_with(&p)) as _);
        let config = StorageConfig { is_related_key };
        self.generations += 1;
        self.stores.entry(store.to_owned()).or_default();
        let open = Open {
            grid: Grid::with_storage(node(node_id), ClockConfig::default(), config),
            store: store.to_owned(),
            wall: clock,
            generation: self.generations,
            map_loaded: Vec::new(),
        };
        self.grids.insert(grid.to_owned(), open);
    }

    fn set_clock(&mut self, grid: &str, ms: u64) {
        self.open_grid(grid).wall = ms;
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
        let open = self.open_grid(grid);
        open.grid.execute(open.wall, command).map(drop).map_err(|e| code(&e))
    }

    fn touch(&mut self, grid: &str, map: &str, kind: MapKind) -> Result<(), Code> {
        let open = self.open_grid(grid);
        open.grid.open(map, kind, open.wall).map(drop).map_err(|e| code(&e))
    }

    fn start_load(&mut self, grid: &str, map: &str, kind: Option<MapKind>) -> Ticket {
        let open = self.open_grid(grid);
        let result = match open.grid.storage_mut().get_map(map, kind, open.wall) {
            Ok(MapStatus::Loaded(kind)) => Some(Ok(Some(kind))),
            Ok(MapStatus::Loading) => None,
            Err(e) => Some(Err(code(&e))),
        };
        self.tickets.push((Waiting::Load { grid: grid.into(), map: map.into(), hint: kind }, result));
        self.tickets.len() - 1
    }

    fn start_flush(&mut self, grid: &str) -> Ticket {
        let id = self.open_grid(grid).grid.storage_mut().flush();
        self.tickets.push((Waiting::Flush { grid: grid.into(), id }, None));
        self.tickets.len() - 1
    }

    fn settle(&mut self) {
        loop {
            let mut busy = false;
            // Loads released since the last round go first, in the order they were held.
            for store in self.stores.values_mut().filter(|s| s.hold.is_none()) {
                let held = std::mem::take(&mut store.held);
                for (grid, generation, request) in held {
                    let Some(open) = self.grids.get_mut(&grid).filter(|o| o.generation == generation) else { continue };
                    let result = store.fake.execute(&request.op);
                    open.grid.storage_mut().handle_storage(request.id, result).expect("a pending request");
                    busy = true;
                }
            }
            let names: Vec<String> = self.grids.keys().cloned().collect();
            for grid in &names {
                while let Some(request) = self.open_grid(grid).grid.storage_mut().poll_storage() {
                    self.answer(grid, request);
                    busy = true;
                }
                while let Some(event) = self.open_grid(grid).grid.storage_mut().poll_event() {
                    self.event(grid, event);
                }
            }
            if !busy {
                return;
            }
        }
    }

    fn outcome(&mut self, ticket: Ticket) -> Option<Outcome> {
        self.tickets[ticket].1.clone()
    }

    fn view(&mut self, grid: &str, map: &str) -> Result<AnyMap, Code> {
        let grid = &self.open_grid(grid).grid;
        match grid.map(map) {
            Some(map) => Ok(map.clone()),
            None => Err(grid.id_of(map).map_or("NOT_FOUND".into(), |id| code(&grid.storage().missing(id)))),
        }
    }

    fn is_loading(&mut self, grid: &str, map: &str) -> bool {
        self.open_grid(grid).grid.storage().is_map_loading(map)
    }

    fn take_early(&mut self, grid: &str, map: &str) -> Result<Option<Vec<u8>>, Code> {
        Ok(self.open_grid(grid).grid.storage_mut().take_early_map(map).map(|m| m.export()))
    }

    fn export(&mut self, grid: &str, map: &str) -> Result<Vec<u8>, Code> {
        let open = self.open_grid(grid);
        match open.grid.execute(open.wall, Command::Export { map: map.into() }) {
            Ok(Reply::Bytes(bytes)) => Ok(bytes),
            Ok(other) => panic!("Export answered {other:?}"),
            Err(e) => Err(code(&e)),
        }
    }

    fn map_loaded(&mut self, grid: &str) -> Vec<(String, u64)> {
        std::mem::take(&mut self.open_grid(grid).map_loaded)
    }

    fn calls(&mut self, store: &str) -> Vec<Call> {
        let fake = &mut self.stores.entry(store.into()).or_default().fake;
        let call = |op: StorageOp| match op {
            StorageOp::LoadAllKeys { map } => Call { op: "loadAllKeys", map, keys: None },
            StorageOp::LoadAll { map, keys } => Call { op: "loadAll", map, keys: Some(keys) },
            StorageOp::StoreAll { map, entries } => {
                Call { op: "storeAll", map, keys: Some(entries.into_iter().map(|(k, _)| k).collect()) }
            }
            StorageOp::DeleteAll { map, keys } => Call { op: "deleteAll", map, keys: Some(keys) },
        };
        std::mem::take(&mut fake.calls).into_iter().map(call).collect()
    }

    fn stored_keys(&mut self, store: &str, map: &str) -> Vec<String> {
        let fake = &self.stores.entry(store.into()).or_default().fake;
        fake.data.get(map).map(|m| m.keys().cloned().collect()).unwrap_or_default()
    }

    fn put_raw(&mut self, store: &str, map: &str, key: &str, bytes: &[u8]) {
        self.stores.entry(store.into()).or_default().fake.put_raw(map, key, bytes.to_vec());
    }

    fn delete_raw(&mut self, store: &str, map: &str, key: &str) {
        if let Some(m) = self.stores.entry(store.into()).or_default().fake.data.get_mut(map) {
            m.remove(key);
        }
    }

    fn fail(&mut self, store: &str, loads: bool, count: usize) {
        let fake = &mut self.stores.entry(store.into()).or_default().fake;
        *(if loads { &mut fake.fail_loads } else { &mut fake.fail_writes }) += count;
    }

    fn hold_loads(&mut self, store: &str, pass: usize) {
        self.stores.entry(store.into()).or_default().hold = Some(pass);
    }

    fn release_loads(&mut self, store: &str) {
        self.stores.entry(store.into()).or_default().hold = None;
    }
}

#[test]
fn the_core_runs_every_scenario() {
    let ran = runner::run_suite("core", |_| Core::default());
    let (all, skipped) = runner::scenarios_for("core");
    assert_eq!((ran, skipped.len()), (all.len(), 0), "the core supports every step");
}
