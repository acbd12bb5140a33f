//! The server's grid: one [`PersistentGrid`] (the module in wasmtime, its maps on SQLite or
//! PostgreSQL) and the hub of its sync connections, on a thread of its own. Module calls and
//! storage are blocking, so they stay off the async runtime; everything reaches the grid as a
//! message on one queue, in the order sent: calls ([`GridHandle::call`]), and the sync
//! connections' opens, frames and ends (see [`super::sync`], which runs the thread's loop and its
//! group commit).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;

use tokio::sync::{OwnedSemaphorePermit, oneshot};

use crate::persistent::{GridError, PersistentGrid};
use crate::serve::sync::{Engine, Link, SyncSettings};

pub(crate) type Job = Box<dyn FnOnce(&mut PersistentGrid) + Send>;

/// What the grid's thread is asked to do.
pub(crate) enum Msg {
    /// Run a closure on the grid.
    Job(Job),
    /// A WebSocket opened: make its connection; answered with its handle (`None` while stopping).
    Open { addr: SocketAddr, link: Link, reply: oneshot::Sender<Option<u32>> },
    /// A frame from a connection (its permit holds the reader's credit until it is applied).
    Frame { conn: u32, bytes: Vec<u8>, permit: OwnedSemaphorePermit },
    /// The connection broke the transport's rules (a text message): an error frame, then closed.
    Fail { conn: u32, code: &'static str, message: String },
    /// The connection's transport is gone.
    Gone { conn: u32, why: String },
    /// Stop: a last group commit, then every connection is closed; answered when done.
    Shutdown { reply: oneshot::Sender<()> },
    /// The storage thread finished writes of a group commit: collect their answers.
    Wake,
}

/// Connection counts, for `/healthz`.
#[derive(Debug, Default)]
pub struct Stats {
    /// WebSockets open at `/sync`.
    pub sockets: AtomicUsize,
    /// Of those, connections the handshake accepted.
    pub synced: AtomicUsize,
}

impl Stats {
    /// (sockets, accepted connections).
    pub fn counts(&self) -> (usize, usize) {
        (self.sockets.load(Ordering::Relaxed), self.synced.load(Ordering::Relaxed))
    }
}

/// A way to the grid's thread; cheap to clone.
#[derive(Clone, Debug)]
pub struct GridHandle {
    msgs: Arc<mpsc::Sender<Msg>>,
    stats: Arc<Stats>,
}

impl GridHandle {
    /// Starts the grid's thread with `grid` and sync without authentication; the thread ends when
    /// every handle is dropped.
    pub fn start(grid: PersistentGrid) -> (Self, thread::JoinHandle<PersistentGrid>) {
        Self::start_with(grid, SyncSettings::default())
    }

    /// Starts the grid's thread with `grid`, its sync connections under `settings`.
    pub fn start_with(mut grid: PersistentGrid, settings: SyncSettings) -> (Self, thread::JoinHandle<PersistentGrid>) {
        let (msgs, queue) = mpsc::channel::<Msg>();
        let msgs = Arc::new(msgs);
        // Weak: the grid's own waker must not keep its thread's queue open once every handle is gone.
        let wake = Arc::downgrade(&msgs);
        grid.set_storage_waker(Arc::new(move || {
            if let Some(msgs) = wake.upgrade() {
                let _ = msgs.send(Msg::Wake);
            }
        }));
        let stats = Arc::new(Stats::default());
        let engine = Engine::new(grid, settings, stats.clone());
        let thread = thread::Builder::new()
            .name("onegrid-grid".into())
            .spawn(move || engine.run(&queue))
            .expect("spawn the grid thread");
        (Self { msgs, stats }, thread)
    }

    /// Runs `f` on the grid's thread and waits for its result without blocking the runtime.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut PersistentGrid) -> R + Send + 'static,
    ) -> Result<R, GridGone> {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::Job(Box::new(move |grid| {
            let _ = tx.send(f(grid));
        })))?;
        rx.await.map_err(|_| GridGone)
    }

    /// Flushes every write so far.
    pub async fn flush(&self) -> Result<(), FlushError> {
        self.call(PersistentGrid::flush).await.map_err(|_| FlushError::Gone)?.map_err(FlushError::Grid)
    }

    /// Connection counts.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Stops sync: what arrived is applied and flushed, acknowledgements go out, then every
    /// connection is closed; new ones are refused.
    pub async fn shutdown(&self) -> Result<(), GridGone> {
        let (reply, done) = oneshot::channel();
        self.send(Msg::Shutdown { reply })?;
        done.await.map_err(|_| GridGone)
    }

    pub(crate) fn send(&self, msg: Msg) -> Result<(), GridGone> {
        self.msgs.send(msg).map_err(|_| GridGone)
    }
}

/// The grid's thread has stopped (it panicked, or the server is shutting down).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GridGone;

impl std::fmt::Display for GridGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the grid's thread has stopped")
    }
}

/// Why a flush did not complete.
#[derive(Debug)]
pub enum FlushError {
    /// See [`GridGone`].
    Gone,
    /// The grid's own error.
    Grid(GridError),
}

impl std::fmt::Display for FlushError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Gone => GridGone.fmt(f),
            Self::Grid(e) => e.fmt(f),
        }
    }
}
