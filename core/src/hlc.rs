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

/// The last `(millis, counter)` a clock can reach, as an index (see `Hlc::index`).
const MAX_INDEX: u128 = index(u64::MAX, u32::MAX);

const fn index(millis: u64, counter: u32) -> u128 {
    ((millis as u128) << 32) | counter as u128
}

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

    /// A fresh timestamp, greater than everything this clock has issued or observed; an error
    /// (and no change) once the clock is exhausted at `(u64::MAX, u32::MAX)`.
    pub fn now(&mut self, wall: u64) -> Result<Timestamp, Error> {
        let next = self.next_local(wall, 1)?;
        self.set_index(next);
        Ok(Timestamp { millis: self.last_millis, counter: self.last_counter, node_id: self.node_id.clone() })
    }

    /// Checks that `count` more local timestamps can be issued at `wall` (a batch of writes is all
    /// or nothing, so it asks before the first one).
    pub fn reserve(&self, wall: u64, count: usize) -> Result<(), Error> {
        match count {
            0 => Ok(()),
            n => self.next_local(wall, n as u128).map(|_| ()),
        }
    }

    /// The index of the `count`-th timestamp `now` would issue from here.
    fn next_local(&self, wall: u64, count: u128) -> Result<u128, Error> {
        let first = (self.index() + 1).max(index(wall, 0));
        let last = first + (count - 1);
        if last > MAX_INDEX { Err(self.exhausted()) } else { Ok(first) }
    }

    fn exhausted(&self) -> Error {
        Error::ClockExhausted { node_id: excerpt(self.node_id.as_str()) }
    }

    /// `(millis, counter)` as one number: the clock's state moves forward through these one step at
    /// a time (a counter overflow carries into the millis), which makes every rule a `max`.
    fn index(&self) -> u128 {
        index(self.last_millis, self.last_counter)
    }

    fn set_index(&mut self, at: u128) {
        // `at <= MAX_INDEX`: the high half fits a u64 and the low half a u32 (truncation intended).
        self.last_millis = (at >> 32) as u64;
        self.last_counter = at as u32;
    }

    /// Where observing `remote` at `wall` takes the clock (SPEC section 1's `update` rules, which in
    /// index form are `max(last + 1, remote + 1, (wall, 0))`), or `None` past `(u64::MAX, u32::MAX)`.
    fn after(&self, from: u128, remote: &Timestamp, wall: u64) -> Option<u128> {
        let next = (from + 1).max(index(remote.millis, remote.counter) + 1).max(index(wall, 0));
        (next <= MAX_INDEX).then_some(next)
    }

    /// The drift a remote timestamp shows against `wall`, if any. Never changes the clock.
    pub fn drift_of(&self, remote: &Timestamp, wall: u64) -> Option<Drift> {
        let ahead_ms = remote.millis.saturating_sub(wall);
        (ahead_ms > self.config.max_drift_ms).then(|| Drift {
            remote: remote.clone(),
            wall,
            ahead_ms,
            max_drift_ms: self.config.max_drift_ms,
        })
    }

    /// Like [`Hlc::drift_of`], but an error in strict mode, and an error in any mode when the clock
    /// could not move past `remote` (it would be exhausted).
    pub fn check(&self, remote: &Timestamp, wall: u64) -> Result<Option<Drift>, Error> {
        self.check_all(core::iter::once(remote), wall).map(|mut d| d.pop())
    }

    /// [`Hlc::check`] for a batch observed in this order: the drifts to report, or the first
    /// error, before anything changes (a batch merge is all or nothing).
    pub fn check_all<'a>(
        &self,
        remotes: impl IntoIterator<Item = &'a Timestamp>,
        wall: u64,
    ) -> Result<alloc::vec::Vec<Drift>, Error> {
        let mut drifts = alloc::vec::Vec::new();
        let mut at = self.index();
        for remote in remotes {
            match self.drift_of(remote, wall) {
                Some(d) if self.config.strict => return Err(Error::ClockDrift(d)),
                Some(d) => drifts.push(d),
                None => {}
            }
            at = self.after(at, remote, wall).ok_or_else(|| self.exhausted())?;
        }
        Ok(drifts)
    }

    /// Observes a remote timestamp: fails in strict mode on drift, or when the clock cannot move
    /// past it (before any change); otherwise advances the clock past it and returns the drift to
    /// report, if any.
    pub fn update(&mut self, remote: &Timestamp, wall: u64) -> Result<Option<Drift>, Error> {
        let drift = self.check(remote, wall)?;
        self.observe(remote, wall);
        Ok(drift)
    }

    /// Advances the clock past `remote` with no checks: for records of the node's own storage and
    /// for batches already checked with [`Hlc::check_all`]. Past `(u64::MAX, u32::MAX)` it stays
    /// there, exhausted: the next [`Hlc::now`] fails rather than issue a timestamp it has seen.
    pub fn observe(&mut self, remote: &Timestamp, wall: u64) {
        let next = self.after(self.index(), remote, wall).unwrap_or(MAX_INDEX);
        self.set_index(next);
    }
}
