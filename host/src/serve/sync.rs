//! Sync at `/sync`: WebSocket connections to the server's grid (SPEC section 8), one binary
//! message per frame.
//!
//! ## Threads and queues
//! - **Each WebSocket** has two tasks on the async runtime. Its reader hands every binary message
//!   to the grid's thread as a frame (holding credit of [`INBOUND_CREDIT`] bytes, so a client that
//!   sends faster than the grid applies waits instead of filling memory); its writer sends what the
//!   grid's thread queued for it (an unbounded tokio channel whose queued bytes are counted), pings
//!   the client, and closes.
//! - **The grid's thread** ([`Engine`]) owns the module instance, the grid and its hub. It takes
//!   messages in rounds: it waits for one, then drains every message queued behind it, hands all the
//!   frames among them to the hub at once (`SyncFrames`), runs storage once (a flush for every
//!   frame of every connection since the last: group commit, with the hub's `SyncConfig::flushes`
//!   in flight), then polls every connection with work (`SyncPoll`)
//!   and queues each one's frames to its writer. Acknowledgements come out of that poll only after
//!   the flush holding the writes succeeded: the module hands the flush events to the hub itself.
//!
//! ## Rules
//! - The handshake: a client's `Hello` comes out of the poll as an event; with a JWT secret its
//!   token must hold ([`auth::verify`]), and its `read` / `write` claims become the connection's
//!   permissions; a token that does not is refused with `UNAUTHORIZED`. Without a secret everyone
//!   may read and write everything (the server then listens on loopback only). The hub refuses a
//!   second connection of a node id that is connected. A client that has not said hello within
//!   [`SyncSettings::hello_timeout`] is refused; one whose token expires is closed.
//! - Bounds: a message over twice the frame limit is cut by the WebSocket layer, one over the
//!   limit gets the hub's error frame; a client whose unsent frames pass
//!   [`SyncSettings::send_queue_limit`] bytes (it does not read) is closed, as is one that sends
//!   nothing, not even a pong, for [`SyncSettings::idle_timeout`]. Each is logged; the others go on.
//! - A lost module instance (a trap) loses the hub: every connection is closed, and clients
//!   connect again and re-send what was not acknowledged.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt as _, StreamExt as _};
use onegrid_core::sync::frame::{DEFAULT_FRAME_LIMIT, codes};
use onegrid_core::sync::{ConnState, Frame};
use onegrid_core::{Command, InFrame, Reply, SyncEvent, SyncOutput, WireEvent};
use tokio::sync::{Semaphore, mpsc as tokio_mpsc, watch};

use crate::persistent::{GridError, PersistentGrid, system_clock};
use crate::serve::auth::{self, AuthError};
use crate::serve::grid::{GridHandle, Msg, Stats};
use crate::serve::log;

/// The error frame's code for a hello whose token does not hold (missing, malformed, forged,
/// expired, another algorithm), and for a token that expires while connected: retrying with the
/// same token is useless. Not among the core's own codes (the hub never decides it); a client that
/// does not know it reports the close with the message.
pub const UNAUTHORIZED: &str = "UNAUTHORIZED";

/// Bytes of frames a connection may have on their way to the grid's thread.
pub const INBOUND_CREDIT: usize = 8 << 20;

/// Bytes of frames one `SyncFrames` carries at most: each call must end well within the
/// instance's deadline, however much a flood of clients sent.
const BATCH_BYTES: usize = 1 << 20;

/// Bytes of frames one round takes from the queue before it flushes and answers: the rest waits
/// for the next round, so acknowledgements keep flowing under a flood.
const ROUND_BYTES: usize = 4 << 20;

/// How often the grid's thread wakes without a message (timeouts, retrying a failed flush).
const TICK: Duration = Duration::from_millis(250);

/// How sync connections are held.
#[derive(Clone, Debug)]
pub struct SyncSettings {
    /// The HS256 secret every token must be signed with; `None` accepts everyone.
    pub jwt_secret: Option<String>,
    /// The largest frame (the module's hub uses [`DEFAULT_FRAME_LIMIT`]).
    pub frame_limit: usize,
    /// A connection that has not said hello by then is refused.
    pub hello_timeout: Duration,
    /// A connection with more bytes than this waiting to be sent is closed (it does not read).
    pub send_queue_limit: usize,
    /// A connection that sends nothing (not even a pong to the server's pings) for this long is
    /// closed.
    pub idle_timeout: Duration,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            frame_limit: DEFAULT_FRAME_LIMIT,
            hello_timeout: Duration::from_secs(10),
            send_queue_limit: 64 << 20,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// What the grid's thread sends a connection's writer.
#[derive(Debug)]
pub(crate) enum Out {
    /// A frame, as one binary message.
    Frame(Vec<u8>),
    /// A close message (after the frames before it), then the writer ends.
    Close(u16, String),
}

/// The grid's thread's side of one connection.
#[derive(Debug)]
pub(crate) struct Link {
    out: tokio_mpsc::UnboundedSender<Out>,
    /// Bytes queued to the writer and not yet sent.
    queued: Arc<AtomicUsize>,
    /// Ends the connection at once, past its queue (a client too slow to read).
    kill: watch::Sender<Option<(u16, String)>>,
}

// ---- the connection's tasks ---------------------------------------------------------------------

/// Serves one WebSocket at `/sync` until it closes.
pub(crate) async fn connection(socket: WebSocket, addr: SocketAddr, grid: GridHandle, settings: Arc<SyncSettings>) {
    let stats_counted = Counted::new(grid.stats());
    let (out, out_rx) = tokio_mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let (kill, kill_rx) = watch::channel(None);
    let (reply, opened) = tokio::sync::oneshot::channel();
    let link = Link { out, queued: queued.clone(), kill };
    let (mut sink, mut stream) = socket.split();
    let conn = match grid.send(Msg::Open { addr, link, reply }) {
        Ok(()) => opened.await.ok().flatten(),
        Err(_) => None,
    };
    let Some(conn) = conn else {
        let _ = sink.send(close_message(1001, "the server is shutting down")).await;
        return;
    };
    let mut writer = tokio::spawn(write(sink, out_rx, queued, kill_rx.clone(), settings.idle_timeout / 3));
    let credit = Arc::new(Semaphore::new(INBOUND_CREDIT));
    let mut kill_rx = kill_rx;
    // A finished JoinHandle must not be polled again: remember when the writer is done.
    let mut writer_done = false;
    let gone = loop {
        let next = tokio::select! {
            ended = &mut writer => {
                writer_done = true;
                // A writer that met a dead socket first: the grid's thread must still hear of it,
                // or it holds the connection (and its node id) forever.
                break match ended {
                    Ok(WriterEnd::Released) => None,
                    Ok(WriterEnd::Failed(e)) => Some(format!("the WebSocket failed: {e}")),
                    Err(e) => Some(format!("the connection's writer task failed: {e}")),
                };
            }
            _ = kill_rx.changed() => break None,
            next = tokio::time::timeout(settings.idle_timeout, stream.next()) => next,
        };
        let message = match next {
            Err(_) => {
                break Some(format!("nothing received for {} s (not even a pong)", settings.idle_timeout.as_secs()));
            }
            Ok(None) => break Some("the client went away".to_owned()),
            Ok(Some(Err(e))) => break Some(format!("the WebSocket failed: {e}")),
            Ok(Some(Ok(message))) => message,
        };
        match message {
            Message::Binary(bytes) => {
                let need = u32::try_from(bytes.len().clamp(1, INBOUND_CREDIT)).unwrap_or(u32::MAX);
                let permit = tokio::select! {
                    permit = credit.clone().acquire_many_owned(need) => permit,
                    _ = kill_rx.changed() => break None,
                };
                let Ok(permit) = permit else { break None };
                if grid.send(Msg::Frame { conn, bytes: bytes.to_vec(), permit }).is_err() {
                    break None;
                }
            }
            Message::Text(_) => {
                let message = "a text message arrived: sync frames are binary WebSocket messages".to_owned();
                let _ = grid.send(Msg::Fail { conn, code: codes::MALFORMED, message });
                // The grid's thread closes it; wait for the writer.
                writer_done = tokio::time::timeout(Duration::from_secs(5), &mut writer).await.is_ok();
                break None;
            }
            Message::Close(_) => break Some("the client closed the connection".to_owned()),
            Message::Ping(_) | Message::Pong(_) => {}
        }
    };
    if let Some(why) = gone {
        let _ = grid.send(Msg::Gone { conn, why });
    }
    // The writer ends once the grid's thread has let go of the connection (or closed it).
    if !writer_done {
        let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    }
    drop(stats_counted);
}

/// Counts an open WebSocket while it lives.
struct Counted<'a>(&'a Stats);

impl<'a> Counted<'a> {
    fn new(stats: &'a Stats) -> Self {
        stats.sockets.fetch_add(1, Ordering::Relaxed);
        Self(stats)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.sockets.fetch_sub(1, Ordering::Relaxed);
    }
}

fn close_message(code: u16, reason: &str) -> Message {
    // A close frame's reason is at most 123 bytes.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame { code, reason: reason[..end].to_owned().into() }))
}

/// Why a connection's writer ended.
enum WriterEnd {
    /// The grid's thread closed the connection or let go of it: it knows.
    Released,
    /// Sending failed (the socket is gone): the reader must tell the grid's thread.
    Failed(axum::Error),
}

/// Sends what the grid's thread queued, pings every `ping`, and closes.
async fn write(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut out: tokio_mpsc::UnboundedReceiver<Out>,
    queued: Arc<AtomicUsize>,
    mut kill: watch::Receiver<Option<(u16, String)>>,
    ping: Duration,
) -> WriterEnd {
    let mut pings = tokio::time::interval(ping.max(Duration::from_millis(100)));
    pings.tick().await;
    let mut kill_alive = true;
    loop {
        tokio::select! {
            next = out.recv() => match next {
                Some(Out::Frame(bytes)) => {
                    let len = bytes.len();
                    let sent = sink.send(Message::Binary(bytes.into())).await;
                    queued.fetch_sub(len, Ordering::Relaxed);
                    if let Err(e) = sent {
                        return WriterEnd::Failed(e);
                    }
                }
                Some(Out::Close(code, reason)) => {
                    let _ = tokio::time::timeout(Duration::from_secs(2), sink.send(close_message(code, &reason))).await;
                    return WriterEnd::Released;
                }
                None => {
                    let _ = tokio::time::timeout(Duration::from_secs(2), sink.close()).await;
                    return WriterEnd::Released;
                }
            },
            changed = kill.changed(), if kill_alive => {
                let Some((code, reason)) = kill.borrow().clone() else {
                    // The grid's thread let go of the connection: send what it queued (the
                    // channel then ends), without waking here again.
                    kill_alive = changed.is_ok();
                    continue;
                };
                let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(close_message(code, &reason))).await;
                return WriterEnd::Released;
            }
            _ = pings.tick() => {
                if let Err(e) = sink.send(Message::Ping(Vec::new().into())).await {
                    return WriterEnd::Failed(e);
                }
            }
        }
    }
}

// ---- the grid's thread ----------------------------------------------------------------------

/// One connection, as the grid's thread sees it.
#[derive(Debug)]
struct Peer {
    link: Link,
    addr: SocketAddr,
    opened: Instant,
    /// The node id from its hello, and what its token granted.
    node: Option<String>,
    subject: Option<String>,
    read: Option<Vec<String>>,
    write: Option<Vec<String>>,
    /// The token's `exp` (seconds since the epoch).
    expires: Option<u64>,
    /// Accepted (its `Connected` event came).
    accepted: bool,
    /// Hello handled (accepted or refused).
    decided: bool,
    frames_in: u64,
    frames_out: u64,
}

/// The grid, its hub's connections, and the loop that serves them (see the [module docs](self)).
pub(crate) struct Engine {
    grid: PersistentGrid,
    settings: SyncSettings,
    stats: Arc<Stats>,
    peers: BTreeMap<u32, Peer>,
    generation: u64,
    stopping: bool,
    /// A flush of the hub failed and has not been followed by one that succeeded.
    flush_failing: bool,
    last_retry: Instant,
}

/// A decision about a connection, taken while its output is read.
enum Decision {
    Accept { conn: u32, read: Option<Vec<String>>, write: Option<Vec<String>> },
    Refuse { conn: u32, reason: String },
}

impl Engine {
    pub(crate) fn new(grid: PersistentGrid, settings: SyncSettings, stats: Arc<Stats>) -> Self {
        let generation = grid.generation();
        Self {
            grid,
            settings,
            stats,
            peers: BTreeMap::new(),
            generation,
            stopping: false,
            flush_failing: false,
            last_retry: Instant::now(),
        }
    }

    /// The thread's loop: rounds of messages until every handle is gone.
    pub(crate) fn run(mut self, queue: &mpsc::Receiver<Msg>) -> PersistentGrid {
        loop {
            let first = match queue.recv_timeout(TICK) {
                Ok(msg) => Some(msg),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut msgs: Vec<Msg> = first.into_iter().collect();
            let mut bytes = 0;
            while msgs.len() < 100_000 && bytes < ROUND_BYTES {
                match queue.try_recv() {
                    Ok(msg) => {
                        if let Msg::Frame { bytes: frame, .. } = &msg {
                            bytes += frame.len();
                        }
                        msgs.push(msg);
                    }
                    Err(_) => break,
                }
            }
            self.round(msgs);
        }
        self.grid
    }

    /// One round: every message in order (the frames among them in as few `SyncFrames` as
    /// possible), then timeouts, then storage and the polls.
    fn round(&mut self, msgs: Vec<Msg>) {
        let mut work = !msgs.is_empty();
        // A commit ended: its answers first, so the hub's next flush goes to the storage thread
        // before this round's frames are applied, not after (the thread would wait for them).
        if !self.stopping && msgs.iter().any(|m| matches!(m, Msg::Wake)) {
            self.run_storage();
        }
        let (mut batch, mut permits, mut bytes) = (Vec::new(), Vec::new(), 0);
        for msg in msgs {
            match msg {
                Msg::Frame { conn, bytes: frame, permit } => {
                    let Some(peer) = self.peers.get_mut(&conn) else { continue };
                    peer.frames_in += 1;
                    if bytes + frame.len() > BATCH_BYTES && !batch.is_empty() {
                        self.apply(&mut batch);
                        bytes = 0;
                    }
                    bytes += frame.len();
                    batch.push(InFrame { conn, bytes: frame });
                    permits.push(permit);
                }
                Msg::Wake => {} // the settle below collects the storage thread's answers
                other => {
                    self.apply(&mut batch);
                    bytes = 0;
                    self.handle(other);
                }
            }
        }
        self.apply(&mut batch);
        drop(permits);
        work |= self.check_timers();
        if self.flush_failing && self.last_retry.elapsed() >= Duration::from_secs(1) {
            self.last_retry = Instant::now();
            work = true;
        }
        if work && !self.peers.is_empty() {
            self.settle();
        }
    }

    /// Hands the frames of a batch to the hub.
    fn apply(&mut self, batch: &mut Vec<InFrame>) {
        if !batch.is_empty() {
            self.sync(Command::SyncFrames { frames: std::mem::take(batch) });
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Frame { .. } | Msg::Wake => {}
            Msg::Job(job) => {
                job(&mut self.grid);
                self.check_generation();
                self.take_grid_events();
            }
            Msg::Open { addr, link, reply } => {
                let conn = if self.stopping { None } else { self.open(addr, link) };
                let _ = reply.send(conn);
            }
            Msg::Fail { conn, code, message } => self.fail(conn, code, &message),
            Msg::Gone { conn, why } => {
                if let Some(peer) = self.peers.remove(&conn) {
                    self.sync(Command::SyncRemove { conn });
                    self.closed(conn, &peer, "CLOSED", &why, true);
                }
            }
            Msg::Shutdown { reply } => {
                self.shutdown();
                let _ = reply.send(());
            }
        }
    }

    fn open(&mut self, addr: SocketAddr, link: Link) -> Option<u32> {
        let Some(Reply::Count(conn)) = self.sync(Command::SyncIncoming) else { return None };
        let conn = u32::try_from(conn).ok()?;
        log::info("connect", &[("conn", &conn), ("addr", &addr)]);
        let peer = Peer {
            link,
            addr,
            opened: Instant::now(),
            node: None,
            subject: None,
            read: None,
            write: None,
            expires: None,
            accepted: false,
            decided: false,
            frames_in: 0,
            frames_out: 0,
        };
        self.peers.insert(conn, peer);
        Some(conn)
    }

    /// Closes an open connection the hub does not know to close: an error frame of `code`, then
    /// the close.
    fn fail(&mut self, conn: u32, code: &str, message: &str) {
        let Some(peer) = self.peers.remove(&conn) else { return };
        let frame = Frame::Error { code: code.to_owned(), message: message.to_owned() }.encode();
        let _ = peer.link.out.send(Out::Frame(frame));
        let _ = peer.link.out.send(Out::Close(close_code(code, false), format!("{code}: {message}")));
        self.sync(Command::SyncRemove { conn });
        self.closed(conn, &peer, code, message, false);
    }

    /// Hello timeouts and expired tokens; true when one closed a connection.
    fn check_timers(&mut self) -> bool {
        let now = system_clock() / 1000;
        let timeout = self.settings.hello_timeout;
        let late: Vec<u32> =
            self.peers.iter().filter(|(_, p)| !p.decided && p.opened.elapsed() >= timeout).map(|(c, _)| *c).collect();
        let expired: Vec<u32> = self
            .peers
            .iter()
            .filter(|(_, p)| p.accepted && p.expires.is_some_and(|e| e <= now))
            .map(|(c, _)| *c)
            .collect();
        for &conn in &late {
            if let Some(peer) = self.peers.get_mut(&conn) {
                peer.decided = true;
            }
            let reason = format!("no Hello frame within {} ms of connecting", timeout.as_millis());
            self.sync(Command::SyncRefuse { conn, code: codes::REFUSED.into(), reason });
        }
        for &conn in &expired {
            self.fail(conn, UNAUTHORIZED, "the token expired; connect again with a fresh one");
        }
        !late.is_empty() || !expired.is_empty()
    }

    /// Runs storage (the group commit's flush among it), then polls every connection with work,
    /// answering hellos, until nothing more is decided; then starts the flush those polls asked
    /// for. A flush commits on the storage thread while the next round applies frames (its
    /// `Msg::Wake` brings its answers in); while stopping, each waits for its commit.
    fn settle(&mut self) {
        for _ in 0..16 {
            self.run_storage();
            let Some(Reply::Sync(outputs)) = self.sync(Command::SyncPoll { conns: Vec::new() }) else { return };
            let mut decisions = Vec::new();
            let mut again = false;
            for output in outputs {
                again |= output.more;
                self.dispatch(output, &mut decisions);
            }
            for decision in decisions {
                again = true;
                match decision {
                    Decision::Accept { conn, read, write } => {
                        self.sync(Command::SyncAccept { conn, read, write });
                    }
                    Decision::Refuse { conn, reason } => {
                        self.sync(Command::SyncRefuse { conn, code: UNAUTHORIZED.into(), reason });
                    }
                }
            }
            if !again {
                break;
            }
        }
        self.run_storage();
    }

    /// Runs storage; see [`Engine::settle`].
    fn run_storage(&mut self) {
        let result = if self.stopping { self.grid.run_storage() } else { self.grid.run_storage_overlapped() };
        if let Err(e) = result {
            self.grid_error("run_storage", &e);
        }
        self.take_grid_events();
    }

    /// Queues a connection's frames to its writer and acts on its events.
    fn dispatch(&mut self, output: SyncOutput, decisions: &mut Vec<Decision>) {
        let SyncOutput { conn, state, frames, events, .. } = output;
        let Some(peer) = self.peers.get_mut(&conn) else { return };
        for frame in frames {
            peer.link.queued.fetch_add(frame.len(), Ordering::Relaxed);
            peer.frames_out += 1;
            let _ = peer.link.out.send(Out::Frame(frame));
        }
        let mut closed = None;
        for event in events {
            match event {
                SyncEvent::Hello { node_id, token } => {
                    peer.node = Some(node_id);
                    peer.decided = true;
                    match self.settings.jwt_secret.as_deref() {
                        None => decisions.push(Decision::Accept { conn, read: None, write: None }),
                        Some(secret) => {
                            let checked = match token {
                                None => Err(AuthError::Missing),
                                Some(token) => auth::verify(&token, secret.as_bytes(), system_clock() / 1000),
                            };
                            match checked {
                                Ok(claims) => {
                                    peer.subject = claims.subject;
                                    peer.expires = Some(claims.expires);
                                    peer.read = claims.read.clone();
                                    peer.write = claims.write.clone();
                                    decisions.push(Decision::Accept { conn, read: claims.read, write: claims.write });
                                }
                                Err(e) => decisions.push(Decision::Refuse { conn, reason: e.to_string() }),
                            }
                        }
                    }
                }
                SyncEvent::Connected { node_id } => {
                    peer.accepted = true;
                    self.stats.synced.fetch_add(1, Ordering::Relaxed);
                    let patterns = |p: &Option<Vec<String>>| p.as_ref().map_or_else(|| "*".to_owned(), |p| p.join(","));
                    log::info(
                        "accept",
                        &[
                            ("conn", &conn),
                            ("node", &node_id),
                            ("sub", &peer.subject.as_deref().unwrap_or("-")),
                            ("read", &patterns(&peer.read)),
                            ("write", &patterns(&peer.write)),
                        ],
                    );
                }
                SyncEvent::Drift(d) => log::warn(
                    "clock_drift",
                    &[("conn", &conn), ("remote", &d.remote), ("ahead_ms", &d.ahead_ms), ("limit_ms", &d.max_drift_ms)],
                ),
                SyncEvent::KindMismatch { map, local, remote } => log::warn(
                    "kind_mismatch",
                    &[("conn", &conn), ("map", &map), ("here", &local.as_str()), ("peer", &remote.as_str())],
                ),
                SyncEvent::Oversized { map, bytes } => {
                    log::warn("oversized_record", &[("conn", &conn), ("map", &map), ("bytes", &bytes)]);
                }
                SyncEvent::Closed { code, message, by_peer } => closed = Some((code, message, by_peer)),
                SyncEvent::Synced | SyncEvent::Acked { .. } => {}
            }
        }
        if let Some((code, message, by_peer)) =
            closed.or_else(|| (state == ConnState::Closed).then(|| ("CLOSED".to_owned(), "closed".to_owned(), false)))
        {
            let Some(peer) = self.peers.remove(&conn) else { return };
            let _ = peer.link.out.send(Out::Close(close_code(&code, by_peer), format!("{code}: {message}")));
            self.sync(Command::SyncRemove { conn });
            self.closed(conn, &peer, &code, &message, by_peer);
            return;
        }
        let queued = peer.link.queued.load(Ordering::Relaxed);
        if queued > self.settings.send_queue_limit {
            let Some(peer) = self.peers.remove(&conn) else { return };
            let reason = format!("too slow: {queued} bytes wait to be sent to it");
            let _ = peer.link.kill.send(Some((1008, reason.clone())));
            self.sync(Command::SyncRemove { conn });
            self.closed(conn, &peer, "SLOW", &reason, false);
        }
    }

    /// Logs a connection's end and counts it out.
    fn closed(&self, conn: u32, peer: &Peer, code: &str, message: &str, by_peer: bool) {
        if peer.accepted {
            self.stats.synced.fetch_sub(1, Ordering::Relaxed);
        }
        let event = if peer.decided && !peer.accepted && code != "CLOSED" { "refuse" } else { "close" };
        log::info(
            event,
            &[
                ("conn", &conn),
                ("addr", &peer.addr),
                ("node", &peer.node.as_deref().unwrap_or("-")),
                ("code", &code),
                ("reason", &message),
                ("by_peer", &by_peer),
                ("frames_in", &peer.frames_in),
                ("frames_out", &peer.frames_out),
            ],
        );
    }

    /// Stops: applies and flushes what arrived, sends the acknowledgements, closes everyone.
    fn shutdown(&mut self) {
        self.stopping = true;
        if !self.peers.is_empty() {
            self.settle();
        }
        for (conn, peer) in std::mem::take(&mut self.peers) {
            let _ = peer.link.out.send(Out::Close(1001, "the server is shutting down".to_owned()));
            self.sync(Command::SyncRemove { conn });
            self.closed(conn, &peer, "SHUTDOWN", "the server is shutting down", false);
        }
    }

    /// Runs a sync command; an error is logged (and a lost instance closes every connection).
    fn sync(&mut self, command: Command) -> Option<Reply> {
        match self.grid.sync(command) {
            Ok(reply) => {
                self.check_generation();
                Some(reply)
            }
            Err(e) => {
                self.grid_error("sync", &e);
                None
            }
        }
    }

    fn grid_error(&mut self, what: &str, e: &GridError) {
        log::warn("grid_error", &[("call", &what), ("code", &e.code()), ("error", e)]);
        self.check_generation();
    }

    /// The module instance was lost (and the grid reopened on a new one): the hub and every
    /// connection went with it. Clients connect again; the maps load again.
    fn check_generation(&mut self) {
        if self.grid.generation() == self.generation {
            return;
        }
        self.generation = self.grid.generation();
        log::warn("instance_lost", &[("connections", &self.peers.len())]);
        for (conn, peer) in std::mem::take(&mut self.peers) {
            let _ = peer.link.kill.send(Some((1011, "the server's grid restarted: connect again".to_owned())));
            self.closed(conn, &peer, "RESTART", "the server's grid restarted", false);
        }
        load_maps(&mut self.grid);
    }

    /// Logs what storage reported: maps loaded for clients, failed loads and flushes.
    fn take_grid_events(&mut self) {
        for event in self.grid.take_events() {
            match event {
                WireEvent::MapLoaded { map, count } => log::info("map_loaded", &[("map", &map), ("keys", &count)]),
                WireEvent::LoadFailed { map, error } => {
                    log::warn("load_failed", &[("map", &map), ("code", &error.code), ("error", &error.message)]);
                }
                WireEvent::FlushFailed { error, .. } => {
                    self.flush_failing = true;
                    log::warn("flush_failed", &[("code", &error.code), ("error", &error.message)]);
                }
                WireEvent::Flushed { .. } => {
                    if self.flush_failing {
                        log::info("flush_recovered", &[]);
                    }
                    self.flush_failing = false;
                }
                WireEvent::Ready { .. } | WireEvent::Refused { .. } => {}
            }
        }
    }
}

/// The WebSocket close code for a connection closed with the sync `code`.
fn close_code(code: &str, by_peer: bool) -> u16 {
    match code {
        _ if by_peer => 1000,
        "CLOSED" => 1000,
        c if c == codes::MALFORMED || c == codes::VERSION => 1002,
        c if c == codes::STORAGE => 1011,
        _ => 1008,
    }
}

/// Loads every stored map, so that a client's catch-up finds the maps it has never seen; logs a
/// line per map, and one every few seconds while a big map loads.
pub fn load_maps(grid: &mut PersistentGrid) {
    let names = match grid.stored_maps() {
        Ok(names) => names,
        Err(e) => {
            log::warn("list_maps_failed", &[("error", &e)]);
            return;
        }
    };
    let total = names.len();
    if total > 0 {
        log::info("loading", &[("maps", &total)]);
    }
    for (i, name) in names.iter().enumerate() {
        let started = Instant::now();
        let progress = Progress::start(name.clone());
        let loaded = grid.get_map(name, None);
        drop(progress);
        let keys = grid
            .take_events()
            .into_iter()
            .rev()
            .find_map(|e| match e {
                WireEvent::MapLoaded { map, count } if map == *name => Some(count),
                _ => None,
            })
            .unwrap_or(0);
        let ms = started.elapsed().as_millis();
        let n = format!("{}/{total}", i + 1);
        match loaded {
            Ok(kind) => log::info(
                "map_loaded",
                &[("map", name), ("kind", &kind.as_str()), ("keys", &keys), ("ms", &ms), ("n", &n)],
            ),
            Err(e) => log::warn("load_failed", &[("map", name), ("code", &e.code()), ("error", &e), ("n", &n)]),
        }
    }
}

/// Logs `loading map=... elapsed_s=...` every few seconds until dropped.
struct Progress {
    done: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    fn start(map: String) -> Self {
        let (done, wait) = mpsc::channel::<()>();
        let started = Instant::now();
        let thread = std::thread::Builder::new()
            .name("onegrid-progress".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = wait.recv_timeout(Duration::from_secs(5)) {
                    log::info("loading", &[("map", &map), ("elapsed_s", &started.elapsed().as_secs())]);
                }
            })
            .ok();
        Self { done: Some(done), thread }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        drop(self.done.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
