//! The maps a [`StorageManager`](crate::StorageManager) owns: [`AnyMap`] (a map of either kind),
//! [`MapId`] (a map's handle in its grid) and the rule for map names.

use alloc::vec::Vec;

use crate::codec::snapshot::{encode_lww_snapshot, encode_or_snapshot};
use crate::dirty::Dirty;
use crate::error::{Error, excerpt};
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

/// A map's position in its grid: a handle that skips the name lookup on hot paths (the
/// JavaScript wrapper keeps one per map handle). Ids are never reused within a grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MapId(pub u32);

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

/// The error for a map asked for as the other kind than it is.
pub(crate) fn mismatch(name: &str, existing: MapKind, requested: MapKind) -> Error {
    Error::KindMismatch { map: excerpt(name), existing, requested }
}
