//! Benchmarks of onegrid-core on 100 000 keys, and a heap and snapshot-size report.
//!
//! Run with `cargo bench -p onegrid-core --bench core` (see `README` beside this file).
//!
//! Every throughput benchmark does 100 000 operations per iteration and reports them with divan's
//! `ItemsCount`, so the `items/s` column is the per-operation throughput. Setup (building full maps,
//! cloning the remote records) happens in divan's input generators and is not timed; what a
//! benchmark returns is dropped outside the timing too.
//!
//! Full-map benchmarks work on a clone of a map built by local writes. A clone allocates its keys
//! in hash-table order, so walking the keys in order reaches both the table slot and the key's heap
//! block in effectively random order, as an application's random access would (two cache misses per
//! operation on a map this size). Into-empty benchmarks allocate keys in the order they are walked.
//!
//! Before divan runs, `main` prints the memory report, measured with the counting global allocator
//! below. Counting is switched on only around those measurements, so the allocator costs the timed
//! benchmarks one relaxed load per call.

use core::alloc::{GlobalAlloc, Layout};
use core::fmt::Write as _;
use core::hint::black_box;
use core::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering::Relaxed};
use std::alloc::System;
use std::sync::LazyLock;

use divan::Bencher;
use divan::counter::{BytesCount, ItemsCount};
use onegrid_core::codec::{self, Snapshot};
use onegrid_core::{ClockConfig, Hlc, LwwMap, LwwRecord, NodeId, OrMap, OrRecord, Value};

// ---- the counting allocator -------------------------------------------------------------------

/// `System`, counting live bytes and calls while [`COUNTING`] is on.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
/// Live bytes as requested by `Layout::size()`.
static LIVE: AtomicIsize = AtomicIsize::new(0);
/// Live bytes as the allocator really hands out (`malloc_usable_size`), where it can be asked.
static LIVE_USABLE: AtomicIsize = AtomicIsize::new(0);
/// Calls to `alloc`, `alloc_zeroed` and `realloc`.
static CALLS: AtomicUsize = AtomicUsize::new(0);

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn usable(ptr: *mut u8) -> isize {
    unsafe extern "C" {
        fn malloc_usable_size(ptr: *mut core::ffi::c_void) -> usize;
    }
    // SAFETY: `ptr` is a live block of the system allocator (glibc's malloc).
    let size = unsafe { malloc_usable_size(ptr.cast()) };
    isize::try_from(size).unwrap_or(isize::MAX)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn usable(_ptr: *mut u8) -> isize {
    0
}

fn signed(n: usize) -> isize {
    isize::try_from(n).unwrap_or(isize::MAX)
}

// SAFETY: every call is forwarded to `System` unchanged; the counters are side bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let ptr = unsafe { System.alloc(layout) };
        if COUNTING.load(Relaxed) && !ptr.is_null() {
            LIVE.fetch_add(signed(layout.size()), Relaxed);
            LIVE_USABLE.fetch_add(usable(ptr), Relaxed);
            CALLS.fetch_add(1, Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if COUNTING.load(Relaxed) && !ptr.is_null() {
            LIVE.fetch_add(signed(layout.size()), Relaxed);
            LIVE_USABLE.fetch_add(usable(ptr), Relaxed);
            CALLS.fetch_add(1, Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Relaxed) {
            LIVE.fetch_sub(signed(layout.size()), Relaxed);
            LIVE_USABLE.fetch_sub(usable(ptr), Relaxed);
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let counting = COUNTING.load(Relaxed);
        let old_usable = if counting { usable(ptr) } else { 0 };
        // SAFETY: forwarded with the caller's guarantees.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if counting && !new.is_null() {
            LIVE.fetch_add(signed(new_size) - signed(layout.size()), Relaxed);
            LIVE_USABLE.fetch_add(usable(new) - old_usable, Relaxed);
            CALLS.fetch_add(1, Relaxed);
        }
        new
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// What the allocator saw while counting: live bytes (requested, usable) and calls.
#[derive(Clone, Copy)]
struct Heap {
    live: isize,
    usable: isize,
    calls: usize,
}

impl Heap {
    fn now() -> Self {
        Self { live: LIVE.load(Relaxed), usable: LIVE_USABLE.load(Relaxed), calls: CALLS.load(Relaxed) }
    }

    fn since(self, before: Self) -> Self {
        Self { live: self.live - before.live, usable: self.usable - before.usable, calls: self.calls - before.calls }
    }
}

/// Runs `f` with counting on and returns its result and the heap change it left.
fn counted<T>(f: impl FnOnce() -> T) -> (T, Heap) {
    COUNTING.store(true, Relaxed);
    let before = Heap::now();
    let out = f();
    let delta = Heap::now().since(before);
    COUNTING.store(false, Relaxed);
    (out, delta)
}

// ---- data -------------------------------------------------------------------------------------

const N: usize = 100_000;
/// Wall clock of the local writes (milliseconds since the epoch, late 2023).
const BASE: u64 = 1_700_000_000_000;
/// Remote writes come this much later, so they are newer than every local write.
const REMOTE_BASE: u64 = BASE + 1_000_000;
/// Overwrites of a full map come later still.
const OVERWRITE_BASE: u64 = BASE + 2_000_000;
/// The wall clock when remote records arrive: not behind any of them, so nothing counts as drift.
const REMOTE_WALL: u64 = REMOTE_BASE + N as u64;
const WRITERS: [&str; 3] = ["writer-a", "writer-b", "writer-c"];

fn node(id: &str) -> NodeId {
    NodeId::new(id).expect("a valid node id")
}

fn clock(id: &str) -> Hlc {
    Hlc::new(node(id), ClockConfig::default())
}

fn key(i: usize) -> Box<str> {
    format!("key-{i:05}").into_boxed_str()
}

fn int(i: usize) -> Value {
    Value::Int(i64::try_from(i).expect("small"))
}

fn millis(base: u64, i: usize) -> u64 {
    base + u64::try_from(i).expect("small")
}

/// Inputs shared by the benchmarks, built once (not timed).
struct Fixture {
    /// `key-00000` to `key-99999`.
    keys: Vec<Box<str>>,
    /// Every key written locally (value `Int(i)` at `BASE + i`), and the clock that wrote it.
    full: LwwMap,
    full_clock: Hlc,
    /// A newer record for every key (index-aligned with `keys`), from three writers in turn.
    remote: Vec<LwwRecord>,
    /// A snapshot of a map holding exactly the remote records.
    snapshot: Vec<u8>,
    /// An OR record for every key, from three writers in turn.
    or_remote: Vec<OrRecord>,
}

impl Fixture {
    fn new() -> Self {
        let keys: Vec<Box<str>> = (0..N).map(key).collect();
        let mut full = LwwMap::new();
        let mut full_clock = clock("local");
        for (i, k) in keys.iter().enumerate() {
            full.set(&mut full_clock, millis(BASE, i), k, int(i), None).expect("set");
        }
        let mut writers: Vec<Hlc> = WRITERS.iter().map(|w| clock(w)).collect();
        let remote: Vec<LwwRecord> = (0..N)
            .map(|i| LwwRecord {
                value: Some(int(i)),
                timestamp: writers[i % 3].now(millis(REMOTE_BASE, i)).expect("the clock has room"),
                ttl_ms: None,
            })
            .collect();
        let mut remote_map = LwwMap::new();
        let mut merge_clock = clock("local");
        for (k, r) in keys.iter().zip(&remote) {
            remote_map.merge(&mut merge_clock, REMOTE_WALL, k, r.clone()).expect("merge");
        }
        let snapshot = codec::encode_lww_snapshot(&remote_map);
        let or_remote = (0..N)
            .map(|i| OrRecord {
                value: int(i),
                timestamp: writers[i % 3].now(millis(REMOTE_BASE, i)).expect("the clock has room"),
                ttl_ms: None,
            })
            .collect();
        Self { keys, full, full_clock, remote, snapshot, or_remote }
    }

    /// The remote records paired with their keys, as `merge_all` takes them.
    fn remote_batch(&self) -> Vec<(Box<str>, LwwRecord)> {
        self.keys.iter().cloned().zip(self.remote.iter().cloned()).collect()
    }
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(Fixture::new);

const SAMPLES: u32 = 30;

// ---- benchmarks -------------------------------------------------------------------------------

/// The last-writer-wins map.
mod lww {
    use super::*;

    /// Local `set` of 100 000 new keys into an empty map.
    #[divan::bench(sample_count = SAMPLES, sample_size = 1)]
    fn set_into_empty(bencher: Bencher) {
        let f = &*FIXTURE;
        bencher.counter(ItemsCount::new(N)).with_inputs(|| (LwwMap::new(), clock("local"))).bench_local_values(
            |(mut map, mut clock)| {
                for (i, k) in f.keys.iter().enumerate() {
                    map.set(&mut clock, millis(BASE, i), k, int(i), None).expect("set");
                }
                map
            },
        );
    }

    /// Local `set` of 100 000 keys that are all present (every write replaces a record).
    #[divan::bench(sample_count = SAMPLES, sample_size = 1)]
    fn set_overwrite_full(bencher: Bencher) {
        let f = &*FIXTURE;
        bencher.counter(ItemsCount::new(N)).with_inputs(|| (f.full.clone(), f.full_clock.clone())).bench_local_values(
            |(mut map, mut clock)| {
                for (i, k) in f.keys.iter().enumerate() {
                    map.set(&mut clock, millis(OVERWRITE_BASE, i), k, int(i + 1), None).expect("set");
                }
                map
            },
        );
    }

    /// `set_many` of a batch of 100 000 new keys into an empty map (one wall time for the batch).
    #[divan::bench(sample_count = SAMPLES, sample_size = 1)]
    fn set_many_into_empty(bencher: Bencher) {
        let f = &*FIXTURE;
        bencher
            .counter(ItemsCount::new(N))
            .with_inputs(|| {
                let batch: Vec<(Box<str>, Value)> = f.keys.iter().cloned().zip((0..N).map(int)).collect();
                (LwwMap::new(), clock("local"), batch)
            })
            .bench_local_values(|(mut map, mut clock, batch)| {
                map.set_many(&mut clock, BASE, batch).expect("set_many");
                map
            });
    }

    /// `merge` of 100 000 remote records (three writers) into an empty map: all accepted.
    #[divan::bench(sample_count = SAMPLES, sample_size = 1)]
    fn merge_into_empty(bencher: Bencher) {
        let f = &*FIXTURE;
        bencher
            .counter(ItemsCount::new(N))
            .with_inputs(|| (LwwMap::new(), clock("local"), f.remote.clone()))
            .bench_local_values(|(mut map, mut clock, records)| {
                for (k, r) in f.keys.iter().zip(records) {
                    map.merge(&mut clock, REMOTE_WALL, k, r).expect("merge");
                }
                map
            });
    }

    /// `merge` of 100 000 newer remote records into a full map: all accepted, each replaces one.
    #[divan::bench(sample_count = SAMPLES, sample_size = 1)]
    fn merge_into_full(bencher: Bencher) {
        let f = &*FIXTURE;
        bencher
            .counter(ItemsCount::new(N))
            .with_inputs(|| (f.full.clone(), f.full_clock.clone(), f.remote.clone()))
            .bench_local_values(|(mut map, mut clock, records)| {
                for (k, r) in f.keys.iter().zip(records) {
                    map.merge(&mut clock, REMOTE_WALL, k, r).expect("merge");
                }
                map
            });
    }

    /// `merge` of 100 000 records the map already holds (a duplicate delivery): all rejected.
    #[divan::bench(sample_count = SAMPLES, sample_size = 1)]
    fn merge_duplicates(bencher: Bencher) {
        let f = &*FIXTURE;
        let records: Vec<LwwRecord> = f.keys.iter().map(|k| f.full.get_record(k).expect("present")).collect();
        bencher
            .counter(ItemsCount::new(N))
            .with_inputs(|| (f.full.clone(), f.full_clock.clone(), records.clone()))
            .bench_local_values(|(mut map, mut clock, records)| {
                for (k, r) in f.keys.iter().zip(records) {
                    map.merge(&mut clock, REMOTE_WALL, k, r).expect("merge");
                }
                map
            });
    }

    /// `merge_all` of a batch of 100 000 remote records into an empty map.
    #[divan::bench(sample_count = SAMPLES, sample_size = 1)]
    fn merge_all_into_empty(bencher: Bencher) {
        let f = &*FIXTURE;
        bencher
            .counter(ItemsCount::new(N))
            .with_inputs(|| (LwwMap::new(), clock("local"), f.remote_batch()))
            .bench_local_values(|(mut map, mut clock, batch)| {
                map.merge_all(&mut clock, REMOTE_WALL, batch).expect("merge_all");
                map
            });
    }

    /// `merge_all` of a batch of 100 000 newer remote records into a full map.
    #[divan::bench(sample_count = SAMPLES, sample_size = 1)]
    fn merge_all_into_full(bencher: Bencher) {
        let f = &*FIXTURE;
        bencher
            .counter(ItemsCount::new(N))
            .with_inputs(|| (f.full.clone(), f.full_clock.clone(), f.remote_batch()))
            .bench_local_values(|(mut map, mut clock, batch)| {
                map.merge_all(&mut clock, REMOTE_WALL, batch).expect("merge_all");
                map
            });
    }

    /// `get` of all 100 000 keys of a full map (a clone, like the other full-map benchmarks).
    #[divan::bench(sample_count = SAMPLES, sample_size = 1)]
    fn get(bencher: Bencher) {
        let f = &*FIXTURE;
        let map = f.full.clone();
        bencher.counter(ItemsCount::new(N)).bench_local(|| {
            let mut sum = 0i64;
            for k in &f.keys {
                if let Some(Value::Int(v)) = map.get(black_box(k), REMOTE_WALL) {
                    sum = sum.wrapping_add(v);
                }
            }
            sum
        });
    }
}

/// Snapshots of an LWW map of 100 000 records from three writers.
mod snapshot {
    use super::*;

    /// `codec::encode_lww_snapshot` of the whole map.
    #[divan::bench(sample_count = SAMPLES, sample_size = 1)]
    fn export(bencher: Bencher) {
        let f = &*FIXTURE;
        let mut map = LwwMap::new();
        map.merge_all(&mut clock("local"), REMOTE_WALL, f.remote_batch()).expect("merge_all");
        bencher
            .counter(ItemsCount::new(N))
            .counter(BytesCount::new(f.snapshot.len()))
            .bench_local(|| codec::encode_lww_snapshot(black_box(&map)));
    }

    /// `codec::decode_snapshot` alone (validation included), no map.
    #[divan::bench(sample_count = SAMPLES, sample_size = 1)]
    fn decode_only(bencher: Bencher) {
        let f = &*FIXTURE;
        bencher
            .counter(ItemsCount::new(N))
            .counter(BytesCount::new(f.snapshot.len()))
            .bench_local(|| codec::decode_snapshot(black_box(&f.snapshot)).expect("decode"));
    }

    /// `codec::decode_snapshot` then `LwwMap::merge_all` into a fresh map.
    #[divan::bench(sample_count = SAMPLES, sample_size = 1)]
    fn import(bencher: Bencher) {
        let f = &*FIXTURE;
        bencher
            .counter(ItemsCount::new(N))
            .counter(BytesCount::new(f.snapshot.len()))
            .with_inputs(|| (LwwMap::new(), clock("local")))
            .bench_local_values(|(mut map, mut clock)| {
                let Snapshot::Lww(records) = codec::decode_snapshot(&f.snapshot).expect("decode") else {
                    unreachable!("an LWW snapshot")
                };
                map.merge_all(&mut clock, REMOTE_WALL, records).expect("merge_all");
                map
            });
    }
}

/// The Merkle root.
mod root {
    use super::*;

    /// Rebuilds the whole tree from records: every record of a full map merged (`merge_all`) into a
    /// fresh map, then `root()`.
    #[divan::bench(sample_count = SAMPLES, sample_size = 1)]
    fn rebuild_from_records(bencher: Bencher) {
        let f = &*FIXTURE;
        let records: Vec<(Box<str>, LwwRecord)> =
            f.full.records().into_iter().map(|(k, r)| (Box::from(k), r)).collect();
        let expected = f.full.root();
        bencher
            .counter(ItemsCount::new(N))
            .with_inputs(|| (LwwMap::new(), clock("local"), records.clone()))
            .bench_local_values(|(mut map, mut clock, records)| {
                map.merge_all(&mut clock, REMOTE_WALL, records).expect("merge_all");
                assert_eq!(map.root(), expected);
                map
            });
    }

    /// One local `set` into a 100 000-key map, then `root()`: the per-update cost of a fresh root.
    #[divan::bench]
    fn after_single_update(bencher: Bencher) {
        let f = &*FIXTURE;
        let (mut map, mut clock) = (f.full.clone(), f.full_clock.clone());
        let mut i = 0usize;
        bencher.counter(ItemsCount::new(1usize)).bench_local(|| {
            let k = &f.keys[i % N];
            map.set(&mut clock, millis(OVERWRITE_BASE, i), k, int(i), None).expect("set");
            i += 1;
            map.root()
        });
    }
}

/// The observed-remove map.
mod or_map {
    use super::*;

    /// Local `add` of one record to each of 100 000 new keys.
    #[divan::bench(sample_count = SAMPLES, sample_size = 1)]
    fn add_into_empty(bencher: Bencher) {
        let f = &*FIXTURE;
        bencher.counter(ItemsCount::new(N)).with_inputs(|| (OrMap::new(), clock("local"))).bench_local_values(
            |(mut map, mut clock)| {
                for (i, k) in f.keys.iter().enumerate() {
                    map.add(&mut clock, millis(BASE, i), k, int(i), None).expect("add");
                }
                map
            },
        );
    }

    /// `apply` of 100 000 remote records (one per key, three writers) into an empty map.
    #[divan::bench(sample_count = SAMPLES, sample_size = 1)]
    fn apply_into_empty(bencher: Bencher) {
        let f = &*FIXTURE;
        bencher
            .counter(ItemsCount::new(N))
            .with_inputs(|| (OrMap::new(), clock("local"), f.or_remote.clone()))
            .bench_local_values(|(mut map, mut clock, records)| {
                for (k, r) in f.keys.iter().zip(records) {
                    map.apply(&mut clock, REMOTE_WALL, k, r).expect("apply");
                }
                map
            });
    }
}

// ---- the memory and size report ---------------------------------------------------------------

/// Small values of one shape, and how many payload bytes each carries.
#[derive(Clone, Copy)]
enum Shape {
    /// `Value::Int(i)`: the payload is the 8-byte `i64`.
    Int,
    /// `Value::String("v-<i>")` of 7 bytes: the payload is its 7 UTF-8 bytes.
    ShortString,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Self::Int => "Int",
            Self::ShortString => "7-byte string",
        }
    }

    fn value(self, i: usize, text: &mut String) -> Value {
        match self {
            Self::Int => int(i),
            Self::ShortString => {
                text.clear();
                let _ = write!(text, "v-{i:05}");
                Value::from(text.as_str())
            }
        }
    }

    fn payload(self, value: &Value) -> usize {
        match value {
            Value::Int(_) => 8,
            Value::String(s) => s.len(),
            _ => unreachable!("only Int and String values here"),
        }
    }
}

/// Builds an LWW map of `N` records from three writers (writer `i % 3` writes key `i` at `BASE + i`)
/// with counting on. Keys are formatted into one reused buffer, so the only heap the loop leaves
/// behind is the map's. Returns the map, the heap it took, and the key and value payload bytes.
fn build_counted(shape: Shape) -> (LwwMap, Heap, usize, usize) {
    let mut writers: Vec<Hlc> = WRITERS.iter().map(|w| clock(w)).collect();
    let (mut key_buf, mut text) = (String::with_capacity(16), String::with_capacity(16));
    let (mut key_bytes, mut payload_bytes) = (0, 0);
    let (map, heap) = counted(|| {
        let mut map = LwwMap::new();
        for i in 0..N {
            key_buf.clear();
            let _ = write!(key_buf, "key-{i:05}");
            let value = shape.value(i, &mut text);
            key_bytes += key_buf.len();
            payload_bytes += shape.payload(&value);
            map.set(&mut writers[i % 3], millis(BASE, i), &key_buf, value, None).expect("set");
        }
        map
    });
    (map, heap, key_bytes, payload_bytes)
}

fn per(total: f64) -> f64 {
    total / N as f64
}

fn verdict(value: f64, target: f64) -> &'static str {
    if value < target { "ok" } else { "MISSED" }
}

fn lww_memory(shape: Shape) -> LwwMap {
    let (map, heap, key_bytes, payload_bytes) = build_counted(shape);
    let live = per(heap.live as f64);
    let overhead = live - per(key_bytes as f64) - per(payload_bytes as f64);
    println!(
        "memory: lww overhead per record = {overhead:.1} bytes (target < 120: {}) [{} values: {live:.1} heap bytes \
         per record requested from the allocator, minus {:.1} key bytes (UTF-8 length of \"key-NNNNN\") and {:.1} \
         value payload bytes]",
        verdict(overhead, 120.0),
        shape.name(),
        per(key_bytes as f64),
        per(payload_bytes as f64),
    );
    if heap.usable != 0 {
        let usable = per(heap.usable as f64);
        println!(
            "memory:   same map as glibc malloc hands it out (malloc_usable_size, rounding included, chunk headers \
             excluded): {usable:.1} bytes per record, {:.1} beyond key and payload",
            usable - per(key_bytes as f64) - per(payload_bytes as f64),
        );
    }
    map
}

fn snapshot_size(shape: Shape, map: &LwwMap) {
    let bytes = codec::encode_lww_snapshot(map);
    let mut key_bytes = 0usize;
    let mut value_bytes = 0usize;
    for (key, record) in map.records() {
        key_bytes += key.len();
        if let Some(value) = &record.value {
            value_bytes += postcard::to_allocvec(value).expect("encode a value").len();
        }
    }
    // Signed: front-coded keys and value columns can make a snapshot smaller than its keys and
    // values written one by one, and then the "overhead" is negative.
    let overhead = per(bytes.len() as f64 - key_bytes as f64 - value_bytes as f64);
    println!(
        "size: lww snapshot overhead per record = {overhead:.1} bytes (target < 24: {}) [{} values, {} writers: \
         {} bytes = {:.1} per record, minus {:.1} key bytes (UTF-8 length, not its length prefix) and {:.1} \
         value-encoding bytes (postcard of the Value alone)]",
        verdict(overhead, 24.0),
        shape.name(),
        WRITERS.len(),
        bytes.len(),
        per(bytes.len() as f64),
        per(key_bytes as f64),
        per(value_bytes as f64),
    );
}

/// Allocator calls per operation of the hot paths (temporary allocations included).
fn alloc_calls() {
    let f = &*FIXTURE;
    let (mut map, mut local) = (LwwMap::new(), clock("local"));
    let ((), set_new) = counted(|| {
        for (i, k) in f.keys.iter().enumerate() {
            map.set(&mut local, millis(BASE, i), k, int(i), None).expect("set");
        }
    });
    let ((), set_over) = counted(|| {
        for (i, k) in f.keys.iter().enumerate() {
            map.set(&mut local, millis(OVERWRITE_BASE, i), k, int(i), None).expect("set");
        }
    });
    let records = f.remote.clone();
    let (mut fresh, mut merge_clock) = (LwwMap::new(), clock("local"));
    let ((), merge_new) = counted(|| {
        for (k, r) in f.keys.iter().zip(records) {
            fresh.merge(&mut merge_clock, REMOTE_WALL, k, r).expect("merge");
        }
    });
    let (_, get) = counted(|| f.keys.iter().filter(|k| map.get(k, REMOTE_WALL).is_some()).count());
    let (mut or, mut or_clock) = (OrMap::new(), clock("local"));
    let ((), or_add) = counted(|| {
        for (i, k) in f.keys.iter().enumerate() {
            or.add(&mut or_clock, millis(BASE, i), k, int(i), None).expect("add");
        }
    });
    println!(
        "allocs: allocator calls per op: lww set (new key) {:.2}, lww set (overwrite) {:.2}, lww merge (new key) \
         {:.2}, lww get {:.2}, or add (new key) {:.2} (table growth included, amortised)",
        per(set_new.calls as f64),
        per(set_over.calls as f64),
        per(merge_new.calls as f64),
        per(get.calls as f64),
        per(or_add.calls as f64),
    );
    println!(
        "memory: or map heap per record beyond one copy of the key and the 8-byte payload (one Int record per key) \
         = {:.1} bytes requested (info, no target)",
        per(or_add.live as f64) - per(f.keys.iter().map(|k| k.len()).sum::<usize>() as f64) - 8.0,
    );
}

fn memory_report() {
    println!("onegrid-core: memory and size report, {N} records");
    for shape in [Shape::Int, Shape::ShortString] {
        let map = lww_memory(shape);
        snapshot_size(shape, &map);
    }
    alloc_calls();
    println!();
}

fn main() {
    // `--list` is how test runners enumerate benchmarks: print nothing else then.
    if !std::env::args().any(|a| a == "--list") {
        memory_report();
    }
    divan::main();
}
