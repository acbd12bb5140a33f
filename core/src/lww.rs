//! The last-writer-wins map of SPEC section 3.
//!
//! Records live in one hash table; each slot keeps its timestamp flattened next to its Merkle item
//! hash, so a record costs little beyond its key and value (BENCHMARKS.md has the figure). Reads
//! that list keys (`entries`, `live_keys`, `leaf_keys`, `records`) return them sorted by key bytes,
//! so every runtime sees the same order.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::num::NonZeroU64;

use hashbrown::HashMap;
use hashbrown::hash_map::EntryRef;

use crate::codec::value::Encoded;
use crate::dirty::Dirty;
use crate::error::Error;
use crate::event::{ChangeEvent, EventQueue, Feed, Origin};
use crate::hash::Fnv1a;
use crate::hlc::{Drift, Hlc, NodeId, Timestamp};
use crate::map_common::{Hasher, Merged, check_key, check_ttl, is_expired};
use crate::merkle::MerkleTree;
use crate::value::Value;

/// One LWW record: a value (or a tombstone), the timestamp of its write, and an optional TTL.
#[derive(Clone, Debug, PartialEq)]
pub struct LwwRecord {
    /// `None` is a tombstone; `Some(Value::Null)` is a stored null.
    pub value: Option<Value>,
    /// When and by whom it was written.
    pub timestamp: Timestamp,
    /// Milliseconds after `timestamp.millis` when reads stop seeing it (`None`: never).
    pub ttl_ms: Option<u64>,
}

impl LwwRecord {
    /// True when this record is not a tombstone.
    pub fn is_live(&self) -> bool {
        self.value.is_some()
    }

    /// Checks what a record from outside must satisfy: a valid value and a TTL above zero.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        check_ttl(self.ttl_ms)?;
        self.value.as_ref().map_or(Ok(()), Value::validate)
    }
}

/// A stored record borrowed from the map, value still encoded (see [`LwwMap::record_refs`]).
#[derive(Clone, Copy, Debug)]
pub struct RecordRef<'a> {
    /// The key.
    pub key: &'a str,
    /// The value, `None` for a tombstone.
    pub value: Option<&'a Encoded>,
    /// Timestamp millis.
    pub millis: u64,
    /// Timestamp counter.
    pub counter: u32,
    /// Timestamp node.
    pub node_id: &'a NodeId,
    /// TTL, if any.
    pub ttl_ms: Option<u64>,
}

// ---- records with their values still encoded, as the codec's decoders hand them over ----------
//
// Defined here, with the map that takes them ([`LwwMap::merge_all_raw`], [`LwwMap::load_encoded`]),
// so the map needs nothing from the decoders above it; `crate::codec` re-exports them.

/// An LWW snapshot decoded with its values still encoded (by
/// [`crate::codec::decode_lww_snapshot_raw`]): every key back to back, and the records in key
/// order. Only the decoder makes one, so its keys are checked, unique and sorted.
#[derive(Clone, Debug, PartialEq)]
pub struct RawLwwSnapshot {
    /// The keys of all records, one after another.
    pub(crate) keys: String,
    /// The records, sorted by key.
    pub(crate) records: Vec<RawLwwRecord>,
}

impl RawLwwSnapshot {
    /// The records, sorted by key.
    pub fn records(&self) -> &[RawLwwRecord] {
        &self.records
    }

    /// The key of `record` (one of [`RawLwwSnapshot::records`]).
    pub fn key(&self, record: &RawLwwRecord) -> &str {
        self.keys.get(record.key.clone()).unwrap_or_default()
    }
}

/// A record of an LWW snapshot with its value still encoded.
#[derive(Clone, Debug, PartialEq)]
pub struct RawLwwRecord {
    /// Where its key lies in the snapshot's keys (see [`RawLwwSnapshot::key`]).
    pub(crate) key: core::ops::Range<usize>,
    /// The value, `None` for a tombstone.
    pub value: Option<Encoded>,
    /// When and by whom it was written.
    pub timestamp: Timestamp,
    /// TTL, if any.
    pub ttl_ms: Option<u64>,
}

/// An LWW record read back from storage with its value still encoded (see
/// [`crate::codec::decode_stored_lww_raw`]).
#[derive(Clone, Debug, PartialEq)]
pub struct StoredLww {
    /// The value, `None` for a tombstone.
    pub value: Option<Encoded>,
    /// When and by whom it was written.
    pub timestamp: Timestamp,
    /// TTL, if any.
    pub ttl_ms: Option<u64>,
}

/// A stored record, timestamp flattened to keep the slot small, value kept encoded.
#[derive(Clone, Debug)]
struct Slot {
    value: Option<Encoded>,
    millis: u64,
    counter: u32,
    /// `fnv1a("<key>:<millis>:<counter>:<node_id>")`, cached for Merkle updates.
    item_hash: u32,
    node_id: NodeId,
    ttl_ms: Option<NonZeroU64>,
}

impl Slot {
    fn timestamp(&self) -> Timestamp {
        Timestamp::new(self.millis, self.counter, self.node_id.clone())
    }

    /// Compares this slot's timestamp with `ts` without building a `Timestamp`.
    fn is_older_than(&self, ts: &Timestamp) -> bool {
        (self.millis, self.counter).cmp(&(ts.millis, ts.counter)).then_with(|| {
            if self.node_id.ptr_eq(&ts.node_id) {
                core::cmp::Ordering::Equal
            } else {
                self.node_id.as_str().as_bytes().cmp(ts.node_id.as_str().as_bytes())
            }
        }) == core::cmp::Ordering::Less
    }

    fn record(&self) -> LwwRecord {
        LwwRecord {
            value: self.value.as_ref().map(Encoded::decode),
            timestamp: self.timestamp(),
            ttl_ms: self.ttl_ms.map(NonZeroU64::get),
        }
    }

    fn as_ref<'a>(&'a self, key: &'a str) -> RecordRef<'a> {
        RecordRef {
            key,
            value: self.value.as_ref(),
            millis: self.millis,
            counter: self.counter,
            node_id: &self.node_id,
            ttl_ms: self.ttl_ms.map(NonZeroU64::get),
        }
    }

    fn visible(&self, wall: u64) -> Option<&Encoded> {
        let value = self.value.as_ref()?;
        (!is_expired(self.millis, self.ttl_ms, wall)).then_some(value)
    }
}

/// `(fnv1a(key), item hash)` of a record, in one pass over the key.
fn hashes(key: &str, ts: &Timestamp) -> (u32, u32) {
    let mut h = Fnv1a::new();
    h.write_text(key);
    let key_hash = h.finish();
    h.write_unit(u16::from(b':'));
    ts.hash_into(&mut h);
    (key_hash, h.finish())
}

/// The live counters of a map, updated while its table is borrowed.
struct Live {
    live: usize,
    with_ttl: usize,
}

impl Live {
    /// Adds `sign` (+1 or -1) for `slot`.
    fn count(&mut self, slot: &Slot, sign: isize) {
        if slot.value.is_some() {
            self.live = self.live.wrapping_add_signed(sign);
            if slot.ttl_ms.is_some() {
                self.with_ttl = self.with_ttl.wrapping_add_signed(sign);
            }
        }
    }
}

/// A last-writer-wins map with its Merkle tree.
#[derive(Clone, Debug, Default)]
pub struct LwwMap {
    slots: HashMap<Box<str>, Slot, Hasher>,
    tree: MerkleTree,
    /// Records that are not tombstones, and of those the ones with a TTL (so `len` can skip a scan).
    live: usize,
    live_with_ttl: usize,
    events: EventQueue,
    dirty: Dirty,
    /// What changed, for sync (off until sync turns it on).
    feed: Feed,
}

impl LwwMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stamps `now()` and stores `value` under `key`, replacing whatever was there.
    pub fn set(
        &mut self,
        clock: &mut Hlc,
        wall: u64,
        key: &str,
        mut value: Value,
        ttl_ms: Option<u64>,
    ) -> Result<Timestamp, Error> {
        check_key(key)?;
        check_ttl(ttl_ms)?;
        value.validate()?;
        value.whole_floats_as_ints();
        self.set_encoded(clock, wall, key, Encoded::new(&value), ttl_ms)
    }

    /// [`LwwMap::set`] of a value already encoded (and so already checked).
    pub fn set_encoded(
        &mut self,
        clock: &mut Hlc,
        wall: u64,
        key: &str,
        value: Encoded,
        ttl_ms: Option<u64>,
    ) -> Result<Timestamp, Error> {
        check_key(key)?;
        check_ttl(ttl_ms)?;
        let timestamp = clock.now(wall)?;
        self.put(key, Some(value), timestamp.clone(), ttl_ms, Origin::Local);
        Ok(timestamp)
    }

    /// Sets many entries, all or nothing: every key and value is checked before any is written.
    /// Each entry gets its own timestamp, in order.
    pub fn set_many<K: AsRef<str>>(
        &mut self,
        clock: &mut Hlc,
        wall: u64,
        entries: Vec<(K, Value)>,
    ) -> Result<usize, Error> {
        let mut encoded = Vec::with_capacity(entries.len());
        for (key, mut value) in entries {
            value.validate()?;
            value.whole_floats_as_ints();
            encoded.push((key, Encoded::new(&value)));
        }
        self.set_many_encoded(clock, wall, encoded)
    }

    /// [`LwwMap::set_many`] of values already encoded.
    pub fn set_many_encoded<K: AsRef<str>>(
        &mut self,
        clock: &mut Hlc,
        wall: u64,
        entries: Vec<(K, Encoded)>,
    ) -> Result<usize, Error> {
        for (key, _) in &entries {
            check_key(key.as_ref())?;
        }
        let count = entries.len();
        clock.reserve(wall, count)?;
        for (key, value) in entries {
            // `reserve` said the clock has room for every entry.
            let Ok(timestamp) = clock.now(wall) else { break };
            self.put(key.as_ref(), Some(value), timestamp, None, Origin::Local);
        }
        Ok(count)
    }

    /// Stores a tombstone stamped `now()` (also for a key never seen).
    pub fn remove(&mut self, clock: &mut Hlc, wall: u64, key: &str) -> Result<Timestamp, Error> {
        check_key(key)?;
        let timestamp = clock.now(wall)?;
        self.put(key, None, timestamp.clone(), None, Origin::Local);
        Ok(timestamp)
    }

    /// The visible value of `key` at `wall`: nothing for a missing key, a tombstone or an expired record.
    pub fn get(&self, key: &str, wall: u64) -> Option<Value> {
        self.get_encoded(key, wall).map(Encoded::decode)
    }

    /// [`LwwMap::get`], still encoded.
    pub fn get_encoded(&self, key: &str, wall: u64) -> Option<&Encoded> {
        self.slots.get(key)?.visible(wall)
    }

    /// The stored record of `key`, tombstones and expired records included.
    pub fn get_record(&self, key: &str) -> Option<LwwRecord> {
        self.slots.get(key).map(Slot::record)
    }

    /// Merges a record from a peer: observes its timestamp (drift-checked), then accepts it iff there
    /// is no local record or it is strictly newer. Equal timestamps are rejected, so merging twice is
    /// harmless; the value never breaks a tie.
    pub fn merge(&mut self, clock: &mut Hlc, wall: u64, key: &str, record: LwwRecord) -> Result<Merged, Error> {
        check_key(key)?;
        record.validate()?;
        let drift = clock.update(&record.timestamp, wall)?;
        Ok(Merged { accepted: self.merge_observed(key, record), drift })
    }

    /// Merges a batch from a peer, all or nothing: every record is validated and, in strict mode,
    /// drift-checked before any is applied. Returns how many were accepted and the drifts to report.
    pub fn merge_all(
        &mut self,
        clock: &mut Hlc,
        wall: u64,
        records: Vec<(Box<str>, LwwRecord)>,
    ) -> Result<(usize, Vec<Drift>), Error> {
        for (key, record) in &records {
            check_key(key)?;
            record.validate()?;
        }
        let drifts = clock.check_all(records.iter().map(|(_, r)| &r.timestamp), wall)?;
        let mut accepted = 0;
        for (key, record) in records {
            clock.observe(&record.timestamp, wall);
            accepted += usize::from(self.merge_observed(&key, record));
        }
        Ok((accepted, drifts))
    }

    /// [`LwwMap::merge_all`] of records whose values are still encoded (see
    /// [`crate::codec::decode_lww_snapshot_raw`]): all or nothing in the same way. Only the decoder
    /// makes a snapshot, and it has checked every key, TTL and value; what is left is drift.
    pub fn merge_all_raw(
        &mut self,
        clock: &mut Hlc,
        wall: u64,
        mut snapshot: RawLwwSnapshot,
    ) -> Result<(usize, Vec<Drift>), Error> {
        let drifts = clock.check_all(snapshot.records.iter().map(|r| &r.timestamp), wall)?;
        // Snapshot keys are unique, so at least this many are new: reserving them up front spares
        // the table its rehashes as it grows (all of them for an empty map) and never reserves
        // room for keys the map already has.
        self.slots.reserve(snapshot.records.len().saturating_sub(self.slots.len()));
        let records = core::mem::take(&mut snapshot.records);
        let mut accepted = 0;
        for record in records {
            clock.observe(&record.timestamp, wall);
            let key = snapshot.key(&record);
            accepted += usize::from(self.put(key, record.value, record.timestamp, record.ttl_ms, Origin::Remote));
        }
        Ok((accepted, drifts))
    }

    /// Merges a record read back from this node's own storage: it advances the clock like any merge
    /// but is never refused for drift (strict mode guards against peers, not the node's own past).
    pub fn load(&mut self, clock: &mut Hlc, wall: u64, key: &str, record: LwwRecord) -> Result<bool, Error> {
        check_key(key)?;
        record.validate()?;
        clock.observe(&record.timestamp, wall);
        Ok(self.merge_observed(key, record))
    }

    /// [`LwwMap::load`] of a record whose value is still encoded (the storage manager's fast path).
    pub fn load_encoded(&mut self, clock: &mut Hlc, wall: u64, key: &str, record: StoredLww) -> Result<bool, Error> {
        check_key(key)?;
        check_ttl(record.ttl_ms)?;
        clock.observe(&record.timestamp, wall);
        Ok(self.put(key, record.value, record.timestamp, record.ttl_ms, Origin::Remote))
    }

    /// The CRDT rule, once the clock has seen the record.
    fn merge_observed(&mut self, key: &str, record: LwwRecord) -> bool {
        let value = record.value.as_ref().map(Encoded::new);
        self.put(key, value, record.timestamp, record.ttl_ms, Origin::Remote)
    }

    /// Stores a record and keeps the tree, counters and events in step: always for a local write
    /// (its timestamp is the newest this clock issued), only if strictly newer for a remote one.
    /// One table lookup either way. `ttl_ms` has been checked to be non-zero.
    fn put(&mut self, key: &str, value: Option<Encoded>, ts: Timestamp, ttl_ms: Option<u64>, origin: Origin) -> bool {
        let entry = self.slots.entry_ref(key);
        if let EntryRef::Occupied(existing) = &entry
            && origin == Origin::Remote
            && !existing.get().is_older_than(&ts)
        {
            return false;
        }
        let (key_hash, item_hash) = hashes(key, &ts);
        let slot = Slot {
            value,
            millis: ts.millis,
            counter: ts.counter,
            item_hash,
            node_id: ts.node_id,
            ttl_ms: ttl_ms.and_then(NonZeroU64::new),
        };
        let mut live = Live { live: self.live, with_ttl: self.live_with_ttl };
        live.count(&slot, 1);
        let old = match entry {
            EntryRef::Occupied(mut existing) => Some(existing.insert(slot)),
            EntryRef::Vacant(vacant) => {
                vacant.insert(slot);
                None
            }
        };
        if let Some(old) = &old {
            live.count(old, -1);
        }
        (self.live, self.live_with_ttl) = (live.live, live.with_ttl);
        self.tree.update(key_hash, old.map(|o| o.item_hash), Some(item_hash));
        self.events.push(key, origin);
        self.feed.key(key, origin);
        self.dirty.mark(key);
        true
    }

    /// Gives the record of `key` a new timestamp, keeping its value and TTL (no change event: the
    /// value is the same). The storage manager re-stamps writes made while a map loaded when their
    /// timestamps are not later than what storage holds (SPEC section 1).
    #[inline(never)]
    pub(crate) fn restamp(&mut self, key: &str, ts: Timestamp) {
        let Some(slot) = self.slots.get_mut(key) else { return };
        let (key_hash, item_hash) = hashes(key, &ts);
        let old = slot.item_hash;
        (slot.millis, slot.counter, slot.node_id, slot.item_hash) = (ts.millis, ts.counter, ts.node_id, item_hash);
        self.tree.update(key_hash, Some(old), Some(item_hash));
        self.feed.key(key, Origin::Local);
        self.dirty.mark(key);
    }

    /// Drops tombstones whose timestamp is strictly older than `(older_than_millis, 0)`; returns how many.
    pub fn prune(&mut self, older_than_millis: u64) -> usize {
        let (tree, dirty) = (&mut self.tree, &mut self.dirty);
        let before = self.slots.len();
        self.slots.retain(|key, slot| {
            let drop = slot.value.is_none() && slot.millis < older_than_millis;
            if drop {
                tree.update(crate::hash::fnv1a(key), Some(slot.item_hash), None);
                dirty.mark(key);
            }
            !drop
        });
        before - self.slots.len()
    }

    /// Number of live entries visible at `wall` (tombstones and expired records excluded).
    pub fn len(&self, wall: u64) -> usize {
        if self.live_with_ttl == 0 {
            return self.live;
        }
        self.slots.values().filter(|s| s.visible(wall).is_some()).count()
    }

    /// True when no entry is visible at `wall`.
    pub fn is_empty(&self, wall: u64) -> bool {
        self.len(wall) == 0
    }

    /// Number of stored records, tombstones and expired records included.
    pub fn record_count(&self) -> usize {
        self.slots.len()
    }

    /// Visible entries at `wall`, sorted by key.
    pub fn entries(&self, wall: u64) -> Vec<(&str, Value)> {
        self.entries_encoded(wall).into_iter().map(|(k, v)| (k, v.decode())).collect()
    }

    /// [`LwwMap::entries`], values still encoded.
    pub fn entries_encoded(&self, wall: u64) -> Vec<(&str, &Encoded)> {
        let out: Vec<(&str, &Encoded)> =
            self.slots.iter().filter_map(|(k, s)| Some((&**k, s.visible(wall)?))).collect();
        crate::sort::sorted_copy(&out, |e| e.0.as_bytes())
    }

    /// Keys with a visible value at `wall`, sorted.
    pub fn live_keys(&self, wall: u64) -> Vec<&str> {
        self.entries_encoded(wall).into_iter().map(|(k, _)| k).collect()
    }

    /// Every stored record as the map holds it (values still encoded), sorted by key: what a
    /// snapshot encoder writes without decoding anything.
    pub fn record_refs(&self) -> Vec<RecordRef<'_>> {
        let refs: Vec<RecordRef<'_>> = self.slots.iter().map(|(k, s)| s.as_ref(k)).collect();
        crate::sort::sorted_copy(&refs, |r| r.key.as_bytes())
    }

    /// The stored record of `key` as the map holds it (value still encoded).
    pub(crate) fn record_ref(&self, key: &str) -> Option<RecordRef<'_>> {
        self.slots.get_key_value(key).map(|(k, s)| s.as_ref(k))
    }

    /// Every stored record, tombstones included, sorted by key: what a snapshot holds.
    pub fn records(&self) -> Vec<(&str, LwwRecord)> {
        let mut out: Vec<(&str, LwwRecord)> = self.slots.iter().map(|(k, s)| (&**k, s.record())).collect();
        crate::sort::by_key(&mut out, |e| e.0.as_bytes());
        out
    }

    /// The Merkle tree, for sync (`root`, `buckets`).
    pub fn tree(&self) -> &MerkleTree {
        &self.tree
    }

    /// The Merkle root.
    pub fn root(&self) -> u32 {
        self.tree.root()
    }

    /// Keys stored in the Merkle leaf (or subtree) at `path`, sorted. Scans the map: sync asks for
    /// few leaves, and keeping per-leaf key lists would cost memory on every record.
    pub fn leaf_keys(&self, path: &str) -> Vec<&str> {
        let mut out: Vec<&str> =
            self.slots.keys().filter(|k| MerkleTree::is_under(crate::hash::fnv1a(k), path)).map(|k| &**k).collect();
        crate::sort::strs(&mut out);
        out
    }

    /// Turns change events on or off (off by default; turning off drops the queued ones).
    pub fn record_events(&mut self, on: bool) {
        self.events.set_enabled(on);
    }

    /// The next change event, oldest first.
    pub fn poll_event(&mut self) -> Option<ChangeEvent> {
        self.events.pop()
    }

    /// The keys storage has not seen yet (tracked only once the storage manager turns it on).
    pub(crate) fn dirty(&self) -> &Dirty {
        &self.dirty
    }

    pub(crate) fn dirty_mut(&mut self) -> &mut Dirty {
        &mut self.dirty
    }

    /// What changed since sync last looked (see [`Feed`]).
    pub(crate) fn feed_mut(&mut self) -> &mut Feed {
        &mut self.feed
    }

    /// Calls `f(key, fnv1a(key), item hash)` for every record, in table order: sync's digests
    /// below the Merkle leaves, and its lists of the keys under a node, in one pass over the map.
    pub(crate) fn for_each_hash<'a>(&'a self, mut f: impl FnMut(&'a str, u32, u32)) {
        for (key, slot) in &self.slots {
            f(key, crate::hash::fnv1a(key), slot.item_hash);
        }
    }
}
