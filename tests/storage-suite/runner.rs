//! The storage suite's steps for a Rust driver (see README.md beside this file): the scenarios are
//! read and checked here once; a driver (`core/tests/storage_suite.rs`, `host/tests/storage_suite.rs`,
//! which include this file) only does what a step asks of its grids and stores.
#![allow(dead_code)]

use std::collections::BTreeMap;

use onegrid_core::{AnyMap, MapKind, Value};
use serde_json::{Value as Json, json};

/// The scenarios, as data.
pub const SCENARIOS: &str = include_str!("scenarios.json");

/// An error's code (`KIND_MISMATCH`, `STORAGE`, ...).
pub type Code = String;

/// What a driver handed out for something started (a load, a flush).
pub type Ticket = usize;

/// How something started ended: a load with its kind, a flush with none, or an error's code.
pub type Outcome = Result<Option<MapKind>, Code>;

/// A write, as a step asks for it. `OrRemove` and `Import` come after the map's load.
#[derive(Clone, Debug)]
pub enum Write {
    Set { map: String, key: String, value: Value, ttl: Option<u64> },
    SetMany { map: String, entries: Vec<(String, Value)> },
    Remove { map: String, key: String },
    Add { map: String, key: String, value: Value, ttl: Option<u64> },
    OrRemove { map: String, key: String, value: Value },
    Import { map: String, snapshot: Vec<u8> },
}

/// One adapter call: its op (`loadAllKeys`, `loadAll`, `storeAll`, `deleteAll`), its map and
/// keys (none for `loadAllKeys`; the entries' keys for `storeAll`).
#[derive(Clone, Debug)]
pub struct Call {
    pub op: &'static str,
    pub map: String,
    pub keys: Option<Vec<String>>,
}

/// What a driver does for the steps. Grids and stores are named by the scenario.
pub trait Driver {
    /// Drops the grid `grid` if there is one, and opens a new one on `store` (made empty at its
    /// first use), its wall clock at `clock`; `related` is the key prefix `isRelatedKey` accepts.
    fn open(&mut self, grid: &str, node: &str, store: &str, related: Option<&str>, clock: u64);
    fn set_clock(&mut self, grid: &str, ms: u64);
    fn write(&mut self, grid: &str, write: Write) -> Result<(), Code>;
    /// A map handle of `kind` at once, without waiting.
    fn touch(&mut self, grid: &str, map: &str, kind: MapKind) -> Result<(), Code>;
    fn start_load(&mut self, grid: &str, map: &str, kind: Option<MapKind>) -> Ticket;
    fn start_flush(&mut self, grid: &str) -> Ticket;
    /// Lets storage run until it has nothing left to do but held loads.
    fn settle(&mut self);
    /// How `ticket` ended (a load with its kind, a flush with none), or `None` while it runs.
    fn outcome(&mut self, ticket: Ticket) -> Option<Outcome>;
    /// A copy of the map as the grid has it (loaded, or its early map).
    fn view(&mut self, grid: &str, map: &str) -> Result<AnyMap, Code>;
    fn is_loading(&mut self, grid: &str, map: &str) -> bool;
    /// The writes held aside, as a snapshot; `None` when none are.
    fn take_early(&mut self, grid: &str, map: &str) -> Result<Option<Vec<u8>>, Code>;
    fn export(&mut self, grid: &str, map: &str) -> Result<Vec<u8>, Code>;
    /// The `onMapLoaded` calls since the last time.
    fn map_loaded(&mut self, grid: &str) -> Vec<(String, u64)>;
    /// The adapter calls since the last time.
    fn calls(&mut self, store: &str) -> Vec<Call>;
    fn stored_keys(&mut self, store: &str, map: &str) -> Vec<String>;
    fn put_raw(&mut self, store: &str, map: &str, key: &str, bytes: &[u8]);
    fn delete_raw(&mut self, store: &str, map: &str, key: &str);
    /// The next `count` load calls (`loads`) or write calls fail when they are answered.
    fn fail(&mut self, store: &str, loads: bool, count: usize);
    fn hold_loads(&mut self, store: &str, pass: usize);
    fn release_loads(&mut self, store: &str);
}

/// The scenarios a driver runs: all but those using a step `unsupported` declares for it.
pub fn scenarios_for(driver: &str) -> (Vec<Json>, Vec<String>) {
    let suite: Json = serde_json::from_str(SCENARIOS).expect("scenarios.json is JSON");
    let unsupported = suite["unsupported"][driver].as_object().cloned().unwrap_or_default();
    let (mut run, mut skipped) = (Vec::new(), Vec::new());
    for scenario in suite["scenarios"].as_array().expect("a list of scenarios") {
        // An entry is a step (`touch`) or a step's field (`open.related`).
        let uses = |entry: &str| {
            let (op, field) = entry.split_once('.').map_or((entry, None), |(op, field)| (op, Some(field)));
            let steps = scenario["steps"].as_array().expect("steps");
            steps.iter().any(|s| s["op"] == op && field.is_none_or(|f| s.get(f).is_some()))
        };
        if unsupported.keys().any(|op| uses(op)) {
            skipped.push(scenario["name"].as_str().expect("a name").to_owned());
        } else {
            run.push(scenario.clone());
        }
    }
    (run, skipped)
}

/// Runs every scenario `driver` supports, each on a fresh driver from `fresh`; panics listing the
/// failures. Returns how many ran.
pub fn run_suite<D: Driver>(driver: &str, mut fresh: impl FnMut(usize) -> D) -> usize {
    let (scenarios, skipped) = scenarios_for(driver);
    let mut failures = Vec::new();
    for (index, scenario) in scenarios.iter().enumerate() {
        let name = scenario["name"].as_str().expect("a name");
        let mut state = State {
            driver: fresh(index),
            grids: BTreeMap::new(),
            tickets: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            roots: BTreeMap::new(),
        };
        for (i, step) in scenario["steps"].as_array().expect("steps").iter().enumerate() {
            if let Err(why) = state.step(step) {
                failures.push(format!("{name:?}, step {i} {step}: {why}"));
                break;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed on {driver}:\n{}",
        failures.len(),
        scenarios.len(),
        failures.join("\n")
    );
    println!("{driver}: {} scenarios ran, {} skipped as unsupported: {skipped:?}", scenarios.len(), skipped.len());
    scenarios.len()
}

struct GridState {
    node: String,
    store: String,
    related: Option<String>,
    start: u64,
    wall: u64,
}

struct State<D> {
    driver: D,
    grids: BTreeMap<String, GridState>,
    tickets: BTreeMap<String, Ticket>,
    snapshots: BTreeMap<String, Vec<u8>>,
    roots: BTreeMap<String, u32>,
}

fn text<'a>(step: &'a Json, field: &str) -> Result<&'a str, String> {
    step[field].as_str().ok_or_else(|| format!("the step has no text field {field:?}"))
}

fn kind_of(v: &Json) -> Result<Option<MapKind>, String> {
    match v.as_str() {
        None if v.is_null() => Ok(None),
        Some("lww") => Ok(Some(MapKind::Lww)),
        Some("or") => Ok(Some(MapKind::Or)),
        _ => Err(format!("{v} is no kind")),
    }
}

fn kind_name(kind: Option<MapKind>) -> Json {
    match kind {
        Some(MapKind::Lww) => json!("lww"),
        Some(MapKind::Or) => json!("or"),
        None => Json::Null,
    }
}

/// A JSON value as a grid value.
pub fn value(v: &Json) -> Value {
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::from(n.as_f64().expect("a number")),
        },
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(items) => Value::list(items.iter().map(value)),
        Json::Object(entries) => Value::map(entries.iter().map(|(k, v)| (k.as_str(), value(v)))).expect("a map value"),
    }
}

/// A grid value as JSON.
pub fn json_of(v: &Value) -> Json {
    serde_json::from_str(&v.to_canonical_json()).expect("canonical JSON")
}

/// OR values, sorted by their JSON (their order is not the contract).
fn sorted(values: Vec<&Value>) -> Json {
    let mut all: Vec<Json> = values.into_iter().map(json_of).collect();
    all.sort_by_key(|v| v.to_string());
    Json::Array(all)
}

/// Compares a step's outcome with its `error` (a code) or with success.
fn expect_outcome<T>(step: &Json, outcome: Result<T, Code>) -> Result<Option<T>, String> {
    match (step.get("error").and_then(Json::as_str), outcome) {
        (None, Ok(v)) => Ok(Some(v)),
        (None, Err(code)) => Err(format!("failed with {code}")),
        (Some(want), Err(code)) if code == want => Ok(None),
        (Some(want), Err(code)) => Err(format!("failed with {code}, expected {want}")),
        (Some(want), Ok(_)) => Err(format!("succeeded, expected {want}")),
    }
}

fn same(what: &str, got: Json, want: &Json) -> Result<(), String> {
    if got == *want { Ok(()) } else { Err(format!("{what}: got {got}, expected {want}")) }
}

impl<D: Driver> State<D> {
    fn grid_of(step: &Json) -> String {
        step["grid"].as_str().unwrap_or("g").to_owned()
    }

    fn store_of(step: &Json) -> String {
        step["store"].as_str().unwrap_or("s").to_owned()
    }

    fn wall(&self, grid: &str) -> u64 {
        self.grids.get(grid).map_or(0, |g| g.wall)
    }

    /// Waits for the map's load (reads and the writes that observe what is stored do).
    fn loaded(&mut self, grid: &str, map: &str, kind: Option<MapKind>) -> Result<(), Code> {
        let ticket = self.driver.start_load(grid, map, kind);
        self.driver.settle();
        match self.driver.outcome(ticket) {
            Some(Ok(_)) => Ok(()),
            Some(Err(code)) => Err(code),
            None => Err("NEVER_LOADED".into()),
        }
    }

    /// The map to read: loaded first, unless the step reads it `now`.
    fn view(&mut self, step: &Json, grid: &str, map: &str) -> Result<AnyMap, Code> {
        if step["now"] != json!(true) {
            self.loaded(grid, map, None)?;
        }
        self.driver.view(grid, map)
    }

    fn step(&mut self, step: &Json) -> Result<(), String> {
        let op = text(step, "op")?;
        let grid = Self::grid_of(step);
        let store = Self::store_of(step);
        let settle_after = step.get("as").is_none();
        match op {
            "open" | "restart" => {
                let (node, store, related, start) = if op == "open" {
                    let start = step["clock"].as_u64().unwrap_or(1_000_000);
                    (text(step, "node")?.to_owned(), store, step["related"].as_str().map(String::from), start)
                } else {
                    let g = self.grids.get(&grid).ok_or("restart of a grid never opened")?;
                    let node = step["node"].as_str().unwrap_or(&g.node).to_owned();
                    (node, g.store.clone(), g.related.clone(), step["clock"].as_u64().unwrap_or(g.start))
                };
                self.driver.open(&grid, &node, &store, related.as_deref(), start);
                self.grids.insert(grid.clone(), GridState { node, store, related, start, wall: start });
            }
            "clock" => {
                let ms = step["ms"].as_u64().ok_or("no ms")?;
                self.grids.get_mut(&grid).ok_or("no such grid")?.wall = ms;
                self.driver.set_clock(&grid, ms);
            }
            "set" | "set_n" | "remove" | "add" | "or_remove" | "import" => {
                let map = text(step, "map")?.to_owned();
                let key = || step["key"].as_str().unwrap_or_default().to_owned();
                let ttl = step["ttl"].as_u64();
                let write = match op {
                    "set" => Write::Set { map, key: key(), value: value(&step["value"]), ttl },
                    "set_n" => {
                        let count = step["count"].as_u64().ok_or("no count")?;
                        let entries = (0..count).map(|i| (format!("k{i}"), Value::Int(i as i64))).collect();
                        Write::SetMany { map, entries }
                    }
                    "remove" => Write::Remove { map, key: key() },
                    "add" => Write::Add { map, key: key(), value: value(&step["value"]), ttl },
                    "or_remove" => Write::OrRemove { map, key: key(), value: value(&step["value"]) },
                    _ => {
                        let from = text(step, "from")?;
                        let snapshot = self.snapshots.get(from).ok_or_else(|| format!("no snapshot {from:?}"))?.clone();
                        Write::Import { map, snapshot }
                    }
                };
                let outcome = match &write {
                    Write::OrRemove { map, .. } => self.loaded(&grid, map, Some(MapKind::Or)),
                    Write::Import { map, snapshot } => {
                        self.loaded(&grid, map, onegrid_core::codec::snapshot_kind(snapshot))
                    }
                    _ => Ok(()),
                };
                let outcome = outcome.and_then(|()| self.driver.write(&grid, write));
                expect_outcome(step, outcome)?;
            }
            "touch" => {
                let kind = kind_of(&step["kind"])?.ok_or("touch needs a kind")?;
                let outcome = self.driver.touch(&grid, text(step, "map")?, kind);
                expect_outcome(step, outcome)?;
            }
            "load" => {
                let ticket = self.driver.start_load(&grid, text(step, "map")?, kind_of(&step["kind"])?);
                match step["as"].as_str() {
                    Some(name) => {
                        self.tickets.insert(name.to_owned(), ticket);
                    }
                    None => {
                        self.driver.settle();
                        self.check_ticket(step, ticket)?;
                    }
                }
            }
            "flush" => {
                let ticket = self.driver.start_flush(&grid);
                match step["as"].as_str() {
                    Some(name) => {
                        self.tickets.insert(name.to_owned(), ticket);
                    }
                    None => {
                        self.driver.settle();
                        self.check_ticket(step, ticket)?;
                    }
                }
            }
            "await" | "pending" => {
                let name = text(step, "name")?;
                let ticket = *self.tickets.get(name).ok_or_else(|| format!("nothing started as {name:?}"))?;
                self.driver.settle();
                if op == "await" {
                    self.check_ticket(step, ticket)?;
                } else if let Some(outcome) = self.driver.outcome(ticket) {
                    return Err(format!("{name:?} ended ({outcome:?}), expected it still running"));
                }
            }
            "fail" => {
                let loads = match text(step, "what")? {
                    "load" => true,
                    "write" => false,
                    other => return Err(format!("fail what {other:?}?")),
                };
                self.driver.fail(&store, loads, step["count"].as_u64().unwrap_or(1) as usize);
            }
            "hold_loads" => self.driver.hold_loads(&store, step["pass"].as_u64().unwrap_or(0) as usize),
            "release_loads" => self.driver.release_loads(&store),
            "corrupt" => self.driver.put_raw(&store, text(step, "map")?, text(step, "key")?, &[0xff, 0x00, 0x13]),
            "delete_stored" => self.driver.delete_raw(&store, text(step, "map")?, text(step, "key")?),
            "get" | "or_get" | "entries" | "record" | "tombstones" | "root" => {
                let map = text(step, "map")?;
                let view = self.view(step, &grid, map);
                let Some(view) = expect_outcome(step, view)? else { return Ok(()) };
                self.read(op, step, &grid, view)?;
            }
            "loading" => {
                let got = self.driver.is_loading(&grid, text(step, "map")?);
                same("loading", json!(got), &step["expect"])?;
            }
            "export" | "take_early_writes" => {
                let map = text(step, "map")?;
                let outcome = if op == "export" {
                    self.driver.export(&grid, map).map(Some)
                } else {
                    self.driver.take_early(&grid, map)
                };
                let Some(snapshot) = expect_outcome(step, outcome)? else { return Ok(()) };
                match (step["as"].as_str(), snapshot) {
                    (Some(name), Some(bytes)) => {
                        self.snapshots.insert(name.to_owned(), bytes);
                    }
                    (None, None) => {}
                    (Some(_), None) => return Err("no writes were held".into()),
                    (None, Some(_)) => return Err("writes were held, expected none".into()),
                }
            }
            "stored_keys" => {
                let got = self.driver.stored_keys(&store, text(step, "map")?);
                same("stored keys", json!(got), &step["expect"])?;
            }
            "calls" => self.check_calls(step, &store)?,
            "map_loaded" => {
                let got: Vec<Json> = self.driver.map_loaded(&grid).into_iter().map(|(m, n)| json!([m, n])).collect();
                same("onMapLoaded calls", Json::Array(got), &step["expect"])?;
            }
            other => return Err(format!("unknown step {other:?}")),
        }
        if settle_after {
            self.driver.settle();
        }
        Ok(())
    }

    fn check_ticket(&mut self, step: &Json, ticket: Ticket) -> Result<(), String> {
        let outcome = self.driver.outcome(ticket).ok_or("it did not end")?;
        if let Some(kind) = expect_outcome(step, outcome)?
            && let Some(want) = step.get("expect")
        {
            same("kind", kind_name(kind), want)?;
        }
        Ok(())
    }

    fn read(&mut self, op: &str, step: &Json, grid: &str, view: AnyMap) -> Result<(), String> {
        let wall = self.wall(grid);
        let key = step["key"].as_str().unwrap_or_default();
        let want = &step["expect"];
        match (op, &view) {
            ("get", AnyMap::Lww(m)) => same("value", m.get(key, wall).as_ref().map_or(Json::Null, json_of), want),
            ("or_get", AnyMap::Or(m)) => same("values", sorted(m.get(key, wall)), want),
            ("entries", AnyMap::Lww(m)) => {
                let got = m.entries(wall).into_iter().map(|(k, v)| json!([k, json_of(&v)])).collect();
                same("entries", Json::Array(got), want)
            }
            ("entries", AnyMap::Or(m)) => {
                let got = m.entries(wall).into_iter().map(|(k, vs)| json!([k, sorted(vs)])).collect();
                same("entries", Json::Array(got), want)
            }
            ("record", AnyMap::Lww(m)) => {
                let record = m.get_record(key).ok_or("no record")?;
                if let Some(deleted) = step.get("deleted") {
                    same("deleted", json!(record.value.is_none()), deleted)?;
                }
                if let Some(ttl) = step.get("ttl") {
                    same("ttl", json!(record.ttl_ms), ttl)?;
                }
                match step["min_millis"].as_u64() {
                    Some(min) if record.timestamp.millis < min => {
                        Err(format!("stamped at {}, expected at least {min}", record.timestamp.millis))
                    }
                    _ => Ok(()),
                }
            }
            ("tombstones", AnyMap::Or(m)) => same("tombstones", json!(m.tombstones().len()), want),
            ("root", _) => {
                let root = view.root();
                if let Some(name) = step["save"].as_str() {
                    self.roots.insert(name.to_owned(), root);
                }
                match step["same_as"].as_str() {
                    Some(name) => same("root", json!(root), &json!(self.roots.get(name).ok_or("no such root")?)),
                    None => Ok(()),
                }
            }
            (op, map) => Err(format!("{op} on an {} map", map.kind())),
        }
    }

    fn check_calls(&mut self, step: &Json, store: &str) -> Result<(), String> {
        let calls = self.driver.calls(store);
        for op in ["loadAllKeys", "loadAll", "storeAll", "deleteAll"] {
            let Some(want) = step.get(op) else { continue };
            let of_op: Vec<&Call> = calls.iter().filter(|c| c.op == op).collect();
            let got = match want {
                Json::Number(_) => json!(of_op.len()),
                _ => Json::Array(
                    of_op
                        .iter()
                        .zip(
                            want.as_array()
                                .ok_or("calls: a count or a list")?
                                .iter()
                                .chain(std::iter::repeat(&Json::Null)),
                        )
                        .map(|(call, w)| match (&call.keys, w.get(1)) {
                            (Some(keys), Some(Json::Number(_))) => json!([call.map, keys.len()]),
                            (Some(keys), Some(_)) => json!([call.map, keys]),
                            _ => json!([call.map]),
                        })
                        .collect(),
                ),
            };
            same(&format!("{op} calls"), got, want)?;
        }
        Ok(())
    }
}
