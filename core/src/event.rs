//! Change events, drained by the embedder in the sans-IO polling style (`poll_event`).
//!
//! Recording is off until asked for, so a map nobody watches pays nothing on its hot paths.

use alloc::collections::VecDeque;
use alloc::string::String;

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
