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

/// One node: its clock and its maps by name.
#[derive(Clone, Debug)]
pub struct Grid {
    clock: Hlc,
    maps: BTreeMap<Box<str>, AnyMap>,
}

fn check_name(name: &str) -> Result<(), Error> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.len() > MAX_MAP_NAME_LEN {
        "it is longer than 256 bytes"
    } else {
        return Ok(());
    };
    Err(Error::InvalidMapName { name: excerpt(name), reason })
}

/// The map `name`, created with `kind` if absent. Its kind may differ from `kind`.
fn entry<'a>(maps: &'a mut BTreeMap<Box<str>, AnyMap>, name: &str, kind: MapKind) -> Result<&'a mut AnyMap, Error> {
    check_name(name)?;
    if !maps.contains_key(name) {
        let map = match kind {
            MapKind::Lww => AnyMap::Lww(LwwMap::new()),
            MapKind::Or => AnyMap::Or(OrMap::new()),
        };
        maps.insert(Box::from(name), map);
    }
    // Just inserted if it was missing.
    maps.get_mut(name).ok_or_else(|| Error::UnknownMap { name: excerpt(name) })
}

fn mismatch(name: &str, existing: MapKind, requested: MapKind) -> Error {
    Error::KindMismatch { map: excerpt(name), existing, requested }
}

impl Grid {
    /// A grid for `node_id` with no maps.
    pub fn new(node_id: NodeId, config: ClockConfig) -> Self {
        Self { clock: Hlc::new(node_id, config), maps: BTreeMap::new() }
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
        self.maps.keys().map(|k| &**k).collect()
    }

    /// The map called `name`, if the grid has it.
    pub fn map(&self, name: &str) -> Option<&AnyMap> {
        self.maps.get(name)
    }

    /// The map called `name`, mutably, if the grid has it.
    pub fn map_mut(&mut self, name: &str) -> Option<&mut AnyMap> {
        self.maps.get_mut(name)
    }

    /// The LWW map `name` (created empty on first use) and the clock to write it with.
    pub fn lww(&mut self, name: &str) -> Result<(&mut LwwMap, &mut Hlc), Error> {
        match entry(&mut self.maps, name, MapKind::Lww)? {
            AnyMap::Lww(m) => Ok((m, &mut self.clock)),
            other => Err(mismatch(name, other.kind(), MapKind::Lww)),
        }
    }

    /// The OR map `name` (created empty on first use) and the clock to write it with.
    pub fn or(&mut self, name: &str) -> Result<(&mut OrMap, &mut Hlc), Error> {
        match entry(&mut self.maps, name, MapKind::Or)? {
            AnyMap::Or(m) => Ok((m, &mut self.clock)),
            other => Err(mismatch(name, other.kind(), MapKind::Or)),
        }
    }

    /// A snapshot of the map `name`; an error for a map this grid has never had.
    pub fn export_map(&self, name: &str) -> Result<Vec<u8>, Error> {
        self.maps.get(name).map(AnyMap::export).ok_or_else(|| Error::UnknownMap { name: excerpt(name) })
    }

    /// Merges a snapshot into the map `name` by the CRDT rules, creating the map with the
    /// snapshot's kind if needed. All or nothing: the bytes are decoded and checked whole first.
    pub fn import_map(&mut self, name: &str, bytes: &[u8], wall: u64) -> Result<Imported, Error> {
        check_name(name)?;
        let snapshot = codec::decode_snapshot(bytes)?;
        if let Some(existing) = self.maps.get(name).filter(|m| m.kind() != snapshot.kind()) {
            return Err(mismatch(name, existing.kind(), snapshot.kind()));
        }
        let existed = self.maps.contains_key(name);
        let result = match snapshot {
            Snapshot::Lww(records) => self.lww(name).and_then(|(map, clock)| {
                let (changed, drifts) = map.merge_all(clock, wall, records)?;
                Ok(Imported { changed, drifts })
            }),
            Snapshot::Or { keys, tombstones } => self.or(name).and_then(|(map, clock)| {
                let merged = map.merge_all(clock, wall, keys, &tombstones)?;
                Ok(Imported { changed: merged.added + merged.new_tombstones, drifts: merged.drifts })
            }),
        };
        if result.is_err() && !existed {
            self.maps.remove(name); // a refused import leaves no empty map behind
        }
        result
    }
}
