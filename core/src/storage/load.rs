//! A map's load: which stored keys to load (the related ones, the reserved ones, every dirty one,
//! and a probe for the kind when nothing else would tell it), decoding the answer whole before
//! anything is applied, re-stamping this node's early writes past what is stored, and merging the
//! stored records into the (early) map; also a fill, which loads written keys the load left out
//! before a flush stores them.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use hashbrown::HashSet;

use crate::codec::stored::{MapMark, StoredValue, decode_stored, decode_stored_lww_raw};
use crate::codec::value::Encoded;
use crate::error::{Error, excerpt};
use crate::hlc::Timestamp;
use crate::lww::{LwwRecord, StoredLww};
use crate::map_common::{Hasher, MARK_KEY, MapKind, RESERVED_KEY, check_key};
use crate::or_map::OrRecord;
use crate::storage::manager::{Pending, Phase, SlotAt, StorageManager};
use crate::storage::maps::{AnyMap, MapId, mismatch};
use crate::storage::{StorageEvent, StorageOp};

/// One decoded stored value: an LWW record on the fast path, anything else in full.
enum Stored {
    Lww(StoredLww),
    Other(StoredValue),
}

/// Records decoded from one `LoadAll` answer.
#[derive(Default)]
pub(super) struct Loaded {
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

fn corrupt(map: &str, key: &str, reason: impl ToString) -> Error {
    Error::CorruptStoredValue { map: excerpt(map), key: excerpt(key), reason: reason.to_string() }
}

impl StorageManager {
    /// The stored keys are known: ask for the related ones (`related`, else the configured
    /// `is_related_key`), `__tombstones__`, and any dirty key; remember the others.
    pub(super) fn on_keys(&mut self, id: MapId, generation: u64, keys: Vec<String>, related: Option<&[bool]>) {
        let slot = self.slots.at(id);
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
        self.slots.at_mut(id).unloaded_keys = left_out;
        if wanted.is_empty() {
            self.finish_load(id, Loaded::default());
            return;
        }
        crate::sort::strs(&mut wanted);
        wanted.dedup();
        let op = StorageOp::LoadAll { map: self.slots.at(id).name.to_string(), keys: wanted.clone() };
        let request = self.request(op);
        self.pending.push((request, Pending::Values { id, generation, keys: wanted, probe }));
    }

    /// A fill ended: merge what it loaded (those keys are loaded now), then let the flushes that
    /// waited write the map; or fail them.
    pub(super) fn finish_fill(&mut self, id: MapId, keys: &[String], filled: Result<Loaded, Error>) {
        let slot = self.slots.at_mut(id);
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
                self.slots.at_mut(id).unloaded_keys.retain(|k| keys.binary_search(k).is_err());
                self.release_flushes(id, None);
            }
            Err(error) => self.release_flushes(id, Some(&error)),
        }
    }

    /// [`Self::decode_values`] of a load's answer, with the `probe` key (if any) taken out: only its
    /// kind is kept.
    pub(super) fn decode_load(
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
    pub(super) fn decode_values(
        &self,
        id: MapId,
        asked: &[String],
        values: Vec<(String, Vec<u8>)>,
    ) -> Result<Loaded, Error> {
        let map = &*self.slots.at(id).name;
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

    pub(super) fn fail_load(&mut self, id: MapId, error: Error) {
        let slot = self.slots.at_mut(id);
        slot.phase = Phase::Failed;
        slot.asked.clear();
        slot.last_error = Some(error.clone());
        self.events.push_back(StorageEvent::LoadFailed { map: slot.name.to_string(), error: error.clone() });
        self.release_flushes(id, Some(&error));
    }

    /// Merges what was loaded into the (early) map and marks it loaded; or fails on a kind mismatch.
    pub(super) fn finish_load(&mut self, id: MapId, loaded: Loaded) {
        let persistent = self.persistent;
        let slot = self.slots.at_mut(id);
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
        let slot = self.slots.at_mut(id);
        slot.phase = Phase::Loaded;
        slot.last_error = None;
        if any {
            self.events.push_back(StorageEvent::MapLoaded { map: slot.name.to_string(), count });
        }
        // The callers who asked for the other kind are answered here, so none asks again.
        for asked in core::mem::take(&mut slot.asked) {
            if asked != kind {
                let error = mismatch(&slot.name, kind, asked);
                self.events.push_back(StorageEvent::Refused { map: slot.name.to_string(), asked, error });
            }
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
        let slot = self.slots.at_mut(id);
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
        let slot = self.slots.at_mut(id);
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
