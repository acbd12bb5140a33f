//! The scenarios: SPEC edge cases written out by hand, and random ones from fixed seeds.

use onegrid_core::Value;

use crate::scenario::{Kind, Op, Pin, Replica, Scenario, Step};

/// A small deterministic generator (xorshift64*), so every engine and every run sees the same ops.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is mapped to a fixed non-zero state).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next 64 random bits.
    pub fn bits(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.bits() % n
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn replica(id: &str) -> Replica {
    Replica { node_id: id.into(), max_drift_ms: 60_000, strict: false }
}

fn step(replica: usize, wall: u64, op: Op) -> Step {
    Step { replica, wall, op }
}

fn set(map: &str, key: &str, value: Value) -> Op {
    Op::Set { map: map.into(), key: key.into(), value, ttl_ms: None }
}

fn get(map: &str, key: &str) -> Op {
    Op::Get { map: map.into(), key: key.into() }
}

fn add(map: &str, key: &str, value: Value) -> Op {
    Op::Add { map: map.into(), key: key.into(), value, ttl_ms: None }
}

fn or_get(map: &str, key: &str) -> Op {
    Op::OrGet { map: map.into(), key: key.into() }
}

fn sync(map: &str, from: usize) -> Op {
    Op::Sync { map: map.into(), from }
}

fn scenario(name: &str, replicas: Vec<Replica>, maps: &[(&str, Kind)], steps: Vec<Step>) -> Scenario {
    let maps = maps.iter().map(|(m, k)| ((*m).to_owned(), *k)).collect();
    Scenario { name: name.into(), replicas, steps, maps, converges: false, pins: Vec::new() }
}

/// `scenario` for a case that ends with syncs both ways: its replicas must end equal.
fn converging(name: &str, replicas: Vec<Replica>, maps: &[(&str, Kind)], steps: Vec<Step>) -> Scenario {
    Scenario { converges: true, ..scenario(name, replicas, maps, steps) }
}

fn object(pairs: &[(&str, Value)]) -> Value {
    Value::map(pairs.iter().cloned()).expect("distinct keys")
}

/// The SPEC's edge cases, each as its own scenario.
pub fn edge_cases() -> Vec<Scenario> {
    let ab = || vec![replica("a"), replica("b")];
    let lww = &[("m", Kind::Lww)][..];
    let or = &[("o", Kind::Or)][..];
    vec![
        // Same millisecond, same counter: the greater node id wins, on both sides.
        converging(
            "tie-by-node-id",
            ab(),
            lww,
            vec![
                step(0, 100, set("m", "k", Value::from("from a"))),
                step(1, 100, set("m", "k", Value::from("from b"))),
                step(0, 101, sync("m", 1)),
                step(1, 101, sync("m", 0)),
                step(0, 102, get("m", "k")),
                step(1, 102, get("m", "k")),
            ],
        ),
        // Merging the same snapshot twice changes nothing the second time, and a record with the
        // same timestamp but another value (hand-built: no live replica issues it) is refused too:
        // whichever arrived first stays, the value never breaks the tie.
        scenario(
            "equal-timestamps-rejected",
            vec![replica("a"), replica("b"), replica("c")],
            lww,
            vec![
                step(0, 100, set("m", "k", Value::from(1))),
                step(1, 100, sync("m", 0)),
                step(1, 100, sync("m", 0)),
                step(1, 100, import("m", lww_snapshot("k", Value::from(2), 100, 0, "a"))),
                step(1, 100, get("m", "k")),
                step(2, 100, import("m", lww_snapshot("k", Value::from(2), 100, 0, "a"))),
                step(2, 100, sync("m", 0)),
                step(2, 100, get("m", "k")),
                step(0, 100, import("m", lww_snapshot("k", Value::from(2), 100, 0, "a"))),
                step(0, 100, get("m", "k")),
            ],
        ),
        // Alive at exactly millis + ttl, gone one millisecond later; still synced and hashed.
        scenario(
            "ttl-boundary",
            ab(),
            lww,
            vec![
                step(
                    0,
                    1_000,
                    Op::Set { map: "m".into(), key: "k".into(), value: Value::from("v"), ttl_ms: Some(500) },
                ),
                step(0, 1_500, get("m", "k")),
                step(0, 1_501, get("m", "k")),
                step(1, 1_502, sync("m", 0)),
                step(1, 1_502, get("m", "k")),
            ],
        ),
        // A tombstone beats older writes and loses to newer ones.
        converging(
            "tombstone-resurrection",
            ab(),
            lww,
            vec![
                step(0, 100, set("m", "k", Value::from(1))),
                step(1, 100, sync("m", 0)),
                step(1, 200, Op::Remove { map: "m".into(), key: "k".into() }),
                step(0, 150, set("m", "k", Value::from(2))),
                step(0, 210, sync("m", 1)),
                step(0, 210, get("m", "k")),
                step(0, 300, set("m", "k", Value::from(3))),
                step(1, 310, sync("m", 0)),
                step(1, 310, get("m", "k")),
                step(1, 400, Op::Prune { map: "m".into(), kind: Kind::Lww, older_than: 1_000 }),
            ],
        ),
        // A remove that reaches a replica before the add it removes still wins.
        scenario(
            "remove-before-add",
            vec![replica("a"), replica("b"), replica("c")],
            or,
            vec![
                step(0, 100, add("o", "k", Value::from("x"))),
                step(1, 101, sync("o", 0)),
                step(1, 102, Op::OrRemove { map: "o".into(), key: "k".into(), value: Value::from("x") }),
                step(2, 103, sync("o", 1)),
                step(2, 104, sync("o", 0)),
                step(2, 105, or_get("o", "k")),
            ],
        ),
        // Concurrent add and remove of the same value: the unobserved add survives.
        converging(
            "concurrent-add-remove",
            ab(),
            or,
            vec![
                step(0, 100, add("o", "k", Value::from("x"))),
                step(1, 101, sync("o", 0)),
                step(1, 102, Op::OrRemove { map: "o".into(), key: "k".into(), value: Value::from("x") }),
                step(0, 102, add("o", "k", Value::from("x"))),
                step(0, 103, sync("o", 1)),
                step(1, 103, sync("o", 0)),
                step(0, 104, or_get("o", "k")),
                step(1, 104, or_get("o", "k")),
            ],
        ),
        // Remove compares structure, not identity or key order.
        scenario(
            "structural-remove",
            ab(),
            or,
            vec![
                step(0, 100, add("o", "k", object(&[("b", Value::from(1)), ("a", Value::list([Value::Null]))]))),
                step(0, 100, add("o", "k", object(&[("a", Value::list([Value::Null])), ("b", Value::from(2))]))),
                step(
                    0,
                    101,
                    Op::OrRemove {
                        map: "o".into(),
                        key: "k".into(),
                        value: object(&[("a", Value::list([Value::Null])), ("b", Value::from(1))]),
                    },
                ),
                step(0, 102, or_get("o", "k")),
            ],
        ),
        // SPEC 5: a removed key leaves no trace, and re-adding it gives the earlier root again. The
        // same record set needs the same tags: a removes k's record, forgets the tombstone (prune),
        // and gets the very record back from b, which never saw the remove. Replica b keeps the
        // root from before the remove, c the one after it, d the one from before the add.
        scenario(
            "remove-readd-root",
            vec![replica("a"), replica("b"), replica("c"), replica("d")],
            or,
            vec![
                step(0, 100, add("o", "base", Value::from(0))),
                step(3, 101, sync("o", 0)),
                step(0, 102, add("o", "k", Value::from("v"))),
                step(1, 103, sync("o", 0)),
                step(0, 104, or_remove("o", "k", Value::from("v"))),
                step(2, 105, sync("o", 0)),
                step(0, 106, Op::Prune { map: "o".into(), kind: Kind::Or, older_than: 200 }),
                step(0, 107, sync("o", 1)),
                step(0, 108, or_get("o", "k")),
            ],
        ),
        // Strict drift: a snapshot from a clock far ahead is refused whole.
        scenario(
            "strict-drift",
            vec![replica("a"), Replica { node_id: "b".into(), max_drift_ms: 1_000, strict: true }],
            lww,
            vec![
                step(0, 100_000, set("m", "k", Value::from(1))),
                step(1, 1_000, sync("m", 0)),
                step(1, 1_000, get("m", "k")),
                step(1, 99_500, sync("m", 0)),
            ],
        ),
        // Bad input fails the same way everywhere and changes nothing.
        scenario(
            "bad-input",
            ab(),
            &[("m", Kind::Lww), ("o", Kind::Or)],
            vec![
                step(0, 99, set("m", "x", Value::Null)),
                step(0, 100, set("m", "__tombstones__", Value::Null)),
                step(0, 100, Op::Set { map: "m".into(), key: "k".into(), value: Value::Null, ttl_ms: Some(0) }),
                step(0, 100, add("m", "k", Value::Null)),
                step(0, 101, add("o", "k", Value::Null)),
                step(1, 102, set("o", "k", Value::Null)),
                step(1, 103, sync("o", 0)),
                step(1, 104, sync("nope", 0)),
            ],
        ),
        // Values of every type travel and hash the same everywhere.
        scenario(
            "every-value-type",
            ab(),
            &[("m", Kind::Lww), ("o", Kind::Or)],
            vec![
                step(0, 100, set("m", "null", Value::Null)),
                step(0, 100, set("m", "big", Value::Int(i64::MIN))),
                step(0, 100, set("m", "float", Value::Float(-1.5e-7))),
                step(0, 100, set("m", "huge", Value::Float(1e21))),
                step(0, 100, set("m", "text", Value::from("héllo 😀 \u{ff5e}"))),
                step(0, 100, set("m", "bytes", Value::from(vec![0, 255]))),
                step(0, 100, set("m", "😀 key", object(&[("😀", Value::from(1)), ("\u{ff5e}", Value::Bool(true))]))),
                step(0, 101, add("o", "k", object(&[("😀", Value::from(1)), ("\u{ff5e}", Value::Float(0.1))]))),
                step(0, 101, add("o", "k", Value::Int(i64::MAX))),
                step(1, 102, sync("m", 0)),
                step(1, 102, sync("o", 0)),
                step(1, 103, get("m", "big")),
                step(1, 103, get("m", "😀 key")),
                step(1, 103, or_get("o", "k")),
                step(
                    1,
                    104,
                    Op::SetMany {
                        map: "m".into(),
                        entries: vec![("x".into(), Value::from(1)), ("y".into(), Value::list([]))],
                    },
                ),
            ],
        ),
    ]
    .into_iter()
    .chain(review_cases())
    .collect()
}

/// An LWW snapshot of one record at `(millis, counter)` by node "x", which no clock in a
/// scenario could write (it is loaded, so the builder's clock saturates instead of refusing).
fn far_snapshot(millis: u64, counter: u32) -> Vec<u8> {
    lww_snapshot("far", Value::from("far"), millis, counter, "x")
}

/// A hand-built LWW snapshot of one record `key = value` stamped `(millis, counter, node)`.
fn lww_snapshot(key: &str, value: Value, millis: u64, counter: u32, node: &str) -> Vec<u8> {
    let node = onegrid_core::NodeId::new(node).expect("node id");
    let mut clock = onegrid_core::Hlc::new(node.clone(), onegrid_core::ClockConfig::default());
    let mut map = onegrid_core::LwwMap::new();
    let timestamp = onegrid_core::Timestamp::new(millis, counter, node);
    let record = onegrid_core::LwwRecord { value: Some(value), timestamp, ttl_ms: None };
    map.load(&mut clock, 0, key, record).expect("a valid record");
    onegrid_core::codec::encode_lww_snapshot(&map)
}

fn import(map: &str, snapshot: Vec<u8>) -> Op {
    Op::Import { map: map.into(), snapshot }
}

fn or_remove(map: &str, key: &str, value: Value) -> Op {
    Op::OrRemove { map: map.into(), key: key.into(), value }
}

/// The cases of the review against SPEC (issue 11), each with its expected outcome pinned in
/// `tests/conformance.rs`.
fn review_cases() -> Vec<Scenario> {
    let strict = Replica { node_id: "s".into(), max_drift_ms: 1_000, strict: true };
    let two_pow_60 = 1_i64 << 60;
    vec![
        // SPEC 1: at millis u64::MAX the clock advances its counter, never goes back, and fails
        // clearly once exhausted; strict mode refuses such a timestamp as drift, and a timestamp
        // the clock could not get past is refused in any mode.
        scenario(
            "clock-at-u64-max",
            vec![replica("a"), strict, replica("c")],
            &[("m", Kind::Lww)],
            vec![
                step(0, 100, import("m", far_snapshot(u64::MAX, u32::MAX - 2))),
                step(0, 100, set("m", "k", Value::from(1))),
                step(0, 100, set("m", "k2", Value::from(2))),
                step(0, 100, get("m", "k")),
                step(1, 100, import("m", far_snapshot(u64::MAX, u32::MAX - 1))),
                step(2, 100, import("m", far_snapshot(u64::MAX, u32::MAX))),
                step(2, 100, set("m", "k", Value::from(3))),
            ],
        ),
        // SPEC 4 and 7: OR remove checks and canonicalises its value (a map's keys in any order),
        // and numbers beyond 2^53 are equal only when they hash alike.
        scenario(
            "or-remove-canonical-value",
            vec![replica("a")],
            &[("o", Kind::Or)],
            vec![
                step(0, 100, add("o", "k", object(&[("a", Value::from(1)), ("b", Value::from(2))]))),
                step(
                    0,
                    101,
                    or_remove(
                        "o",
                        "k",
                        Value::Map(vec![("b".into(), Value::from(2)), ("a".into(), Value::from(1))].into()),
                    ),
                ),
                step(0, 102, or_remove("o", "k", Value::Float(f64::NAN))),
                step(0, 103, add("o", "big", Value::Int(two_pow_60))),
                step(0, 104, or_remove("o", "big", Value::Float(two_pow_60 as f64))),
                step(0, 105, or_get("o", "big")),
                step(0, 106, or_remove("o", "big", Value::Int(two_pow_60))),
            ],
        ),
        // SPEC 3: the reserved keys are errors to read as well as to write.
        scenario(
            "reserved-key-reads",
            vec![replica("a")],
            &[("m", Kind::Lww), ("o", Kind::Or)],
            vec![
                step(0, 100, set("m", "a", Value::from(1))),
                step(0, 100, add("o", "a", Value::from(1))),
                step(0, 101, get("m", "__tombstones__")),
                step(0, 101, get("m", "__mark__")),
                step(0, 101, or_get("o", "__tombstones__")),
            ],
        ),
        // SPEC 4: an OR merge applies its records oldest first, so the clock ends the same whatever
        // order they came in: key "a" holds 500:5, key "b" 500:0 and "c" 500:1..4; in key order
        // the clock would end at 500:11, in timestamp order at 500:6, and the next add gets 500:7.
        scenario(
            "or-merge-oldest-first",
            vec![replica("x"), replica("y")],
            &[("o", Kind::Or)],
            vec![
                step(0, 500, add("o", "b", Value::from(0))),
                step(0, 500, add("o", "c", Value::from(1))),
                step(0, 500, add("o", "c", Value::from(2))),
                step(0, 500, add("o", "c", Value::from(3))),
                step(0, 500, add("o", "c", Value::from(4))),
                step(0, 500, add("o", "a", Value::from(5))),
                step(1, 100, sync("o", 0)),
                step(1, 100, add("o", "d", Value::from(6))),
            ],
        ),
        // SPEC 7: every string round-trips exactly: a leading U+FEFF, U+0000, astral characters.
        scenario(
            "awkward-text",
            vec![replica("a"), replica("b")],
            &[("m", Kind::Lww), ("o", Kind::Or)],
            vec![
                step(0, 100, set("m", "\u{feff}k", Value::from("\u{feff}abc"))),
                step(0, 100, set("m", "\u{0}", object(&[("\u{feff}", Value::from("\u{0}😀"))]))),
                step(0, 101, add("o", "\u{feff}😀", Value::from("\u{feff}"))),
                step(1, 102, sync("m", 0)),
                step(1, 102, sync("o", 0)),
                step(1, 103, get("m", "\u{feff}k")),
                step(1, 103, get("m", "\u{0}")),
                step(1, 103, or_get("o", "\u{feff}😀")),
            ],
        ),
        // SPEC 7 and the README's decision: a whole-number float of safe magnitude is the integer
        // it equals (as a JavaScript number is), so the byte ABI's `Float(3.0)` and `Float(-0.0)`
        // are stored as the JS API stores `3` and `-0`: the same bytes on every engine.
        scenario(
            "whole-floats-are-integers",
            vec![replica("a")],
            &[("m", Kind::Lww), ("o", Kind::Or)],
            vec![
                step(0, 100, set("m", "three", Value::Float(3.0))),
                step(0, 100, set("m", "minus-zero", Value::Float(-0.0))),
                step(
                    0,
                    100,
                    set("m", "nested", Value::list([Value::Float(-7.0), object(&[("x", Value::Float(2.0))])])),
                ),
                step(0, 100, Op::SetMany { map: "m".into(), entries: vec![("many".into(), Value::Float(1e15))] }),
                step(0, 101, add("o", "k", Value::Float(4.0))),
                step(0, 102, get("m", "three")),
                step(0, 102, get("m", "minus-zero")),
                step(0, 102, or_get("o", "k")),
                step(0, 103, or_remove("o", "k", Value::Int(4))),
            ],
        ),
    ]
}

/// A random value: scalars of every type, sometimes nested.
pub fn random_value(rng: &mut Rng, depth: u32) -> Value {
    match rng.below(if depth > 2 { 7 } else { 9 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 1),
        2 => Value::Int(rng.below(2000) as i64 - 1000),
        3 => Value::Int(rng.bits() as i64),
        4 => Value::from(random_float(rng)),
        5 => Value::from(*rng.pick(&["", "a", "héllo", "😀", "\u{ff5e}", "line\nbreak \"quoted\""])),
        6 => Value::from((0..rng.below(4)).map(|_| rng.below(256) as u8).collect::<Vec<u8>>()),
        7 => Value::list((0..rng.below(4)).map(|_| random_value(rng, depth + 1))),
        _ => {
            let mut keys: Vec<&str> = vec!["a", "b", "😀", "\u{ff5e}", "10", "z"];
            keys.truncate(rng.below(5) as usize);
            Value::map(keys.into_iter().map(|k| (k, random_value(rng, depth + 1)))).expect("distinct keys")
        }
    }
}

/// A finite double as a JavaScript number could be (through `Value::from`, so whole numbers of safe
/// magnitude become integers): any bits (subnormals and huge ones included), whole numbers, `-0.0`,
/// and whole numbers beyond 2^53, which stay floats.
fn random_float(rng: &mut Rng) -> f64 {
    let sign = if rng.below(2) == 0 { 1.0 } else { -1.0 };
    match rng.below(5) {
        0 | 1 => {
            let f = f64::from_bits(rng.bits());
            if f.is_finite() { f } else { 0.25 }
        }
        2 => sign * (rng.below(2000) as f64),
        3 => *rng.pick(&[-0.0, 0.0, 9_007_199_254_740_991.0, -9_007_199_254_740_991.0, 0.5, -1.5e-7]),
        _ => sign * 2f64.powi(53 + rng.below(960) as i32) * (1.0 + rng.below(1 << 20) as f64 / f64::from(1 << 20)),
    }
}

/// A 64-byte node id, the longest allowed.
const LONGEST_NODE_ID: &str = "Z0123456789.abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMNOPQRSTUVWXY";

/// A random scenario of about `ops` steps (`ops` plus TTL probes) over three replicas, two LWW maps
/// and one OR map, on a few keys, so writes collide.
pub fn random(seed: u64, ops: usize) -> Scenario {
    generated(format!("random-{seed}"), seed, ops, &[])
}

/// Like [`random`] with hundreds of keys more and big batches, so the Merkle trees fill their
/// levels until they turn dense (more than 16 of 256 inner nodes, more than 256 of 4096 leaves).
pub fn random_many_keys(seed: u64, ops: usize) -> Scenario {
    let keys: Vec<String> = (0..800).map(|i| format!("w{i}")).collect();
    generated(format!("random-many-keys-{seed}"), seed, ops, &keys)
}

fn generated(name: String, seed: u64, ops: usize, more_keys: &[String]) -> Scenario {
    let mut rng = Rng::new(seed);
    // Node ids of 1, 6 and 64 bytes. Small drift limits and clocks set apart make drift happen:
    // "beta-2" runs 30 ms behind and refuses (strict) what is more than 40 ms ahead of it; "a"
    // reports (lenient) what is more than 25 ms ahead; now and then a clock jumps ahead.
    let replicas = vec![
        Replica { node_id: "a".into(), max_drift_ms: 25, strict: false },
        Replica { node_id: "beta-2".into(), max_drift_ms: 40, strict: true },
        Replica { node_id: LONGEST_NODE_ID.into(), max_drift_ms: 60_000, strict: false },
    ];
    let offsets: [i64; 3] = [0, -30, 15];
    let mut keys: Vec<String> = ["k0", "k1", "k2", "k3", "k4", "😀", ""].map(String::from).to_vec();
    keys.extend_from_slice(more_keys);
    let batch = if more_keys.is_empty() { 4 } else { 60 };
    let mut base = 1_700_000_000_000u64;
    // Above every replica's clock millis: a write at a wall beyond it is stamped (wall, 0).
    let mut clock_bound = [0u64; 3];
    let (mut steps, mut pins) = (Vec::with_capacity(ops), Vec::new());
    while steps.len() < ops {
        // Mostly forward, sometimes the same millisecond, sometimes backwards (clock skew).
        base = match rng.below(10) {
            0..=3 => base,
            4 => base - rng.below(50),
            _ => base + rng.below(20),
        };
        let r = rng.below(3) as usize;
        let jump = if rng.below(40) == 0 { 50 + rng.below(200) } else { 0 };
        let wall = base.saturating_add_signed(offsets[r]) + jump;
        let key = rng.pick(&keys).clone();
        let lww_map = (*rng.pick(&["m1", "m2"])).to_owned();
        let ttl_ms = (rng.below(8) == 0).then(|| 1 + rng.below(40));
        // With many keys, more OR adds, so the OR map grows as big as the LWW maps.
        let roll = if !more_keys.is_empty() && rng.below(5) == 0 { 50 } else { rng.below(100) };
        let op = match roll {
            0..=29 => Op::Set { map: lww_map, key, value: random_value(&mut rng, 0), ttl_ms },
            30..=37 => Op::Remove { map: lww_map, key },
            38..=45 => Op::Get { map: lww_map, key },
            46..=59 => Op::Add { map: "o".into(), key, value: random_value(&mut rng, 2), ttl_ms },
            60..=67 => Op::OrRemove { map: "o".into(), key, value: random_value(&mut rng, 2) },
            68..=73 => Op::OrGet { map: "o".into(), key },
            74..=76 => {
                let mut names: Vec<String> = (0..rng.below(batch)).map(|_| rng.pick(&keys).clone()).collect();
                names.sort();
                names.dedup();
                Op::SetMany {
                    map: lww_map,
                    entries: names.into_iter().map(|k| (k, random_value(&mut rng, 1))).collect(),
                }
            }
            77..=95 => {
                let from = rng.below(3) as usize;
                clock_bound[r] = clock_bound[r].max(clock_bound[from]);
                Op::Sync { map: (*rng.pick(&["m1", "m2", "o"])).to_owned(), from }
            }
            _ => {
                let (map, kind) = *rng.pick(&[("m1", Kind::Lww), ("m2", Kind::Lww), ("o", Kind::Or)]);
                Op::Prune { map: map.into(), kind, older_than: wall - rng.below(100) }
            }
        };
        let exact = wall > clock_bound[r];
        clock_bound[r] = clock_bound[r].max(wall);
        // A TTL write stamped exactly at `wall` is read back at its last live millisecond and at
        // the first expired one.
        let probes = match (&op, exact) {
            (Op::Set { map, key, ttl_ms: Some(ttl), .. }, true) => {
                let read = || Op::Get { map: map.clone(), key: key.clone() };
                pins.extend([(steps.len() + 1, Pin::Live), (steps.len() + 2, Pin::Gone)]);
                vec![(wall + ttl, read()), (wall + ttl + 1, read())]
            }
            (Op::Add { map, key, ttl_ms: Some(ttl), .. }, true) => {
                let read = || Op::OrGet { map: map.clone(), key: key.clone() };
                vec![(wall + ttl, read()), (wall + ttl + 1, read())]
            }
            _ => vec![],
        };
        steps.push(Step { replica: r, wall, op });
        steps.extend(probes.into_iter().map(|(wall, op)| Step { replica: r, wall, op }));
    }
    // End with every replica pulling every map from every other, so they converge, at a wall past
    // every clock (no drift refuses them).
    let wall = clock_bound.iter().max().copied().unwrap_or(base) + 1_000;
    for map in ["m1", "m2", "o"] {
        for to in 0..3 {
            for from in 0..3 {
                if from != to {
                    steps.push(Step { replica: to, wall, op: Op::Sync { map: map.into(), from } });
                }
            }
        }
    }
    Scenario {
        name,
        replicas,
        steps,
        maps: vec![("m1".into(), Kind::Lww), ("m2".into(), Kind::Lww), ("o".into(), Kind::Or)],
        converges: true,
        pins,
    }
}
