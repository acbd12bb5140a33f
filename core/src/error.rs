//! The one error type of the core. Every variant names the input and what was wrong with it, so the
//! message can be shown to an app developer as it is (the wasm crate turns it into a JS `Error`).

use alloc::string::String;
use core::fmt;

use crate::hlc::Drift;
use crate::map_common::MapKind;

/// Everything the core can refuse. No operation that returns an error has changed any state.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A node id that is empty, longer than 64 bytes or has a byte outside `[A-Za-z0-9._-]`.
    InvalidNodeId {
        /// The rejected id (cut to 80 characters).
        id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A timestamp (or OR tag) whose text form is not `<millis>:<counter>:<node_id>` in canonical decimal.
    InvalidTimestamp {
        /// The rejected text (cut to 80 characters).
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The keys `__tombstones__` and `__mark__` are reserved in every map.
    ReservedKey {
        /// The key that was used.
        key: &'static str,
    },
    /// A TTL of zero milliseconds.
    InvalidTtl,
    /// A value the data model cannot hold (NaN, infinity, too deep, ...).
    InvalidValue {
        /// Where in the value, as a path like `$.a[3]`.
        path: String,
        /// What is wrong there.
        reason: String,
    },
    /// Strict mode: a remote timestamp is further ahead of the wall clock than `max_drift_ms`.
    ClockDrift(Drift),
    /// The clock is at `(u64::MAX, u32::MAX)`: it cannot issue or observe a later timestamp.
    ClockExhausted {
        /// The node whose clock it is.
        node_id: String,
    },
    /// Bytes that are not a valid encoding (see [`crate::codec`]).
    Decode {
        /// What was being decoded (`"LWW snapshot"`, `"stored value"`, ...).
        what: &'static str,
        /// What was wrong with the bytes.
        reason: String,
    },
    /// An OR record whose tag is not the text form of its own timestamp.
    MalformedOrRecord {
        /// The record's tag.
        tag: String,
        /// The text form of the record's timestamp.
        timestamp: String,
    },
    /// A map name that is empty or longer than 256 bytes.
    InvalidMapName {
        /// The rejected name (cut to 80 characters).
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A map this grid has never had.
    UnknownMap {
        /// The name asked for.
        name: String,
    },
    /// A byte-ABI request naming a grid handle that is not open.
    UnknownGrid {
        /// The handle.
        handle: u32,
    },
    /// A map was asked for, or offered a snapshot, as the other kind.
    KindMismatch {
        /// The name of the map.
        map: String,
        /// The kind the map has.
        existing: MapKind,
        /// The kind that was asked for or offered.
        requested: MapKind,
    },
    /// Loading a map found it stored as the other kind than the one asked for (the hint, or the
    /// kind of the writes made while it loaded). The early writes are kept, not dropped (see
    /// [`crate::StorageManager::take_early_map`]).
    LoadKindMismatch {
        /// The name of the map.
        map: String,
        /// The kind found in storage.
        stored: MapKind,
        /// The kind that was asked for.
        requested: MapKind,
        /// Writes made on the map while it loaded.
        early_writes: usize,
    },
    /// A map the grid has, but whose load has not finished (and that nothing was written to yet).
    MapLoading {
        /// The name of the map.
        map: String,
    },
    /// `take_early_map` of a map that holds no writes aside.
    NothingHeld {
        /// The name of the map.
        map: String,
    },
    /// The storage adapter reported a failure.
    Storage {
        /// The map the request was for.
        map: String,
        /// The adapter's message.
        reason: String,
    },
    /// A value read back from storage does not decode, or is not what its key may hold.
    CorruptStoredValue {
        /// The map.
        map: String,
        /// The key of the bad value (cut to 80 characters).
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A storage result for a request id the storage manager is not waiting for.
    UnknownStorageRequest {
        /// The id.
        id: u64,
    },
}

/// Cuts untrusted text shown in an error message to a readable length.
pub(crate) fn excerpt(text: &str) -> String {
    const MAX: usize = 80;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => alloc::format!("{}...", &text[..at]),
        None => String::from(text),
    }
}

/// Writes text in double quotes with quotes, backslashes and control characters escaped. (Not
/// `{:?}`: Rust's Debug formatting of strings costs the wasm module several kilobytes.)
pub(crate) struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                c if c.is_control() => write!(f, "\\u{{{:x}}}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidNodeId { id, reason } => write!(f, "invalid node id {}: {reason}", Quoted(id)),
            Self::InvalidTimestamp { text, reason } => {
                write!(f, "invalid timestamp {}: {reason} (expected \"<millis>:<counter>:<node_id>\")", Quoted(text))
            }
            Self::ReservedKey { key } => write!(f, "the key {} is reserved and cannot be used", Quoted(key)),
            Self::InvalidTtl => f.write_str("invalid TTL: it must be at least 1 millisecond"),
            Self::InvalidValue { path, reason } => write!(f, "invalid value at {path}: {reason}"),
            Self::ClockDrift(d) => write!(
                f,
                "clock drift: remote timestamp {} is {} ms ahead of the wall clock (limit {} ms)",
                d.remote, d.ahead_ms, d.max_drift_ms
            ),
            Self::ClockExhausted { node_id } => write!(
                f,
                "clock exhausted: node {} has reached millis {} counter {}, so no later timestamp exists",
                Quoted(node_id),
                u64::MAX,
                u32::MAX
            ),
            Self::Decode { what, reason } => write!(f, "malformed {what}: {reason}"),
            Self::MalformedOrRecord { tag, timestamp } => {
                write!(
                    f,
                    "malformed OR record: its tag {} is not the text form of its timestamp {}",
                    Quoted(tag),
                    Quoted(timestamp)
                )
            }
            Self::InvalidMapName { name, reason } => write!(f, "invalid map name {}: {reason}", Quoted(name)),
            Self::UnknownMap { name } => write!(f, "this grid has no map named {}", Quoted(name)),
            Self::UnknownGrid { handle } => write!(f, "no grid is open with handle {handle}"),
            Self::KindMismatch { map, existing, requested } => {
                write!(f, "kind mismatch: map {} is an {existing} map, not an {requested} map", Quoted(map))
            }
            Self::LoadKindMismatch { map, stored, requested, early_writes } => {
                write!(f, "kind mismatch: map {} is stored as an {stored} map, not an {requested} map", Quoted(map))?;
                if *early_writes > 0 {
                    write!(
                        f,
                        "; the {early_writes} early write(s) made while it loaded are kept aside in memory, \
                         never stored over it"
                    )?;
                }
                Ok(())
            }
            Self::MapLoading { map } => {
                write!(f, "map {} is still loading: wait for its load (getMapAsync) first", Quoted(map))
            }
            Self::NothingHeld { map } => {
                write!(f, "map {} holds no writes aside (only a load that found the other kind does)", Quoted(map))
            }
            Self::Storage { map, reason } => write!(f, "storage failed for map {}: {reason}", Quoted(map)),
            Self::CorruptStoredValue { map, key, reason } => {
                write!(f, "corrupt stored value of key {} in map {}: {reason}", Quoted(key), Quoted(map))
            }
            Self::UnknownStorageRequest { id } => write!(f, "no storage request with id {id} is pending"),
        }
    }
}

impl core::error::Error for Error {}

/// What kind of failure an [`Error`] is, for code that acts on it: a stable name that does not
/// change when a message is reworded. The byte ABI's error replies and the JavaScript API's
/// `OnegridError.code` carry these names; match on the kind, never on the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A map asked for, offered or stored as the other kind.
    KindMismatch,
    /// A value the data model cannot hold (NaN, too deep, a lone surrogate, ...).
    InvalidValue,
    /// An argument out of its rules: a node id, a key, a TTL, a map name, a timestamp's text.
    InvalidArgument,
    /// Bytes that do not decode (snapshots, stored values, requests, frames).
    Malformed,
    /// Strict mode refused a timestamp too far ahead of the wall clock.
    ClockDrift,
    /// The clock reached `(u64::MAX, u32::MAX)`.
    ClockExhausted,
    /// The storage adapter failed, or what it holds is corrupt.
    Storage,
    /// Something named that does not exist: a map, a grid handle, held writes.
    NotFound,
    /// A map whose load has not finished yet.
    Loading,
    /// A bound was reached: too large, too many.
    Limit,
}

impl ErrorKind {
    /// Every kind, for tables generated from this one list (the golden vectors carry their codes
    /// to the JavaScript tests).
    pub const ALL: [ErrorKind; 10] = [
        Self::KindMismatch,
        Self::InvalidValue,
        Self::InvalidArgument,
        Self::Malformed,
        Self::ClockDrift,
        Self::ClockExhausted,
        Self::Storage,
        Self::NotFound,
        Self::Loading,
        Self::Limit,
    ];

    /// The kind's stable name, in the `SCREAMING_SNAKE_CASE` JavaScript error codes use.
    pub fn code(self) -> &'static str {
        match self {
            Self::KindMismatch => "KIND_MISMATCH",
            Self::InvalidValue => "INVALID_VALUE",
            Self::InvalidArgument => "INVALID_ARGUMENT",
            Self::Malformed => "MALFORMED",
            Self::ClockDrift => "CLOCK_DRIFT",
            Self::ClockExhausted => "CLOCK_EXHAUSTED",
            Self::Storage => "STORAGE",
            Self::NotFound => "NOT_FOUND",
            Self::Loading => "LOADING",
            Self::Limit => "LIMIT",
        }
    }
}

impl Error {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidNodeId { .. }
            | Self::InvalidTimestamp { .. }
            | Self::ReservedKey { .. }
            | Self::InvalidTtl
            | Self::InvalidMapName { .. }
            | Self::UnknownStorageRequest { .. } => ErrorKind::InvalidArgument,
            Self::InvalidValue { .. } => ErrorKind::InvalidValue,
            Self::ClockDrift(_) => ErrorKind::ClockDrift,
            Self::ClockExhausted { .. } => ErrorKind::ClockExhausted,
            Self::Decode { .. } | Self::MalformedOrRecord { .. } => ErrorKind::Malformed,
            Self::UnknownMap { .. } | Self::UnknownGrid { .. } | Self::NothingHeld { .. } => ErrorKind::NotFound,
            Self::KindMismatch { .. } | Self::LoadKindMismatch { .. } => ErrorKind::KindMismatch,
            Self::MapLoading { .. } => ErrorKind::Loading,
            Self::Storage { .. } | Self::CorruptStoredValue { .. } => ErrorKind::Storage,
        }
    }
}
