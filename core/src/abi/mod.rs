//! The byte ABI: what a native host (or any caller without JavaScript) sends to the module, and what
//! comes back. Both sides share these types; `codec.rs` turns them into bytes (by hand, in the layout
//! serde derives for them; re-exported at [`crate::codec`]).
//!
//! A request names a grid handle, carries the wall clock, and holds one command. `Open` creates a
//! grid and answers with its handle; every other command runs on an open grid through
//! [`Grid::execute`](crate::Grid::execute) (in `execute.rs`), so the native core and the module run
//! the very same code for each command.
//!
//! This is the top of the core: it uses the grid, the storage manager and the codec; nothing below
//! imports it.

pub(crate) mod codec;
mod execute;
mod replica;
#[cfg(test)]
mod tests;

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::codec::snapshot::snapshot_kind;
use crate::hlc::Drift;
use crate::map_common::MapKind;
use crate::storage::{MapStatus, StorageEvent, StorageRequest, StorageResult};
use crate::sync::types::{ConnState, Event};
use crate::value::Value;

pub use replica::{REPLY_FRAME_BYTES, Replica};

/// Version of the request/reply layout; `onegrid_abi_version()` returns it.
pub const ABI_VERSION: u32 = 7;

/// Serializes bytes in one piece. Postcard writes them as it writes a `Vec<u8>` (a length, then
/// the bytes), but not byte by byte, which is slow for a big snapshot (see BENCHMARKS.md).
fn serialize_bytes<S: serde::Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(bytes)
}

/// One call into a grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// The grid handle (ignored by `Open`).
    pub grid: u32,
    /// Wall-clock milliseconds since the Unix epoch, from the caller's clock.
    pub wall: u64,
    /// What to do.
    pub command: Command,
}

/// What to do. Map-level commands create the map on first use, like the JavaScript `getMap`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Create a grid; answered with `Reply::Opened(handle)`.
    Open {
        /// The node id (validated).
        node_id: String,
        /// Drift limit in milliseconds.
        max_drift_ms: u64,
        /// Strict drift mode.
        strict: bool,
    },
    /// Drop the grid.
    Close,
    /// LWW `set`.
    Set {
        /// Map name.
        map: String,
        /// Key.
        key: String,
        /// Value.
        value: Value,
        /// Optional TTL.
        ttl_ms: Option<u64>,
    },
    /// LWW `set` of many entries, all or nothing.
    SetMany {
        /// Map name.
        map: String,
        /// `(key, value)` pairs.
        entries: Vec<(String, Value)>,
    },
    /// LWW `remove`.
    Remove {
        /// Map name.
        map: String,
        /// Key.
        key: String,
    },
    /// LWW `get`; answered with `Reply::Value`.
    Get {
        /// Map name.
        map: String,
        /// Key.
        key: String,
    },
    /// OR `add`; answered with `Reply::Tags` holding the new tag.
    Add {
        /// Map name.
        map: String,
        /// Key.
        key: String,
        /// Value.
        value: Value,
        /// Optional TTL.
        ttl_ms: Option<u64>,
    },
    /// OR `remove`; answered with `Reply::Tags`.
    OrRemove {
        /// Map name.
        map: String,
        /// Key.
        key: String,
        /// Value to remove (structural equality).
        value: Value,
    },
    /// OR `get`; answered with `Reply::Values`.
    OrGet {
        /// Map name.
        map: String,
        /// Key.
        key: String,
    },
    /// The map's Merkle root; answered with `Reply::Root`.
    Root {
        /// Map name.
        map: String,
    },
    /// A snapshot; answered with `Reply::Bytes`.
    Export {
        /// Map name.
        map: String,
    },
    /// Merge a snapshot; answered with `Reply::Imported` (records added or replaced plus new
    /// tombstones, and the lenient-mode drift reports).
    Import {
        /// Map name.
        map: String,
        /// Snapshot bytes.
        #[serde(serialize_with = "serialize_bytes")]
        snapshot: Vec<u8>,
    },
    /// Drop tombstones older than `older_than` ms; answered with `Reply::Count`.
    Prune {
        /// Map name.
        map: String,
        /// Milliseconds.
        older_than: u64,
    },
    /// Like `Open`, for a grid whose maps load from and flush to the caller's storage (SPEC
    /// section 6), driven with `Storage`.
    OpenPersistent {
        /// The node id (validated).
        node_id: String,
        /// Drift limit in milliseconds.
        max_drift_ms: u64,
        /// Strict drift mode.
        strict: bool,
    },
    /// Touch a map (its first touch starts its load); answered with `Reply::Status`.
    GetMap {
        /// Map name.
        map: String,
        /// The kind wanted, if any; `kind mismatch` if it is stored as the other.
        kind: Option<MapKind>,
    },
    /// Write every change so far back to storage; answered with `Reply::Count` holding the flush
    /// id, which a `Flushed` or `FlushFailed` event of a later `Storage` reply names.
    Flush,
    /// Hand in the storage adapter's answers (none to just poll), and take the storage requests to
    /// run next and the events so far; answered with `Reply::Storage`. Run the requests in order.
    Storage {
        /// `(request id, result)` pairs.
        answers: Vec<(u64, StorageResult)>,
    },
    /// Take back the writes held aside after a load found the map stored as the other kind (the
    /// flush fails while they are held); answered with `Reply::Bytes` holding them as a snapshot of
    /// their kind, which the caller may re-apply (an error when nothing is held).
    TakeEarlyWrites {
        /// Map name.
        map: String,
    },
    /// Sync (SPEC section 8): opens a connection that says hello first, with `token` for the
    /// accepting side; answered with `Reply::Count` holding the connection's handle. Every grid has
    /// a [`Hub`](crate::sync::Hub) for its connections beside it (see [`Replica`]); the sync
    /// commands drive it.
    SyncConnect {
        /// A credential for the accepting side (the core never reads it).
        token: Option<String>,
    },
    /// Sync: opens a connection that waits for a hello; answered with `Reply::Count` holding its
    /// handle. Its hello comes out of `SyncPoll` as an event; answer it with `SyncAccept` or
    /// `SyncRefuse`.
    SyncIncoming,
    /// Sync, accepting side: takes the connection, letting its peer read and write the maps the
    /// patterns allow (`None`: every map; `"*"` every map, a trailing `*` a prefix). A peer whose
    /// node id is already connected is refused instead.
    SyncAccept {
        /// The connection.
        conn: u32,
        /// Map patterns the peer may read.
        read: Option<Vec<String>>,
        /// Map patterns the peer may write.
        write: Option<Vec<String>>,
    },
    /// Sync, accepting side: refuses the connection with an error frame of `code` (`REFUSED`,
    /// `UNAUTHORIZED`, ...) and `reason`, then closes it.
    SyncRefuse {
        /// The connection.
        conn: u32,
        /// The error frame's code.
        code: String,
        /// Why, for people.
        reason: String,
    },
    /// Sync: frames from the connections' transports, in the order they arrived; all are applied,
    /// then one flush covers every write among them (group commit). Answered with `Reply::Done`
    /// (frames for unknown connections are skipped; a bad frame closes its own connection).
    SyncFrames {
        /// The frames.
        frames: Vec<InFrame>,
    },
    /// Sync: what connections have to send and report. Answered with `Reply::Sync`: per connection
    /// its frames (up to about [`REPLY_FRAME_BYTES`] in one reply, `more` when some wait), its
    /// events, its state and its unacknowledged local writes. An empty list polls every
    /// connection and answers only those with frames or events.
    SyncPoll {
        /// The connections (empty: all).
        conns: Vec<u32>,
    },
    /// Sync: the transport of connection `conn` is gone; it closes (its `Closed` event comes out of
    /// the next `SyncPoll`).
    SyncClose {
        /// The connection.
        conn: u32,
    },
    /// Sync: forgets connection `conn`.
    SyncRemove {
        /// The connection.
        conn: u32,
    },
    /// Sync: a position in the change log at or after every local write so far (answered with
    /// `Reply::Count`); the `Acked` events of a connection say when its peer has acknowledged up to
    /// it.
    SyncMarker,
}

/// A frame from a connection's transport, for `SyncFrames`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFrame {
    /// The connection.
    pub conn: u32,
    /// The frame's bytes.
    #[serde(serialize_with = "serialize_bytes")]
    pub bytes: Vec<u8>,
}

impl Command {
    /// The map the command names, if it names one.
    pub fn map(&self) -> Option<&str> {
        match self {
            Self::Set { map, .. } | Self::SetMany { map, .. } | Self::Remove { map, .. } | Self::Get { map, .. } => {
                Some(map)
            }
            Self::Add { map, .. } | Self::OrRemove { map, .. } | Self::OrGet { map, .. } => Some(map),
            Self::Root { map } | Self::Export { map } | Self::Import { map, .. } | Self::Prune { map, .. } => Some(map),
            Self::GetMap { map, .. } | Self::TakeEarlyWrites { map } => Some(map),
            _ => None,
        }
    }

    /// True for a command whose answer or effect depends on what storage holds for its map: the
    /// reads (`Get`, `OrGet`), an OR remove (it removes the records it observes) and an `Import`
    /// (a peer's copy of this node's own earlier record must meet the stored one, not pass for a
    /// write made while the map loads, which the load re-stamps). A driver that can wait (the
    /// host's) loads the map before it sends one of these. Every other write goes into the map as
    /// it is, loaded or loading (its early map, which the load merges), as in JavaScript.
    pub fn observes_stored(&self) -> bool {
        matches!(self, Self::Get { .. } | Self::OrGet { .. } | Self::OrRemove { .. } | Self::Import { .. })
    }

    /// The map kind the command works on, when only one kind can take it (for `Import`, the
    /// snapshot's).
    pub fn kind(&self) -> Option<MapKind> {
        match self {
            Self::Set { .. } | Self::SetMany { .. } | Self::Remove { .. } | Self::Get { .. } => Some(MapKind::Lww),
            Self::Add { .. } | Self::OrRemove { .. } | Self::OrGet { .. } => Some(MapKind::Or),
            Self::GetMap { kind, .. } => *kind,
            Self::Import { snapshot, .. } => snapshot_kind(snapshot),
            _ => None,
        }
    }
}

/// A [`StorageEvent`] on the wire: the same, with the error as its message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireEvent {
    /// See [`StorageEvent::MapLoaded`].
    MapLoaded {
        /// The map.
        map: String,
        /// Loaded keys other than `__tombstones__`.
        count: u64,
    },
    /// See [`StorageEvent::Ready`].
    Ready {
        /// The map.
        map: String,
        /// Its kind.
        kind: MapKind,
    },
    /// See [`StorageEvent::LoadFailed`].
    LoadFailed {
        /// The map.
        map: String,
        /// Why: the error's code and message.
        error: WireError,
    },
    /// See [`StorageEvent::Flushed`].
    Flushed {
        /// The flush id.
        flush_id: u64,
    },
    /// See [`StorageEvent::FlushFailed`].
    FlushFailed {
        /// The flush id.
        flush_id: u64,
        /// Why: the first failure's code, and every failure's message.
        error: WireError,
    },
    /// See [`StorageEvent::Refused`].
    Refused {
        /// The map.
        map: String,
        /// The kind the refused callers asked for.
        asked: MapKind,
        /// Why: a `KIND_MISMATCH` naming both kinds.
        error: WireError,
    },
}

impl From<StorageEvent> for WireEvent {
    fn from(event: StorageEvent) -> Self {
        match event {
            StorageEvent::MapLoaded { map, count } => Self::MapLoaded { map, count: count as u64 },
            StorageEvent::Ready { map, kind } => Self::Ready { map, kind },
            StorageEvent::LoadFailed { map, error } => Self::LoadFailed { map, error: WireError::from(&error) },
            StorageEvent::Flushed { flush_id } => Self::Flushed { flush_id },
            StorageEvent::FlushFailed { flush_id, kind, error } => {
                Self::FlushFailed { flush_id, error: WireError::new(kind, error) }
            }
            StorageEvent::Refused { map, asked, error } => Self::Refused { map, asked, error: WireError::from(&error) },
        }
    }
}

/// A connection's event on the wire (see [`Event`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncEvent {
    /// See [`Event::Hello`].
    Hello {
        /// The peer's node id.
        node_id: String,
        /// Its token.
        token: Option<String>,
    },
    /// See [`Event::Connected`].
    Connected {
        /// The peer's node id.
        node_id: String,
    },
    /// See [`Event::Synced`].
    Synced,
    /// See [`Event::Acked`].
    Acked {
        /// The log position acknowledged.
        marker: u64,
    },
    /// See [`Event::Drift`].
    Drift(WireDrift),
    /// See [`Event::KindMismatch`].
    KindMismatch {
        /// The map.
        map: String,
        /// Its kind here.
        local: MapKind,
        /// Its kind on the peer.
        remote: MapKind,
    },
    /// See [`Event::Oversized`].
    Oversized {
        /// The map.
        map: String,
        /// The frame's size.
        bytes: u64,
    },
    /// See [`Event::Closed`].
    Closed {
        /// Why, as a stable code.
        code: String,
        /// Why, for people.
        message: String,
        /// The peer closed it.
        by_peer: bool,
    },
}

impl From<Event> for SyncEvent {
    fn from(event: Event) -> Self {
        match event {
            Event::Hello { node_id, token } => Self::Hello { node_id, token },
            Event::Connected { node_id } => Self::Connected { node_id },
            Event::Synced => Self::Synced,
            Event::Acked { marker } => Self::Acked { marker },
            Event::Drift(drift) => Self::Drift(WireDrift::from(&drift)),
            Event::KindMismatch { map, local, remote } => Self::KindMismatch { map, local, remote },
            Event::Oversized { map, bytes } => Self::Oversized { map, bytes: bytes as u64 },
            Event::Closed { code, message, by_peer } => Self::Closed { code, message, by_peer },
        }
    }
}

/// One connection's part of a `SyncPoll` reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncOutput {
    /// The connection.
    pub conn: u32,
    /// Where it is now (`Closed` for an unknown one).
    pub state: ConnState,
    /// Local writes its peer has not acknowledged yet.
    pub pending: u64,
    /// Frames to send, in order, one transport message each.
    pub frames: Vec<Vec<u8>>,
    /// More frames wait: poll it again.
    pub more: bool,
    /// Its events, oldest first.
    pub events: Vec<SyncEvent>,
}

/// A lenient-mode drift report on the wire (see [`Drift`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireDrift {
    /// The remote timestamp, in text form.
    pub remote: String,
    /// The wall clock when it arrived.
    pub wall: u64,
    /// How far ahead it was, in milliseconds.
    pub ahead_ms: u64,
    /// The limit in force.
    pub max_drift_ms: u64,
}

impl From<&Drift> for WireDrift {
    fn from(d: &Drift) -> Self {
        Self { remote: d.remote.to_text(), wall: d.wall, ahead_ms: d.ahead_ms, max_drift_ms: d.max_drift_ms }
    }
}

/// A refused request on the wire: the [`crate::error::ErrorKind`] code to act on, and the message to show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// The kind's stable code (`KIND_MISMATCH`, `MALFORMED`, ...; see [`crate::error::ErrorKind::code`]).
    pub code: String,
    /// What was wrong, for people.
    pub message: String,
}

impl WireError {
    /// An error of `kind` that did not come from an [`crate::error::Error`] (the grid table's own).
    pub fn new(kind: crate::error::ErrorKind, message: impl Into<String>) -> Self {
        Self { code: String::from(kind.code()), message: message.into() }
    }
}

impl From<&crate::error::Error> for WireError {
    fn from(e: &crate::error::Error) -> Self {
        Self::new(e.kind(), e.to_string())
    }
}

impl core::fmt::Display for WireError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The answer to a request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    /// Done, nothing to return.
    Done,
    /// A new grid's handle.
    Opened(u32),
    /// A value, or none.
    Value(Option<Value>),
    /// Values, in order.
    Values(Vec<Value>),
    /// OR tags.
    Tags(Vec<String>),
    /// A Merkle root.
    Root(u32),
    /// Bytes (a snapshot).
    Bytes(Vec<u8>),
    /// A count.
    Count(u64),
    /// The command failed and changed nothing: its kind's code and a message that says why.
    Error(WireError),
    /// Where a map is, after `GetMap`.
    Status(MapStatus),
    /// Storage work to run and what happened, after `Storage`.
    Storage {
        /// Requests for the adapter, in the order to run them.
        requests: Vec<StorageRequest>,
        /// Events since the last `Storage` reply.
        events: Vec<WireEvent>,
    },
    /// What an `Import` did.
    Imported {
        /// Records added or replaced plus new tombstones.
        changed: u64,
        /// Lenient mode: the records that were too far ahead of the wall clock, as the JavaScript
        /// API reports them to `onDrift`.
        drifts: Vec<WireDrift>,
    },
    /// What connections have to send and report, after `SyncPoll`.
    Sync(Vec<SyncOutput>),
}
