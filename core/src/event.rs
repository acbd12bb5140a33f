//! Change events, drained by the embedder in the sans-IO polling style (`poll_event`).
//!
//! Recording is off until asked for, so a map nobody watches pays nothing on its hot paths.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use crate::hlc::Timestamp;

/// Where a change came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A write made on this node (`set`, `remove`, `add`).
    Local,
    /// A record merged from a peer or a snapshot.
    Remote,
}

/// One key whose visible state may have changed. Read the key to see its new state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeEvent {
    /// The key.
    pub key: String,
    /// Who made the change.
    pub origin: Origin,
}

/// A queue of change events that is inert until enabled.
#[derive(Clone, Debug, Default)]
pub(crate) struct EventQueue {
    queue: Option<VecDeque<ChangeEvent>>,
}

impl EventQueue {
    pub(crate) fn set_enabled(&mut self, on: bool) {
        crate::map_common::switch(&mut self.queue, on);
    }

    #[inline]
    pub(crate) fn push(&mut self, key: &str, origin: Origin) {
        if let Some(q) = &mut self.queue {
            q.push_back(ChangeEvent { key: String::from(key), origin });
        }
    }

    pub(crate) fn pop(&mut self) -> Option<ChangeEvent> {
        self.queue.as_mut()?.pop_front()
    }
}

/// One change for sync's change log: a key whose state changed, or (OR maps) a tag tombstoned
/// (a tombstone lives in no key, so it travels on its own).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FeedItem {
    /// The key's record (LWW) or live records (OR) changed.
    Key(Box<str>),
    /// An OR tag became a tombstone.
    Tag(Timestamp),
    /// Sync's own mark: the map finished loading (or was made) and its feed turned on; what it
    /// held before is caught up by Merkle, not pushed.
    Loaded,
}

/// The changes of one map since sync last drained them, in order. Like [`EventQueue`] it is
/// inert until sync turns it on (only for loaded maps: a load's stored records are no news), so
/// a grid without connections pays one branch per write. Separate from the change events: those
/// belong to the embedder's observers, this to sync.
#[derive(Clone, Debug, Default)]
pub(crate) struct Feed {
    items: Option<Vec<(FeedItem, Origin)>>,
}

impl Feed {
    pub(crate) fn set_enabled(&mut self, on: bool) {
        crate::map_common::switch(&mut self.items, on);
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.items.is_some()
    }

    #[inline]
    pub(crate) fn key(&mut self, key: &str, origin: Origin) {
        if let Some(items) = &mut self.items {
            items.push((FeedItem::Key(Box::from(key)), origin));
        }
    }

    #[inline]
    pub(crate) fn tag(&mut self, tag: &Timestamp, origin: Origin) {
        if let Some(items) = &mut self.items {
            items.push((FeedItem::Tag(tag.clone()), origin));
        }
    }

    /// The changes so far, oldest first; the feed stays on.
    pub(crate) fn drain(&mut self) -> Vec<(FeedItem, Origin)> {
        self.items.as_mut().map(core::mem::take).unwrap_or_default()
    }
}
