//! What both map kinds share: the key and TTL rules, TTL expiry, the merge outcome, the map kind,
//! and the table hasher.

use core::fmt;
use core::num::NonZeroU64;

use crate::error::Error;
use crate::hlc::Drift;

/// The key every map reserves for the OR map's stored tombstone list.
pub const RESERVED_KEY: &str = "__tombstones__";

/// Seeded, not random: the core takes no randomness, and the same inputs must give the same work
/// everywhere. (A per-grid seed from the embedder is the hardening step against hash flooding.)
pub(crate) type Hasher = foldhash::fast::FixedState;

/// The two kinds of map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MapKind {
    /// Last-writer-wins map.
    Lww,
    /// Observed-remove multimap.
    Or,
}

impl MapKind {
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

pub(crate) fn check_key(key: &str) -> Result<(), Error> {
    if key == RESERVED_KEY { Err(Error::ReservedKey) } else { Ok(()) }
}

pub(crate) fn check_ttl(ttl_ms: Option<u64>) -> Result<(), Error> {
    if ttl_ms == Some(0) { Err(Error::InvalidTtl) } else { Ok(()) }
}

/// Expired means `millis + ttl < wall`: a record is still alive at exactly `millis + ttl`.
#[inline]
pub(crate) fn is_expired(millis: u64, ttl_ms: Option<NonZeroU64>, wall: u64) -> bool {
    ttl_ms.is_some_and(|ttl| millis.saturating_add(ttl.get()) < wall)
}
