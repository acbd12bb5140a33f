//! A flush: per map with dirty keys, one `StoreAll` and one `DeleteAll`, after the loads and fills
//! it waits for; [`StorageEvent::Flushed`] once every request succeeded (see the decisions in the
//! module docs of [`crate::storage`]).

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::codec::stored::{
    MapMark, encode_stored_lww, encode_stored_mark, encode_stored_or, encode_stored_tombstones,
};
use crate::error::{Error, ErrorKind, Quoted};
use crate::map_common::{MARK_KEY, RESERVED_KEY};
use crate::storage::manager::{FlushProgress, Pending, Phase, SlotAt, StorageManager};
use crate::storage::maps::{AnyMap, MapId};
use crate::storage::{StorageEvent, StorageOp};

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

impl StorageManager {
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
                (Phase::Failed, Some(error @ Error::LoadKindMismatch { .. })) => held.push((
                    ErrorKind::KindMismatch,
                    alloc::format!(
                        "map {}: {} write(s) are held aside and can never be stored: {error}; take them back \
                     (grid.takeEarlyWrites in JavaScript, TakeEarlyWrites in the byte ABI)",
                        Quoted(&slot.name),
                        slot.pending_writes(),
                    ),
                )),
                // A load that failed for the storage's sake is tried again, and waited for.
                (Phase::Failed | Phase::Unloaded, _) => retries.push(id),
            }
        }
        for id in retries {
            let slot = self.slots.at(id);
            let (name, wall) = (slot.name.clone(), slot.wall);
            if self.touch(&name, None, wall).is_ok() {
                waits.push(id);
            }
        }
        for (id, keys) in fills {
            let slot = self.slots.at_mut(id);
            slot.filling = true;
            let op = StorageOp::LoadAll { map: slot.name.to_string(), keys: keys.clone() };
            let request = self.request(op);
            self.pending.push((request, Pending::Fill { id, keys }));
            waits.push(id);
        }
        for &id in &waits {
            self.slots.at_mut(id).flush_waiters.push(flush_id);
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
        let slot = self.slots.at(id);
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
        let slot = self.slots.at(id);
        let Some(map) = slot.map.as_ref() else { return Vec::new() };
        let (mut entries, mut stored) = (Vec::new(), Vec::new());
        let (mut deletes, mut deleted) = (Vec::new(), Vec::new());
        for (key, seq) in map.dirty().unissued() {
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
        if let (Some(seq), AnyMap::Or(m)) = (map.dirty().unissued_tombstones(), map) {
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

    /// Sends a flush's write requests (its progress already counts them); a later flush skips
    /// what they carry.
    fn issue(&mut self, flush_id: u64, batches: Vec<Batch>) {
        for Batch { op, id, keys, tombstones, mark } in batches {
            if let Some(map) = &mut self.slots.at_mut(id).map {
                map.dirty_mut().issue();
            }
            let request = self.request(op);
            self.pending.push((request, Pending::Write { flush_id, id, keys, tombstones, mark }));
        }
    }

    /// A map a flush waited for has loaded (or failed to): write its state for that flush, or
    /// fail the flush's wait with why.
    pub(super) fn release_flushes(&mut self, id: MapId, error: Option<&Error>) {
        let slot = self.slots.at_mut(id);
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
                    let why = alloc::format!("map {}: its early writes wait for it to load: {e}", Quoted(&name));
                    self.flush_step(flush_id, Some((e.kind(), why)));
                }
            }
        }
    }

    pub(super) fn flush_step(&mut self, flush_id: u64, error: Option<(ErrorKind, String)>) {
        let Ok(at) = self.flushes.binary_search_by(|(k, _)| k.cmp(&flush_id)) else { return };
        let progress = &mut self.flushes[at].1;
        progress.remaining -= 1;
        progress.errors.extend(error);
        self.end_flushes();
    }

    /// Ends the flushes whose requests are all answered, in the order they were issued: a flush
    /// skips the keys an earlier one in flight carries, so it holds only once that one does.
    fn end_flushes(&mut self) {
        while self.flushes.first().is_some_and(|(_, p)| p.remaining == 0) {
            let (flush_id, progress) = self.flushes.remove(0);
            self.events.push_back(if progress.errors.is_empty() {
                StorageEvent::Flushed { flush_id }
            } else {
                let kind = progress.errors[0].0;
                let reasons: Vec<&str> = progress.errors.iter().map(|(_, why)| why.as_str()).collect();
                StorageEvent::FlushFailed { flush_id, kind, error: reasons.join("; ") }
            });
        }
    }

    /// A write of flush `flush_id` failed: the flushes issued after it, still in flight, skipped
    /// what it carried, so they fail too. Flushes issued from now on carry it again (the map's
    /// dirty keys were [reissued](crate::dirty::Dirty::reissue)).
    pub(super) fn fail_later_flushes(&mut self, flush_id: u64, why: &str) {
        for (later, progress) in &mut self.flushes {
            if *later > flush_id {
                let why = alloc::format!("an earlier flush ({flush_id}) failed: {why}");
                progress.errors.push((ErrorKind::Storage, why));
            }
        }
    }
}
