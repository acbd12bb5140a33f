//! The scenarios: SPEC edge cases written out by hand, and random ones from fixed seeds.

use onegrid_core::Value;

use crate::scenario::{Kind, Op, Replica, Scenario, Step};

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
    Scenario { name: name.into(), replicas, steps, maps: maps.iter().map(|(m, k)| ((*m).to_owned(), *k)).collect() }
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
        scenario(
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
        // Merging the same snapshot twice changes nothing the second time.
        scenario(
            "equal-timestamps-rejected",
            ab(),
            lww,
            vec![step(0, 100, set("m", "k", Value::from(1))), step(1, 100, sync("m", 0)), step(1, 100, sync("m", 0))],
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
        scenario(
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
        scenario(
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
        // Removing every record of a key and adding the same records back restores the root.
        scenario(
            "remove-readd-root",
            ab(),
            or,
            vec![
                step(0, 100, add("o", "a", Value::from(1))),
                step(1, 100, sync("o", 0)),
                step(0, 101, add("o", "b", Value::from(2))),
                step(0, 102, Op::OrRemove { map: "o".into(), key: "b".into(), value: Value::from(2) }),
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
    let x = onegrid_core::NodeId::new("x").expect("node id");
    let mut clock = onegrid_core::Hlc::new(x.clone(), onegrid_core::ClockConfig::default());
    let mut map = onegrid_core::LwwMap::new();
    let record = onegrid_core::LwwRecord {
        value: Some(Value::from("far")),
        timestamp: onegrid_core::Timestamp::new(millis, counter, x),
        ttl_ms: None,
    };
    map.load(&mut clock, 0, "far", record).expect("a valid record");
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
    ]
}

/// A random value: scalars of every type, sometimes nested.
pub fn random_value(rng: &mut Rng, depth: u32) -> Value {
    match rng.below(if depth > 2 { 7 } else { 9 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 1),
        2 => Value::Int(rng.below(2000) as i64 - 1000),
        3 => Value::Int(rng.bits() as i64),
        4 => {
            // Any finite double, subnormals and huge ones included.
            let f = f64::from_bits(rng.bits());
            Value::from(if f.is_finite() { f } else { 0.25 })
        }
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

/// A random scenario of `ops` steps over three replicas, two LWW maps and one OR map.
pub fn random(seed: u64, ops: usize) -> Scenario {
    let mut rng = Rng::new(seed);
    let replicas = vec![replica("alpha"), replica("beta"), replica("gamma-2")];
    let keys = ["k0", "k1", "k2", "k3", "k4", "😀", ""];
    let mut wall = 1_700_000_000_000u64;
    let mut steps = Vec::with_capacity(ops);
    for _ in 0..ops {
        // Mostly forward, sometimes the same millisecond, sometimes backwards (clock skew).
        wall = match rng.below(10) {
            0..=3 => wall,
            4 => wall - rng.below(50),
            _ => wall + rng.below(20),
        };
        let r = rng.below(3) as usize;
        let key = (*rng.pick(&keys)).to_owned();
        let lww_map = (*rng.pick(&["m1", "m2"])).to_owned();
        let ttl_ms = (rng.below(8) == 0).then(|| 1 + rng.below(40));
        let op = match rng.below(100) {
            0..=29 => Op::Set { map: lww_map, key, value: random_value(&mut rng, 0), ttl_ms },
            30..=37 => Op::Remove { map: lww_map, key },
            38..=45 => Op::Get { map: lww_map, key },
            46..=59 => Op::Add { map: "o".into(), key, value: random_value(&mut rng, 2), ttl_ms },
            60..=67 => Op::OrRemove { map: "o".into(), key, value: random_value(&mut rng, 2) },
            68..=73 => Op::OrGet { map: "o".into(), key },
            74..=76 => Op::SetMany {
                map: lww_map,
                entries: (0..rng.below(4)).map(|i| (format!("batch{i}"), random_value(&mut rng, 1))).collect(),
            },
            77..=95 => Op::Sync { map: (*rng.pick(&["m1", "m2", "o"])).to_owned(), from: rng.below(3) as usize },
            _ => {
                let (map, kind) = *rng.pick(&[("m1", Kind::Lww), ("m2", Kind::Lww), ("o", Kind::Or)]);
                Op::Prune { map: map.into(), kind, older_than: wall - rng.below(100) }
            }
        };
        steps.push(Step { replica: r, wall, op });
    }
    // End with every replica pulling every map from every other, so they converge.
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
        name: format!("random-{seed}"),
        replicas,
        steps,
        maps: vec![("m1".into(), Kind::Lww), ("m2".into(), Kind::Lww), ("o".into(), Kind::Or)],
    }
}
