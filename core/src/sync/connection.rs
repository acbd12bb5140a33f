//! [`Connection`]: the state machine of one connection to a peer grid, in the shape of
//! quinn-proto's: frames come in ([`Connection::handle_frame`]), frames to send and events go out
//! (polled through the [`Hub`](crate::sync::Hub), which owns the connections of a grid and does
//! what they share: the change log, group commits).
//!
//! Life: the connecting side sends `Hello` and waits for `Welcome`; the accepting side hands the
//! hello out as [`Event::Hello`] and its driver accepts (with [`Permissions`]) or refuses. Nothing
//! a peer sends before that is applied: any other frame closes the connection. Then both sides
//! push their changes and catch up by Merkle (see `catchup.rs`): the connecting side opens the
//! catch-ups of its maps, then sends `RootsEnd`, and the accepting side opens those of its other
//! maps. A map that loads later is caught up when it has loaded.
//!
//! Frames about a map that is still loading wait, with every frame after them (the order is the
//! protocol's), until it has loaded: a root is never taken from a half-loaded map, and records
//! are never merged into an early map (the storage manager would re-stamp a peer's copy of this
//! node's own records as early writes).

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::codec::snapshot::{
    Snapshot, decode_lww_snapshot_raw, decode_or_snapshot, encode_or_part_into, snapshot_kind,
};
use crate::error::{Error, Quoted, excerpt};
use crate::grid::Grid;
use crate::hlc::Timestamp;
use crate::map_common::MapKind;
use crate::storage::maps::{AnyMap, MapId};
use crate::sync::catchup::{CatchUp, Flow, PeerRoot};
use crate::sync::frame::{Frame, Node, PROTOCOL_VERSION, codes, describe, version_reason};
use crate::sync::log::ChangeLog;
use crate::sync::permissions::Permissions;
use crate::sync::types::{ConnId, ConnState, Event};

mod push;

/// Which side of the handshake this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Sends `Hello`.
    Connecting,
    /// Receives `Hello`; its driver accepts or refuses.
    Accepting,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    AwaitHello,
    /// The accepting side's driver has the hello and has not decided.
    Deciding,
    AwaitWelcome,
    Open,
    Closed,
}

/// How far the pushes and catch-ups have delivered this side's changes: a log position and the
/// local writes counted up to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Cover {
    pos: u64,
    locals: u64,
}

/// What one call needs besides the connection: the grid, the log, the wall clock.
pub(crate) struct Ctx<'a> {
    pub(crate) grid: &'a mut Grid,
    pub(crate) log: &'a ChangeLog,
    pub(crate) now: u64,
}

/// Why a connection closes: the error frame's code and message.
struct Fail(&'static str, String);

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        let code = match e {
            Error::ClockDrift(_) => codes::CLOCK_DRIFT,
            Error::Decode { .. } | Error::MalformedOrRecord { .. } => codes::MALFORMED,
            Error::Storage { .. } | Error::CorruptStoredValue { .. } | Error::LoadKindMismatch { .. } => codes::STORAGE,
            _ => codes::REFUSED_RECORD,
        };
        Fail(code, e.to_string())
    }
}

/// One connection to a peer grid. See the [module docs](self).
#[derive(Debug)]
pub struct Connection {
    pub(crate) id: ConnId,
    role: Role,
    phase: Phase,
    frame_limit: usize,
    peer: Option<String>,
    token: Option<String>,
    /// What this side lets the peer read and write.
    perms: Permissions,
    /// What the peer lets this side read and write (from `Welcome`).
    granted: Permissions,
    pub(crate) out: VecDeque<Vec<u8>>,
    pub(crate) events: VecDeque<Event>,
    /// Sequenced frames sent, and those not yet acknowledged with the cover at their sending.
    sent: u64,
    unacked: VecDeque<(u64, Cover)>,
    acked_cover: Cover,
    /// The log position the last `Acked` event reported.
    reported: u64,
    /// Sequenced frames received and applied; of those, durable; of those, acknowledged.
    pub(crate) received: u64,
    pub(crate) durable: u64,
    /// Received frames a flush in flight (or done) covers.
    pub(crate) flushed: u64,
    ack_sent: u64,
    /// Frames taken from `out` so far.
    popped: u64,
    /// Received frames that queued frames of their own (answers): (sequence, the count of
    /// frames `popped` must reach before the answers have gone). An acknowledgement never
    /// overtakes them, so when the peer sees a frame acknowledged it has seen what it caused (a
    /// connecting side that sees its `RootsEnd` acknowledged has seen the accepting side's roots).
    answered: VecDeque<(u64, u64)>,
    /// The log position pushed up to, and the local writes counted there.
    pub(crate) cursor: Cover,
    /// While a catch-up that delivers older changes runs, what is covered stays below this.
    floor: Option<Cover>,
    catchups: Vec<CatchUp>,
    /// The initial exchange is over (`RootsEnd` sent, or received and answered).
    initial_done: bool,
    /// Maps the peer opened before its `RootsEnd` (accepting side).
    peer_opened: Vec<Box<str>>,
    /// Frames waiting for a map to load, in order.
    inbox: VecDeque<Frame>,
    mismatched: Vec<Box<str>>,
    /// [`Connection::sends`] remembered per map id (see [`SendsByMap`]).
    sends_by_map: SendsByMap,
    synced: bool,
}

/// Whether a map's changes go to the peer, by map id: 0 not asked yet, 1 no, 2 yes. A push asks
/// for every run of the log and every connection, so on a server with hundreds of connections
/// each limited to its own maps, matching names against permission patterns was a tenth of the
/// grid thread. Ids are never reused within a grid; the answers are forgotten whenever the
/// permissions or the mismatched maps change. Ids from [`SendsByMap::MAX_IDS`] on are not
/// remembered, so an idle connection never holds more than that many bytes.
#[derive(Debug, Default)]
struct SendsByMap(Vec<u8>);

impl SendsByMap {
    const MAX_IDS: usize = 4096;

    fn get(&self, id: MapId) -> Option<bool> {
        match self.0.get(id.0 as usize) {
            Some(1) => Some(false),
            Some(2) => Some(true),
            _ => None,
        }
    }

    fn set(&mut self, id: MapId, sends: bool) {
        let at = id.0 as usize;
        if at < Self::MAX_IDS {
            if self.0.len() <= at {
                self.0.resize(at + 1, 0);
            }
            self.0[at] = 1 + u8::from(sends);
        }
    }

    fn forget(&mut self) {
        self.0 = Vec::new();
    }
}

impl Connection {
    pub(crate) fn new(id: ConnId, role: Role, frame_limit: usize, log: &ChangeLog) -> Self {
        let cursor = Cover { pos: log.end(), locals: log.locals() };
        Self {
            id,
            role,
            phase: if role == Role::Connecting { Phase::AwaitWelcome } else { Phase::AwaitHello },
            frame_limit,
            peer: None,
            token: None,
            perms: Permissions::all(),
            granted: Permissions::all(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            sent: 0,
            unacked: VecDeque::new(),
            acked_cover: Cover::default(),
            reported: 0,
            received: 0,
            durable: 0,
            flushed: 0,
            ack_sent: 0,
            popped: 0,
            answered: VecDeque::new(),
            cursor,
            // Nothing this side wrote before is delivered until the first catch-up is over.
            floor: Some(Cover::default()),
            catchups: Vec::new(),
            initial_done: false,
            peer_opened: Vec::new(),
            inbox: VecDeque::new(),
            mismatched: Vec::new(),
            sends_by_map: SendsByMap::default(),
            synced: false,
        }
    }

    /// The peer's node id, once it has said it.
    pub fn peer(&self) -> Option<&str> {
        self.peer.as_deref()
    }

    /// Which side of the handshake this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Where the connection is.
    pub fn state(&self) -> ConnState {
        match self.phase {
            Phase::AwaitHello | Phase::Deciding | Phase::AwaitWelcome => ConnState::Connecting,
            Phase::Closed => ConnState::Closed,
            Phase::Open if self.synced => ConnState::Synced,
            Phase::Open => ConnState::Syncing,
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// What the pushes and finished catch-ups have delivered and had acknowledged.
    pub(crate) fn covered(&self) -> Cover {
        if self.unacked.is_empty() { self.acked_cover.max(self.current_cover()) } else { self.acked_cover }
    }

    pub(crate) fn cursor_pos(&self) -> u64 {
        self.cursor.pos
    }

    pub(crate) fn covered_pos(&self) -> u64 {
        self.covered().pos
    }

    pub(crate) fn covered_locals(&self) -> u64 {
        self.covered().locals
    }

    fn current_cover(&self) -> Cover {
        match self.floor {
            Some(floor) => floor.min(self.cursor),
            None => self.cursor,
        }
    }

    fn flow(&self, map: &str) -> Flow {
        Flow {
            send: self.perms.may_read(map) && self.granted.may_write(map),
            receive: self.perms.may_write(map) && self.granted.may_read(map),
        }
    }

    fn shared(&self, map: &str) -> bool {
        let flow = self.flow(map);
        (flow.send || flow.receive) && !self.mismatched.iter().any(|m| **m == *map)
    }

    /// Whether changes of `map` go to the peer: shared, and this way.
    fn sends(&self, map: &str) -> bool {
        self.flow(map).send && !self.mismatched.iter().any(|m| **m == *map)
    }

    /// [`Connection::sends`] for the map with id `id`, remembered.
    fn sends_id(&mut self, grid: &Grid, id: MapId) -> bool {
        if let Some(sends) = self.sends_by_map.get(id) {
            return sends;
        }
        let Some(name) = grid.storage().name_of(id) else { return false };
        let sends = self.sends(name);
        self.sends_by_map.set(id, sends);
        sends
    }

    /// Payload bytes a frame about `map` may carry.
    fn budget(&self, map: &str) -> usize {
        self.frame_limit.saturating_sub(map.len() + 64) * 3 / 4
    }

    // ---- sending --------------------------------------------------------------------------------

    fn send(&mut self, frame: Frame) {
        let bytes = frame.encode();
        if bytes.len() > self.frame_limit {
            // Only a single record larger than the limit can make one; it cannot travel.
            let map = frame.map().map(String::from).unwrap_or_default();
            self.events.push_back(Event::Oversized { map, bytes: bytes.len() });
            return;
        }
        if frame.is_sequenced() {
            self.sent += 1;
            self.unacked.push_back((self.sent, self.current_cover()));
        }
        self.out.push_back(bytes);
    }

    fn fail(&mut self, fail: Fail) {
        if self.phase == Phase::Closed {
            return;
        }
        let Fail(code, message) = fail;
        self.out.push_back(Frame::Error { code: String::from(code), message: message.clone() }.encode());
        self.close(String::from(code), message, false);
    }

    fn close(&mut self, code: String, message: String, by_peer: bool) {
        self.phase = Phase::Closed;
        self.inbox.clear();
        self.catchups.clear();
        self.events.push_back(Event::Closed { code, message, by_peer });
    }

    /// The transport is gone.
    pub(crate) fn transport_closed(&mut self) {
        if self.phase != Phase::Closed {
            self.close(String::from("CLOSED"), String::from("the transport closed"), false);
        }
    }

    /// True when a frame waits to be sent.
    pub(crate) fn has_transmit(&self) -> bool {
        !self.out.is_empty() || self.ack_due() > self.ack_sent
    }

    /// What may be acknowledged now: the durable frames, but none whose answers are still queued.
    fn ack_due(&self) -> u64 {
        if self.phase != Phase::Open {
            return self.ack_sent;
        }
        match self.answered.iter().find(|(_, mark)| *mark > self.popped) {
            Some(&(seq, _)) => self.durable.min(seq - 1),
            None => self.durable,
        }
    }

    /// Notes that the frame just received (the `received`th) queued answers.
    fn note_answers(&mut self, queued_before: usize) {
        if self.out.len() > queued_before {
            self.answered.push_back((self.received, self.popped + self.out.len() as u64));
        }
    }

    /// The next frame to send: an acknowledgement first (unless frames it covers queued answers
    /// not sent yet), then the frames in order.
    pub(crate) fn next_transmit(&mut self) -> Option<Vec<u8>> {
        let due = self.ack_due();
        if due > self.ack_sent {
            self.ack_sent = due;
            while self.answered.front().is_some_and(|(seq, _)| *seq <= due) {
                self.answered.pop_front();
            }
            return Some(Frame::Ack { upto: due }.encode());
        }
        let frame = self.out.pop_front();
        self.popped += u64::from(frame.is_some());
        frame
    }

    // ---- the handshake --------------------------------------------------------------------------

    pub(crate) fn hello(&mut self, node_id: &str, token: Option<String>) {
        self.out.push_back(Frame::Hello { version: PROTOCOL_VERSION, node_id: String::from(node_id), token }.encode());
    }

    /// The accepting side's driver accepts: the peer gets `Welcome` with what it may do.
    pub(crate) fn accept(&mut self, node_id: &str, perms: Permissions) {
        if self.phase != Phase::Deciding {
            return;
        }
        self.out.push_back(
            Frame::Welcome { node_id: String::from(node_id), read: perms.read.clone(), write: perms.write.clone() }
                .encode(),
        );
        self.perms = perms;
        self.sends_by_map.forget();
        self.token = None;
        self.phase = Phase::Open;
        self.events.push_back(Event::Connected { node_id: self.peer.clone().unwrap_or_default() });
    }

    /// Refuses the peer with an error frame of `code` (see [`codes`]) and closes.
    pub(crate) fn refuse(&mut self, code: &str, reason: &str) {
        if matches!(self.phase, Phase::Deciding | Phase::AwaitHello) {
            self.out.push_back(Frame::Error { code: String::from(code), message: String::from(reason) }.encode());
            self.close(String::from(code), String::from(reason), false);
        }
    }

    // ---- receiving ------------------------------------------------------------------------------

    /// Takes a frame from the peer. Answers the one map it may have changed: a frame that names a
    /// map changes no other (`None` when it names none, or a map this grid had no id for yet).
    pub(crate) fn handle_frame(&mut self, ctx: &mut Ctx<'_>, bytes: &[u8]) -> Option<MapId> {
        if self.phase == Phase::Closed {
            return None;
        }
        let frame = match Frame::decode(bytes, self.frame_limit) {
            Ok(frame) => frame,
            Err(e) => {
                let code = if bytes.first().is_some_and(|&v| v != PROTOCOL_VERSION) && bytes.len() <= self.frame_limit {
                    codes::VERSION
                } else {
                    codes::MALFORMED
                };
                let message = match code {
                    codes::VERSION => version_reason(bytes[0]),
                    _ => e.to_string(),
                };
                self.fail(Fail(code, message));
                return None;
            }
        };
        let map = frame.map().and_then(|name| ctx.grid.storage().id_of(name));
        if let Err(fail) = self.receive(ctx, frame) {
            self.fail(fail);
        }
        map
    }

    fn receive(&mut self, ctx: &mut Ctx<'_>, frame: Frame) -> Result<(), Fail> {
        if let Frame::Error { code, message } = frame {
            self.close(code, message, true);
            return Ok(());
        }
        match (self.phase, frame) {
            (Phase::AwaitHello, Frame::Hello { version, node_id, token }) => {
                if version != PROTOCOL_VERSION {
                    return Err(Fail(codes::VERSION, version_reason(version)));
                }
                self.phase = Phase::Deciding;
                self.events.push_back(Event::Hello { node_id: node_id.clone(), token: token.clone() });
                self.peer = Some(node_id);
                self.token = token;
                Ok(())
            }
            (Phase::AwaitWelcome, Frame::Welcome { node_id, read, write }) => {
                self.peer = Some(node_id.clone());
                self.granted = Permissions::new(read, write);
                self.sends_by_map.forget();
                self.phase = Phase::Open;
                self.events.push_back(Event::Connected { node_id });
                for name in loaded_maps(ctx.grid) {
                    self.open_catchup(ctx.grid, &name);
                }
                self.send(Frame::RootsEnd);
                self.initial_done = true;
                Ok(())
            }
            (Phase::Open, Frame::Ack { upto }) => self.on_ack(upto),
            (Phase::Open, frame) if frame.is_sequenced() => {
                let queued = self.out.len();
                if self.inbox.is_empty() && self.apply(ctx, &frame)? {
                    self.received += 1;
                    self.note_answers(queued);
                } else {
                    self.inbox.push_back(frame);
                }
                Ok(())
            }
            (Phase::Deciding, frame) => Err(Fail(
                codes::MALFORMED,
                alloc::format!("{} arrived before the connection was accepted", describe(&frame)),
            )),
            (_, frame) => Err(Fail(codes::MALFORMED, alloc::format!("{} was not expected here", describe(&frame)))),
        }
    }

    fn on_ack(&mut self, upto: u64) -> Result<(), Fail> {
        if upto > self.sent {
            return Err(Fail(
                codes::MALFORMED,
                alloc::format!("an Ack of {upto} frames, but only {} were sent", self.sent),
            ));
        }
        while let Some(&(seq, cover)) = self.unacked.front().filter(|(seq, _)| *seq <= upto) {
            let _ = seq;
            self.acked_cover = self.acked_cover.max(cover);
            self.unacked.pop_front();
        }
        self.report_acked();
        Ok(())
    }

    /// Reports what is covered when it has moved on: after an `Ack`, and when a catch-up that
    /// held it back is over (so every change of [`Hub::is_acked`](crate::sync::Hub::is_acked) has
    /// its event).
    fn report_acked(&mut self) {
        let pos = self.covered().pos;
        if pos > self.reported {
            self.reported = pos;
            self.events.push_back(Event::Acked { marker: pos });
        }
    }

    /// Applies frames that waited for a map load, now that it may have finished.
    pub(crate) fn retry_inbox(&mut self, ctx: &mut Ctx<'_>) {
        while let Some(frame) = self.inbox.pop_front() {
            let queued = self.out.len();
            match self.apply(ctx, &frame) {
                Ok(true) => {
                    self.received += 1;
                    self.note_answers(queued);
                }
                Ok(false) => {
                    self.inbox.push_front(frame);
                    return;
                }
                Err(fail) => return self.fail(fail),
            }
        }
    }

    pub(crate) fn waits(&self) -> bool {
        !self.inbox.is_empty()
    }

    /// Makes sure `map` is loaded: `Ok(false)` while it loads (touching it first if needed).
    fn ready(ctx: &mut Ctx<'_>, map: &str, hint: Option<MapKind>) -> Result<bool, Fail> {
        let storage = ctx.grid.storage();
        if storage.is_map_loaded(map) {
            return Ok(true);
        }
        if storage.is_map_loading(map) {
            return Ok(false);
        }
        if let Some(error) = storage.load_error(map) {
            return Err(Fail(codes::STORAGE, error.to_string()));
        }
        ctx.grid.storage_mut().get_map(map, hint, ctx.now)?;
        Ok(ctx.grid.storage().is_map_loaded(map))
    }

    fn find(&mut self, map: &str, mine: bool) -> Option<usize> {
        self.catchups.iter().position(|c| *c.map == *map && c.mine == mine)
    }

    /// Applies one sequenced frame; `Ok(false)` when it must wait for its map to load.
    fn apply(&mut self, ctx: &mut Ctx<'_>, frame: &Frame) -> Result<bool, Fail> {
        match frame {
            Frame::RootsEnd if self.role == Role::Accepting && !self.initial_done => {
                let opened = core::mem::take(&mut self.peer_opened);
                for name in loaded_maps(ctx.grid) {
                    if !opened.iter().any(|o| **o == *name) {
                        self.open_catchup(ctx.grid, &name);
                    }
                }
                self.initial_done = true;
            }
            Frame::RootsEnd => return Err(Fail(codes::MALFORMED, String::from("RootsEnd was not expected here"))),
            Frame::Writes { map, payload } => {
                self.check_write(map, payload)?;
                if self.mismatched.iter().any(|m| **m == **map) {
                    return Ok(true);
                }
                if !Self::ready(ctx, map, snapshot_kind(payload))? {
                    return Ok(false);
                }
                self.merge(ctx, map, payload, None)?;
            }
            Frame::Root { map, kind, hash, count, tombstones } => {
                if !self.initial_done && self.role == Role::Accepting {
                    self.peer_opened.push(Box::from(&**map));
                }
                let root = PeerRoot { kind: *kind, hash: *hash, count: *count, tombstones: *tombstones };
                if !self.shared(map) {
                    self.send(Frame::Turn { map: map.clone(), mine: false, done: true });
                    return Ok(true);
                }
                if !Self::ready(ctx, map, Some(*kind))? {
                    return Ok(false);
                }
                let at = match self.find(map, false) {
                    Some(at) => at,
                    None => {
                        self.catchups.push(CatchUp::new(map, false));
                        self.catchups.len() - 1
                    }
                };
                self.catchups[at].on_root(root);
                self.respond(ctx, at);
            }
            Frame::Children { map, mine, nodes } => {
                if let Some(at) = self.find(map, !mine) {
                    self.catchups[at].on_children(nodes.clone());
                }
            }
            Frame::Pull { map, mine, nodes } => {
                if let Some(at) = self.find(map, !mine) {
                    self.catchups[at].on_pull(nodes.clone());
                }
            }
            Frame::Records { map, mine, ask, ask_tombstones, payload } => {
                self.check_write(map, payload)?;
                let Some(at) = self.find(map, !mine) else { return Ok(true) };
                if !Self::ready(ctx, map, snapshot_kind(payload))? {
                    return Ok(false);
                }
                let question = (!ask.is_empty() || *ask_tombstones).then(|| (at, ask.clone(), *ask_tombstones));
                self.merge(ctx, map, payload, question)?;
            }
            Frame::Turn { map, mine, done } => {
                let Some(at) = self.find(map, !mine) else { return Ok(true) };
                if *done {
                    self.finish(ctx.grid, at);
                } else {
                    if !Self::ready(ctx, map, None)? {
                        return Ok(false);
                    }
                    self.respond(ctx, at);
                }
            }
            Frame::Mismatch { map, kind } => {
                let local = ctx.grid.map(map).map_or(*kind, AnyMap::kind);
                self.mismatch(map, local, *kind);
            }
            _ => {}
        }
        Ok(true)
    }

    /// Records from the peer for a map it may not write are refused whole (SPEC section 8). An
    /// empty payload writes nothing (a question asking for tombstones).
    fn check_write(&self, map: &str, payload: &[u8]) -> Result<(), Fail> {
        let empty = matches!(payload, [_, _, 0, 0, 0]);
        if self.flow(map).receive || empty {
            return Ok(());
        }
        Err(Fail(codes::FORBIDDEN, alloc::format!("map {}: this connection may not write it", Quoted(&excerpt(map)))))
    }

    fn mismatch(&mut self, map: &str, local: MapKind, remote: MapKind) {
        if self.mismatched.iter().any(|m| **m == *map) {
            return;
        }
        self.mismatched.push(Box::from(map));
        self.sends_by_map.forget();
        self.catchups.retain(|c| *c.map != *map);
        self.events.push_back(Event::KindMismatch { map: String::from(map), local, remote });
    }

    /// Merges a snapshot fragment from the peer (all or nothing; strict drift refuses it whole).
    /// `question`: the catch-up whose question it is, to remember what the peer holds.
    fn merge(
        &mut self,
        ctx: &mut Ctx<'_>,
        map: &str,
        payload: &[u8],
        question: Option<(usize, Vec<Node>, bool)>,
    ) -> Result<(), Fail> {
        let local = ctx.grid.map(map).map(AnyMap::kind);
        let now = ctx.now;
        let lww = decode_lww_snapshot_raw(payload)?;
        let kind = if lww.is_some() { MapKind::Lww } else { MapKind::Or };
        if let Some(local) = local.filter(|&l| l != kind) {
            self.send(Frame::Mismatch { map: String::from(map), kind: local });
            self.mismatch(map, local, kind);
            return Ok(());
        }
        let drifts = match lww {
            Some(snapshot) => {
                if let Some((at, ask, _)) = question {
                    let records = snapshot.records().iter().map(|r| (snapshot.key(r), r.timestamp.clone()));
                    self.catchups[at].on_asked_lww(ask, records);
                }
                let (m, clock) = ctx.grid.lww(map, now)?;
                m.merge_all_raw(clock, now, snapshot)?.1
            }
            None => {
                let Snapshot::Or { keys, tombstones } = decode_or_snapshot(payload)? else { return Ok(()) };
                let (m, clock) = ctx.grid.or(map, now)?;
                // Records this side has removed: the peer learns the tombstones back.
                let mut echo: Vec<String> = keys
                    .iter()
                    .flat_map(|(_, rs)| rs.iter())
                    .filter(|r| m.is_tombstoned(&r.timestamp))
                    .map(|r| r.timestamp.to_text())
                    .collect();
                if let Some((at, ask, ask_tombstones)) = question {
                    let tags: Vec<Timestamp> =
                        keys.iter().flat_map(|(_, rs)| rs.iter().map(|r| r.timestamp.clone())).collect();
                    self.catchups[at].on_asked_or(ask, tags, ask_tombstones.then(|| tombstones.clone()));
                }
                let merged = m.merge_all(clock, now, keys, &tombstones)?;
                if !echo.is_empty() && self.flow(map).send {
                    crate::sort::strs(&mut echo);
                    echo.dedup();
                    let mut payload = Vec::new();
                    encode_or_part_into(&[], &echo, &mut payload);
                    self.send(Frame::Writes { map: String::from(map), payload });
                }
                merged.drifts
            }
        };
        self.events.extend(drifts.into_iter().map(Event::Drift));
        Ok(())
    }

    // ---- catch-up -------------------------------------------------------------------------------

    /// Opens a catch-up of a loaded, shared map (or asks the running one to run again). Only for
    /// a map this side may send: the peer opens those it may send, so each map both have is
    /// caught up, and a map the peer may not read is never named to it (its root, its count).
    pub(crate) fn open_catchup(&mut self, grid: &Grid, name: &str) {
        if self.phase != Phase::Open || !self.sends(name) {
            return;
        }
        if let Some(at) = self.find(name, true) {
            self.catchups[at].again = true;
            return;
        }
        let Some(map) = grid.map(name) else { return };
        let frame = CatchUp::open(name, map);
        self.catchups.push(CatchUp::new(name, true));
        self.send(frame);
    }

    fn respond(&mut self, ctx: &mut Ctx<'_>, at: usize) {
        let name = self.catchups[at].map.clone();
        let (flow, budget) = (self.flow(&name), self.budget(&name));
        let Some(map) = ctx.grid.map(&name) else { return };
        let (frames, done) = self.catchups[at].respond(map, flow, budget);
        for frame in frames {
            if let Frame::Mismatch { kind, .. } = &frame {
                let remote = if *kind == MapKind::Lww { MapKind::Or } else { MapKind::Lww };
                let kind = *kind;
                self.send(frame);
                self.mismatch(&name, kind, remote);
                return;
            }
            self.send(frame);
        }
        if done {
            self.finish(ctx.grid, at);
        }
    }

    fn finish(&mut self, grid: &Grid, at: usize) {
        let catchup = self.catchups.swap_remove(at);
        if catchup.again && catchup.mine {
            self.open_catchup(grid, &catchup.map);
        }
    }
}

/// The names of the grid's loaded maps.
fn loaded_maps(grid: &Grid) -> Vec<String> {
    let storage = grid.storage();
    storage.map_names().into_iter().filter(|n| storage.is_map_loaded(n)).map(String::from).collect()
}
