//! Sync between grids (SPEC section 8), sans-IO: the connections of one grid and what they share.
//!
//! A [`Hub`] sits beside a [`Grid`] (one per grid) and owns its [`Connection`]s, each a state
//! machine in the shape of quinn-proto's: the driver (the JavaScript API, the byte ABI, the host,
//! a test) hands frames in and polls frames and events out. The driver's loop, per connection:
//!
//! 1. open it: [`Hub::connect`] (sends `Hello`) or [`Hub::incoming`] (waits for one);
//! 2. hand every frame from the transport to [`Hub::handle_frame`];
//! 3. drain [`Hub::poll_transmit`] into the transport and [`Hub::poll_event`]: on
//!    [`Event::Hello`] (accepting side) call [`Hub::accept`] or [`Hub::refuse`];
//! 4. with storage, run the grid's storage requests as always, and hand its `Flushed` and
//!    `FlushFailed` events to [`Hub::handle_storage_event`] (acknowledgements wait for them);
//! 5. after local writes, poll again (the hub picks changes up from the maps themselves).
//!
//! ## Decisions
//! - **One log, a cursor per connection.** Maps report their changes to a feed (like their
//!   change events, but for sync); the hub numbers them in one change log, and each connection
//!   pushes what is after its cursor that did not come from it, filtered by what the peer may
//!   read. An idle connection costs its struct (a few hundred bytes), not a queue. The log keeps
//!   only what some connection has not pushed, and at most [`SyncConfig::log_limit`] entries; a
//!   connection left behind catches up by Merkle instead.
//! - **Group commit.** A frame that changed the grid is acknowledged once a flush issued after it
//!   has succeeded. The hub issues one flush for everything applied since the last, with up to
//!   [`SyncConfig::flushes`] in flight: a flush carries only what the ones before it do not, so
//!   storage can take the next one while the grid applies frames, and a driver whose storage
//!   commits what has queued together (the host's storage thread) commits many flushes of many
//!   connections at once. Flushes end in order (the storage manager sees to that), so
//!   acknowledgements do too. Without storage, frames are acknowledged as soon as they are
//!   applied.
//! - **What is acknowledged.** A connection counts this grid's local writes up to a log position
//!   as acknowledged once they were pushed and the frames carrying them acknowledged, and, for
//!   writes made before it connected (or while it had fallen behind), once the catch-up since is
//!   over and acknowledged. [`Hub::marker`] and [`Hub::is_acked`] make `whenSynced`;
//!   [`Hub::pending_writes`] counts what is not yet acknowledged.
//! - **Symmetric after the handshake.** Roles only decide who says hello and who opens the
//!   catch-ups of the maps both have (the connecting side); data flows the same way both ways,
//!   so server-to-server links need nothing new.

mod catchup;
mod connection;
pub mod frame;
mod log;
pub mod permissions;
pub(crate) mod types;

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use crate::event::{FeedItem, Origin};
use crate::grid::Grid;
use crate::hlc::NodeId;
use crate::storage::StorageEvent;
use crate::storage::maps::{AnyMap, MapId};
use crate::sync::connection::Ctx;
use crate::sync::frame::{DEFAULT_FRAME_LIMIT, MIN_FRAME_LIMIT};
use crate::sync::log::{ChangeLog, Entry, Source};

pub use connection::{Connection, Role};
pub use frame::{Frame, PROTOCOL_VERSION};
pub use permissions::Permissions;
pub use types::{ConnId, ConnState, Event};

/// How a hub's connections behave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncConfig {
    /// The largest frame sent or accepted, in bytes (at least [`frame::MIN_FRAME_LIMIT`]).
    pub frame_limit: usize,
    /// The most changes the log keeps for connections that have not pushed them.
    pub log_limit: usize,
    /// The most group-commit flushes in flight at once (at least 1). The default, 2, lets the
    /// next flush wait at storage while one commits; more cost the grid a flush per step for
    /// little gain (BENCHMARKS.md, sync).
    pub flushes: usize,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self { frame_limit: DEFAULT_FRAME_LIMIT, log_limit: 1 << 16, flushes: 2 }
    }
}

/// The connections of one grid, their change log and their group commits. See the
/// [module docs](self) for the driver's loop.
#[derive(Debug, Default)]
pub struct Hub {
    config: SyncConfig,
    log: ChangeLog,
    conns: Vec<Connection>,
    next_id: u32,
    /// The flushes in flight, oldest first, and what each acknowledges: (connection, frames
    /// received).
    flushing: VecDeque<(u64, Vec<(ConnId, u64)>)>,
    /// The loaded maps' ids, a buffer reused by every collection of changes.
    loaded: Vec<MapId>,
}

impl Hub {
    /// A hub with `config` (the frame limit raised to its minimum if below).
    pub fn new(mut config: SyncConfig) -> Self {
        config.frame_limit = config.frame_limit.max(MIN_FRAME_LIMIT);
        config.flushes = config.flushes.max(1);
        Self { config, ..Self::default() }
    }

    fn at(&self, id: ConnId) -> Option<usize> {
        self.conns.binary_search_by_key(&id, |c| c.id).ok()
    }

    fn add(&mut self, role: Role) -> ConnId {
        let id = ConnId(self.next_id);
        self.next_id += 1;
        self.conns.push(Connection::new(id, role, self.config.frame_limit, &self.log));
        id
    }

    /// Opens a connection that says hello (with `token`, for the accepting side's driver).
    pub fn connect(&mut self, grid: &mut Grid, token: Option<String>) -> ConnId {
        self.collect(grid, None);
        let id = self.add(Role::Connecting);
        if let Some(at) = self.at(id) {
            self.conns[at].hello(grid.node_id().as_str(), token);
        }
        id
    }

    /// Opens a connection that waits for a hello.
    pub fn incoming(&mut self, grid: &mut Grid) -> ConnId {
        self.collect(grid, None);
        self.add(Role::Accepting)
    }

    /// The connection `id`, to read its state.
    pub fn connection(&self, id: ConnId) -> Option<&Connection> {
        self.at(id).map(|at| &self.conns[at])
    }

    /// Where connection `id` is (`Closed` for an unknown one).
    pub fn state(&self, id: ConnId) -> ConnState {
        self.connection(id).map_or(ConnState::Closed, Connection::state)
    }

    /// Accepting side: takes the connection, letting its peer read and write what `permissions`
    /// say. A peer whose node id is this grid's, or another open connection's, is refused.
    pub fn accept(&mut self, grid: &mut Grid, id: ConnId, permissions: Permissions) {
        let Some(at) = self.at(id) else { return };
        let peer = self.conns[at].peer().map(String::from);
        let taken = peer.as_deref().is_some_and(|p| {
            p == grid.node_id().as_str()
                || self.conns.iter().any(|c| c.id != id && !c.is_closed() && c.is_open() && c.peer() == Some(p))
        });
        if taken {
            let reason = alloc::format!("node id {} is already connected", peer.unwrap_or_default());
            self.conns[at].refuse(frame::codes::REFUSED, &reason);
            return;
        }
        self.conns[at].accept(grid.node_id().as_str(), permissions);
    }

    /// Accepting side: refuses the connection with `reason` (an error frame, then closed).
    pub fn refuse(&mut self, id: ConnId, reason: &str) {
        self.refuse_with(id, frame::codes::REFUSED, reason);
    }

    /// Accepting side: refuses the connection with an error frame of `code` (e.g.
    /// `UNAUTHORIZED`, which `onegrid serve` sends for a token that does not hold, so the
    /// peer does not retry with it) and `reason`, then closes it.
    pub fn refuse_with(&mut self, id: ConnId, code: &str, reason: &str) {
        if let Some(at) = self.at(id) {
            self.conns[at].refuse(code, reason);
        }
    }

    /// The connections, in the order opened.
    pub fn ids(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.conns.iter().map(|c| c.id)
    }

    /// The transport of connection `id` is gone: it closes (its unacknowledged writes are re-sent
    /// by the next connection's catch-up). Forget it with [`Hub::remove`].
    pub fn close(&mut self, id: ConnId) {
        if let Some(at) = self.at(id) {
            self.conns[at].transport_closed();
        }
    }

    /// Forgets connection `id`.
    pub fn remove(&mut self, id: ConnId) {
        if let Some(at) = self.at(id) {
            self.conns.remove(at);
        }
    }

    /// Takes a frame from connection `id`'s transport at wall time `now`.
    pub fn handle_frame(&mut self, grid: &mut Grid, id: ConnId, now: u64, bytes: &[u8]) {
        self.collect(grid, None);
        let Some(at) = self.at(id) else { return };
        let mut ctx = Ctx { grid, log: &self.log, now };
        let changed = self.conns[at].handle_frame(&mut ctx, bytes);
        self.collect_after_frame(grid, changed, id, self.keeps_log());
        self.step(grid, now);
    }

    /// Collects what a frame from `from` changed: only its map when it names one (a frame changes
    /// no other map), so a server with thousands of maps does not walk them all per frame. `keep`
    /// from [`Hub::keeps_log`].
    fn collect_after_frame(&mut self, grid: &mut Grid, changed: Option<MapId>, from: ConnId, keep: bool) {
        match changed {
            Some(map) => self.collect_map(grid, map, Some(from), keep),
            None => self.collect(grid, Some(from)),
        }
    }

    /// Takes frames from many connections' transports at wall time `now`, in order, and then does
    /// once what [`Hub::handle_frame`] does after each frame (pushes, the group commit): one flush
    /// covers them all. For a driver that serves many connections and gathers what arrived while it
    /// was busy.
    pub fn handle_frames<'a>(
        &mut self,
        grid: &mut Grid,
        now: u64,
        frames: impl IntoIterator<Item = (ConnId, &'a [u8])>,
    ) {
        self.collect(grid, None);
        // Once for the batch, not per frame (it walks the connections): a connection that a frame
        // closes leaves a log entry or two kept until the step's trim.
        let keep = self.keeps_log();
        for (id, bytes) in frames {
            let Some(at) = self.at(id) else { continue };
            let mut ctx = Ctx { grid, log: &self.log, now };
            let changed = self.conns[at].handle_frame(&mut ctx, bytes);
            self.collect_after_frame(grid, changed, id, keep);
        }
        self.step(grid, now);
    }

    /// Does what every call does after its own work (local changes picked up, frames that waited
    /// for a map load applied, pushes, the group commit): for a driver to call after handing in
    /// storage events (the next flush is issued at once) and before [`Hub::drain_transmit`].
    pub fn tick(&mut self, grid: &mut Grid, now: u64) {
        self.collect(grid, None);
        self.step(grid, now);
    }

    /// Moves connection `id`'s frames to send into `out`, up to about `max_bytes` (always one
    /// frame if any waits), without the step [`Hub::poll_transmit`] takes before each frame: a
    /// driver serving many connections calls [`Hub::tick`] once and then drains each. True when
    /// frames are left.
    pub fn drain_transmit(&mut self, id: ConnId, max_bytes: usize, out: &mut Vec<Vec<u8>>) -> bool {
        let Some(at) = self.at(id) else { return false };
        let conn = &mut self.conns[at];
        let mut bytes = 0;
        let mut more = false;
        while let Some(frame) = conn.next_transmit() {
            bytes += frame.len();
            out.push(frame);
            if bytes >= max_bytes {
                more = conn.has_transmit();
                break;
            }
        }
        conn.update_state(&self.log);
        more
    }

    /// True when connection `id` has a frame to send.
    pub fn has_transmit(&self, id: ConnId) -> bool {
        self.connection(id).is_some_and(Connection::has_transmit)
    }

    /// The next frame to send on connection `id`.
    pub fn poll_transmit(&mut self, grid: &mut Grid, id: ConnId, now: u64) -> Option<Vec<u8>> {
        self.collect(grid, None);
        self.step(grid, now);
        let at = self.at(id)?;
        let frame = self.conns[at].next_transmit();
        self.conns[at].update_state(&self.log);
        frame
    }

    /// The next event of connection `id`.
    pub fn poll_event(&mut self, id: ConnId) -> Option<Event> {
        let at = self.at(id)?;
        self.conns[at].update_state(&self.log);
        self.conns[at].events.pop_front()
    }

    /// Takes the grid's storage events that acknowledgements wait for (`Flushed`, `FlushFailed`);
    /// others are ignored.
    pub fn handle_storage_event(&mut self, event: &StorageEvent) {
        match event {
            StorageEvent::Flushed { flush_id } => {
                for (id, upto) in self.take_flush(*flush_id) {
                    if let Some(at) = self.at(id) {
                        let conn = &mut self.conns[at];
                        conn.durable = conn.durable.max(upto);
                    }
                }
            }
            StorageEvent::FlushFailed { flush_id, .. } => {
                // What it covered waits for the next flush (the later ones in flight fail too).
                for (id, _) in self.take_flush(*flush_id) {
                    if let Some(at) = self.at(id) {
                        let conn = &mut self.conns[at];
                        conn.flushed = conn.durable;
                    }
                }
            }
            _ => {}
        }
    }

    /// What the flush `flush_id` of this hub covered, taken off the list (nothing for another's).
    fn take_flush(&mut self, flush_id: u64) -> Vec<(ConnId, u64)> {
        match self.flushing.iter().position(|(f, _)| *f == flush_id) {
            Some(at) => self.flushing.remove(at).map(|(_, covered)| covered).unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// A position in the change log: every local write made so far is at or before it.
    pub fn marker(&mut self, grid: &mut Grid) -> u64 {
        self.collect(grid, None);
        self.log.end()
    }

    /// True when connection `id`'s peer has acknowledged every local write up to `marker`.
    pub fn is_acked(&self, id: ConnId, marker: u64) -> bool {
        self.connection(id).is_some_and(|c| c.covered_pos() >= marker)
    }

    /// Local writes connection `id`'s peer has not acknowledged yet.
    pub fn pending_writes(&self, id: ConnId) -> u64 {
        let covered = self.connection(id).map_or(0, Connection::covered_locals);
        self.log.locals() - covered.min(self.log.locals())
    }

    /// Changes the log keeps now (memory: each is a key or a tag).
    pub fn log_len(&self) -> usize {
        self.log.len()
    }

    /// Moves the maps' changes into the log (`from`: the connection whose frame made them), and
    /// turns the feed on for maps that have finished loading.
    fn collect(&mut self, grid: &mut Grid, from: Option<ConnId>) {
        let keep = self.keeps_log();
        // Into a buffer kept between calls.
        let mut ids = core::mem::take(&mut self.loaded);
        ids.clear();
        ids.extend(grid.storage().loaded_ids());
        for &id in &ids {
            self.collect_map(grid, id, from, keep);
        }
        self.loaded = ids;
    }

    /// Whether the log keeps what is pushed to it: only while a connection is open.
    fn keeps_log(&self) -> bool {
        self.conns.iter().any(|c| !c.is_closed())
    }

    /// [`Hub::collect`] for one map, `keep` from [`Hub::keeps_log`].
    fn collect_map(&mut self, grid: &mut Grid, id: MapId, from: Option<ConnId>, keep: bool) {
        if !grid.storage().is_loaded(id) {
            return;
        }
        let Some(map) = grid.storage_mut().events_of(id) else { return };
        let feed = match map {
            AnyMap::Lww(m) => m.feed_mut(),
            AnyMap::Or(m) => m.feed_mut(),
        };
        if !feed.is_enabled() {
            feed.set_enabled(true);
            // What it holds is caught up by Merkle; the mark stands for its local records.
            let me = grid.node_id().clone();
            let locals = grid.map_at(id).map_or(0, |m| local_records(m, &me));
            self.log.push(Entry { map: id, item: FeedItem::Loaded, source: Source::Other }, locals, keep);
            return;
        }
        for (item, origin) in feed.drain() {
            let source = match (origin, from) {
                (Origin::Local, _) => Source::Local,
                (Origin::Remote, Some(conn)) => Source::Conn(conn),
                (Origin::Remote, None) => Source::Other,
            };
            let locals = u64::from(source == Source::Local);
            self.log.push(Entry { map: id, item, source }, locals, keep);
        }
    }

    /// What every call does after its own work: newly loaded maps, frames that waited for a load,
    /// pushes, the group commit, acknowledgements without storage, the log's trim.
    fn step(&mut self, grid: &mut Grid, now: u64) {
        for at in 0..self.conns.len() {
            if self.conns[at].waits() {
                let id = self.conns[at].id;
                let mut ctx = Ctx { grid, log: &self.log, now };
                self.conns[at].retry_inbox(&mut ctx);
                self.collect(grid, Some(id));
            }
        }
        for at in 0..self.conns.len() {
            let mut ctx = Ctx { grid, log: &self.log, now };
            self.conns[at].push(&mut ctx);
        }
        if grid.storage().is_persistent() {
            self.commit(grid);
        } else {
            for conn in &mut self.conns {
                conn.durable = conn.received;
            }
        }
        let pushed = self.conns.iter().filter(|c| !c.is_closed()).map(|c| c.cursor_pos()).min();
        self.log.trim(pushed.unwrap_or(u64::MAX), self.config.log_limit);
    }

    /// Issues one flush for every frame applied since the last, unless [`SyncConfig::flushes`]
    /// are in flight.
    fn commit(&mut self, grid: &mut Grid) {
        if self.flushing.len() >= self.config.flushes {
            return;
        }
        let mut covered = Vec::new();
        for conn in &mut self.conns {
            if conn.received > conn.flushed.max(conn.durable) {
                conn.flushed = conn.received;
                covered.push((conn.id, conn.received));
            }
        }
        if covered.is_empty() {
            return;
        }
        let flush_id = grid.storage_mut().flush();
        self.flushing.push_back((flush_id, covered));
    }
}

/// How many records of `map` this node wrote (what a map's `Loaded` mark stands for).
fn local_records(map: &AnyMap, me: &NodeId) -> u64 {
    let count = match map {
        AnyMap::Lww(m) => m.record_refs().iter().filter(|r| r.node_id == me).count(),
        AnyMap::Or(m) => {
            m.records().iter().flat_map(|(_, rs)| rs.iter()).filter(|r| r.timestamp.node_id == *me).count()
        }
    };
    count as u64
}
