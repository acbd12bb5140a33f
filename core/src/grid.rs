//! `Grid`: one node's clock and its named maps, the unit every runtime drives.
//!
//! The JavaScript API, the byte ABI and native callers all go through this type, so map creation,
//! kind checks and snapshot import behave the same everywhere. (The storage manager of SPEC
//! section 6 will own the maps here; today they live in memory.)

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::codec::{self, Snapshot};
use crate::error::{Error, excerpt};
use crate::hlc::{ClockConfig, Drift, Hlc, NodeId};
use crate::lww::LwwMap;
use crate::map_common::MapKind;
use crate::or_map::OrMap;

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
            Self::Lww(m) => codec::encode_lww_snapshot(m),
            Self::Or(m) => codec::encode_or_snapshot(m),
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

/// One node: its clock and its maps by name.
#[derive(Clone, Debug)]
pub struct Grid {
    clock: Hlc,
    ids: BTreeMap<Box<str>, MapId>,
    maps: Vec<AnyMap>,
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
    /// A grid for `node_id` with no maps.
    pub fn new(node_id: NodeId, config: ClockConfig) -> Self {
        Self { clock: Hlc::new(node_id, config), ids: BTreeMap::new(), maps: Vec::new() }
    }

    /// This grid's clock.
    pub fn clock(&self) -> &Hlc {
        &self.clock
    }

    /// This grid's node id.
    pub fn node_id(&self) -> &NodeId {
        self.clock.node_id()
    }

    /// Names of the maps this grid has, sorted.
    pub fn map_names(&self) -> Vec<&str> {
        self.ids.keys().map(|k| &**k).collect()
    }

    /// The id of map `name`, if the grid has it.
    pub fn id_of(&self, name: &str) -> Option<MapId> {
        self.ids.get(name).copied()
    }

    /// The map called `name`, if the grid has it.
    pub fn map(&self, name: &str) -> Option<&AnyMap> {
        self.id_of(name).and_then(|id| self.map_at(id))
    }

    /// The map called `name`, mutably, if the grid has it.
    pub fn map_mut(&mut self, name: &str) -> Option<&mut AnyMap> {
        self.id_of(name).and_then(|id| self.map_at_mut(id))
    }

    /// The map with id `id`.
    pub fn map_at(&self, id: MapId) -> Option<&AnyMap> {
        self.maps.get(id.0 as usize)
    }

    /// The map with id `id`, mutably.
    pub fn map_at_mut(&mut self, id: MapId) -> Option<&mut AnyMap> {
        self.maps.get_mut(id.0 as usize)
    }

    /// The map with id `id` and the clock to write it with.
    pub fn map_and_clock(&mut self, id: MapId) -> Option<(&mut AnyMap, &mut Hlc)> {
        Some((self.maps.get_mut(id.0 as usize)?, &mut self.clock))
    }

    /// The id of map `name`, creating it empty with `kind` if absent; `kind mismatch` if it exists
    /// as the other kind.
    pub fn open(&mut self, name: &str, kind: MapKind) -> Result<MapId, Error> {
        if let Some(id) = self.id_of(name) {
            let existing = self.maps[id.0 as usize].kind();
            return if existing == kind { Ok(id) } else { Err(mismatch(name, existing, kind)) };
        }
        check_name(name)?;
        let too_many = || Error::InvalidMapName { name: excerpt(name), reason: "the grid has too many maps" };
        let id = MapId(u32::try_from(self.maps.len()).map_err(|_| too_many())?);
        self.maps.push(match kind {
            MapKind::Lww => AnyMap::Lww(LwwMap::new()),
            MapKind::Or => AnyMap::Or(OrMap::new()),
        });
        self.ids.insert(Box::from(name), id);
        Ok(id)
    }

    /// The LWW map `name` (created empty on first use) and the clock to write it with.
    pub fn lww(&mut self, name: &str) -> Result<(&mut LwwMap, &mut Hlc), Error> {
        let id = self.open(name, MapKind::Lww)?;
        match &mut self.maps[id.0 as usize] {
            AnyMap::Lww(m) => Ok((m, &mut self.clock)),
            AnyMap::Or(_) => Err(mismatch(name, MapKind::Or, MapKind::Lww)),
        }
    }

    /// The OR map `name` (created empty on first use) and the clock to write it with.
    pub fn or(&mut self, name: &str) -> Result<(&mut OrMap, &mut Hlc), Error> {
        let id = self.open(name, MapKind::Or)?;
        match &mut self.maps[id.0 as usize] {
            AnyMap::Or(m) => Ok((m, &mut self.clock)),
            AnyMap::Lww(_) => Err(mismatch(name, MapKind::Lww, MapKind::Or)),
        }
    }

    /// A snapshot of the map `name`; an error for a map this grid has never had.
    pub fn export_map(&self, name: &str) -> Result<Vec<u8>, Error> {
        self.map(name).map(AnyMap::export).ok_or_else(|| Error::UnknownMap { name: excerpt(name) })
    }

    /// Merges a snapshot into the map `name` by the CRDT rules, creating the map with the
    /// snapshot's kind if needed. All or nothing: the bytes are decoded and checked whole first.
    pub fn import_map(&mut self, name: &str, bytes: &[u8], wall: u64) -> Result<Imported, Error> {
        check_name(name)?;
        let existed = self.id_of(name).is_some();
        let result = self.merge_snapshot(name, bytes, wall);
        if result.is_err() && !existed && self.id_of(name).is_some() {
            // A refused import leaves no empty map behind: it was the last one created.
            self.ids.remove(name);
            self.maps.pop();
        }
        result
    }

    fn merge_snapshot(&mut self, name: &str, bytes: &[u8], wall: u64) -> Result<Imported, Error> {
        // LWW snapshots keep their values encoded all the way into the map.
        if let Some(records) = codec::decode_lww_snapshot_raw(bytes)? {
            self.check_kind(name, MapKind::Lww)?;
            let (map, clock) = self.lww(name)?;
            let (changed, drifts) = map.merge_all_raw(clock, wall, records)?;
            return Ok(Imported { changed, drifts });
        }
        match codec::decode_snapshot(bytes)? {
            Snapshot::Or { keys, tombstones } => {
                self.check_kind(name, MapKind::Or)?;
                let (map, clock) = self.or(name)?;
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
