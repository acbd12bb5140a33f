//! A count at the front of a list is untrusted until its items arrive, and an item takes far more
//! room in memory than on the wire. Each decoder is fed a few KB claiming a huge count (of list
//! items, map entries, nodes, keys, records, shapes, requests...) and must refuse it without
//! reserving memory out of proportion to its input. This test binary counts every allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use onegrid_core::Encoded;
use onegrid_core::codec::{
    canonicalize_value, decode_reply, decode_request, decode_snapshot, decode_stored, put_varint, take_value,
};

/// Forwards to `System`, keeping the largest single request for memory.
struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);
/// Tests run on threads of one process and count every thread's allocations: each test holds
/// this from its first line, so no other test lands inside its measurement.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

// SAFETY: every call is forwarded to `System` unchanged; the counter is side bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// The bytes after each count: 32 KiB of 0xff, which no item can start with (every length,
/// number and tag read from it is an overlong varint), so decoding fails at the first item.
const FILLER: usize = 32 << 10;

/// What a decoder may allocate at once for these inputs: a copy of a string or of the bytes, a
/// reservation for a claimed count (capped at 64 KiB). Before the fix a count reserved room for
/// an item per byte left, 16 to 88 bytes of memory each; 64 times the input, a looser bound,
/// would have caught only the OR records (80 and 88 bytes).
fn limit(input: usize) -> usize {
    4 * input + (64 << 10)
}

/// Feeds `prefix`, a count and the filler to `decode`, for counts of 2^32 - 1, 10^9 and one less
/// than the filler's length (decoders that check a count against the bytes left reserve only for
/// that one; one filler byte is left over so bytes of that length do not decode): each must come
/// back an error, having made no allocation over [`limit`]. Returns what failed.
fn check(case: &str, prefix: &[u8], decode: impl Fn(&[u8]) -> Result<(), String>) -> Vec<String> {
    let mut failed = Vec::new();
    for claim in [u64::from(u32::MAX), 1_000_000_000, FILLER as u64 - 1] {
        let mut input = prefix.to_vec();
        put_varint(&mut input, claim);
        input.resize(input.len() + FILLER, 0xff);
        LARGEST.store(0, Relaxed);
        let result = decode(&input);
        let largest = LARGEST.load(Relaxed);
        match result {
            Ok(()) => failed.push(format!("{case} (count {claim}): decoded")),
            Err(e) if e.is_empty() => failed.push(format!("{case} (count {claim}): an error without a reason")),
            Err(_) => {}
        }
        if largest > limit(input.len()) {
            failed.push(format!(
                "{case} (count {claim}): an allocation of {largest} bytes for {} bytes of input",
                input.len()
            ));
        }
    }
    failed
}

fn run(cases: &[(&str, &[u8])], decode: impl Fn(&[u8]) -> Result<(), String> + Copy) -> Vec<String> {
    cases.iter().flat_map(|(case, prefix)| check(case, prefix, decode)).collect()
}

fn assert_none(failed: &[String]) {
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

fn err<T, E: std::fmt::Display>(result: Result<T, E>) -> Result<(), String> {
    result.map(|_| ()).map_err(|e| e.to_string())
}

#[test]
fn value_counts_reserve_little() {
    let _one = ONE_AT_A_TIME.lock();
    let cases: &[(&str, &[u8])] =
        &[("list items", &[6]), ("map entries", &[7]), ("string bytes", &[4]), ("bytes", &[6, 2, 5])];
    let mut failed = run(cases, |b| err(take_value(b)));
    failed.extend(run(cases, |b| err(Encoded::from_bytes(b))));
    failed.extend(run(&[("map entries to sort", &[7])], |b| err(canonicalize_value(b, &mut Vec::new()))));
    assert_none(&failed);
}

#[test]
fn or_snapshot_counts_reserve_little() {
    let _one = ONE_AT_A_TIME.lock();
    assert_none(&run(
        &[
            ("OR snapshot nodes", &[1, 1]),
            ("OR snapshot keys", &[1, 1, 0]),
            ("OR snapshot records", &[1, 1, 0, 1, 1, b'a']),
            ("OR snapshot record value list", &[1, 1, 0, 1, 1, b'a', 1, 6]),
            ("OR snapshot tombstones", &[1, 1, 0, 0]),
        ],
        |b| err(decode_snapshot(b)),
    ));
}

#[test]
fn lww_snapshot_tables_reserve_little() {
    let _one = ONE_AT_A_TIME.lock();
    // No nodes, no records, eight empty columns, then the shape table.
    let shapes: &[u8] = &[1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let one_shape = [shapes, &[1]].concat();
    assert_none(&run(
        &[("LWW snapshot nodes", &[1, 2]), ("LWW snapshot shapes", shapes), ("LWW snapshot shape keys", &one_shape)],
        |b| err(decode_snapshot(b)),
    ));
}

#[test]
fn stored_value_counts_reserve_little() {
    let _one = ONE_AT_A_TIME.lock();
    assert_none(&run(
        &[
            ("stored OR records", &[1, 1]),
            ("stored OR tombstones", &[1, 2]),
            ("stored LWW value list", &[1, 0, 1, 6]),
            ("stored LWW value map", &[1, 0, 1, 7]),
        ],
        |b| err(decode_stored(b)),
    ));
}

#[test]
fn request_counts_reserve_little() {
    let _one = ONE_AT_A_TIME.lock();
    // Version, grid 0, wall 0, then the command's variant.
    assert_none(&run(
        &[
            ("SetMany entries", &[1, 0, 0, 3, 1, b'm']),
            ("Set value list", &[1, 0, 0, 2, 1, b'm', 1, b'k', 6]),
            ("Import snapshot bytes", &[1, 0, 0, 11, 1, b'm']),
            ("Storage answers", &[1, 0, 0, 16]),
            ("Storage answer keys", &[1, 0, 0, 16, 1, 0, 0]),
            ("Storage answer values", &[1, 0, 0, 16, 1, 0, 1]),
        ],
        |b| err(decode_request(b)),
    ));
}

#[test]
fn reply_counts_reserve_little() {
    let _one = ONE_AT_A_TIME.lock();
    assert_none(&run(
        &[
            ("reply values", &[1, 3]),
            ("reply value list", &[1, 2, 1, 6]),
            ("reply tags", &[1, 4]),
            ("reply bytes", &[1, 6]),
            ("reply storage requests", &[1, 10]),
            ("reply LoadAll keys", &[1, 10, 1, 0, 1, 1, b'm']),
            ("reply StoreAll entries", &[1, 10, 1, 0, 2, 1, b'm']),
            ("reply DeleteAll keys", &[1, 10, 1, 0, 3, 1, b'm']),
            ("reply storage events", &[1, 10, 0]),
        ],
        |b| err(decode_reply(b)),
    ));
}
