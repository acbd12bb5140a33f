//! What a peer may read and write, as the accepting side's driver grants it (from a token the core
//! never reads). A list of patterns: `"*"` is every map, a pattern ending in `*` is a prefix
//! (`"todo:*"`), anything else one map by name. A missing list (`None`) means every map; an empty
//! list, none.

use alloc::string::String;
use alloc::vec::Vec;

/// The maps a connection's peer may read and write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Permissions {
    /// Maps the peer may read (`None`: all).
    pub read: Option<Vec<String>>,
    /// Maps the peer may write (`None`: all).
    pub write: Option<Vec<String>>,
}

impl Permissions {
    /// Every map, both ways.
    pub fn all() -> Self {
        Self::default()
    }

    /// Permissions from two pattern lists.
    pub fn new(read: Option<Vec<String>>, write: Option<Vec<String>>) -> Self {
        Self { read, write }
    }

    /// May the peer read `map`?
    pub fn may_read(&self, map: &str) -> bool {
        allows(self.read.as_deref(), map)
    }

    /// May the peer write `map`?
    pub fn may_write(&self, map: &str) -> bool {
        allows(self.write.as_deref(), map)
    }
}

/// True when `patterns` (none: all) let `map` through.
pub fn allows(patterns: Option<&[String]>, map: &str) -> bool {
    let Some(patterns) = patterns else { return true };
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => map.starts_with(prefix),
        None => p == map,
    })
}
