//! The commands of the byte ABI: what a native host (or any caller without JavaScript) sends to the
//! module, and what comes back. Both sides share these types; [`crate::codec`] encodes them.
//!
//! A request names a grid handle, carries the wall clock, and holds one command. `Open` creates a
//! grid and answers with its handle; every other command runs on an open grid through
//! [`Grid::execute`], so the native core and the module run the very same code for each command.

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::grid::{AnyMap, Grid};
use crate::value::Value;

/// Version of the request/reply layout; `onegrid_abi_version()` returns it.
pub const ABI_VERSION: u32 = 1;

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
    /// Merge a snapshot; answered with `Reply::Count` (records added or replaced plus new tombstones).
    Import {
        /// Map name.
        map: String,
        /// Snapshot bytes.
        snapshot: Vec<u8>,
    },
    /// Drop tombstones older than `older_than` ms; answered with `Reply::Count`.
    Prune {
        /// Map name.
        map: String,
        /// Milliseconds.
        older_than: u64,
    },
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
    /// The command failed and changed nothing; the message says why.
    Error(String),
}

impl Grid {
    /// Runs one command on this grid. `Open` and `Close` belong to whoever keeps the grid handles
    /// and are refused here.
    pub fn execute(&mut self, wall: u64, command: Command) -> Result<Reply, Error> {
        Ok(match command {
            Command::Open { .. } | Command::Close => {
                return Err(Error::Decode { what: "request", reason: "Open and Close are not grid commands".into() });
            }
            Command::Set { map, key, value, ttl_ms } => {
                let (m, clock) = self.lww(&map)?;
                m.set(clock, wall, &key, value, ttl_ms)?;
                Reply::Done
            }
            Command::SetMany { map, entries } => {
                let (m, clock) = self.lww(&map)?;
                m.set_many(clock, wall, entries)?;
                Reply::Done
            }
            Command::Remove { map, key } => {
                let (m, clock) = self.lww(&map)?;
                m.remove(clock, wall, &key)?;
                Reply::Done
            }
            Command::Get { map, key } => Reply::Value(self.lww(&map)?.0.get(&key, wall)),
            Command::Add { map, key, value, ttl_ms } => {
                let (m, clock) = self.or(&map)?;
                Reply::Tags(alloc::vec![m.add(clock, wall, &key, value, ttl_ms)?.tag()])
            }
            Command::OrRemove { map, key, value } => Reply::Tags(self.or(&map)?.0.remove(&key, &value)?),
            Command::OrGet { map, key } => {
                Reply::Values(self.or(&map)?.0.get(&key, wall).into_iter().cloned().collect())
            }
            Command::Root { map } => Reply::Root(self.existing(&map)?.root()),
            Command::Export { map } => Reply::Bytes(self.export_map(&map)?),
            Command::Import { map, snapshot } => Reply::Count(self.import_map(&map, &snapshot, wall)?.changed as u64),
            Command::Prune { map, older_than } => {
                let pruned = match self.existing_mut(&map)? {
                    AnyMap::Lww(m) => m.prune(older_than),
                    AnyMap::Or(m) => m.prune(older_than),
                };
                Reply::Count(pruned as u64)
            }
        })
    }

    fn existing(&self, name: &str) -> Result<&AnyMap, Error> {
        self.map(name).ok_or_else(|| Error::UnknownMap { name: crate::error::excerpt(name) })
    }

    fn existing_mut(&mut self, name: &str) -> Result<&mut AnyMap, Error> {
        self.map_mut(name).ok_or_else(|| Error::UnknownMap { name: crate::error::excerpt(name) })
    }
}
