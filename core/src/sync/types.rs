//! The words a driver and the connections share: connection handles, states and events.

use alloc::string::String;

use crate::hlc::Drift;
use crate::map_common::MapKind;

/// A connection's handle in its hub. Never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u32);

/// Where a connection is (the JavaScript `conn.state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ConnState {
    /// The handshake runs.
    Connecting,
    /// Accepted; catching up, or changes or acknowledgements are on their way.
    Syncing,
    /// Caught up both ways, and nothing is waiting to be sent or acknowledged.
    Synced,
    /// Closed (an error, a refusal, or the transport).
    Closed,
}

/// What a connection reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Accepting side: the peer said hello; call [`Hub::accept`](crate::sync::Hub::accept) or [`Hub::refuse`](crate::sync::Hub::refuse).
    Hello {
        /// The peer's node id.
        node_id: String,
        /// The token it presented, for the driver to check.
        token: Option<String>,
    },
    /// The handshake is over.
    Connected {
        /// The peer's node id.
        node_id: String,
    },
    /// Caught up both ways, nothing pending.
    Synced,
    /// More of this side's writes are acknowledged: every local write up to log position
    /// `marker` (see [`Hub::marker`](crate::sync::Hub::marker)).
    Acked {
        /// The log position now acknowledged.
        marker: u64,
    },
    /// Lenient mode: a peer's timestamp was too far ahead of the wall clock (applied anyway).
    Drift(Drift),
    /// A map is of one kind here and the other on the peer: never merged.
    KindMismatch {
        /// The map.
        map: String,
        /// Its kind here.
        local: MapKind,
        /// Its kind on the peer.
        remote: MapKind,
    },
    /// A record too large for one frame could not be sent.
    Oversized {
        /// The map.
        map: String,
        /// The frame it would have taken.
        bytes: usize,
    },
    /// The connection closed: `code` is an error frame's (see [`codes`](crate::sync::frame::codes)), or `CLOSED`.
    Closed {
        /// Why, as a stable code.
        code: String,
        /// Why, for people.
        message: String,
        /// The peer closed it (its error frame).
        by_peer: bool,
    },
}
