//! The LWW snapshot layout: records sorted by key, stored column by column.
//!
//! Row by row, a snapshot of many small records repeats itself: key prefixes, the same object
//! keys, timestamps one apart, the same writer. Column by column each of those becomes a short
//! run: keys are front-coded against the previous key; numbers are stored as runs of equal
//! differences (a counter that goes up by one is a single run); objects are grouped by shape (their
//! key list, written once) into one column per field; and a field's values are split by type, with
//! booleans packed as bits and each string written once per column; a map of many small objects
//! takes a few bytes a record (BENCHMARKS.md has the figures).
//!
//! After `[FORMAT_VERSION, LWW_COLUMNS_TAG]`: the writers' node ids (count, then ids), the record
//! count, then length-prefixed columns, one value per record each: key prefix lengths, key suffix
//! lengths, the key suffixes, millis, counters, node indexes, TTLs (0 for none) and shapes (0 for a
//! tombstone, 1 for a value in the plain column, 2 + i for an object of shape i). Then the shape
//! table (count, then each shape's key count and keys), the plain column, and each shape's field
//! columns in order. A value column has seven length-prefixed parts: types (the value's tag; 5 for
//! bytes, lists and objects, which are kept whole), integers (zigzag, as number runs), booleans
//! (bits), floats (8 bytes each), strings (0 for a new one, else the number of an earlier one), the
//! new strings' text, and the whole values.
//!
//! The decoder rebuilds each value's encoding from its parts, checking each part as it reads it
//! (finite floats, UTF-8 strings, sorted object keys, whole values as any value is checked), and
//! checks that every column holds exactly as many values as it should. Because shared prefixes,
//! strings and shapes let a few bytes stand for many, it refuses trailing bytes before building any
//! record and caps the keys and values a snapshot decodes to at the byte ABI's message limit or 64
//! times its size, whichever is larger.

use alloc::string::String;
use alloc::vec::Vec;

use hashbrown::HashMap;

use crate::codec::read::{Scan, unzigzag};
use crate::codec::value::{Encoded, scan_value};
use crate::codec::write::{put_bytes, put_str, put_strs, put_varint, varint_len, zigzag};
use crate::codec::{FORMAT_VERSION, MAX_MESSAGE_BYTES, in_decode, node_at, out_of_order, trailing};
use crate::error::Error;
use crate::hlc::{NodeId, Timestamp};
use crate::lww::{RawLwwRecord, RawLwwSnapshot};
use crate::map_common::Hasher;

/// The variant tag of a column-wise LWW snapshot (after the OR snapshot's 1).
pub(crate) const LWW_COLUMNS_TAG: u8 = 2;

/// Objects of more key lists than this are kept whole in the plain column.
const MAX_SHAPES: usize = 64;

/// The type, in a value column, of a value kept whole: bytes, a list or an object. The other types
/// are their own value tags, 0 (null) to 4 (string).
const WHOLE: u64 = 5;

/// One record as the encoder takes it.
pub(crate) struct Row<'a> {
    pub key: &'a str,
    /// The encoded value (canonical, as a map holds it), `None` for a tombstone.
    pub value: Option<&'a [u8]>,
    pub millis: u64,
    pub counter: u32,
    pub node: u32,
    pub ttl_ms: Option<u64>,
}

// ---- encoding ----------------------------------------------------------------------------------

/// Numbers as runs of equal differences: `(run length, zigzag difference)` pairs.
#[derive(Default)]
struct Runs {
    out: Vec<u8>,
    previous: u64,
    delta: u64,
    run: u64,
}

impl Runs {
    #[inline(never)]
    fn push(&mut self, n: u64) {
        let delta = zigzag(n.wrapping_sub(self.previous) as i64);
        self.previous = n;
        if self.run > 0 && delta == self.delta {
            self.run += 1;
        } else {
            self.end_run();
            (self.delta, self.run) = (delta, 1);
        }
    }

    /// Writes the run so far (none before the first number).
    #[inline(never)]
    fn end_run(&mut self) {
        if self.run > 0 {
            put_varint(&mut self.out, self.run);
            put_varint(&mut self.out, self.delta);
        }
    }

    /// Appends the column, length first. The last run goes straight to `out`, so a column of one
    /// run (every column of a one-record snapshot) never allocates a buffer of its own.
    #[inline(never)]
    fn finish_into(self, out: &mut Vec<u8>) {
        let last = if self.run > 0 { varint_len(self.run) + varint_len(self.delta) } else { 0 };
        put_varint(out, (self.out.len() + last) as u64);
        out.extend_from_slice(&self.out);
        if self.run > 0 {
            put_varint(out, self.run);
            put_varint(out, self.delta);
        }
    }
}

/// Booleans, eight to a byte, first in the lowest bit.
#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    count: usize,
}

impl Bits {
    fn push(&mut self, bit: bool) {
        if self.count.is_multiple_of(8) {
            self.out.push(0);
        }
        if bit && let Some(last) = self.out.last_mut() {
            *last |= 1 << (self.count % 8);
        }
        self.count += 1;
    }
}

/// The seven parts of one value column, while encoding.
#[derive(Default)]
struct ValueColumn<'a> {
    types: Runs,
    ints: Runs,
    bools: Bits,
    floats: Vec<u8>,
    string_ids: Runs,
    strings: Vec<u8>,
    whole: Vec<u8>,
    /// Strings of this column so far, numbered from 1 (keyed by `&str`, as the node table is, so
    /// the module carries one copy of that hash table's code).
    seen: HashMap<&'a str, u32, Hasher>,
    /// The last string and its number: a string repeated from record to record skips the table.
    last: (&'a str, u32),
}

impl<'a> ValueColumn<'a> {
    /// Adds one encoded value (tag and payload) that `scan_value` measured.
    #[inline(never)]
    fn push(&mut self, value: &'a [u8]) {
        let tag = value.first().copied().unwrap_or(0);
        let payload = value.get(1..).unwrap_or_default();
        match tag {
            0 => self.types.push(0),
            1 => {
                self.types.push(1);
                self.bools.push(payload.first() == Some(&1));
            }
            2 => {
                self.types.push(2);
                let mut scan = Scan { bytes: payload, at: 0, canonical: true };
                self.ints.push(scan.varint().unwrap_or(0));
            }
            3 => {
                self.types.push(3);
                self.floats.extend_from_slice(payload);
            }
            4 => {
                self.types.push(4);
                let mut scan = Scan { bytes: payload, at: 0, canonical: true };
                let text = scan.text().unwrap_or_default();
                let next = self.seen.len() as u32 + 1;
                let id = if self.last.1 != 0 && self.last.0 == text {
                    self.last.1
                } else {
                    *self.seen.entry(text).or_insert(next)
                };
                self.last = (text, id);
                if id == next {
                    self.string_ids.push(0);
                    put_str(&mut self.strings, text);
                } else {
                    self.string_ids.push(u64::from(id));
                }
            }
            _ => {
                self.types.push(WHOLE);
                self.whole.extend_from_slice(value);
            }
        }
    }

    fn finish(self, out: &mut Vec<u8>) {
        self.types.finish_into(out);
        self.ints.finish_into(out);
        put_bytes(out, &self.bools.out);
        put_bytes(out, &self.floats);
        self.string_ids.finish_into(out);
        put_bytes(out, &self.strings);
        put_bytes(out, &self.whole);
    }
}

/// Reads an object's keys and encoded values into `keys` and `values` (cleared first); false if
/// `value` is not an object. The vectors are reused from record to record.
#[inline(never)]
fn object_fields<'a>(value: &'a [u8], keys: &mut Vec<&'a [u8]>, values: &mut Vec<&'a [u8]>) -> bool {
    keys.clear();
    values.clear();
    let Some((&7, body)) = value.split_first() else { return false };
    let mut scan = Scan { bytes: body, at: 0, canonical: true };
    let Ok(count) = scan.len() else { return false };
    for _ in 0..count {
        let Ok(key) = scan.text() else { return false };
        keys.push(key.as_bytes());
        let start = scan.at;
        let Ok((len, _)) = scan_value(&body[start..]) else { return false };
        scan.at += len;
        values.push(&body[start..scan.at]);
    }
    true
}

/// Appends a column-wise snapshot of `rows` (sorted by key) written by `nodes` to `out`.
pub(crate) fn encode<'a>(nodes: &[&str], rows: &[Row<'a>], out: &mut Vec<u8>) {
    out.extend_from_slice(&[FORMAT_VERSION, LWW_COLUMNS_TAG]);
    put_strs(out, nodes);
    put_varint(out, rows.len() as u64);

    let (mut prefixes, mut suffix_lens, mut suffixes) = (Runs::default(), Runs::default(), Vec::new());
    let (mut millis, mut counters, mut node_ids, mut ttls) =
        (Runs::default(), Runs::default(), Runs::default(), Runs::default());
    let mut shape_ids = Runs::default();
    let mut shapes: Vec<Vec<&'a [u8]>> = Vec::new();
    let mut fields: Vec<Vec<ValueColumn<'a>>> = Vec::new();
    let mut plain = ValueColumn::default();
    let mut previous_key: &[u8] = &[];
    let (mut keys, mut values): (Vec<&'a [u8]>, Vec<&'a [u8]>) = (Vec::new(), Vec::new());
    let mut last_shape = 0;
    for row in rows {
        let key = row.key.as_bytes();
        let shared = key.iter().zip(previous_key).take_while(|(a, b)| a == b).count();
        prefixes.push(shared as u64);
        suffix_lens.push((key.len() - shared) as u64);
        suffixes.extend_from_slice(&key[shared..]);
        previous_key = key;
        millis.push(row.millis);
        counters.push(u64::from(row.counter));
        node_ids.push(u64::from(row.node));
        ttls.push(row.ttl_ms.unwrap_or(0));

        let Some(value) = row.value else {
            shape_ids.push(0);
            continue;
        };
        let shape = if object_fields(value, &mut keys, &mut values) {
            let found = if shapes.get(last_shape) == Some(&keys) {
                Some(last_shape)
            } else {
                shapes.iter().position(|s| *s == keys)
            };
            match found {
                Some(index) => Some(index),
                None if shapes.len() < MAX_SHAPES => {
                    fields.push(keys.iter().map(|_| ValueColumn::default()).collect());
                    shapes.push(keys.clone());
                    Some(shapes.len() - 1)
                }
                None => None,
            }
        } else {
            None
        };
        match shape {
            Some(index) => {
                last_shape = index;
                shape_ids.push(index as u64 + 2);
                for (column, value) in fields[index].iter_mut().zip(&values) {
                    column.push(value);
                }
            }
            None => {
                shape_ids.push(1);
                plain.push(value);
            }
        }
    }

    for runs in [prefixes, suffix_lens] {
        runs.finish_into(out);
    }
    put_bytes(out, &suffixes);
    for runs in [millis, counters, node_ids, ttls, shape_ids] {
        runs.finish_into(out);
    }
    put_varint(out, shapes.len() as u64);
    for keys in &shapes {
        put_varint(out, keys.len() as u64);
        for key in keys {
            put_bytes(out, key);
        }
    }
    plain.finish(out);
    for column in fields.into_iter().flatten() {
        column.finish(out);
    }
}

// ---- decoding ----------------------------------------------------------------------------------

type Reason = &'static str;

/// A decoding failure: what was wrong, or a value's own error.
struct Bad(Error);

impl From<Reason> for Bad {
    #[inline(never)]
    fn from(reason: Reason) -> Self {
        Self(Error::Decode { what: "snapshot", reason: reason.into() })
    }
}

/// Reads back [`Runs`].
struct RunsReader<'a> {
    scan: Scan<'a>,
    previous: u64,
    delta: u64,
    left: u64,
}

impl<'a> RunsReader<'a> {
    fn new(part: &'a [u8]) -> Self {
        Self { scan: Scan { bytes: part, at: 0, canonical: true }, previous: 0, delta: 0, left: 0 }
    }

    /// The next number: inline, as it is a decrement and an add but for the first of a run.
    #[inline]
    fn next(&mut self) -> Result<u64, Reason> {
        if self.left == 0 {
            self.start_run()?;
        }
        self.left -= 1;
        self.previous = self.previous.wrapping_add(self.delta);
        Ok(self.previous)
    }

    /// Reads the next run (out of line: the module keeps one copy for every column).
    #[inline(never)]
    fn start_run(&mut self) -> Result<(), Reason> {
        self.left = self.scan.varint()?;
        if self.left == 0 {
            return Err("a column has a run of no numbers");
        }
        self.delta = unzigzag(self.scan.varint()?) as u64;
        Ok(())
    }

    fn finish(&self) -> Result<(), Reason> {
        if self.left == 0 && self.scan.at == self.scan.bytes.len() { Ok(()) } else { Err(LEFT_OVER) }
    }
}

const LEFT_OVER: Reason = "a column holds more than its records use";
const UNSORTED: Reason = "map keys must be unique and sorted";

/// Reads back one [`ValueColumn`], value by value, as encoded values.
struct ValueReader<'a> {
    types: RunsReader<'a>,
    ints: RunsReader<'a>,
    bools: Scan<'a>,
    bools_read: usize,
    floats: Scan<'a>,
    string_ids: RunsReader<'a>,
    strings: Scan<'a>,
    whole: Scan<'a>,
    seen: Vec<&'a str>,
    /// How deep its values sit: 0 in the plain column, 1 in an object's field.
    depth: usize,
}

#[inline(never)]
fn part<'a>(scan: &mut Scan<'a>) -> Result<&'a [u8], Reason> {
    let len = scan.len()?;
    scan.take(len)
}

fn part_scan<'a>(scan: &mut Scan<'a>) -> Result<Scan<'a>, Reason> {
    Ok(Scan { bytes: part(scan)?, at: 0, canonical: true })
}

impl<'a> ValueReader<'a> {
    #[inline(never)]
    fn new(scan: &mut Scan<'a>, depth: usize) -> Result<Self, Reason> {
        Ok(Self {
            types: RunsReader::new(part(scan)?),
            ints: RunsReader::new(part(scan)?),
            bools: part_scan(scan)?,
            bools_read: 0,
            floats: part_scan(scan)?,
            string_ids: RunsReader::new(part(scan)?),
            strings: part_scan(scan)?,
            whole: part_scan(scan)?,
            seen: Vec::new(),
            depth,
        })
    }

    /// Appends the next value's encoding to `out`.
    #[inline(never)]
    fn next(&mut self, out: &mut Vec<u8>) -> Result<(), Reason> {
        match self.types.next()? {
            0 => out.push(0),
            1 => {
                let byte = self.bools.bytes.get(self.bools_read / 8).ok_or("a column is missing booleans")?;
                out.extend_from_slice(&[1, (byte >> (self.bools_read % 8)) & 1]);
                self.bools_read += 1;
            }
            2 => {
                out.push(2);
                put_varint(out, self.ints.next()?);
            }
            3 => {
                let bytes = self.floats.take(8)?;
                let float = f64::from_le_bytes(bytes.try_into().map_err(|_| "it is truncated")?);
                if !float.is_finite() {
                    return Err("NaN and infinities are not allowed");
                }
                out.push(3);
                out.extend_from_slice(bytes);
            }
            4 => {
                let text = match self.string_ids.next()? {
                    0 => {
                        let text = self.strings.text()?;
                        self.seen.push(text);
                        text
                    }
                    id => *usize::try_from(id - 1)
                        .ok()
                        .and_then(|i| self.seen.get(i))
                        .ok_or("a string refers to one not yet given")?,
                };
                out.push(4);
                put_str(out, text);
            }
            WHOLE => {
                let start = self.whole.at;
                self.whole.value(self.depth)?;
                if !self.whole.canonical {
                    return Err(UNSORTED);
                }
                out.extend_from_slice(&self.whole.bytes[start..self.whole.at]);
            }
            _ => return Err("a value has an unknown type"),
        }
        Ok(())
    }

    fn finish(&self) -> Result<(), Reason> {
        self.types.finish()?;
        self.ints.finish()?;
        self.string_ids.finish()?;
        // Every boolean byte is used, and the bits past the last boolean are zero.
        let (bools, read) = (self.bools.bytes, self.bools_read);
        let padding = if read % 8 == 0 { 0 } else { bools.last().map_or(0, |last| last >> (read % 8)) };
        if bools.len() != read.div_ceil(8) {
            return Err(LEFT_OVER);
        }
        if padding != 0 {
            return Err("a column has bits set after its last boolean");
        }
        for scan in [&self.floats, &self.strings, &self.whole] {
            if scan.at != scan.bytes.len() {
                return Err(LEFT_OVER);
            }
        }
        Ok(())
    }
}

/// Decodes the body after `[FORMAT_VERSION, LWW_COLUMNS_TAG]`: node ids, keys (UTF-8, not
/// reserved, strictly increasing), timestamps, TTLs and values (each rebuilt encoding checked as
/// any snapshot value is), and that every column holds exactly what its records use.
pub(crate) fn decode(scan: &mut Scan<'_>) -> Result<RawLwwSnapshot, Error> {
    decode_columns(scan).map_err(|Bad(e)| e)
}

fn decode_columns<'a>(scan: &mut Scan<'a>) -> Result<RawLwwSnapshot, Bad> {
    let in_snapshot = |e: Error| Bad(in_decode("snapshot")(e));
    // The tables' counts are checked against the bytes left, and reserve no more than those hold:
    // a node id or a key is a length at least, a shape its key count.
    let node_count = scan.len()?;
    let mut nodes = Vec::with_capacity(scan.capacity_for::<NodeId>(node_count, 1));
    for _ in 0..node_count {
        nodes.push(NodeId::new(scan.text()?).map_err(in_snapshot)?);
    }
    let count = scan.varint()?;
    let mut prefixes = RunsReader::new(part(scan)?);
    let mut suffix_lens = RunsReader::new(part(scan)?);
    let mut suffixes = part_scan(scan)?;
    // Keys are unique and sorted, so each but the first (which may be "") has a suffix of at least
    // one byte: a bound on the count before anything is allocated for it.
    let count = usize::try_from(count)
        .ok()
        .filter(|&n| n <= suffixes.bytes.len() + 1)
        .ok_or("the record count is larger than the keys allow")?;
    let mut millis = RunsReader::new(part(scan)?);
    let mut counters = RunsReader::new(part(scan)?);
    let mut node_ids = RunsReader::new(part(scan)?);
    let mut ttls = RunsReader::new(part(scan)?);
    let mut shape_ids = RunsReader::new(part(scan)?);
    let shape_count = scan.len()?;
    let mut shapes: Vec<Vec<&'a str>> = Vec::with_capacity(scan.capacity_for::<Vec<&str>>(shape_count, 1));
    for _ in 0..shape_count {
        let key_count = scan.len()?;
        let mut keys: Vec<&str> = Vec::with_capacity(scan.capacity_for::<&str>(key_count, 1));
        for _ in 0..key_count {
            let key = scan.text()?;
            if keys.last().is_some_and(|&last| last >= key) {
                return Err(UNSORTED.into());
            }
            keys.push(key);
        }
        shapes.push(keys);
    }
    let mut plain = ValueReader::new(scan, 0)?;
    // One per shape read (not per shape claimed).
    let mut fields: Vec<Vec<ValueReader<'a>>> = Vec::with_capacity(shapes.len());
    for keys in &shapes {
        fields.push(keys.iter().map(|_| ValueReader::new(scan, 1)).collect::<Result<_, _>>()?);
    }

    // Every column's extent is known now: trailing bytes are refused before any record is built.
    trailing(scan.bytes.len() - scan.at, "snapshot").map_err(Bad)?;
    // Bytes, not records: the suffixes plus a byte a record (at most twice the suffixes' part).
    let mut keys: Vec<u8> = Vec::with_capacity(suffixes.bytes.len() + count);
    // The record count is bounded by the input, but a record takes far more room than a byte of
    // it: the vector grows as records are read instead of being reserved from the count.
    let mut rows = Vec::new();
    // Keys share prefixes and values share strings and shapes, so a few bytes can describe far
    // more: the keys and values a snapshot decodes to are capped at the byte ABI's message limit
    // or 64 times the snapshot's size, whichever is larger (a big map compresses far less than
    // that; a hostile one far more).
    let limit = MAX_MESSAGE_BYTES.max(scan.bytes.len().saturating_mul(64));
    let mut decoded = 0usize;
    let mut previous = 0..0;
    let mut value = Vec::new();
    for _ in 0..count {
        let shared = usize::try_from(prefixes.next()?).unwrap_or(usize::MAX);
        if shared > previous.len() {
            return Err("a key shares more bytes than the previous key has".into());
        }
        let suffix_len = usize::try_from(suffix_lens.next()?).unwrap_or(usize::MAX);
        let suffix = suffixes.take(suffix_len)?;
        let start = keys.len();
        keys.extend_from_within(previous.start..previous.start + shared);
        keys.extend_from_slice(suffix);
        decoded += shared + suffix.len();
        let key = &keys[start..];
        let text = core::str::from_utf8(key).map_err(|_| "a key is not valid UTF-8")?;
        crate::map_common::check_key(text).map_err(in_snapshot)?;
        if !rows.is_empty() && keys[previous.clone()] >= *key {
            return Err(Bad(out_of_order(text)));
        }
        previous = start..keys.len();

        let millis = millis.next()?;
        let counter = u32::try_from(counters.next()?).map_err(|_| "a counter is out of range")?;
        let node = u32::try_from(node_ids.next()?).unwrap_or(u32::MAX);
        let timestamp = Timestamp::new(millis, counter, node_at(&nodes, node).map_err(Bad)?);
        let ttl_ms = Some(ttls.next()?).filter(|&t| t != 0); // so never the invalid `Some(0)`
        let value = match shape_ids.next()? {
            0 => None,
            1 => {
                value.clear();
                plain.next(&mut value)?;
                Some(Encoded::from_checked(&value))
            }
            shape => {
                let index = usize::try_from(shape - 2)
                    .ok()
                    .filter(|&i| i < shapes.len())
                    .ok_or("a value refers to a shape the table does not have")?;
                value.clear();
                value.push(7);
                put_varint(&mut value, shapes[index].len() as u64);
                for (key, column) in shapes[index].iter().zip(&mut fields[index]) {
                    put_str(&mut value, key);
                    column.next(&mut value)?;
                }
                Some(Encoded::from_checked(&value))
            }
        };
        decoded += value.as_ref().map_or(0, |v| v.as_bytes().len());
        if decoded > limit {
            return Err(Bad(Error::Decode {
                what: "snapshot",
                reason: alloc::format!(
                    "its keys and values come to more than {limit} bytes (64 MiB or 64 times its size, the larger)"
                ),
            }));
        }
        rows.push(RawLwwRecord { key: start..keys.len(), value, timestamp, ttl_ms });
    }
    for column in [&prefixes, &suffix_lens, &millis, &counters, &node_ids, &ttls, &shape_ids] {
        column.finish()?;
    }
    if suffixes.at != suffixes.bytes.len() {
        return Err(LEFT_OVER.into());
    }
    plain.finish()?;
    for column in fields.iter().flatten() {
        column.finish()?;
    }
    // Each key is UTF-8 on its own, so they are together, and every range is on a char boundary.
    // Checking the whole again is the price of a `String` without `unsafe`; checking only here
    // would not do, since keys split inside a character can join into valid UTF-8.
    let keys = String::from_utf8(keys).map_err(|_| "a key is not valid UTF-8")?;
    Ok(RawLwwSnapshot { keys, records: rows })
}
