//! What both map kinds share: the key and TTL rules, TTL expiry, the merge outcome, the map kind,
//! and the table hasher.

use core::fmt;
use core::num::NonZeroU64;

use crate::error::Error;
use crate::hlc::Drift;

/// The key every map reserves for the OR map's stored tombstone list.
pub const RESERVED_KEY: &str = "__tombstones__";

/// The key every map reserves for its stored mark (kind and clock high-water mark, see
/// [`crate::codec::MapMark`]).
pub const MARK_KEY: &str = "__mark__";

/// The hash tables' hasher: seeded, not random (the core takes no randomness, and the same inputs
/// must give the same work everywhere), and built on 64-bit multiplies, which wasm32 has natively
/// (general-purpose hashers lean on 128-bit products, which wasm32 emulates). A per-grid seed from
/// the embedder is the hardening step against hash flooding.
pub(crate) type Hasher = core::hash::BuildHasherDefault<KeyHasher>;

/// An FxHash-style hasher: each word is folded in with a rotate, xor and multiply.
#[derive(Clone, Copy, Default)]
pub(crate) struct KeyHasher(u64);

const K: u64 = 0xf135_7aea_2e62_a9c5;

impl KeyHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0 ^ word).wrapping_mul(K).rotate_left(20);
    }
}

impl core::hash::Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // Spread the well-mixed high bits down too: hashbrown indexes buckets with the low bits.
        self.0 ^ (self.0 >> 29)
    }
}

/// The two kinds of map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum MapKind {
    /// Last-writer-wins map.
    Lww,
    /// Observed-remove multimap.
    Or,
}

impl MapKind {
    /// The kinds in the order of their one numbering ([`MapKind::code`]).
    pub const ALL: [MapKind; 2] = [MapKind::Lww, MapKind::Or];

    /// The kind's number, the one numbering every boundary uses: postcard's variant index (0 LWW,
    /// 1 OR), and in the JavaScript glue, where "no kind" is 0, the number plus one.
    pub fn code(self) -> u8 {
        match self {
            Self::Lww => 0,
            Self::Or => 1,
        }
    }

    /// The kind numbered `code`, if any.
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.get(code as usize).copied()
    }

    /// `"lww"` or `"or"`, as the JavaScript API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lww => "lww",
            Self::Or => "or",
        }
    }
}

impl fmt::Display for MapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Lww => "LWW",
            Self::Or => "OR",
        })
    }
}

/// The outcome of merging one remote record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merged {
    /// The record won and is now stored.
    pub accepted: bool,
    /// Lenient mode: the record's timestamp was ahead of the wall clock by more than allowed.
    pub drift: Option<Drift>,
}

/// Refuses the reserved keys, for writes and reads alike (SPEC section 3: using them is an error).
pub fn check_key(key: &str) -> Result<(), Error> {
    match key {
        RESERVED_KEY => Err(Error::ReservedKey { key: RESERVED_KEY }),
        MARK_KEY => Err(Error::ReservedKey { key: MARK_KEY }),
        _ => Ok(()),
    }
}

pub(crate) fn check_ttl(ttl_ms: Option<u64>) -> Result<(), Error> {
    if ttl_ms == Some(0) { Err(Error::InvalidTtl) } else { Ok(()) }
}

/// Turns an optional part of a map (change tracking, an event queue) on with a fresh default, or
/// off; a part already in the asked state is left as it is.
pub(crate) fn switch<T: Default>(part: &mut Option<T>, on: bool) {
    if on != part.is_some() {
        *part = on.then(T::default);
    }
}

/// Expired means `millis + ttl < wall`: a record is still alive at exactly `millis + ttl`.
#[inline]
pub(crate) fn is_expired(millis: u64, ttl_ms: Option<NonZeroU64>, wall: u64) -> bool {
    ttl_ms.is_some_and(|ttl| millis.saturating_add(ttl.get()) < wall)
}
