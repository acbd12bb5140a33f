//! A value's bytes: its postcard encoding, written and read by hand ([`put_value`],
//! [`take_value`]: the module's one value encoder and one value decoder), checked without being
//! built ([`scan_value`]), made canonical ([`canonicalize_value`]), and kept as [`Encoded`], the
//! form an LWW map holds. This file sits below the maps (`lww.rs` stores `Encoded`), so it uses
//! only the writer, the reader cursors and the value tree.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::codec::read::{Reader, Scan, unzigzag};
use crate::codec::write::{put_bytes, put_str, put_varint, varint_len, zigzag};
use crate::error::{Error, Quoted, excerpt};
use crate::value::{MAX_DEPTH, Value};

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

/// Splits one postcard-encoded [`Value`] off the front of `bytes`, as its `Deserialize` reads it
/// (same errors; nesting bounded, the rest left to [`Value::validate`]). Like [`put_value`], it
/// keeps the module at one value decoder.
pub fn take_value(bytes: &[u8]) -> postcard::Result<(Value, &[u8])> {
    let mut reader = Reader { bytes };
    let value = reader.value()?;
    Ok((value, reader.bytes))
}

impl<'a> Reader<'a> {
    /// A [`Value`], as its `Deserialize` reads it.
    pub(crate) fn value(&mut self) -> postcard::Result<Value> {
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
}

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
                return Err(alloc::format!("the key {} appears twice", Quoted(&excerpt(pair[0].0))));
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

impl<'a> Scan<'a> {
    pub(crate) fn value(&mut self, depth: usize) -> Result<(), &'static str> {
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

// ---- a value kept as its bytes ------------------------------------------------------------------

/// A valid value in its one canonical postcard encoding: what an LWW map stores. Keeping the bytes
/// (not the tree) makes a write from JavaScript or a snapshot one allocation, reads a copy, and a
/// record smaller; [`Encoded::decode`] gives the [`Value`] back.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Encoded(Box<[u8]>);

impl Encoded {
    /// Encodes a value (it must be valid: see [`Value::validate`]).
    pub fn new(value: &Value) -> Self {
        // One allocation, at the exact size.
        let mut out = Vec::with_capacity(value_len(value));
        put_value(&mut out, value);
        Self(out.into_boxed_slice())
    }

    /// Checks and adopts bytes of one value, making them canonical if a map's keys are out of order.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let (value, rest) = Self::take(bytes)?;
        if !rest.is_empty() {
            return Err(Error::Decode {
                what: "value",
                reason: alloc::format!("{} unexpected bytes after the end", rest.len()),
            });
        }
        Ok(value)
    }

    /// Like [`Encoded::from_bytes`] for the value at the front of `bytes`; returns the rest.
    pub fn take(bytes: &[u8]) -> Result<(Self, &[u8]), Error> {
        let (len, canonical) = scan_value(bytes)?;
        let (head, rest) = bytes.split_at(len);
        if canonical {
            return Ok((Self(head.into()), rest));
        }
        let mut sorted = Vec::with_capacity(head.len());
        canonicalize_value(head, &mut sorted)?;
        Ok((Self(sorted.into_boxed_slice()), rest))
    }

    /// Like [`Encoded::take`], but a value that is not already canonical is an error: for encodings
    /// this crate wrote (snapshots), where anything else is malformed.
    pub fn take_canonical(bytes: &[u8]) -> Result<(Self, &[u8]), Error> {
        let (len, canonical) = scan_value(bytes)?;
        if !canonical {
            return Err(Error::Decode { what: "value", reason: "map keys must be unique and sorted".into() });
        }
        let (head, rest) = bytes.split_at(len);
        Ok((Self(head.into()), rest))
    }

    /// Adopts bytes the caller has already checked to be one canonical value (the column-wise
    /// snapshot decoder checks each part as it reads it).
    pub(crate) fn from_checked(bytes: &[u8]) -> Self {
        Self(bytes.into())
    }

    /// The canonical bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The value.
    pub fn decode(&self) -> Value {
        // The bytes were checked (or written by `new`) when this was built, so decoding succeeds.
        take_value(&self.0).map_or(Value::Null, |(value, _)| value)
    }
}

impl fmt::Debug for Encoded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Encoded({} bytes)", self.0.len())
    }
}

impl From<&Value> for Encoded {
    fn from(value: &Value) -> Self {
        Self::new(value)
    }
}
