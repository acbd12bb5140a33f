//! `Grid`: one node's clock and its named maps, the unit every runtime drives.
//!
//! The JavaScript API, the byte ABI and native callers all go through this type, so map creation,
//! kind checks and snapshot import behave the same everywhere. Its maps and clock are owned by a
//! [`StorageManager`] (SPEC section 6): with storage, maps load lazily and writes are flushed back;
//! without, maps live in memory only.

use alloc::vec::Vec;

use crate::codec::snapshot::{
    Snapshot, decode_lww_snapshot_raw, decode_or_snapshot, encode_lww_snapshot, encode_or_snapshot,
};
use crate::dirty::Dirty;
use crate::error::{Error, excerpt};
use crate::hlc::{ClockConfig, Drift, Hlc, NodeId};
use crate::lww::LwwMap;
use crate::map_common::MapKind;
use crate::or_map::OrMap;
use crate::storage::{StorageConfig, StorageManager};

/// Longest map name, in bytes.
pub const MAX_MAP_NAME_LEN: usize = 256;

/// A map of either kind.
#[derive(Clone, Debug)]
pub enum AnyMap {
    /// A last-writer-wins map.
    Lww(LwwMap),
    /// An observed-remove map.
    Or(OrMap),
}

impl AnyMap {
    /// Its kind.
    pub fn kind(&self) -> MapKind {
        match self {
            Self::Lww(_) => MapKind::Lww,
            Self::Or(_) => MapKind::Or,
        }
    }

    /// Its Merkle root.
    pub fn root(&self) -> u32 {
        match self {
            Self::Lww(m) => m.root(),
            Self::Or(m) => m.root(),
        }
    }

    /// A snapshot of all its records.
    pub fn export(&self) -> Vec<u8> {
        match self {
            Self::Lww(m) => encode_lww_snapshot(m),
            Self::Or(m) => encode_or_snapshot(m),
        }
    }

    /// Turns change events on or off.
    pub fn record_events(&mut self, on: bool) {
        match self {
            Self::Lww(m) => m.record_events(on),
            Self::Or(m) => m.record_events(on),
        }
    }

    pub(crate) fn dirty(&self) -> &Dirty {
        match self {
            Self::Lww(m) => m.dirty(),
            Self::Or(m) => m.dirty(),
        }
    }

    pub(crate) fn dirty_mut(&mut self) -> &mut Dirty {
        match self {
            Self::Lww(m) => m.dirty_mut(),
            Self::Or(m) => m.dirty_mut(),
        }
    }
}

/// What [`Grid::import_map`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Imported {
    /// Records added or replaced, plus tombstones new to this grid.
    pub changed: usize,
    /// Lenient mode: records whose timestamps were too far ahead of the wall clock.
    pub drifts: Vec<Drift>,
}

/// A map's position in its grid: a handle that skips the name lookup on hot paths (the
/// JavaScript wrapper keeps one per map handle). Ids are never reused within a grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MapId(pub u32);

/// One node: its clock and its maps by name, owned by its storage manager.
#[derive(Debug)]
pub struct Grid {
    store: StorageManager,
}

/// Map names are 1 to [`MAX_MAP_NAME_LEN`] bytes.
pub(crate) fn check_name(name: &str) -> Result<(), Error> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.len() > MAX_MAP_NAME_LEN {
        "it is longer than 256 bytes"
    } else {
        return Ok(());
    };
    Err(Error::InvalidMapName { name: excerpt(name), reason })
}

pub(crate) fn mismatch(name: &str, existing: MapKind, requested: MapKind) -> Error {
    Error::KindMismatch { map: excerpt(name), existing, requested }
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
