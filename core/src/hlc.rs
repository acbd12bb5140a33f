//! The hybrid logical clock of SPEC section 1: node ids, timestamps and their one text form, and the
//! clock itself. Wall time always comes in as an argument; the core never reads a clock.

use alloc::string::String;
use alloc::sync::Arc;
use core::cmp::Ordering;
use core::fmt;
use core::str::FromStr;

use crate::error::{Error, excerpt};

/// Longest node id, in bytes.
pub const MAX_NODE_ID_LEN: usize = 64;

/// Default for [`ClockConfig::max_drift_ms`].
pub const DEFAULT_MAX_DRIFT_MS: u64 = 60_000;

/// A validated node id: 1 to 64 bytes of `[A-Za-z0-9._-]`.
///
/// Cheap to clone (shared); every record carries one, so a map keeps the bytes once per writer.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(Arc<str>);

impl NodeId {
    /// Validates `id`.
    pub fn new(id: &str) -> Result<Self, Error> {
        Self::check(id)?;
        Ok(Self(Arc::from(id)))
    }

    /// Checks `id` against the node id rules without allocating.
    pub fn check(id: &str) -> Result<(), Error> {
        let reason = if id.is_empty() {
            "it is empty"
        } else if id.len() > MAX_NODE_ID_LEN {
            "it is longer than 64 bytes"
        } else if !id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
            "only the characters A-Z a-z 0-9 . _ - are allowed"
        } else {
            return Ok(());
        };
        Err(Error::InvalidNodeId { id: excerpt(id), reason })
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when both handles share one allocation (a fast path before comparing bytes).
    pub(crate) fn ptr_eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for NodeId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::new(s)
    }
}

/// A hybrid logical clock timestamp. Ordered by `millis`, then `counter`, then the node id's bytes.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Timestamp {
    /// Wall-clock milliseconds (Unix epoch), possibly advanced by the logical part.
    pub millis: u64,
    /// Logical counter within one millisecond.
    pub counter: u32,
    /// The node that issued it.
    pub node_id: NodeId,
}

impl Timestamp {
    /// A timestamp from its parts.
    pub fn new(millis: u64, counter: u32, node_id: NodeId) -> Self {
        Self { millis, counter, node_id }
    }

    /// Parses the text form `"<millis>:<counter>:<node_id>"`: exactly three parts, canonical decimal
    /// numbers (no sign, no leading zero unless the number is 0) that fit their types.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bad = |reason| Error::InvalidTimestamp { text: excerpt(text), reason };
        let mut parts = text.splitn(3, ':');
        let (Some(millis), Some(counter), Some(node)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("it does not have three parts separated by ':'"));
        };
        if node.contains(':') {
            return Err(bad("it has more than three parts"));
        }
        let millis = parse_canonical(millis).ok_or_else(|| bad("millis is not a canonical decimal u64"))?;
        let counter = parse_canonical(counter)
            .and_then(|c| u32::try_from(c).ok())
            .ok_or_else(|| bad("counter is not a canonical decimal u32"))?;
        let node_id = NodeId::new(node).map_err(|_| bad("the node id is not valid"))?;
        Ok(Self { millis, counter, node_id })
    }

    /// Feeds the text form into a hasher (or any writer) without allocating.
    pub(crate) fn hash_into(&self, h: &mut crate::hash::Fnv1a) {
        h.write_decimal(self.millis);
        h.write_unit(u16::from(b':'));
        h.write_decimal(u64::from(self.counter));
        h.write_unit(u16::from(b':'));
        h.write_text(self.node_id.as_str());
    }

    /// The text form, which is also an OR record's tag.
    pub fn to_text(&self) -> String {
        alloc::format!("{self}")
    }
}

/// Parses a canonical unsigned decimal: digits only, no leading zero unless it is exactly `0`.
fn parse_canonical(s: &str) -> Option<u64> {
    let bytes = s.as_bytes();
    if bytes.is_empty() || (bytes.len() > 1 && bytes[0] == b'0') || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    bytes.iter().try_fold(0u64, |acc, &b| acc.checked_mul(10)?.checked_add(u64::from(b - b'0')))
}

impl Ord for Timestamp {
    fn cmp(&self, other: &Self) -> Ordering {
        self.millis.cmp(&other.millis).then(self.counter.cmp(&other.counter)).then_with(|| {
            if self.node_id.ptr_eq(&other.node_id) {
                Ordering::Equal
            } else {
                self.node_id.as_str().as_bytes().cmp(other.node_id.as_str().as_bytes())
            }
        })
    }
}

impl PartialOrd for Timestamp {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.millis, self.counter, self.node_id)
    }
}

impl FromStr for Timestamp {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

/// How the clock treats remote timestamps that are ahead of the wall clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockConfig {
    /// How far ahead of the wall clock a remote timestamp may be before it counts as drift.
    pub max_drift_ms: u64,
    /// Strict: drift is an error and nothing changes. Lenient (default): accepted and reported.
    pub strict: bool,
}

impl Default for ClockConfig {
    fn default() -> Self {
        Self { max_drift_ms: DEFAULT_MAX_DRIFT_MS, strict: false }
    }
}

/// A remote timestamp found ahead of the wall clock by more than the limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drift {
    /// The remote timestamp.
    pub remote: Timestamp,
    /// The wall clock when it arrived.
    pub wall: u64,
    /// How far ahead it is, in milliseconds.
    pub ahead_ms: u64,
    /// The limit in force.
    pub max_drift_ms: u64,
}

/// The hybrid logical clock of one node.
#[derive(Clone, Debug)]
pub struct Hlc {
    node_id: NodeId,
    last_millis: u64,
    last_counter: u32,
    config: ClockConfig,
}

impl Hlc {
    /// A clock at zero for `node_id`.
    pub fn new(node_id: NodeId, config: ClockConfig) -> Self {
        Self { node_id, last_millis: 0, last_counter: 0, config }
    }

    /// This clock's node.
    pub fn node_id(&self) -> &NodeId {
        &self.node_id
    }

    /// The drift settings.
    pub fn config(&self) -> ClockConfig {
        self.config
    }

    /// The last `(millis, counter)` issued or observed.
    pub fn last(&self) -> (u64, u32) {
        (self.last_millis, self.last_counter)
    }

    /// A fresh timestamp, greater than everything this clock has issued or observed.
    pub fn now(&mut self, wall: u64) -> Timestamp {
        if wall > self.last_millis {
            self.last_millis = wall;
            self.last_counter = 0;
        } else {
            self.bump(self.last_counter);
        }
        Timestamp { millis: self.last_millis, counter: self.last_counter, node_id: self.node_id.clone() }
    }

    /// Sets the counter to `counter + 1`, carrying into `last_millis` on overflow.
    fn bump(&mut self, counter: u32) {
        match counter.checked_add(1) {
            Some(c) => self.last_counter = c,
            None => {
                self.last_millis = self.last_millis.saturating_add(1);
                self.last_counter = 0;
            }
        }
    }

    /// The drift a remote timestamp shows against `wall`, if any. Never changes the clock; batch
    /// merges call it for every record before applying any (strict mode is all or nothing).
    pub fn drift_of(&self, remote: &Timestamp, wall: u64) -> Option<Drift> {
        let ahead_ms = remote.millis.saturating_sub(wall);
        (ahead_ms > self.config.max_drift_ms).then(|| Drift {
            remote: remote.clone(),
            wall,
            ahead_ms,
            max_drift_ms: self.config.max_drift_ms,
        })
    }

    /// Like [`Hlc::drift_of`], but an error in strict mode.
    pub fn check(&self, remote: &Timestamp, wall: u64) -> Result<Option<Drift>, Error> {
        match self.drift_of(remote, wall) {
            Some(d) if self.config.strict => Err(Error::ClockDrift(d)),
            other => Ok(other),
        }
    }

    /// Observes a remote timestamp: fails in strict mode on drift (before any change), otherwise
    /// advances the clock past it and returns the drift to report, if any.
    pub fn update(&mut self, remote: &Timestamp, wall: u64) -> Result<Option<Drift>, Error> {
        let drift = self.check(remote, wall)?;
        self.observe(remote, wall);
        Ok(drift)
    }

    /// Advances the clock past `remote` with no drift check: for records of the node's own storage
    /// and for batches already checked with [`Hlc::check`].
    pub fn observe(&mut self, remote: &Timestamp, wall: u64) {
        let m = self.last_millis.max(wall).max(remote.millis);
        let (local, from_remote) = (m == self.last_millis, m == remote.millis);
        let base = match (local, from_remote) {
            (true, true) => Some(self.last_counter.max(remote.counter)),
            (true, false) => Some(self.last_counter),
            (false, true) => Some(remote.counter),
            (false, false) => None,
        };
        self.last_millis = m;
        match base {
            Some(c) => self.bump(c),
            None => self.last_counter = 0,
        }
    }
}
