//! `RawGrid`: the class the JavaScript wrapper (`wasm/js/onegrid.js`) drives. Internal: app
//! developers use `Grid`, `LwwMap` and `OrMap` from the wrapper.
//!
//! Calls pass only numbers. Arguments travel through an input buffer inside the module that the
//! wrapper fills (`input(len)` gives its address), and results through an output buffer it reads
//! (`output()` gives its address); both hold postcard in the shapes of [`crate::interop`]. So a
//! `set` costs one call and no allocation for its arguments. Cold structured results (a record,
//! drift reports) come back as JS values instead ([`crate::interop::to_js`]). Wall time comes in as an argument:
//! the wrapper reads the embedder's clock, and no method calls back into JavaScript.

use onegrid_core::{
    AnyMap, ChangeEvent, ClockConfig, Drift, Grid, Hlc, LwwMap, MapId, MapKind, NodeId, OrMap, StorageConfig, Value,
};
use wasm_bindgen::prelude::*;

use onegrid_core::codec::{put_str, put_value, put_varint};
use onegrid_core::sync::{ConnId, ConnState, Hub, SyncConfig};

use crate::interop::to_js::{DriftJs, RecordJs, to_js};
use crate::interop::{Failure, decode_exact, js_error, origin_byte, take_str, take_value, ttl_arg};

/// One grid as the wrapper sees it.
#[wasm_bindgen]
pub struct RawGrid {
    pub(crate) grid: Grid,
    /// Lenient-mode drift reports not yet handed to `onDrift` (from imports and sync).
    pub(crate) drifts: Vec<Drift>,
    /// The grid's sync connections (`crate::js_sync`); storage events reach it in `js_storage`.
    pub(crate) hub: Hub,
    /// The connections the wrapper drives, with the state it was last told of.
    pub(crate) conns: Vec<(ConnId, ConnState)>,
    pub(crate) input: Vec<u8>,
    pub(crate) output: Vec<u8>,
    /// The error behind the last failed status code.
    pub(crate) error: Option<Failure>,
}

pub(crate) fn wall(ms: f64) -> u64 {
    // The wrapper checked it is a finite number >= 0; `as` truncates a fraction.
    ms as u64
}

/// The first `len` bytes of the input buffer.
pub(crate) fn args(input: &[u8], len: u32) -> Result<&[u8], Failure> {
    input.get(..len as usize).ok_or_else(|| Failure::malformed("onegrid: argument longer than the input buffer"))
}

/// The map behind a handle, for reading: loaded, or what was written while it loads.
fn read_of(grid: &Grid, map: u32) -> Result<&AnyMap, Failure> {
    grid.map_at(MapId(map)).ok_or_else(|| Failure::from(grid.storage().missing(MapId(map))))
}

pub(crate) fn lww_read(grid: &Grid, map: u32) -> Result<&LwwMap, Failure> {
    match read_of(grid, map)? {
        AnyMap::Lww(m) => Ok(m),
        AnyMap::Or(_) => Err(Failure::invalid("onegrid: not an LWW map handle")),
    }
}

fn or_read(grid: &Grid, map: u32) -> Result<&OrMap, Failure> {
    match read_of(grid, map)? {
        AnyMap::Or(m) => Ok(m),
        AnyMap::Lww(_) => Err(Failure::invalid("onegrid: not an OR map handle")),
    }
}

/// The map behind a handle and the clock, to write (an unloaded map is touched, so it reloads).
pub(crate) fn lww_write(grid: &mut Grid, map: u32, now: f64) -> Result<(&mut LwwMap, &mut Hlc), Failure> {
    match grid.write_at(MapId(map), MapKind::Lww, wall(now))? {
        (AnyMap::Lww(m), clock) => Ok((m, clock)),
        (AnyMap::Or(_), _) => Err(Failure::invalid("onegrid: not an LWW map handle")),
    }
}

fn or_write(grid: &mut Grid, map: u32, now: f64) -> Result<(&mut OrMap, &mut Hlc), Failure> {
    match grid.write_at(MapId(map), MapKind::Or, wall(now))? {
        (AnyMap::Or(m), clock) => Ok((m, clock)),
        (AnyMap::Lww(_), _) => Err(Failure::invalid("onegrid: not an OR map handle")),
    }
}

/// Decodes a key argument.
pub(crate) fn key_arg(input: &[u8], len: u32) -> Result<&str, Failure> {
    decode_exact(args(input, len)?, "key")
}

/// Decodes a key argument to read: the reserved keys are refused (SPEC section 3), as writes
/// refuse them.
fn read_key_arg(input: &[u8], len: u32) -> Result<&str, Failure> {
    let key = key_arg(input, len)?;
    onegrid_core::check_key(key)?;
    Ok(key)
}

/// Decodes a `(key, value)` argument, the value in canonical form.
fn pair_arg(input: &[u8], len: u32) -> Result<(&str, Value), Failure> {
    // The tuple's fields one after the other, as postcard decodes a tuple, the value by the core's
    // decoder.
    let malformed =
        |e: postcard::Error| Failure::malformed(format!("onegrid: malformed arguments from JavaScript: {e}"));
    let (key, rest) = postcard::take_from_bytes::<&str>(args(input, len)?).map_err(malformed)?;
    let (value, rest) = onegrid_core::codec::take_value(rest).map_err(malformed)?;
    if !rest.is_empty() {
        return Err(Failure::malformed("onegrid: malformed arguments from JavaScript: trailing bytes"));
    }
    Ok((key, value.normalize()?))
}

/// Appends a postcard list of values.
fn put_values<'a>(out: &mut Vec<u8>, values: impl ExactSizeIterator<Item = &'a Value>) {
    put_varint(out, values.len() as u64);
    for value in values {
        put_value(out, value);
    }
}

impl RawGrid {
    /// 0 for success; for a failure, keeps its message for `takeError` and returns 1.
    pub(crate) fn status(&mut self, result: Result<(), Failure>) -> u32 {
        match result {
            Ok(()) => 0,
            Err(f) => {
                self.error = Some(f);
                1
            }
        }
    }

    fn open(&mut self, now: f64, name_len: u32, kind: MapKind) -> Result<u32, JsValue> {
        let name = key_arg(&self.input, name_len)?;
        self.grid.open(name, kind, wall(now)).map(|id| id.0).map_err(js_error)
    }
}

#[wasm_bindgen]
impl RawGrid {
    /// A grid for `node_id`; `persistent` when the wrapper drives a storage adapter for it.
    #[wasm_bindgen(constructor)]
    pub fn new(node_id: &str, max_drift_ms: f64, strict: bool, persistent: bool) -> Result<RawGrid, JsValue> {
        let node_id = NodeId::new(node_id).map_err(js_error)?;
        let config = ClockConfig { max_drift_ms: max_drift_ms as u64, strict };
        let grid = if persistent {
            // `isRelatedKey` runs in the wrapper, which filters the key lists it hands back.
            Grid::with_storage(node_id, config, StorageConfig::default())
        } else {
            Grid::new(node_id, config)
        };
        Ok(RawGrid {
            grid,
            drifts: Vec::new(),
            hub: Hub::new(SyncConfig::default()),
            conns: Vec::new(),
            input: Vec::new(),
            output: Vec::new(),
            error: None,
        })
    }

    /// The address of an input buffer of at least `len` bytes. It stays put until a larger one is
    /// asked for.
    pub fn input(&mut self, len: u32) -> u32 {
        let len = len as usize;
        if self.input.len() < len {
            self.input.resize(len.next_power_of_two(), 0);
        }
        self.input.as_ptr() as u32
    }

    /// The address of the output buffer (valid until the next call).
    pub fn output(&self) -> u32 {
        self.output.as_ptr() as u32
    }

    /// The node id.
    #[wasm_bindgen(js_name = nodeId)]
    pub fn node_id(&self) -> String {
        self.grid.node_id().as_str().to_owned()
    }

    /// The id of the LWW map named by the input (a postcard string), created on first use.
    #[wasm_bindgen(js_name = openLww)]
    pub fn open_lww(&mut self, now: f64, name_len: u32) -> Result<u32, JsValue> {
        self.open(now, name_len, MapKind::Lww)
    }

    /// The id of the OR map named by the input, created on first use.
    #[wasm_bindgen(js_name = openOr)]
    pub fn open_or(&mut self, now: f64, name_len: u32) -> Result<u32, JsValue> {
        self.open(now, name_len, MapKind::Or)
    }

    /// Map names, sorted.
    #[wasm_bindgen(js_name = mapNames)]
    pub fn map_names(&self) -> Vec<String> {
        self.grid.map_names().into_iter().map(str::to_owned).collect()
    }

    /// `"lww"`, `"or"` or `undefined`.
    #[wasm_bindgen(js_name = mapKind)]
    pub fn map_kind(&self, name: &str) -> Option<String> {
        self.grid.map(name).map(|m| m.kind().as_str().to_owned())
    }

    /// LWW `set`; input: `(key, value)`. `ttl < 0` means none. Returns 0, or 1 after an error
    /// (its message waits in `takeError`).
    #[wasm_bindgen(js_name = lwwSet)]
    pub fn lww_set(&mut self, map: u32, now: f64, len: u32, ttl: f64) -> u32 {
        let result = (|| {
            let (key, rest) = take_str(args(&self.input, len)?)?;
            let (value, rest) = take_value(rest)?;
            if !rest.is_empty() {
                return Err(Failure::malformed("onegrid: malformed arguments from JavaScript: trailing bytes"));
            }
            let (m, clock) = lww_write(&mut self.grid, map, now)?;
            m.set_encoded(clock, wall(now), key, value, ttl_arg(ttl))?;
            Ok(())
        })();
        self.status(result)
    }

    /// LWW `set` of many entries, all or nothing; input: `[(key, value)]`. Returns 0 or 1 (error).
    #[wasm_bindgen(js_name = lwwSetMany)]
    pub fn lww_set_many(&mut self, map: u32, now: f64, len: u32) -> u32 {
        let result = (|| {
            let (count, mut rest) = postcard::take_from_bytes::<u32>(args(&self.input, len)?)
                .map_err(|e| Failure::malformed(format!("onegrid: malformed batch from JavaScript: {e}")))?;
            let mut entries = Vec::with_capacity((count as usize).min(rest.len()));
            for _ in 0..count {
                let (key, after_key) = take_str(rest)?;
                let (value, after_value) = take_value(after_key)?;
                entries.push((key, value));
                rest = after_value;
            }
            if !rest.is_empty() {
                return Err(Failure::malformed("onegrid: malformed batch from JavaScript: trailing bytes"));
            }
            let (m, clock) = lww_write(&mut self.grid, map, now)?;
            m.set_many_encoded(clock, wall(now), entries)?;
            Ok(())
        })();
        self.status(result)
    }

    /// LWW `remove`; input: `key`. Returns 0 or 1 (error).
    #[wasm_bindgen(js_name = lwwRemove)]
    pub fn lww_remove(&mut self, map: u32, now: f64, len: u32) -> u32 {
        let result = (|| {
            let key = key_arg(&self.input, len)?;
            let (m, clock) = lww_write(&mut self.grid, map, now)?;
            m.remove(clock, wall(now), key)?;
            Ok(())
        })();
        self.status(result)
    }

    /// LWW `get`; input: `key`. Output: the value; returns its length, -1 when there is none,
    /// -2 after an error (see `takeError`).
    #[wasm_bindgen(js_name = lwwGet)]
    pub fn lww_get(&mut self, map: u32, now: f64, len: u32) -> i32 {
        let result = (|| {
            let key = read_key_arg(&self.input, len)?;
            let m = lww_read(&self.grid, map)?;
            Ok(match m.get_encoded(key, wall(now)) {
                Some(v) => {
                    self.output.clear();
                    self.output.extend_from_slice(v.as_bytes());
                    self.output.len() as i32
                }
                None => -1,
            })
        })();
        result.unwrap_or_else(|f: Failure| {
            self.error = Some(f);
            -2
        })
    }

    /// The error a status-returning method reported last, as an `OnegridError` to throw.
    #[wasm_bindgen(js_name = takeError)]
    pub fn take_error(&mut self) -> JsValue {
        let failure = self.error.take();
        failure.unwrap_or_else(|| Failure::invalid("onegrid: takeError() without a failed call")).to_js()
    }

    /// True when `get` would return a value; input: `key`.
    #[wasm_bindgen(js_name = lwwHas)]
    pub fn lww_has(&mut self, map: u32, now: f64, len: u32) -> Result<bool, JsValue> {
        let key = read_key_arg(&self.input, len)?;
        Ok(lww_read(&self.grid, map)?.get(key, wall(now)).is_some())
    }

    /// Visible entries, sorted by key, to the output (shape: entries); returns the length.
    #[wasm_bindgen(js_name = lwwEntries)]
    pub fn lww_entries(&mut self, map: u32, now: f64) -> Result<u32, JsValue> {
        let entries = lww_read(&self.grid, map)?.entries_encoded(wall(now));
        let out = &mut self.output;
        out.clear();
        put_varint(out, entries.len() as u64);
        for (key, value) in entries {
            put_str(out, key);
            out.extend_from_slice(value.as_bytes());
        }
        Ok(out.len() as u32)
    }

    /// Visible keys, sorted.
    #[wasm_bindgen(js_name = lwwKeys)]
    pub fn lww_keys(&mut self, map: u32, now: f64) -> Result<Vec<String>, JsValue> {
        Ok(lww_read(&self.grid, map)?.live_keys(wall(now)).into_iter().map(str::to_owned).collect())
    }

    /// Number of visible entries.
    #[wasm_bindgen(js_name = lwwSize)]
    pub fn lww_size(&mut self, map: u32, now: f64) -> Result<u32, JsValue> {
        Ok(lww_read(&self.grid, map)?.len(wall(now)) as u32)
    }

    /// The stored record of the key in the input: `{ value, deleted, timestamp, ttlMs? }`, or
    /// `undefined` when there is none.
    #[wasm_bindgen(js_name = lwwRecord, unchecked_return_type = "import('./onegrid.js').LwwRecordView | undefined")]
    pub fn lww_record(&mut self, map: u32, len: u32) -> Result<JsValue, JsValue> {
        let key = read_key_arg(&self.input, len)?;
        Ok(match lww_read(&self.grid, map)?.get_record(key) {
            Some(r) => to_js(&RecordJs(&r)),
            None => JsValue::UNDEFINED,
        })
    }

    /// OR `add`; input: `(key, value)`. Returns the new record's tag.
    #[wasm_bindgen(js_name = orAdd)]
    pub fn or_add(&mut self, map: u32, now: f64, len: u32, ttl: f64) -> Result<String, JsValue> {
        let (key, value) = pair_arg(&self.input, len)?;
        let (m, clock) = or_write(&mut self.grid, map, now)?;
        m.add(clock, wall(now), key, value, ttl_arg(ttl)).map(|r| r.tag()).map_err(js_error)
    }

    /// OR `remove`; input: `(key, value)`. Returns the removed tags.
    #[wasm_bindgen(js_name = orRemove)]
    pub fn or_remove(&mut self, map: u32, now: f64, len: u32) -> Result<Vec<String>, JsValue> {
        let (key, value) = pair_arg(&self.input, len)?;
        or_write(&mut self.grid, map, now)?.0.remove(key, &value).map_err(js_error)
    }

    /// OR `get`; input: `key`. Output: the values, oldest first (shape: values); returns the length.
    #[wasm_bindgen(js_name = orGet)]
    pub fn or_get(&mut self, map: u32, now: f64, len: u32) -> Result<u32, JsValue> {
        let key = read_key_arg(&self.input, len)?;
        let values = or_read(&self.grid, map)?.get(key, wall(now));
        self.output.clear();
        put_values(&mut self.output, values.into_iter());
        Ok(self.output.len() as u32)
    }

    /// Keys with visible values and their values to the output (shape: OR entries); returns the length.
    #[wasm_bindgen(js_name = orEntries)]
    pub fn or_entries(&mut self, map: u32, now: f64) -> Result<u32, JsValue> {
        let entries = or_read(&self.grid, map)?.entries(wall(now));
        let out = &mut self.output;
        out.clear();
        put_varint(out, entries.len() as u64);
        for (key, values) in entries {
            put_str(out, key);
            put_values(out, values.into_iter());
        }
        Ok(out.len() as u32)
    }

    /// Keys with visible values, sorted.
    #[wasm_bindgen(js_name = orKeys)]
    pub fn or_keys(&mut self, map: u32, now: f64) -> Result<Vec<String>, JsValue> {
        Ok(or_read(&self.grid, map)?.live_keys(wall(now)).into_iter().map(str::to_owned).collect())
    }

    /// Number of keys with visible values.
    #[wasm_bindgen(js_name = orSize)]
    pub fn or_size(&mut self, map: u32, now: f64) -> Result<u32, JsValue> {
        Ok(or_read(&self.grid, map)?.len(wall(now)) as u32)
    }

    /// The OR map's tombstoned tags, sorted.
    #[wasm_bindgen(js_name = orTombstones)]
    pub fn or_tombstones(&mut self, map: u32) -> Result<Vec<String>, JsValue> {
        Ok(or_read(&self.grid, map)?.tombstones())
    }

    /// The Merkle root of a map.
    pub fn root(&self, map: u32) -> u32 {
        self.grid.map_at(MapId(map)).map_or(0, AnyMap::root)
    }

    /// Drops tombstones older than `older_than` ms; returns how many.
    pub fn prune(&mut self, map: u32, now: f64, older_than: f64) -> Result<u32, JsValue> {
        let older_than = wall(older_than);
        let kind = read_of(&self.grid, map)?.kind();
        Ok(match self.grid.write_at(MapId(map), kind, wall(now)).map_err(js_error)?.0 {
            AnyMap::Lww(m) => m.prune(older_than) as u32,
            AnyMap::Or(m) => m.prune(older_than) as u32,
        })
    }

    /// A snapshot of map `name`.
    #[wasm_bindgen(js_name = exportMap)]
    pub fn export_map(&self, name: &str) -> Result<Vec<u8>, JsValue> {
        self.grid.export_map(name).map_err(js_error)
    }

    /// The writes held aside after a load found map `name` stored as the other kind, as a
    /// snapshot of their kind, now forgotten here (so flushes succeed again); `None` when none are.
    #[wasm_bindgen(js_name = takeEarlyWrites)]
    pub fn take_early_writes(&mut self, name: &str) -> Option<Vec<u8>> {
        self.grid.storage_mut().take_early_map(name).map(|m| m.export())
    }

    /// Merges a snapshot; returns records added or replaced plus new tombstones. Drift reports
    /// wait in [`RawGrid::take_drifts`].
    #[wasm_bindgen(js_name = importMap)]
    pub fn import_map(&mut self, name: &str, now: f64, bytes: &[u8]) -> Result<u32, JsValue> {
        let imported = self.grid.import_map(name, bytes, wall(now)).map_err(js_error)?;
        self.drifts.extend(imported.drifts);
        Ok(u32::try_from(imported.changed).unwrap_or(u32::MAX))
    }

    /// Drift reports since the last call, `{ remote, aheadMs, maxDriftMs }` each; `undefined`
    /// when there are none.
    #[wasm_bindgen(js_name = takeDrifts, unchecked_return_type = "import('./onegrid.js').DriftReport[] | undefined")]
    pub fn take_drifts(&mut self) -> JsValue {
        if self.drifts.is_empty() {
            return JsValue::UNDEFINED;
        }
        let reports = to_js(&self.drifts.iter().map(DriftJs).collect::<Vec<_>>());
        self.drifts.clear();
        reports
    }

    /// Turns change events of a map on or off.
    #[wasm_bindgen(js_name = recordEvents)]
    pub fn record_events(&mut self, map: u32, on: bool) {
        self.grid.storage_mut().record_events(MapId(map), on);
    }

    /// Pending change events of a map, with each key's current state, to the output (shape: LWW
    /// or OR events); returns the length, 0 when there are none.
    #[wasm_bindgen(js_name = takeEvents)]
    pub fn take_events(&mut self, map: u32, now: f64) -> u32 {
        let now = wall(now);
        let out = &mut self.output;
        match self.grid.storage_mut().events_of(MapId(map)) {
            Some(AnyMap::Lww(m)) => {
                let events: Vec<ChangeEvent> = core::iter::from_fn(|| m.poll_event()).collect();
                put_events(out, &events, |out, key| match m.get_encoded(key, now) {
                    Some(v) => {
                        out.push(1);
                        out.extend_from_slice(v.as_bytes());
                    }
                    None => out.push(0),
                })
            }
            Some(AnyMap::Or(m)) => {
                let events: Vec<ChangeEvent> = core::iter::from_fn(|| m.poll_event()).collect();
                put_events(out, &events, |out, key| put_values(out, m.get(key, now).into_iter()))
            }
            None => 0,
        }
    }
}

/// Writes change events (shape: LWW or OR events) to `out`, each key's current state written by
/// `put_state`; returns the length, 0 when there are none.
fn put_events(out: &mut Vec<u8>, events: &[ChangeEvent], mut put_state: impl FnMut(&mut Vec<u8>, &str)) -> u32 {
    if events.is_empty() {
        return 0;
    }
    out.clear();
    put_varint(out, events.len() as u64);
    for e in events {
        put_str(out, &e.key);
        out.push(origin_byte(e.origin));
        put_state(out, &e.key);
    }
    out.len() as u32
}
