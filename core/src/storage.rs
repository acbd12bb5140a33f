//! The storage manager of SPEC section 6, as a sans-IO state machine.
//!
//! [`StorageManager`] is the single owner of a grid's maps and of its clock. It never performs I/O:
//! it hands out [`StorageRequest`]s, takes their [`StorageResult`]s back, and reports
//! [`StorageEvent`]s. A driver (the wasm crate's promise glue, the host's SQLite loop, a test's fake)
//! is a loop around it:
//!
//! 1. call the API ([`StorageManager::get_map`], writes, [`StorageManager::flush`]);
//! 2. drain [`StorageManager::poll_storage`] and run each request against the adapter, **in the
//!    order polled** (a later `StoreAll` of a key may hold a newer value than an earlier one);
//! 3. hand each answer to [`StorageManager::handle_storage`] (answers may come in any order);
//! 4. drain [`StorageManager::poll_event`]; repeat from 2 until both queues are empty.
//!
//! ## Decisions (where SPEC section 6 leaves room)
//! - **Writes touch.** A write by name on a map not yet touched starts its load with the write's
//!   kind as the hint. Writes are allowed while the map loads: they go into an *early map* that the
//!   load then merges the stored records into, by the CRDT rules (stored records go through
//!   [`LwwMap::load`] / [`OrMap::load`], which advance the clock without a drift check).
//! - **Only loaded maps are flushed.** Early writes stay dirty until the load has merged them:
//!   writing them before the stored records are known could overwrite a newer stored record, or
//!   write one kind's records into a map stored as the other kind. After the merge, a loaded key is
//!   dirty exactly when memory differs from what was stored; keys the load did not bring keep their
//!   state. Dirty keys that storage holds are loaded even when `is_related_key` filters them out,
//!   so an early write is never stored over a newer record it was not merged with.
//! - **Kind mismatch keeps the early writes aside.** When a load finds the other kind, it fails
//!   with [`Error::LoadKindMismatch`] (its message contains `kind mismatch`, both kinds and how many
//!   early writes there were); the early map stays in memory, readable through
//!   [`StorageManager::map`], never flushed, until [`StorageManager::take_early_map`] hands it to
//!   the caller (who may re-apply the values to the right kind of map). Touching the map again
//!   retries the load, which fails the same way while the early map is there.
//! - **The first hint sticks** for the duration of a load: a second caller asking for the other kind
//!   while it loads gets a `kind mismatch` error at once.
//! - **A failed load** (storage error, corrupt value, kind mismatch) is reported with
//!   [`StorageEvent::LoadFailed`] and kept in [`StorageManager::load_error`] until the next touch,
//!   which retries it from `LoadAllKeys`. Early writes survive a failed load.
//! - **A flush** sends, per loaded map with dirty keys, one `StoreAll` (every dirty key still holding
//!   records, and the OR tombstone list when it changed) and one `DeleteAll` (dirty keys holding
//!   nothing, e.g. an OR key whose records were all removed). A key stops being dirty only when a
//!   request carrying its latest version succeeded; a key written again meanwhile stays dirty.
//!   [`StorageEvent::Flushed`] means everything written before [`StorageManager::flush`] is durable:
//!   that is when to acknowledge those writes.
//! - The `wall` a load merges with is the latest one passed to `get_map` or a write for that map.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::codec::{StoredValue, decode_stored, encode_stored};
use crate::error::{Error, excerpt};
use crate::grid::{AnyMap, check_name, mismatch};
use crate::hlc::{ClockConfig, Hlc, NodeId, Timestamp};
use crate::lww::{LwwMap, LwwRecord};
use crate::map_common::{MapKind, Merged, RESERVED_KEY, check_key};
use crate::or_map::{KeyMerge, OrMap, OrRecord};
use crate::value::Value;

/// Decides whether this node loads `key` of `map` (in a cluster: keys of partitions it owns or backs up).
pub type RelatedKey = Box<dyn Fn(&str, &str) -> bool>;

/// How a [`StorageManager`] loads.
#[derive(Default)]
pub struct StorageConfig {
    /// `(map, key) -> load it?`; `None` loads every key. `__tombstones__` is always loaded.
    pub is_related_key: Option<RelatedKey>,
}

impl fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageConfig").field("is_related_key", &self.is_related_key.is_some()).finish()
    }
}

/// One call for the storage adapter to make; answer it with [`StorageManager::handle_storage`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageRequest {
    /// Pass it back with the result.
    pub id: u64,
    /// What to do.
    pub op: StorageOp,
}

/// The storage contract's calls (SPEC section 6), each scoped by map name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageOp {
    /// Every stored key of `map`; answer [`StorageResult::Keys`].
    LoadAllKeys {
        /// The map.
        map: String,
    },
    /// The values of `keys` (missing keys simply absent); answer [`StorageResult::Values`].
    LoadAll {
        /// The map.
        map: String,
        /// The keys, sorted.
        keys: Vec<String>,
    },
    /// Store all entries atomically (all or none); answer [`StorageResult::Done`]. Values are
    /// [`encode_stored`] bytes.
    StoreAll {
        /// The map.
        map: String,
        /// `(key, encoded stored value)`, sorted by key.
        entries: Vec<(String, Vec<u8>)>,
    },
    /// Delete the keys (absent ones are no error); answer [`StorageResult::Done`].
    DeleteAll {
        /// The map.
        map: String,
        /// The keys, sorted.
        keys: Vec<String>,
    },
}

impl StorageOp {
    /// The map the call is scoped to.
    pub fn map(&self) -> &str {
        match self {
            Self::LoadAllKeys { map } | Self::LoadAll { map, .. } => map,
            Self::StoreAll { map, .. } | Self::DeleteAll { map, .. } => map,
        }
    }
}

/// What the adapter answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageResult {
    /// Answer to `LoadAllKeys`.
    Keys(Vec<String>),
    /// Answer to `LoadAll`: `(key, stored bytes)`.
    Values(Vec<(String, Vec<u8>)>),
    /// Answer to `StoreAll` and `DeleteAll`.
    Done,
    /// Any call failed; the message is reported as it is.
    Failed(String),
}

/// What the manager reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageEvent {
    /// A load that loaded any stored value finished (`on_map_loaded`).
    MapLoaded {
        /// The map.
        map: String,
        /// Loaded keys other than `__tombstones__` (LWW: records, tombstones included; OR: keys).
        count: usize,
    },
    /// A load failed; the map is not loaded and the next touch retries.
    LoadFailed {
        /// The map.
        map: String,
        /// Why.
        error: Error,
    },
    /// Every request of the flush succeeded: the writes made before it are durable.
    Flushed {
        /// What [`StorageManager::flush`] returned.
        flush_id: u64,
    },
    /// Some request of the flush failed; what it carried stays pending for the next flush.
    FlushFailed {
        /// What [`StorageManager::flush`] returned.
        flush_id: u64,
        /// The storage errors, joined by `"; "`.
        error: String,
    },
}

/// Where a map is, as [`StorageManager::get_map`] returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapStatus {
    /// Its load is running; writes are accepted and merged when it ends.
    Loading,
    /// Loaded, of this kind.
    Loaded(MapKind),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Not loaded (never asked for, or its last load failed).
    Unloaded,
    Loading,
    Loaded,
}

/// One map as the manager tracks it.
#[derive(Debug)]
struct Slot {
    phase: Phase,
    /// The map: loaded, or the early map written while loading (or kept after a failed load).
    map: Option<AnyMap>,
    /// The kind asked for by the caller that started the current load.
    hint: Option<MapKind>,
    wall: u64,
    /// Writes made while not loaded.
    early_writes: usize,
    /// Keys whose current state is not yet stored, with the write sequence of their last change.
    dirty: BTreeMap<Box<str>, u64>,
    /// The OR tombstone list changed, at this write sequence.
    dirty_tombstones: Option<u64>,
    last_error: Option<Error>,
}

impl Slot {
    fn new(wall: u64) -> Self {
        Self {
            phase: Phase::Unloaded,
            map: None,
            hint: None,
            wall,
            early_writes: 0,
            dirty: BTreeMap::new(),
            dirty_tombstones: None,
            last_error: None,
        }
    }

    /// The kind this map has or is bound to: its map's, else (while not loaded) the hint.
    fn bound_kind(&self) -> Option<MapKind> {
        self.map.as_ref().map(AnyMap::kind).or(self.hint)
    }

    fn is_clean(&self) -> bool {
        self.dirty.is_empty() && self.dirty_tombstones.is_none()
    }
}

/// What a write changed, for dirty tracking.
#[derive(Default)]
struct Changes {
    keys: Vec<Box<str>>,
    tombstones: bool,
}

impl Changes {
    fn key(&mut self, key: &str) {
        self.keys.push(Box::from(key));
    }
}

/// A request the manager waits for.
#[derive(Debug)]
enum Pending {
    Keys { map: Box<str> },
    Values { map: Box<str>, keys: BTreeSet<String> },
    Write { flush_id: u64, map: Box<str>, keys: Vec<(Box<str>, u64)>, tombstones: Option<u64> },
}

#[derive(Debug)]
struct FlushProgress {
    remaining: usize,
    errors: Vec<String>,
}

/// Records decoded from one `LoadAll` answer.
#[derive(Default)]
struct Loaded {
    lww: Vec<(String, LwwRecord)>,
    or: Vec<(String, Vec<OrRecord>)>,
    tombstones: Option<Vec<Timestamp>>,
}

impl Loaded {
    fn kind(&self) -> Option<MapKind> {
        if self.tombstones.is_some() || !self.or.is_empty() {
            Some(MapKind::Or)
        } else if !self.lww.is_empty() {
            Some(MapKind::Lww)
        } else {
            None
        }
    }
}

/// One grid's maps and clock, loaded from and flushed to a storage adapter it never calls itself.
///
/// Polling order: after any call, drain [`StorageManager::poll_storage`] (run the requests in that
/// order, answer with [`StorageManager::handle_storage`]), then [`StorageManager::poll_event`].
/// See the [module docs](self) for the decisions it makes.
pub struct StorageManager {
    clock: Hlc,
    config: StorageConfig,
    slots: BTreeMap<Box<str>, Slot>,
    requests: VecDeque<StorageRequest>,
    events: VecDeque<StorageEvent>,
    pending: BTreeMap<u64, Pending>,
    flushes: BTreeMap<u64, FlushProgress>,
    next_request: u64,
    next_flush: u64,
    write_seq: u64,
}

impl fmt::Debug for StorageManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageManager")
            .field("node_id", self.clock.node_id())
            .field("maps", &self.slots.len())
            .field("pending_requests", &self.pending.len())
            .finish()
    }
}

fn new_map(kind: MapKind) -> AnyMap {
    match kind {
        MapKind::Lww => AnyMap::Lww(LwwMap::new()),
        MapKind::Or => AnyMap::Or(OrMap::new()),
    }
}

fn corrupt(map: &str, key: &str, reason: impl ToString) -> Error {
    Error::CorruptStoredValue { map: excerpt(map), key: excerpt(key), reason: reason.to_string() }
}

fn as_lww(map: &mut AnyMap) -> Option<&mut LwwMap> {
    if let AnyMap::Lww(m) = map { Some(m) } else { None }
}

fn as_or(map: &mut AnyMap) -> Option<&mut OrMap> {
    if let AnyMap::Or(m) = map { Some(m) } else { None }
}

/// The tombstone list of `map` as timestamps, sorted by text form (as [`OrMap::tombstones`]).
fn tombstone_list(map: &OrMap) -> Vec<Timestamp> {
    // Every tag is the text form of a timestamp, so parsing it back cannot fail.
    map.tombstones().iter().filter_map(|t| Timestamp::parse(t).ok()).collect()
}

impl StorageManager {
    /// A manager for `node_id` with no maps.
    pub fn new(node_id: NodeId, clock: ClockConfig, config: StorageConfig) -> Self {
        Self {
            clock: Hlc::new(node_id, clock),
            config,
            slots: BTreeMap::new(),
            requests: VecDeque::new(),
            events: VecDeque::new(),
            pending: BTreeMap::new(),
            flushes: BTreeMap::new(),
            next_request: 0,
            next_flush: 0,
            write_seq: 0,
        }
    }

    /// The clock.
    pub fn clock(&self) -> &Hlc {
        &self.clock
    }

    // ---- maps -----------------------------------------------------------------------------------

    /// Touches the map `name`: returns at once. The first touch (and the first after a failed load
    /// or an unload) starts a load; callers while it runs share it. `hint` is the kind the caller
    /// wants: an error at once if the map has (or is bound to) the other kind; if the load finds the
    /// other kind stored, the load fails with `kind mismatch`.
    pub fn get_map(&mut self, name: &str, hint: Option<MapKind>, wall: u64) -> Result<MapStatus, Error> {
        check_name(name)?;
        if !self.slots.contains_key(name) {
            self.slots.insert(Box::from(name), Slot::new(wall));
        }
        let Some(slot) = self.slots.get_mut(name) else { return Err(Error::UnknownMap { name: excerpt(name) }) };
        slot.wall = slot.wall.max(wall);
        let bound = match slot.phase {
            Phase::Unloaded => slot.map.as_ref().map(AnyMap::kind),
            Phase::Loading | Phase::Loaded => slot.bound_kind(),
        };
        if let (Some(existing), Some(h)) = (bound, hint)
            && existing != h
        {
            return Err(mismatch(name, existing, h));
        }
        match slot.phase {
            Phase::Loaded => Ok(MapStatus::Loaded(slot.bound_kind().unwrap_or(MapKind::Lww))),
            Phase::Loading => {
                slot.hint = slot.hint.or(hint);
                Ok(MapStatus::Loading)
            }
            Phase::Unloaded => {
                slot.phase = Phase::Loading;
                slot.hint = hint;
                slot.last_error = None;
                let id = self.request(StorageOp::LoadAllKeys { map: String::from(name) });
                self.pending.insert(id, Pending::Keys { map: Box::from(name) });
                Ok(MapStatus::Loading)
            }
        }
    }

    /// True while the map's load runs.
    pub fn is_map_loading(&self, name: &str) -> bool {
        self.slots.get(name).is_some_and(|s| s.phase == Phase::Loading)
    }

    /// True when the map is loaded.
    pub fn is_map_loaded(&self, name: &str) -> bool {
        self.slots.get(name).is_some_and(|s| s.phase == Phase::Loaded)
    }

    /// True when the map was touched and not unloaded (loaded, loading, or its load failed).
    pub fn has_map(&self, name: &str) -> bool {
        self.slots.contains_key(name)
    }

    /// Names of the maps [`StorageManager::has_map`] is true for, sorted.
    pub fn map_names(&self) -> Vec<&str> {
        self.slots.keys().map(|k| &**k).collect()
    }

    /// The error of the map's last load, until the next touch retries it.
    pub fn load_error(&self, name: &str) -> Option<&Error> {
        self.slots.get(name)?.last_error.as_ref()
    }

    /// Drops a loaded, idle map whose writes are all stored; the next touch reloads it. A map whose
    /// load failed and that holds no early writes is dropped too. Returns whether it was dropped.
    pub fn unload(&mut self, name: &str) -> bool {
        let droppable = self.slots.get(name).is_some_and(|s| match s.phase {
            Phase::Loaded => s.is_clean(),
            Phase::Unloaded => s.map.is_none(),
            Phase::Loading => false,
        });
        if droppable {
            self.slots.remove(name);
        }
        droppable
    }

    /// Takes the early map of a map that is not loaded (kept after a kind mismatch or a failed
    /// load), with its writes, which are then forgotten here. `None` while loading or when loaded.
    pub fn take_early_map(&mut self, name: &str) -> Option<AnyMap> {
        let slot = self.slots.get_mut(name).filter(|s| s.phase == Phase::Unloaded)?;
        slot.dirty.clear();
        slot.dirty_tombstones = None;
        slot.early_writes = 0;
        slot.map.take()
    }

    /// The map (loaded, or the early map while loading), for reading.
    pub fn map(&self, name: &str) -> Option<&AnyMap> {
        self.slots.get(name)?.map.as_ref()
    }

    /// The LWW map `name`, if it is one, for reading.
    pub fn lww(&self, name: &str) -> Option<&LwwMap> {
        match self.map(name)? {
            AnyMap::Lww(m) => Some(m),
            AnyMap::Or(_) => None,
        }
    }

    /// The OR map `name`, if it is one, for reading.
    pub fn or(&self, name: &str) -> Option<&OrMap> {
        match self.map(name)? {
            AnyMap::Or(m) => Some(m),
            AnyMap::Lww(_) => None,
        }
    }

    /// Number of keys (the OR tombstone list counting as one) whose state is not yet stored.
    pub fn pending_writes(&self, name: &str) -> usize {
        self.slots.get(name).map_or(0, |s| s.dirty.len() + usize::from(s.dirty_tombstones.is_some()))
    }

    // ---- writes ---------------------------------------------------------------------------------

    /// Runs one write on the map `name` of `kind` (touching it first if needed) and marks what it
    /// changed dirty. The maps change nothing when they return an error.
    fn write<T>(
        &mut self,
        name: &str,
        kind: MapKind,
        wall: u64,
        f: impl FnOnce(&mut AnyMap, &mut Hlc, &mut Changes) -> Result<T, Error>,
    ) -> Result<T, Error> {
        if self.slots.get(name).is_none_or(|s| s.phase == Phase::Unloaded) {
            self.get_map(name, Some(kind), wall)?;
        }
        let Some(slot) = self.slots.get_mut(name) else { return Err(Error::UnknownMap { name: excerpt(name) }) };
        slot.wall = slot.wall.max(wall);
        if let Some(existing) = slot.bound_kind()
            && existing != kind
        {
            return Err(mismatch(name, existing, kind));
        }
        let map = slot.map.get_or_insert_with(|| new_map(kind));
        let mut changes = Changes::default();
        let out = f(map, &mut self.clock, &mut changes)?;
        if !changes.keys.is_empty() || changes.tombstones {
            self.write_seq += 1;
            let seq = self.write_seq;
            for key in changes.keys {
                slot.dirty.insert(key, seq);
            }
            if changes.tombstones {
                slot.dirty_tombstones = Some(seq);
            }
            if slot.phase != Phase::Loaded {
                slot.early_writes += 1;
            }
        }
        Ok(out)
    }

    fn write_lww<T>(
        &mut self,
        name: &str,
        wall: u64,
        f: impl FnOnce(&mut LwwMap, &mut Hlc, &mut Changes) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.write(name, MapKind::Lww, wall, |map, clock, changes| {
            let map = as_lww(map).ok_or_else(|| mismatch(name, MapKind::Or, MapKind::Lww))?;
            f(map, clock, changes)
        })
    }

    fn write_or<T>(
        &mut self,
        name: &str,
        wall: u64,
        f: impl FnOnce(&mut OrMap, &mut Hlc, &mut Changes) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.write(name, MapKind::Or, wall, |map, clock, changes| {
            let map = as_or(map).ok_or_else(|| mismatch(name, MapKind::Lww, MapKind::Or))?;
            f(map, clock, changes)
        })
    }

    /// [`LwwMap::set`] on the LWW map `name`.
    pub fn set(
        &mut self,
        name: &str,
        wall: u64,
        key: &str,
        value: Value,
        ttl_ms: Option<u64>,
    ) -> Result<Timestamp, Error> {
        self.write_lww(name, wall, |m, clock, changes| {
            let ts = m.set(clock, wall, key, value, ttl_ms)?;
            changes.key(key);
            Ok(ts)
        })
    }

    /// [`LwwMap::remove`] on the LWW map `name` (stores a tombstone record).
    pub fn remove(&mut self, name: &str, wall: u64, key: &str) -> Result<Timestamp, Error> {
        self.write_lww(name, wall, |m, clock, changes| {
            let ts = m.remove(clock, wall, key)?;
            changes.key(key);
            Ok(ts)
        })
    }

    /// [`LwwMap::merge`] of a peer's record into the LWW map `name`; dirty only if it won.
    pub fn merge(&mut self, name: &str, wall: u64, key: &str, record: LwwRecord) -> Result<Merged, Error> {
        self.write_lww(name, wall, |m, clock, changes| {
            let merged = m.merge(clock, wall, key, record)?;
            if merged.accepted {
                changes.key(key);
            }
            Ok(merged)
        })
    }

    /// [`OrMap::add`] on the OR map `name`.
    pub fn add(
        &mut self,
        name: &str,
        wall: u64,
        key: &str,
        value: Value,
        ttl_ms: Option<u64>,
    ) -> Result<OrRecord, Error> {
        self.write_or(name, wall, |m, clock, changes| {
            let record = m.add(clock, wall, key, value, ttl_ms)?;
            changes.key(key);
            Ok(record)
        })
    }

    /// [`OrMap::remove`] on the OR map `name`: the removed tags. Call it after the map has loaded
    /// (it removes only what this node has observed).
    pub fn or_remove(&mut self, name: &str, wall: u64, key: &str, value: &Value) -> Result<Vec<String>, Error> {
        self.write_or(name, wall, |m, _, changes| {
            let tags = m.remove(key, value)?;
            if !tags.is_empty() {
                changes.key(key);
                changes.tombstones = true;
            }
            Ok(tags)
        })
    }

    /// [`OrMap::apply`] of a peer's record to the OR map `name`; dirty only if it was added.
    pub fn apply(&mut self, name: &str, wall: u64, key: &str, record: OrRecord) -> Result<Merged, Error> {
        self.write_or(name, wall, |m, clock, changes| {
            let merged = m.apply(clock, wall, key, record)?;
            if merged.accepted {
                changes.key(key);
            }
            Ok(merged)
        })
    }

    /// [`OrMap::apply_tombstone`] on the OR map `name`; true if the tag was new.
    pub fn apply_tombstone(&mut self, name: &str, wall: u64, tag: &Timestamp) -> Result<bool, Error> {
        self.write_or(name, wall, |m, _, changes| {
            if let Some(owner) = m.key_of_tag(tag) {
                changes.key(owner);
            }
            let new = m.apply_tombstone(tag);
            changes.tombstones |= new;
            Ok(new)
        })
    }

    /// [`OrMap::merge_key`] of a peer's key state into the OR map `name`.
    pub fn merge_key(
        &mut self,
        name: &str,
        wall: u64,
        key: &str,
        records: Vec<OrRecord>,
        tombstones: &[Timestamp],
    ) -> Result<KeyMerge, Error> {
        self.write_or(name, wall, |m, clock, changes| {
            let owners: Vec<Box<str>> = tombstones.iter().filter_map(|t| m.key_of_tag(t)).map(Box::from).collect();
            let merged = m.merge_key(clock, wall, key, records, tombstones)?;
            if merged.new_tombstones > 0 {
                changes.tombstones = true;
                changes.keys.extend(owners);
            }
            if merged.added > 0 {
                changes.key(key);
            }
            Ok(merged)
        })
    }

    // ---- flush ----------------------------------------------------------------------------------

    /// Writes every loaded map's dirty state: per map one `StoreAll` (atomic) and one `DeleteAll`
    /// when needed. [`StorageEvent::Flushed`] with the returned id follows when all succeeded (at
    /// once when there was nothing to write), else [`StorageEvent::FlushFailed`].
    pub fn flush(&mut self) -> u64 {
        self.next_flush += 1;
        let flush_id = self.next_flush;
        let mut batches = Vec::new();
        for (name, slot) in &self.slots {
            if slot.phase != Phase::Loaded || slot.is_clean() {
                continue;
            }
            let Some(map) = &slot.map else { continue };
            let (mut entries, mut stored) = (Vec::new(), Vec::new());
            let (mut deletes, mut deleted) = (Vec::new(), Vec::new());
            for (key, &seq) in &slot.dirty {
                let value = match map {
                    AnyMap::Lww(m) => m.get_record(key).map(StoredValue::Lww),
                    AnyMap::Or(m) => {
                        let records = m.get_records(key);
                        (!records.is_empty()).then(|| StoredValue::Or(records.to_vec()))
                    }
                };
                match value {
                    Some(value) => {
                        entries.push((key.to_string(), encode_stored(&value)));
                        stored.push((key.clone(), seq));
                    }
                    None => {
                        deletes.push(key.to_string());
                        deleted.push((key.clone(), seq));
                    }
                }
            }
            let (mut store_tombstones, mut delete_tombstones) = (None, None);
            if let (Some(seq), AnyMap::Or(m)) = (slot.dirty_tombstones, map) {
                let tags = tombstone_list(m);
                if tags.is_empty() {
                    deletes.push(String::from(RESERVED_KEY));
                    delete_tombstones = Some(seq);
                } else {
                    entries.push((String::from(RESERVED_KEY), encode_stored(&StoredValue::OrTombstones(tags))));
                    store_tombstones = Some(seq);
                }
            }
            if !entries.is_empty() {
                entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                batches.push((
                    StorageOp::StoreAll { map: name.to_string(), entries },
                    name.clone(),
                    stored,
                    store_tombstones,
                ));
            }
            if !deletes.is_empty() {
                deletes.sort_unstable();
                batches.push((
                    StorageOp::DeleteAll { map: name.to_string(), keys: deletes },
                    name.clone(),
                    deleted,
                    delete_tombstones,
                ));
            }
        }
        if batches.is_empty() {
            self.events.push_back(StorageEvent::Flushed { flush_id });
            return flush_id;
        }
        self.flushes.insert(flush_id, FlushProgress { remaining: batches.len(), errors: Vec::new() });
        for (op, map, keys, tombstones) in batches {
            let id = self.request(op);
            self.pending.insert(id, Pending::Write { flush_id, map, keys, tombstones });
        }
        flush_id
    }

    // ---- the polling interface ------------------------------------------------------------------

    /// The next request for the storage adapter.
    pub fn poll_storage(&mut self) -> Option<StorageRequest> {
        self.requests.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<StorageEvent> {
        self.events.pop_front()
    }

    /// Takes the adapter's answer to request `id`. An error only for an id that is not pending
    /// (answered twice, or never issued); a failure of the storage itself is reported as an event.
    pub fn handle_storage(&mut self, id: u64, result: StorageResult) -> Result<(), Error> {
        let pending = self.pending.remove(&id).ok_or(Error::UnknownStorageRequest { id })?;
        match (pending, result) {
            (Pending::Keys { map }, StorageResult::Keys(keys)) => self.on_keys(map, keys),
            (Pending::Values { map, keys }, StorageResult::Values(values)) => {
                match self.decode_values(&map, &keys, values) {
                    Ok(loaded) => self.finish_load(&map, loaded),
                    Err(error) => self.fail_load(&map, error),
                }
            }
            (Pending::Keys { map } | Pending::Values { map, .. }, other) => {
                let reason = match other {
                    StorageResult::Failed(reason) => reason,
                    _ => String::from("the adapter answered a load with the wrong kind of result"),
                };
                let error = Error::Storage { map: excerpt(&map), reason };
                self.fail_load(&map, error);
            }
            (Pending::Write { flush_id, map, keys, tombstones }, result) => {
                let error = match result {
                    StorageResult::Done => None,
                    StorageResult::Failed(reason) => Some(reason),
                    _ => Some(String::from("the adapter answered a write with the wrong kind of result")),
                };
                if error.is_none()
                    && let Some(slot) = self.slots.get_mut(&map)
                {
                    // Clean only what still holds the version this request carried.
                    for (key, seq) in keys {
                        if slot.dirty.get(&key) == Some(&seq) {
                            slot.dirty.remove(&key);
                        }
                    }
                    if tombstones.is_some() && slot.dirty_tombstones == tombstones {
                        slot.dirty_tombstones = None;
                    }
                }
                self.flush_step(flush_id, error.map(|e| alloc::format!("map {}: {e}", crate::error::Quoted(&map))));
            }
        }
        Ok(())
    }

    fn request(&mut self, op: StorageOp) -> u64 {
        self.next_request += 1;
        let id = self.next_request;
        self.requests.push_back(StorageRequest { id, op });
        id
    }

    fn flush_step(&mut self, flush_id: u64, error: Option<String>) {
        let Some(progress) = self.flushes.get_mut(&flush_id) else { return };
        progress.remaining -= 1;
        progress.errors.extend(error);
        if progress.remaining == 0
            && let Some(progress) = self.flushes.remove(&flush_id)
        {
            self.events.push_back(if progress.errors.is_empty() {
                StorageEvent::Flushed { flush_id }
            } else {
                StorageEvent::FlushFailed { flush_id, error: progress.errors.join("; ") }
            });
        }
    }

    /// The stored keys are known: ask for the related ones, `__tombstones__`, and any dirty key.
    fn on_keys(&mut self, map: Box<str>, keys: Vec<String>) {
        let Some(slot) = self.slots.get(&map) else { return };
        let related = self.config.is_related_key.as_deref();
        let wanted: BTreeSet<String> = keys
            .into_iter()
            .filter(|k| k == RESERVED_KEY || slot.dirty.contains_key(k.as_str()) || related.is_none_or(|f| f(&map, k)))
            .collect();
        if wanted.is_empty() {
            self.finish_load(&map, Loaded::default());
            return;
        }
        let id = self.request(StorageOp::LoadAll { map: map.to_string(), keys: wanted.iter().cloned().collect() });
        self.pending.insert(id, Pending::Values { map, keys: wanted });
    }

    /// Decodes a `LoadAll` answer whole before anything is applied. Keys not asked for are ignored.
    fn decode_values(
        &self,
        map: &str,
        asked: &BTreeSet<String>,
        values: Vec<(String, Vec<u8>)>,
    ) -> Result<Loaded, Error> {
        let mut by_key: BTreeMap<String, StoredValue> = BTreeMap::new();
        for (key, bytes) in values {
            if !asked.contains(&key) {
                continue;
            }
            let value = decode_stored(&bytes).map_err(|e| corrupt(map, &key, e))?;
            by_key.insert(key, value);
        }
        let mut loaded = Loaded::default();
        for (key, value) in by_key {
            match (key == RESERVED_KEY, value) {
                (true, StoredValue::OrTombstones(tags)) => loaded.tombstones = Some(tags),
                (true, _) => {
                    return Err(corrupt(map, &key, "the reserved key holds something other than OR tombstones"));
                }
                (false, StoredValue::OrTombstones(_)) => {
                    return Err(corrupt(map, &key, "OR tombstones are stored under an ordinary key"));
                }
                (false, StoredValue::Lww(record)) => loaded.lww.push((key, record)),
                (false, StoredValue::Or(records)) => loaded.or.push((key, records)),
            }
        }
        if loaded.kind() == Some(MapKind::Or)
            && let Some((key, _)) = loaded.lww.first()
        {
            return Err(corrupt(map, key, "an LWW record is stored in an OR map"));
        }
        for key in loaded.lww.iter().map(|(k, _)| k).chain(loaded.or.iter().map(|(k, _)| k)) {
            check_key(key).map_err(|e| corrupt(map, key, e))?;
        }
        Ok(loaded)
    }

    fn fail_load(&mut self, map: &str, error: Error) {
        let Some(slot) = self.slots.get_mut(map) else { return };
        slot.phase = Phase::Unloaded;
        slot.last_error = Some(error.clone());
        self.events.push_back(StorageEvent::LoadFailed { map: String::from(map), error });
    }

    /// Merges what was loaded into the (early) map and marks it loaded; or fails on a kind mismatch.
    fn finish_load(&mut self, name: &str, loaded: Loaded) {
        let Some(slot) = self.slots.get_mut(name) else { return };
        let stored = loaded.kind();
        let requested = slot.bound_kind();
        if let (Some(stored), Some(requested)) = (stored, requested)
            && stored != requested
        {
            let early_writes = slot.early_writes;
            if early_writes == 0 {
                slot.map = None;
                slot.dirty.clear();
                slot.dirty_tombstones = None;
            }
            let error = Error::LoadKindMismatch { map: excerpt(name), stored, requested, early_writes };
            self.fail_load(name, error);
            return;
        }
        let kind = stored.or(requested).unwrap_or(MapKind::Lww);
        let any = stored.is_some();
        let count = loaded.lww.len() + loaded.or.len();
        let wall = slot.wall;
        let clock = &mut self.clock;
        let mut map = slot.map.take().unwrap_or_else(|| new_map(kind));
        // The merges below cannot fail: `decode_values` checked every key and record.
        match &mut map {
            AnyMap::Lww(m) => {
                for (key, record) in loaded.lww {
                    let stored_ts = record.timestamp.clone();
                    let _ = m.load(clock, wall, &key, record);
                    // Dirty exactly when memory differs from storage.
                    if m.get_record(&key).is_some_and(|r| r.timestamp == stored_ts) {
                        slot.dirty.remove(key.as_str());
                    } else {
                        slot.dirty.entry(Box::from(key.as_str())).or_insert(0);
                    }
                }
            }
            AnyMap::Or(m) => {
                let stored_tags = loaded.tombstones.unwrap_or_default();
                for tag in &stored_tags {
                    clock.observe(tag, wall);
                    m.apply_tombstone(tag);
                }
                for (key, records) in loaded.or {
                    let mut stored_ts: Vec<Timestamp> = records.iter().map(|r| r.timestamp.clone()).collect();
                    for record in records {
                        let _ = m.load(clock, wall, &key, record);
                    }
                    stored_ts.sort_unstable();
                    stored_ts.dedup();
                    let now: Vec<&Timestamp> = m.get_records(&key).iter().map(|r| &r.timestamp).collect();
                    if now.len() == stored_ts.len() && now.iter().zip(&stored_ts).all(|(a, b)| *a == b) {
                        slot.dirty.remove(key.as_str());
                    } else {
                        slot.dirty.entry(Box::from(key.as_str())).or_insert(0);
                    }
                }
                let mut stored_texts: Vec<String> = stored_tags.iter().map(Timestamp::to_text).collect();
                stored_texts.sort_unstable();
                stored_texts.dedup();
                if m.tombstones() == stored_texts {
                    slot.dirty_tombstones = None;
                } else if slot.dirty_tombstones.is_none() {
                    slot.dirty_tombstones = Some(0);
                }
            }
        }
        slot.map = Some(map);
        slot.phase = Phase::Loaded;
        slot.early_writes = 0;
        slot.last_error = None;
        if any {
            self.events.push_back(StorageEvent::MapLoaded { map: String::from(name), count });
        }
    }
}
