//! The observed-remove multimap of SPEC section 4.
//!
//! Each add is a record tagged with its own timestamp (the tag's text form is `"millis:counter:node"`,
//! and in memory the timestamp *is* the tag). A remove tombstones the tags it observed; a tombstoned
//! tag never comes back, so an add that the remover had not seen survives a concurrent remove.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::num::NonZeroU64;

use hashbrown::{HashMap, HashSet};

use crate::dirty::Dirty;
use crate::error::Error;
use crate::event::{ChangeEvent, EventQueue, Feed, Origin};
use crate::hash::{Fnv1a, fnv1a};
use crate::hlc::{Drift, Hlc, Timestamp};
use crate::map_common::{Hasher, Merged, check_key, check_ttl, is_expired};
use crate::merkle::MerkleTree;
use crate::value::Value;

/// One add: its value, its timestamp (whose text form is its tag) and an optional TTL.
#[derive(Clone, Debug, PartialEq)]
pub struct OrRecord {
    /// The value added.
    pub value: Value,
    /// When and by whom it was added; also its tag.
    pub timestamp: Timestamp,
    /// Milliseconds after `timestamp.millis` when reads stop seeing it (`None`: never).
    pub ttl_ms: Option<u64>,
}

impl OrRecord {
    /// The record's tag: the text form of its timestamp.
    pub fn tag(&self) -> String {
        self.timestamp.to_text()
    }

    fn validate(&self) -> Result<(), Error> {
        check_ttl(self.ttl_ms)?;
        self.value.validate()
    }

    fn visible(&self, wall: u64) -> bool {
        !is_expired(self.timestamp.millis, self.ttl_ms.and_then(NonZeroU64::new), wall)
    }
}

/// The live records of one key, oldest first, and the key's Merkle entry hash.
#[derive(Clone, Debug)]
struct KeyRecords {
    records: Vec<OrRecord>,
    /// The hash the tree holds for this key; `None` until the key is first hashed.
    entry_hash: Option<u32>,
}

/// What [`OrMap::merge_key`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyMerge {
    /// Records that were new to this map and not tombstoned.
    pub added: usize,
    /// Tombstones this map did not have.
    pub new_tombstones: usize,
    /// Lenient mode: records whose timestamps were too far ahead of the wall clock.
    pub drifts: Vec<Drift>,
}

/// An observed-remove multimap with its Merkle tree.
#[derive(Clone, Debug, Default)]
pub struct OrMap {
    keys: HashMap<Box<str>, KeyRecords, Hasher>,
    /// Which key each live tag is stored under, so a tombstone finds its record at once.
    tag_owner: HashMap<Timestamp, Box<str>, Hasher>,
    tombstones: HashSet<Timestamp, Hasher>,
    /// The wrapping sum of [`tag_hash`] over the tombstones: sync compares it to tell whether two
    /// replicas hold the same tombstones (the Merkle tree hashes live records only).
    tombstone_digest: u32,
    tree: MerkleTree,
    events: EventQueue,
    dirty: Dirty,
    /// What changed, for sync (off until sync turns it on).
    feed: Feed,
}

/// A tombstoned tag's share of [`OrMap::tombstone_digest`].
fn tag_hash(tag: &Timestamp) -> u32 {
    let mut h = Fnv1a::new();
    tag.hash_into(&mut h);
    crate::hash::mix(h.finish())
}

impl OrMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stamps `now()` and adds a record; adding the same value twice gives two records.
    pub fn add(
        &mut self,
        clock: &mut Hlc,
        wall: u64,
        key: &str,
        mut value: Value,
        ttl_ms: Option<u64>,
    ) -> Result<OrRecord, Error> {
        check_key(key)?;
        check_ttl(ttl_ms)?;
        value.validate()?;
        value.whole_floats_as_ints();
        let record = OrRecord { value, timestamp: clock.now(wall)?, ttl_ms };
        self.insert(key, record.clone());
        self.rehash(key);
        self.events.push(key, Origin::Local);
        self.feed.key(key, Origin::Local);
        Ok(record)
    }

    /// Tombstones every live record under `key` whose value is structurally equal to `value`
    /// (expired or not) and returns their tags. It removes only what this map has observed.
    /// `value` is checked and put in canonical form first (map keys sorted), as every value a map
    /// holds is, so NaN is an error and key order never decides a match.
    pub fn remove(&mut self, key: &str, value: &Value) -> Result<Vec<String>, Error> {
        check_key(key)?;
        let value = &value.clone().normalize()?;
        let Some(entry) = self.keys.get_mut(key) else { return Ok(Vec::new()) };
        let mut removed = Vec::new();
        entry.records.retain(|r| {
            let hit = r.value == *value;
            if hit {
                removed.push(r.timestamp.clone());
            }
            !hit
        });
        if removed.is_empty() {
            return Ok(Vec::new());
        }
        for tag in &removed {
            self.tag_owner.remove(tag);
            if self.tombstones.insert(tag.clone()) {
                self.tombstone_digest = self.tombstone_digest.wrapping_add(tag_hash(tag));
            }
            self.feed.tag(tag, Origin::Local);
        }
        self.dirty.mark_tombstones();
        self.rehash(key);
        self.events.push(key, Origin::Local);
        self.feed.key(key, Origin::Local);
        Ok(removed.iter().map(Timestamp::to_text).collect())
    }

    /// Values of the live, unexpired records of `key` at `wall`, oldest timestamp first.
    pub fn get(&self, key: &str, wall: u64) -> Vec<&Value> {
        self.keys
            .get(key)
            .map(|e| e.records.iter().filter(|r| r.visible(wall)).map(|r| &r.value).collect())
            .unwrap_or_default()
    }

    /// The live records of `key` (expired ones included), oldest first.
    pub fn get_records(&self, key: &str) -> &[OrRecord] {
        self.keys.get(key).map_or(&[], |e| &e.records)
    }

    /// Applies one remote record: refused if its tag is tombstoned (a remove that arrives before its
    /// add wins); otherwise observes its timestamp and inserts it. A tag already present is kept, so
    /// applying twice is harmless.
    pub fn apply(&mut self, clock: &mut Hlc, wall: u64, key: &str, record: OrRecord) -> Result<Merged, Error> {
        check_key(key)?;
        record.validate()?;
        if self.tombstones.contains(&record.timestamp) {
            return Ok(Merged { accepted: false, drift: None });
        }
        let drift = clock.update(&record.timestamp, wall)?;
        let accepted = self.apply_observed(key, record);
        Ok(Merged { accepted, drift })
    }

    /// Applies a record read back from this node's own storage (no drift check, see
    /// [`crate::LwwMap::load`]).
    pub fn load(&mut self, clock: &mut Hlc, wall: u64, key: &str, record: OrRecord) -> Result<bool, Error> {
        check_key(key)?;
        record.validate()?;
        if self.tombstones.contains(&record.timestamp) {
            return Ok(false);
        }
        clock.observe(&record.timestamp, wall);
        Ok(self.apply_observed(key, record))
    }

    fn apply_observed(&mut self, key: &str, record: OrRecord) -> bool {
        if self.tag_owner.contains_key(&record.timestamp) {
            return false;
        }
        self.insert(key, record);
        self.rehash(key);
        self.events.push(key, Origin::Remote);
        self.feed.key(key, Origin::Remote);
        true
    }

    /// Adds `tag` to the tombstones and drops its record wherever it lives. Returns true if new.
    pub fn apply_tombstone(&mut self, tag: &Timestamp) -> bool {
        if !self.tombstones.insert(tag.clone()) {
            return false;
        }
        self.tombstone_digest = self.tombstone_digest.wrapping_add(tag_hash(tag));
        self.dirty.mark_tombstones();
        self.feed.tag(tag, Origin::Remote);
        if let Some(key) = self.tag_owner.remove(tag) {
            if let Some(entry) = self.keys.get_mut(&key) {
                entry.records.retain(|r| r.timestamp != *tag);
            }
            self.rehash(&key);
            self.events.push(&key, Origin::Remote);
            self.feed.key(&key, Origin::Remote);
        }
        true
    }

    /// Merges one key's state from a peer: adds the tombstones, drops tombstoned tags, then applies
    /// each record. All or nothing: records are validated and, in strict mode, drift-checked first.
    pub fn merge_key(
        &mut self,
        clock: &mut Hlc,
        wall: u64,
        key: &str,
        records: Vec<OrRecord>,
        tombstones: &[Timestamp],
    ) -> Result<KeyMerge, Error> {
        self.merge_all(clock, wall, alloc::vec![(Box::from(key), records)], tombstones)
    }

    /// Merges many keys and a tombstone list (a snapshot), all or nothing like [`OrMap::merge_key`].
    pub fn merge_all(
        &mut self,
        clock: &mut Hlc,
        wall: u64,
        keys: Vec<(Box<str>, Vec<OrRecord>)>,
        tombstones: &[Timestamp],
    ) -> Result<KeyMerge, Error> {
        for (key, records) in &keys {
            check_key(key)?;
            for record in records {
                record.validate()?;
            }
        }
        // Records are applied oldest first, whatever order they came in, so the clock ends the
        // same (SPEC section 4); tombstoned ones (here or in the batch) are never observed.
        let incoming: HashSet<&Timestamp, Hasher> = tombstones.iter().collect();
        let mut order: Vec<(Timestamp, usize, usize)> = Vec::new();
        for (k, (_, records)) in keys.iter().enumerate() {
            for (r, record) in records.iter().enumerate() {
                if !self.tombstones.contains(&record.timestamp) && !incoming.contains(&record.timestamp) {
                    order.push((record.timestamp.clone(), k, r));
                }
            }
        }
        crate::sort::by_timestamp(&mut order, |(t, _, _)| t);
        let drifts = clock.check_all(order.iter().map(|(t, _, _)| t), wall)?;
        let new_tombstones = tombstones.iter().filter(|t| self.apply_tombstone(t)).count();
        let mut slots: Vec<(Box<str>, Vec<Option<OrRecord>>)> =
            keys.into_iter().map(|(key, records)| (key, records.into_iter().map(Some).collect())).collect();
        let mut added = 0;
        for (_, k, r) in order {
            let Some(record) = slots[k].1[r].take() else { continue };
            clock.observe(&record.timestamp, wall);
            added += usize::from(self.apply_observed(&slots[k].0, record));
        }
        Ok(KeyMerge { added, new_tombstones, drifts })
    }

    /// Forgets tombstones whose tag's timestamp is older than `(older_than_millis, 0)`; returns how many.
    pub fn prune(&mut self, older_than_millis: u64) -> usize {
        let before = self.tombstones.len();
        let digest = &mut self.tombstone_digest;
        self.tombstones.retain(|t| {
            let keep = t.millis >= older_than_millis;
            if !keep {
                *digest = digest.wrapping_sub(tag_hash(t));
            }
            keep
        });
        let pruned = before - self.tombstones.len();
        if pruned > 0 {
            self.dirty.mark_tombstones();
        }
        pruned
    }

    /// The tombstoned tags, sorted by their text form.
    pub fn tombstones(&self) -> Vec<String> {
        let mut tags: Vec<String> = self.tombstones.iter().map(Timestamp::to_text).collect();
        crate::sort::strs(&mut tags);
        tags
    }

    /// Number of tombstoned tags.
    pub(crate) fn tombstone_count(&self) -> usize {
        self.tombstones.len()
    }

    /// The key whose live records hold `tag`, if any (the storage manager uses it to know which key
    /// a tombstone changes).
    pub fn key_of_tag(&self, tag: &Timestamp) -> Option<&str> {
        self.tag_owner.get(tag).map(|k| &**k)
    }

    /// True when `tag` is tombstoned.
    pub fn is_tombstoned(&self, tag: &Timestamp) -> bool {
        self.tombstones.contains(tag)
    }

    /// Number of keys with a visible value at `wall`.
    pub fn len(&self, wall: u64) -> usize {
        self.keys.values().filter(|e| e.records.iter().any(|r| r.visible(wall))).count()
    }

    /// True when no key has a visible value at `wall`.
    pub fn is_empty(&self, wall: u64) -> bool {
        self.len(wall) == 0
    }

    /// Keys with visible values at `wall` and those values (oldest first), sorted by key.
    pub fn entries(&self, wall: u64) -> Vec<(&str, Vec<&Value>)> {
        let mut out: Vec<(&str, Vec<&Value>)> = self
            .keys
            .iter()
            .filter_map(|(k, e)| {
                let values: Vec<&Value> = e.records.iter().filter(|r| r.visible(wall)).map(|r| &r.value).collect();
                (!values.is_empty()).then_some((&**k, values))
            })
            .collect();
        crate::sort::by_key(&mut out, |e| e.0.as_bytes());
        out
    }

    /// Keys with a visible value at `wall`, sorted.
    pub fn live_keys(&self, wall: u64) -> Vec<&str> {
        self.entries(wall).into_iter().map(|(k, _)| k).collect()
    }

    /// Every key with live records (expired included), sorted: what a snapshot holds.
    pub fn records(&self) -> Vec<(&str, &[OrRecord])> {
        let out: Vec<(&str, &[OrRecord])> = self.keys.iter().map(|(k, e)| (&**k, &e.records[..])).collect();
        crate::sort::sorted_copy(&out, |e| e.0.as_bytes())
    }

    /// The Merkle tree, for sync.
    pub fn tree(&self) -> &MerkleTree {
        &self.tree
    }

    /// The Merkle root.
    pub fn root(&self) -> u32 {
        self.tree.root()
    }

    /// Keys in the Merkle leaf (or subtree) at `path`, sorted.
    pub fn leaf_keys(&self, path: &str) -> Vec<&str> {
        let mut out: Vec<&str> =
            self.keys.keys().filter(|k| MerkleTree::is_under(fnv1a(k), path)).map(|k| &**k).collect();
        crate::sort::strs(&mut out);
        out
    }

    /// Turns change events on or off (off by default).
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

    /// Inserts a record that is neither tombstoned nor present, keeping timestamp order.
    fn insert(&mut self, key: &str, record: OrRecord) {
        let entry = self.keys.entry_ref(key).or_insert_with(|| KeyRecords { records: Vec::new(), entry_hash: None });
        let at = entry.records.partition_point(|r| r.timestamp < record.timestamp);
        self.tag_owner.insert(record.timestamp.clone(), Box::from(key));
        entry.records.insert(at, record);
    }

    /// Gives the live record `old` of `key` the timestamp (and so the tag) `new`, keeping its value
    /// and TTL (no change event). See [`crate::LwwMap`]'s `restamp`: the storage manager re-stamps
    /// adds made while a map loaded whose tags storage may already hold for other records.
    #[inline(never)]
    pub(crate) fn restamp(&mut self, key: &str, old: &Timestamp, new: Timestamp) {
        let Some(entry) = self.keys.get_mut(key) else { return };
        let Some(at) = entry.records.iter().position(|r| r.timestamp == *old) else { return };
        let mut record = entry.records.remove(at);
        self.tag_owner.remove(old);
        record.timestamp = new;
        self.insert(key, record);
        self.rehash(key);
        self.feed.key(key, Origin::Local);
    }

    /// Forgets a tombstone without touching any record (see `restamp`): a tag this map issued
    /// and removed while it loaded, which storage holds for another record.
    pub(crate) fn forget_tombstone(&mut self, tag: &Timestamp) {
        if self.tombstones.remove(tag) {
            self.tombstone_digest = self.tombstone_digest.wrapping_sub(tag_hash(tag));
            self.dirty.mark_tombstones();
        }
    }

    /// The tombstoned tags.
    pub(crate) fn tombstone_tags(&self) -> impl Iterator<Item = &Timestamp> {
        self.tombstones.iter()
    }

    /// A digest of the tombstones (the wrapping sum of a hash of each tag): equal on two replicas
    /// that hold the same tombstones, whatever order they came in.
    pub fn tombstone_digest(&self) -> u32 {
        self.tombstone_digest
    }

    /// What changed since sync last looked (see [`Feed`]).
    pub(crate) fn feed_mut(&mut self) -> &mut Feed {
        &mut self.feed
    }

    /// Calls `f(key, fnv1a(key), entry hash)` for every key with live records, in table order
    /// (see [`crate::LwwMap`]'s `for_each_hash`).
    pub(crate) fn for_each_hash<'a>(&'a self, mut f: impl FnMut(&'a str, u32, u32)) {
        for (key, entry) in &self.keys {
            if let Some(hash) = entry.entry_hash {
                f(key, fnv1a(key), hash);
            }
        }
    }

    /// Every live record with its key.
    pub(crate) fn all_records(&self) -> impl Iterator<Item = (&str, &OrRecord)> {
        self.keys.iter().flat_map(|(k, e)| e.records.iter().map(move |r| (&**k, r)))
    }

    /// Recomputes `key`'s entry hash after a change, updates the tree, and drops an emptied key.
    fn rehash(&mut self, key: &str) {
        let Some(entry) = self.keys.get_mut(key) else { return };
        let old = entry.entry_hash;
        let new = (!entry.records.is_empty()).then(|| entry_hash(key, &entry.records));
        entry.entry_hash = new;
        if new.is_none() {
            self.keys.remove(key);
        }
        self.tree.update(fnv1a(key), old, new);
        self.dirty.mark(key);
    }
}

/// The Merkle entry hash of one key (SPEC section 4): `"key:<key>"`, then for each live tag in byte
/// order `"|<tag>:<value>:<millis>:<counter>:<node_id>"` and `":ttl=<ttl_ms>"` when set.
fn entry_hash(key: &str, records: &[OrRecord]) -> u32 {
    let mut tagged: Vec<(String, &OrRecord)> = records.iter().map(|r| (r.tag(), r)).collect();
    crate::sort::by_key(&mut tagged, |t| t.0.as_bytes());
    let mut h = Fnv1a::new();
    h.write_text("key:");
    h.write_text(key);
    for (tag, record) in tagged {
        h.write_unit(u16::from(b'|'));
        h.write_text(&tag);
        h.write_unit(u16::from(b':'));
        // Writing into a hasher cannot fail.
        let _ = record.value.write_canonical_json(&mut h);
        h.write_unit(u16::from(b':'));
        record.timestamp.hash_into(&mut h);
        if let Some(ttl) = record.ttl_ms {
            let _ = write!(h, ":ttl={ttl}");
        }
    }
    h.finish()
}
