//! A deterministic network of grids for the sync tests, in the shape of quinn-proto's test `Pair`:
//! replicas (each a `Grid` and its `Hub`, some with a fake storage adapter), links between them
//! with seeded delays, partitions and drops, a virtual clock, and a run to quiescence.
//!
//! A link is an ordered, message-based transport (as SPEC section 8 asks): frames arrive in the
//! order sent, after a random delay. A lossy network shows up as a transport that dies: a link may
//! drop (the frames in flight are lost), and reconnects later with a new connection, whose catch-up
//! re-sends whatever was not acknowledged (duplicates included). Reordering and duplication of
//! changes happen across links: a write reaches a replica directly and relayed, in any order.
#![allow(dead_code)]

use std::collections::BTreeMap;

use onegrid_core::codec::{Snapshot, decode_snapshot};
use onegrid_core::sync::{ConnId, ConnState, Event, Frame, Hub, Permissions, SyncConfig};
use onegrid_core::{ClockConfig, Grid, MapKind, NodeId, StorageConfig, StoredValue, Timestamp, Value};

use super::storage::Fake;

/// A seeded xorshift generator.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

pub struct Replica {
    pub grid: Grid,
    pub hub: Hub,
    /// Fake storage, answered a little later than asked.
    pub fake: Option<Fake>,
    /// Requests taken from the storage manager, not yet answered.
    pub held: Vec<onegrid_core::StorageRequest>,
    /// Every local write: (map, key, what).
    pub writes: Vec<(String, String, Write)>,
}

#[derive(Clone, Debug)]
pub enum Write {
    Lww(Timestamp),
    Add(Timestamp),
    Removed(Vec<Timestamp>),
}

/// One side of a link: its connection, and the frames on their way to the other side.
pub struct End {
    pub conn: ConnId,
    pub queue: Vec<(u64, Vec<u8>)>,
    /// Records received per sequenced frame (to check acknowledgements against storage).
    pub received: Vec<Vec<(String, Received)>>,
}

#[derive(Clone, Debug)]
pub enum Received {
    Lww(String, Timestamp),
    Or(Timestamp),
    Tomb(Timestamp),
}

pub struct Link {
    pub a: usize,
    pub b: usize,
    /// `None` while down.
    pub ends: Option<(End, End)>,
    /// Kept down (a partition) until healed.
    pub partitioned: bool,
}

pub struct Net {
    pub replicas: Vec<Replica>,
    pub links: Vec<Link>,
    pub rng: Rng,
    pub now: u64,
    pub max_delay: u64,
    /// Percent chance per step that an up link drops.
    pub drop_percent: u64,
    pub config: SyncConfig,
    /// Acknowledgements sent before what they covered was stored (must stay empty).
    pub early_acks: Vec<String>,
    pub events: Vec<(usize, Event)>,
}

pub const MAPS: [(&str, MapKind); 3] = [("l1", MapKind::Lww), ("l2", MapKind::Lww), ("o1", MapKind::Or)];

impl Net {
    /// `n` replicas; those in `persistent` have fake storage. Every pair is linked.
    pub fn new(n: usize, persistent: &[usize], seed: u64, config: SyncConfig) -> Self {
        let mut replicas = Vec::new();
        for i in 0..n {
            let id = NodeId::new(&format!("r{i}")).expect("node");
            let (grid, fake) = if persistent.contains(&i) {
                (Grid::with_storage(id, ClockConfig::default(), StorageConfig::default()), Some(Fake::default()))
            } else {
                (Grid::new(id, ClockConfig::default()), None)
            };
            replicas.push(Replica { grid, hub: Hub::new(config), fake, held: Vec::new(), writes: Vec::new() });
        }
        let mut links = Vec::new();
        for a in 0..n {
            for b in a + 1..n {
                links.push(Link { a, b, ends: None, partitioned: false });
            }
        }
        Self {
            replicas,
            links,
            rng: Rng::new(seed),
            now: 1_000_000,
            max_delay: 5,
            drop_percent: 0,
            config,
            early_acks: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Brings link `l` up: its `a` side connects, its `b` side accepts.
    pub fn connect(&mut self, l: usize) {
        let (a, b) = (self.links[l].a, self.links[l].b);
        let ra = &mut self.replicas[a];
        let ca = ra.hub.connect(&mut ra.grid, None);
        let rb = &mut self.replicas[b];
        let cb = rb.hub.incoming(&mut rb.grid);
        let end = |conn| End { conn, queue: Vec::new(), received: Vec::new() };
        self.links[l].ends = Some((end(ca), end(cb)));
    }

    /// Takes link `l` down: frames in flight are lost, both connections closed and forgotten.
    pub fn drop_link(&mut self, l: usize) {
        let Some((ea, eb)) = self.links[l].ends.take() else { return };
        let (a, b) = (self.links[l].a, self.links[l].b);
        for (r, conn) in [(a, ea.conn), (b, eb.conn)] {
            let hub = &mut self.replicas[r].hub;
            hub.close(conn);
            while let Some(event) = hub.poll_event(conn) {
                self.events.push((r, event));
            }
            hub.remove(conn);
        }
    }

    pub fn partition(&mut self, l: usize) {
        self.drop_link(l);
        self.links[l].partitioned = true;
    }

    pub fn heal(&mut self) {
        for link in &mut self.links {
            link.partitioned = false;
        }
    }

    /// A random local write on replica `r`.
    pub fn random_write(&mut self, r: usize) {
        let (map, kind) = MAPS[self.rng.below(MAPS.len() as u64) as usize];
        let key = format!("k{}", self.rng.below(24));
        let value = Value::from(self.rng.below(5) as i64);
        let wall = self.now;
        let roll = self.rng.below(10);
        let ttl = (roll == 0).then_some(1 + self.rng.below(200));
        let replica = &mut self.replicas[r];
        let write = match kind {
            MapKind::Lww => {
                let (m, clock) = replica.grid.lww(map, wall).expect("lww");
                if roll < 3 {
                    Write::Lww(m.remove(clock, wall, &key).expect("remove"))
                } else {
                    Write::Lww(m.set(clock, wall, &key, value, ttl).expect("set"))
                }
            }
            MapKind::Or => {
                let (m, clock) = replica.grid.or(map, wall).expect("or");
                if roll < 4 {
                    let tags = m.remove(&key, &value).expect("remove");
                    Write::Removed(tags.iter().map(|t| Timestamp::parse(t).expect("tag")).collect())
                } else {
                    Write::Add(m.add(clock, wall, &key, value, ttl).expect("add").timestamp)
                }
            }
        };
        replica.writes.push((map.into(), key, write));
    }

    /// One tick: storage answers, links move frames, events are handled.
    pub fn step(&mut self) {
        self.now += 1;
        for r in 0..self.replicas.len() {
            self.run_storage(r, false);
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
            self.pump(l);
        }
    }

    fn run_storage(&mut self, r: usize, all: bool) {
        let replica = &mut self.replicas[r];
        let Some(fake) = &mut replica.fake else { return };
        while let Some(request) = replica.grid.storage_mut().poll_storage() {
            replica.held.push(request);
        }
        // Answer some now, the rest later (in order: a later write may hold newer values).
        let answer = if all { replica.held.len() } else { self.rng.below(replica.held.len() as u64 + 1) as usize };
        for request in replica.held.drain(..answer).collect::<Vec<_>>() {
            let result = fake.execute(&request.op);
            replica.grid.storage_mut().handle_storage(request.id, result).expect("pending request");
        }
        while let Some(event) = replica.grid.storage_mut().poll_event() {
            replica.hub.handle_storage_event(&event);
        }
    }

    /// Moves link `l`'s frames: polls both sides, delivers what has arrived.
    fn pump(&mut self, l: usize) {
        let (a, b) = (self.links[l].a, self.links[l].b);
        for side in 0..2 {
            let (from, to) = if side == 0 { (a, b) } else { (b, a) };
            let Some(ends) = self.links[l].ends.as_mut() else { return };
            let (mine, theirs) = if side == 0 { (&mut ends.0, &mut ends.1) } else { (&mut ends.1, &mut ends.0) };
            let now = self.now;
            let replica = &mut self.replicas[from];
            while let Some(bytes) = replica.hub.poll_transmit(&mut replica.grid, mine.conn, now) {
                if let Ok(Frame::Ack { upto }) = Frame::decode(&bytes, usize::MAX) {
                    check_ack(&mut self.early_acks, replica, &mine.received, upto);
                }
                let last = mine.queue.last().map_or(0, |q| q.0);
                let at = (now + self.rng.below(self.max_delay + 1)).max(last);
                mine.queue.push((at, bytes));
            }
            while let Some(event) = replica.hub.poll_event(mine.conn) {
                if let Event::Hello { .. } = event {
                    replica.hub.accept(&mut replica.grid, mine.conn, Permissions::all());
                }
                self.events.push((from, event));
            }
            // Deliver to the other side what has arrived.
            let arrived = mine.queue.iter().take_while(|q| q.0 <= now).count();
            let frames: Vec<Vec<u8>> = mine.queue.drain(..arrived).map(|q| q.1).collect();
            for bytes in frames {
                record_received(&mut theirs.received, &bytes);
                let target = &mut self.replicas[to];
                target.hub.handle_frame(&mut target.grid, theirs.conn, now, &bytes);
            }
        }
    }

    /// True when every link is up and synced and nothing is in flight.
    pub fn quiet(&mut self) -> bool {
        for l in 0..self.links.len() {
            let (a, b) = (self.links[l].a, self.links[l].b);
            let Some((ea, eb)) = &self.links[l].ends else { return false };
            if !ea.queue.is_empty() || !eb.queue.is_empty() {
                return false;
            }
            for (r, conn) in [(a, ea.conn), (b, eb.conn)] {
                let replica = &mut self.replicas[r];
                if replica.hub.state(conn) != ConnState::Synced || !replica.held.is_empty() {
                    return false;
                }
            }
        }
        true
    }

    /// Runs until quiet (panics after `limit` steps).
    pub fn settle(&mut self, limit: usize) {
        self.heal();
        self.drop_percent = 0;
        for _ in 0..limit {
            for r in 0..self.replicas.len() {
                self.run_storage(r, true);
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
                Some((ea, eb)) => format!(
                    "{}-{}: {:?}/{:?} q{}/{}",
                    l.a,
                    l.b,
                    self.replicas[l.a].hub.state(ea.conn),
                    self.replicas[l.b].hub.state(eb.conn),
                    ea.queue.len(),
                    eb.queue.len()
                ),
                None => format!("{}-{}: down", l.a, l.b),
            })
            .collect();
        panic!("no quiescence after {limit} steps: {states:?}");
    }

    /// Asserts every replica has every map with the same root and the same snapshot, and holds
    /// every write any replica made (or something newer).
    pub fn assert_converged(&self) {
        let first = &self.replicas[0].grid;
        for (map, _) in MAPS {
            let Some(expected) = first.map(map) else {
                assert!(self.replicas.iter().all(|r| r.grid.map(map).is_none()), "map {map} only on some");
                continue;
            };
            for (i, r) in self.replicas.iter().enumerate() {
                let got = r.grid.map(map).unwrap_or_else(|| panic!("replica {i} lacks map {map}"));
                assert_eq!(got.root(), expected.root(), "root of {map} on replica {i}");
                assert_eq!(
                    r.grid.export_map(map).expect("export"),
                    first.export_map(map).expect("export"),
                    "snapshot of {map} on replica {i}"
                );
            }
        }
        for r in &self.replicas {
            for (map, key, write) in &r.writes {
                let snapshot = decode_snapshot(&first.export_map(map).expect("export")).expect("snapshot");
                assert!(holds(&snapshot, key, write), "write {write:?} to {map}/{key} is lost");
            }
        }
    }

    pub fn events_of(&self, r: usize) -> Vec<&Event> {
        self.events.iter().filter(|(i, _)| *i == r).map(|(_, e)| e).collect()
    }
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

/// Notes the records a sequenced frame carries, by its sequence number.
fn record_received(received: &mut Vec<Vec<(String, Received)>>, bytes: &[u8]) {
    let Ok(frame) = Frame::decode(bytes, usize::MAX) else { return };
    if !frame.is_sequenced() {
        return;
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
    received.push(records);
}

/// An acknowledgement may leave only when storage holds what the frames it covers carried (or
/// something newer).
fn check_ack(early: &mut Vec<String>, replica: &Replica, received: &[Vec<(String, Received)>], upto: u64) {
    let Some(fake) = &replica.fake else { return };
    let stored_tombs = |map: &str| -> Vec<Timestamp> {
        match fake.stored(map, "__tombstones__") {
            Some(StoredValue::OrTombstones(tags)) => tags,
            _ => Vec::new(),
        }
    };
    for frame in received.iter().take(upto as usize) {
        for (map, record) in frame {
            let ok = match record {
                Received::Lww(key, ts) => {
                    matches!(fake.stored(map, key), Some(StoredValue::Lww(r)) if r.timestamp >= *ts)
                }
                Received::Or(tag) => {
                    stored_tombs(map).contains(tag)
                        || fake.data.get(map.as_str()).is_some_and(|m| {
                            m.keys().any(|k| {
                                matches!(fake.stored(map, k), Some(StoredValue::Or(rs)) if rs.iter().any(|r| r.timestamp == *tag))
                            })
                        })
                }
                Received::Tomb(tag) => stored_tombs(map).contains(tag),
            };
            if !ok {
                early.push(format!("{map}: {record:?} acknowledged before it was stored"));
            }
        }
    }
}

/// Roots of every map of a grid, by name.
pub fn roots(grid: &Grid) -> BTreeMap<String, u32> {
    grid.map_names().into_iter().filter_map(|n| Some((n.to_string(), grid.map(n)?.root()))).collect()
}

/// Connects two in-memory grids (`a` says hello, `b` accepts everything), runs them until both
/// are synced, and returns the bytes each sent (handshake included) and the frames.
pub fn sync_pair(a: &mut Grid, b: &mut Grid, config: SyncConfig, wall: u64) -> (usize, usize, usize) {
    let (mut ha, mut hb) = (Hub::new(config), Hub::new(config));
    let ca = ha.connect(a, None);
    let cb = hb.incoming(b);
    let (mut sent_a, mut sent_b, mut frames) = (0, 0, 0);
    for _ in 0..10_000 {
        let mut moved = false;
        while let Some(bytes) = ha.poll_transmit(a, ca, wall) {
            assert!(bytes.len() <= config.frame_limit, "a frame of {} bytes", bytes.len());
            sent_a += bytes.len();
            frames += 1;
            hb.handle_frame(b, cb, wall, &bytes);
            moved = true;
        }
        while let Some(event) = hb.poll_event(cb) {
            if let Event::Hello { .. } = event {
                hb.accept(b, cb, Permissions::all());
            }
            assert!(!matches!(event, Event::Closed { .. }), "{event:?}");
        }
        while let Some(bytes) = hb.poll_transmit(b, cb, wall) {
            assert!(bytes.len() <= config.frame_limit, "a frame of {} bytes", bytes.len());
            sent_b += bytes.len();
            frames += 1;
            ha.handle_frame(a, ca, wall, &bytes);
            moved = true;
        }
        while let Some(event) = ha.poll_event(ca) {
            assert!(!matches!(event, Event::Closed { .. }), "{event:?}");
        }
        if !moved && ha.state(ca) == ConnState::Synced && hb.state(cb) == ConnState::Synced {
            return (sent_a, sent_b, frames);
        }
    }
    panic!("the pair did not sync: {:?} / {:?}", ha.state(ca), hb.state(cb));
}
