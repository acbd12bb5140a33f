//! Pushes: what a connection sends of the changes logged since its cursor (a frame per run of one
//! map, each vouching for its run once acknowledged), and the synced state those acknowledgements
//! decide. A child of the connection, so it works on its fields directly.

use alloc::string::String;
use alloc::vec::Vec;

use super::{Connection, Cover, Ctx, Phase, loaded_maps};
use crate::event::FeedItem;
use crate::storage::maps::MapId;
use crate::sync::catchup::pages;
use crate::sync::frame::{Frame, Node};
use crate::sync::log::{ChangeLog, Source};
use crate::sync::types::Event;

impl Connection {
    /// Pushes the logged changes after the cursor; catches up by Merkle instead when the log no
    /// longer holds them.
    pub(crate) fn push(&mut self, ctx: &mut Ctx<'_>) {
        if self.phase != Phase::Open {
            return;
        }
        let log = ctx.log;
        let Some(log_runs) = log.runs_after(self.cursor.pos) else {
            self.floor = Some(self.floor.map_or(self.cursor, |f| f.min(self.cursor)));
            self.cursor = Cover { pos: log.end(), locals: log.locals() };
            for name in loaded_maps(ctx.grid) {
                self.open_catchup(ctx.grid, &name);
            }
            return;
        };
        // Runs of one map: its keys and tags, and the log position after the run's last change.
        let mut runs: Vec<(MapId, Vec<&str>, Vec<String>, Cover)> = Vec::new();
        let mut loaded = Vec::new();
        let mut last = self.cursor;
        for run in log_runs {
            let before = last;
            let (pos, locals) = run.end();
            last = Cover { pos, locals };
            if run.source == Source::Conn(self.id) {
                continue;
            }
            if run.loaded {
                // A map that (re)loaded: what it held is caught up, and counts as delivered only
                // once that catch-up is over.
                self.floor = Some(self.floor.map_or(before, |f| f.min(before)));
                loaded.push(run.map);
                continue;
            }
            // The changes of maps the peer may not read cost no more than a skip.
            if !self.sends_id(ctx.grid, run.map) {
                continue;
            }
            if runs.last().is_none_or(|r| r.0 != run.map) {
                runs.push((run.map, Vec::new(), Vec::new(), last));
            }
            let Some(out) = runs.last_mut() else { continue };
            out.3 = last;
            for entry in run.entries() {
                match &entry.item {
                    FeedItem::Key(key) => out.1.push(key),
                    FeedItem::Tag(tag) => out.2.push(tag.to_text()),
                    FeedItem::Loaded => {}
                }
            }
        }
        // Each frame records what is delivered once it is acknowledged: a run's last frame the
        // log up to the run's end (the runs before it went first), its other frames nothing new.
        // So a frame of one map never vouches for another map's changes still on their way.
        let mut frames: Vec<(Frame, Option<Cover>)> = Vec::new();
        for (id, mut keys, mut tags, end) in runs {
            let Some(map) = ctx.grid.map_at(id) else { continue };
            let Some(name) = ctx.grid.storage().name_of(id) else { continue };
            crate::sort::strs(&mut keys);
            keys.dedup();
            crate::sort::strs(&mut tags);
            tags.dedup();
            let keyed: Vec<(&str, usize, Node)> = keys.iter().map(|k| (*k, 0, Node::ROOT)).collect();
            let first = frames.len();
            for (payload, _) in pages(map, &keyed, &tags, &Default::default(), self.budget(name)) {
                frames.push((Frame::Writes { map: String::from(name), payload }, None));
            }
            if frames.len() > first
                && let Some(frame) = frames.last_mut()
            {
                frame.1 = Some(end);
            }
        }
        for id in loaded {
            // A map the peer's catch-up made here (or loaded for it) is caught up by that one,
            // both ways: a second would send its records again.
            if let Some(name) = ctx.grid.storage().name_of(id).map(String::from)
                && self.find(&name, false).is_none()
            {
                self.open_catchup(ctx.grid, &name);
            }
        }
        for (frame, cover) in frames {
            if let Some(cover) = cover {
                self.cursor = cover;
            }
            self.send(frame);
        }
        self.cursor = last;
    }

    /// Updates the synced state, reporting the change.
    pub(crate) fn update_state(&mut self, log: &ChangeLog) {
        if self.initial_done && self.catchups.is_empty() && self.floor.is_some() {
            self.floor = None;
            self.report_acked();
        }
        let synced = self.phase == Phase::Open
            && self.initial_done
            && self.catchups.is_empty()
            && self.inbox.is_empty()
            && self.unacked.is_empty()
            && self.cursor.pos == log.end()
            && self.ack_sent == self.received;
        if synced && !self.synced {
            self.events.push_back(Event::Synced);
            // An idle connection keeps no buffers from its catch-up.
            self.out.shrink_to_fit();
            self.unacked.shrink_to_fit();
            self.catchups.shrink_to_fit();
            self.inbox.shrink_to_fit();
            self.answered.shrink_to_fit();
            self.peer_opened = Vec::new();
        }
        self.synced = synced;
    }
}
