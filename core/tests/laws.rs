//! Property tests of the CRDT laws of SPEC sections 1-5, for both map kinds.
//!
//! - Merge (joining one replica's state into another) is commutative, associative and idempotent.
//! - Replicas that receive the same multiset of records, in any order and with any duplication,
//!   converge: equal records, equal Merkle roots, byte-identical snapshots.
//! - OR maps: adds and tombstones in any order (a tombstone before its add included) give the state of
//!   causal delivery, through `apply`/`apply_tombstone` and through `merge_key`/`merge_all` batches.
//! - The incrementally maintained Merkle tree always equals a tree computed from scratch from the
//!   SPEC's definitions (section 5), and a map rebuilt from its records has the same root.
//! - Snapshots round-trip and import into an empty map with the same root.
//! - The clock follows SPEC section 1 exactly, and after any merge `now()` is newer than everything seen;
//!   drift is reported (lenient) or refused before any change (strict) exactly when a remote is
//!   more than the limit ahead of the wall clock.
//! - Reads at a record's last live millisecond (`millis + ttl`) see it, one later they do not.
//!
//! Records are drawn from five writers whose node ids differ in length (1 to 64 bytes, some
//! prefixes of others), millis `0..20` and counters `0..3`, so timestamps tie on millis and counter
//! often and are then ordered by node id bytes. Keys are few, so writes collide; one property uses
//! hundreds, so the Merkle tree's levels turn dense. A clock issues a timestamp once, so within one scenario a timestamp
//! identifies one write (one key, one value): generated pools are deduplicated by timestamp.

use std::collections::{BTreeMap, BTreeSet};

use onegrid_core::codec::{self, Snapshot, StoredValue};
use onegrid_core::{ClockConfig, Hlc, LwwMap, LwwRecord, MerkleTree, NodeId, OrMap, OrRecord, Timestamp, Value};
use onegrid_core::{combine, fnv1a};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;

/// Wall clock for merges: ahead of every generated millis, so no drift is ever reported.
const WALL: u64 = 1_000;
/// Node ids of 1 to 64 bytes; "n" is a prefix of "n0" and "n0" of "n0a", and "N" sorts before all.
const WRITERS: [&str; 5] = ["n0", "n", "n0a", "N", "n123456789.abcdefghijklmnopqrstuvwxyz_ABCDEFGHIJKLMNOPQRSTUVWXYZ"];
/// Few keys, so writes collide; some non-ASCII (UTF-16 hashing), one empty, one with the separators.
const KEYS: [&str; 9] = ["a", "b", "c", "key-1", "", "é", "日本", "😀", "x:y|z"];

fn node(id: &str) -> NodeId {
    NodeId::new(id).expect("valid node id")
}

fn clock() -> Hlc {
    Hlc::new(node("x"), ClockConfig::default())
}

type Stamp = (u64, u32, usize);

fn stamp() -> impl Strategy<Value = Stamp> {
    (0u64..20, 0u32..3, 0..WRITERS.len())
}

fn ts((millis, counter, writer): Stamp) -> Timestamp {
    Timestamp::new(millis, counter, node(WRITERS[writer]))
}

fn key() -> impl Strategy<Value = String> {
    (0..KEYS.len()).prop_map(|i| KEYS[i].to_owned())
}

fn ttl() -> impl Strategy<Value = Option<u64>> {
    prop::option::weighted(0.3, 1u64..100)
}

/// Finite floats as JavaScript numbers: fractions, subnormals, whole numbers and `-0.0` (which
/// `Value::from` makes `Int`, as in the data model), and whole numbers beyond 2^53 (which stay floats).
fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1000i32..1000, 1u32..1024).prop_map(|(i, d)| f64::from(i) + f64::from(d) / 1024.0),
        (any::<i64>(), 1i32..70).prop_map(|(n, s)| n as f64 / 2f64.powi(s)),
        prop::num::f64::SUBNORMAL,
        (-1000i32..1000).prop_map(f64::from),
        Just(-0.0),
        (any::<bool>(), 53i32..1000, 0u32..1024)
            .prop_map(|(neg, e, m)| if neg { -1.0 } else { 1.0 } * 2f64.powi(e) * (1.0 + f64::from(m) / 1024.0)),
    ]
    .prop_filter("finite", |f| f.is_finite())
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop_oneof![-3i64..3, any::<i64>()].prop_map(Value::Int),
        float().prop_map(Value::from),
        "[ab\"\\\\\n\u{e9}\u{1F600}]{0,3}".prop_map(Value::from),
        prop::collection::vec(any::<u8>(), 0..3).prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::list),
            prop::collection::btree_map("[ab\u{e9}\u{1F600}]{0,2}", inner, 0..3)
                .prop_map(|m| Value::map(m).expect("btree keys are unique")),
        ]
    })
}

// ---- scenarios ---------------------------------------------------------------------------------

/// LWW writes, unique by timestamp; `mask` bit `i` puts the write in replica `i` (law 1).
#[derive(Clone, Debug)]
struct LwwPool {
    writes: Vec<(String, LwwRecord, u8)>,
}

fn lww_pool(max: usize) -> impl Strategy<Value = LwwPool> {
    prop::collection::vec((key(), stamp(), prop::option::weighted(0.8, value()), ttl(), 0u8..8), 0..max).prop_map(
        |raw| {
            let mut seen = BTreeSet::new();
            let writes = raw
                .into_iter()
                .filter(|(_, s, ..)| seen.insert(*s))
                .map(|(key, s, value, ttl_ms, mask)| (key, LwwRecord { value, timestamp: ts(s), ttl_ms }, mask))
                .collect();
            LwwPool { writes }
        },
    )
}

/// OR adds (unique tags) and tombstones, each with a replica mask.
#[derive(Clone, Debug)]
struct OrPool {
    adds: Vec<(String, OrRecord, u8)>,
    tombs: Vec<(Timestamp, u8)>,
}

#[derive(Clone, Copy, Debug)]
enum OrOp {
    Add(usize),
    Tomb(usize),
}

impl OrPool {
    fn ops(&self) -> Vec<OrOp> {
        (0..self.adds.len()).map(OrOp::Add).chain((0..self.tombs.len()).map(OrOp::Tomb)).collect()
    }
}

fn or_pool(max: usize) -> impl Strategy<Value = OrPool> {
    // A small value set as well, so equal values under one key (multiset adds) are common.
    let or_value = prop_oneof![2 => (0i64..3).prop_map(Value::Int), 3 => value()];
    (
        prop::collection::vec((key(), stamp(), or_value, ttl(), 0u8..8), 0..max),
        prop::collection::vec((any::<Index>(), 0u8..8), 0..max / 2),
        // Tombstones of adds that may never arrive (or that collide with a pool tag).
        prop::collection::vec((stamp(), 0u8..8), 0..3),
    )
        .prop_map(|(raw, picks, ghosts)| {
            let mut seen = BTreeSet::new();
            let adds: Vec<(String, OrRecord, u8)> = raw
                .into_iter()
                .filter(|(_, s, ..)| seen.insert(*s))
                .map(|(key, s, value, ttl_ms, mask)| (key, OrRecord { value, timestamp: ts(s), ttl_ms }, mask))
                .collect();
            let mut tombs: Vec<(Timestamp, u8)> = Vec::new();
            let mut seen = BTreeSet::new();
            let picked = picks
                .into_iter()
                .filter(|_| !adds.is_empty())
                .map(|(i, m)| (adds[i.index(adds.len())].1.timestamp.clone(), m));
            for (t, m) in picked.chain(ghosts.into_iter().map(|(s, m)| (ts(s), m))) {
                if seen.insert(t.clone()) {
                    tombs.push((t, m));
                }
            }
            OrPool { adds, tombs }
        })
}

/// A delivery of `n` items: each at least once, some more than once, shuffled.
fn delivery(n: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(any::<Index>(), 0..=n).prop_flat_map(move |extra| {
        let mut order: Vec<usize> = (0..n).collect();
        order.extend(extra.iter().map(|i| i.index(n)));
        Just(order).prop_shuffle()
    })
}

// ---- the Merkle oracle (SPEC section 5, from scratch) -------------------------------------------

fn path_of(key: &str) -> String {
    format!("{:08x}", fnv1a(key))[..3].to_owned()
}

/// Checks root, buckets and counts of `tree` against a tree computed from `(key, item hash)` pairs.
fn check_tree(tree: &MerkleTree, items: &[(String, u32)], what: &str) -> Result<(), TestCaseError> {
    let mut leaves: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (key, h) in items {
        leaves.entry(path_of(key)).or_default().push(*h);
    }
    let mut nodes: BTreeMap<String, u32> =
        leaves.iter().map(|(p, hs)| (p.clone(), combine(hs.iter().copied()))).collect();
    for len in (0..3).rev() {
        let mut parents: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for (p, h) in nodes.iter().filter(|(p, _)| p.len() == len + 1) {
            parents.entry(p[..len].to_owned()).or_default().push(*h);
        }
        for (p, hs) in parents {
            nodes.insert(p, combine(hs));
        }
    }
    prop_assert_eq!(tree.root(), nodes.get("").copied().unwrap_or(0), "{}: root", what);
    prop_assert_eq!(tree.count_at(""), items.len() as u32, "{}: key count", what);
    let mut inner: Vec<&str> = vec![""];
    inner.extend(nodes.keys().filter(|p| !p.is_empty() && p.len() < 3).map(String::as_str));
    for p in inner {
        let expected: Vec<(char, u32)> = nodes
            .iter()
            .filter(|(c, _)| c.len() == p.len() + 1 && c.starts_with(p))
            .map(|(c, h)| (c.chars().last().expect("non-empty path"), *h))
            .collect();
        prop_assert_eq!(tree.buckets(p), expected, "{}: buckets of {:?}", what, p);
    }
    for (p, hs) in &leaves {
        prop_assert_eq!(tree.count_at(p), hs.len() as u32, "{}: count of leaf {}", what, p);
        prop_assert_eq!(tree.hash_at(p), nodes.get(p).copied(), "{}: hash of leaf {}", what, p);
    }
    Ok(())
}

fn lww_items(map: &LwwMap) -> Vec<(String, u32)> {
    map.records().into_iter().map(|(k, r)| (k.to_owned(), fnv1a(&format!("{k}:{}", r.timestamp)))).collect()
}

fn or_entry_hash(key: &str, records: &[OrRecord]) -> u32 {
    let mut tagged: Vec<(String, &OrRecord)> = records.iter().map(|r| (r.timestamp.to_string(), r)).collect();
    tagged.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut text = format!("key:{key}");
    for (tag, r) in tagged {
        let t = &r.timestamp;
        text += &format!("|{tag}:{}:{}:{}:{}", r.value.to_canonical_json(), t.millis, t.counter, t.node_id);
        if let Some(ttl) = r.ttl_ms {
            text += &format!(":ttl={ttl}");
        }
    }
    fnv1a(&text)
}

fn or_items(map: &OrMap) -> Vec<(String, u32)> {
    map.records().into_iter().map(|(k, rs)| (k.to_owned(), or_entry_hash(k, rs))).collect()
}

// ---- LWW helpers -------------------------------------------------------------------------------

type LwwState = BTreeMap<String, LwwRecord>;

/// The LWW rule on a model: keep the record with the greatest timestamp.
fn lww_model_merge(model: &mut LwwState, key: &str, record: &LwwRecord) -> bool {
    let newer = model.get(key).is_none_or(|old| old.timestamp < record.timestamp);
    if newer {
        model.insert(key.to_owned(), record.clone());
    }
    newer
}

fn lww_owned(map: &LwwMap) -> Vec<(String, LwwRecord)> {
    map.records().into_iter().map(|(k, r)| (k.to_owned(), r)).collect()
}

fn lww_boxed(map: &LwwMap) -> Vec<(Box<str>, LwwRecord)> {
    map.records().into_iter().map(|(k, r)| (Box::from(k), r)).collect()
}

fn visible_count<'a>(records: impl IntoIterator<Item = (&'a Option<Value>, u64, Option<u64>)>, wall: u64) -> usize {
    records.into_iter().filter(|(v, millis, ttl)| v.is_some() && ttl.is_none_or(|t| millis + t >= wall)).count()
}

/// `map` holds exactly the model's records, its tree is the SPEC's tree, and counts agree.
fn check_lww(map: &LwwMap, model: &LwwState, what: &str) -> Result<(), TestCaseError> {
    let expected: Vec<(String, LwwRecord)> = model.iter().map(|(k, r)| (k.clone(), r.clone())).collect();
    prop_assert_eq!(lww_owned(map), expected, "{}: records", what);
    check_tree(map.tree(), &lww_items(map), what)?;
    for wall in [0, 30, 60, 200] {
        let expected = visible_count(model.values().map(|r| (&r.value, r.timestamp.millis, r.ttl_ms)), wall);
        prop_assert_eq!(map.len(wall), expected, "{}: len at {}", what, wall);
    }
    // Every TTL's boundary: alive at exactly millis + ttl, expired one millisecond later.
    for (k, r) in model {
        let Some(ttl) = r.ttl_ms else { continue };
        let last = r.timestamp.millis + ttl;
        prop_assert_eq!(map.get(k, last), r.value.clone(), "{}: {:?} at its last live millisecond", what, k);
        prop_assert_eq!(map.get(k, last + 1), None, "{}: {:?} one millisecond later", what, k);
        for wall in [last, last + 1] {
            let expected = visible_count(model.values().map(|r| (&r.value, r.timestamp.millis, r.ttl_ms)), wall);
            prop_assert_eq!(map.len(wall), expected, "{}: len at {}", what, wall);
        }
    }
    Ok(())
}

fn same_lww(a: &LwwMap, b: &LwwMap, what: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(lww_owned(a), lww_owned(b), "{}: records", what);
    prop_assert_eq!(a.root(), b.root(), "{}: root", what);
    prop_assert_eq!(codec::encode_lww_snapshot(a), codec::encode_lww_snapshot(b), "{}: snapshot bytes", what);
    Ok(())
}

fn lww_replica<'a>(records: impl IntoIterator<Item = (&'a String, &'a LwwRecord)>) -> LwwMap {
    let mut map = LwwMap::new();
    let mut c = clock();
    for (k, r) in records {
        map.merge(&mut c, WALL, k, r.clone()).expect("valid record");
    }
    map
}

/// Joins `b`'s whole state into a copy of `a`.
fn lww_join(a: &LwwMap, b: &LwwMap) -> LwwMap {
    let mut out = a.clone();
    let mut c = clock();
    for (k, r) in b.records() {
        out.merge(&mut c, WALL, k, r).expect("valid record");
    }
    out
}

// ---- OR helpers --------------------------------------------------------------------------------

/// The OR map's meaning: every add ever seen and every tombstone ever seen; live = adds - tombstones.
#[derive(Clone, Debug, Default)]
struct OrModel {
    adds: BTreeMap<Timestamp, (String, OrRecord)>,
    tombs: BTreeSet<Timestamp>,
}

impl OrModel {
    fn records(&self) -> Vec<(String, Vec<OrRecord>)> {
        let mut by_key: BTreeMap<String, Vec<OrRecord>> = BTreeMap::new();
        for (t, (k, r)) in &self.adds {
            if !self.tombs.contains(t) {
                by_key.entry(k.clone()).or_default().push(r.clone());
            }
        }
        by_key.into_iter().collect()
    }

    fn tombstones(&self) -> Vec<String> {
        let texts: BTreeSet<String> = self.tombs.iter().map(Timestamp::to_text).collect();
        texts.into_iter().collect()
    }
}

fn or_owned(map: &OrMap) -> Vec<(String, Vec<OrRecord>)> {
    map.records().into_iter().map(|(k, rs)| (k.to_owned(), rs.to_vec())).collect()
}

fn or_boxed(map: &OrMap) -> Vec<(Box<str>, Vec<OrRecord>)> {
    map.records().into_iter().map(|(k, rs)| (Box::from(k), rs.to_vec())).collect()
}

fn or_tombs(map: &OrMap) -> Vec<Timestamp> {
    map.tombstones().iter().map(|t| Timestamp::parse(t).expect("a tombstone is a timestamp")).collect()
}

fn check_or(map: &OrMap, model: &OrModel, what: &str) -> Result<(), TestCaseError> {
    let records = model.records();
    prop_assert_eq!(or_owned(map), records.clone(), "{}: records", what);
    prop_assert_eq!(map.tombstones(), model.tombstones(), "{}: tombstones", what);
    check_tree(map.tree(), &or_items(map), what)?;
    // Reads at every TTL's boundary (alive at exactly millis + ttl) and long after.
    for (k, rs) in &records {
        let mut walls: Vec<u64> = rs.iter().filter_map(|r| r.ttl_ms.map(|t| r.timestamp.millis + t)).collect();
        walls.extend(walls.clone().iter().map(|w| w + 1));
        walls.push(10_000);
        for wall in walls {
            let expected: Vec<&Value> = rs
                .iter()
                .filter(|r| r.ttl_ms.is_none_or(|t| r.timestamp.millis + t >= wall))
                .map(|r| &r.value)
                .collect();
            prop_assert_eq!(map.get(k, wall), expected, "{}: {:?} at {}", what, k, wall);
        }
    }
    Ok(())
}

fn same_or(a: &OrMap, b: &OrMap, what: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(or_owned(a), or_owned(b), "{}: records", what);
    prop_assert_eq!(a.tombstones(), b.tombstones(), "{}: tombstones", what);
    prop_assert_eq!(a.root(), b.root(), "{}: root", what);
    prop_assert_eq!(codec::encode_or_snapshot(a), codec::encode_or_snapshot(b), "{}: snapshot bytes", what);
    Ok(())
}

fn or_join(a: &OrMap, b: &OrMap) -> OrMap {
    let mut out = a.clone();
    let mut c = clock();
    out.merge_all(&mut c, WALL, or_boxed(b), &or_tombs(b)).expect("valid state");
    out
}

/// A replica of the pool's ops whose mask `keep` accepts: its adds, then its tombstones.
fn or_replica(pool: &OrPool, keep: impl Fn(u8) -> bool) -> (OrMap, OrModel) {
    let (mut map, mut model, mut c) = (OrMap::new(), OrModel::default(), clock());
    for (k, r, mask) in &pool.adds {
        if keep(*mask) {
            map.apply(&mut c, WALL, k, r.clone()).expect("valid record");
            model.adds.insert(r.timestamp.clone(), (k.clone(), r.clone()));
        }
    }
    for (t, mask) in &pool.tombs {
        if keep(*mask) {
            map.apply_tombstone(t);
            model.tombs.insert(t.clone());
        }
    }
    (map, model)
}

/// Delivers one op through `apply`/`apply_tombstone`, checking the reported outcome against the SPEC.
fn or_deliver(map: &mut OrMap, c: &mut Hlc, model: &mut OrModel, pool: &OrPool, op: OrOp) -> Result<(), TestCaseError> {
    match op {
        OrOp::Add(i) => {
            let (k, r, _) = &pool.adds[i];
            let t = &r.timestamp;
            let expected = !model.tombs.contains(t) && !model.adds.contains_key(t);
            let merged = map.apply(c, WALL, k, r.clone()).expect("valid record");
            prop_assert_eq!(merged.accepted, expected, "apply {} under {:?}", t, k);
            if !model.tombs.contains(t) {
                model.adds.insert(t.clone(), (k.clone(), r.clone()));
            }
        }
        OrOp::Tomb(i) => {
            let t = &pool.tombs[i].0;
            prop_assert_eq!(map.apply_tombstone(t), model.tombs.insert(t.clone()), "apply_tombstone {}", t);
        }
    }
    Ok(())
}

// ---- the clock model (SPEC section 1, from the text) --------------------------------------------

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ClockModel {
    millis: u64,
    counter: u32,
}

impl ClockModel {
    fn bump(&mut self, counter: u32) {
        match counter.checked_add(1) {
            Some(c) => self.counter = c,
            None => {
                self.millis += 1;
                self.counter = 0;
            }
        }
    }

    fn now(&mut self, wall: u64) {
        if wall > self.millis {
            self.millis = wall;
            self.counter = 0;
        } else {
            self.bump(self.counter);
        }
    }

    fn update(&mut self, remote: &Timestamp, wall: u64) {
        let m = self.millis.max(wall).max(remote.millis);
        let (local, from_remote) = (m == self.millis, m == remote.millis);
        let last_counter = self.counter;
        self.millis = m;
        if local && from_remote {
            self.bump(last_counter.max(remote.counter));
        } else if local {
            self.bump(last_counter);
        } else if from_remote {
            self.bump(remote.counter);
        } else {
            self.counter = 0;
        }
    }
}

#[derive(Clone, Debug)]
enum ClockOp {
    Now(u64),
    LwwMerge(String, LwwRecord, u64),
    LwwLoad(String, LwwRecord, u64),
    LwwBatch(Vec<(String, LwwRecord)>, u64),
    OrApply(String, OrRecord, u64),
    OrMergeKey(String, Vec<OrRecord>, Vec<Timestamp>, u64),
}

fn clock_stamp() -> impl Strategy<Value = Timestamp> {
    // Counters near u32::MAX exercise the overflow carry into millis.
    (0u64..40, prop_oneof![3 => 0u32..3, 1 => (u32::MAX - 1)..=u32::MAX], 0..WRITERS.len())
        .prop_map(|(m, c, w)| Timestamp::new(m, c, node(WRITERS[w])))
}

fn clock_op() -> impl Strategy<Value = ClockOp> {
    let wall = 0u64..45;
    let lww = || {
        (key(), clock_stamp(), prop::option::of(Just(Value::Null)))
            .prop_map(|(k, timestamp, value)| (k, LwwRecord { value, timestamp, ttl_ms: None }))
    };
    let or = || clock_stamp().prop_map(|timestamp| OrRecord { value: Value::Null, timestamp, ttl_ms: None });
    prop_oneof![
        3 => wall.clone().prop_map(ClockOp::Now),
        2 => (lww(), wall.clone()).prop_map(|((k, r), w)| ClockOp::LwwMerge(k, r, w)),
        1 => (lww(), wall.clone()).prop_map(|((k, r), w)| ClockOp::LwwLoad(k, r, w)),
        1 => (prop::collection::vec(lww(), 0..4), wall.clone()).prop_map(|(rs, w)| ClockOp::LwwBatch(rs, w)),
        2 => (key(), or(), wall.clone()).prop_map(|(k, r, w)| ClockOp::OrApply(k, r, w)),
        1 => (key(), prop::collection::vec(or(), 0..4), prop::collection::vec(clock_stamp(), 0..3), wall)
            .prop_map(|(k, rs, ts, w)| ClockOp::OrMergeKey(k, rs, ts, w)),
    ]
}

// ---- LWW incremental ops -----------------------------------------------------------------------

#[derive(Clone, Debug)]
enum LwwOp {
    Set(String, Value, Option<u64>, u64),
    Remove(String, u64),
    Merge(String, LwwRecord, u64),
    Prune(u64),
}

fn lww_op() -> impl Strategy<Value = LwwOp> {
    let wall = 0u64..30;
    prop_oneof![
        3 => (key(), value(), ttl(), wall.clone()).prop_map(|(k, v, t, w)| LwwOp::Set(k, v, t, w)),
        2 => (key(), wall.clone()).prop_map(|(k, w)| LwwOp::Remove(k, w)),
        4 => (key(), stamp(), prop::option::weighted(0.7, value()), ttl(), wall.clone())
            .prop_map(|(k, s, value, ttl_ms, w)| LwwOp::Merge(k, LwwRecord { value, timestamp: ts(s), ttl_ms }, w)),
        1 => (0u64..40).prop_map(LwwOp::Prune),
    ]
}

#[derive(Clone, Debug)]
enum OrLocalOp {
    Add(String, Value, Option<u64>, u64),
    /// Remove a value seen under the key (picked by index), or `fallback` if the key is empty.
    Remove(String, Index, Value),
    Apply(String, OrRecord),
    /// Tombstone a tag seen so far (picked by index), or a fresh one.
    Tomb(Index, Stamp),
    MergeKey(String, Vec<OrRecord>, Vec<Index>),
    Prune(u64),
}

fn or_local_op() -> impl Strategy<Value = OrLocalOp> {
    let or_value = || prop_oneof![(0i64..3).prop_map(Value::Int), value()];
    let record =
        || (stamp(), or_value(), ttl()).prop_map(|(s, value, ttl_ms)| OrRecord { value, timestamp: ts(s), ttl_ms });
    prop_oneof![
        3 => (key(), or_value(), ttl(), 0u64..30).prop_map(|(k, v, t, w)| OrLocalOp::Add(k, v, t, w)),
        2 => (key(), any::<Index>(), or_value()).prop_map(|(k, i, v)| OrLocalOp::Remove(k, i, v)),
        3 => (key(), record()).prop_map(|(k, r)| OrLocalOp::Apply(k, r)),
        1 => (any::<Index>(), stamp()).prop_map(|(i, s)| OrLocalOp::Tomb(i, s)),
        1 => (key(), prop::collection::vec(record(), 0..3), prop::collection::vec(any::<Index>(), 0..2))
            .prop_map(|(k, rs, ts)| OrLocalOp::MergeKey(k, rs, ts)),
        1 => (0u64..40).prop_map(OrLocalOp::Prune),
    ]
}

// ---- the properties ----------------------------------------------------------------------------

proptest! {
    // Every property runs 256 cases.
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Law 1 (LWW): joining replica states is commutative, associative and idempotent, and the join of
    /// all three is the LWW model of the union.
    #[test]
    fn lww_join_is_commutative_associative_idempotent(pool in lww_pool(30)) {
        let replica = |bit: u8| lww_replica(pool.writes.iter().filter(|w| w.2 & bit != 0).map(|(k, r, _)| (k, r)));
        let (a, b, c) = (replica(1), replica(2), replica(4));
        same_lww(&lww_join(&a, &b), &lww_join(&b, &a), "a+b = b+a")?;
        same_lww(&lww_join(&lww_join(&a, &b), &c), &lww_join(&a, &lww_join(&b, &c)), "(a+b)+c = a+(b+c)")?;
        same_lww(&lww_join(&lww_join(&c, &a), &b), &lww_join(&a, &lww_join(&b, &c)), "(c+a)+b = a+(b+c)")?;
        same_lww(&lww_join(&a, &a), &a, "a+a = a")?;
        same_lww(&lww_join(&lww_join(&a, &b), &b), &lww_join(&a, &b), "(a+b)+b = a+b")?;
        same_lww(&lww_join(&a, &LwwMap::new()), &a, "a+0 = a")?;
        same_lww(&lww_join(&LwwMap::new(), &a), &a, "0+a = a")?;
        let mut model = LwwState::new();
        for (k, r, mask) in &pool.writes {
            if mask & 7 != 0 {
                lww_model_merge(&mut model, k, r);
            }
        }
        check_lww(&lww_join(&lww_join(&a, &b), &c), &model, "a+b+c vs model")?;
    }

    /// Law 2 (LWW): replicas receiving the same records in any order, with duplicates, through
    /// `merge`, `merge_all` batches or `load`, converge to the model: equal records, equal roots,
    /// byte-identical snapshots. `merge` reports acceptance exactly as the LWW rule says.
    #[test]
    fn lww_replicas_converge_in_any_order_with_duplicates(
        (pool, orders, cuts) in lww_pool(30).prop_flat_map(|p| {
            let n = p.writes.len();
            (Just(p), prop::collection::vec(delivery(n), 3), prop::collection::vec(any::<bool>(), 0..64))
        })
    ) {
        let mut model = LwwState::new();
        for (k, r, _) in &pool.writes {
            lww_model_merge(&mut model, k, r);
        }
        let mut replicas = Vec::new();
        // Replica 0: one merge at a time, checking each outcome.
        {
            let (mut map, mut c, mut seen) = (LwwMap::new(), clock(), LwwState::new());
            for &i in &orders[0] {
                let (k, r, _) = &pool.writes[i];
                let merged = map.merge(&mut c, WALL, k, r.clone()).expect("valid record");
                prop_assert_eq!(merged.accepted, lww_model_merge(&mut seen, k, r), "merge {} {}", k, r.timestamp);
                prop_assert!(merged.drift.is_none());
            }
            replicas.push(map);
        }
        // Replica 1: `merge_all` batches cut where `cuts` says.
        {
            let (mut map, mut c, mut batch) = (LwwMap::new(), clock(), Vec::new());
            for (n, &i) in orders[1].iter().enumerate() {
                let (k, r, _) = &pool.writes[i];
                batch.push((Box::from(k.as_str()), r.clone()));
                if cuts.get(n).copied().unwrap_or(true) {
                    map.merge_all(&mut c, WALL, std::mem::take(&mut batch)).expect("valid batch");
                }
            }
            map.merge_all(&mut c, WALL, batch).expect("valid batch");
            replicas.push(map);
        }
        // Replica 2: loaded from "storage" in the third order.
        {
            let (mut map, mut c) = (LwwMap::new(), clock());
            for &i in &orders[2] {
                let (k, r, _) = &pool.writes[i];
                map.load(&mut c, WALL, k, r.clone()).expect("valid record");
            }
            replicas.push(map);
        }
        for (n, map) in replicas.iter().enumerate() {
            check_lww(map, &model, &format!("replica {n}"))?;
            same_lww(map, &replicas[0], &format!("replica {n} vs replica 0"))?;
        }
    }

    /// Law 1 (OR): joining replica states (live records and tombstones) is commutative, associative
    /// and idempotent; the join of all three is adds minus tombstones of the union.
    #[test]
    fn or_join_is_commutative_associative_idempotent(pool in or_pool(30)) {
        let (a, _) = or_replica(&pool, |m| m & 1 != 0);
        let (b, _) = or_replica(&pool, |m| m & 2 != 0);
        let (c, _) = or_replica(&pool, |m| m & 4 != 0);
        let (abc, model) = or_replica(&pool, |m| m & 7 != 0);
        same_or(&or_join(&a, &b), &or_join(&b, &a), "a+b = b+a")?;
        same_or(&or_join(&or_join(&a, &b), &c), &or_join(&a, &or_join(&b, &c)), "(a+b)+c = a+(b+c)")?;
        same_or(&or_join(&or_join(&c, &a), &b), &or_join(&a, &or_join(&b, &c)), "(c+a)+b = a+(b+c)")?;
        same_or(&or_join(&a, &a), &a, "a+a = a")?;
        same_or(&or_join(&or_join(&a, &b), &b), &or_join(&a, &b), "(a+b)+b = a+b")?;
        same_or(&or_join(&a, &OrMap::new()), &a, "a+0 = a")?;
        same_or(&or_join(&OrMap::new(), &a), &a, "0+a = a")?;
        check_or(&abc, &model, "replica of everything vs model")?;
        same_or(&or_join(&or_join(&a, &b), &c), &abc, "a+b+c = replica of everything")?;
    }

    /// Laws 2 and 3 (OR): adds and tombstones delivered in any order with duplicates (a tombstone
    /// before its add included), one at a time or in `merge_key`/`merge_all` batches, give the state of
    /// causal delivery (all adds, then all tombstones); outcomes and counts are as the SPEC says.
    #[test]
    fn or_adds_and_tombstones_converge_in_any_order(
        (pool, orders, cuts) in or_pool(30).prop_flat_map(|p| {
            let n = p.adds.len() + p.tombs.len();
            (Just(p), prop::collection::vec(delivery(n), 3), prop::collection::vec(any::<bool>(), 0..64))
        })
    ) {
        let ops = pool.ops();
        // Causal order: every add, then every tombstone.
        let (causal, model) = or_replica(&pool, |_| true);
        check_or(&causal, &model, "causal order")?;
        // Tombstones first: every add arrives after its remove and must stay out.
        let mut early = OrMap::new();
        {
            let (mut c, mut seen) = (clock(), OrModel::default());
            let tombs_first = ops.iter().filter(|o| matches!(o, OrOp::Tomb(_)));
            for op in tombs_first.chain(ops.iter().filter(|o| matches!(o, OrOp::Add(_)))) {
                or_deliver(&mut early, &mut c, &mut seen, &pool, *op)?;
            }
        }
        same_or(&early, &causal, "tombstones first vs causal")?;
        // Shuffled deliveries with duplicates, one op at a time.
        for (n, order) in orders.iter().enumerate().take(2) {
            let (mut map, mut c, mut seen) = (OrMap::new(), clock(), OrModel::default());
            for &i in order {
                or_deliver(&mut map, &mut c, &mut seen, &pool, ops[i])?;
            }
            check_or(&map, &model, &format!("delivery {n}"))?;
            same_or(&map, &causal, &format!("delivery {n} vs causal"))?;
        }
        // The third delivery in batches: even batches through one `merge_all`, odd ones through one
        // `merge_key` per key, each carrying the batch's tombstones.
        let (mut map, mut c, mut seen) = (OrMap::new(), clock(), OrModel::default());
        let mut batches: Vec<Vec<OrOp>> = vec![Vec::new()];
        for (n, &i) in orders[2].iter().enumerate() {
            batches.last_mut().expect("one batch").push(ops[i]);
            if cuts.get(n).copied().unwrap_or(true) {
                batches.push(Vec::new());
            }
        }
        for (b, batch) in batches.iter().enumerate() {
            let tombs: Vec<Timestamp> = batch
                .iter()
                .filter_map(|o| match o {
                    OrOp::Tomb(i) => Some(pool.tombs[*i].0.clone()),
                    OrOp::Add(_) => None,
                })
                .collect();
            let mut by_key: BTreeMap<String, Vec<OrRecord>> = BTreeMap::new();
            for o in batch {
                if let OrOp::Add(i) = o {
                    by_key.entry(pool.adds[*i].0.clone()).or_default().push(pool.adds[*i].1.clone());
                }
            }
            let calls: Vec<Vec<(String, Vec<OrRecord>)>> = if b % 2 == 0 || by_key.is_empty() {
                vec![by_key.into_iter().collect()]
            } else {
                by_key.into_iter().map(|kv| vec![kv]).collect()
            };
            for call in calls {
                // The SPEC's expectation: tombstones first, then each record not tombstoned and new.
                let new_tombstones = tombs.iter().filter(|t| seen.tombs.insert((*t).clone())).count();
                let mut added = 0;
                for (k, rs) in &call {
                    for r in rs {
                        if !seen.tombs.contains(&r.timestamp) && !seen.adds.contains_key(&r.timestamp) {
                            seen.adds.insert(r.timestamp.clone(), (k.clone(), r.clone()));
                            added += 1;
                        }
                    }
                }
                let result = if call.len() == 1 && b % 2 == 1 {
                    let (k, rs) = call.into_iter().next().expect("one key");
                    map.merge_key(&mut c, WALL, &k, rs, &tombs)
                } else {
                    let keys = call.into_iter().map(|(k, rs)| (k.into_boxed_str(), rs)).collect();
                    map.merge_all(&mut c, WALL, keys, &tombs)
                }
                .expect("valid batch");
                prop_assert_eq!(result.added, added, "batch {}: added", b);
                prop_assert_eq!(result.new_tombstones, new_tombstones, "batch {}: new tombstones", b);
                prop_assert!(result.drifts.is_empty());
            }
        }
        check_or(&map, &model, "batched delivery")?;
        same_or(&map, &causal, "batched delivery vs causal")?;
    }

    /// Law 3 (LWW): through local sets and removes, remote merges and prunes, the incrementally kept
    /// Merkle tree always equals the SPEC's tree of the current records, and a map rebuilt from those
    /// records has the same root.
    #[test]
    fn lww_incremental_tree_matches_a_rebuild(ops in prop::collection::vec(lww_op(), 0..40)) {
        let (mut map, mut c, mut model) = (LwwMap::new(), clock(), LwwState::new());
        for (n, op) in ops.into_iter().enumerate() {
            let what = format!("op {n}: {op:?}");
            match op {
                LwwOp::Set(k, v, ttl_ms, wall) => {
                    let t = map.set(&mut c, wall, &k, v.clone(), ttl_ms).expect("valid set");
                    let record = LwwRecord { value: Some(v), timestamp: t, ttl_ms };
                    prop_assert!(lww_model_merge(&mut model, &k, &record), "{}: a local write is the newest", what);
                }
                LwwOp::Remove(k, wall) => {
                    let t = map.remove(&mut c, wall, &k).expect("valid remove");
                    let record = LwwRecord { value: None, timestamp: t, ttl_ms: None };
                    prop_assert!(lww_model_merge(&mut model, &k, &record), "{}: a local remove is the newest", what);
                    prop_assert_eq!(map.get(&k, wall), None);
                }
                LwwOp::Merge(k, r, wall) => {
                    let merged = map.merge(&mut c, wall, &k, r.clone()).expect("valid record");
                    prop_assert_eq!(merged.accepted, lww_model_merge(&mut model, &k, &r), "{}", what);
                }
                LwwOp::Prune(older) => {
                    let before = model.len();
                    model.retain(|_, r| r.value.is_some() || r.timestamp.millis >= older);
                    prop_assert_eq!(map.prune(older), before - model.len(), "{}: pruned count", what);
                }
            }
            check_lww(&map, &model, &what)?;
        }
        let mut rebuilt = LwwMap::new();
        rebuilt.merge_all(&mut clock(), WALL, lww_boxed(&map)).expect("valid records");
        same_lww(&rebuilt, &map, "rebuilt from records")?;
        // A removed key leaves no trace: pruning every tombstone gives the tree of the live records.
        let live: Vec<(String, LwwRecord)> = lww_owned(&map).into_iter().filter(|(_, r)| r.is_live()).collect();
        map.prune(u64::MAX);
        same_lww(&map, &lww_replica(live.iter().map(|(k, r)| (k, r))), "all tombstones pruned vs live records only")?;
    }

    /// Law 3 (OR): through local adds and removes, remote applies, tombstones, `merge_key` and prunes,
    /// the incrementally kept tree equals the SPEC's tree, `remove` returns exactly the structurally
    /// equal tags, and a map rebuilt from records and tombstones is the same.
    #[test]
    fn or_incremental_tree_matches_a_rebuild(ops in prop::collection::vec(or_local_op(), 0..40)) {
        let (mut map, mut c, mut model) = (OrMap::new(), clock(), OrModel::default());
        let mut tags: Vec<Timestamp> = Vec::new();
        for (n, op) in ops.into_iter().enumerate() {
            let what = format!("op {n}: {op:?}");
            let root_before = map.root();
            match op {
                OrLocalOp::Add(k, v, ttl_ms, wall) => {
                    let r = map.add(&mut c, wall, &k, v, ttl_ms).expect("valid add");
                    prop_assert_eq!(r.tag(), r.timestamp.to_text());
                    tags.push(r.timestamp.clone());
                    model.adds.insert(r.timestamp.clone(), (k, r));
                }
                OrLocalOp::Remove(k, pick, fallback) => {
                    let live = map.get_records(&k).to_vec();
                    let target = if live.is_empty() { fallback } else { live[pick.index(live.len())].value.clone() };
                    let mut expected: Vec<String> =
                        live.iter().filter(|r| r.value == target).map(OrRecord::tag).collect();
                    let mut removed = map.remove(&k, &target).expect("valid remove");
                    expected.sort();
                    removed.sort();
                    prop_assert_eq!(&removed, &expected, "{}: removed tags", what);
                    for tag in removed {
                        model.tombs.insert(Timestamp::parse(&tag).expect("a tag is a timestamp"));
                    }
                    prop_assert!(map.get_records(&k).iter().all(|r| r.value != target), "{}: value still there", what);
                }
                OrLocalOp::Apply(k, r) => {
                    let t = r.timestamp.clone();
                    let expected = !model.tombs.contains(&t) && !model.adds.contains_key(&t);
                    let merged = map.apply(&mut c, WALL, &k, r.clone()).expect("valid record");
                    prop_assert_eq!(merged.accepted, expected, "{}", what);
                    if expected {
                        tags.push(t.clone());
                        model.adds.insert(t, (k, r));
                    }
                }
                OrLocalOp::Tomb(pick, fresh) => {
                    let t = if tags.is_empty() { ts(fresh) } else { tags[pick.index(tags.len())].clone() };
                    prop_assert_eq!(map.apply_tombstone(&t), model.tombs.insert(t.clone()), "{}", what);
                }
                OrLocalOp::MergeKey(k, rs, picks) => {
                    let tombs: Vec<Timestamp> =
                        picks.iter().filter(|_| !tags.is_empty()).map(|i| tags[i.index(tags.len())].clone()).collect();
                    map.merge_key(&mut c, WALL, &k, rs.clone(), &tombs).expect("valid batch");
                    model.tombs.extend(tombs);
                    for r in rs {
                        if !model.tombs.contains(&r.timestamp) && !model.adds.contains_key(&r.timestamp) {
                            tags.push(r.timestamp.clone());
                            model.adds.insert(r.timestamp.clone(), (k.clone(), r));
                        }
                    }
                }
                OrLocalOp::Prune(older) => {
                    let live: BTreeSet<Timestamp> =
                        model.records().into_iter().flat_map(|(_, rs)| rs.into_iter().map(|r| r.timestamp)).collect();
                    let before = model.tombs.len();
                    model.tombs.retain(|t| t.millis >= older);
                    prop_assert_eq!(map.prune(older), before - model.tombs.len(), "{}: pruned count", what);
                    prop_assert_eq!(map.root(), root_before, "{}: tombstones are not hashed", what);
                    // A forgotten tombstone no longer guards its tag; the model forgets the add too,
                    // so that a re-delivered add counts as new (as the map will treat it).
                    model.adds.retain(|t, _| live.contains(t) || model.tombs.contains(t));
                }
            }
            check_or(&map, &model, &what)?;
        }
        let mut rebuilt = OrMap::new();
        rebuilt.merge_all(&mut clock(), WALL, or_boxed(&map), &or_tombs(&map)).expect("valid state");
        same_or(&rebuilt, &map, "rebuilt from records and tombstones")?;
    }

    /// Law 4 (LWW): a snapshot decodes to the same records, imports into an empty map with the same
    /// root and re-encodes to the same bytes; truncated or extended snapshots are rejected; each
    /// record survives the stored-value codec.
    #[test]
    fn lww_snapshot_round_trips(pool in lww_pool(30), prune in prop::option::of(0u64..20), cut in any::<Index>()) {
        let mut map = lww_replica(pool.writes.iter().map(|(k, r, _)| (k, r)));
        if let Some(older) = prune {
            map.prune(older);
        }
        let bytes = codec::encode_lww_snapshot(&map);
        let decoded = codec::decode_snapshot(&bytes).expect("own snapshot decodes");
        prop_assert_eq!(&decoded, &Snapshot::Lww(lww_boxed(&map)));
        let Snapshot::Lww(records) = decoded else { unreachable!("checked above") };
        let mut imported = LwwMap::new();
        let (accepted, drifts) = imported.merge_all(&mut clock(), WALL, records).expect("valid snapshot");
        prop_assert_eq!(accepted, map.record_count());
        prop_assert!(drifts.is_empty());
        same_lww(&imported, &map, "imported snapshot")?;
        prop_assert_eq!(imported.root(), map.root());
        let end = cut.index(bytes.len());
        let len = bytes.len();
        prop_assert!(codec::decode_snapshot(&bytes[..end]).is_err(), "a snapshot cut at {} of {} decoded", end, len);
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert!(codec::decode_snapshot(&longer).is_err(), "a snapshot with a trailing byte decoded");
        for (_, r) in map.records() {
            let stored = StoredValue::Lww(r);
            prop_assert_eq!(codec::decode_stored(&codec::encode_stored(&stored)).expect("own value decodes"), stored);
        }
    }

    /// Law 4 (OR): the same for OR snapshots, tombstones included.
    #[test]
    fn or_snapshot_round_trips(pool in or_pool(30), cut in any::<Index>()) {
        let (map, model) = or_replica(&pool, |_| true);
        let bytes = codec::encode_or_snapshot(&map);
        let decoded = codec::decode_snapshot(&bytes).expect("own snapshot decodes");
        prop_assert_eq!(&decoded, &Snapshot::Or { keys: or_boxed(&map), tombstones: or_tombs(&map) });
        let Snapshot::Or { keys, tombstones } = decoded else { unreachable!("checked above") };
        let mut imported = OrMap::new();
        let result = imported.merge_all(&mut clock(), WALL, keys, &tombstones).expect("valid snapshot");
        prop_assert_eq!(result.new_tombstones, model.tombs.len());
        prop_assert_eq!(result.added, map.records().iter().map(|(_, rs)| rs.len()).sum::<usize>());
        check_or(&imported, &model, "imported snapshot")?;
        same_or(&imported, &map, "imported snapshot")?;
        let end = cut.index(bytes.len());
        let len = bytes.len();
        prop_assert!(codec::decode_snapshot(&bytes[..end]).is_err(), "a snapshot cut at {} of {} decoded", end, len);
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert!(codec::decode_snapshot(&longer).is_err(), "a snapshot with a trailing byte decoded");
        for (_, rs) in map.records() {
            let stored = StoredValue::Or(rs.to_vec());
            prop_assert_eq!(codec::decode_stored(&codec::encode_stored(&stored)).expect("own value decodes"), stored);
        }
        let stored = StoredValue::OrTombstones(or_tombs(&map));
        prop_assert_eq!(codec::decode_stored(&codec::encode_stored(&stored)).expect("own value decodes"), stored);
    }

    /// Law 5: the clock follows SPEC section 1 to the letter through `now` and every kind of merge,
    /// and every `now()` is strictly newer than every timestamp issued or merged before it, in
    /// particular than the record just merged. (An OR record refused because its tag is tombstoned is
    /// not observed, as SPEC section 4 says, so it is not counted as merged.)
    #[test]
    fn clock_is_newer_than_everything_seen(ops in prop::collection::vec(clock_op(), 1..40)) {
        let (mut c, mut model) = (clock(), ClockModel::default());
        let (mut lww, mut or) = (LwwMap::new(), OrMap::new());
        let mut newest: Option<Timestamp> = None;
        let see = |t: &Timestamp, newest: &mut Option<Timestamp>| {
            if newest.as_ref().is_none_or(|n| n < t) {
                *newest = Some(t.clone());
            }
        };
        for (n, op) in ops.into_iter().enumerate() {
            let what = format!("op {n}: {op:?}");
            let mut merged: Vec<Timestamp> = Vec::new();
            let wall = match op {
                ClockOp::Now(wall) => wall,
                ClockOp::LwwMerge(k, r, wall) => {
                    model.update(&r.timestamp, wall);
                    merged.push(r.timestamp.clone());
                    prop_assert!(lww.merge(&mut c, wall, &k, r).expect("valid record").drift.is_none());
                    wall
                }
                ClockOp::LwwLoad(k, r, wall) => {
                    model.update(&r.timestamp, wall);
                    merged.push(r.timestamp.clone());
                    lww.load(&mut c, wall, &k, r).expect("valid record");
                    wall
                }
                ClockOp::LwwBatch(rs, wall) => {
                    for (_, r) in &rs {
                        model.update(&r.timestamp, wall);
                        merged.push(r.timestamp.clone());
                    }
                    let batch = rs.into_iter().map(|(k, r)| (k.into_boxed_str(), r)).collect();
                    prop_assert!(lww.merge_all(&mut c, wall, batch).expect("valid batch").1.is_empty());
                    wall
                }
                ClockOp::OrApply(k, r, wall) => {
                    if !or.is_tombstoned(&r.timestamp) {
                        model.update(&r.timestamp, wall);
                        merged.push(r.timestamp.clone());
                    }
                    prop_assert!(or.apply(&mut c, wall, &k, r).expect("valid record").drift.is_none());
                    wall
                }
                ClockOp::OrMergeKey(k, rs, tombs, wall) => {
                    // SPEC section 4: the records are applied oldest first, whatever their order.
                    let mut oldest_first: Vec<&OrRecord> = rs.iter().collect();
                    oldest_first.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
                    for r in oldest_first {
                        if !or.is_tombstoned(&r.timestamp) && !tombs.contains(&r.timestamp) {
                            model.update(&r.timestamp, wall);
                            merged.push(r.timestamp.clone());
                        }
                    }
                    prop_assert!(or.merge_key(&mut c, wall, &k, rs, &tombs).expect("valid batch").drifts.is_empty());
                    wall
                }
            };
            prop_assert_eq!(c.last(), (model.millis, model.counter), "{}: clock after the merge", what);
            let now = c.now(wall).expect("the clock has room");
            model.now(wall);
            prop_assert_eq!((now.millis, now.counter), (model.millis, model.counter), "{}: now({})", what, wall);
            prop_assert!(now.millis >= wall, "{}: now {} is behind the wall clock", what, now);
            for t in &merged {
                prop_assert!(&now > t, "{}: now {} is not newer than the merged {}", what, now, t);
                see(t, &mut newest);
            }
            if let Some(newest) = &newest {
                prop_assert!(&now > newest, "{}: now {} is not newer than {} seen before", what, now, newest);
            }
            see(&now, &mut newest);
        }
    }

    /// Law 6: a remote timestamp more than `max_drift_ms` ahead of the wall clock is drift (one
    /// behind never is). Lenient mode merges it and reports it, one report per record; strict mode
    /// refuses it, for a batch before any record is applied, and changes nothing, the clock
    /// included. Loads from the node's own storage are never refused.
    #[test]
    fn drift_is_reported_or_refused_exactly_when_a_remote_is_too_far_ahead(
        max_drift_ms in 0u64..8,
        strict in any::<bool>(),
        ops in prop::collection::vec(clock_op(), 1..40),
    ) {
        let mut c = Hlc::new(node("x"), ClockConfig { max_drift_ms, strict });
        let (mut model, mut lww, mut or) = (ClockModel::default(), LwwMap::new(), OrMap::new());
        let drifts = |t: &Timestamp, wall: u64| t.millis > wall + max_drift_ms;
        for (n, op) in ops.into_iter().enumerate() {
            let what = format!("op {n}: {op:?}");
            let (clock_before, lww_before, or_before) = (c.last(), lww.clone(), or.clone());
            let (stamps, wall, result): (Vec<Timestamp>, u64, Result<usize, onegrid_core::Error>) = match op {
                ClockOp::Now(wall) => {
                    c.now(wall).expect("the clock has room");
                    model.now(wall);
                    continue;
                }
                ClockOp::LwwLoad(k, r, wall) => {
                    lww.load(&mut c, wall, &k, r.clone()).expect("a load is never refused for drift");
                    model.update(&r.timestamp, wall);
                    continue;
                }
                ClockOp::LwwMerge(k, r, wall) => {
                    let t = r.timestamp.clone();
                    (vec![t], wall, lww.merge(&mut c, wall, &k, r).map(|m| usize::from(m.drift.is_some())))
                }
                ClockOp::LwwBatch(rs, wall) => {
                    let stamps = rs.iter().map(|(_, r)| r.timestamp.clone()).collect();
                    let batch = rs.into_iter().map(|(k, r)| (k.into_boxed_str(), r)).collect();
                    (stamps, wall, lww.merge_all(&mut c, wall, batch).map(|(_, d)| d.len()))
                }
                ClockOp::OrApply(k, r, wall) => {
                    let t = r.timestamp.clone();
                    (vec![t], wall, or.apply(&mut c, wall, &k, r).map(|m| usize::from(m.drift.is_some())))
                }
                // Its tombstones decide which records are observed: law 5 covers its clock.
                ClockOp::OrMergeKey(..) => continue,
            };
            let ahead = stamps.iter().filter(|t| drifts(t, wall)).count();
            match result {
                Ok(reported) => {
                    prop_assert!(!strict || ahead == 0, "{}: strict mode took {} records ahead", what, ahead);
                    prop_assert_eq!(reported, ahead, "{}: drift reports", what);
                    for t in &stamps {
                        model.update(t, wall);
                    }
                }
                Err(e) => {
                    prop_assert!(strict && ahead > 0, "{}: refused: {}", what, e);
                    prop_assert!(matches!(e, onegrid_core::Error::ClockDrift(_)), "{}: {}", what, e);
                    prop_assert_eq!(c.last(), clock_before, "{}: the clock moved", what);
                    prop_assert_eq!(lww_owned(&lww), lww_owned(&lww_before), "{}: LWW records changed", what);
                    prop_assert_eq!(or_owned(&or), or_owned(&or_before), "{}: OR records changed", what);
                }
            }
            prop_assert_eq!(c.last(), (model.millis, model.counter), "{}: clock", what);
        }
    }
}

proptest! {
    // Hundreds of keys per case: fewer cases.
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Law 3 at scale: with hundreds of keys the tree's levels turn dense (more than 16 of 256 inner
    /// nodes, more than 256 of 4096 leaves used), and as removes and prunes empty nodes again it
    /// still equals the SPEC's tree, for both kinds; a map rebuilt from what is left has its root.
    #[test]
    fn trees_of_hundreds_of_keys_match_a_rebuild(
        writes in prop::collection::vec((stamp(), any::<bool>()), 400..900),
    ) {
        let keys: Vec<String> = (0..writes.len()).map(|i| format!("k{i}")).collect();
        let leaves: BTreeSet<u32> = keys.iter().map(|k| fnv1a(k) >> 20).collect();
        prop_assert!(leaves.len() > 256, "only {} leaves used", leaves.len());

        let (mut lww, mut c) = (LwwMap::new(), clock());
        for (i, ((millis, counter, writer), _)) in writes.iter().enumerate() {
            let record = LwwRecord { value: Some(Value::Int(i as i64)), timestamp: ts((*millis, *counter, *writer)), ttl_ms: None };
            lww.merge(&mut c, WALL, &keys[i], record).expect("valid record");
        }
        check_tree(lww.tree(), &lww_items(&lww), "LWW grown")?;
        for (i, ((_, counter, writer), gone)) in writes.iter().enumerate() {
            if *gone {
                let record = LwwRecord { value: None, timestamp: ts((30, *counter, *writer)), ttl_ms: None };
                lww.merge(&mut c, WALL, &keys[i], record).expect("valid record");
            }
        }
        check_tree(lww.tree(), &lww_items(&lww), "LWW with tombstones")?;
        lww.prune(u64::MAX);
        check_tree(lww.tree(), &lww_items(&lww), "LWW pruned")?;
        let left = lww_owned(&lww);
        same_lww(&lww, &lww_replica(left.iter().map(|(k, r)| (k, r))), "LWW pruned vs rebuilt")?;

        let (mut or, mut c) = (OrMap::new(), clock());
        for (i, ((millis, counter, writer), _)) in writes.iter().enumerate() {
            // A tag names one add: counters made unique.
            let timestamp = ts((*millis, *counter + 3 * i as u32, *writer));
            let record = OrRecord { value: Value::Int(i as i64), timestamp, ttl_ms: None };
            or.apply(&mut c, WALL, &keys[i], record).expect("valid record");
        }
        check_tree(or.tree(), &or_items(&or), "OR grown")?;
        for (i, (_, gone)) in writes.iter().enumerate() {
            if *gone {
                for v in or.get(&keys[i], WALL).into_iter().cloned().collect::<Vec<_>>() {
                    or.remove(&keys[i], &v).expect("valid remove");
                }
            }
        }
        check_tree(or.tree(), &or_items(&or), "OR with removes")?;
        let mut rebuilt = OrMap::new();
        rebuilt.merge_all(&mut clock(), WALL, or_boxed(&or), &or_tombs(&or)).expect("valid state");
        same_or(&rebuilt, &or, "OR rebuilt")?;
    }
}
