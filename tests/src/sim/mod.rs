//! A deterministic simulation of sync (SPEC section 8), in the shape of quinn-proto's test `Pair`,
//! that runs on every runtime of the module: replicas writing both kinds of map at random, links
//! between them with seeded delays, partitions and drops, a virtual clock, and a run to quiescence.
//!
//! - [`net`]: the network and the driver ([`Net`]), the same for every runtime;
//! - [`Replicas`]: what the driver asks of a runtime's replicas;
//! - [`abi`]: replicas driven through the byte ABI's commands, natively ([`native`]: the core's
//!   `Replica`, i.e. a `Grid` and its `Hub`, with optional storage) or in wasmtime ([`abi::Wasmtime`]);
//! - [`node`]: replicas in Node, through the JavaScript API.
//!
//! Every input a replica takes (a local write, a connection opened, a frame received, a
//! connection closed, storage answers) is followed by one pump, as the JavaScript API pumps after
//! each (`sync.js`); the byte-ABI replicas pump the same way. So every runtime sees the same calls
//! with the same times, and must emit byte-identical frames: a run's [`net::Outcome`] (every
//! replica's news after every input, and the final roots and snapshots) is compared across
//! runtimes whole.

pub mod abi;
pub mod native;
pub mod net;
pub mod node;

use onegrid_core::sync::ConnState;
use onegrid_core::{MapKind, Timestamp};

pub use net::{Net, Outcome};

/// A seeded xorshift generator: the simulation's only randomness.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any seed, 0 included).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (0 for `n` of 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A local write the driver asks for. Values are small integers, so every runtime takes them alike.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteOp {
    /// The map.
    pub map: &'static str,
    /// Its kind: LWW `set`/`remove`, or OR `add`/`remove`.
    pub kind: MapKind,
    /// The key.
    pub key: String,
    /// The value (set, add, and the value an OR remove removes).
    pub value: i64,
    /// A TTL in milliseconds (set and add).
    pub ttl: Option<u64>,
    /// A remove instead of a set or an add.
    pub remove: bool,
}

/// What a local write wrote, to check that it is never lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// An LWW set or remove: its record's timestamp.
    Lww(Timestamp),
    /// An OR add: its tag.
    Add(Timestamp),
    /// An OR remove: the tags it removed.
    Removed(Vec<Timestamp>),
}

/// One connection after a pump: what it sent and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnNews {
    /// The connection's id (the hub's: 0, 1, ... per replica).
    pub conn: u32,
    /// Its state after the pump.
    pub state: ConnState,
    /// Local writes its peer has not acknowledged.
    pub pending: u64,
    /// The frames it sent, in order.
    pub frames: Vec<Vec<u8>>,
    /// Problems it reported (error codes); the simulation expects none.
    pub problems: Vec<String>,
}

/// Every open connection of a replica after a pump (and those it closed, once), by id.
pub type News = Vec<ConnNews>;

/// A map at the end of a run: its Merkle root and snapshot bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapFinal {
    /// The Merkle root.
    pub root: u32,
    /// The snapshot (`exportMap`).
    pub snapshot: Vec<u8>,
}

/// Records a sequenced frame carried, noted by the driver for [`Replicas::early_acks`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// An LWW record: key and timestamp.
    Lww(String, Timestamp),
    /// An OR record's tag.
    Or(Timestamp),
    /// An OR tombstone.
    Tomb(Timestamp),
}

/// The replicas of one simulation, in one runtime. Replica `r` is node `r{r}`. Every input is
/// followed by a pump, whose [`News`] it returns; a failure of the runtime panics with its words.
pub trait Replicas {
    /// The runtime's name, for messages.
    fn name(&self) -> &str;

    /// How many replicas there are.
    fn count(&self) -> usize;

    /// A local write on replica `r` at wall time `now`.
    fn write(&mut self, r: usize, now: u64, op: &WriteOp) -> (Write, News);

    /// Opens a connection on replica `r` that says hello (`accepting`: one that waits for a hello,
    /// and accepts it for every map); returns its id.
    fn open(&mut self, r: usize, now: u64, accepting: bool) -> (u32, News);

    /// Hands a frame from the peer to connection `conn` of replica `r`.
    fn receive(&mut self, r: usize, now: u64, conn: u32, frame: &[u8]) -> News;

    /// The transport of connection `conn` of replica `r` is gone: it closes, and is forgotten once
    /// reported closed.
    fn close(&mut self, r: usize, now: u64, conn: u32) -> News;

    /// Replica `r`'s maps (by name and kind) at the end: `None` where it has no such map.
    fn finals(&mut self, r: usize, maps: &[(&str, MapKind)]) -> Vec<Option<MapFinal>>;

    /// Answers some of replica `r`'s storage requests (all of them with `all`), if it has storage.
    fn storage(&mut self, _r: usize, _now: u64, _rng: &mut Rng, _all: bool) -> News {
        News::new()
    }

    /// False while replica `r` holds storage requests it has not answered.
    fn idle(&self, _r: usize) -> bool {
        true
    }

    /// What replica `r` acknowledged (`upto` frames of those `received` on one connection) before
    /// its storage held it; empty without storage.
    fn early_acks(&self, _r: usize, _received: &[Vec<(String, Received)>], _upto: u64) -> Vec<String> {
        Vec::new()
    }
}
