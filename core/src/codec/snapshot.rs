//! Map snapshots: every record of a map, tombstones included, as one buffer.
//!
//! Layout: `[FORMAT_VERSION]`, a variant tag, then a body that lists each writer's node id once and
//! refers to it by index. An OR snapshot's body is postcard (tag 1, written by hand in the layout
//! serde gives `OrSnapshotWire`); an LWW snapshot's is stored column by column (tag 2, see
//! `snapshot/lww_columns.rs`). An LWW snapshot decodes with its values still encoded
//! ([`RawLwwSnapshot`]), so an import adopts the bytes instead of building values and encoding
//! them again.

mod lww_columns;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use hashbrown::HashMap;
use serde::{Deserialize, Serialize};

use crate::codec::read::{Reader, Scan};
use crate::codec::value::{Encoded, put_value};
use crate::codec::write::{put_option_u64, put_str, put_strs, put_varint};
use crate::codec::{
    FORMAT_VERSION, check_key, check_tag, check_ttl, check_value, in_decode, node_at, out_of_order, read_body_with,
};
use crate::error::Error;
use crate::hlc::{NodeId, Timestamp};
use crate::lww::{LwwMap, LwwRecord, RawLwwSnapshot, RecordRef};
use crate::map_common::{Hasher, MapKind};
use crate::or_map::{OrMap, OrRecord};
use crate::value::Value;

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

// ---- the OR snapshot's wire structs ------------------------------------------------------------
//
// The encoder and decoder handle this layout by hand (serde's code for it cost the wasm module
// several times as much); `tests.rs` checks the hand-written bytes and `Reader` against the derived
// `Serialize` and `Deserialize`.

/// The body of an OR snapshot.
#[derive(Serialize, Deserialize)]
pub(super) struct OrSnapshotWire<'a> {
    #[serde(borrow)]
    pub(super) nodes: Vec<&'a str>,
    #[serde(borrow)]
    pub(super) keys: Vec<OrKeyWire<'a>>,
    #[serde(borrow)]
    pub(super) tombstones: Vec<&'a str>,
}

/// The variant tag of an OR snapshot.
pub(super) const OR_SNAPSHOT_TAG: u8 = 1;

#[derive(Serialize, Deserialize)]
pub(super) struct OrKeyWire<'a> {
    pub(super) key: &'a str,
    #[serde(borrow)]
    pub(super) records: Vec<OrWire<'a>>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct OrWire<'a> {
    pub(super) value: Value,
    pub(super) millis: u64,
    pub(super) counter: u32,
    pub(super) node: u32,
    pub(super) tag: &'a str,
    pub(super) ttl_ms: Option<u64>,
}

// ---- encoding ----------------------------------------------------------------------------------

/// Interns node ids while encoding: each writer's id is written once.
#[derive(Default)]
pub(super) struct NodeTable<'a> {
    pub(super) index: HashMap<&'a str, u32, Hasher>,
    pub(super) nodes: Vec<&'a str>,
}

impl<'a> NodeTable<'a> {
    pub(super) fn of(&mut self, node: &'a NodeId) -> u32 {
        let next = u32::try_from(self.nodes.len()).unwrap_or(u32::MAX);
        *self.index.entry(node.as_str()).or_insert_with(|| {
            self.nodes.push(node.as_str());
            next
        })
    }
}

/// Appends a snapshot of every record of `map` (tombstones included) to `out`, column by column
/// (see `lww_columns`); stored value bytes are read as they are, not decoded into values.
pub fn encode_lww_snapshot_into(map: &LwwMap, out: &mut Vec<u8>) {
    encode_lww_refs_into(&map.record_refs(), out);
}

/// Appends a snapshot of some records of an LWW map (sorted by key, each key once, as the
/// decoder demands): sync sends the records of a catch-up or a push as such a fragment, so the one
/// hardened decoder reads them and an import merges them.
pub(crate) fn encode_lww_refs_into(records: &[RecordRef<'_>], out: &mut Vec<u8>) {
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

/// Appends a snapshot of `map` (live records and tombstones) to `out`. Written by hand in the
/// layout serde gives `OrSnapshotWire` after the tag (which decodes it).
pub fn encode_or_snapshot_into(map: &OrMap, out: &mut Vec<u8>) {
    encode_or_part_into(&map.records(), &map.tombstones(), out);
}

/// Appends an OR snapshot of some keys (sorted, each once) and some tombstoned tags (text form,
/// sorted): a fragment of a map, as sync sends it (see [`encode_lww_refs_into`]).
pub(crate) fn encode_or_part_into(records: &[(&str, &[OrRecord])], tombstones: &[String], out: &mut Vec<u8>) {
    let mut table = NodeTable::default();
    let nodes: Vec<u32> =
        records.iter().flat_map(|(_, rs)| rs.iter()).map(|r| table.of(&r.timestamp.node_id)).collect();
    out.push(FORMAT_VERSION);
    out.push(OR_SNAPSHOT_TAG);
    put_strs(out, &table.nodes);
    put_varint(out, records.len() as u64);
    let mut node_at = nodes.into_iter();
    for (key, rs) in records {
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
    put_strs(out, tombstones);
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

// ---- decoding ----------------------------------------------------------------------------------

impl<'a> Reader<'a> {
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

fn node_table(nodes: &[&str]) -> Result<Vec<NodeId>, Error> {
    nodes.iter().map(|n| NodeId::new(n)).collect()
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

pub(super) fn or_snapshot(wire: OrSnapshotWire<'_>) -> Result<Snapshot, Error> {
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
