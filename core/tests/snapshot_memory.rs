//! A column-wise snapshot lets a few bytes stand for many (shared key prefixes, strings and shapes
//! given once), so its decoder must not spend memory out of proportion to its input on bytes it
//! then refuses. This test binary counts every allocation to check that.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use onegrid_core::codec::{decode_lww_snapshot_raw, encode_lww_rows};

/// Forwards to `System`, keeping the bytes in use and their peak.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// Tests run on threads of one process and count every thread's allocations: each test holds
/// this from its first line, so no other test's setup lands inside its measurement.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn grew(by: usize) {
    let now = IN_USE.fetch_add(by, Relaxed) + by;
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; the counters are side bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            grew(new_size - layout.size());
        } else {
            IN_USE.fetch_sub(layout.size() - new_size, Relaxed);
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// The most memory in use at once while decoding `bytes`, beyond what was in use before, and
/// whether they decoded.
fn peak_while_decoding(bytes: &[u8]) -> (usize, bool) {
    let before = IN_USE.load(Relaxed);
    PEAK.store(before, Relaxed);
    let decoded = decode_lww_snapshot_raw(bytes).is_ok();
    (PEAK.load(Relaxed) - before, decoded)
}

#[test]
fn trailing_bytes_are_refused_before_any_record_is_built() {
    let _one = ONE_AT_A_TIME.lock();
    // Keys "a", "aa", "aaa", ...: 4 000 of them take about 4 KB here and 8 MB decoded.
    let keys: Vec<String> = (1..=4_000).map(|i| "a".repeat(i)).collect();
    let rows: Vec<_> = keys.iter().map(|k| (k.as_str(), None, 5, 0, 0, None)).collect();
    let mut bytes = encode_lww_rows(&["n1"], &rows);
    let (peak, decoded) = peak_while_decoding(&bytes);
    assert!(decoded && peak > 8_000_000, "the untouched snapshot decodes ({peak} bytes)");
    bytes.push(0);
    let (peak, decoded) = peak_while_decoding(&bytes);
    assert!(!decoded);
    assert!(peak < 20 * bytes.len(), "{} bytes refused after allocating {peak}", bytes.len());
}

#[test]
fn the_record_count_reserves_nothing_before_records_are_read() {
    let _one = ONE_AT_A_TIME.lock();
    // 100 000 records whose writer is missing from the node table: refused at the first record,
    // before room for 100 000 decoded records (about 80 bytes each) is taken.
    let keys: Vec<String> = (0..100_000).map(|i| format!("{i:06}")).collect();
    let rows: Vec<_> = keys.iter().map(|k| (k.as_str(), None, 5, 0, 1, None)).collect();
    let bytes = encode_lww_rows(&["n1"], &rows);
    let (peak, decoded) = peak_while_decoding(&bytes);
    assert!(!decoded);
    assert!(peak < 4 * bytes.len(), "{} bytes refused after allocating {peak}", bytes.len());
}
