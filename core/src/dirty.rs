//! Which keys of a map storage has not seen yet: the storage manager's write-back set.
//!
//! The maps mark a key at the one place each changes its state (the LWW map's `put` and `prune`, the
//! OR map's `rehash` and tombstone updates), so every write path, hot ones included, is tracked
//! without the caller listing what it changed. Tracking is off until the storage manager turns it on:
//! a grid without storage pays one branch per write.

use alloc::boxed::Box;
use alloc::vec::Vec;

use hashbrown::HashMap;

use crate::map_common::Hasher;

/// Dirty keys with the sequence number of their latest change, so a flush that carried an older
/// version does not clean a key written again since.
#[derive(Clone, Debug, Default)]
pub(crate) struct Dirty {
    tracking: Option<Tracking>,
}

#[derive(Clone, Debug, Default)]
struct Tracking {
    seq: u64,
    keys: HashMap<Box<str>, u64, Hasher>,
    /// The OR map's tombstone list changed, at this sequence.
    tombstones: Option<u64>,
    /// Changes up to this sequence are carried by a flush already issued: the next flush skips
    /// them (a write in flight is not sent twice) unless one failed ([`Dirty::reissue`]).
    issued: u64,
}

impl Dirty {
    pub(crate) fn set_tracking(&mut self, on: bool) {
        crate::map_common::switch(&mut self.tracking, on);
    }

    /// Stops tracking and hands back what was tracked, for [`Dirty::resume`]: loading stored
    /// records changes nothing storage has not seen, so the load marks nothing.
    pub(crate) fn suspend(&mut self) -> Dirty {
        core::mem::take(self)
    }

    pub(crate) fn resume(&mut self, tracked: Dirty) {
        *self = tracked;
    }

    #[inline]
    pub(crate) fn mark(&mut self, key: &str) {
        if let Some(t) = &mut self.tracking {
            t.seq += 1;
            let seq = t.seq;
            t.keys.entry_ref(key).insert(seq);
        }
    }

    pub(crate) fn mark_tombstones(&mut self) {
        if let Some(t) = &mut self.tracking {
            t.seq += 1;
            t.tombstones = Some(t.seq);
        }
    }

    /// Forgets `key` if its latest change is `seq` (or any change, for `None`).
    pub(crate) fn clean(&mut self, key: &str, seq: Option<u64>) {
        if let Some(t) = &mut self.tracking
            && seq.is_none_or(|s| t.keys.get(key) == Some(&s))
        {
            t.keys.remove(key);
        }
    }

    /// Forgets the tombstone list's change if its latest is `seq` (or any, for `None`).
    pub(crate) fn clean_tombstones(&mut self, seq: Option<u64>) {
        if let Some(t) = &mut self.tracking
            && seq.is_none_or(|s| t.tombstones == Some(s))
        {
            t.tombstones = None;
        }
    }

    pub(crate) fn contains(&self, key: &str) -> bool {
        self.tracking.as_ref().is_some_and(|t| t.keys.contains_key(key))
    }

    /// Dirty keys plus one for a changed tombstone list.
    pub(crate) fn len(&self) -> usize {
        self.tracking.as_ref().map_or(0, |t| t.keys.len() + usize::from(t.tombstones.is_some()))
    }

    /// The dirty keys with their sequence, sorted by key.
    pub(crate) fn keys(&self) -> Vec<(&str, u64)> {
        self.keys_after(0)
    }

    /// The dirty keys no flush in flight carries (changed since the last [`Dirty::issue`]), with
    /// their sequence, sorted by key.
    pub(crate) fn unissued(&self) -> Vec<(&str, u64)> {
        self.keys_after(self.tracking.as_ref().map_or(0, |t| t.issued))
    }

    fn keys_after(&self, issued: u64) -> Vec<(&str, u64)> {
        let keys: Vec<(&str, u64)> = match &self.tracking {
            Some(t) => t.keys.iter().filter(|(_, s)| **s > issued).map(|(k, &s)| (&**k, s)).collect(),
            None => Vec::new(),
        };
        crate::sort::sorted_copy(&keys, |k| k.0.as_bytes())
    }

    /// The tombstone list's change, if no flush in flight carries it.
    pub(crate) fn unissued_tombstones(&self) -> Option<u64> {
        let t = self.tracking.as_ref()?;
        t.tombstones.filter(|&s| s > t.issued)
    }

    /// Every change so far is carried by a flush just issued.
    pub(crate) fn issue(&mut self) {
        if let Some(t) = &mut self.tracking {
            t.issued = t.seq;
        }
    }

    /// A flush's write failed: the next flush carries every dirty key again.
    pub(crate) fn reissue(&mut self) {
        if let Some(t) = &mut self.tracking {
            t.issued = 0;
        }
    }
}
