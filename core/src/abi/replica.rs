//! [`Replica`]: a grid and the [`Hub`] of its sync connections, as the byte ABI keeps each grid.
//!
//! The sync commands drive the hub; every other command runs on the grid
//! ([`Grid::execute`]). `Storage` is run here: the storage manager's events go to the hub too
//! (acknowledgements wait for `Flushed`), and the hub then takes its next step at once, so a
//! group commit's flush, and frames that waited for a map load, are among the requests of the
//! same reply. A host driving a replica never routes an event itself.

use alloc::vec::Vec;

use crate::abi::{Command, InFrame, Reply, SyncEvent, SyncOutput, WireEvent};
use crate::error::Error;
use crate::grid::Grid;
use crate::storage::{StorageEvent, StorageResult};
use crate::sync::permissions::Permissions;
use crate::sync::types::ConnId;
use crate::sync::{Hub, SyncConfig};

/// About how many bytes of frames one `SyncPoll` reply carries (a connection's frames beyond it
/// wait for the next poll, marked `more`), well under the ABI's message limit.
pub const REPLY_FRAME_BYTES: usize = 16 << 20;

/// A grid with the hub of its sync connections.
#[derive(Debug)]
pub struct Replica {
    /// The grid.
    pub grid: Grid,
    /// Its connections.
    pub hub: Hub,
    /// A sync command has run: the hub may have turned the maps' sync feeds on, so local writes
    /// are moved into its log as they are made (a feed nobody drains would only grow).
    feeds_on: bool,
}

impl Replica {
    /// `grid` with a hub of the default [`SyncConfig`].
    pub fn new(grid: Grid) -> Self {
        Self::with_config(grid, SyncConfig::default())
    }

    /// `grid` with a hub of `config`.
    pub fn with_config(grid: Grid, config: SyncConfig) -> Self {
        Self { grid, hub: Hub::new(config), feeds_on: false }
    }

    /// Runs one command (see [`Command`]); `Open` and `Close` are refused, as by
    /// [`Grid::execute`].
    pub fn execute(&mut self, wall: u64, command: Command) -> Result<Reply, Error> {
        let (grid, hub) = (&mut self.grid, &mut self.hub);
        let reply = match command {
            Command::Storage { answers } => return self.storage(wall, answers),
            Command::SyncPoll { conns } => return Ok(self.poll(wall, conns)),
            Command::SyncConnect { token } => Reply::Count(u64::from(hub.connect(grid, token).0)),
            Command::SyncIncoming => Reply::Count(u64::from(hub.incoming(grid).0)),
            Command::SyncAccept { conn, read, write } => {
                hub.accept(grid, ConnId(conn), Permissions::new(read, write));
                Reply::Done
            }
            Command::SyncRefuse { conn, code, reason } => {
                hub.refuse_with(ConnId(conn), &code, &reason);
                Reply::Done
            }
            Command::SyncFrames { frames } => {
                hub.handle_frames(grid, wall, frames.iter().map(|InFrame { conn, bytes }| (ConnId(*conn), &bytes[..])));
                Reply::Done
            }
            Command::SyncClose { conn } => {
                hub.close(ConnId(conn));
                Reply::Done
            }
            Command::SyncRemove { conn } => {
                hub.remove(ConnId(conn));
                Reply::Done
            }
            Command::SyncMarker => Reply::Count(hub.marker(grid)),
            command => {
                let reply = grid.execute(wall, command);
                if self.feeds_on {
                    hub.marker(grid);
                }
                return reply;
            }
        };
        self.feeds_on = true;
        Ok(reply)
    }

    /// `Storage`: the answers in, the events to the hub (which steps after each round of them, so
    /// its next flush is issued now), then the requests to run.
    fn storage(&mut self, wall: u64, answers: Vec<(u64, StorageResult)>) -> Result<Reply, Error> {
        self.grid.take_answers(answers)?;
        let mut events = Vec::new();
        loop {
            let mut step = false;
            while let Some(event) = self.grid.storage_mut().poll_event() {
                self.hub.handle_storage_event(&event);
                // A failed flush is retried at the next step the driver asks for, not in a loop.
                step |= !matches!(event, StorageEvent::FlushFailed { .. });
                events.push(WireEvent::from(event));
            }
            if !step || !self.feeds_on {
                break;
            }
            self.hub.tick(&mut self.grid, wall);
        }
        let store = self.grid.storage_mut();
        let requests = core::iter::from_fn(|| store.poll_storage()).collect();
        Ok(Reply::Storage { requests, events })
    }

    /// `SyncPoll`: one step, then each connection's frames (within [`REPLY_FRAME_BYTES`] in all),
    /// events, state and pending writes.
    fn poll(&mut self, wall: u64, conns: Vec<u32>) -> Reply {
        self.feeds_on = true;
        self.hub.tick(&mut self.grid, wall);
        let all = conns.is_empty();
        let ids: Vec<ConnId> = if all { self.hub.ids().collect() } else { conns.into_iter().map(ConnId).collect() };
        let mut budget = REPLY_FRAME_BYTES;
        let mut outputs = Vec::new();
        for id in ids {
            let mut frames = Vec::new();
            let more = if budget > 0 {
                let more = self.hub.drain_transmit(id, budget, &mut frames);
                budget = budget.saturating_sub(frames.iter().map(Vec::len).sum());
                more
            } else {
                self.hub.has_transmit(id)
            };
            let events: Vec<SyncEvent> = core::iter::from_fn(|| self.hub.poll_event(id)).map(SyncEvent::from).collect();
            if all && frames.is_empty() && events.is_empty() && !more {
                continue;
            }
            let (state, pending) = (self.hub.state(id), self.hub.pending_writes(id));
            outputs.push(SyncOutput { conn: id.0, state, pending, frames, more, events });
        }
        Reply::Sync(outputs)
    }
}
