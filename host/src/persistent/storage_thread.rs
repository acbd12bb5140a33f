//! [`StorageThread`]: the storage adapter on a thread of its own. Requests run there in the order
//! they were started, through [`storage::execute_all`]: a batch and every batch queued behind it
//! when it starts, so their writes are one transaction (one commit for the flushes in flight).
//! Most callers start a batch and wait for it, which is a blocking call as before; `onegrid
//! serve`'s group commit starts its flush and goes on applying frames while SQLite commits, then
//! collects the answers when the thread wakes it: the two biggest costs of a round overlap
//! instead of adding up.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;

use onegrid_core::storage::{StorageOp, StorageRequest, StorageResult};

use crate::storage::{self, Storage, StorageError};

/// Called on the storage thread when a batch started with it has its answers.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// A batch and its answers, in the order of its requests.
pub(super) type Answered = Vec<(StorageRequest, StorageResult)>;

enum Job {
    Run { requests: Vec<StorageRequest>, wake: Option<Waker> },
    MapNames(mpsc::Sender<Result<Vec<String>, StorageError>>),
}

pub(super) struct StorageThread {
    jobs: Option<mpsc::Sender<Job>>,
    answers: mpsc::Receiver<Answered>,
    thread: Option<thread::JoinHandle<()>>,
    /// Each batch started and not yet collected, oldest first: its requests' ids, maps and kinds
    /// (with no data), to fail them if the thread is gone.
    started: VecDeque<Vec<StorageRequest>>,
}

impl StorageThread {
    pub(super) fn new(mut storage: Box<dyn Storage>) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (answer, answers) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("onegrid-storage".into())
            .spawn(move || {
                let mut next = None;
                while let Some(job) = next.take().or_else(|| queue.recv().ok()) {
                    match job {
                        Job::Run { requests, wake } => {
                            // The batches queued behind it join its transaction: under load, one
                            // commit (one sync to disk) for every flush started meanwhile.
                            let mut runs = vec![(requests, wake)];
                            while let Ok(job) = queue.try_recv() {
                                match job {
                                    Job::Run { requests, wake } => runs.push((requests, wake)),
                                    other => {
                                        next = Some(other);
                                        break;
                                    }
                                }
                            }
                            let ops: Vec<_> =
                                runs.iter().flat_map(|(requests, _)| requests.iter().map(|r| &r.op)).collect();
                            let mut results = storage::execute_all(&mut *storage, &ops).into_iter();
                            let mut wake = None;
                            for (requests, waker) in runs {
                                if answer.send(requests.into_iter().zip(results.by_ref()).collect()).is_err() {
                                    return;
                                }
                                wake = waker.or(wake);
                            }
                            if let Some(wake) = wake {
                                wake();
                            }
                        }
                        Job::MapNames(reply) => {
                            let _ = reply.send(storage.map_names());
                        }
                    }
                }
            })
            .ok();
        Self { jobs: Some(jobs), answers, thread, started: VecDeque::new() }
    }

    /// Starts `requests`; their answers come out of [`StorageThread::collect`], after `wake` is
    /// called on the storage thread.
    pub(super) fn start(&mut self, requests: Vec<StorageRequest>, wake: Option<Waker>) {
        self.started.push_back(requests.iter().map(outline).collect());
        let sent = self.jobs.as_ref().map(|jobs| jobs.send(Job::Run { requests, wake }));
        if !matches!(sent, Some(Ok(()))) {
            self.jobs = None; // the thread is gone: collect fails what was started
        }
    }

    /// The answers of the batches done (`wait`: of every batch started), oldest first.
    pub(super) fn collect(&mut self, wait: bool) -> Answered {
        let mut all = Vec::new();
        while !self.started.is_empty() {
            let next = if wait { self.answers.recv().ok() } else { self.answers.try_recv().ok() };
            match next {
                Some(answered) => {
                    self.started.pop_front();
                    all.extend(answered);
                }
                None if wait || self.jobs.is_none() || self.thread.as_ref().is_none_or(|t| t.is_finished()) => {
                    // The thread is gone (an adapter that panicked): what it never answered failed.
                    self.jobs = None;
                    let failed = |request| (request, StorageResult::Failed(STOPPED.into()));
                    all.extend(self.started.drain(..).flatten().map(failed));
                    break;
                }
                None => break,
            }
        }
        all
    }

    /// [`Storage::map_names`], after every batch started.
    pub(super) fn map_names(&mut self) -> Result<Vec<String>, StorageError> {
        let (reply, answer) = mpsc::channel();
        let sent = self.jobs.as_ref().is_some_and(|jobs| jobs.send(Job::MapNames(reply)).is_ok());
        let names = if sent { answer.recv().ok() } else { None };
        names.unwrap_or_else(|| Err(StorageError::on_map("storage", "map_names", "", STOPPED)))
    }
}

const STOPPED: &str = "the storage thread has stopped (its adapter panicked)";

/// A request's id, map and whether it writes, without its keys and values.
fn outline(request: &StorageRequest) -> StorageRequest {
    let map = request.op.map().to_owned();
    let op = if request.op.is_write() {
        StorageOp::DeleteAll { map, keys: Vec::new() }
    } else {
        StorageOp::LoadAllKeys { map }
    };
    StorageRequest { id: request.id, op }
}

impl Drop for StorageThread {
    /// Lets the thread finish what was started and close the adapter before the grid is gone.
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
