//! [`StorageManager`]: the owner of a grid's maps and clock. Its state (one [`Slot`] per map ever
//! touched, the requests and flushes in flight), the maps' API (touch, read, write) and the polling
//! interface; the load and the flush are in `load.rs` and `flush.rs`.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::error::{Error, ErrorKind, Quoted, excerpt};
use crate::hlc::{ClockConfig, Hlc, NodeId};
use crate::lww::LwwMap;
use crate::map_common::MapKind;
use crate::or_map::OrMap;
use crate::storage::maps::{AnyMap, MapId, check_name, mismatch};
use crate::storage::{MapStatus, StorageConfig, StorageEvent, StorageOp, StorageRequest, StorageResult};

/// Where a map is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Not touched since it was created by a refused import or unloaded: the grid does not have it.
    Unloaded,
    Loading,
    Loaded,
    /// Its last load failed; it may hold an early map. The next touch retries.
    Failed,
}

/// One map as the manager tracks it. Slots are never removed, so a [`MapId`] stays valid.
#[derive(Debug)]
pub(super) struct Slot {
    pub(super) name: Box<str>,
    pub(super) phase: Phase,
    /// The map: loaded, or the early map written while loading (or kept after a failed load).
    pub(super) map: Option<AnyMap>,
    /// The kind asked for by the caller that started the current load.
    pub(super) hint: Option<MapKind>,
    /// The kinds `get_map` callers asked for while the current load runs: when it ends, each
    /// that disagrees with the loaded kind is answered [`StorageEvent::Refused`].
    pub(super) asked: Vec<MapKind>,
    pub(super) wall: u64,
    /// Counts loads, so an answer to an abandoned one is ignored.
    pub(super) generation: u64,
    pub(super) last_error: Option<Error>,
    /// Change events are wanted (kept here because a reload makes a new map).
    pub(super) events: bool,
    /// Flushes waiting for this map's load (or fill), to store what was written meanwhile.
    pub(super) flush_waiters: Vec<u64>,
    /// Stored keys the load left out (`is_related_key` said no), sorted: a write to one is merged
    /// with what storage holds before a flush stores it.
    pub(super) unloaded_keys: Vec<String>,
    /// A fill (loading some of `unloaded_keys` before a flush) is running.
    pub(super) filling: bool,
    /// The clock's `(millis, counter)` in the map's stored [`crate::codec::MapMark`], once loaded
    /// or written.
    pub(super) mark: Option<(u64, u32)>,
}

impl Slot {
    /// The kind this map is bound to: its map's (loaded, or the early map a handle or a write
    /// made). A hint alone binds nothing: it only picks the kind of a map with nothing stored.
    pub(super) fn bound_kind(&self) -> Option<MapKind> {
        self.map.as_ref().map(AnyMap::kind)
    }

    /// Keys written but not stored (the OR tombstone list counting as one).
    pub(super) fn pending_writes(&self) -> usize {
        self.map.as_ref().map_or(0, |m| m.dirty().len())
    }

    /// The map, made empty of `kind` if there is none yet.
    pub(super) fn map_or_new(&mut self, kind: MapKind, persistent: bool) -> &mut AnyMap {
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

/// The slot of a map, by its id. Ids are positions in `slots`, which only grows, so every id the
/// manager handed out finds its slot. (A method of its own, not `Index`: `Index::index` passes its
/// caller's location to a panic, so each call site would add one to the module; this is one.)
pub(super) trait SlotAt {
    /// The slot of map `id`.
    fn at(&self, id: MapId) -> &Slot;
    /// The slot of map `id`, to change.
    fn at_mut(&mut self, id: MapId) -> &mut Slot;
}

impl SlotAt for Vec<Slot> {
    fn at(&self, id: MapId) -> &Slot {
        &self[id.0 as usize]
    }

    fn at_mut(&mut self, id: MapId) -> &mut Slot {
        &mut self[id.0 as usize]
    }
}

/// A request the manager waits for (the keys of `Values` sorted, each once).
#[derive(Debug)]
pub(super) enum Pending {
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

#[derive(Debug)]
pub(super) struct FlushProgress {
    pub(super) remaining: usize,
    /// Each failure's kind and message, in the order they came.
    pub(super) errors: Vec<(ErrorKind, String)>,
}

/// One grid's maps and clock, loaded from and flushed to a storage adapter it never calls itself.
///
/// Polling order: after any call, drain [`StorageManager::poll_storage`] (run the requests in that
/// order, answer with [`StorageManager::handle_storage`]), then [`StorageManager::poll_event`].
/// See the [module docs](crate::storage) for the decisions it makes.
pub struct StorageManager {
    pub(super) clock: Hlc,
    pub(super) config: StorageConfig,
    /// False for a grid without storage: maps load at once, empty, and nothing is tracked.
    pub(super) persistent: bool,
    /// Map ids by name, sorted by name.
    pub(super) ids: Vec<(Box<str>, MapId)>,
    pub(super) slots: Vec<Slot>,
    pub(super) requests: VecDeque<StorageRequest>,
    pub(super) events: VecDeque<StorageEvent>,
    /// Requests waiting for an answer, by id (ids only grow, so pushing keeps them sorted).
    pub(super) pending: Vec<(u64, Pending)>,
    /// Flushes waiting for their requests' answers, by flush id (sorted likewise).
    pub(super) flushes: Vec<(u64, FlushProgress)>,
    pub(super) next_request: u64,
    pub(super) next_flush: u64,
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
    /// wants: an error at once if the map is loaded as (or its early map is) the other kind. While
    /// it loads, the answer comes as an event when the load ends, so no caller asks again:
    /// [`StorageEvent::Refused`] for the callers whose `hint` disagrees with the loaded kind, then
    /// [`StorageEvent::Ready`] for every other caller, or [`StorageEvent::LoadFailed`] for all.
    pub fn get_map(&mut self, name: &str, hint: Option<MapKind>, wall: u64) -> Result<MapStatus, Error> {
        let id = self.touch(name, hint, wall)?;
        let slot = self.slots.at_mut(id);
        Ok(match (slot.phase, &slot.map) {
            (Phase::Loaded, Some(map)) => MapStatus::Loaded(map.kind()),
            _ => {
                if let Some(kind) = hint
                    && !slot.asked.contains(&kind)
                {
                    slot.asked.push(kind);
                }
                MapStatus::Loading
            }
        })
    }

    /// [`StorageManager::get_map`] for a caller that needs a handle of `kind` now: the map's id, with
    /// its (early) map created so reads see it while it loads.
    pub fn open(&mut self, name: &str, kind: MapKind, wall: u64) -> Result<MapId, Error> {
        let id = self.touch(name, Some(kind), wall)?;
        self.slots.at_mut(id).map_or_new(kind, self.persistent);
        Ok(id)
    }

    pub(super) fn touch(&mut self, name: &str, hint: Option<MapKind>, wall: u64) -> Result<MapId, Error> {
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
                    asked: Vec::new(),
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
        let slot = self.slots.at_mut(id);
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

    /// The name of the map with id `id`.
    pub fn name_of(&self, id: MapId) -> Option<&str> {
        self.slots.get(id.0 as usize).map(|s| &*s.name)
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
        self.ids.iter().filter(|(_, id)| self.slots.at(*id).phase != Phase::Unloaded).map(|(k, _)| &**k).collect()
    }

    /// True when the map with id `id` is loaded.
    pub fn is_loaded(&self, id: MapId) -> bool {
        self.slots.get(id.0 as usize).is_some_and(|s| s.phase == Phase::Loaded)
    }

    /// The ids of the loaded maps, in the order of their names: for a caller that visits every
    /// map often (sync's change log) and must not allocate to do it.
    pub fn loaded_ids(&self) -> impl Iterator<Item = MapId> + '_ {
        self.ids.iter().map(|(_, id)| *id).filter(|id| self.is_loaded(*id))
    }

    /// The error of the map's last load, until the next touch retries it.
    pub fn load_error(&self, name: &str) -> Option<&Error> {
        self.slot(name)?.last_error.as_ref()
    }

    /// Drops a loaded, idle map whose writes are all stored; the next touch reloads it. A map whose
    /// load failed and that holds no early writes is dropped too. Returns whether it was dropped.
    pub fn unload(&mut self, name: &str) -> bool {
        let Some(id) = self.id_of(name) else { return false };
        let slot = self.slots.at_mut(id);
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
            slot.asked.clear();
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
        let slot = self.slots.at_mut(id);
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
                        Err(Error::Storage { map: excerpt(&self.slots.at(id).name), reason })
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
                    let error = Error::Storage { map: excerpt(&self.slots.at(id).name), reason };
                    self.fail_load(id, error);
                }
            }
            (Pending::Write { flush_id, id, keys, tombstones, mark }, result) => {
                let error = match result {
                    StorageResult::Done => None,
                    StorageResult::Failed(reason) => Some(reason),
                    _ => Some(String::from("the adapter answered a write with the wrong kind of result")),
                };
                let slot = self.slots.at_mut(id);
                if let Some(map) = &mut slot.map {
                    let dirty = map.dirty_mut();
                    if error.is_some() {
                        // The next flush carries the map's dirty keys again.
                        dirty.reissue();
                    } else {
                        // Clean only what still holds the version this request carried.
                        for (key, seq) in keys {
                            dirty.clean(&key, Some(seq));
                        }
                        if tombstones.is_some() {
                            dirty.clean_tombstones(tombstones);
                        }
                    }
                }
                if error.is_none() {
                    slot.mark = slot.mark.max(mark);
                }
                let error = error.map(|e| (ErrorKind::Storage, alloc::format!("map {}: {e}", Quoted(&slot.name))));
                if let Some((_, why)) = &error {
                    self.fail_later_flushes(flush_id, why);
                }
                self.flush_step(flush_id, error);
            }
        }
        Ok(())
    }

    fn is_current(&self, id: MapId, generation: u64) -> bool {
        self.slots.get(id.0 as usize).is_some_and(|s| s.phase == Phase::Loading && s.generation == generation)
    }

    pub(super) fn request(&mut self, op: StorageOp) -> u64 {
        self.next_request += 1;
        let id = self.next_request;
        self.requests.push_back(StorageRequest { id, op });
        id
    }
}
