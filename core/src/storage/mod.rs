//! The storage manager of SPEC section 6, as a sans-IO state machine.
//!
//! [`StorageManager`] is the single owner of a grid's maps and of its clock. It never performs I/O:
//! it hands out [`StorageRequest`]s, takes their [`StorageResult`]s back, and reports
//! [`StorageEvent`]s. A driver (the wasm crate's promise glue, the host's SQLite loop, a test's fake)
//! is a loop around it:
//!
//! 1. call the API ([`StorageManager::get_map`], writes, [`StorageManager::flush`]);
//! 2. drain [`StorageManager::poll_storage`] and run each request against the adapter, **in the
//!    order polled** (a later `StoreAll` of a key may hold a newer value than an earlier one);
//! 3. hand each answer to [`StorageManager::handle_storage`] (answers may come in any order);
//! 4. drain [`StorageManager::poll_event`]; repeat from 2 until both queues are empty.
//!
//! A grid without storage uses [`StorageManager::in_memory`]: maps load at once, empty, and no
//! request is ever made.
//!
//! ## Decisions (where SPEC section 6 leaves room)
//! - **The maps track what to write back.** Each map marks a key dirty where its state changes (see
//!   `dirty.rs`), so every write path, the hot ones of the byte ABI and the JavaScript API included,
//!   is flushed without listing what it changed. Map ids ([`MapId`]) are never reused, so a handle
//!   stays valid across an unload and a reload.
//! - **Writes touch.** A write by name on a map not yet touched starts its load with the write's
//!   kind as the hint. Writes are allowed while the map loads: they go into an *early map* that the
//!   load then merges the stored records into, by the CRDT rules (stored records go through
//!   [`crate::LwwMap::load`] / [`crate::OrMap::load`], which advance the clock without a drift check).
//!   Before that merge, this node's early writes not later than what storage holds (records,
//!   tombstones, the map mark) are re-stamped past it, so they win (SPEC section 1: a restarted
//!   node's clock may stand still or step back).
//! - **Every map stores a mark** under [`crate::MARK_KEY`] ([`crate::MapMark`]: its kind and the
//!   clock's high-water mark), in the same `StoreAll` as the records it covers, and every load
//!   reads it whatever `is_related_key` says: so the kind is known when no key is loaded, and the
//!   clock never reissues a timestamp of the node's earlier life, even for keys it does not load.
//!   A map stored before marks, none of whose keys load, learns its kind from one probed value.
//! - **Early writes are flushed after their load.** Writing them before the stored records are
//!   known could overwrite a newer stored record, or write one kind's records into a map stored as
//!   the other kind; so a flush that finds a map loading waits for its load and then writes what the
//!   merge left dirty (a failed load fails the flush, and the writes stay pending). After the merge,
//!   a loaded key is dirty exactly when memory differs from what was stored; keys the load did not
//!   bring keep their state. Dirty keys that storage holds are loaded even when `is_related_key`
//!   filters them out, so an early write is never stored over a newer record it was not merged with.
//! - **Keys the load left out are filled before they are written.** The load remembers the stored
//!   keys `is_related_key` left out; a flush that finds one of them written first loads and merges
//!   it (a *fill*), then writes what the merge left dirty.
//! - **Kind mismatch keeps the early writes aside.** When a load finds the other kind, it fails
//!   with [`Error::LoadKindMismatch`] (its message contains `kind mismatch`, both kinds and how many
//!   keys were written early); the early map stays in memory, readable through
//!   [`StorageManager::map`], never stored, until [`StorageManager::take_early_map`] hands it to
//!   the caller (who may re-apply the values to the right kind of map). While it is held, every
//!   flush fails naming the map (a flush that succeeds means every write is durable). Touching the
//!   map again retries the load, which fails the same way while the early map is there.
//! - **A hint binds nothing; a handle does.** Callers of one load may ask for different kinds (or
//!   none): the load takes what is stored, a map with nothing stored takes the first hint (else
//!   LWW). The manager answers every caller when the load ends, so no driver asks again: the
//!   callers whose hint disagrees with the loaded kind get [`StorageEvent::Refused`] (`kind
//!   mismatch`), then every other caller gets [`StorageEvent::Ready`] with the kind. So a caller
//!   without a hint always gets the stored kind. An early map (made by [`StorageManager::open`]
//!   or a write) does bind the load: finding the other kind stored fails it for every caller.
//! - **A failed load** (storage error, corrupt value, kind mismatch) is reported with
//!   [`StorageEvent::LoadFailed`] and kept in [`StorageManager::load_error`] until the next touch,
//!   which retries it from `LoadAllKeys`. Early writes survive a failed load.
//! - **A flush** waits for maps that are loading (or filling), retries a load that failed for the
//!   storage's sake, and sends, per loaded map with dirty keys, one `StoreAll` (every dirty key still holding
//!   records, and the OR tombstone list when it changed) and one `DeleteAll` (dirty keys holding
//!   nothing, e.g. an OR key whose records were all removed). A key stops being dirty only when a
//!   request carrying its latest version succeeded; a key written again meanwhile stays dirty.
//!   [`StorageEvent::Flushed`] means everything written before [`StorageManager::flush`] is durable:
//!   that is when to acknowledge those writes.
//! - **Flushes in flight.** A flush carries only the changes no flush in flight carries, so a
//!   driver may issue the next while storage commits the last (sync's group commit does). The
//!   driver runs requests in the order polled, and flushes end in the order issued: a later one
//!   holds only once the earlier ones do. A failed write fails the flushes issued after it that
//!   are still in flight (they skipped what it carried), and the next flush carries it again.
//! - The `wall` a load merges with is the latest one passed to `get_map` or a write for that map.
//!
//! ## Files
//! - This file: the types a driver sees (requests, operations, results, events, statuses, config).
//! - `maps.rs`: [`AnyMap`], [`MapId`] and map names: the maps the manager owns.
//! - `manager.rs`: [`StorageManager`] itself: its maps and slots, writes, and the polling interface
//!   (`handle_storage` hands each answer to the load or the flush it belongs to).
//! - `load.rs`: a map's load: which keys to load (and the probe), decoding the answer, the merge
//!   into the early map, and re-stamping early writes.
//! - `flush.rs`: a flush: write batches, waiting for loads and fills, and its progress.
//!
//! `manager.rs`, `load.rs` and `flush.rs` are one state machine split by phase: `impl` blocks of
//! the one type, which call each other's methods (a finished load releases the flushes that waited
//! for it; a flush starts the loads it waits for).

mod flush;
mod load;
pub(crate) mod manager;
pub(crate) mod maps;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind};
use crate::map_common::MapKind;

pub use manager::StorageManager;
pub use maps::{AnyMap, MAX_MAP_NAME_LEN, MapId};

/// Decides whether this node loads `key` of `map` (in a cluster: keys of partitions it owns or backs up).
pub type RelatedKey = Box<dyn Fn(&str, &str) -> bool>;

/// How a [`StorageManager`] loads.
#[derive(Default)]
pub struct StorageConfig {
    /// `(map, key) -> load it?`; `None` loads every key. `__tombstones__` is always loaded.
    pub is_related_key: Option<RelatedKey>,
}

impl fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageConfig").field("is_related_key", &self.is_related_key.is_some()).finish()
    }
}

/// One call for the storage adapter to make; answer it with [`StorageManager::handle_storage`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageRequest {
    /// Pass it back with the result.
    pub id: u64,
    /// What to do.
    pub op: StorageOp,
}

/// The storage contract's calls (SPEC section 6), each scoped by map name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StorageOp {
    /// Every stored key of `map`; answer [`StorageResult::Keys`].
    LoadAllKeys {
        /// The map.
        map: String,
    },
    /// The values of `keys` (missing keys simply absent); answer [`StorageResult::Values`].
    LoadAll {
        /// The map.
        map: String,
        /// The keys, sorted.
        keys: Vec<String>,
    },
    /// Store all entries atomically (all or none); answer [`StorageResult::Done`]. Values are
    /// [`encode_stored`](crate::codec::encode_stored) bytes.
    StoreAll {
        /// The map.
        map: String,
        /// `(key, encoded stored value)`, sorted by key.
        entries: Vec<(String, Vec<u8>)>,
    },
    /// Delete the keys (absent ones are no error); answer [`StorageResult::Done`].
    DeleteAll {
        /// The map.
        map: String,
        /// The keys, sorted.
        keys: Vec<String>,
    },
}

impl StorageOp {
    /// The map the call is scoped to.
    pub fn map(&self) -> &str {
        match self {
            Self::LoadAllKeys { map } | Self::LoadAll { map, .. } => map,
            Self::StoreAll { map, .. } | Self::DeleteAll { map, .. } => map,
        }
    }

    /// True for `StoreAll` and `DeleteAll`: what a flush asks for.
    pub fn is_write(&self) -> bool {
        matches!(self, Self::StoreAll { .. } | Self::DeleteAll { .. })
    }
}

/// What the adapter answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StorageResult {
    /// Answer to `LoadAllKeys`.
    Keys(Vec<String>),
    /// Answer to `LoadAll`: `(key, stored bytes)`.
    Values(Vec<(String, Vec<u8>)>),
    /// Answer to `StoreAll` and `DeleteAll`.
    Done,
    /// Any call failed; the message is reported as it is.
    Failed(String),
}

/// What the manager reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageEvent {
    /// A load that loaded any stored value finished (`on_map_loaded`).
    MapLoaded {
        /// The map.
        map: String,
        /// Loaded keys other than `__tombstones__` (LWW: records, tombstones included; OR: keys).
        count: usize,
    },
    /// A load finished, and the [`StorageManager::get_map`] callers that asked for `asked` while
    /// it ran are refused: the map is loaded as the other kind. It comes before the map's
    /// [`StorageEvent::Ready`], which answers every other caller.
    Refused {
        /// The map.
        map: String,
        /// The kind those callers asked for.
        asked: MapKind,
        /// Why: a [`Error::KindMismatch`] naming both kinds.
        error: Error,
    },
    /// A load finished: the map is loaded, of this kind (`get_map_async` resolves here, for the
    /// callers not [`StorageEvent::Refused`] just before).
    Ready {
        /// The map.
        map: String,
        /// Its kind.
        kind: MapKind,
    },
    /// A load failed; the map is not loaded and the next touch retries.
    LoadFailed {
        /// The map.
        map: String,
        /// Why.
        error: Error,
    },
    /// Every request of the flush succeeded: the writes made before it are durable.
    Flushed {
        /// What [`StorageManager::flush`] returned.
        flush_id: u64,
    },
    /// Some request of the flush failed; what it carried stays pending for the next flush.
    FlushFailed {
        /// What [`StorageManager::flush`] returned.
        flush_id: u64,
        /// The kind of the first failure: `Storage` for the adapter's, `KindMismatch` for writes
        /// held aside that can never be stored.
        kind: ErrorKind,
        /// Every failure's message, joined by `"; "`.
        error: String,
    },
}

/// Where a map is, as [`StorageManager::get_map`] returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MapStatus {
    /// Its load is running; writes are accepted and merged when it ends.
    Loading,
    /// Loaded, of this kind.
    Loaded(MapKind),
}
