//! The writer: postcard's encoding of numbers, strings, bytes, options and map kinds, written by
//! hand, so the module carries no serde serializer for what the core encodes (the parity tests in
//! `tests.rs` check the bytes against serde's). Every encoder of the crate appends to a `Vec<u8>`
//! through these; the one serde path left, [`write_versioned`], serves the byte ABI's requests
//! (written by hosts, rarely by the module) and the tests.

use alloc::vec::Vec;

use serde::Serialize;

use crate::codec::FORMAT_VERSION;
use crate::map_common::MapKind;

/// Appends `[FORMAT_VERSION]` and `body` in postcard, through serde.
pub(crate) fn write_versioned<T: Serialize>(body: &T, out: &mut Vec<u8>) {
    out.push(FORMAT_VERSION);
    write_postcard(body, out);
}

/// Appends `body` in postcard, through serde.
pub(crate) fn write_postcard<T: Serialize>(body: &T, out: &mut Vec<u8>) {
    // Serializing into a growable Vec fails only on allocation failure, which aborts anyway.
    if let Ok(bytes) = postcard::to_extend(body, core::mem::take(out)) {
        *out = bytes;
    }
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

/// A postcard list of strings.
pub(crate) fn put_strs(out: &mut Vec<u8>, items: &[impl AsRef<str>]) {
    put_varint(out, items.len() as u64);
    for item in items {
        put_str(out, item.as_ref());
    }
}

/// Postcard bytes (`Vec<u8>` too: a length, then each byte as it is).
pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A postcard `Option<u64>`.
pub(crate) fn put_option_u64(out: &mut Vec<u8>, n: Option<u64>) {
    match n {
        Some(n) => {
            out.push(1);
            put_varint(out, n);
        }
        None => out.push(0),
    }
}

/// A [`MapKind`] as serde writes it: the variant index, which is [`MapKind::code`].
pub(crate) fn put_kind(out: &mut Vec<u8>, kind: MapKind) {
    put_varint(out, u64::from(kind.code()));
}

/// Postcard's signed integers: zigzag, so small magnitudes of either sign are short varints.
pub(crate) fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

pub(crate) fn varint_len(n: u64) -> usize {
    // 7 bits a byte; 0 still takes one.
    (64 - (n | 1).leading_zeros() as usize).div_ceil(7)
}
