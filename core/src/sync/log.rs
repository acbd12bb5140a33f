//! The change log: every change of a loaded map, numbered, for the connections to push.
//!
//! One per [`Hub`](crate::sync::Hub): a write is logged once however many connections push it,
//! and each connection keeps only a cursor (the last position it pushed). Entries are kept only
//! while some connection has not pushed them, and at most `limit` of them: a connection whose
//! cursor falls off the front catches up by Merkle instead (see the connection). Positions and the
//! count of local writes keep counting while nothing is kept, so a marker (a position) and the
//! number of writes not yet acknowledged mean the same with or without connections.
//!
//! Beside the entries the log keeps their runs: consecutive changes of one map from one source
//! (a frame's writes, a batch). A connection walks runs, so one it does not send (its own writes,
//! a map it may not read) costs one step however many changes it holds: with many connections
//! that each read only their own maps, that walk is most of a round's work.

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

/// Where a run of the log starts, and what all its entries share.
#[derive(Debug)]
struct RunStart {
    /// The position of its first entry still kept.
    first: u64,
    map: MapId,
    source: Source,
    loaded: bool,
}

#[derive(Debug, Default)]
pub(crate) struct ChangeLog {
    entries: VecDeque<Entry>,
    /// Local writes counted up to each entry (inclusive), beside it.
    locals_at: VecDeque<u64>,
    /// The runs of `entries`, in order; the first starts at the first entry kept.
    runs: VecDeque<RunStart>,
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
            let loaded = entry.item == FeedItem::Loaded;
            let joins = self.runs.back().is_some_and(|r| {
                !self.entries.is_empty() && r.map == entry.map && r.source == entry.source && r.loaded == loaded
            });
            if !joins {
                self.runs.push_back(RunStart { first: self.end, map: entry.map, source: entry.source, loaded });
            }
            self.entries.push_back(entry);
            self.locals_at.push_back(self.locals);
        } else {
            self.entries.clear();
            self.locals_at.clear();
            self.runs.clear();
        }
    }

    /// The runs holding the entries after `cursor`, cut to start after it, or `None` when some of
    /// those entries are no longer kept.
    pub(crate) fn runs_after(&self, cursor: u64) -> Option<impl Iterator<Item = Run<'_>>> {
        let start = self.start();
        if cursor + 1 < start {
            return None;
        }
        let from = cursor + 1;
        // The run holding `from`: the last that starts at or before it (none when `from` is past
        // the end, as then every run starts before it and the walk below yields nothing).
        let at = self.runs.partition_point(|r| r.first <= from).saturating_sub(1);
        Some((at..self.runs.len()).filter_map(move |i| {
            let run = &self.runs[i];
            let last = self.runs.get(i + 1).map_or(self.end, |next| next.first - 1);
            let first = run.first.max(from);
            (first <= last).then_some(Run {
                log: self,
                map: run.map,
                source: run.source,
                loaded: run.loaded,
                first,
                last,
            })
        }))
    }

    /// Drops what every connection has pushed (positions up to `pushed`), then the oldest until
    /// at most `limit` are kept.
    pub(crate) fn trim(&mut self, pushed: u64, limit: usize) {
        while (!self.entries.is_empty() && self.start() <= pushed) || self.entries.len() > limit {
            self.entries.pop_front();
            self.locals_at.pop_front();
        }
        let start = self.start();
        while self.runs.get(1).is_some_and(|next| next.first <= start)
            || (self.entries.is_empty() && !self.runs.is_empty())
        {
            self.runs.pop_front();
        }
        if let Some(first) = self.runs.front_mut() {
            first.first = first.first.max(start);
        }
    }

    /// Entries kept (for tests and memory figures).
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Consecutive logged changes of one map from one source, as [`ChangeLog::runs_after`] yields them.
pub(crate) struct Run<'a> {
    log: &'a ChangeLog,
    pub(crate) map: MapId,
    pub(crate) source: Source,
    /// A run of `Loaded` marks (a map that loaded), not of changes.
    pub(crate) loaded: bool,
    first: u64,
    last: u64,
}

impl<'a> Run<'a> {
    /// The position of its last change, and the local writes counted up to it.
    pub(crate) fn end(&self) -> (u64, u64) {
        (self.last, self.log.locals_at[self.index(self.last)])
    }

    /// Its changes, in order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = &'a Entry> {
        self.log.entries.range(self.index(self.first)..=self.index(self.last))
    }

    fn index(&self, pos: u64) -> usize {
        (pos - self.log.start()) as usize
    }
}

#[cfg(test)]
mod tests {
    use alloc::boxed::Box;
    use alloc::format;
    use alloc::vec::Vec;

    use super::*;

    /// One logged change: its map, whether it is a `Loaded` mark, its source, whether it is local.
    type Change = (u32, bool, Source, bool);

    fn log_of(changes: &[Change]) -> ChangeLog {
        let mut log = ChangeLog::default();
        for (i, &(map, loaded, source, local)) in changes.iter().enumerate() {
            let item = if loaded { FeedItem::Loaded } else { FeedItem::Key(format!("k{i}").into()) };
            log.push(Entry { map: MapId(map), item, source }, u64::from(local), true);
        }
        log
    }

    /// An entry as a walk sees it: position, locals, map, source, loaded, key.
    type Seen = (u64, u64, u32, Source, bool, Option<Box<str>>);

    /// What the runs after `cursor` hold, entry by entry: position, locals, map, source, loaded,
    /// key; every run one map and source, ending where its last entry is.
    fn walk(log: &ChangeLog, cursor: u64) -> Option<Vec<Seen>> {
        let mut out = Vec::new();
        let mut pos = cursor;
        for run in log.runs_after(cursor)? {
            let entries: Vec<&Entry> = run.entries().collect();
            assert!(!entries.is_empty());
            for entry in &entries {
                pos += 1;
                assert_eq!(
                    (entry.map, entry.source, entry.item == FeedItem::Loaded),
                    (run.map, run.source, run.loaded)
                );
                let key = match &entry.item {
                    FeedItem::Key(k) => Some(k.clone()),
                    _ => None,
                };
                let locals = log.locals_at[(pos - log.start()) as usize];
                out.push((pos, locals, run.map.0, run.source, run.loaded, key));
            }
            assert_eq!(run.end(), (pos, out.last().map_or(0, |e| e.1)));
        }
        Some(out)
    }

    /// The same, the plain way: every kept entry after `cursor`.
    fn expected(log: &ChangeLog, changes: &[Change], cursor: u64) -> Vec<Seen> {
        let mut locals = 0;
        let mut out = Vec::new();
        for (i, &(map, loaded, source, local)) in changes.iter().enumerate() {
            locals += u64::from(local);
            let pos = i as u64 + 1;
            if pos > cursor && pos >= log.start() {
                let key = (!loaded).then(|| format!("k{i}").into());
                out.push((pos, locals, map, source, loaded, key));
            }
        }
        out
    }

    #[test]
    fn runs_hold_every_entry_after_any_cursor_before_and_after_a_trim() {
        let (a, b) = (Source::Conn(ConnId(1)), Source::Conn(ConnId(2)));
        let changes: Vec<Change> = [
            (1, false, a, false),
            (1, false, a, false),
            (1, false, b, false),
            (2, true, Source::Other, false),
            (2, true, Source::Other, false),
            (2, false, Source::Local, true),
            (2, false, Source::Local, true),
            (1, false, Source::Local, true),
            (1, false, a, false),
        ]
        .into();
        let mut log = log_of(&changes);
        assert_eq!(log.runs.len(), 6, "{:?}", log.runs);
        for cursor in 0..=10 {
            assert_eq!(walk(&log, cursor), Some(expected(&log, &changes, cursor)), "cursor {cursor}");
        }
        for pushed in [0, 1, 2, 4, 6, 8] {
            log.trim(pushed, 100);
            assert_eq!(log.start(), pushed + 1);
            if pushed > 0 {
                assert_eq!(walk(&log, pushed - 1), None, "an entry before the start is gone");
            }
            for cursor in pushed..=10 {
                assert_eq!(
                    walk(&log, cursor),
                    Some(expected(&log, &changes, cursor)),
                    "pushed {pushed}, cursor {cursor}"
                );
            }
        }
        log.trim(9, 100);
        assert!(log.runs.is_empty() && walk(&log, 9) == Some(Vec::new()));
        // A run starts afresh after the log emptied, even for the map and source before.
        log.push(Entry { map: MapId(1), item: FeedItem::Key("x".into()), source: a }, 0, true);
        assert_eq!(walk(&log, 9).map(|w| w.len()), Some(1));
        log.push(Entry { map: MapId(1), item: FeedItem::Key("y".into()), source: a }, 0, false);
        assert!(log.runs.is_empty() && walk(&log, 11) == Some(Vec::new()));
        assert_eq!(walk(&log, 10), None);
    }

    #[test]
    fn the_limit_trims_runs_too() {
        let changes: Vec<Change> = (0..20).map(|i| (i / 5, false, Source::Local, true)).collect();
        let mut log = log_of(&changes);
        log.trim(0, 7);
        assert_eq!((log.start(), log.runs.len()), (14, 2));
        assert_eq!(walk(&log, 13), Some(expected(&log, &changes, 13)));
    }
}
