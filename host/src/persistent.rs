//! [`PersistentGrid`]: a grid in the module with a host storage adapter behind it (SPEC section 6).
//!
//! The module's storage manager never does I/O: it asks for it. This driver is the loop around that
//! request/answer cycle over the byte ABI: after each command it polls the module with
//! `Command::Storage`, runs every request on the adapter in the order given, hands the answers back,
//! and repeats until the module asks for nothing more. Storage here is blocking (SQLite, or the
//! PostgreSQL client's own runtime), so a load or a flush a command starts has finished when
//! [`PersistentGrid::call`] returns.

use onegrid_core::storage::MapStatus;
use onegrid_core::{Command, MapKind, Reply, Request, WireEvent};

use crate::client::Client;
use crate::error::HostError;
use crate::runtime::Runtime;
use crate::storage::{self, Storage};

/// What can go wrong with a persistent grid: the module, or the storage behind it.
#[derive(Debug)]
pub enum GridError {
    /// The host/module boundary failed (a trap, a deadline, a bad reply).
    Host(HostError),
    /// The module refused the command; it changed nothing. The message says why.
    Refused(String),
    /// A map's load failed (storage error, corrupt stored value, `kind mismatch`); the next touch
    /// retries it.
    LoadFailed {
        /// The map.
        map: String,
        /// Why, as the module reported it.
        reason: String,
    },
    /// A flush failed; what it carried stays pending for the next flush.
    FlushFailed(String),
}

impl std::fmt::Display for GridError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Host(e) => write!(f, "{e}"),
            Self::Refused(message) => write!(f, "the module refused the command: {message}"),
            Self::LoadFailed { map, reason } => write!(f, "loading map {map:?} failed: {reason}"),
            Self::FlushFailed(reason) => write!(f, "flush failed: {reason}"),
        }
    }
}

impl std::error::Error for GridError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Host(e) => Some(e),
            _ => None,
        }
    }
}

impl From<HostError> for GridError {
    fn from(e: HostError) -> Self {
        Self::Host(e)
    }
}

/// Storage events kept for [`PersistentGrid::take_events`]; older ones are dropped.
pub const MAX_EVENTS: usize = 4096;

/// One grid in its own module instance, its maps loaded from and flushed to `storage`.
pub struct PersistentGrid {
    client: Client,
    grid: u32,
    storage: Box<dyn Storage>,
    /// Storage events not yet taken (`on_map_loaded` and friends).
    events: Vec<WireEvent>,
    /// The wall clock: milliseconds since the Unix epoch (a test may fix it).
    clock: fn() -> u64,
}

impl std::fmt::Debug for PersistentGrid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistentGrid").field("grid", &self.grid).field("events", &self.events.len()).finish()
    }
}

/// The system clock in milliseconds since the Unix epoch.
pub fn system_clock() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl PersistentGrid {
    /// Opens a grid for `node_id` on a new instance of `runtime`, backed by `storage`.
    pub fn open(runtime: &Runtime, node_id: &str, storage: Box<dyn Storage>) -> Result<Self, GridError> {
        let mut client = Client::new(runtime)?;
        let command = Command::OpenPersistent { node_id: node_id.into(), max_drift_ms: 60_000, strict: false };
        let grid = match client.call(&Request { grid: 0, wall: system_clock(), command })? {
            Reply::Opened(grid) => grid,
            Reply::Error(message) => return Err(GridError::Refused(message)),
            other => return Err(GridError::Refused(format!("OpenPersistent answered {other:?}"))),
        };
        Ok(Self { client, grid, storage, events: Vec::new(), clock: system_clock })
    }

    /// Uses `clock` for the wall time of every later command.
    pub fn with_clock(mut self, clock: fn() -> u64) -> Self {
        self.clock = clock;
        self
    }

    /// Runs a command on a loaded map. A command of one map kind (`Set`, `Get`, `Add`, `Import` of
    /// a snapshot, ...) loads its map first, so a read sees what is stored and a map whose load
    /// fails (or is stored as the other kind) refuses the command with that error. `Root`, `Export`
    /// and `Prune` work on a map already loaded ([`PersistentGrid::get_map`] loads one). A refusal
    /// is an error; nothing was changed.
    pub fn call(&mut self, command: Command) -> Result<Reply, GridError> {
        if let (Some(map), Some(kind)) = (command.map(), command.kind())
            && !matches!(command, Command::GetMap { .. })
        {
            self.get_map(map, Some(kind))?;
        }
        self.run(command)
    }

    /// Runs a command, then any storage work it started.
    fn run(&mut self, command: Command) -> Result<Reply, GridError> {
        let reply = self.send(command);
        self.drive()?;
        reply
    }

    /// Runs a command alone (no storage work after it).
    fn send(&mut self, command: Command) -> Result<Reply, GridError> {
        match self.client.call(&Request { grid: self.grid, wall: (self.clock)(), command })? {
            Reply::Error(message) => Err(GridError::Refused(message)),
            reply => Ok(reply),
        }
    }

    /// Loads map `name` (if it is not loaded) and returns its kind: the stored kind, or `kind` for
    /// a map with nothing stored (LWW without a hint). `kind mismatch` if it is stored as the other.
    pub fn get_map(&mut self, name: &str, kind: Option<MapKind>) -> Result<MapKind, GridError> {
        let get = || Command::GetMap { map: name.into(), kind };
        if let Reply::Status(MapStatus::Loaded(loaded)) = self.send(get())? {
            return Ok(loaded);
        }
        self.drive()?;
        let ended = |e: &WireEvent| matches!(e, WireEvent::Ready { map, .. } | WireEvent::LoadFailed { map, .. } if map == name);
        if let Some(WireEvent::LoadFailed { map, error }) = self.take_event(ended) {
            return Err(GridError::LoadFailed { map, reason: error });
        }
        // Loaded now. A hint binds no load, so ask again: the module answers with the kind, or
        // refuses a hint that disagrees with what is stored (`kind mismatch`).
        match self.send(get())? {
            Reply::Status(MapStatus::Loaded(loaded)) => Ok(loaded),
            other => Err(GridError::Refused(format!("map {name:?} did not finish loading: {other:?}"))),
        }
    }

    /// Writes every change so far to storage: one atomic `store_all` (and one `delete_all`) per map.
    /// If the storage fails, the writes stay pending and the next flush retries them.
    pub fn flush(&mut self) -> Result<(), GridError> {
        let Reply::Count(flush_id) = self.run(Command::Flush)? else {
            return Err(GridError::Refused("Flush did not answer with a flush id".into()));
        };
        let ended = |e: &WireEvent| matches!(e, WireEvent::Flushed { flush_id: id } | WireEvent::FlushFailed { flush_id: id, .. } if *id == flush_id);
        match self.take_event(ended) {
            Some(WireEvent::Flushed { .. }) => Ok(()),
            Some(WireEvent::FlushFailed { error, .. }) => Err(GridError::FlushFailed(error)),
            _ => Err(GridError::FlushFailed(format!("flush {flush_id} did not finish"))),
        }
    }

    /// Removes and returns the last event that `wanted` picks.
    fn take_event(&mut self, wanted: impl Fn(&WireEvent) -> bool) -> Option<WireEvent> {
        let at = self.events.iter().rposition(wanted)?;
        Some(self.events.remove(at))
    }

    /// Storage events since the last call (map loaded, load failed, flushed), oldest first; at
    /// most the latest [`MAX_EVENTS`].
    pub fn take_events(&mut self) -> Vec<WireEvent> {
        std::mem::take(&mut self.events)
    }

    /// Polls the module for storage work and runs it until there is none.
    fn drive(&mut self) -> Result<(), GridError> {
        let mut answers = Vec::new();
        loop {
            let command = Command::Storage { answers: std::mem::take(&mut answers) };
            match self.client.call(&Request { grid: self.grid, wall: (self.clock)(), command })? {
                Reply::Storage { requests, events } => {
                    self.events.extend(events);
                    // Events nobody takes must not grow without bound: keep the latest.
                    let excess = self.events.len().saturating_sub(MAX_EVENTS);
                    self.events.drain(..excess);
                    if requests.is_empty() {
                        return Ok(());
                    }
                    // In the order given: a later batch may hold a newer value of the same key.
                    answers = requests.iter().map(|r| (r.id, storage::execute(&mut *self.storage, &r.op))).collect();
                }
                Reply::Error(message) => return Err(GridError::Refused(message)),
                other => return Err(GridError::Refused(format!("Storage answered {other:?}"))),
            }
        }
    }
}
