//! [`Checkpoints`]: SQLite's WAL checkpoints, moved off the commit path.
//!
//! In WAL mode every commit appends pages to the log, and a checkpoint copies them back into the
//! database file and syncs it. SQLite's automatic checkpoint runs inside the commit that takes the
//! log past 1 000 pages: under `onegrid serve`'s load that is one commit in every few, and it then
//! takes two to three times as long (the p99 of acknowledged writes was that stall).
//!
//! Here a thread of its own, on its own connection, copies the log back in passes while the
//! writer goes on committing (a PASSIVE checkpoint never blocks a writer). That alone never
//! empties the log, because the writer adds pages during every pass, and SQLite writes the log from
//! its start again only when a writer finds every page of it copied back. So once the log is
//! [`Policy::restart_at`] pages long, the thread runs passes back to back until fewer than
//! [`Policy::tail`] pages are left, and then the writer copies those few itself, right after a
//! commit (no other write can come between): its next commit starts the log over. The writer's
//! own pass is a few hundred pages instead of a thousand, and it comes several times less often.
//! [`Policy::cap`] bounds the log if the thread cannot keep up (another process reading the file
//! holds pages back): the writer checkpoints after every commit past it, as SQLite would.
//!
//! All of this is a schedule. What is durable, and when, stays SQLite's: each commit is synced
//! to the log before it returns, and a checkpoint, whoever runs it, is SQLite's own.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;

use rusqlite::Connection;
use rusqlite::wal::CheckpointMode;

/// When checkpoints run, in pages of the log.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Policy {
    /// Pages not yet copied back at which the thread starts a pass (SQLite's default threshold).
    pub pass_at: u32,
    /// Log length at which the log should start over: 16 MiB of 4 KiB pages.
    pub restart_at: u32,
    /// Pages left that the writer copies itself, so that the log starts over.
    pub tail: u32,
    /// Log length past which the writer checkpoints after every commit.
    pub cap: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self { pass_at: 1_000, restart_at: 4_096, tail: 256, cap: 16_384 }
    }
}

/// What a [`SqliteStorage`](super::SqliteStorage)'s checkpoints did since it opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Passes the thread ran.
    pub passes: u64,
    /// Checkpoints the writer ran itself, right after a commit.
    pub writer_passes: u64,
    /// Pages those copied back.
    pub writer_pages: u64,
    /// Times the log started over.
    pub restarts: u64,
    /// Pages the commits wrote to the log.
    pub logged: u64,
}

/// The writer's side: called after each of its commits with the log's length (from SQLite's WAL
/// hook, which replaces its automatic checkpoint).
pub(crate) struct Checkpoints {
    policy: Policy,
    thread: Option<thread::JoinHandle<()>>,
    shared: Arc<Shared>,
    /// The log's length after the last commit.
    frames: u32,
    /// How many of its pages are known to be copied back.
    copied: u32,
    /// The writer's last pass copied the whole log back: the next commit starts it over (unless
    /// a reader of another connection still reads it), even one longer than the log was.
    emptied: bool,
    stats: Stats,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    /// A pass is wanted; the number is the log's restart count when it was asked for.
    wanted: Option<u64>,
    running: bool,
    /// The last pass's restart count and the pages it left copied back.
    done: Option<(u64, u32)>,
    stop: bool,
    /// Copied out to the writer's stats when it takes `done`.
    passes: u64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Checkpoints {
    /// Starts the thread, with its own connection to the file at `path` (already in WAL mode).
    pub(crate) fn start(path: &Path, policy: Policy) -> Result<Self, String> {
        let open = || -> rusqlite::Result<Connection> {
            let conn = Connection::open(path)?;
            // The thread's passes sync the database file just as the writer's would.
            conn.pragma_update(None, "synchronous", "FULL")?;
            Ok(conn)
        };
        let conn = open().map_err(|e| format!("cannot open the checkpoint thread's connection: {e}"))?;
        let shared = Arc::new(Shared { state: Mutex::default(), wake: Condvar::new() });
        let thread = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("onegrid-checkpoint".into())
                .spawn(move || run(&conn, &shared))
                .map_err(|e| format!("cannot start the checkpoint thread: {e}"))?
        };
        Ok(Self { policy, thread: Some(thread), shared, frames: 0, copied: 0, emptied: false, stats: Stats::default() })
    }

    pub(crate) fn stats(&self) -> Stats {
        self.stats
    }

    /// After a commit that left the log `frames` pages long. `checkpoint` runs a PASSIVE
    /// checkpoint on the writer's connection and answers the pages it left copied back.
    ///
    /// What it knows of the log is an estimate (SQLite does not say when the log starts over; a
    /// shorter log after a commit, or a commit after the writer emptied it, does): a wrong one
    /// only moves a pass, never what is durable.
    pub(crate) fn after_commit(&mut self, frames: u32, checkpoint: impl FnOnce() -> Option<u32>) {
        if frames < self.frames || core::mem::take(&mut self.emptied) {
            // The commit started the log over: nothing of it is copied back yet.
            self.stats.restarts += 1;
            self.copied = 0;
            self.stats.logged += u64::from(frames);
        } else {
            self.stats.logged += u64::from(frames - self.frames);
        }
        self.frames = frames;
        let restarts = self.stats.restarts;
        let mut state = self.shared.lock();
        self.stats.passes = state.passes;
        if let Some((asked_at, copied)) = state.done.take() {
            // A pass asked for before the log started over copied pages of the old log.
            if asked_at == restarts {
                self.copied = self.copied.max(copied.min(frames));
            }
        }
        let Policy { pass_at, restart_at, tail, cap } = self.policy;
        let busy = state.running || state.wanted.is_some();
        let behind = frames.saturating_sub(self.copied);
        // Past the cap the writer tries even while the thread is busy (it then finds the
        // checkpoint lock taken and does nothing), so the log stays bounded if the thread is gone.
        if frames >= cap || (!busy && frames >= restart_at && behind <= tail) {
            drop(state);
            if let Some(copied) = checkpoint() {
                self.stats.writer_passes += 1;
                self.stats.writer_pages += u64::from(copied.saturating_sub(self.copied));
                self.copied = self.copied.max(copied);
                self.emptied = copied >= frames;
            }
        } else if !busy && (behind >= pass_at || frames >= restart_at) {
            state.wanted = Some(restarts);
            self.shared.wake.notify_one();
        }
    }
}

/// The thread: one PASSIVE pass each time one is wanted. An error (another process's checkpoint
/// holding the lock, a full disk) leaves the pages in the log, where the next pass or the
/// writer's finds them.
fn run(conn: &Connection, shared: &Shared) {
    let mut state = shared.lock();
    loop {
        if state.stop {
            return;
        }
        let Some(asked_at) = state.wanted.take() else {
            state = shared.wake.wait(state).unwrap_or_else(PoisonError::into_inner);
            continue;
        };
        state.running = true;
        drop(state);
        let result = conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE);
        state = shared.lock();
        state.running = false;
        state.passes += 1;
        if let Ok((_, copied)) = result {
            state.done = Some((asked_at, u32::try_from(copied).unwrap_or(0)));
        }
    }
}

impl Drop for Checkpoints {
    /// Lets a pass in progress finish, then closes the thread's connection.
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
