//! Stored values: what the storage contract of SPEC section 6 keeps under each key of a map, behind
//! the format version byte. An LWW record, one OR key's live records, the OR tombstone list (under
//! [`crate::RESERVED_KEY`]) or the map's mark (under [`crate::MARK_KEY`]). Written by hand in the
//! layout serde gives `StoredWire`; LWW records have a fast path each way that keeps the value
//! encoded ([`encode_stored_lww`] from a map's own record, [`decode_stored_lww_raw`] into
//! [`StoredLww`]).

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::codec::read::{Reader, Scan};
use crate::codec::value::{Encoded, put_value};
use crate::codec::write::{put_kind, put_option_u64, put_str, put_strs, put_varint};
use crate::codec::{FORMAT_VERSION, check_tag, check_ttl, check_value, in_decode, read_versioned_with};
use crate::error::Error;
use crate::hlc::{NodeId, Timestamp};
use crate::lww::{LwwRecord, RecordRef, StoredLww};
use crate::map_common::MapKind;
use crate::or_map::OrRecord;
use crate::value::Value;

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

// ---- wire structs (the layout `tests.rs` checks against serde) ---------------------------------

#[derive(Serialize, Deserialize)]
pub(super) struct TimestampWire<'a> {
    pub(super) millis: u64,
    pub(super) counter: u32,
    pub(super) node_id: &'a str,
}

#[derive(Serialize, Deserialize)]
pub(super) enum StoredWire<'a> {
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
pub(super) struct StoredOrWire<'a> {
    pub(super) value: Value,
    #[serde(borrow)]
    pub(super) timestamp: TimestampWire<'a>,
    pub(super) tag: &'a str,
    pub(super) ttl_ms: Option<u64>,
}

// ---- encoding ----------------------------------------------------------------------------------

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

// ---- decoding ----------------------------------------------------------------------------------

impl<'a> Reader<'a> {
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
}

/// Decodes one value written by [`encode_stored`].
pub fn decode_stored(bytes: &[u8]) -> Result<StoredValue, Error> {
    stored_value(read_versioned_with(bytes, STORED, Reader::stored)?)
}

pub(super) const STORED: &str = "stored value";

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

pub(super) fn stored_value(wire: StoredWire<'_>) -> Result<StoredValue, Error> {
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
