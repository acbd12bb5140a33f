//! The one place where bytes become records and records become bytes: map snapshots and stored
//! values behind a format version byte (postcard, except LWW snapshots: see `lww_columns`).
//!
//! Decoding never panics on untrusted bytes and checks everything before returning: the version,
//! that nothing trails the payload, node ids, TTLs, values (finite floats, sorted map keys, depth),
//! the reserved key, and that an OR record's tag is the text of its own timestamp. A caller applies a
//! decoded snapshot only after it decoded whole, so bad bytes change nothing.
//!
//! Snapshot layout: `[FORMAT_VERSION]`, a variant tag, then a body that lists each writer's node
//! id once and refers to it by index. An OR snapshot's body is postcard (tag 1); an LWW snapshot's
//! is stored column by column (tag 2, see `lww_columns`).

mod lww_columns;

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use hashbrown::HashMap;
use serde::{Deserialize, Serialize};

use crate::abi::{Command, Reply, Request, WireDrift, WireEvent};
use crate::error::{Error, excerpt};
use crate::hlc::{NodeId, Timestamp};
use crate::lww::{LwwMap, LwwRecord, RecordRef};
use crate::map_common::{Hasher, MapKind};
use crate::or_map::{OrMap, OrRecord};
use crate::storage::{MapStatus, StorageOp, StorageRequest, StorageResult};
use crate::value::{Encoded, MAX_DEPTH, Value};

/// The first byte of every encoding this module writes.
pub const FORMAT_VERSION: u8 = 1;

/// A decoded snapshot of one map: every record, tombstones included.
#[derive(Clone, Debug, PartialEq)]
pub enum Snapshot {
    /// An LWW map's records, sorted by key.
    Lww(Vec<(Box<str>, LwwRecord)>),
    /// An OR map's live records per key and its tombstoned tags.
    Or {
        /// Live records per key.
        keys: Vec<(Box<str>, Vec<OrRecord>)>,
        /// Tombstoned tags.
        tombstones: Vec<Timestamp>,
    },
}

impl Snapshot {
    /// The kind of map it came from.
    pub fn kind(&self) -> MapKind {
        match self {
            Self::Lww(_) => MapKind::Lww,
            Self::Or { .. } => MapKind::Or,
        }
    }
}

/// One value as the storage contract of SPEC section 6 stores it.
#[derive(Clone, Debug, PartialEq)]
pub enum StoredValue {
    /// An LWW record (a tombstone included).
    Lww(LwwRecord),
    /// The live records of one OR key.
    Or(Vec<OrRecord>),
    /// An OR map's tombstoned tags, stored under [`crate::RESERVED_KEY`].
    OrTombstones(Vec<Timestamp>),
    /// The map's mark, stored under [`crate::MARK_KEY`] (see [`MapMark`]).
    Mark(MapMark),
}

/// What a stored map keeps under [`crate::MARK_KEY`], a key every load reads (whatever
/// `is_related_key` says): the map's kind, so a node that loads none of its keys still knows it,
/// and the clock's high-water mark when the map was last flushed, so a restarted node never issues
/// a timestamp its earlier life issued in this map, not even for keys it does not load (SPEC
/// section 1). Written in the same atomic `StoreAll` as the records it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapMark {
    /// The map's kind.
    pub kind: MapKind,
    /// The clock's `(millis, counter)` when the mark was written: at or after every timestamp the
    /// writer had issued or seen.
    pub millis: u64,
    /// See `millis`.
    pub counter: u32,
}

// ---- wire structs (private: the layout is this module's business) ----------------------------
//
// The encoders and decoders handle these layouts by hand (serde's code for them cost the wasm
// module several times as much); the tests at the end check the hand-written bytes and `Reader`
// against the derived `Serialize` and `Deserialize`.

/// The body of an OR snapshot.
#[derive(Serialize, Deserialize)]
struct OrSnapshotWire<'a> {
    #[serde(borrow)]
    nodes: Vec<&'a str>,
    #[serde(borrow)]
    keys: Vec<OrKeyWire<'a>>,
    #[serde(borrow)]
    tombstones: Vec<&'a str>,
}

/// The variant tag of an OR snapshot.
const OR_SNAPSHOT_TAG: u8 = 1;

#[derive(Serialize, Deserialize)]
struct OrKeyWire<'a> {
    key: &'a str,
    #[serde(borrow)]
    records: Vec<OrWire<'a>>,
}

#[derive(Serialize, Deserialize)]
struct OrWire<'a> {
    value: Value,
    millis: u64,
    counter: u32,
    node: u32,
    tag: &'a str,
    ttl_ms: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct TimestampWire<'a> {
    millis: u64,
    counter: u32,
    node_id: &'a str,
}

#[derive(Serialize, Deserialize)]
enum StoredWire<'a> {
    Lww {
        value: Option<Value>,
        #[serde(borrow)]
        timestamp: TimestampWire<'a>,
        ttl_ms: Option<u64>,
    },
    #[serde(borrow)]
    Or(Vec<StoredOrWire<'a>>),
    #[serde(borrow)]
    OrTombstones(Vec<&'a str>),
    Mark {
        kind: MapKind,
        millis: u64,
        counter: u32,
    },
}

#[derive(Serialize, Deserialize)]
struct StoredOrWire<'a> {
    value: Value,
    #[serde(borrow)]
    timestamp: TimestampWire<'a>,
    tag: &'a str,
    ttl_ms: Option<u64>,
}

// ---- encoding ----------------------------------------------------------------------------------

/// Interns node ids while encoding: each writer's id is written once.
#[derive(Default)]
struct NodeTable<'a> {
    index: HashMap<&'a str, u32, Hasher>,
    nodes: Vec<&'a str>,
}

impl<'a> NodeTable<'a> {
    fn of(&mut self, node: &'a NodeId) -> u32 {
        let next = u32::try_from(self.nodes.len()).unwrap_or(u32::MAX);
        *self.index.entry(node.as_str()).or_insert_with(|| {
            self.nodes.push(node.as_str());
            next
        })
    }
}

fn write_versioned<T: Serialize>(body: &T, out: &mut Vec<u8>) {
    out.push(FORMAT_VERSION);
    write_postcard(body, out);
}

fn write_postcard<T: Serialize>(body: &T, out: &mut Vec<u8>) {
    // Serializing into a growable Vec fails only on allocation failure, which aborts anyway.
    if let Ok(bytes) = postcard::to_extend(body, core::mem::take(out)) {
        *out = bytes;
    }
}

/// Appends a snapshot of every record of `map` (tombstones included) to `out`, column by column
/// (see `lww_columns`); stored value bytes are read as they are, not decoded into values.
pub fn encode_lww_snapshot_into(map: &LwwMap, out: &mut Vec<u8>) {
    let records = map.record_refs();
    let mut table = NodeTable::default();
    let rows: Vec<lww_columns::Row<'_>> = records
        .iter()
        .map(|r| lww_columns::Row {
            key: r.key,
            value: r.value.map(Encoded::as_bytes),
            millis: r.millis,
            counter: r.counter,
            node: table.of(r.node_id),
            ttl_ms: r.ttl_ms,
        })
        .collect();
    lww_columns::encode(&table.nodes, &rows, out);
}

/// One record for [`encode_lww_rows`].
#[doc(hidden)]
pub type LwwRow<'a> = (&'a str, Option<&'a [u8]>, u64, u32, u32, Option<u64>);

/// Encodes an LWW snapshot of `rows` (key, encoded value or `None`, millis, counter, node index,
/// TTL) written by `nodes`, exactly as given: nothing is checked or sorted, so tests can build the
/// snapshots a faulty or hostile peer would send.
#[doc(hidden)]
pub fn encode_lww_rows(nodes: &[&str], rows: &[LwwRow<'_>]) -> Vec<u8> {
    let rows: Vec<lww_columns::Row<'_>> = rows
        .iter()
        .map(|&(key, value, millis, counter, node, ttl_ms)| lww_columns::Row {
            key,
            value,
            millis,
            counter,
            node,
            ttl_ms,
        })
        .collect();
    let mut out = Vec::new();
    lww_columns::encode(nodes, &rows, &mut out);
    out
}

/// Appends a postcard varint (unsigned LEB128).
pub fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Appends a postcard string (varint length, then UTF-8).
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Appends the postcard encoding of `value`: byte for byte what its `Serialize` writes (the
/// variant index, then the payload: a zigzag varint for `Int`, 8 little-endian bytes for `Float`,
/// length-prefixed text and bytes, a count then the items or `(key, value)` pairs). Written by hand
/// and used by every encoder here, so the module carries no serde serializer for values.
pub fn put_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.push(0),
        Value::Bool(b) => out.extend_from_slice(&[1, u8::from(*b)]),
        Value::Int(i) => {
            out.push(2);
            put_varint(out, zigzag(*i));
        }
        Value::Float(f) => {
            out.push(3);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::String(s) => {
            out.push(4);
            put_str(out, s);
        }
        Value::Bytes(b) => {
            out.push(5);
            put_bytes(out, b);
        }
        Value::List(items) => {
            out.push(6);
            put_varint(out, items.len() as u64);
            for item in items {
                put_value(out, item);
            }
        }
        Value::Map(entries) => {
            out.push(7);
            put_varint(out, entries.len() as u64);
            for (key, item) in entries {
                put_str(out, key);
                put_value(out, item);
            }
        }
    }
}

/// The length of [`put_value`]'s encoding of `value`.
pub(crate) fn value_len(value: &Value) -> usize {
    1 + match value {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Int(i) => varint_len(zigzag(*i)),
        Value::Float(_) => 8,
        Value::String(s) => varint_len(s.len() as u64) + s.len(),
        Value::Bytes(b) => varint_len(b.len() as u64) + b.len(),
        Value::List(items) => varint_len(items.len() as u64) + items.iter().map(value_len).sum::<usize>(),
        Value::Map(entries) => {
            varint_len(entries.len() as u64)
                + entries.iter().map(|(k, v)| varint_len(k.len() as u64) + k.len() + value_len(v)).sum::<usize>()
        }
    }
}

/// Postcard's signed integers: zigzag, so small magnitudes of either sign are short varints.
fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

/// The signed integer a [`zigzag`] number stands for.
fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

fn varint_len(n: u64) -> usize {
    // 7 bits a byte; 0 still takes one.
    (64 - (n | 1).leading_zeros() as usize).div_ceil(7)
}

/// Splits one postcard-encoded [`Value`] off the front of `bytes`, as its `Deserialize` reads it
/// (same errors; nesting bounded, the rest left to [`Value::validate`]). Like [`put_value`], it
/// keeps the module at one value decoder.
pub fn take_value(bytes: &[u8]) -> postcard::Result<(Value, &[u8])> {
    let mut reader = Reader { bytes };
    let value = reader.value()?;
    Ok((value, reader.bytes))
}

/// Appends a snapshot of `map` (live records and tombstones) to `out`. Written by hand in the
/// layout serde gives `OrSnapshotWire` after the tag (which decodes it).
pub fn encode_or_snapshot_into(map: &OrMap, out: &mut Vec<u8>) {
    let records = map.records();
    let mut table = NodeTable::default();
    let nodes: Vec<u32> =
        records.iter().flat_map(|(_, rs)| rs.iter()).map(|r| table.of(&r.timestamp.node_id)).collect();
    out.push(FORMAT_VERSION);
    out.push(OR_SNAPSHOT_TAG);
    put_strs(out, &table.nodes);
    put_varint(out, records.len() as u64);
    let mut node_at = nodes.into_iter();
    for (key, rs) in &records {
        put_str(out, key);
        put_varint(out, rs.len() as u64);
        for r in rs.iter() {
            put_value(out, &r.value);
            put_varint(out, r.timestamp.millis);
            put_varint(out, u64::from(r.timestamp.counter));
            put_varint(out, u64::from(node_at.next().unwrap_or_default()));
            put_str(out, &r.tag());
            put_option_u64(out, r.ttl_ms);
        }
    }
    put_strs(out, &map.tombstones());
}

/// A snapshot of an LWW map as a new buffer.
pub fn encode_lww_snapshot(map: &LwwMap) -> Vec<u8> {
    let mut out = Vec::new();
    encode_lww_snapshot_into(map, &mut out);
    out
}

/// A snapshot of an OR map as a new buffer.
pub fn encode_or_snapshot(map: &OrMap) -> Vec<u8> {
    let mut out = Vec::new();
    encode_or_snapshot_into(map, &mut out);
    out
}

/// Encodes one stored value. Written by hand in the layout serde gives `StoredWire` (which
/// [`decode_stored`] reads).
pub fn encode_stored(value: &StoredValue) -> Vec<u8> {
    let mut out = alloc::vec![FORMAT_VERSION];
    let o = &mut out;
    match value {
        StoredValue::Lww(r) => {
            put_varint(o, 0);
            match &r.value {
                Some(value) => {
                    o.push(1);
                    put_value(o, value);
                }
                None => o.push(0),
            }
            put_timestamp(o, &r.timestamp);
            put_option_u64(o, r.ttl_ms);
        }
        StoredValue::Or(records) => return encode_stored_or(records),
        StoredValue::OrTombstones(tags) => {
            return encode_stored_tombstones(&tags.iter().map(Timestamp::to_text).collect::<Vec<_>>());
        }
        StoredValue::Mark(mark) => return encode_stored_mark(mark),
    }
    out
}

/// [`encode_stored`] of an LWW record as the map holds it: its value bytes are copied as they are.
pub(crate) fn encode_stored_lww(r: &RecordRef<'_>) -> Vec<u8> {
    let mut out = alloc::vec![FORMAT_VERSION, 0];
    match r.value {
        Some(value) => {
            out.push(1);
            out.extend_from_slice(value.as_bytes());
        }
        None => out.push(0),
    }
    put_varint(&mut out, r.millis);
    put_varint(&mut out, u64::from(r.counter));
    put_str(&mut out, r.node_id.as_str());
    put_option_u64(&mut out, r.ttl_ms);
    out
}

/// [`encode_stored`] of one OR key's live records.
pub(crate) fn encode_stored_or(records: &[OrRecord]) -> Vec<u8> {
    let mut out = alloc::vec![FORMAT_VERSION, 1];
    put_varint(&mut out, records.len() as u64);
    for r in records {
        put_value(&mut out, &r.value);
        put_timestamp(&mut out, &r.timestamp);
        put_str(&mut out, &r.tag());
        put_option_u64(&mut out, r.ttl_ms);
    }
    out
}

/// [`encode_stored`] of a map's mark.
pub(crate) fn encode_stored_mark(mark: &MapMark) -> Vec<u8> {
    let mut out = alloc::vec![FORMAT_VERSION, 3];
    put_kind(&mut out, mark.kind);
    put_varint(&mut out, mark.millis);
    put_varint(&mut out, u64::from(mark.counter));
    out
}

/// [`encode_stored`] of an OR map's tombstone list, the tags in text form.
pub(crate) fn encode_stored_tombstones(tags: &[String]) -> Vec<u8> {
    let mut out = alloc::vec![FORMAT_VERSION, 2];
    put_strs(&mut out, tags);
    out
}

/// A `TimestampWire`.
fn put_timestamp(out: &mut Vec<u8>, t: &Timestamp) {
    put_varint(out, t.millis);
    put_varint(out, u64::from(t.counter));
    put_str(out, t.node_id.as_str());
}

/// A postcard `Option<u64>`.
fn put_option_u64(out: &mut Vec<u8>, n: Option<u64>) {
    match n {
        Some(n) => {
            out.push(1);
            put_varint(out, n);
        }
        None => out.push(0),
    }
}

// ---- decoding ----------------------------------------------------------------------------------

/// Decodes `[FORMAT_VERSION] postcard(T)` with nothing trailing, through serde: the tests' reference.
#[cfg(test)]
fn read_versioned<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &'static str) -> Result<T, Error> {
    read_versioned_with(bytes, what, Reader::serde)
}

/// [`read_versioned`] with `read` reading the body.
fn read_versioned_with<'a, T>(
    bytes: &'a [u8],
    what: &'static str,
    read: impl FnOnce(&mut Reader<'a>) -> postcard::Result<T>,
) -> Result<T, Error> {
    let (&version, body) = bytes.split_first().ok_or(Error::Decode { what, reason: "it is empty".into() })?;
    if version != FORMAT_VERSION {
        return Err(Error::Decode {
            what,
            reason: alloc::format!("format version {version} is not supported (expected {FORMAT_VERSION})"),
        });
    }
    read_body_with(body, what, read)
}

/// Decodes a postcard body with `read`, with nothing trailing.
fn read_body_with<'a, T>(
    body: &'a [u8],
    what: &'static str,
    read: impl FnOnce(&mut Reader<'a>) -> postcard::Result<T>,
) -> Result<T, Error> {
    let mut reader = Reader { bytes: body };
    let value = read(&mut reader).map_err(|e| Error::Decode { what, reason: postcard_reason(&e) })?;
    trailing(reader.bytes.len(), what)?;
    Ok(value)
}

fn trailing(rest: usize, what: &'static str) -> Result<(), Error> {
    if rest == 0 {
        return Ok(());
    }
    Err(Error::Decode { what, reason: alloc::format!("{rest} unexpected bytes after the end") })
}

/// The most memory a decoder reserves at once for a count the input claims: past it, a vector
/// grows as its items really arrive. Without it, nested lists (a value's, 64 deep) could each
/// reserve for every byte left, and an item of one byte on the wire can take 24 to 88 in memory.
const MAX_RESERVE_BYTES: usize = 64 << 10;

/// How many items of `size` bytes in memory to reserve for `count` claimed ones that take at
/// least `min_bytes` each on the wire, with `remaining` bytes of input left: no more than those
/// bytes can hold, nor than [`MAX_RESERVE_BYTES`]. Every reservation from a decoded count goes
/// through here (by [`Reader::capacity_for`] or [`Scan::capacity_for`]).
#[inline(never)]
fn capacity_for(count: usize, remaining: usize, min_bytes: usize, size: usize) -> usize {
    count.min(remaining / min_bytes.max(1)).min(MAX_RESERVE_BYTES / size.max(1))
}

/// Reads postcard as its serde deserializer does, giving the same error for the same bytes.
/// Values, stored values, requests, replies and OR snapshot bodies are read by hand with it:
/// serde's deserializers for them would be a second decoder in the wasm module, and serde's `Vec`
/// reserves up to 1 MiB for any count no larger than the bytes left (postcard 1.2 hints it). The
/// unit tests at the end check each against serde on valid and damaged bytes.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// How many `T`s to reserve for `count` claimed items of at least `min_bytes` bytes each.
    fn capacity_for<T>(&self, count: usize, min_bytes: usize) -> usize {
        capacity_for(count, self.bytes.len(), min_bytes, core::mem::size_of::<T>())
    }

    /// A `T` through serde.
    #[cfg(test)]
    fn serde<T: Deserialize<'a>>(&mut self) -> postcard::Result<T> {
        let (value, rest) = postcard::take_from_bytes::<T>(self.bytes)?;
        self.bytes = rest;
        Ok(value)
    }

    fn byte(&mut self) -> postcard::Result<u8> {
        let (&b, rest) = self.bytes.split_first().ok_or(postcard::Error::DeserializeUnexpectedEnd)?;
        self.bytes = rest;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> postcard::Result<&'a [u8]> {
        if n > self.bytes.len() {
            return Err(postcard::Error::DeserializeUnexpectedEnd);
        }
        let (taken, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(taken)
    }

    /// A varint of at most `max_bytes` bytes whose last byte holds at most `max_last` (the bits
    /// left of the type's width), as postcard checks it.
    fn varint(&mut self, max_bytes: u32, max_last: u8) -> postcard::Result<u64> {
        // One byte, the common case (tags, small numbers, short lengths).
        if let Some((&b, rest)) = self.bytes.split_first()
            && b < 0x80
        {
            self.bytes = rest;
            return Ok(u64::from(b));
        }
        self.long_varint(max_bytes, max_last)
    }

    fn long_varint(&mut self, max_bytes: u32, max_last: u8) -> postcard::Result<u64> {
        let (bytes, max) = (self.bytes, max_bytes as usize);
        let mut out = 0u64;
        for i in 0..max {
            let &b = bytes.get(i).ok_or(postcard::Error::DeserializeUnexpectedEnd)?;
            out |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if i + 1 == max && b > max_last {
                    break;
                }
                self.bytes = &bytes[i + 1..];
                return Ok(out);
            }
        }
        Err(postcard::Error::DeserializeBadVarint)
    }

    #[inline(never)]
    fn u32(&mut self) -> postcard::Result<u32> {
        Ok(self.varint(5, 0x0f)? as u32)
    }

    fn u64(&mut self) -> postcard::Result<u64> {
        self.varint(10, 0x01)
    }

    /// A length: a varint of the platform's `usize`.
    #[inline(never)]
    fn len(&mut self) -> postcard::Result<usize> {
        Ok(if usize::BITS == 32 { self.u32()? as usize } else { self.u64()? as usize })
    }

    fn bool(&mut self) -> postcard::Result<bool> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(postcard::Error::DeserializeBadBool),
        }
    }

    /// An option's tag: true for `Some`.
    fn some(&mut self) -> postcard::Result<bool> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(postcard::Error::DeserializeBadOption),
        }
    }

    fn option_u64(&mut self) -> postcard::Result<Option<u64>> {
        Ok(if self.some()? { Some(self.u64()?) } else { None })
    }

    /// An enum's variant index, below `count` (serde refuses others with a custom error).
    fn variant(&mut self, count: u32) -> postcard::Result<u32> {
        let index = self.u32()?;
        if index < count { Ok(index) } else { Err(postcard::Error::SerdeDeCustom) }
    }

    fn str(&mut self) -> postcard::Result<&'a str> {
        let n = self.len()?;
        core::str::from_utf8(self.take(n)?).map_err(|_| postcard::Error::DeserializeBadUtf8)
    }

    fn string(&mut self) -> postcard::Result<String> {
        Ok(String::from(self.str()?))
    }

    /// A `Vec<u8>` (a length, then the bytes).
    fn byte_vec(&mut self) -> postcard::Result<Vec<u8>> {
        let n = self.len()?;
        Ok(self.take(n)?.to_vec())
    }

    fn value(&mut self) -> postcard::Result<Value> {
        self.value_at(0)
    }

    /// A [`Value`] nested `depth` levels deep, as its `Deserialize` reads it: lists and maps
    /// deeper than [`MAX_DEPTH`] and unknown tags are refused (serde's custom error), nothing else
    /// is checked.
    fn value_at(&mut self, depth: usize) -> postcard::Result<Value> {
        // The tag is one byte, unless the input is bad.
        let tag = match self.bytes.split_first() {
            Some((&tag, rest)) if tag < 0x80 => {
                self.bytes = rest;
                u32::from(tag)
            }
            _ => self.u32()?,
        };
        Ok(match tag {
            0 => Value::Null,
            1 => Value::Bool(self.bool()?),
            2 => Value::Int(unzigzag(self.u64()?)),
            3 => {
                let mut raw = [0u8; 8];
                raw.copy_from_slice(self.take(8)?);
                Value::Float(f64::from_le_bytes(raw))
            }
            4 => Value::String(Box::from(self.str()?)),
            5 => {
                let n = self.len()?;
                Value::Bytes(Box::from(self.take(n)?))
            }
            6 | 7 if depth >= MAX_DEPTH => return Err(postcard::Error::SerdeDeCustom),
            // An item is a tag at least; an entry a key's length and a tag.
            6 => Value::List(self.list(1, |r| r.value_at(depth + 1))?.into_boxed_slice()),
            7 => Value::Map(self.list(2, |r| Ok((Box::from(r.str()?), r.value_at(depth + 1)?)))?.into_boxed_slice()),
            _ => return Err(postcard::Error::SerdeDeCustom),
        })
    }

    /// A sequence: a length, then the items, each at least `min_bytes` long on the wire (the
    /// length is not trusted beyond what the bytes left can hold).
    fn list<T>(
        &mut self,
        min_bytes: usize,
        mut item: impl FnMut(&mut Self) -> postcard::Result<T>,
    ) -> postcard::Result<Vec<T>> {
        let n = self.len()?;
        let mut items = Vec::with_capacity(self.capacity_for::<T>(n, min_bytes));
        for _ in 0..n {
            items.push(item(self)?);
        }
        Ok(items)
    }

    fn timestamp(&mut self) -> postcard::Result<TimestampWire<'a>> {
        Ok(TimestampWire { millis: self.u64()?, counter: self.u32()?, node_id: self.str()? })
    }

    fn stored(&mut self) -> postcard::Result<StoredWire<'a>> {
        Ok(match self.variant(4)? {
            0 => StoredWire::Lww {
                value: if self.some()? { Some(self.value()?) } else { None },
                timestamp: self.timestamp()?,
                ttl_ms: self.option_u64()?,
            },
            // A record: a value's tag, millis, counter, node id, tag and TTL, a byte each at least.
            1 => StoredWire::Or(self.list(6, |r| {
                Ok(StoredOrWire {
                    value: r.value()?,
                    timestamp: r.timestamp()?,
                    tag: r.str()?,
                    ttl_ms: r.option_u64()?,
                })
            })?),
            2 => StoredWire::OrTombstones(self.list(1, Self::str)?),
            _ => StoredWire::Mark { kind: self.kind()?, millis: self.u64()?, counter: self.u32()? },
        })
    }

    fn or_snapshot(&mut self) -> postcard::Result<OrSnapshotWire<'a>> {
        // The fewest bytes each item takes: a string's length; a key's length and record count; a
        // record's value tag, millis, counter, node index, tag length and TTL tag.
        Ok(OrSnapshotWire {
            nodes: self.list(1, Self::str)?,
            keys: self.list(2, |r| {
                Ok(OrKeyWire {
                    key: r.str()?,
                    records: r.list(6, |r| {
                        Ok(OrWire {
                            value: r.value()?,
                            millis: r.u64()?,
                            counter: r.u32()?,
                            node: r.u32()?,
                            tag: r.str()?,
                            ttl_ms: r.option_u64()?,
                        })
                    })?,
                })
            })?,
            tombstones: self.list(1, Self::str)?,
        })
    }

    fn kind(&mut self) -> postcard::Result<MapKind> {
        Ok(if self.variant(2)? == 0 { MapKind::Lww } else { MapKind::Or })
    }

    fn request(&mut self) -> postcard::Result<Request> {
        Ok(Request { grid: self.u32()?, wall: self.u64()?, command: self.command()? })
    }

    fn command(&mut self) -> postcard::Result<Command> {
        Ok(match self.variant(18)? {
            0 => Command::Open { node_id: self.string()?, max_drift_ms: self.u64()?, strict: self.bool()? },
            1 => Command::Close,
            2 => Command::Set {
                map: self.string()?,
                key: self.string()?,
                value: self.value()?,
                ttl_ms: self.option_u64()?,
            },
            3 => Command::SetMany { map: self.string()?, entries: self.list(2, |r| Ok((r.string()?, r.value()?)))? },
            4 => Command::Remove { map: self.string()?, key: self.string()? },
            5 => Command::Get { map: self.string()?, key: self.string()? },
            6 => Command::Add {
                map: self.string()?,
                key: self.string()?,
                value: self.value()?,
                ttl_ms: self.option_u64()?,
            },
            7 => Command::OrRemove { map: self.string()?, key: self.string()?, value: self.value()? },
            8 => Command::OrGet { map: self.string()?, key: self.string()? },
            9 => Command::Root { map: self.string()? },
            10 => Command::Export { map: self.string()? },
            11 => Command::Import { map: self.string()?, snapshot: self.byte_vec()? },
            12 => Command::Prune { map: self.string()?, older_than: self.u64()? },
            13 => Command::OpenPersistent { node_id: self.string()?, max_drift_ms: self.u64()?, strict: self.bool()? },
            14 => Command::GetMap { map: self.string()?, kind: if self.some()? { Some(self.kind()?) } else { None } },
            15 => Command::Flush,
            16 => Command::Storage { answers: self.list(2, |r| Ok((r.u64()?, r.storage_result()?)))? },
            _ => Command::TakeEarlyWrites { map: self.string()? },
        })
    }

    fn storage_result(&mut self) -> postcard::Result<StorageResult> {
        Ok(match self.variant(4)? {
            0 => StorageResult::Keys(self.list(1, Self::string)?),
            1 => StorageResult::Values(self.list(2, |r| Ok((r.string()?, r.byte_vec()?)))?),
            2 => StorageResult::Done,
            _ => StorageResult::Failed(self.string()?),
        })
    }

    fn reply(&mut self) -> postcard::Result<Reply> {
        Ok(match self.variant(12)? {
            0 => Reply::Done,
            1 => Reply::Opened(self.u32()?),
            2 => Reply::Value(if self.some()? { Some(self.value()?) } else { None }),
            3 => Reply::Values(self.list(1, Self::value)?),
            4 => Reply::Tags(self.list(1, Self::string)?),
            5 => Reply::Root(self.u32()?),
            6 => Reply::Bytes(self.byte_vec()?),
            7 => Reply::Count(self.u64()?),
            8 => Reply::Error(self.string()?),
            9 => {
                Reply::Status(if self.variant(2)? == 0 { MapStatus::Loading } else { MapStatus::Loaded(self.kind()?) })
            }
            // A request: an id, a call's variant and a map name, a byte each at least; an event:
            // a variant and a field.
            10 => Reply::Storage { requests: self.list(3, Self::storage_request)?, events: self.list(2, Self::event)? },
            // A drift: a remote timestamp's length and three numbers.
            _ => Reply::Imported { changed: self.u64()?, drifts: self.list(4, Self::drift)? },
        })
    }

    fn drift(&mut self) -> postcard::Result<WireDrift> {
        Ok(WireDrift { remote: self.string()?, wall: self.u64()?, ahead_ms: self.u64()?, max_drift_ms: self.u64()? })
    }

    fn storage_request(&mut self) -> postcard::Result<StorageRequest> {
        let id = self.u64()?;
        let op = match self.variant(4)? {
            0 => StorageOp::LoadAllKeys { map: self.string()? },
            1 => StorageOp::LoadAll { map: self.string()?, keys: self.list(1, Self::string)? },
            2 => StorageOp::StoreAll {
                map: self.string()?,
                entries: self.list(2, |r| Ok((r.string()?, r.byte_vec()?)))?,
            },
            _ => StorageOp::DeleteAll { map: self.string()?, keys: self.list(1, Self::string)? },
        };
        Ok(StorageRequest { id, op })
    }

    fn event(&mut self) -> postcard::Result<WireEvent> {
        Ok(match self.variant(5)? {
            0 => WireEvent::MapLoaded { map: self.string()?, count: self.u64()? },
            1 => WireEvent::Ready { map: self.string()?, kind: self.kind()? },
            2 => WireEvent::LoadFailed { map: self.string()?, error: self.string()? },
            3 => WireEvent::Flushed { flush_id: self.u64()? },
            _ => WireEvent::FlushFailed { flush_id: self.u64()?, error: self.string()? },
        })
    }
}

fn postcard_reason(e: &postcard::Error) -> String {
    match e {
        postcard::Error::DeserializeUnexpectedEnd => "it is truncated".into(),
        postcard::Error::DeserializeBadVarint => "a number is not a valid varint or is out of range".into(),
        postcard::Error::DeserializeBadUtf8 => "a string is not valid UTF-8".into(),
        postcard::Error::DeserializeBadEnum => "an unknown type tag".into(),
        postcard::Error::DeserializeBadBool => "a boolean is neither 0 nor 1".into(),
        postcard::Error::DeserializeBadOption => "an optional field has a tag other than 0 or 1".into(),
        // The only custom errors our decoders raise (postcard drops their text).
        postcard::Error::SerdeDeCustom => {
            alloc::format!("an unknown type tag, or a value nested deeper than {MAX_DEPTH} levels")
        }
        other => other.to_string(),
    }
}

/// Turns a domain error found while decoding into a decode error of `what`.
fn in_decode(what: &'static str) -> impl Fn(Error) -> Error {
    move |e| match e {
        Error::Decode { .. } => e,
        other => Error::Decode { what, reason: other.to_string() },
    }
}

/// A snapshot lists each key once, in byte order, as the encoder writes it.
fn check_key_order<'a>(keys: impl Iterator<Item = &'a str>) -> Result<(), Error> {
    let mut previous: Option<&str> = None;
    for key in keys {
        if previous.is_some_and(|p| p >= key) {
            return Err(out_of_order(key));
        }
        previous = Some(key);
    }
    Ok(())
}

/// The error for a snapshot key that is not after the one before it.
fn out_of_order(key: &str) -> Error {
    Error::Decode {
        what: "snapshot",
        reason: alloc::format!("the key {} is repeated or out of order", crate::error::Quoted(&excerpt(key))),
    }
}

fn node_table(nodes: &[&str]) -> Result<Vec<NodeId>, Error> {
    nodes.iter().map(|n| NodeId::new(n)).collect()
}

fn node_at(table: &[NodeId], index: u32) -> Result<NodeId, Error> {
    table.get(index as usize).cloned().ok_or_else(|| Error::Decode {
        what: "snapshot",
        reason: alloc::format!("node index {index} is out of range (the table has {})", table.len()),
    })
}

fn check_key(key: &str) -> Result<Box<str>, Error> {
    crate::map_common::check_key(key)?;
    Ok(Box::from(key))
}

fn check_ttl(ttl_ms: Option<u64>) -> Result<Option<u64>, Error> {
    crate::map_common::check_ttl(ttl_ms)?;
    Ok(ttl_ms)
}

fn check_value(value: Value) -> Result<Value, Error> {
    value.validate()?;
    Ok(value)
}

/// Checks that `tag` is the text form of `timestamp`.
fn check_tag(tag: &str, timestamp: &Timestamp) -> Result<(), Error> {
    let text = timestamp.to_text();
    if tag == text { Ok(()) } else { Err(Error::MalformedOrRecord { tag: excerpt(tag), timestamp: text }) }
}

/// Decodes a snapshot written by [`encode_lww_snapshot`] or [`encode_or_snapshot`].
pub fn decode_snapshot(bytes: &[u8]) -> Result<Snapshot, Error> {
    let Some(lww) = decode_lww_snapshot_raw(bytes)? else { return decode_or_snapshot(bytes) };
    let records = lww
        .records
        .iter()
        .map(|r| {
            let record = LwwRecord {
                value: r.value.as_ref().map(Encoded::decode),
                timestamp: r.timestamp.clone(),
                ttl_ms: r.ttl_ms,
            };
            (Box::from(lww.key(r)), record)
        })
        .collect();
    Ok(Snapshot::Lww(records))
}

/// Decodes what [`decode_lww_snapshot_raw`] left: an OR snapshot (the version and variant already
/// checked there). Gives what [`decode_snapshot`] gives for those bytes.
pub(crate) fn decode_or_snapshot(bytes: &[u8]) -> Result<Snapshot, Error> {
    const WHAT: &str = "snapshot";
    let [FORMAT_VERSION, OR_SNAPSHOT_TAG, body @ ..] = bytes else {
        return Err(Error::Decode { what: WHAT, reason: "an LWW snapshot in an OR position".into() });
    };
    let wire = read_body_with(body, WHAT, Reader::or_snapshot)?;
    or_snapshot(wire).map_err(in_decode(WHAT))
}

fn or_snapshot(wire: OrSnapshotWire<'_>) -> Result<Snapshot, Error> {
    let OrSnapshotWire { nodes, keys, tombstones } = wire;
    let table = node_table(&nodes)?;
    let keys = keys
        .into_iter()
        .map(|k| {
            let records = k
                .records
                .into_iter()
                .map(|w| {
                    let timestamp = Timestamp::new(w.millis, w.counter, node_at(&table, w.node)?);
                    check_tag(w.tag, &timestamp)?;
                    Ok(OrRecord { value: check_value(w.value)?, timestamp, ttl_ms: check_ttl(w.ttl_ms)? })
                })
                .collect::<Result<_, Error>>()?;
            Ok((check_key(k.key)?, records))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    check_key_order(keys.iter().map(|(k, _)| &**k))?;
    let tombstones = tombstones.iter().map(|t| Timestamp::parse(t)).collect::<Result<_, _>>()?;
    Ok(Snapshot::Or { keys, tombstones })
}

/// An LWW snapshot decoded with its values still encoded: every key back to back, and the records
/// in key order. Only the decoder makes one, so its keys are checked, unique and sorted.
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

/// The kind of map a snapshot holds, read from its first bytes (the rest unchecked); `None` for
/// bytes that do not start like a snapshot.
pub fn snapshot_kind(bytes: &[u8]) -> Option<MapKind> {
    match bytes {
        [FORMAT_VERSION, lww_columns::LWW_COLUMNS_TAG, ..] => Some(MapKind::Lww),
        [FORMAT_VERSION, OR_SNAPSHOT_TAG, ..] => Some(MapKind::Or),
        _ => None,
    }
}

/// Decodes an LWW snapshot keeping each value in its encoded form (checked and canonical), so an
/// import adopts the bytes instead of building values and encoding them again. `Ok(None)` when the
/// bytes hold an OR snapshot: decode those with [`decode_snapshot`].
pub fn decode_lww_snapshot_raw(bytes: &[u8]) -> Result<Option<RawLwwSnapshot>, Error> {
    let bad = |reason: String| Error::Decode { what: "snapshot", reason };
    let (&version, body) = bytes.split_first().ok_or_else(|| bad("it is empty".into()))?;
    if version != FORMAT_VERSION {
        return Err(bad(alloc::format!("format version {version} is not supported (expected {FORMAT_VERSION})")));
    }
    let mut scan = Scan { bytes: body, at: 0, canonical: true };
    match scan.byte() {
        Ok(lww_columns::LWW_COLUMNS_TAG) => {}
        Ok(OR_SNAPSHOT_TAG) => return Ok(None),
        Ok(_) => return Err(bad("an unknown type tag (at byte 2)".into())),
        Err(reason) => return Err(bad(reason.into())),
    }
    // The decoder refuses trailing bytes itself, before it builds any record.
    Ok(Some(lww_columns::decode(&mut scan)?))
}

/// Decodes one value written by [`encode_stored`].
pub fn decode_stored(bytes: &[u8]) -> Result<StoredValue, Error> {
    stored_value(read_versioned_with(bytes, STORED, Reader::stored)?)
}

const STORED: &str = "stored value";

/// An LWW record read back from storage with its value still encoded (see
/// [`decode_stored_lww_raw`]).
#[derive(Clone, Debug, PartialEq)]
pub struct StoredLww {
    /// The value, `None` for a tombstone.
    pub value: Option<Encoded>,
    /// When and by whom it was written.
    pub timestamp: Timestamp,
    /// TTL, if any.
    pub ttl_ms: Option<u64>,
}

/// The fast path of loading a map: an LWW record from [`encode_stored`] with its value kept in
/// its canonical encoding (no value tree is built), its node id taken from `nodes` when one there
/// has the same text (most records of a map come from few writers). `None` when `bytes` are
/// anything else, canonical LWW records included only: decode those with [`decode_stored`], which
/// accepts or refuses them with the full error.
pub fn decode_stored_lww_raw(bytes: &[u8], nodes: &mut Vec<NodeId>) -> Option<StoredLww> {
    let (&FORMAT_VERSION, body) = bytes.split_first()? else { return None };
    let mut scan = Scan { bytes: body, at: 0, canonical: true };
    if scan.varint().ok()? != 0 {
        return None;
    }
    let value = match scan.byte().ok()? {
        0 => None,
        1 => {
            let (value, rest) = Encoded::take_canonical(&scan.bytes[scan.at..]).ok()?;
            scan.at = scan.bytes.len() - rest.len();
            Some(value)
        }
        _ => return None,
    };
    let millis = scan.varint().ok()?;
    let counter = u32::try_from(scan.varint().ok()?).ok()?;
    let node = scan.text().ok()?;
    let node_id = match nodes.iter().find(|n| n.as_str() == node) {
        Some(known) => known.clone(),
        None => {
            let id = NodeId::new(node).ok()?;
            if nodes.len() < 16 {
                nodes.push(id.clone());
            }
            id
        }
    };
    let ttl_ms = match scan.byte().ok()? {
        0 => None,
        1 => Some(scan.varint().ok()?),
        _ => return None,
    };
    crate::map_common::check_ttl(ttl_ms).ok()?;
    (scan.at == scan.bytes.len()).then_some(StoredLww {
        value,
        timestamp: Timestamp::new(millis, counter, node_id),
        ttl_ms,
    })
}

fn stored_value(wire: StoredWire<'_>) -> Result<StoredValue, Error> {
    let ts = |t: TimestampWire<'_>| -> Result<Timestamp, Error> {
        Ok(Timestamp::new(t.millis, t.counter, NodeId::new(t.node_id)?))
    };
    let decoded = match wire {
        StoredWire::Lww { value, timestamp, ttl_ms } => {
            let value = value.map(check_value).transpose()?;
            Ok(StoredValue::Lww(LwwRecord { value, timestamp: ts(timestamp)?, ttl_ms: check_ttl(ttl_ms)? }))
        }
        StoredWire::Or(records) => records
            .into_iter()
            .map(|w| {
                let timestamp = ts(w.timestamp)?;
                check_tag(w.tag, &timestamp)?;
                Ok(OrRecord { value: check_value(w.value)?, timestamp, ttl_ms: check_ttl(w.ttl_ms)? })
            })
            .collect::<Result<_, Error>>()
            .map(StoredValue::Or),
        StoredWire::OrTombstones(tags) => {
            tags.iter().map(|t| Timestamp::parse(t)).collect::<Result<_, _>>().map(StoredValue::OrTombstones)
        }
        StoredWire::Mark { kind, millis, counter } => Ok(StoredValue::Mark(MapMark { kind, millis, counter })),
    };
    decoded.map_err(in_decode(STORED))
}

// ---- byte ABI requests and replies ------------------------------------------------------------

/// Largest request or reply the byte ABI accepts (64 MiB): checked before anything is decoded.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

fn check_size(bytes: &[u8], what: &'static str) -> Result<(), Error> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(Error::Decode {
            what,
            reason: alloc::format!("{} bytes is more than the limit of {MAX_MESSAGE_BYTES}", bytes.len()),
        });
    }
    Ok(())
}

/// Encodes a byte-ABI request.
pub fn encode_request(request: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    write_versioned(request, &mut out);
    out
}

/// Decodes a byte-ABI request.
pub fn decode_request(bytes: &[u8]) -> Result<Request, Error> {
    check_size(bytes, "request")?;
    read_versioned_with(bytes, "request", Reader::request)
}

/// Encodes a byte-ABI reply. Written by hand in the layout serde gives [`Reply`] (which
/// [`decode_reply`] reads): the derived serializer of the reply types costs the module three times
/// as much code.
pub fn encode_reply(reply: &Reply) -> Vec<u8> {
    let mut out = alloc::vec![FORMAT_VERSION];
    let o = &mut out;
    match reply {
        Reply::Done => put_varint(o, 0),
        Reply::Opened(handle) => {
            put_varint(o, 1);
            put_varint(o, u64::from(*handle));
        }
        Reply::Value(value) => {
            put_varint(o, 2);
            match value {
                Some(value) => {
                    o.push(1);
                    put_value(o, value);
                }
                None => o.push(0),
            }
        }
        Reply::Values(values) => {
            put_varint(o, 3);
            put_varint(o, values.len() as u64);
            for value in values {
                put_value(o, value);
            }
        }
        Reply::Tags(tags) => {
            put_varint(o, 4);
            put_strs(o, tags);
        }
        Reply::Root(root) => {
            put_varint(o, 5);
            put_varint(o, u64::from(*root));
        }
        Reply::Bytes(bytes) => {
            put_varint(o, 6);
            put_bytes(o, bytes);
        }
        Reply::Count(count) => {
            put_varint(o, 7);
            put_varint(o, *count);
        }
        Reply::Error(message) => {
            put_varint(o, 8);
            put_str(o, message);
        }
        Reply::Status(status) => {
            put_varint(o, 9);
            match status {
                MapStatus::Loading => put_varint(o, 0),
                MapStatus::Loaded(kind) => {
                    put_varint(o, 1);
                    put_kind(o, *kind);
                }
            }
        }
        Reply::Storage { requests, events } => {
            put_varint(o, 10);
            put_varint(o, requests.len() as u64);
            for request in requests {
                put_varint(o, request.id);
                match &request.op {
                    StorageOp::LoadAllKeys { map } => {
                        put_varint(o, 0);
                        put_str(o, map);
                    }
                    StorageOp::LoadAll { map, keys } => {
                        put_varint(o, 1);
                        put_str(o, map);
                        put_strs(o, keys);
                    }
                    StorageOp::StoreAll { map, entries } => {
                        put_varint(o, 2);
                        put_str(o, map);
                        put_varint(o, entries.len() as u64);
                        for (key, bytes) in entries {
                            put_str(o, key);
                            put_bytes(o, bytes);
                        }
                    }
                    StorageOp::DeleteAll { map, keys } => {
                        put_varint(o, 3);
                        put_str(o, map);
                        put_strs(o, keys);
                    }
                }
            }
            put_varint(o, events.len() as u64);
            for event in events {
                match event {
                    WireEvent::MapLoaded { map, count } => {
                        put_varint(o, 0);
                        put_str(o, map);
                        put_varint(o, *count);
                    }
                    WireEvent::Ready { map, kind } => {
                        put_varint(o, 1);
                        put_str(o, map);
                        put_kind(o, *kind);
                    }
                    WireEvent::LoadFailed { map, error } => {
                        put_varint(o, 2);
                        put_str(o, map);
                        put_str(o, error);
                    }
                    WireEvent::Flushed { flush_id } => {
                        put_varint(o, 3);
                        put_varint(o, *flush_id);
                    }
                    WireEvent::FlushFailed { flush_id, error } => {
                        put_varint(o, 4);
                        put_varint(o, *flush_id);
                        put_str(o, error);
                    }
                }
            }
        }
        Reply::Imported { changed, drifts } => {
            put_varint(o, 11);
            put_varint(o, *changed);
            put_varint(o, drifts.len() as u64);
            for d in drifts {
                put_str(o, &d.remote);
                put_varint(o, d.wall);
                put_varint(o, d.ahead_ms);
                put_varint(o, d.max_drift_ms);
            }
        }
    }
    out
}

/// A postcard list of strings.
fn put_strs(out: &mut Vec<u8>, items: &[impl AsRef<str>]) {
    put_varint(out, items.len() as u64);
    for item in items {
        put_str(out, item.as_ref());
    }
}

/// Postcard bytes (`Vec<u8>` too: a length, then each byte as it is).
fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A [`MapKind`] as serde writes it: the variant index.
fn put_kind(out: &mut Vec<u8>, kind: MapKind) {
    put_varint(
        out,
        match kind {
            MapKind::Lww => 0,
            MapKind::Or => 1,
        },
    );
}

/// Decodes a byte-ABI reply.
pub fn decode_reply(bytes: &[u8]) -> Result<Reply, Error> {
    check_size(bytes, "reply")?;
    read_versioned_with(bytes, "reply", Reader::reply)
}

// ---- values as bytes ----------------------------------------------------------------------------

/// Checks that `bytes` starts with exactly one encoded [`Value`] (the layout its `Serialize`
/// writes) without building it: every tag, varint, UTF-8 string and float is checked, nesting is
/// bounded by [`MAX_DEPTH`], and varints must be minimal, so a value has exactly one encoding.
/// Returns the value's length and whether it is canonical (every map's keys strictly increasing;
/// a value that is not can be made so with [`Value::normalize`]).
pub fn scan_value(bytes: &[u8]) -> Result<(usize, bool), Error> {
    let mut scan = Scan { bytes, at: 0, canonical: true };
    scan.value(0)
        .map_err(|reason| Error::Decode { what: "value", reason: alloc::format!("{reason} (at byte {})", scan.at) })?;
    Ok((scan.at, scan.canonical))
}

/// Rewrites one valid encoded value (checked by [`scan_value`]) with every map's entries sorted by
/// key bytes, appending it to `out`; a repeated key is an error. Works on the bytes, without
/// building a [`Value`], so values from JavaScript objects (keys in insertion order) stay cheap.
pub fn canonicalize_value(bytes: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    let mut scan = Scan { bytes, at: 0, canonical: true };
    canonicalize(&mut scan, out).map_err(|reason| Error::InvalidValue { path: "$".into(), reason })
}

/// A map entry while sorting: its key, the key as encoded, and its value as a span of the input
/// (already canonical) or rewritten.
type MapEntry<'a> = (&'a str, &'a [u8], Result<&'a [u8], Vec<u8>>);

fn canonicalize(scan: &mut Scan<'_>, out: &mut Vec<u8>) -> Result<(), String> {
    let start = scan.at;
    let tag = scan.bytes.get(start).copied().ok_or("it is truncated")?;
    match tag {
        6 => {
            scan.at += 1;
            let count = scan.len()?;
            out.extend_from_slice(&scan.bytes[start..scan.at]);
            for _ in 0..count {
                canonicalize(scan, out)?;
            }
        }
        7 => {
            scan.at += 1;
            let count = scan.len()?;
            out.extend_from_slice(&scan.bytes[start..scan.at]);
            // (key, its encoded form with the length prefix, the value: a span of the input when it
            // is already canonical, which is the common case, else rewritten)
            // An entry is a key's length and a value's tag at least.
            let mut entries: Vec<MapEntry<'_>> = Vec::with_capacity(scan.capacity_for::<MapEntry<'_>>(count, 2));
            for _ in 0..count {
                let key_at = scan.at;
                let key = scan.text()?;
                let encoded_key = &scan.bytes[key_at..scan.at];
                let value_at = scan.at;
                let canonical = core::mem::replace(&mut scan.canonical, true);
                scan.value(1)?;
                let value = if scan.canonical {
                    Ok(&scan.bytes[value_at..scan.at])
                } else {
                    let mut rewritten = Vec::new();
                    let mut inner = Scan { bytes: &scan.bytes[..scan.at], at: value_at, canonical: true };
                    canonicalize(&mut inner, &mut rewritten)?;
                    Err(rewritten)
                };
                scan.canonical = canonical;
                entries.push((key, encoded_key, value));
            }
            crate::sort::by_key(&mut entries, |e| e.0.as_bytes());
            if let Some(pair) = entries.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(alloc::format!("the key {} appears twice", crate::error::Quoted(&excerpt(pair[0].0))));
            }
            for (_, encoded_key, value) in &entries {
                out.extend_from_slice(encoded_key);
                out.extend_from_slice(match value {
                    Ok(span) => span,
                    Err(rewritten) => rewritten,
                });
            }
        }
        _ => {
            scan.value(0)?; // a scalar: copied as it is
            out.extend_from_slice(&scan.bytes[start..scan.at]);
        }
    }
    Ok(())
}

struct Scan<'a> {
    bytes: &'a [u8],
    at: usize,
    canonical: bool,
}

impl<'a> Scan<'a> {
    /// How many `T`s to reserve for `count` claimed items of at least `min_bytes` bytes each.
    fn capacity_for<T>(&self, count: usize, min_bytes: usize) -> usize {
        capacity_for(count, self.bytes.len() - self.at, min_bytes, core::mem::size_of::<T>())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len()).ok_or("it is truncated")?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn byte(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }

    /// A minimal LEB128 varint of at most 64 bits.
    fn varint(&mut self) -> Result<u64, &'static str> {
        let mut value = 0u64;
        for i in 0..10 {
            let b = self.byte()?;
            if i == 9 && b > 1 {
                return Err("a number is out of range");
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                if b == 0 && i > 0 {
                    return Err("a number is not minimally encoded");
                }
                return Ok(value);
            }
        }
        Err("a number is not a valid varint")
    }

    fn len(&mut self) -> Result<usize, &'static str> {
        let n = self.varint()?;
        usize::try_from(n).ok().filter(|&n| n <= self.bytes.len() - self.at).ok_or("a length is larger than the input")
    }

    /// A length-prefixed UTF-8 string, checked once here (callers need not check it again).
    fn text(&mut self) -> Result<&'a str, &'static str> {
        let n = self.len()?;
        core::str::from_utf8(self.take(n)?).map_err(|_| "a string is not valid UTF-8")
    }

    fn value(&mut self, depth: usize) -> Result<(), &'static str> {
        match self.byte()? {
            0 => {}
            1 => {
                if self.byte()? > 1 {
                    return Err("a boolean is neither 0 nor 1");
                }
            }
            2 => {
                self.varint()?;
            }
            3 => {
                let raw = self.take(8)?;
                let f = f64::from_le_bytes([raw[0], raw[1], raw[2], raw[3], raw[4], raw[5], raw[6], raw[7]]);
                if !f.is_finite() {
                    return Err("NaN and infinities are not allowed");
                }
            }
            4 => {
                self.text()?;
            }
            5 => {
                let n = self.len()?;
                self.take(n)?;
            }
            6 | 7 if depth >= MAX_DEPTH => return Err("a value is nested deeper than 64 levels"),
            6 => {
                for _ in 0..self.len()? {
                    self.value(depth + 1)?;
                }
            }
            7 => {
                let mut previous: Option<&str> = None;
                for _ in 0..self.len()? {
                    let key = self.text()?;
                    if previous.is_some_and(|p| p >= key) {
                        self.canonical = false;
                    }
                    previous = Some(key);
                    self.value(depth + 1)?;
                }
            }
            _ => return Err("an unknown value type tag"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The hand-written encoders against the serde derive of the wire structs they mirror.

    use alloc::string::String;
    use alloc::vec;
    use alloc::vec::Vec;

    use super::*;
    use crate::hlc::{ClockConfig, Hlc};

    /// What `encode_or_snapshot_into` wrote through serde.
    fn serde_or_snapshot(map: &OrMap) -> Vec<u8> {
        let records = map.records();
        let tags: Vec<String> = records.iter().flat_map(|(_, rs)| rs.iter().map(OrRecord::tag)).collect();
        let tombstones = map.tombstones();
        let mut table = NodeTable::default();
        let mut tag_at = tags.iter();
        let keys: Vec<OrKeyWire<'_>> = records
            .iter()
            .map(|(key, rs)| OrKeyWire {
                key,
                records: rs
                    .iter()
                    .map(|r| OrWire {
                        value: r.value.clone(),
                        millis: r.timestamp.millis,
                        counter: r.timestamp.counter,
                        node: table.of(&r.timestamp.node_id),
                        tag: tag_at.next().map_or("", String::as_str),
                        ttl_ms: r.ttl_ms,
                    })
                    .collect(),
            })
            .collect();
        let tombstones = tombstones.iter().map(String::as_str).collect();
        let mut out = vec![FORMAT_VERSION, OR_SNAPSHOT_TAG];
        write_postcard(&OrSnapshotWire { nodes: table.nodes, keys, tombstones }, &mut out);
        out
    }

    fn timestamp_wire(t: &Timestamp) -> TimestampWire<'_> {
        TimestampWire { millis: t.millis, counter: t.counter, node_id: t.node_id.as_str() }
    }

    /// What `encode_stored` wrote through serde.
    fn serde_stored(value: &StoredValue) -> Vec<u8> {
        let tags: Vec<String>;
        let wire = match value {
            StoredValue::Lww(r) => {
                StoredWire::Lww { value: r.value.clone(), timestamp: timestamp_wire(&r.timestamp), ttl_ms: r.ttl_ms }
            }
            StoredValue::Or(records) => {
                tags = records.iter().map(OrRecord::tag).collect();
                StoredWire::Or(
                    records
                        .iter()
                        .zip(&tags)
                        .map(|(r, tag)| StoredOrWire {
                            value: r.value.clone(),
                            timestamp: timestamp_wire(&r.timestamp),
                            tag,
                            ttl_ms: r.ttl_ms,
                        })
                        .collect(),
                )
            }
            StoredValue::OrTombstones(t) => {
                tags = t.iter().map(Timestamp::to_text).collect();
                StoredWire::OrTombstones(tags.iter().map(String::as_str).collect())
            }
            StoredValue::Mark(m) => StoredWire::Mark { kind: m.kind, millis: m.millis, counter: m.counter },
        };
        let mut out = Vec::new();
        write_versioned(&wire, &mut out);
        out
    }

    /// Values of every kind and edge (shared with `reader_tests`).
    pub(super) fn values() -> Vec<Value> {
        let nested = Value::map([
            ("b", Value::from(vec![0u8, 1, 255])),
            ("f", Value::from(-2.5e-300)),
            ("l", Value::list([Value::Null, Value::Bool(true), Value::Bool(false), Value::Int(i64::MIN)])),
            ("n", Value::Int(-64)),
            ("s", Value::from("h\u{e9}llo \u{1F600}")),
        ]);
        let nested = nested.expect("map");
        vec![
            Value::Null,
            Value::Int(0),
            Value::Int(63),
            Value::Int(64),
            Value::Int(-1),
            Value::Int(-65),
            Value::Int(i64::MAX),
            Value::Float(1.5),
            Value::Float(f64::MIN_POSITIVE),
            Value::from("text"),
            Value::from("x".repeat(300)),
            Value::from(vec![7u8; 200]),
            Value::list([nested.clone(), Value::list([])]),
            nested,
        ]
    }

    #[test]
    fn put_value_writes_what_serde_writes() {
        for value in values() {
            let mut out = vec![9];
            put_value(&mut out, &value);
            let serde = postcard::to_allocvec(&value).expect("encode");
            assert_eq!(out[1..], serde[..], "{value:?}");
            assert_eq!(value_len(&value), serde.len(), "{value:?}");
        }
        for n in [0u64, 1, 127, 128, 16_383, 16_384, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, n);
            assert_eq!(varint_len(n), out.len(), "{n}");
        }
    }

    #[test]
    fn stored_values_and_or_snapshots_are_what_serde_writes() {
        let mut clock = Hlc::new(NodeId::new("node-a").expect("node"), ClockConfig::default());
        let mut other = Hlc::new(NodeId::new("b").expect("node"), ClockConfig::default());
        let mut map = OrMap::new();
        assert_eq!(encode_or_snapshot(&map), serde_or_snapshot(&map));
        for (i, value) in values().into_iter().enumerate() {
            let key = alloc::format!("key-{}", i % 4);
            let ttl = (i % 3 == 0).then_some(1_000 + i as u64 * 1_000_000);
            let c = if i % 2 == 0 { &mut clock } else { &mut other };
            map.add(c, 1_700_000_000_000 + i as u64, &key, value.clone(), ttl).expect("write");
            let lww = LwwRecord { value: Some(value), timestamp: c.now(5).expect("the clock has room"), ttl_ms: ttl };
            let stored = StoredValue::Lww(lww.clone());
            assert_eq!(encode_stored(&stored), serde_stored(&stored));
            let tombstone = StoredValue::Lww(LwwRecord { value: None, ..lww.clone() });
            assert_eq!(encode_stored(&tombstone), serde_stored(&tombstone));
            // As the flush writes them: from the map's own record.
            let mut m = LwwMap::new();
            m.merge(c, 5, "k", lww.clone()).expect("merge");
            let held = m.record_ref("k").expect("held");
            assert_eq!(encode_stored_lww(&held), serde_stored(&stored));
            let timestamp = c.now(5).expect("the clock has room");
            m.merge(c, 5, "k", LwwRecord { value: None, timestamp, ..lww }).expect("merge");
            let held = m.record_ref("k").expect("held");
            let tombstone = StoredValue::Lww(m.get_record("k").expect("held"));
            assert_eq!(encode_stored_lww(&held), serde_stored(&tombstone));
        }
        map.remove("key-2", &Value::Int(63)).expect("write");
        assert_eq!(encode_or_snapshot(&map), serde_or_snapshot(&map));
        for key in ["key-0", "key-1", "key-2", "key-3", "none"] {
            let or = StoredValue::Or(map.get_records(key).to_vec());
            assert_eq!(encode_stored(&or), serde_stored(&or));
        }
        let tags: Vec<Timestamp> = map.tombstones().iter().filter_map(|t| Timestamp::parse(t).ok()).collect();
        assert!(!tags.is_empty());
        for tags in [Vec::new(), tags] {
            let stored = StoredValue::OrTombstones(tags);
            assert_eq!(encode_stored(&stored), serde_stored(&stored));
        }
    }
}

#[cfg(test)]
mod reader_tests {
    //! The hand-written readers against serde's deserializers: the same result, or the same error,
    //! on valid encodings, damaged copies of them, and random bytes.

    use alloc::format;
    use alloc::vec;
    use alloc::vec::Vec;
    use core::fmt::Debug;

    use super::*;
    use crate::hlc::{ClockConfig, Hlc};

    /// Every truncation; every byte replaced by values that stress tags, varints and lengths; a
    /// byte inserted and one removed at every position.
    fn damaged(bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for len in 0..bytes.len() {
            out.push(bytes[..len].to_vec());
        }
        for at in 0..bytes.len() {
            let b = bytes[at];
            for v in [0, 1, 2, 3, 5, 7, 8, 0x0f, 0x10, 0x3f, 0x7f, 0x80, 0x81, 0xc0, 0xff, b ^ 1, b.wrapping_add(1)] {
                let mut copy = bytes.to_vec();
                copy[at] = v;
                out.push(copy);
            }
            for v in [0, 0x80, 0xff] {
                let mut copy = bytes.to_vec();
                copy.insert(at, v);
                out.push(copy);
            }
            let mut copy = bytes.to_vec();
            copy.remove(at);
            out.push(copy);
        }
        out.push([bytes, &[0]].concat());
        out
    }

    /// Random byte strings after `prefix`, small values and varint continuation bytes favoured.
    fn random(prefix: &[u8], count: usize, seed: u64) -> Vec<Vec<u8>> {
        let mut state = seed;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        (0..count)
            .map(|_| {
                let len = (next() % 40) as usize;
                let mut bytes = prefix.to_vec();
                for _ in 0..len {
                    let r = next();
                    bytes.push(match r % 4 {
                        0 => (r >> 8) as u8,
                        1 => 0x80 | (r >> 8) as u8,
                        _ => ((r >> 8) % 9) as u8,
                    });
                }
                bytes
            })
            .collect()
    }

    fn same<T: Debug, E: Debug>(bytes: &[u8], ours: Result<T, E>, serde: Result<T, E>) {
        assert_eq!(format!("{ours:?}"), format!("{serde:?}"), "bytes {bytes:?}");
    }

    fn check_value(bytes: &[u8]) {
        same(bytes, take_value(bytes), postcard::take_from_bytes::<Value>(bytes));
    }

    fn check_stored(bytes: &[u8]) {
        let serde = read_versioned::<StoredWire<'_>>(bytes, STORED).and_then(stored_value);
        same(bytes, decode_stored(bytes), serde);
    }

    fn check_request(bytes: &[u8]) {
        let serde = check_size(bytes, "request").and_then(|()| read_versioned::<Request>(bytes, "request"));
        same(bytes, decode_request(bytes), serde);
    }

    fn check_reply(bytes: &[u8]) {
        let serde = check_size(bytes, "reply").and_then(|()| read_versioned::<Reply>(bytes, "reply"));
        same(bytes, decode_reply(bytes), serde);
    }

    fn check_or_snapshot(bytes: &[u8]) {
        if let [FORMAT_VERSION, OR_SNAPSHOT_TAG, ..] = bytes {
            // The tag and the body through serde, as one postcard tuple.
            let serde = read_versioned::<(u8, OrSnapshotWire<'_>)>(bytes, "snapshot")
                .and_then(|(_, wire)| or_snapshot(wire).map_err(in_decode("snapshot")));
            same(bytes, decode_or_snapshot(bytes), serde);
        }
    }

    fn deep(levels: usize, map: bool) -> Vec<u8> {
        let mut bytes = Vec::new();
        for _ in 0..levels {
            bytes.extend_from_slice(if map { &[7, 1, 1, b'k'] } else { &[6, 1] });
        }
        bytes.push(0);
        bytes
    }

    #[test]
    fn values_read_as_serde_reads_them() {
        let mut inputs = vec![deep(63, false), deep(64, false), deep(65, false), deep(64, true), deep(65, true)];
        inputs.push(vec![2, 0x80, 0x00]); // a varint that is not minimal
        inputs.push(vec![3, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f]); // NaN
        inputs.push(vec![4, 2, 0xc3, 0x28]); // bad UTF-8
        inputs.push(vec![0x80, 0x01]); // tag 128
        for value in super::tests::values() {
            let mut bytes = Vec::new();
            put_value(&mut bytes, &value);
            inputs.extend(damaged(&bytes));
            inputs.push(bytes);
        }
        inputs.extend(random(&[], 20_000, 0x9e37_79b9_7f4a_7c15));
        for bytes in &inputs {
            check_value(bytes);
        }
    }

    #[test]
    fn stored_values_read_as_serde_reads_them() {
        let (mut clock, mut map) = (Hlc::new(NodeId::new("n-1").expect("node"), ClockConfig::default()), OrMap::new());
        let mut inputs = Vec::new();
        for (i, value) in super::tests::values().into_iter().enumerate() {
            let ttl = (i % 2 == 0).then_some(1_000);
            let record = map.add(&mut clock, 1_000 + i as u64, "k", value.clone(), ttl).expect("add");
            let lww = LwwRecord { value: Some(value), timestamp: record.timestamp.clone(), ttl_ms: ttl };
            inputs.push(encode_stored(&StoredValue::Lww(lww)));
            inputs.push(encode_stored(&StoredValue::Lww(LwwRecord {
                value: None,
                timestamp: record.timestamp,
                ttl_ms: None,
            })));
        }
        inputs.push(encode_stored(&StoredValue::Or(map.get_records("k")[..2].to_vec())));
        let tags: Vec<Timestamp> = map.get_records("k").iter().map(|r| r.timestamp.clone()).take(3).collect();
        inputs.push(encode_stored(&StoredValue::OrTombstones(tags)));
        let mut all = Vec::new();
        for bytes in &inputs {
            all.extend(damaged(bytes));
            all.push(bytes.clone());
        }
        for prefix in [&[1u8][..], &[1, 0], &[1, 1], &[1, 2]] {
            all.extend(random(prefix, 10_000, 0x2545_f491_4f6c_dd1d));
        }
        all.push(Vec::new());
        all.push(vec![2, 0]);
        for bytes in &all {
            check_stored(bytes);
        }
    }

    #[test]
    fn requests_read_as_serde_reads_them() {
        let kv = |i: u64| (format!("key-{i}"), Value::Int(i as i64));
        let commands = vec![
            Command::Open { node_id: "n".into(), max_drift_ms: 60_000, strict: true },
            Command::OpenPersistent { node_id: "n".into(), max_drift_ms: 0, strict: false },
            Command::Close,
            Command::Set {
                map: "m".into(),
                key: "k".into(),
                value: super::tests::values().pop().expect("v"),
                ttl_ms: Some(5),
            },
            Command::SetMany { map: "m".into(), entries: (0..3).map(kv).collect() },
            Command::Remove { map: "m".into(), key: "k".into() },
            Command::Get { map: "m".into(), key: "k".into() },
            Command::Add { map: "m".into(), key: "k".into(), value: Value::from("v"), ttl_ms: None },
            Command::OrRemove { map: "m".into(), key: "k".into(), value: Value::Bool(true) },
            Command::OrGet { map: "m".into(), key: "k".into() },
            Command::Root { map: "m".into() },
            Command::Export { map: "m".into() },
            Command::Import { map: "m".into(), snapshot: vec![1, 0, 0, 0] },
            Command::Prune { map: "m".into(), older_than: 1 << 40 },
            Command::GetMap { map: "m".into(), kind: None },
            Command::GetMap { map: "m".into(), kind: Some(MapKind::Lww) },
            Command::GetMap { map: "m".into(), kind: Some(MapKind::Or) },
            Command::Flush,
            Command::Storage {
                answers: vec![
                    (1, StorageResult::Keys(vec!["a".into(), "b".into()])),
                    (2, StorageResult::Values(vec![("a".into(), vec![1, 2])])),
                    (3, StorageResult::Done),
                    (u64::MAX, StorageResult::Failed("no".into())),
                ],
            },
        ];
        let mut all = Vec::new();
        for command in commands {
            let bytes = encode_request(&Request { grid: 300, wall: 1_700_000_000_000, command });
            all.extend(damaged(&bytes));
            all.push(bytes);
        }
        all.extend(random(&[1], 10_000, 0x1234_5678_9abc_def1));
        all.extend(random(&[1, 1, 1], 10_000, 0x0fed_cba9_8765_4321));
        for tag in 0..18 {
            all.extend(random(&[1, 1, 1, tag], 2_000, 0x5555_aaaa_1234_0000 + u64::from(tag)));
        }
        all.push(Vec::new());
        for bytes in &all {
            check_request(bytes);
        }
    }

    #[test]
    fn replies_read_as_serde_reads_them() {
        let request = |id, op| StorageRequest { id, op };
        let replies = vec![
            Reply::Done,
            Reply::Opened(u32::MAX),
            Reply::Value(None),
            Reply::Value(super::tests::values().pop()),
            Reply::Values(super::tests::values()),
            Reply::Tags(vec!["1:0:a".into(), "".into()]),
            Reply::Root(0xdead_beef),
            Reply::Bytes((0..=255).collect()),
            Reply::Count(u64::MAX),
            Reply::Error("no".into()),
            Reply::Status(MapStatus::Loading),
            Reply::Status(MapStatus::Loaded(MapKind::Or)),
            Reply::Storage {
                requests: vec![
                    request(1, StorageOp::LoadAllKeys { map: "m".into() }),
                    request(2, StorageOp::LoadAll { map: "m".into(), keys: vec!["a".into(), "b".into()] }),
                    request(3, StorageOp::StoreAll { map: "m".into(), entries: vec![("a".into(), vec![1, 2])] }),
                    request(u64::MAX, StorageOp::DeleteAll { map: "m".into(), keys: vec!["x".into()] }),
                ],
                events: vec![
                    WireEvent::MapLoaded { map: "m".into(), count: 3 },
                    WireEvent::Ready { map: "m".into(), kind: MapKind::Lww },
                    WireEvent::LoadFailed { map: "m".into(), error: "e".into() },
                    WireEvent::Flushed { flush_id: 7 },
                    WireEvent::FlushFailed { flush_id: 8, error: "e".into() },
                ],
            },
        ];
        let mut all = Vec::new();
        for reply in &replies {
            let bytes = encode_reply(reply);
            all.extend(damaged(&bytes));
            all.push(bytes);
        }
        all.extend(random(&[1], 10_000, 0x6a09_e667_f3bc_c908));
        for tag in 0..12 {
            all.extend(random(&[1, tag], 2_000, 0xbb67_ae85_84ca_a73b + u64::from(tag)));
        }
        for op in 0..5 {
            all.extend(random(&[1, 10, 1, 0, op], 2_000, 0x3c6e_f372_fe94_f82b + u64::from(op)));
        }
        all.push(Vec::new());
        for bytes in &all {
            check_reply(bytes);
        }
    }

    #[test]
    fn reservations_are_bounded_by_the_bytes_left_and_a_cap() {
        // 600 bytes hold at most 100 items of 6 bytes, whatever the count claims.
        assert_eq!(capacity_for(usize::MAX, 600, 6, 80), 100);
        assert_eq!(capacity_for(10, 600, 6, 80), 10);
        assert_eq!(capacity_for(1_000_000, 1 << 30, 1, 24), MAX_RESERVE_BYTES / 24);
        assert_eq!(capacity_for(5, 0, 1, 24), 0);
        assert_eq!(capacity_for(5, 10, 0, 0), 5);
    }

    #[test]
    fn import_snapshots_encode_as_the_derived_byte_vec_layout() {
        let snapshot: Vec<u8> = (0..=255).collect();
        let command = Command::Import { map: "m".into(), snapshot: snapshot.clone() };
        let bytes = encode_request(&Request { grid: 300, wall: 1_700_000_000_000, command });
        // What serde derives for a `Vec<u8>` field: a length, then each byte as a `u8`.
        let derived = postcard::to_allocvec(&(300u32, 1_700_000_000_000u64, 11u32, "m", &snapshot)).expect("encode");
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(bytes[1..], derived[..]);
    }

    #[test]
    fn or_snapshots_read_as_serde_reads_them() {
        let (mut a, mut b) = (
            Hlc::new(NodeId::new("a").expect("node"), ClockConfig::default()),
            Hlc::new(NodeId::new("b").expect("node"), ClockConfig::default()),
        );
        let mut map = OrMap::new();
        let mut all = vec![encode_or_snapshot(&map)];
        for (i, value) in super::tests::values().into_iter().enumerate() {
            let clock = if i % 2 == 0 { &mut a } else { &mut b };
            let key = format!("k{}", i % 3);
            map.add(clock, 1_000 + i as u64, &key, value, (i % 3 == 0).then_some(9)).expect("add");
        }
        map.remove("k1", &Value::Int(-1)).expect("remove");
        let bytes = encode_or_snapshot(&map);
        all.extend(damaged(&bytes));
        all.push(bytes);
        all.extend(random(&[1, 1], 20_000, 0x0123_4567_89ab_cdef));
        let mut one_key = vec![1, 1, 1, 1, b'a', 1, 1, b'k'];
        one_key.extend_from_slice(&[1, 0, 5, 0, 0]);
        one_key.extend(random(&[], 1, 7).concat());
        all.extend(damaged(&one_key));
        for bytes in &all {
            check_or_snapshot(bytes);
        }
    }
}
