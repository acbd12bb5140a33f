//! The replay log of a [`PersistentGrid`](super::PersistentGrid), and the report of a recovery.
//!
//! A module instance holds a grid's unflushed writes in its memory only, so an instance lost to a
//! trap, its deadline or its memory limit takes them with it. The log keeps every write that ran
//! since the last successful flush, so that the grid, reopened on a fresh instance, can run them
//! again. It is bounded by the encoded size of what it holds (see [`ReplayLog::push`]).

use std::collections::BTreeMap;

use onegrid_core::Command;

/// The default bound of a replay log: the encoded size of the writes it holds.
pub const DEFAULT_REPLAY_LIMIT: usize = 64 << 20;

/// True for a command that changes the grid's state (a flush has something to write for it).
/// Every command is listed, so a new one must be sorted here.
pub(crate) fn changes_state(command: &Command) -> bool {
    match command {
        Command::Set { .. }
        | Command::SetMany { .. }
        | Command::Remove { .. }
        | Command::Add { .. }
        | Command::OrRemove { .. }
        | Command::Import { .. }
        | Command::Prune { .. } => true,
        // Reads, a load, a flush, storage polling; and the grid's life, which the driver owns.
        Command::Get { .. }
        | Command::OrGet { .. }
        | Command::Root { .. }
        | Command::Export { .. }
        | Command::GetMap { .. }
        | Command::Flush
        | Command::Storage { .. }
        | Command::Open { .. }
        | Command::OpenPersistent { .. }
        | Command::Close => false,
        // It takes writes held aside (they can never be stored) back to the caller: the log
        // forgets that map's writes instead (see `PersistentGrid::call`).
        Command::TakeEarlyWrites { .. } => false,
        // Sync: frames change the grid, but a lost instance loses the hub and its connections
        // with it; each peer re-sends whatever was not acknowledged (only what a flush made
        // durable is) when it connects again, so nothing needs replaying.
        Command::SyncConnect { .. }
        | Command::SyncIncoming
        | Command::SyncAccept { .. }
        | Command::SyncRefuse { .. }
        | Command::SyncFrames { .. }
        | Command::SyncPoll { .. }
        | Command::SyncClose { .. }
        | Command::SyncRemove { .. }
        | Command::SyncMarker => false,
    }
}

/// A write that ran, as it ran.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) command: Command,
    /// Its wall time: a replay runs it with this one, so a TTL still counts from the first run.
    pub(crate) wall: u64,
    /// Its encoded size, what the log's bound counts.
    pub(crate) bytes: usize,
}

/// The writes since the last successful flush, oldest first.
#[derive(Debug)]
pub(crate) struct ReplayLog {
    entries: Vec<Entry>,
    bytes: usize,
    limit: usize,
    /// Writes per map that did not fit: not kept, so they cannot be replayed.
    unlogged: BTreeMap<String, usize>,
}

impl ReplayLog {
    pub(crate) fn new(limit: usize) -> Self {
        Self { entries: Vec::new(), bytes: 0, limit, unlogged: BTreeMap::new() }
    }

    pub(crate) fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Keeps a write that ran. One that would take the log past its limit is only counted, and so
    /// is every later one until a flush forgets the log: what a replay runs is then the grid as it
    /// was when the log filled, never a selection of writes out of order.
    pub(crate) fn push(&mut self, entry: Entry) {
        if !self.unlogged.is_empty() || self.bytes.saturating_add(entry.bytes) > self.limit {
            // Every write command names its map.
            let map = entry.command.map().unwrap_or_default().to_owned();
            *self.unlogged.entry(map).or_default() += 1;
            return;
        }
        self.bytes += entry.bytes;
        self.entries.push(entry);
    }

    /// Takes the writes out, to replay them; [`ReplayLog::restore`] puts back those that ran.
    pub(crate) fn take(&mut self) -> Vec<Entry> {
        self.bytes = 0;
        std::mem::take(&mut self.entries)
    }

    /// Puts back writes taken out (they are unflushed still), before any other.
    pub(crate) fn restore(&mut self, mut entries: Vec<Entry>) {
        entries.append(&mut self.entries);
        self.bytes = entries.iter().map(|e| e.bytes).sum();
        self.entries = entries;
    }

    /// A flush succeeded: everything written before it is durable. (The host's flush runs to its
    /// end before the next write, so that is every write logged.)
    pub(crate) fn forget_all(&mut self) {
        self.entries.clear();
        self.bytes = 0;
        self.unlogged.clear();
    }

    /// Forgets the writes to the maps `durable` picks (a flush stored them whole); returns how many
    /// were forgotten, the unlogged ones included.
    pub(crate) fn forget_maps(&mut self, durable: impl Fn(&str) -> bool) -> usize {
        let before = self.entries.len();
        self.entries.retain(|e| !e.command.map().is_some_and(&durable));
        self.bytes = self.entries.iter().map(|e| e.bytes).sum();
        let mut forgotten = before - self.entries.len();
        self.unlogged.retain(|map, n| {
            let keep = !durable(map);
            if !keep {
                forgotten += *n;
            }
            keep
        });
        forgotten
    }

    /// How many writes did not fit since the last flush; counting starts again from zero.
    pub(crate) fn take_unlogged(&mut self) -> usize {
        std::mem::take(&mut self.unlogged).into_values().sum()
    }
}

/// What a [`PersistentGrid`](super::PersistentGrid) did after it lost its module instance: it
/// reopened its grid on a fresh instance (same node id and clock settings) and ran again the
/// writes it had not flushed. Its maps load from storage again as they are touched.
#[derive(Clone, Debug, PartialEq)]
pub struct Recovery {
    /// The error that lost the instance.
    pub cause: String,
    /// Instances lost before the grid was back: 1, plus one per replayed write that lost one too.
    pub instances_lost: usize,
    /// Unflushed writes run again on the reopened grid, in their order, with their wall times.
    pub replayed: usize,
    /// Writes not replayed because the flush that lost the instance, or an earlier one that
    /// failed, had stored their map whole.
    pub already_stored: usize,
    /// Writes that could not be run again, oldest first: they are lost (the caller may retry them).
    pub not_replayed: Vec<NotReplayed>,
    /// Writes made while the replay log was full (see `PersistentGrid::with_replay_limit`): lost.
    pub unlogged: usize,
}

impl Recovery {
    pub(crate) fn new(cause: String) -> Self {
        Self { cause, instances_lost: 1, replayed: 0, already_stored: 0, not_replayed: Vec::new(), unlogged: 0 }
    }

    /// Unflushed writes that the loss took: not replayed, or never logged.
    pub fn lost_writes(&self) -> usize {
        self.not_replayed.len() + self.unlogged
    }
}

impl std::fmt::Display for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} unflushed writes replayed, {} lost", self.replayed, self.lost_writes())?;
        if let Some(first) = self.not_replayed.first() {
            write!(f, " (the first could not be replayed: {})", first.reason)?;
        }
        if self.unlogged > 0 {
            write!(f, " ({} did not fit in the replay log)", self.unlogged)?;
        }
        Ok(())
    }
}

/// A logged write that a recovery could not run again.
#[derive(Clone, Debug, PartialEq)]
pub struct NotReplayed {
    /// The write.
    pub command: Command,
    /// The wall time it first ran with.
    pub wall: u64,
    /// Why it did not run: the module refused it, its map did not load, or it lost the instance.
    pub reason: String,
    /// The code of that error ([`GridError::code`](crate::persistent::GridError::code)).
    pub code: String,
}
