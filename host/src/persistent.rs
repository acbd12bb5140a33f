//! [`PersistentGrid`]: a grid in the module with a host storage adapter behind it (SPEC section 6).
//!
//! The module's storage manager never does I/O: it asks for it. This driver is the loop around that
//! request/answer cycle over the byte ABI: it sends a command, then polls the module with
//! `Command::Storage`, runs every request on the adapter in the order given, hands the answers back,
//! and repeats until the module asks for nothing more. The adapter runs on a thread of its own,
//! in the order of the requests; every call waits for the requests it starts, so a load or a flush
//! a command starts has finished when [`PersistentGrid::call`] returns. One call does not wait:
//! [`PersistentGrid::run_storage_overlapped`] leaves a flush committing while `onegrid serve`
//! applies the next frames, and hands its answers in once the storage thread says it is done.
//!
//! The module decides what happens while a map loads, as it does for JavaScript: a write to a map
//! not loaded yet goes into its early map, and the load (run before the call returns) merges it
//! with what is stored; a `GetMap` caller is answered by the module when the load ends. The one
//! thing this driver adds is waiting, which a blocking call can do: a command that observes what
//! is stored ([`Command::observes_stored`]: a read, an OR remove, an import) loads its map first,
//! as `await grid.getMapAsync(name)` does in JavaScript.
//!
//! ## A lost instance
//! A call that loses the module instance (a trap, the deadline, the memory limit) loses the grid
//! with it, and the writes it had not flushed. So the driver keeps a replay log: every write
//! (`Set`, `SetMany`, `Remove`, `Add`, `OrRemove`, `Import`, `Prune`) whose call succeeded since the
//! last successful flush. After a loss it reopens the grid on a fresh instance (`OpenPersistent`,
//! same node id and clock settings) and runs the logged writes again, in order, each with its
//! original wall time; the call that lost the instance is not among them (its caller got
//! [`GridError::InstanceLost`], and it would likely lose the next instance too). Maps load from
//! storage again as they are touched. [`PersistentGrid::take_recoveries`] says what was replayed and
//! hands back, with why, any write that could not be.
//!
//! - **Timestamps.** A replayed write gets a new timestamp from the reopened grid's clock. A
//!   replayed write to a map not loaded yet goes into its early map, and the load re-stamps this
//!   node's early writes past everything stored in the map (records, tombstones, and the map mark,
//!   which covers keys this node does not load) and advances the clock past it; a command that
//!   observes what is stored loads its map first, which advances the clock likewise. So a replayed
//!   write (and any later one) is newer than everything stored in its map. An OR `Add` gets a new
//!   tag. Timestamps the lost clock gave to unflushed records that left the grid anyway (an `Export`
//!   of them) are unknown to the new clock: a peer holding such a record converges with the replayed
//!   one by the CRDT rules.
//! - **Writes held aside.** A replayed write to a map that storage now holds as the other kind
//!   (another node stored it meanwhile) is held aside by the module, as any such write is: flushes
//!   fail naming the map until `TakeEarlyWrites` takes them back, which also forgets them here.
//! - **What a flush forgets.** A successful flush forgets the whole log (the host's flush runs to
//!   its end before the next write, so the log holds only writes made before it began). A flush that
//!   failed or lost the instance forgets the writes of the maps whose every write request succeeded:
//!   the flush stored those maps whole, and replaying an OR `Add` over its stored record would add
//!   its value twice. A map whose `StoreAll` succeeded but whose `DeleteAll` failed is not forgotten;
//!   if the instance is then lost its writes are replayed over what was stored (an `Add` twice).
//! - **Bound.** The log holds at most [`PersistentGrid::with_replay_limit`] bytes of encoded writes
//!   ([`DEFAULT_REPLAY_LIMIT`]); once a write does not fit, it and later ones are only counted until
//!   the next flush, and a recovery reports them lost ([`Recovery::unlogged`]). Flush to keep it small.

mod replay;
mod storage_thread;

use std::collections::BTreeMap;

use onegrid_core::codec::encode_request;
use onegrid_core::storage::{MapStatus, StorageOp, StorageResult};
use onegrid_core::{ClockConfig, Command, ErrorKind, MapKind, Reply, Request, WireError, WireEvent};

pub use self::replay::{DEFAULT_REPLAY_LIMIT, NotReplayed, Recovery};
use self::replay::{Entry, ReplayLog, changes_state};
use self::storage_thread::StorageThread;
pub use self::storage_thread::Waker;
use crate::client::Client;
use crate::error::HostError;
use crate::runtime::Runtime;
use crate::storage::Storage;

/// What can go wrong with a persistent grid: the module, or the storage behind it.
#[derive(Debug)]
pub enum GridError {
    /// The host/module boundary failed without losing the instance (a request too large, an
    /// instance that could not be built).
    Host(HostError),
    /// The call lost the module instance (see [`HostError::instance_lost`]) and did not happen. The
    /// grid was reopened on a fresh instance and its unflushed writes replayed, or not yet.
    InstanceLost {
        /// What lost the instance.
        cause: HostError,
        /// What the recovery did (also in [`PersistentGrid::take_recoveries`]), or why the grid
        /// could not be reopened: the next call tries again.
        recovery: Result<Box<Recovery>, String>,
    },
    /// The module refused the command, or answered it out of protocol; it changed nothing.
    Refused(WireError),
    /// A map's load failed (storage error, corrupt stored value, `KIND_MISMATCH`); the next touch
    /// retries it.
    LoadFailed {
        /// The map.
        map: String,
        /// Why, as the module reported it.
        error: WireError,
    },
    /// A flush failed; what it carried stays pending for the next flush.
    FlushFailed(WireError),
}

impl std::fmt::Display for GridError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Host(e) => write!(f, "{e}"),
            Self::InstanceLost { cause, recovery: Ok(recovery) } => {
                write!(f, "{cause}; the persistent grid was reopened on a fresh instance: {recovery}")
            }
            Self::InstanceLost { cause, recovery: Err(why) } => {
                write!(f, "{cause}; reopening the persistent grid failed ({why}), the next call tries again")
            }
            Self::Refused(error) => write!(f, "the module refused the command: {}", error.message),
            Self::LoadFailed { map, error } => write!(f, "loading map {map:?} failed: {}", error.message),
            Self::FlushFailed(error) => write!(f, "flush failed: {}", error.message),
        }
    }
}

impl std::error::Error for GridError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Host(e) | Self::InstanceLost { cause: e, .. } => Some(e),
            _ => None,
        }
    }
}

impl From<HostError> for GridError {
    fn from(e: HostError) -> Self {
        Self::Host(e)
    }
}

impl GridError {
    /// The stable code to act on, never the message: the module's error code for a refusal, a
    /// failed load or flush (`KIND_MISMATCH`, `STORAGE`, `LOADING`, ...; see
    /// [`onegrid_core::ErrorKind::code`]), `LIMIT` for a request over the size limit,
    /// `INSTANCE_LOST` for a call that lost the instance, `HOST` for any other host failure.
    pub fn code(&self) -> &str {
        match self {
            Self::Host(HostError::RequestTooLarge { .. }) => ErrorKind::Limit.code(),
            Self::Host(e) if e.instance_lost() => INSTANCE_LOST,
            Self::Host(_) => "HOST",
            Self::InstanceLost { .. } => INSTANCE_LOST,
            Self::Refused(error) | Self::LoadFailed { error, .. } | Self::FlushFailed(error) => &error.code,
        }
    }

    /// A reply the protocol does not allow at this point.
    fn unexpected(message: String) -> Self {
        Self::Refused(WireError::new(ErrorKind::Malformed, message))
    }

    /// True for a host error that lost the instance (before [`PersistentGrid`] recovered from it).
    fn lost_instance(&self) -> bool {
        matches!(self, Self::Host(e) if e.instance_lost())
    }
}

/// The code of [`GridError::InstanceLost`] (and of a call made before the grid was reopened).
pub const INSTANCE_LOST: &str = "INSTANCE_LOST";

/// Storage events kept for [`PersistentGrid::take_events`]; older ones are dropped.
pub const MAX_EVENTS: usize = 4096;

/// Recovery reports kept for [`PersistentGrid::take_recoveries`]; older ones are dropped.
pub const MAX_RECOVERIES: usize = 64;

/// One grid in its own module instance, its maps loaded from and flushed to `storage`.
pub struct PersistentGrid {
    client: Client,
    /// The grid's handle; `None` from the loss of its instance until it is reopened.
    grid: Option<u32>,
    /// The `OpenPersistent` the grid was opened with, to reopen it alike.
    open: Command,
    storage: StorageThread,
    /// Called when writes left committing by [`PersistentGrid::run_storage_overlapped`] are done.
    waker: Option<Waker>,
    /// Storage events not yet taken (`on_map_loaded` and friends).
    events: Vec<WireEvent>,
    /// The wall clock: milliseconds since the Unix epoch (a test may fix it).
    clock: fn() -> u64,
    /// The writes since the last successful flush, to replay after a lost instance.
    log: ReplayLog,
    /// Per map, whether every write request of the flush in progress succeeded so far.
    flush_writes: BTreeMap<String, bool>,
    /// The report of a loss whose grid is not reopened yet.
    recovering: Option<Recovery>,
    /// Recoveries not yet taken.
    recoveries: Vec<Recovery>,
    /// How many times the grid was reopened on a fresh instance.
    generation: u64,
}

impl std::fmt::Debug for PersistentGrid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistentGrid")
            .field("grid", &self.grid)
            .field("events", &self.events.len())
            .field("logged_writes", &self.log.len())
            .finish_non_exhaustive()
    }
}

/// The system clock in milliseconds since the Unix epoch.
pub fn system_clock() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A command after its call, handed back (a successful write goes into the replay log).
struct Called {
    command: Command,
    /// Its encoded size (0 if it was not sent).
    bytes: usize,
    result: Result<Reply, GridError>,
}

impl PersistentGrid {
    /// Opens a grid for `node_id` on a new instance of `runtime`, backed by `storage`, with the
    /// default clock settings (lenient, a drift limit of a minute).
    pub fn open(runtime: &Runtime, node_id: &str, storage: Box<dyn Storage>) -> Result<Self, GridError> {
        Self::open_with(runtime, node_id, storage, ClockConfig::default())
    }

    /// [`PersistentGrid::open`] with the clock's drift limit and mode (strict: a remote timestamp
    /// beyond the limit is refused, as a server should; lenient: applied and reported).
    pub fn open_with(
        runtime: &Runtime,
        node_id: &str,
        storage: Box<dyn Storage>,
        clock: ClockConfig,
    ) -> Result<Self, GridError> {
        let mut client = Client::new(runtime)?;
        let open =
            Command::OpenPersistent { node_id: node_id.into(), max_drift_ms: clock.max_drift_ms, strict: clock.strict };
        let grid = open_grid(&mut client, open.clone(), system_clock())?;
        Ok(Self {
            client,
            grid: Some(grid),
            open,
            storage: StorageThread::new(storage),
            waker: None,
            events: Vec::new(),
            clock: system_clock,
            log: ReplayLog::new(DEFAULT_REPLAY_LIMIT),
            flush_writes: BTreeMap::new(),
            recovering: None,
            recoveries: Vec::new(),
            generation: 0,
        })
    }

    /// Uses `clock` for the wall time of every later command.
    pub fn with_clock(mut self, clock: fn() -> u64) -> Self {
        self.clock = clock;
        self
    }

    /// Bounds the replay log to `bytes` of encoded writes (see the [module docs](self)).
    pub fn with_replay_limit(mut self, bytes: usize) -> Self {
        self.log.set_limit(bytes);
        self
    }

    /// Runs a command, and the storage work it starts, to the end. A write (`Set`, `SetMany`,
    /// `Remove`, `Add`) to a map not loaded yet goes into its early map and the load merges it
    /// with what is stored, as in JavaScript: a load that fails leaves the write pending in memory
    /// (a flush tries the load again), and one that finds the map stored as the other kind holds
    /// it aside (flushes fail naming the map until `TakeEarlyWrites`); the load's events are in
    /// [`PersistentGrid::take_events`]. A command that observes what is stored (`Get`, `OrGet`,
    /// `OrRemove`, `Import`; [`Command::observes_stored`]) loads its map first, so a map whose load
    /// fails (or is stored as the other kind) refuses it with that error. `Root`, `Export` and
    /// `Prune` work on a map already loaded ([`PersistentGrid::get_map`] loads one). A refusal is
    /// an error; nothing was changed. `Flush` works as [`PersistentGrid::flush`] but answers with
    /// its flush id and leaves its event for [`PersistentGrid::take_events`].
    pub fn call(&mut self, command: Command) -> Result<Reply, GridError> {
        self.guarded(|g| {
            if matches!(command, Command::Flush) {
                return g.run_flush().map(Reply::Count);
            }
            let wall = (g.clock)();
            let Called { command, bytes, result } = g.call_at(command, wall);
            // Held writes taken back are the caller's again: a replay must not hold them anew.
            if let (Ok(_), Command::TakeEarlyWrites { map }) = (&result, &command) {
                g.log.forget_maps(|m| m == map);
            }
            if result.is_ok() && changes_state(&command) {
                g.log.push(Entry { command, wall, bytes });
            }
            result
        })
    }

    /// Loads map `name` (if it is not loaded) and returns its kind: the stored kind, or `kind` for
    /// a map with nothing stored (LWW without a hint). `kind mismatch` if it is stored as the other.
    pub fn get_map(&mut self, name: &str, kind: Option<MapKind>) -> Result<MapKind, GridError> {
        self.guarded(|g| g.get_map_at(name, kind, (g.clock)()))
    }

    /// Writes every change so far to storage: each map's writes atomic, all of them in one
    /// transaction where the adapter can ([`Storage::write_all`]).
    /// If the storage fails, the writes stay pending and the next flush retries them.
    pub fn flush(&mut self) -> Result<(), GridError> {
        self.guarded(|g| {
            let flush_id = g.run_flush()?;
            let ended = |e: &WireEvent| matches!(e, WireEvent::Flushed { flush_id: id } | WireEvent::FlushFailed { flush_id: id, .. } if *id == flush_id);
            match g.take_event(ended) {
                Some(WireEvent::Flushed { .. }) => Ok(()),
                Some(WireEvent::FlushFailed { error, .. }) => Err(GridError::FlushFailed(error)),
                _ => Err(GridError::unexpected(format!("flush {flush_id} did not finish"))),
            }
        })
    }

    /// Storage events since the last call (map loaded, load failed, flushed), oldest first; at
    /// most the latest [`MAX_EVENTS`].
    pub fn take_events(&mut self) -> Vec<WireEvent> {
        std::mem::take(&mut self.events)
    }

    /// What each recovery from a lost instance since the last call did, oldest first; at most the
    /// latest [`MAX_RECOVERIES`].
    pub fn take_recoveries(&mut self) -> Vec<Recovery> {
        std::mem::take(&mut self.recoveries)
    }

    /// Runs one sync command (`SyncFrames`, `SyncPoll`, ...) alone, without the storage work it
    /// may start: a driver serving many connections hands in every frame that arrived, then runs
    /// storage once ([`PersistentGrid::run_storage`]: one flush for them all), then polls. A
    /// refusal is an error.
    pub fn sync(&mut self, command: Command) -> Result<Reply, GridError> {
        self.guarded(|g| {
            let wall = (g.clock)();
            g.send(command, wall).result
        })
    }

    /// Runs the storage work the module asks for until there is none: loads, and the flushes of
    /// the sync hub's group commits (whose events the module hands to the hub itself).
    pub fn run_storage(&mut self) -> Result<(), GridError> {
        self.guarded(Self::drive)
    }

    /// [`PersistentGrid::run_storage`], except that a batch of writes (a flush) is left committing
    /// on the storage thread: the caller goes on, and hands the answers in with a later call once
    /// the waker ([`PersistentGrid::set_storage_waker`]) was called. Without a waker it waits, as
    /// `run_storage` does. Every other call waits for those writes first, so only the caller of
    /// this one sees them in flight.
    pub fn run_storage_overlapped(&mut self) -> Result<(), GridError> {
        self.guarded(|g| g.drive_with(false))
    }

    /// Sets what is called (on the storage thread) when writes that
    /// [`PersistentGrid::run_storage_overlapped`] left committing are done.
    pub fn set_storage_waker(&mut self, waker: Waker) {
        self.waker = Some(waker);
    }

    /// Every map with something stored (see [`Storage::map_names`]).
    pub fn stored_maps(&mut self) -> Result<Vec<String>, crate::storage::StorageError> {
        self.storage.map_names()
    }

    /// How many times the grid was reopened on a fresh instance: when it changes, every sync
    /// connection went with the lost instance.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Writes in the replay log: those run since the last successful flush that fit in it.
    pub fn logged_writes(&self) -> usize {
        self.log.len()
    }

    // ---- a lost instance ------------------------------------------------------------------------

    /// Runs `f`, reopening the grid first if its instance was lost; if `f` loses the instance,
    /// reopens the grid at once and says so in the error.
    fn guarded<R>(&mut self, f: impl FnOnce(&mut Self) -> Result<R, GridError>) -> Result<R, GridError> {
        if let Some(report) = self.recovering.take() {
            self.recover(report)?;
        }
        match f(self) {
            Err(GridError::Host(cause)) if cause.instance_lost() => Err(self.after_loss(cause)),
            other => other,
        }
    }

    /// The instance (and the grid on it) is gone: reopen the grid and replay what it had not flushed.
    fn after_loss(&mut self, cause: HostError) -> GridError {
        let mut report = Recovery::new(cause.to_string());
        // Writes still committing count as they end; the lost instance cannot take their answers.
        drop(self.collect(true));
        report.already_stored = self.forget_stored(false);
        let recovery = self.recover(report).map(Box::new).map_err(|e| e.to_string());
        GridError::InstanceLost { cause, recovery }
    }

    /// Reopens the grid on a fresh instance and replays the log there. A replayed write that loses
    /// that instance too is left out and the rest replayed on the next one (each round leaves one
    /// out, so this ends). If the grid cannot be reopened, the report waits for the next call.
    fn recover(&mut self, mut report: Recovery) -> Result<Recovery, GridError> {
        loop {
            match open_grid(&mut self.client, self.open.clone(), (self.clock)()) {
                Ok(grid) => {
                    self.grid = Some(grid);
                    self.generation += 1;
                }
                Err(e) => {
                    report.instances_lost += usize::from(e.lost_instance());
                    self.recovering = Some(report);
                    return Err(e);
                }
            }
            if self.replay(&mut report) {
                break;
            }
            report.instances_lost += 1;
        }
        report.unlogged += self.log.take_unlogged();
        let excess = (self.recoveries.len() + 1).saturating_sub(MAX_RECOVERIES);
        self.recoveries.drain(..excess);
        self.recoveries.push(report.clone());
        Ok(report)
    }

    /// Runs the logged writes on the reopened grid, each at its own wall time; those that run stay
    /// logged (they are unflushed still), the others go into `report`. False when one lost the
    /// instance: it goes into `report`, and the writes before and after it stay logged for the
    /// next round.
    fn replay(&mut self, report: &mut Recovery) -> bool {
        let mut entries = self.log.take().into_iter();
        let mut ran = Vec::with_capacity(entries.len());
        while let Some(Entry { command, wall, bytes }) = entries.next() {
            let called = self.call_at(command, wall);
            let lost = called.result.as_ref().is_err_and(GridError::lost_instance);
            match called.result {
                Ok(_) => ran.push(Entry { command: called.command, wall, bytes }),
                Err(e) => report.not_replayed.push(NotReplayed {
                    command: called.command,
                    wall,
                    reason: e.to_string(),
                    code: e.code().to_owned(),
                }),
            }
            if lost {
                ran.extend(entries);
                self.log.restore(ran);
                return false;
            }
        }
        report.replayed = ran.len();
        self.log.restore(ran);
        true
    }

    /// Forgets the logged writes a flush made durable: all of them after a flush that succeeded,
    /// else those of the maps whose every write request succeeded. Returns how many it forgot.
    fn forget_stored(&mut self, flushed: bool) -> usize {
        let written = std::mem::take(&mut self.flush_writes);
        if flushed {
            let all = self.log.len();
            self.log.forget_all();
            return all;
        }
        self.log.forget_maps(|map| written.get(map) == Some(&true))
    }

    // ---- commands -------------------------------------------------------------------------------

    /// Runs `command` at `wall`, its map loaded first if it observes what is stored (see
    /// [`PersistentGrid::call`]).
    fn call_at(&mut self, command: Command, wall: u64) -> Called {
        if command.observes_stored()
            && let Some(map) = command.map()
            && let Err(e) = self.get_map_at(map, command.kind(), wall)
        {
            return Called { command, bytes: 0, result: Err(e) };
        }
        if let Command::GetMap { map, kind } = &command {
            let result = self.get_map_at(map, *kind, wall).map(|kind| Reply::Status(MapStatus::Loaded(kind)));
            return Called { command, bytes: 0, result };
        }
        self.run(command, wall)
    }

    /// Runs a command, then any storage work it started.
    fn run(&mut self, command: Command, wall: u64) -> Called {
        let mut called = self.send(command, wall);
        // A host error means nothing ran, or the instance (and its storage work) is gone.
        if !matches!(called.result, Err(GridError::Host(_)))
            && let Err(e) = self.drive()
        {
            called.result = Err(e);
        }
        called
    }

    /// Runs a command alone (no storage work after it). A call that loses the instance forgets the
    /// grid's handle: the grid went with the instance.
    fn send(&mut self, command: Command, wall: u64) -> Called {
        let Some(grid) = self.grid else {
            let lost =
                WireError { code: INSTANCE_LOST.into(), message: "the grid is not open: its instance was lost".into() };
            let result = Err(GridError::Refused(lost));
            return Called { command, bytes: 0, result };
        };
        let request = Request { grid, wall, command };
        let bytes = encode_request(&request);
        let result = match self.client.call_bytes(&bytes) {
            Ok(Reply::Error(error)) => Err(GridError::Refused(error)),
            Ok(reply) => Ok(reply),
            Err(e) => {
                if e.instance_lost() {
                    self.grid = None;
                }
                Err(GridError::Host(e))
            }
        };
        Called { command: request.command, bytes: bytes.len(), result }
    }

    /// [`PersistentGrid::get_map`] with the wall time given: `GetMap`, then the load it started or
    /// joined, to the end; the module answers it then (`Refused` for a kind that disagrees with
    /// what is stored, else `Ready`, or `LoadFailed`).
    fn get_map_at(&mut self, name: &str, kind: Option<MapKind>, wall: u64) -> Result<MapKind, GridError> {
        let get = Command::GetMap { map: name.into(), kind };
        if let Reply::Status(MapStatus::Loaded(loaded)) = self.send(get, wall).result? {
            return Ok(loaded);
        }
        self.drive()?;
        // The load's end is the map's latest `Ready` or `LoadFailed`; a load refuses the callers of
        // the other kind in a `Refused` just before its `Ready`.
        let ended = |e: &WireEvent| matches!(e, WireEvent::Ready { map, .. } | WireEvent::LoadFailed { map, .. } if map == name);
        let Some(at) = self.events.iter().rposition(ended) else {
            return Err(GridError::unexpected(format!("map {name:?} did not finish loading")));
        };
        let refused = at.checked_sub(1).filter(|&before| {
            matches!(&self.events[before], WireEvent::Refused { map, asked, .. } if map == name && Some(*asked) == kind)
        });
        let answer = self.events.remove(at);
        if let Some(before) = refused
            && let WireEvent::Refused { error, .. } = self.events.remove(before)
        {
            return Err(GridError::Refused(error));
        }
        match answer {
            WireEvent::Ready { kind, .. } => Ok(kind),
            WireEvent::LoadFailed { map, error } => Err(GridError::LoadFailed { map, error }),
            other => Err(GridError::unexpected(format!("map {name:?} ended its load with {other:?}"))),
        }
    }

    /// Runs `Flush` and the storage work it starts; returns its flush id. The replay log forgets
    /// what the flush made durable (after a lost instance, [`PersistentGrid::after_loss`] does).
    fn run_flush(&mut self) -> Result<u64, GridError> {
        self.flush_writes.clear();
        let result = self.run(Command::Flush, (self.clock)()).result;
        let flush_id = match result {
            Ok(Reply::Count(flush_id)) => Ok(flush_id),
            Ok(other) => Err(GridError::unexpected(format!("Flush answered {other:?}, not a flush id"))),
            Err(e) => Err(e),
        };
        if !flush_id.as_ref().is_err_and(GridError::lost_instance) {
            let flushed = flush_id.as_ref().is_ok_and(|id| self.events.contains(&WireEvent::Flushed { flush_id: *id }));
            self.forget_stored(flushed);
        }
        flush_id
    }

    /// Removes and returns the last event that `wanted` picks.
    fn take_event(&mut self, wanted: impl Fn(&WireEvent) -> bool) -> Option<WireEvent> {
        let at = self.events.iter().rposition(wanted)?;
        Some(self.events.remove(at))
    }

    /// Polls the module for storage work and runs it until there is none, after the writes left
    /// committing (if any) are done.
    fn drive(&mut self) -> Result<(), GridError> {
        self.drive_with(true)
    }

    /// [`PersistentGrid::drive`]; unless `wait`, a batch of writes is left committing when there is
    /// a waker to say when it is done.
    fn drive_with(&mut self, wait: bool) -> Result<(), GridError> {
        let mut answers = self.collect(wait);
        loop {
            let command = Command::Storage { answers: std::mem::take(&mut answers) };
            match self.send(command, (self.clock)()).result? {
                Reply::Storage { requests, events } => {
                    self.events.extend(events);
                    // Events nobody takes must not grow without bound: keep the latest.
                    let excess = self.events.len().saturating_sub(MAX_EVENTS);
                    self.events.drain(..excess);
                    if requests.is_empty() {
                        return Ok(());
                    }
                    let waker =
                        if wait || !requests.iter().all(|r| r.op.is_write()) { None } else { self.waker.clone() };
                    let overlap = waker.is_some();
                    // In the order given: a later batch may hold a newer value of the same key.
                    self.storage.start(requests, waker);
                    answers = self.collect(!overlap);
                    if overlap && answers.is_empty() {
                        return Ok(());
                    }
                }
                other => return Err(GridError::unexpected(format!("Storage answered {other:?}"))),
            }
        }
    }

    /// The answers of the storage thread's batches that are done (`wait`: of all started), each
    /// write noted for the replay log.
    fn collect(&mut self, wait: bool) -> Vec<(u64, StorageResult)> {
        let answered = self.storage.collect(wait);
        for (request, result) in &answered {
            self.note_write(&request.op, result);
        }
        answered.into_iter().map(|(request, result)| (request.id, result)).collect()
    }

    /// Notes per map whether a flush's writes succeeded.
    fn note_write(&mut self, op: &StorageOp, result: &StorageResult) {
        if op.is_write() {
            let done = matches!(result, StorageResult::Done);
            *self.flush_writes.entry(op.map().to_owned()).or_insert(true) &= done;
        }
    }
}

/// Opens a grid with `open` (an `OpenPersistent`) on `client`'s instance; returns its handle.
fn open_grid(client: &mut Client, open: Command, wall: u64) -> Result<u32, GridError> {
    match client.call(&Request { grid: 0, wall, command: open })? {
        Reply::Opened(grid) => Ok(grid),
        Reply::Error(error) => Err(GridError::Refused(error)),
        other => Err(GridError::unexpected(format!("OpenPersistent answered {other:?}"))),
    }
}
