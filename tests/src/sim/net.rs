//! The network and the driver: the same for every runtime.
//!
//! A link is an ordered, message-based transport (as SPEC section 8 asks): frames arrive in the
//! order sent, after a random delay. A lossy network shows up as a transport that dies: a link may
//! drop (the frames in flight are lost, both connections close), and reconnects later with new
//! connections, whose catch-up re-sends whatever was not acknowledged (duplicates included).
//! Reordering and duplication of changes happen across links: with three replicas or more, a write
//! reaches a replica directly and relayed, in any order.
//!
//! Everything random comes from one seeded [`Rng`], and the driver's draws depend only on what the
//! replicas answered, so runtimes that answer alike run the very same simulation.

use onegrid_core::MapKind;
use onegrid_core::codec::{Snapshot, decode_snapshot};
use onegrid_core::sync::{ConnState, Frame};

use super::{MapFinal, News, Received, Replicas, Rng, Write, WriteOp};

/// The maps the replicas write: two LWW maps and an OR map.
pub const MAPS: [(&str, MapKind); 3] = [("l1", MapKind::Lww), ("l2", MapKind::Lww), ("o1", MapKind::Or)];

/// One side of a link: its connection, and the frames on their way to the other side.
pub struct End {
    /// The connection on this side's replica.
    pub conn: u32,
    /// Its state, as last reported.
    pub state: ConnState,
    /// Frames sent and not yet delivered, with the time each arrives.
    pub queue: Vec<(u64, Vec<u8>)>,
    /// Records received per sequenced frame (to check acknowledgements against storage).
    pub received: Vec<Vec<(String, Received)>>,
}

impl End {
    fn new(conn: u32) -> Self {
        Self { conn, state: ConnState::Connecting, queue: Vec::new(), received: Vec::new() }
    }
}

/// A link between replicas `a` (it connects) and `b` (it accepts).
pub struct Link {
    /// The connecting replica.
    pub a: usize,
    /// The accepting replica.
    pub b: usize,
    /// `None` while down.
    pub ends: Option<(End, End)>,
    /// Kept down (a partition) until healed.
    pub partitioned: bool,
}

/// What one input to a replica did: the runtimes are compared on these, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The virtual time.
    pub now: u64,
    /// The replica.
    pub replica: usize,
    /// The input, in short (`write l1/k3`, `open 2`, `receive 1`, `close 0`, `storage`).
    pub input: String,
    /// What a write wrote.
    pub write: Option<Write>,
    /// The pump's news.
    pub news: News,
}

/// Everything a run yields: equal across runtimes, or one of them is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Every input, in order.
    pub steps: Vec<Step>,
    /// Per replica, per map of [`MAPS`]: its root and snapshot.
    pub finals: Vec<Vec<Option<MapFinal>>>,
}

impl Outcome {
    /// The frames sent, and their bytes.
    pub fn frames(&self) -> (usize, usize) {
        let frames = self.steps.iter().flat_map(|s| &s.news).flat_map(|n| &n.frames);
        frames.fold((0, 0), |(n, bytes), f| (n + 1, bytes + f.len()))
    }

    /// A hash of every frame sent, in order (64-bit FNV-1a, each frame ending in its length), to
    /// name a transcript in messages.
    pub fn digest(&self) -> u64 {
        let frames = self.steps.iter().flat_map(|s| &s.news).flat_map(|n| &n.frames);
        frames.fold(0xcbf2_9ce4_8422_2325, |h, f| {
            f.iter()
                .chain(&(f.len() as u64).to_le_bytes())
                .fold(h, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
        })
    }

    /// Panics, naming the first difference, unless `other` (from runtime `name`) equals this
    /// outcome (from `native`).
    pub fn assert_same(&self, other: &Self, name: &str) {
        for (i, (a, b)) in self.steps.iter().zip(&other.steps).enumerate() {
            assert_eq!(a, b, "step {i}: native and {name} differ");
        }
        assert_eq!(self.steps.len(), other.steps.len(), "native and {name} ran a different number of steps");
        for (r, (a, b)) in self.finals.iter().zip(&other.finals).enumerate() {
            assert_eq!(a, b, "replica {r}: native and {name} end with different roots or snapshots");
        }
        assert_eq!(self, other);
    }
}

/// Replicas (in one runtime), every pair linked, a virtual clock and one seeded [`Rng`].
pub struct Net<R> {
    /// The replicas.
    pub replicas: R,
    /// Every pair of replicas, `a < b`.
    pub links: Vec<Link>,
    /// The randomness.
    pub rng: Rng,
    /// The virtual clock, in milliseconds; a step takes one.
    pub now: u64,
    /// The longest delay of a frame, in steps.
    pub max_delay: u64,
    /// Percent chance per step that an up link drops.
    pub drop_percent: u64,
    /// Acknowledgements sent before what they covered was stored (must stay empty).
    pub early_acks: Vec<String>,
    /// Every local write: (replica, map, key, what).
    pub writes: Vec<(usize, &'static str, String, Write)>,
    /// Every input so far.
    pub steps: Vec<Step>,
}

impl<R: Replicas> Net<R> {
    /// A network of `replicas` with every pair linked (all down at first).
    pub fn new(replicas: R, seed: u64) -> Self {
        let n = replicas.count();
        let links =
            (0..n).flat_map(|a| (a + 1..n).map(move |b| Link { a, b, ends: None, partitioned: false })).collect();
        Self {
            replicas,
            links,
            rng: Rng::new(seed),
            now: 1_000_000,
            max_delay: 5,
            drop_percent: 0,
            early_acks: Vec::new(),
            writes: Vec::new(),
            steps: Vec::new(),
        }
    }

    /// Notes an input of replica `r` and takes its news: states, and frames onto their links.
    fn absorb(&mut self, r: usize, input: String, write: Option<Write>, news: News) {
        let name = self.replicas.name().to_owned();
        for n in &news {
            assert!(n.problems.is_empty(), "{name}: replica {r} connection {}: {:?}", n.conn, n.problems);
            let Some(end) = end_of(&mut self.links, r, n.conn) else {
                // Only a connection the driver has just closed (its link is down) is not on a link.
                assert!(
                    n.state == ConnState::Closed && n.frames.is_empty(),
                    "{name}: replica {r} reported connection {} on no link: {n:?}",
                    n.conn
                );
                continue;
            };
            end.state = n.state;
            for frame in &n.frames {
                if let Ok(Frame::Ack { upto }) = Frame::decode(frame, usize::MAX) {
                    let end = end_of(&mut self.links, r, n.conn).expect("the end above");
                    self.early_acks.extend(self.replicas.early_acks(r, &end.received, upto));
                }
                let delay = self.rng.below(self.max_delay + 1);
                let now = self.now;
                let end = end_of(&mut self.links, r, n.conn).expect("the end above");
                let at = (now + delay).max(end.queue.last().map_or(0, |q| q.0));
                end.queue.push((at, frame.clone()));
            }
        }
        self.steps.push(Step { now: self.now, replica: r, input, write, news });
    }

    /// Brings link `l` up: its `a` side connects, its `b` side accepts.
    pub fn connect(&mut self, l: usize) {
        let (a, b, now) = (self.links[l].a, self.links[l].b, self.now);
        let (ca, news_a) = self.replicas.open(a, now, false);
        let (cb, news_b) = self.replicas.open(b, now, true);
        self.links[l].ends = Some((End::new(ca), End::new(cb)));
        self.absorb(a, format!("open {ca}"), None, news_a);
        self.absorb(b, format!("accept {cb}"), None, news_b);
    }

    /// Takes link `l` down: frames in flight are lost, both connections close.
    pub fn drop_link(&mut self, l: usize) {
        let Some((ea, eb)) = self.links[l].ends.take() else { return };
        for (r, conn) in [(self.links[l].a, ea.conn), (self.links[l].b, eb.conn)] {
            let news = self.replicas.close(r, self.now, conn);
            assert!(
                news.iter().any(|n| n.conn == conn && n.state == ConnState::Closed),
                "{}: replica {r} did not report connection {conn} closed: {news:?}",
                self.replicas.name()
            );
            self.absorb(r, format!("close {conn}"), None, news);
        }
    }

    /// Takes link `l` down and keeps it down until [`Net::heal`].
    pub fn partition(&mut self, l: usize) {
        self.drop_link(l);
        self.links[l].partitioned = true;
    }

    /// Ends every partition.
    pub fn heal(&mut self) {
        for link in &mut self.links {
            link.partitioned = false;
        }
    }

    /// A random local write on replica `r`.
    pub fn random_write(&mut self, r: usize) {
        let (map, kind) = MAPS[self.rng.below(MAPS.len() as u64) as usize];
        let key = format!("k{}", self.rng.below(24));
        let value = self.rng.below(5) as i64;
        let roll = self.rng.below(10);
        let ttl = (roll == 0).then_some(1 + self.rng.below(200));
        let remove = roll < if kind == MapKind::Lww { 3 } else { 4 };
        let op = WriteOp { map, kind, key: key.clone(), value, ttl, remove };
        let (write, news) = self.replicas.write(r, self.now, &op);
        self.writes.push((r, map, key.clone(), write.clone()));
        self.absorb(r, format!("write {map}/{key}"), Some(write), news);
    }

    /// One tick: storage answers, links come up or drop, frames that have arrived are delivered.
    pub fn step(&mut self) {
        self.now += 1;
        for r in 0..self.replicas.count() {
            self.storage(r, false);
        }
        for l in 0..self.links.len() {
            if self.links[l].ends.is_none() {
                if !self.links[l].partitioned && self.rng.chance(20) {
                    self.connect(l);
                }
                continue;
            }
            if self.drop_percent > 0 && self.rng.chance(self.drop_percent) {
                self.drop_link(l);
                continue;
            }
            self.deliver(l);
        }
    }

    fn storage(&mut self, r: usize, all: bool) {
        let news = self.replicas.storage(r, self.now, &mut self.rng, all);
        if !news.is_empty() {
            self.absorb(r, "storage".into(), None, news);
        }
    }

    /// Delivers what has arrived on link `l`, both ways, one frame at a time.
    fn deliver(&mut self, l: usize) {
        let (a, b, now) = (self.links[l].a, self.links[l].b, self.now);
        for (to, side) in [(b, 0), (a, 1)] {
            let Some(ends) = self.links[l].ends.as_mut() else { return };
            let (from, target) = if side == 0 { (&mut ends.0, &mut ends.1) } else { (&mut ends.1, &mut ends.0) };
            let arrived = from.queue.iter().take_while(|q| q.0 <= now).count();
            let frames: Vec<Vec<u8>> = from.queue.drain(..arrived).map(|q| q.1).collect();
            let conn = target.conn;
            for bytes in frames {
                if let Some(records) = sequenced_records(&bytes) {
                    end_of(&mut self.links, to, conn).expect("the link is up").received.push(records);
                }
                let news = self.replicas.receive(to, now, conn, &bytes);
                self.absorb(to, format!("receive {conn}"), None, news);
            }
        }
    }

    /// True when every link is up and synced, nothing is in flight and storage is answered.
    pub fn quiet(&self) -> bool {
        let links = self.links.iter().all(|l| {
            l.ends
                .as_ref()
                .is_some_and(|(ea, eb)| [ea, eb].iter().all(|e| e.queue.is_empty() && e.state == ConnState::Synced))
        });
        links && (0..self.replicas.count()).all(|r| self.replicas.idle(r))
    }

    /// Heals, stops drops and runs until quiet (panics after `limit` steps).
    pub fn settle(&mut self, limit: usize) {
        self.heal();
        self.drop_percent = 0;
        for _ in 0..limit {
            for r in 0..self.replicas.count() {
                self.storage(r, true);
            }
            self.step();
            if self.quiet() {
                return;
            }
        }
        let states: Vec<String> = self
            .links
            .iter()
            .map(|l| match &l.ends {
                Some((ea, eb)) => {
                    format!("{}-{}: {:?}/{:?} q{}/{}", l.a, l.b, ea.state, eb.state, ea.queue.len(), eb.queue.len())
                }
                None => format!("{}-{}: down", l.a, l.b),
            })
            .collect();
        panic!("{}: no quiescence after {limit} steps: {states:?}", self.replicas.name());
    }

    /// Every replica's maps of [`MAPS`], now.
    pub fn finals(&mut self) -> Vec<Vec<Option<MapFinal>>> {
        (0..self.replicas.count()).map(|r| self.replicas.finals(r, &MAPS)).collect()
    }

    /// Asserts every replica has every map with the same root and the same snapshot, and holds
    /// every write any replica made (or something newer).
    pub fn assert_converged(&mut self) {
        let name = self.replicas.name().to_owned();
        let finals = self.finals();
        for (m, (map, _)) in MAPS.iter().enumerate() {
            for (r, fin) in finals.iter().enumerate() {
                assert_eq!(fin[m], finals[0][m], "{name}: map {map} differs between replica {r} and replica 0");
            }
        }
        for (r, map, key, write) in &self.writes {
            let m = MAPS.iter().position(|(n, _)| n == map).expect("a map of MAPS");
            let fin = finals[0][m].as_ref().unwrap_or_else(|| panic!("{name}: map {map} is missing"));
            let snapshot = decode_snapshot(&fin.snapshot).expect("a snapshot");
            assert!(holds(&snapshot, key, write), "{name}: replica {r}'s write {write:?} to {map}/{key} is lost");
        }
    }

    /// The run's [`Outcome`].
    pub fn outcome(mut self) -> Outcome {
        let finals = self.finals();
        Outcome { steps: self.steps, finals }
    }
}

/// The simulation every runtime runs: six rounds of forty steps, in which replicas write at
/// random, links partition and heal, and links drop (`drop_percent` per step); every other round,
/// and at the end, the network settles and must have converged. Returns the outcome.
pub fn simulate<R: Replicas>(replicas: R, seed: u64, drop_percent: u64) -> Outcome {
    let mut net = Net::new(replicas, seed);
    net.drop_percent = drop_percent;
    let n = net.replicas.count() as u64;
    for round in 0..6 {
        for _ in 0..40 {
            if net.rng.chance(60) {
                let r = net.rng.below(n) as usize;
                net.random_write(r);
            }
            if net.rng.chance(3) {
                let l = net.rng.below(net.links.len() as u64) as usize;
                net.partition(l);
            }
            if net.rng.chance(2) {
                net.heal();
            }
            net.step();
        }
        if round % 2 == 1 {
            net.settle(3_000);
            net.assert_converged();
            net.drop_percent = drop_percent;
        }
    }
    net.settle(3_000);
    net.assert_converged();
    assert!(net.early_acks.is_empty(), "{}: {:#?}", net.replicas.name(), net.early_acks);
    net.outcome()
}

/// The end of a link that is replica `r`'s connection `conn`.
fn end_of(links: &mut [Link], r: usize, conn: u32) -> Option<&mut End> {
    links.iter_mut().find_map(|l| {
        let (ea, eb) = l.ends.as_mut()?;
        if l.a == r && ea.conn == conn {
            Some(ea)
        } else if l.b == r && eb.conn == conn {
            Some(eb)
        } else {
            None
        }
    })
}

fn holds(snapshot: &Snapshot, key: &str, write: &Write) -> bool {
    match (snapshot, write) {
        (Snapshot::Lww(records), Write::Lww(ts)) => records.iter().any(|(k, r)| &**k == key && r.timestamp >= *ts),
        (Snapshot::Or { keys, tombstones }, Write::Add(ts)) => {
            tombstones.contains(ts) || keys.iter().any(|(k, rs)| &**k == key && rs.iter().any(|r| r.timestamp == *ts))
        }
        (Snapshot::Or { tombstones, .. }, Write::Removed(tags)) => tags.iter().all(|t| tombstones.contains(t)),
        _ => false,
    }
}

/// The records a sequenced frame carries (`None` for frames that are not sequenced).
fn sequenced_records(bytes: &[u8]) -> Option<Vec<(String, Received)>> {
    let frame = Frame::decode(bytes, usize::MAX).ok()?;
    if !frame.is_sequenced() {
        return None;
    }
    let mut records = Vec::new();
    if let Frame::Writes { map, payload } | Frame::Records { map, payload, .. } = &frame {
        match decode_snapshot(payload) {
            Ok(Snapshot::Lww(rs)) => {
                records.extend(rs.into_iter().map(|(k, r)| (map.clone(), Received::Lww(k.into(), r.timestamp))))
            }
            Ok(Snapshot::Or { keys, tombstones }) => {
                for (_, rs) in keys {
                    records.extend(rs.into_iter().map(|r| (map.clone(), Received::Or(r.timestamp))));
                }
                records.extend(tombstones.into_iter().map(|t| (map.clone(), Received::Tomb(t))));
            }
            Err(_) => {}
        }
    }
    Some(records)
}
