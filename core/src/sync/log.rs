//! The change log: every change of a loaded map, numbered, for the connections to push.
//!
//! One per [`Hub`](crate::sync::Hub): a write is logged once however many connections push it,
//! and each connection keeps only a cursor (the last position it pushed). Entries are kept only
//! while some connection has not pushed them, and at most `limit` of them: a connection whose
//! cursor falls off the front catches up by Merkle instead (see the connection). Positions and the
//! count of local writes keep counting while nothing is kept, so a marker (a position) and the
//! number of writes not yet acknowledged mean the same with or without connections.

use alloc::collections::VecDeque;

use crate::event::FeedItem;
use crate::storage::maps::MapId;
use crate::sync::types::ConnId;

/// Where a logged change came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// A write made on this node.
    Local,
    /// Merged from a connection: never pushed back to it.
    Conn(ConnId),
    /// Merged otherwise (a snapshot import, a storage fill).
    Other,
}

#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) map: MapId,
    pub(crate) item: FeedItem,
    pub(crate) source: Source,
}

#[derive(Debug, Default)]
pub(crate) struct ChangeLog {
    entries: VecDeque<Entry>,
    /// Local writes counted up to each entry (inclusive), beside it.
    locals_at: VecDeque<u64>,
    /// The position of the last change logged (the first is 1).
    end: u64,
    /// Local writes logged in all.
    locals: u64,
}

impl ChangeLog {
    pub(crate) fn end(&self) -> u64 {
        self.end
    }

    pub(crate) fn locals(&self) -> u64 {
        self.locals
    }

    /// The position of the first entry kept.
    fn start(&self) -> u64 {
        self.end + 1 - self.entries.len() as u64
    }

    /// Logs a change that stands for `locals` local writes; kept only when `keep` (some
    /// connection will push it).
    pub(crate) fn push(&mut self, entry: Entry, locals: u64, keep: bool) {
        self.end += 1;
        self.locals += locals;
        if keep {
            self.entries.push_back(entry);
            self.locals_at.push_back(self.locals);
        } else {
            self.entries.clear();
            self.locals_at.clear();
        }
    }

    /// The entries after `cursor` with their positions and local counts, or `None` when some of
    /// them are no longer kept.
    pub(crate) fn after(&self, cursor: u64) -> Option<impl Iterator<Item = (u64, u64, &Entry)>> {
        let start = self.start();
        if cursor + 1 < start {
            return None;
        }
        let skip = (cursor + 1 - start) as usize;
        Some(
            self.entries
                .iter()
                .zip(self.locals_at.iter())
                .enumerate()
                .skip(skip)
                .map(move |(i, (e, &l))| (start + i as u64, l, e)),
        )
    }

    /// Drops what every connection has pushed (positions up to `pushed`), then the oldest until
    /// at most `limit` are kept.
    pub(crate) fn trim(&mut self, pushed: u64, limit: usize) {
        while (!self.entries.is_empty() && self.start() <= pushed) || self.entries.len() > limit {
            self.entries.pop_front();
            self.locals_at.pop_front();
        }
    }

    /// Entries kept (for tests and memory figures).
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}
