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
//! A grid without storage uses [`StorageManager::in_memory`]: maps load at once, empty, and no
//! request is ever made.
//!
//! ## Decisions (where SPEC section 6 leaves room)
//! - **The maps track what to write back.** Each map marks a key dirty where its state changes (see
//!   `dirty.rs`), so every write path, the hot ones of the byte ABI and the JavaScript API included,
//!   is flushed without listing what it changed. Map ids ([`MapId`]) are never reused, so a handle
//!   stays valid across an unload and a reload.
//! - **Writes touch.** A write by name on a map not yet touched starts its load with the write's
//!   kind as the hint. Writes are allowed while the map loads: they go into an *early map* that the
//!   load then merges the stored records into, by the CRDT rules (stored records go through
//!   [`LwwMap::load`] / [`OrMap::load`], which advance the clock without a drift check).
//! - **Early writes are flushed after their load.** Writing them before the stored records are
//!   known could overwrite a newer stored record, or write one kind's records into a map stored as
//!   the other kind; so a flush that finds a map loading waits for its load and then writes what the
//!   merge left dirty (a failed load fails the flush, and the writes stay pending). After the merge,
//!   a loaded key is dirty exactly when memory differs from what was stored; keys the load did not
//!   bring keep their state. Dirty keys that storage holds are loaded even when `is_related_key`
//!   filters them out, so an early write is never stored over a newer record it was not merged with.
//! - **Keys the load left out are filled before they are written.** The load remembers the stored
//!   keys `is_related_key` left out; a flush that finds one of them written first loads and merges
//!   it (a *fill*), then writes what the merge left dirty.
//! - **Kind mismatch keeps the early writes aside.** When a load finds the other kind, it fails
//!   with [`Error::LoadKindMismatch`] (its message contains `kind mismatch`, both kinds and how many
//!   keys were written early); the early map stays in memory, readable through
//!   [`StorageManager::map`], never flushed, until [`StorageManager::take_early_map`] hands it to
//!   the caller (who may re-apply the values to the right kind of map). Touching the map again
//!   retries the load, which fails the same way while the early map is there.
//! - **A hint binds nothing; a handle does.** Callers of one load may ask for different kinds (or
//!   none): the load takes what is stored, a map with nothing stored takes the first hint (else
//!   LWW). Once [`StorageEvent::Ready`] comes, each caller asks again with its hint: `get_map`
//!   answers the kind, or refuses a hint that disagrees with `kind mismatch`. So a caller without
//!   a hint always gets the stored kind. An early map (made by [`StorageManager::open`] or a write)
//!   does bind the load: finding the other kind stored fails it for every caller.
//! - **A failed load** (storage error, corrupt value, kind mismatch) is reported with
//!   [`StorageEvent::LoadFailed`] and kept in [`StorageManager::load_error`] until the next touch,
//!   which retries it from `LoadAllKeys`. Early writes survive a failed load.
//! - **A flush** waits for maps that are loading (or filling), retries a load that failed for the
//!   storage's sake, and sends, per loaded map with dirty keys, one `StoreAll` (every dirty key still holding
//!   records, and the OR tombstone list when it changed) and one `DeleteAll` (dirty keys holding
//!   nothing, e.g. an OR key whose records were all removed). A key stops being dirty only when a
//!   request carrying its latest version succeeded; a key written again meanwhile stays dirty.
//!   [`StorageEvent::Flushed`] means everything written before [`StorageManager::flush`] is durable:
//!   that is when to acknowledge those writes.
//! - The `wall` a load merges with is the latest one passed to `get_map` or a write for that map.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use hashbrown::HashSet;
use serde::{Deserialize, Serialize};

use crate::codec::stored::{
    MapMark, StoredValue, decode_stored, decode_stored_lww_raw, encode_stored_lww, encode_stored_mark,
    encode_stored_or, encode_stored_tombstones,
};
use crate::codec::value::Encoded;
use crate::error::{Error, excerpt};
use crate::grid::{AnyMap, MapId, check_name, mismatch};
use crate::hlc::{ClockConfig, Hlc, NodeId, Timestamp};
use crate::lww::{LwwMap, LwwRecord, StoredLww};
use crate::map_common::{Hasher, MARK_KEY, MapKind, RESERVED_KEY, check_key};
use crate::or_map::{OrMap, OrRecord};

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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageRequest {
    /// Pass it back with the result.
    pub id: u64,
    /// What to do.
    pub op: StorageOp,
}

/// The storage contract's calls (SPEC section 6), each scoped by map name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// [`encode_stored`](crate::codec::encode_stored) bytes.
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// A load finished: the map is loaded, of this kind (`get_map_async` resolves here).
    Ready {
        /// The map.
        map: String,
        /// Its kind.
        kind: MapKind,
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MapStatus {
    /// Its load is running; writes are accepted and merged when it ends.
    Loading,
    /// Loaded, of this kind.
    Loaded(MapKind),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Not touched since it was created by a refused import or unloaded: the grid does not have it.
    Unloaded,
    Loading,
    Loaded,
    /// Its last load failed; it may hold an early map. The next touch retries.
    Failed,
}

/// One map as the manager tracks it. Slots are never removed, so a [`MapId`] stays valid.
#[derive(Debug)]
struct Slot {
    name: Box<str>,
    phase: Phase,
    /// The map: loaded, or the early map written while loading (or kept after a failed load).
    map: Option<AnyMap>,
    /// The kind asked for by the caller that started the current load.
    hint: Option<MapKind>,
    wall: u64,
    /// Counts loads, so an answer to an abandoned one is ignored.
    generation: u64,
    last_error: Option<Error>,
    /// Change events are wanted (kept here because a reload makes a new map).
    events: bool,
    /// Flushes waiting for this map's load (or fill), to store what was written meanwhile.
    flush_waiters: Vec<u64>,
    /// Stored keys the load left out (`is_related_key` said no), sorted: a write to one is merged
    /// with what storage holds before a flush stores it.
    unloaded_keys: Vec<String>,
    /// A fill (loading some of `unloaded_keys` before a flush) is running.
    filling: bool,
    /// The clock's `(millis, counter)` in the map's stored [`MapMark`], once loaded or written.
    mark: Option<(u64, u32)>,
}

impl Slot {
    /// The kind this map is bound to: its map's (loaded, or the early map a handle or a write
    /// made). A hint alone binds nothing: it only picks the kind of a map with nothing stored.
    fn bound_kind(&self) -> Option<MapKind> {
        self.map.as_ref().map(AnyMap::kind)
    }

    /// Keys written but not stored (the OR tombstone list counting as one).
    fn pending_writes(&self) -> usize {
        self.map.as_ref().map_or(0, |m| m.dirty().len())
    }

    /// The map, made empty of `kind` if there is none yet.
    fn map_or_new(&mut self, kind: MapKind, persistent: bool) -> &mut AnyMap {
        let events = self.events;
        self.map.get_or_insert_with(|| {
            let mut map = match kind {
                MapKind::Lww => AnyMap::Lww(LwwMap::new()),
                MapKind::Or => AnyMap::Or(OrMap::new()),
            };
            map.dirty_mut().set_tracking(persistent);
            map.record_events(events);
            map
        })
    }
}

/// A request the manager waits for (the keys of `Values` sorted, each once).
#[derive(Debug)]
enum Pending {
    /// Loading written keys the load left out, before a flush stores them (`keys`: sorted, unique).
    Fill {
        id: MapId,
        keys: Vec<String>,
    },
    Keys {
        id: MapId,
        generation: u64,
    },
    /// `keys`: sorted, unique. `probe`: a key asked for only to learn the map's kind.
    Values {
        id: MapId,
        generation: u64,
        keys: Vec<String>,
        probe: Option<String>,
    },
    Write {
        flush_id: u64,
        id: MapId,
        keys: Vec<(Box<str>, u64)>,
        tombstones: Option<u64>,
        mark: Option<(u64, u32)>,
    },
}

/// One write request of a flush, before it is sent.
struct Batch {
    op: StorageOp,
    id: MapId,
    /// The keys it carries, with the sequence of their change it stores.
    keys: Vec<(Box<str>, u64)>,
    tombstones: Option<u64>,
    /// The map mark it stores, if any.
    mark: Option<(u64, u32)>,
}

#[derive(Debug)]
struct FlushProgress {
    remaining: usize,
    errors: Vec<String>,
}

/// One decoded stored value: an LWW record on the fast path, anything else in full.
enum Stored {
    Lww(StoredLww),
    Other(StoredValue),
}

/// Records decoded from one `LoadAll` answer.
#[derive(Default)]
struct Loaded {
    lww: Vec<(String, StoredLww)>,
    or: Vec<(String, Vec<OrRecord>)>,
    tombstones: Option<Vec<Timestamp>>,
    mark: Option<MapMark>,
    /// The kind of a key loaded only to learn it (a map stored before marks, none of whose keys
    /// this node loads).
    probed: Option<MapKind>,
}

impl Loaded {
    /// The stored kind, from the records, else the mark, else the probe.
    fn kind(&self) -> Option<MapKind> {
        if self.tombstones.is_some() || !self.or.is_empty() {
            Some(MapKind::Or)
        } else if !self.lww.is_empty() {
            Some(MapKind::Lww)
        } else {
            self.mark.map(|m| m.kind).or(self.probed)
        }
    }

    /// The greatest `(millis, counter)` storage holds for the map: of its records, tombstones and
    /// mark (whatever node wrote them).
    fn high_water(&self) -> Option<(u64, u32)> {
        let mut high = self.mark.map(|m| (m.millis, m.counter));
        let mut see = |t: &Timestamp| high = high.max(Some((t.millis, t.counter)));
        self.lww.iter().for_each(|(_, r)| see(&r.timestamp));
        self.or.iter().for_each(|(_, rs)| rs.iter().for_each(|r| see(&r.timestamp)));
        self.tombstones.iter().flatten().for_each(see);
        high
    }

    /// True when a loaded OR record has the tag `tag`.
    fn holds_tag(&self, tag: &Timestamp) -> bool {
        self.or.iter().any(|(_, rs)| rs.iter().any(|r| r.timestamp == *tag))
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
    /// False for a grid without storage: maps load at once, empty, and nothing is tracked.
    persistent: bool,
    /// Map ids by name, sorted by name.
    ids: Vec<(Box<str>, MapId)>,
    slots: Vec<Slot>,
    requests: VecDeque<StorageRequest>,
    events: VecDeque<StorageEvent>,
    /// Requests waiting for an answer, by id (ids only grow, so pushing keeps them sorted).
    pending: Vec<(u64, Pending)>,
    /// Flushes waiting for their requests' answers, by flush id (sorted likewise).
    flushes: Vec<(u64, FlushProgress)>,
    next_request: u64,
    next_flush: u64,
}

impl fmt::Debug for StorageManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageManager")
            .field("node_id", self.clock.node_id())
            .field("persistent", &self.persistent)
            .field("maps", &self.slots.len())
            .field("pending_requests", &self.pending.len())
            .finish()
    }
}

fn corrupt(map: &str, key: &str, reason: impl ToString) -> Error {
    Error::CorruptStoredValue { map: excerpt(map), key: excerpt(key), reason: reason.to_string() }
}

/// Removes and returns the entry with id `id` of a list sorted by id.
fn take_by_id<T>(list: &mut Vec<(u64, T)>, id: u64) -> Option<T> {
    let at = list.binary_search_by(|(k, _)| k.cmp(&id)).ok()?;
    Some(list.remove(at).1)
}

impl StorageManager {
    /// A manager for `node_id` backed by a storage adapter (driven through the polling interface).
    pub fn new(node_id: NodeId, clock: ClockConfig, config: StorageConfig) -> Self {
        Self {
            clock: Hlc::new(node_id, clock),
            config,
            persistent: true,
            ids: Vec::new(),
            slots: Vec::new(),
            requests: VecDeque::new(),
            events: VecDeque::new(),
            pending: Vec::new(),
            flushes: Vec::new(),
            next_request: 0,
            next_flush: 0,
        }
    }

    /// A manager without storage: every map loads at once, empty; nothing is ever requested.
    pub fn in_memory(node_id: NodeId, clock: ClockConfig) -> Self {
        Self { persistent: false, ..Self::new(node_id, clock, StorageConfig::default()) }
    }

    /// True when a storage adapter backs this manager.
    pub fn is_persistent(&self) -> bool {
        self.persistent
    }

    /// The clock.
    pub fn clock(&self) -> &Hlc {
        &self.clock
    }

    // ---- maps -----------------------------------------------------------------------------------

    /// Touches the map `name`: returns at once. The first touch (and the first after a failed load
    /// or an unload) starts a load; callers while it runs share it. `hint` is the kind the caller
    /// wants: an error at once if the map is loaded as (or its early map is) the other kind; while
    /// it loads, ask again once [`StorageEvent::Ready`] comes (see the module docs).
    pub fn get_map(&mut self, name: &str, hint: Option<MapKind>, wall: u64) -> Result<MapStatus, Error> {
        let id = self.touch(name, hint, wall)?;
        let slot = &self.slots[id.0 as usize];
        Ok(match (slot.phase, &slot.map) {
            (Phase::Loaded, Some(map)) => MapStatus::Loaded(map.kind()),
            _ => MapStatus::Loading,
        })
    }

    /// [`StorageManager::get_map`] for a caller that needs a handle of `kind` now: the map's id, with
    /// its (early) map created so reads see it while it loads.
    pub fn open(&mut self, name: &str, kind: MapKind, wall: u64) -> Result<MapId, Error> {
        let id = self.touch(name, Some(kind), wall)?;
        self.slots[id.0 as usize].map_or_new(kind, self.persistent);
        Ok(id)
    }

    fn touch(&mut self, name: &str, hint: Option<MapKind>, wall: u64) -> Result<MapId, Error> {
        let id = match self.ids.binary_search_by(|(k, _)| (**k).cmp(name)) {
            Ok(at) => self.ids[at].1,
            Err(at) => {
                check_name(name)?;
                let too_many = || Error::InvalidMapName { name: excerpt(name), reason: "the grid has too many maps" };
                let id = MapId(u32::try_from(self.slots.len()).map_err(|_| too_many())?);
                self.slots.push(Slot {
                    name: Box::from(name),
                    phase: Phase::Unloaded,
                    map: None,
                    hint: None,
                    wall,
                    generation: 0,
                    last_error: None,
                    events: false,
                    flush_waiters: Vec::new(),
                    unloaded_keys: Vec::new(),
                    filling: false,
                    mark: None,
                });
                self.ids.insert(at, (Box::from(name), id));
                id
            }
        };
        let slot = &mut self.slots[id.0 as usize];
        slot.wall = slot.wall.max(wall);
        if let (Some(existing), Some(h)) = (slot.bound_kind(), hint)
            && existing != h
        {
            return Err(mismatch(name, existing, h));
        }
        match slot.phase {
            Phase::Loaded => {}
            Phase::Loading => slot.hint = slot.hint.or(hint),
            Phase::Unloaded | Phase::Failed => {
                slot.hint = hint;
                slot.last_error = None;
                if self.persistent {
                    slot.phase = Phase::Loading;
                    slot.generation += 1;
                    let generation = slot.generation;
                    let request = self.request(StorageOp::LoadAllKeys { map: String::from(name) });
                    self.pending.push((request, Pending::Keys { id, generation }));
                } else {
                    slot.phase = Phase::Loaded;
                    slot.map_or_new(hint.unwrap_or(MapKind::Lww), false);
                }
            }
        }
        Ok(id)
    }

    /// The id of map `name`, if it was ever touched (ids are never reused).
    pub fn id_of(&self, name: &str) -> Option<MapId> {
        let at = self.ids.binary_search_by(|(k, _)| (**k).cmp(name)).ok()?;
        Some(self.ids[at].1)
    }

    fn slot(&self, name: &str) -> Option<&Slot> {
        self.slots.get(self.id_of(name)?.0 as usize)
    }

    /// True while the map's load runs.
    pub fn is_map_loading(&self, name: &str) -> bool {
        self.slot(name).is_some_and(|s| s.phase == Phase::Loading)
    }

    /// True when the map is loaded.
    pub fn is_map_loaded(&self, name: &str) -> bool {
        self.slot(name).is_some_and(|s| s.phase == Phase::Loaded)
    }

    /// True when the map was touched and not unloaded (loaded, loading, or its load failed).
    pub fn has_map(&self, name: &str) -> bool {
        self.slot(name).is_some_and(|s| s.phase != Phase::Unloaded)
    }

    /// Names of the maps [`StorageManager::has_map`] is true for, sorted.
    pub fn map_names(&self) -> Vec<&str> {
        self.ids
            .iter()
            .filter(|(_, id)| self.slots[id.0 as usize].phase != Phase::Unloaded)
            .map(|(k, _)| &**k)
            .collect()
    }

    /// The error of the map's last load, until the next touch retries it.
    pub fn load_error(&self, name: &str) -> Option<&Error> {
        self.slot(name)?.last_error.as_ref()
    }

    /// Drops a loaded, idle map whose writes are all stored; the next touch reloads it. A map whose
    /// load failed and that holds no early writes is dropped too. Returns whether it was dropped.
    pub fn unload(&mut self, name: &str) -> bool {
        let Some(id) = self.id_of(name) else { return false };
        let slot = &mut self.slots[id.0 as usize];
        let droppable = match slot.phase {
            Phase::Loaded => slot.pending_writes() == 0,
            Phase::Failed => slot.map.is_none(),
            Phase::Loading | Phase::Unloaded => false,
        };
        if droppable {
            slot.phase = Phase::Unloaded;
            slot.map = None;
            slot.last_error = None;
            slot.unloaded_keys = Vec::new();
            slot.mark = None;
        }
        droppable
    }

    /// Forgets a map made by a refused write (an import that failed validation), as if it had never
    /// been touched: an answer to its load is ignored.
    pub(crate) fn forget(&mut self, id: MapId) {
        if let Some(slot) = self.slots.get_mut(id.0 as usize) {
            slot.phase = Phase::Unloaded;
            slot.map = None;
            slot.generation += 1;
            slot.unloaded_keys = Vec::new();
            // Nothing of it is left to store.
            self.release_flushes(id, None);
        }
    }

    /// Takes the early map of a map whose load failed (kept after a kind mismatch or a storage
    /// error), with its writes, which are then forgotten here. `None` while loading or when loaded.
    pub fn take_early_map(&mut self, name: &str) -> Option<AnyMap> {
        let id = self.id_of(name)?;
        let slot = self.slots.get_mut(id.0 as usize).filter(|s| s.phase == Phase::Failed)?;
        let mut map = slot.map.take()?;
        map.dirty_mut().set_tracking(false);
        Some(map)
    }

    /// The map (loaded, or the early map while loading), for reading.
    pub fn map(&self, name: &str) -> Option<&AnyMap> {
        self.map_at(self.id_of(name)?)
    }

    /// The map with id `id` (loaded, or the early map while loading), for reading.
    pub fn map_at(&self, id: MapId) -> Option<&AnyMap> {
        let slot = self.slots.get(id.0 as usize)?;
        if slot.phase == Phase::Unloaded { None } else { slot.map.as_ref() }
    }

    /// Why the map with id `id` has no map to read: its load error, else that it is not loaded.
    pub fn missing(&self, id: MapId) -> Error {
        match self.slots.get(id.0 as usize) {
            Some(slot) => slot.last_error.clone().unwrap_or_else(|| Error::UnknownMap { name: excerpt(&slot.name) }),
            None => Error::UnknownMap { name: alloc::format!("#{}", id.0) },
        }
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
        self.slot(name).map_or(0, Slot::pending_writes)
    }

    /// The keys of map `name` written but not yet stored, sorted.
    pub fn pending_keys(&self, name: &str) -> Vec<&str> {
        let map = self.slot(name).and_then(|s| s.map.as_ref());
        map.map(|m| m.dirty().keys().into_iter().map(|(k, _)| k).collect()).unwrap_or_default()
    }

    /// Turns change events of a map on or off; it stays so across reloads.
    pub fn record_events(&mut self, id: MapId, on: bool) {
        if let Some(slot) = self.slots.get_mut(id.0 as usize) {
            slot.events = on;
            if let Some(map) = &mut slot.map {
                map.record_events(on);
            }
        }
    }

    /// The map with id `id` for a change event drain (no write, no touch).
    pub fn events_of(&mut self, id: MapId) -> Option<&mut AnyMap> {
        self.slots.get_mut(id.0 as usize)?.map.as_mut()
    }

    // ---- writes ---------------------------------------------------------------------------------

    /// The map with id `id`, to write, with the clock: touches it first when it is not loaded or
    /// loading (an unloaded map reloads; writes meanwhile go to its early map). What the write
    /// changes is marked for the next flush by the map itself.
    pub fn write_at(&mut self, id: MapId, kind: MapKind, wall: u64) -> Result<(&mut AnyMap, &mut Hlc), Error> {
        let slot = self.slots.get(id.0 as usize).ok_or_else(|| self.missing(id))?;
        match slot.phase {
            Phase::Loaded | Phase::Loading if slot.map.is_some() => {}
            _ => {
                let name = slot.name.clone();
                self.touch(&name, Some(kind), wall)?;
            }
        }
        let persistent = self.persistent;
        let slot = &mut self.slots[id.0 as usize];
        slot.wall = slot.wall.max(wall);
        if let Some(existing) = slot.bound_kind()
            && existing != kind
        {
            return Err(mismatch(&slot.name, existing, kind));
        }
        Ok((slot.map_or_new(kind, persistent), &mut self.clock))
    }

    /// The LWW map `name` (touched, and created empty while it loads) with the clock, to write.
    pub fn lww_mut(&mut self, name: &str, wall: u64) -> Result<(&mut LwwMap, &mut Hlc), Error> {
        let id = self.open(name, MapKind::Lww, wall)?;
        match self.write_at(id, MapKind::Lww, wall)? {
            (AnyMap::Lww(m), clock) => Ok((m, clock)),
            (AnyMap::Or(_), _) => Err(mismatch(name, MapKind::Or, MapKind::Lww)),
        }
    }

    /// The OR map `name` (touched, and created empty while it loads) with the clock, to write.
    pub fn or_mut(&mut self, name: &str, wall: u64) -> Result<(&mut OrMap, &mut Hlc), Error> {
        let id = self.open(name, MapKind::Or, wall)?;
        match self.write_at(id, MapKind::Or, wall)? {
            (AnyMap::Or(m), clock) => Ok((m, clock)),
            (AnyMap::Lww(_), _) => Err(mismatch(name, MapKind::Lww, MapKind::Or)),
        }
    }

    // ---- flush ----------------------------------------------------------------------------------

    /// Writes every loaded map's dirty state: per map one `StoreAll` (atomic) and one `DeleteAll`
    /// when needed. [`StorageEvent::Flushed`] with the returned id follows when all succeeded (at
    /// once when there was nothing to write), else [`StorageEvent::FlushFailed`].
    pub fn flush(&mut self) -> u64 {
        self.next_flush += 1;
        let flush_id = self.next_flush;
        let mut batches = Vec::new();
        let (mut waits, mut retries, mut fills) = (Vec::new(), Vec::new(), Vec::new());
        let mut held = Vec::new();
        for index in 0..self.slots.len() {
            let id = MapId(index as u32);
            let slot = &self.slots[index];
            if slot.pending_writes() == 0 {
                continue;
            }
            match (slot.phase, &slot.last_error) {
                // Written keys the load left out are loaded and merged first (a fill), so a write
                // is never stored over a stored record it was not merged with.
                (Phase::Loaded, _) if slot.filling => waits.push(id),
                (Phase::Loaded, _) => match self.unloaded_written(id) {
                    keys if keys.is_empty() => batches.extend(self.write_batches(id)),
                    keys => fills.push((id, keys)),
                },
                // Early writes are stored once the load has merged them: this flush waits for it.
                (Phase::Loading, _) => waits.push(id),
                // Writes of the other kind than the one stored can never be stored as they are: the
                // flush fails while they are held (a flush that succeeds means every write is
                // durable), until the embedder takes them back with `take_early_map`.
                (Phase::Failed, Some(error @ Error::LoadKindMismatch { .. })) => held.push(alloc::format!(
                    "map {}: {} write(s) are held aside and can never be stored: {error}; take them back \
                     (grid.takeEarlyWrites in JavaScript, TakeEarlyWrites in the byte ABI)",
                    crate::error::Quoted(&slot.name),
                    slot.pending_writes(),
                )),
                // A load that failed for the storage's sake is tried again, and waited for.
                (Phase::Failed | Phase::Unloaded, _) => retries.push(id),
            }
        }
        for id in retries {
            let slot = &self.slots[id.0 as usize];
            let (name, wall) = (slot.name.clone(), slot.wall);
            if self.touch(&name, None, wall).is_ok() {
                waits.push(id);
            }
        }
        for (id, keys) in fills {
            let slot = &mut self.slots[id.0 as usize];
            slot.filling = true;
            let op = StorageOp::LoadAll { map: slot.name.to_string(), keys: keys.clone() };
            let request = self.request(op);
            self.pending.push((request, Pending::Fill { id, keys }));
            waits.push(id);
        }
        for &id in &waits {
            self.slots[id.0 as usize].flush_waiters.push(flush_id);
        }
        let (waits, errors) = (waits.len(), held);
        self.flushes.push((flush_id, FlushProgress { remaining: batches.len() + waits + 1, errors }));
        self.issue(flush_id, batches);
        // The `+ 1` above keeps the flush open while its requests are issued.
        self.flush_step(flush_id, None);
        flush_id
    }

    /// The written keys of a loaded map that its load left out (sorted).
    fn unloaded_written(&self, id: MapId) -> Vec<String> {
        let slot = &self.slots[id.0 as usize];
        let Some(map) = slot.map.as_ref().filter(|_| !slot.unloaded_keys.is_empty()) else { return Vec::new() };
        map.dirty()
            .keys()
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| slot.unloaded_keys.binary_search_by(|u| u.as_str().cmp(k)).is_ok())
            .map(String::from)
            .collect()
    }

    /// One map's dirty state as write requests: one `StoreAll` (every dirty key still holding
    /// records, and the OR tombstone list when it changed) and one `DeleteAll` when needed.
    fn write_batches(&self, id: MapId) -> Vec<Batch> {
        let slot = &self.slots[id.0 as usize];
        let Some(map) = slot.map.as_ref() else { return Vec::new() };
        let (mut entries, mut stored) = (Vec::new(), Vec::new());
        let (mut deletes, mut deleted) = (Vec::new(), Vec::new());
        for (key, seq) in map.dirty().keys() {
            let value = match map {
                AnyMap::Lww(m) => m.record_ref(key).map(|r| encode_stored_lww(&r)),
                AnyMap::Or(m) => {
                    let records = m.get_records(key);
                    (!records.is_empty()).then(|| encode_stored_or(records))
                }
            };
            match value {
                Some(bytes) => {
                    entries.push((key.to_string(), bytes));
                    stored.push((Box::from(key), seq));
                }
                None => {
                    deletes.push(key.to_string());
                    deleted.push((Box::from(key), seq));
                }
            }
        }
        // The dirty keys come sorted; the reserved key goes in its place among them.
        let (mut store_tombstones, mut delete_tombstones) = (None, None);
        if let (Some(seq), AnyMap::Or(m)) = (map.dirty().tombstones(), map) {
            let tags = m.tombstones();
            if tags.is_empty() {
                let at = deletes.partition_point(|k| k.as_str() < RESERVED_KEY);
                deletes.insert(at, String::from(RESERVED_KEY));
                delete_tombstones = Some(seq);
            } else {
                let at = entries.partition_point(|(k, _)| k.as_str() < RESERVED_KEY);
                entries.insert(at, (String::from(RESERVED_KEY), encode_stored_tombstones(&tags)));
                store_tombstones = Some(seq);
            }
        }
        // The mark goes in the same atomic `StoreAll` as the records it covers.
        let (millis, counter) = self.clock.last();
        let writes = !entries.is_empty() || !deletes.is_empty();
        let mark = (writes && slot.mark < Some((millis, counter))).then_some((millis, counter));
        if mark.is_some() {
            let bytes = encode_stored_mark(&MapMark { kind: map.kind(), millis, counter });
            let at = entries.partition_point(|(k, _)| k.as_str() < MARK_KEY);
            entries.insert(at, (String::from(MARK_KEY), bytes));
        }
        let mut batches = Vec::new();
        if !entries.is_empty() {
            let op = StorageOp::StoreAll { map: slot.name.to_string(), entries };
            batches.push(Batch { op, id, keys: stored, tombstones: store_tombstones, mark });
        }
        if !deletes.is_empty() {
            let op = StorageOp::DeleteAll { map: slot.name.to_string(), keys: deletes };
            batches.push(Batch { op, id, keys: deleted, tombstones: delete_tombstones, mark: None });
        }
        batches
    }

    /// Sends a flush's write requests (its progress already counts them).
    fn issue(&mut self, flush_id: u64, batches: Vec<Batch>) {
        for Batch { op, id, keys, tombstones, mark } in batches {
            let request = self.request(op);
            self.pending.push((request, Pending::Write { flush_id, id, keys, tombstones, mark }));
        }
    }

    /// A map a flush waited for has loaded (or failed to): write its state for that flush, or
    /// fail the flush's wait with why.
    fn release_flushes(&mut self, id: MapId, error: Option<&Error>) {
        let slot = &mut self.slots[id.0 as usize];
        let waiters = core::mem::take(&mut slot.flush_waiters);
        let name = slot.name.clone();
        for flush_id in waiters {
            match error {
                None => {
                    let batches = self.write_batches(id);
                    if let Ok(at) = self.flushes.binary_search_by(|(k, _)| k.cmp(&flush_id)) {
                        self.flushes[at].1.remaining += batches.len();
                    }
                    self.issue(flush_id, batches);
                    self.flush_step(flush_id, None);
                }
                Some(e) => {
                    let why = alloc::format!(
                        "map {}: its early writes wait for it to load: {e}",
                        crate::error::Quoted(&name)
                    );
                    self.flush_step(flush_id, Some(why));
                }
            }
        }
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

    /// Answers a `LoadAllKeys` request with the keys and, for each, whether this node loads it
    /// (for a driver that runs `is_related_key` itself, as the JavaScript one does). An error for
    /// an id that is not pending or lists of different lengths (the request stays pending then).
    pub fn handle_keys_filtered(&mut self, id: u64, keys: Vec<String>, related: Vec<bool>) -> Result<(), Error> {
        if keys.len() != related.len() {
            return Err(Error::Decode { what: "key list", reason: "the related flags do not match the keys".into() });
        }
        let at = self.pending.binary_search_by(|(k, _)| k.cmp(&id)).map_err(|_| Error::UnknownStorageRequest { id })?;
        let Pending::Keys { id: map, generation } = self.pending[at].1 else {
            return Err(Error::Decode {
                what: "key list",
                reason: alloc::format!("request {id} did not ask for keys"),
            });
        };
        self.pending.remove(at);
        if self.is_current(map, generation) {
            self.on_keys(map, generation, keys, Some(&related));
        }
        Ok(())
    }

    /// Takes the adapter's answer to request `id`. An error only for an id that is not pending
    /// (answered twice, or never issued); a failure of the storage itself is reported as an event.
    pub fn handle_storage(&mut self, id: u64, result: StorageResult) -> Result<(), Error> {
        let pending = take_by_id(&mut self.pending, id).ok_or(Error::UnknownStorageRequest { id })?;
        match (pending, result) {
            (Pending::Keys { id, generation }, StorageResult::Keys(keys)) => {
                if self.is_current(id, generation) {
                    self.on_keys(id, generation, keys, None);
                }
            }
            (Pending::Fill { id, keys }, result) => {
                let filled = match result {
                    StorageResult::Values(values) => self.decode_values(id, &keys, values),
                    other => {
                        let reason = match other {
                            StorageResult::Failed(reason) => reason,
                            _ => String::from("the adapter answered a load with the wrong kind of result"),
                        };
                        Err(Error::Storage { map: excerpt(&self.slots[id.0 as usize].name), reason })
                    }
                };
                self.finish_fill(id, &keys, filled);
            }
            (Pending::Values { id, generation, keys, probe }, StorageResult::Values(values)) => {
                if self.is_current(id, generation) {
                    match self.decode_load(id, &keys, values, probe.as_deref()) {
                        Ok(loaded) => self.finish_load(id, loaded),
                        Err(error) => self.fail_load(id, error),
                    }
                }
            }
            (Pending::Keys { id, generation } | Pending::Values { id, generation, .. }, other) => {
                if self.is_current(id, generation) {
                    let reason = match other {
                        StorageResult::Failed(reason) => reason,
                        _ => String::from("the adapter answered a load with the wrong kind of result"),
                    };
                    let error = Error::Storage { map: excerpt(&self.slots[id.0 as usize].name), reason };
                    self.fail_load(id, error);
                }
            }
            (Pending::Write { flush_id, id, keys, tombstones, mark }, result) => {
                let error = match result {
                    StorageResult::Done => None,
                    StorageResult::Failed(reason) => Some(reason),
                    _ => Some(String::from("the adapter answered a write with the wrong kind of result")),
                };
                let slot = &mut self.slots[id.0 as usize];
                if error.is_none()
                    && let Some(map) = &mut slot.map
                {
                    // Clean only what still holds the version this request carried.
                    let dirty = map.dirty_mut();
                    for (key, seq) in keys {
                        dirty.clean(&key, Some(seq));
                    }
                    if tombstones.is_some() {
                        dirty.clean_tombstones(tombstones);
                    }
                }
                if error.is_none() {
                    slot.mark = slot.mark.max(mark);
                }
                let error = error.map(|e| alloc::format!("map {}: {e}", crate::error::Quoted(&slot.name)));
                self.flush_step(flush_id, error);
            }
        }
        Ok(())
    }

    fn is_current(&self, id: MapId, generation: u64) -> bool {
        self.slots.get(id.0 as usize).is_some_and(|s| s.phase == Phase::Loading && s.generation == generation)
    }

    fn request(&mut self, op: StorageOp) -> u64 {
        self.next_request += 1;
        let id = self.next_request;
        self.requests.push_back(StorageRequest { id, op });
        id
    }

    fn flush_step(&mut self, flush_id: u64, error: Option<String>) {
        let Ok(at) = self.flushes.binary_search_by(|(k, _)| k.cmp(&flush_id)) else { return };
        let progress = &mut self.flushes[at].1;
        progress.remaining -= 1;
        progress.errors.extend(error);
        if progress.remaining == 0 {
            let progress = self.flushes.remove(at).1;
            self.events.push_back(if progress.errors.is_empty() {
                StorageEvent::Flushed { flush_id }
            } else {
                StorageEvent::FlushFailed { flush_id, error: progress.errors.join("; ") }
            });
        }
    }

    /// The stored keys are known: ask for the related ones (`related`, else the configured
    /// `is_related_key`), `__tombstones__`, and any dirty key; remember the others.
    fn on_keys(&mut self, id: MapId, generation: u64, keys: Vec<String>, related: Option<&[bool]>) {
        let slot = &self.slots[id.0 as usize];
        let config = self.config.is_related_key.as_deref();
        let dirty = |k: &str| slot.map.as_ref().is_some_and(|m| m.dirty().contains(k));
        let (mut wanted, mut left_out) = (Vec::new(), Vec::new());
        for (i, key) in keys.into_iter().enumerate() {
            let is_related = match related {
                Some(flags) => flags[i],
                None => config.is_none_or(|f| f(&slot.name, &key)),
            };
            if key == RESERVED_KEY || key == MARK_KEY || dirty(&key) || is_related {
                wanted.push(key);
            } else {
                left_out.push(key);
            }
        }
        crate::sort::strs(&mut left_out);
        left_out.dedup();
        // The kind belongs to the stored map: when nothing loaded would tell it (a map stored
        // before marks, none of whose keys this node loads), one left-out value is read for it.
        let probe = match left_out.first() {
            Some(first) if wanted.is_empty() => Some(first.clone()),
            _ => None,
        };
        wanted.extend(probe.clone());
        self.slots[id.0 as usize].unloaded_keys = left_out;
        if wanted.is_empty() {
            self.finish_load(id, Loaded::default());
            return;
        }
        crate::sort::strs(&mut wanted);
        wanted.dedup();
        let op = StorageOp::LoadAll { map: self.slots[id.0 as usize].name.to_string(), keys: wanted.clone() };
        let request = self.request(op);
        self.pending.push((request, Pending::Values { id, generation, keys: wanted, probe }));
    }

    /// A fill ended: merge what it loaded (those keys are loaded now), then let the flushes that
    /// waited write the map; or fail them.
    fn finish_fill(&mut self, id: MapId, keys: &[String], filled: Result<Loaded, Error>) {
        let slot = &mut self.slots[id.0 as usize];
        slot.filling = false;
        let kind = slot.map.as_ref().map(AnyMap::kind);
        let filled = filled.and_then(|loaded| match (loaded.kind(), kind) {
            (Some(stored), Some(kind)) if stored != kind => {
                let key = keys.first().map_or("", String::as_str);
                Err(corrupt(
                    &slot.name,
                    key,
                    alloc::format!("a key of this {kind} map is stored as an {stored} record"),
                ))
            }
            _ => Ok(loaded),
        });
        match filled {
            Ok(loaded) => {
                self.merge_stored(id, loaded, false);
                self.slots[id.0 as usize].unloaded_keys.retain(|k| keys.binary_search(k).is_err());
                self.release_flushes(id, None);
            }
            Err(error) => self.release_flushes(id, Some(&error)),
        }
    }

    /// [`Self::decode_values`] of a load's answer, with the `probe` key (if any) taken out: only its
    /// kind is kept.
    fn decode_load(
        &self,
        id: MapId,
        asked: &[String],
        values: Vec<(String, Vec<u8>)>,
        probe: Option<&str>,
    ) -> Result<Loaded, Error> {
        let mut loaded = self.decode_values(id, asked, values)?;
        if let Some(probe) = probe {
            if let Some(at) = loaded.lww.iter().position(|(k, _)| k == probe) {
                loaded.lww.remove(at);
                loaded.probed = Some(MapKind::Lww);
            } else if let Some(at) = loaded.or.iter().position(|(k, _)| k == probe) {
                loaded.or.remove(at);
                loaded.probed = Some(MapKind::Or);
            }
        }
        Ok(loaded)
    }

    /// Decodes a `LoadAll` answer whole before anything is applied. Keys not asked for are ignored.
    fn decode_values(&self, id: MapId, asked: &[String], values: Vec<(String, Vec<u8>)>) -> Result<Loaded, Error> {
        let map = &*self.slots[id.0 as usize].name;
        // By the key's place in `asked` (sorted, unique), so they come out sorted; a key answered
        // twice keeps its last value.
        let mut by_key: Vec<Option<(String, Stored)>> = core::iter::repeat_with(|| None).take(asked.len()).collect();
        let mut nodes = Vec::new();
        for (key, bytes) in values {
            let Ok(at) = asked.binary_search(&key) else { continue };
            // Most stored values are LWW records: read those without building their values.
            let value = match decode_stored_lww_raw(&bytes, &mut nodes) {
                Some(record) => Stored::Lww(record),
                None => Stored::Other(decode_stored(&bytes).map_err(|e| corrupt(map, &key, e))?),
            };
            by_key[at] = Some((key, value));
        }
        let mut loaded = Loaded::default();
        for (key, value) in by_key.into_iter().flatten() {
            match (key.as_str(), value) {
                (RESERVED_KEY, Stored::Other(StoredValue::OrTombstones(tags))) => loaded.tombstones = Some(tags),
                (RESERVED_KEY, _) => {
                    return Err(corrupt(map, &key, "the reserved key holds something other than OR tombstones"));
                }
                (MARK_KEY, Stored::Other(StoredValue::Mark(mark))) => loaded.mark = Some(mark),
                (MARK_KEY, _) => return Err(corrupt(map, &key, "the mark key holds something other than a mark")),
                (_, Stored::Other(StoredValue::OrTombstones(_))) => {
                    return Err(corrupt(map, &key, "OR tombstones are stored under an ordinary key"));
                }
                (_, Stored::Other(StoredValue::Mark(_))) => {
                    return Err(corrupt(map, &key, "a map mark is stored under an ordinary key"));
                }
                (_, Stored::Lww(record)) => loaded.lww.push((key, record)),
                (_, Stored::Other(StoredValue::Lww(LwwRecord { value, timestamp, ttl_ms }))) => {
                    let record = StoredLww { value: value.as_ref().map(Encoded::new), timestamp, ttl_ms };
                    loaded.lww.push((key, record));
                }
                (_, Stored::Other(StoredValue::Or(records))) => loaded.or.push((key, records)),
            }
        }
        if loaded.kind() == Some(MapKind::Or)
            && let Some((key, _)) = loaded.lww.first()
        {
            return Err(corrupt(map, key, "an LWW record is stored in an OR map"));
        }
        if let Some(mark) = loaded.mark
            && loaded.kind() != Some(mark.kind)
        {
            let kind = loaded.kind().unwrap_or(mark.kind);
            return Err(corrupt(
                map,
                MARK_KEY,
                alloc::format!("the mark says {} but {kind} records are stored", mark.kind),
            ));
        }
        for key in loaded.lww.iter().map(|(k, _)| k).chain(loaded.or.iter().map(|(k, _)| k)) {
            check_key(key).map_err(|e| corrupt(map, key, e))?;
        }
        Ok(loaded)
    }

    fn fail_load(&mut self, id: MapId, error: Error) {
        let slot = &mut self.slots[id.0 as usize];
        slot.phase = Phase::Failed;
        slot.last_error = Some(error.clone());
        self.events.push_back(StorageEvent::LoadFailed { map: slot.name.to_string(), error: error.clone() });
        self.release_flushes(id, Some(&error));
    }

    /// Merges what was loaded into the (early) map and marks it loaded; or fails on a kind mismatch.
    fn finish_load(&mut self, id: MapId, loaded: Loaded) {
        let persistent = self.persistent;
        let slot = &mut self.slots[id.0 as usize];
        let stored = loaded.kind();
        let requested = slot.bound_kind();
        if let (Some(stored), Some(requested)) = (stored, requested)
            && stored != requested
        {
            let early_writes = slot.pending_writes();
            if early_writes == 0 {
                slot.map = None;
            }
            let error = Error::LoadKindMismatch { map: excerpt(&slot.name), stored, requested, early_writes };
            self.fail_load(id, error);
            return;
        }
        let kind = stored.or(requested).or(slot.hint).unwrap_or(MapKind::Lww);
        let count = loaded.lww.len() + loaded.or.len();
        // A mark alone (or a probed key) is no loaded record: `on_map_loaded` is for records.
        let any = count > 0 || loaded.tombstones.is_some();
        slot.mark = loaded.mark.map(|m| (m.millis, m.counter));
        slot.map_or_new(kind, persistent);
        self.restamp_early(id, &loaded);
        self.merge_stored(id, loaded, true);
        let slot = &mut self.slots[id.0 as usize];
        slot.phase = Phase::Loaded;
        slot.last_error = None;
        if any {
            self.events.push_back(StorageEvent::MapLoaded { map: slot.name.to_string(), count });
        }
        self.events.push_back(StorageEvent::Ready { map: slot.name.to_string(), kind });
        self.release_flushes(id, None);
    }

    /// Makes this node's writes made while the map loaded later than everything stored (SPEC
    /// section 1): a restarted node's clock may stand still or step back, so an early write can
    /// carry a timestamp its earlier life already issued, in this map, for another record. The
    /// clock first observes the stored high-water mark (records, tombstones and the map mark,
    /// which covers keys this node does not load); then every early record of this node not later
    /// than it gets a fresh timestamp, oldest first (equal content is no proof of the same write:
    /// an OR add of the same value twice is two records). An early OR remove of such a re-stamped
    /// add is dropped when storage holds another record under its tag: the remove observed the
    /// early add, never the stored record. The one case this cannot tell apart: a peer's copy of
    /// this node's own earlier record, merged while the map loads, is re-stamped like a local
    /// write (for LWW the same value, newer; for OR a second record of it), so sync holds a
    /// map's incoming records until it has loaded.
    #[inline(never)]
    fn restamp_early(&mut self, id: MapId, loaded: &Loaded) {
        let Some(high) = loaded.high_water() else { return };
        let slot = &mut self.slots[id.0 as usize];
        let wall = slot.wall;
        let clock = &mut self.clock;
        let me = clock.node_id().clone();
        clock.observe(&Timestamp::new(high.0, high.1, me.clone()), wall);
        let stale = |t: &Timestamp| t.node_id == me && (t.millis, t.counter) <= high;
        let Some(map) = slot.map.as_mut() else { return };
        match map {
            AnyMap::Lww(m) => {
                let mut early: Vec<(Timestamp, String)> = Vec::new();
                for r in m.record_refs() {
                    let ts = Timestamp::new(r.millis, r.counter, r.node_id.clone());
                    if stale(&ts) {
                        early.push((ts, String::from(r.key)));
                    }
                }
                crate::sort::by_timestamp(&mut early, |(ts, _)| ts);
                for (_, key) in early {
                    let Ok(now) = clock.now(wall) else { break };
                    m.restamp(&key, now);
                }
            }
            AnyMap::Or(m) => {
                // Few: this node's own removes, made while the map loaded, of stale tags.
                let mut removed: Vec<Timestamp> = Vec::new();
                for tag in m.tombstone_tags() {
                    if stale(tag) && loaded.holds_tag(tag) {
                        removed.push(tag.clone());
                    }
                }
                for tag in &removed {
                    m.forget_tombstone(tag);
                }
                let mut early: Vec<(Timestamp, String)> = Vec::new();
                for (key, r) in m.all_records() {
                    if stale(&r.timestamp) {
                        early.push((r.timestamp.clone(), String::from(key)));
                    }
                }
                crate::sort::by_timestamp(&mut early, |(ts, _)| ts);
                for (old, key) in early {
                    let Ok(now) = clock.now(wall) else { break };
                    m.restamp(&key, &old, now);
                }
            }
        }
    }

    /// Merges stored records into the map (its kind checked already) by the CRDT rules: the
    /// merges cannot fail, as `decode_values` checked every key and record. A loaded key stays
    /// dirty exactly when memory differs from what is stored. `full`: the whole map's load (with
    /// its tombstone list, or knowing there is none), not a fill of some keys.
    fn merge_stored(&mut self, id: MapId, loaded: Loaded, full: bool) {
        let slot = &mut self.slots[id.0 as usize];
        let wall = slot.wall;
        let clock = &mut self.clock;
        // The merges below cannot fail: `decode_values` checked every key and record. Each marks
        // what it changed dirty; a key is then cleaned exactly when memory equals what is stored.
        let Some(map) = slot.map.as_mut() else { return };
        match map {
            AnyMap::Lww(m) => {
                // Only keys written early can differ from storage after the merge: the load marks
                // nothing, and each of those is clean again if the stored record won.
                let mut early = m.dirty_mut().suspend();
                for (key, record) in loaded.lww {
                    let written_early = early.contains(&key);
                    let stored_ts = written_early.then(|| record.timestamp.clone());
                    let _ = m.load_encoded(clock, wall, &key, record);
                    if let Some(ts) = stored_ts
                        && m.record_ref(&key)
                            .is_some_and(|r| (r.millis, r.counter, r.node_id) == (ts.millis, ts.counter, &ts.node_id))
                    {
                        early.clean(&key, None);
                    }
                }
                m.dirty_mut().resume(early);
            }
            AnyMap::Or(m) => {
                // A fill brings no tombstone list: the map's, loaded with it, stands.
                let full = loaded.tombstones.is_some() || full;
                let stored_tags = loaded.tombstones.unwrap_or_default();
                for tag in &stored_tags {
                    clock.observe(tag, wall);
                    m.apply_tombstone(tag);
                }
                for (key, records) in loaded.or {
                    let stored_ts: Vec<Timestamp> = records.iter().map(|r| r.timestamp.clone()).collect();
                    for record in records {
                        let _ = m.load(clock, wall, &key, record);
                    }
                    // The key's records (sorted by timestamp, each once) are exactly the stored ones.
                    let now = m.get_records(&key);
                    let mut seen = alloc::vec![false; now.len()];
                    let all_stored = stored_ts.iter().all(|t| match now.binary_search_by(|r| r.timestamp.cmp(t)) {
                        Ok(at) => {
                            seen[at] = true;
                            true
                        }
                        Err(_) => false,
                    });
                    if all_stored && seen.iter().all(|&s| s) {
                        m.dirty_mut().clean(&key, None);
                    } else {
                        m.dirty_mut().mark(&key);
                    }
                }
                // The map's tombstones include every stored one: they are the stored ones when
                // there are as many.
                let stored: HashSet<&Timestamp, Hasher> = stored_tags.iter().collect();
                if !full {
                } else if m.tombstone_count() == stored.len() {
                    m.dirty_mut().clean_tombstones(None);
                } else {
                    m.dirty_mut().mark_tombstones();
                }
            }
        }
    }
}
