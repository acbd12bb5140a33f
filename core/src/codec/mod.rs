//! The one place where bytes become records and records become bytes: values, map snapshots and
//! stored values behind a format version byte (postcard, except LWW snapshots, which are stored
//! column by column).
//!
//! Decoding never panics on untrusted bytes and checks everything before returning: the version,
//! that nothing trails the payload, node ids, TTLs, values (finite floats, sorted map keys, depth),
//! the reserved key, and that an OR record's tag is the text of its own timestamp. A caller applies a
//! decoded snapshot only after it decoded whole, so bad bytes change nothing. A count read from the
//! input reserves no more memory than the bytes left can back (`read.rs`).
//!
//! ## Contents
//! - `write.rs`: the writer (postcard varints, strings, bytes, options), by hand.
//! - `read.rs`: the reader cursors: `Reader` reads postcard as serde does, `Scan` checks canonical
//!   bytes (why two remain is written there).
//! - `value.rs`: a value's bytes ([`put_value`], [`take_value`], [`scan_value`],
//!   [`canonicalize_value`]) and [`Encoded`], a value kept as them.
//! - `snapshot.rs`: map snapshots ([`Snapshot`]; the LWW layout in `snapshot/lww_columns.rs`).
//! - `stored.rs`: what the storage contract stores ([`StoredValue`], the map's [`MapMark`]).
//! - `tests.rs`: the hand-written encoders and readers against serde's derives.
//! - This file: the version byte, the size limit, and what every decoder shares (errors, checks).
//!
//! The byte ABI's requests and replies are encoded in [`crate::abi`]; [`encode_request`],
//! [`decode_request`], [`encode_reply`] and [`decode_reply`] are re-exported here, where callers
//! have always found them.
//!
//! ## Layering
//! `write`, `read` and `value` sit below the maps (an LWW map holds its values encoded) and use
//! nothing above `value`; `snapshot` and `stored` sit above the maps, which they encode whole and
//! record by record. Nothing here uses the storage manager, the grid or the byte ABI.

pub(crate) mod read;
pub(crate) mod snapshot;
pub(crate) mod stored;
#[cfg(test)]
pub(crate) mod tests;
pub(crate) mod value;
pub(crate) mod write;

use alloc::boxed::Box;
use alloc::string::{String, ToString};

#[cfg(test)]
use serde::Deserialize;

use crate::codec::read::Reader;
use crate::error::{Error, Quoted, excerpt};
use crate::hlc::{NodeId, Timestamp};
use crate::value::{MAX_DEPTH, Value};

pub use crate::abi::codec::{decode_reply, decode_request, encode_reply, encode_request};
pub use crate::lww::{RawLwwRecord, RawLwwSnapshot, StoredLww};
pub use snapshot::{
    LwwRow, Snapshot, decode_lww_snapshot_raw, decode_snapshot, encode_lww_rows, encode_lww_snapshot,
    encode_lww_snapshot_into, encode_or_snapshot, encode_or_snapshot_into, snapshot_kind,
};
pub use stored::{MapMark, StoredValue, decode_stored, decode_stored_lww_raw, encode_stored};
pub use value::{Encoded, canonicalize_value, put_value, scan_value, take_value};
pub use write::{put_str, put_varint};

/// The first byte of every encoding this module writes.
pub const FORMAT_VERSION: u8 = 1;

/// Largest request or reply the byte ABI accepts (64 MiB): checked before anything is decoded. It
/// also bounds what an LWW snapshot may decode to (see `snapshot/lww_columns.rs`).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

// ---- reading a whole encoding, and its errors ------------------------------------------------

/// Decodes `[FORMAT_VERSION] postcard(T)` with nothing trailing, through serde: the tests' reference.
#[cfg(test)]
pub(crate) fn read_versioned<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &'static str) -> Result<T, Error> {
    read_versioned_with(bytes, what, Reader::serde)
}

/// `read_versioned` (the tests' serde reference) with `read` reading the body.
pub(crate) fn read_versioned_with<'a, T>(
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
pub(crate) fn read_body_with<'a, T>(
    body: &'a [u8],
    what: &'static str,
    read: impl FnOnce(&mut Reader<'a>) -> postcard::Result<T>,
) -> Result<T, Error> {
    let mut reader = Reader { bytes: body };
    let value = read(&mut reader).map_err(|e| Error::Decode { what, reason: postcard_reason(&e) })?;
    trailing(reader.bytes.len(), what)?;
    Ok(value)
}

pub(crate) fn trailing(rest: usize, what: &'static str) -> Result<(), Error> {
    if rest == 0 {
        return Ok(());
    }
    Err(Error::Decode { what, reason: alloc::format!("{rest} unexpected bytes after the end") })
}

pub(crate) fn postcard_reason(e: &postcard::Error) -> String {
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
pub(crate) fn in_decode(what: &'static str) -> impl Fn(Error) -> Error {
    move |e| match e {
        Error::Decode { .. } => e,
        other => Error::Decode { what, reason: other.to_string() },
    }
}

// ---- checks every record decoder makes --------------------------------------------------------

/// The error for a snapshot key that is not after the one before it.
pub(crate) fn out_of_order(key: &str) -> Error {
    Error::Decode {
        what: "snapshot",
        reason: alloc::format!("the key {} is repeated or out of order", Quoted(&excerpt(key))),
    }
}

pub(crate) fn node_at(table: &[NodeId], index: u32) -> Result<NodeId, Error> {
    table.get(index as usize).cloned().ok_or_else(|| Error::Decode {
        what: "snapshot",
        reason: alloc::format!("node index {index} is out of range (the table has {})", table.len()),
    })
}

pub(crate) fn check_key(key: &str) -> Result<Box<str>, Error> {
    crate::map_common::check_key(key)?;
    Ok(Box::from(key))
}

pub(crate) fn check_ttl(ttl_ms: Option<u64>) -> Result<Option<u64>, Error> {
    crate::map_common::check_ttl(ttl_ms)?;
    Ok(ttl_ms)
}

pub(crate) fn check_value(value: Value) -> Result<Value, Error> {
    value.validate()?;
    Ok(value)
}

/// Checks that `tag` is the text form of `timestamp`.
pub(crate) fn check_tag(tag: &str, timestamp: &Timestamp) -> Result<(), Error> {
    let text = timestamp.to_text();
    if tag == text { Ok(()) } else { Err(Error::MalformedOrRecord { tag: excerpt(tag), timestamp: text }) }
}
