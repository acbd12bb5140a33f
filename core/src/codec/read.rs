//! The reader cursors, and the one bound on what a decoded count may reserve.
//!
//! There are two, for two contracts:
//! - [`Reader`] reads postcard exactly as serde's deserializer does: it accepts what serde accepts
//!   (a varint need not be minimal) and fails with the same `postcard::Error` on the same bytes,
//!   which the parity tests pin. Stored values, the byte ABI's requests and replies, OR snapshot
//!   bodies and values in those are read with it; it advances a slice, the cheapest step for the
//!   request decoder the byte ABI runs on every call.
//! - [`Scan`] checks bytes this crate must find canonical (a value's one encoding, LWW snapshot
//!   columns, the fast path of stored LWW records): varints must be minimal, a map's keys sorted
//!   (the `canonical` flag), and an error names its byte offset. It keeps its position (`at`) to
//!   hand out spans of the input, which the canonicalizer and the column decoder copy as they are.
//!
//! One cursor for both would carry a position and a flag into every byte-ABI read, and either
//! return two error types or map one into the other on the hot paths; so two remain, sharing
//! [`capacity_for`]. What each reads beyond numbers and strings is written beside its format: a
//! value in `value.rs`, a stored value in `stored.rs`, an OR snapshot in `snapshot.rs`, a request
//! or reply in `crate::abi`.

use alloc::string::String;
use alloc::vec::Vec;

#[cfg(test)]
use serde::Deserialize;

use crate::map_common::MapKind;

/// The most memory a decoder reserves at once for a count the input claims: past it, a vector
/// grows as its items really arrive. Without it, nested lists (a value's, 64 deep) could each
/// reserve for every byte left, and an item of one byte on the wire can take 24 to 88 in memory.
pub(crate) const MAX_RESERVE_BYTES: usize = 64 << 10;

/// How many items of `size` bytes in memory to reserve for `count` claimed ones that take at
/// least `min_bytes` each on the wire, with `remaining` bytes of input left: no more than those
/// bytes can hold, nor than [`MAX_RESERVE_BYTES`]. Every reservation from a decoded count goes
/// through here (by [`Reader::capacity_for`] or [`Scan::capacity_for`]).
#[inline(never)]
pub(crate) fn capacity_for(count: usize, remaining: usize, min_bytes: usize, size: usize) -> usize {
    count.min(remaining / min_bytes.max(1)).min(MAX_RESERVE_BYTES / size.max(1))
}

/// Reads postcard as its serde deserializer does, giving the same error for the same bytes.
/// Values, stored values, requests, replies and OR snapshot bodies are read by hand with it:
/// serde's deserializers for them would be a second decoder in the wasm module, and serde's `Vec`
/// reserves up to 1 MiB for any count no larger than the bytes left (postcard 1.2 hints it).
/// `tests.rs` and `abi/tests.rs` check each against serde on valid, damaged and random bytes.
pub(crate) struct Reader<'a> {
    pub(crate) bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// How many `T`s to reserve for `count` claimed items of at least `min_bytes` bytes each.
    pub(crate) fn capacity_for<T>(&self, count: usize, min_bytes: usize) -> usize {
        capacity_for(count, self.bytes.len(), min_bytes, core::mem::size_of::<T>())
    }

    /// A `T` through serde.
    #[cfg(test)]
    pub(crate) fn serde<T: Deserialize<'a>>(&mut self) -> postcard::Result<T> {
        let (value, rest) = postcard::take_from_bytes::<T>(self.bytes)?;
        self.bytes = rest;
        Ok(value)
    }

    pub(crate) fn byte(&mut self) -> postcard::Result<u8> {
        let (&b, rest) = self.bytes.split_first().ok_or(postcard::Error::DeserializeUnexpectedEnd)?;
        self.bytes = rest;
        Ok(b)
    }

    pub(crate) fn take(&mut self, n: usize) -> postcard::Result<&'a [u8]> {
        if n > self.bytes.len() {
            return Err(postcard::Error::DeserializeUnexpectedEnd);
        }
        let (taken, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(taken)
    }

    /// A varint of at most `max_bytes` bytes whose last byte holds at most `max_last` (the bits
    /// left of the type's width), as postcard checks it.
    pub(crate) fn varint(&mut self, max_bytes: u32, max_last: u8) -> postcard::Result<u64> {
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
    pub(crate) fn u32(&mut self) -> postcard::Result<u32> {
        Ok(self.varint(5, 0x0f)? as u32)
    }

    pub(crate) fn u64(&mut self) -> postcard::Result<u64> {
        self.varint(10, 0x01)
    }

    /// A length: a varint of the platform's `usize`.
    #[inline(never)]
    pub(crate) fn len(&mut self) -> postcard::Result<usize> {
        Ok(if usize::BITS == 32 { self.u32()? as usize } else { self.u64()? as usize })
    }

    pub(crate) fn bool(&mut self) -> postcard::Result<bool> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(postcard::Error::DeserializeBadBool),
        }
    }

    /// An option's tag: true for `Some`.
    pub(crate) fn some(&mut self) -> postcard::Result<bool> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(postcard::Error::DeserializeBadOption),
        }
    }

    pub(crate) fn option_u64(&mut self) -> postcard::Result<Option<u64>> {
        Ok(if self.some()? { Some(self.u64()?) } else { None })
    }

    /// An enum's variant index, below `count` (serde refuses others with a custom error).
    pub(crate) fn variant(&mut self, count: u32) -> postcard::Result<u32> {
        let index = self.u32()?;
        if index < count { Ok(index) } else { Err(postcard::Error::SerdeDeCustom) }
    }

    pub(crate) fn str(&mut self) -> postcard::Result<&'a str> {
        let n = self.len()?;
        core::str::from_utf8(self.take(n)?).map_err(|_| postcard::Error::DeserializeBadUtf8)
    }

    pub(crate) fn string(&mut self) -> postcard::Result<String> {
        Ok(String::from(self.str()?))
    }

    /// A `Vec<u8>` (a length, then the bytes).
    pub(crate) fn byte_vec(&mut self) -> postcard::Result<Vec<u8>> {
        let n = self.len()?;
        Ok(self.take(n)?.to_vec())
    }

    /// A sequence: a length, then the items, each at least `min_bytes` long on the wire (the
    /// length is not trusted beyond what the bytes left can hold).
    pub(crate) fn list<T>(
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

    pub(crate) fn kind(&mut self) -> postcard::Result<MapKind> {
        // `variant` refused a number past the last kind.
        Ok(MapKind::from_code(self.variant(MapKind::ALL.len() as u32)?).unwrap_or(MapKind::Lww))
    }
}

/// The signed integer a zigzag number (see `write.rs`) stands for.
pub(crate) fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

/// Checks bytes that must be canonical, keeping its position to name it in errors and to hand out
/// spans of the input; `canonical` turns false when a map's keys are out of order.
pub(crate) struct Scan<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) at: usize,
    pub(crate) canonical: bool,
}

impl<'a> Scan<'a> {
    /// How many `T`s to reserve for `count` claimed items of at least `min_bytes` bytes each.
    pub(crate) fn capacity_for<T>(&self, count: usize, min_bytes: usize) -> usize {
        capacity_for(count, self.bytes.len() - self.at, min_bytes, core::mem::size_of::<T>())
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len()).ok_or("it is truncated")?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    pub(crate) fn byte(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }

    /// A minimal LEB128 varint of at most 64 bits.
    pub(crate) fn varint(&mut self) -> Result<u64, &'static str> {
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

    pub(crate) fn len(&mut self) -> Result<usize, &'static str> {
        let n = self.varint()?;
        usize::try_from(n).ok().filter(|&n| n <= self.bytes.len() - self.at).ok_or("a length is larger than the input")
    }

    /// A length-prefixed UTF-8 string, checked once here (callers need not check it again).
    pub(crate) fn text(&mut self) -> Result<&'a str, &'static str> {
        let n = self.len()?;
        core::str::from_utf8(self.take(n)?).map_err(|_| "a string is not valid UTF-8")
    }
}
