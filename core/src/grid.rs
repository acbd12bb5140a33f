//! [`Grid`]: one node, the façade every runtime drives.
//!
//! A grid is its [`StorageManager`] (which owns the clock and the maps, SPEC section 6) behind the
//! calls every runtime shares: touch a map by name and kind, read and write it, export and import
//! snapshots. The JavaScript API, the byte ABI ([`Grid::execute`], in [`crate::abi`]) and native
//! callers all go through it, so map creation, kind checks and snapshot import behave the same
//! everywhere. It keeps no state of its own: with storage, maps load lazily and writes are flushed
//! back (drive it through [`Grid::storage_mut`]); without, maps live in memory only.
//!
//! [`AnyMap`], [`MapId`] and [`MAX_MAP_NAME_LEN`] live beside their owner, in [`crate::storage`];
//! they are re-exported here at their old paths.

use alloc::vec::Vec;

use crate::codec::snapshot::{Snapshot, decode_lww_snapshot_raw, decode_or_snapshot};
use crate::error::{Error, excerpt};
use crate::hlc::{ClockConfig, Drift, Hlc, NodeId};
use crate::lww::LwwMap;
use crate::map_common::MapKind;
use crate::or_map::OrMap;
use crate::storage::StorageConfig;
use crate::storage::manager::StorageManager;
use crate::storage::maps::{check_name, mismatch};

pub use crate::storage::maps::{AnyMap, MAX_MAP_NAME_LEN, MapId};

/// What [`Grid::import_map`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Imported {
    /// Records added or replaced, plus tombstones new to this grid.
    pub changed: usize,
    /// Lenient mode: records whose timestamps were too far ahead of the wall clock.
    pub drifts: Vec<Drift>,
}

/// One node: a façade over its [`StorageManager`], which owns the node's clock and its maps by
/// name. Every method forwards to the manager, except snapshot import and export, which decode
/// and encode around it.
#[derive(Debug)]
pub struct Grid {
    store: StorageManager,
}

impl Grid {
    /// A grid for `node_id` without storage: its maps live in memory only.
    pub fn new(node_id: NodeId, config: ClockConfig) -> Self {
        Self { store: StorageManager::in_memory(node_id, config) }
    }

    /// A grid for `node_id` whose maps load from and flush to a storage adapter, driven through
    /// [`Grid::storage_mut`] (`poll_storage`, `handle_storage`, `poll_event`, `flush`).
    pub fn with_storage(node_id: NodeId, config: ClockConfig, storage: StorageConfig) -> Self {
        Self { store: StorageManager::new(node_id, config, storage) }
    }

    /// The storage manager that owns the maps.
    pub fn storage(&self) -> &StorageManager {
        &self.store
    }

    /// The storage manager that owns the maps, to drive it.
    pub fn storage_mut(&mut self) -> &mut StorageManager {
        &mut self.store
    }

    /// This grid's clock.
    pub fn clock(&self) -> &Hlc {
        self.store.clock()
    }

    /// This grid's node id.
    pub fn node_id(&self) -> &NodeId {
        self.store.clock().node_id()
    }

    /// Names of the maps this grid has (loaded, loading, or whose load failed), sorted.
    pub fn map_names(&self) -> Vec<&str> {
        self.store.map_names()
    }

    /// The id of map `name`, if the grid ever had it.
    pub fn id_of(&self, name: &str) -> Option<MapId> {
        self.store.id_of(name)
    }

    /// The map called `name` (loaded, or its early map while it loads), for reading.
    pub fn map(&self, name: &str) -> Option<&AnyMap> {
        self.store.map(name)
    }

    /// The map with id `id`, for reading.
    pub fn map_at(&self, id: MapId) -> Option<&AnyMap> {
        self.store.map_at(id)
    }

    /// The map with id `id` of `kind` and the clock, to write (see [`StorageManager::write_at`]).
    pub fn write_at(&mut self, id: MapId, kind: MapKind, wall: u64) -> Result<(&mut AnyMap, &mut Hlc), Error> {
        self.store.write_at(id, kind, wall)
    }

    /// The id of map `name` of `kind`, touching it (with storage, the first touch starts its load);
    /// `kind mismatch` if it is, or is stored as, the other kind.
    pub fn open(&mut self, name: &str, kind: MapKind, wall: u64) -> Result<MapId, Error> {
        self.store.open(name, kind, wall)
    }

    /// The LWW map `name` (created empty on first use) and the clock to write it with.
    pub fn lww(&mut self, name: &str, wall: u64) -> Result<(&mut LwwMap, &mut Hlc), Error> {
        self.store.lww_mut(name, wall)
    }

    /// The OR map `name` (created empty on first use) and the clock to write it with.
    pub fn or(&mut self, name: &str, wall: u64) -> Result<(&mut OrMap, &mut Hlc), Error> {
        self.store.or_mut(name, wall)
    }

    /// A snapshot of the map `name`; an error for a map this grid does not have. While the map
    /// loads, the snapshot holds only what was written meanwhile.
    pub fn export_map(&self, name: &str) -> Result<Vec<u8>, Error> {
        match self.map(name) {
            Some(map) => Ok(map.export()),
            None if self.store.is_map_loading(name) => Err(Error::MapLoading { map: excerpt(name) }),
            None => Err(Error::UnknownMap { name: excerpt(name) }),
        }
    }

    /// Merges a snapshot into the map `name` by the CRDT rules, creating the map with the
    /// snapshot's kind if needed. All or nothing: the bytes are decoded and checked whole first.
    pub fn import_map(&mut self, name: &str, bytes: &[u8], wall: u64) -> Result<Imported, Error> {
        check_name(name)?;
        let existed = self.store.has_map(name);
        let result = self.merge_snapshot(name, bytes, wall);
        if result.is_err()
            && !existed
            && let Some(id) = self.id_of(name)
        {
            // A refused import leaves no empty map behind.
            self.store.forget(id);
        }
        result
    }

    fn merge_snapshot(&mut self, name: &str, bytes: &[u8], wall: u64) -> Result<Imported, Error> {
        // LWW snapshots keep their values encoded all the way into the map.
        if let Some(records) = decode_lww_snapshot_raw(bytes)? {
            self.check_kind(name, MapKind::Lww)?;
            let (map, clock) = self.lww(name, wall)?;
            let (changed, drifts) = map.merge_all_raw(clock, wall, records)?;
            return Ok(Imported { changed, drifts });
        }
        match decode_or_snapshot(bytes)? {
            Snapshot::Or { keys, tombstones } => {
                self.check_kind(name, MapKind::Or)?;
                let (map, clock) = self.or(name, wall)?;
                let merged = map.merge_all(clock, wall, keys, &tombstones)?;
                Ok(Imported { changed: merged.added + merged.new_tombstones, drifts: merged.drifts })
            }
            // Every LWW snapshot was taken (or refused) by the raw decoder above.
            Snapshot::Lww(_) => {
                Err(Error::Decode { what: "snapshot", reason: "an LWW snapshot in an OR position".into() })
            }
        }
    }

    /// `kind mismatch` if the grid has map `name` as the other kind.
    fn check_kind(&self, name: &str, kind: MapKind) -> Result<(), Error> {
        match self.map(name) {
            Some(existing) if existing.kind() != kind => Err(mismatch(name, existing.kind(), kind)),
            _ => Ok(()),
        }
    }
}
