//! The server's grid: one [`PersistentGrid`] (the module in wasmtime, its maps on SQLite or
//! PostgreSQL) on a thread of its own. Module calls and storage are blocking, so they stay off the
//! async runtime; connections reach the grid through [`GridHandle::call`], one job at a time, in
//! the order sent. Sync will group the frames that arrive while a flush runs into the next one.

use std::sync::mpsc;
use std::thread;

use tokio::sync::oneshot;

use crate::persistent::{GridError, PersistentGrid};

type Job = Box<dyn FnOnce(&mut PersistentGrid) + Send>;

/// A way to the grid's thread; cheap to clone.
#[derive(Clone, Debug)]
pub struct GridHandle {
    jobs: mpsc::Sender<Job>,
}

impl GridHandle {
    /// Starts the grid's thread with `grid`; the thread ends when every handle is dropped.
    pub fn start(grid: PersistentGrid) -> (Self, thread::JoinHandle<PersistentGrid>) {
        let (jobs, queue) = mpsc::channel::<Job>();
        let thread = thread::Builder::new()
            .name("onegrid-grid".into())
            .spawn(move || {
                let mut grid = grid;
                for job in queue {
                    job(&mut grid);
                }
                grid
            })
            .expect("spawn the grid thread");
        (Self { jobs }, thread)
    }

    /// Runs `f` on the grid's thread and waits for its result without blocking the runtime.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut PersistentGrid) -> R + Send + 'static,
    ) -> Result<R, GridGone> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Box::new(move |grid| {
                let _ = tx.send(f(grid));
            }))
            .map_err(|_| GridGone)?;
        rx.await.map_err(|_| GridGone)
    }

    /// Flushes every write so far.
    pub async fn flush(&self) -> Result<(), FlushError> {
        self.call(PersistentGrid::flush).await.map_err(|_| FlushError::Gone)?.map_err(FlushError::Grid)
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
