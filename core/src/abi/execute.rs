//! [`Grid::execute`]: one [`Command`] run on an open grid, answered with a [`Reply`].

use alloc::string::String;
use alloc::vec::Vec;

use crate::abi::{Command, Reply, WireDrift, WireEvent};
use crate::error::{Error, excerpt};
use crate::grid::Grid;
use crate::map_common::check_key;
use crate::storage::StorageResult;
use crate::storage::maps::AnyMap;

impl Grid {
    /// Runs one command on this grid. `Open` and `Close` belong to whoever keeps the grid handles
    /// and are refused here. A command that fails changes nothing: a map it would have created
    /// (map commands create their map on first use) is not left behind.
    pub fn execute(&mut self, wall: u64, command: Command) -> Result<Reply, Error> {
        let new_map = command.map().filter(|m| !self.storage().has_map(m)).map(String::from);
        let result = self.run(wall, command);
        if result.is_err()
            && let Some(id) = new_map.and_then(|m| self.id_of(&m))
        {
            self.storage_mut().forget(id);
        }
        result
    }

    fn run(&mut self, wall: u64, command: Command) -> Result<Reply, Error> {
        Ok(match command {
            Command::Open { .. } | Command::OpenPersistent { .. } | Command::Close => {
                return Err(Error::Decode { what: "request", reason: "Open and Close are not grid commands".into() });
            }
            Command::SyncConnect { .. }
            | Command::SyncIncoming
            | Command::SyncAccept { .. }
            | Command::SyncRefuse { .. }
            | Command::SyncFrames { .. }
            | Command::SyncPoll { .. }
            | Command::SyncClose { .. }
            | Command::SyncRemove { .. }
            | Command::SyncMarker => {
                return Err(Error::Decode {
                    what: "request",
                    reason: "sync commands need the grid's hub: run them on its Replica".into(),
                });
            }
            Command::Set { map, key, value, ttl_ms } => {
                let (m, clock) = self.lww(&map, wall)?;
                m.set(clock, wall, &key, value, ttl_ms)?;
                Reply::Done
            }
            Command::SetMany { map, entries } => {
                let (m, clock) = self.lww(&map, wall)?;
                m.set_many(clock, wall, entries)?;
                Reply::Done
            }
            Command::Remove { map, key } => {
                let (m, clock) = self.lww(&map, wall)?;
                m.remove(clock, wall, &key)?;
                Reply::Done
            }
            Command::Get { map, key } => {
                check_key(&key)?;
                Reply::Value(self.lww(&map, wall)?.0.get(&key, wall))
            }
            Command::Add { map, key, value, ttl_ms } => {
                let (m, clock) = self.or(&map, wall)?;
                Reply::Tags(alloc::vec![m.add(clock, wall, &key, value, ttl_ms)?.tag()])
            }
            Command::OrRemove { map, key, value } => Reply::Tags(self.or(&map, wall)?.0.remove(&key, &value)?),
            Command::OrGet { map, key } => {
                check_key(&key)?;
                Reply::Values(self.or(&map, wall)?.0.get(&key, wall).into_iter().cloned().collect())
            }
            Command::Root { map } => Reply::Root(self.existing(&map)?.root()),
            Command::Export { map } => Reply::Bytes(self.export_map(&map)?),
            Command::Import { map, snapshot } => {
                let imported = self.import_map(&map, &snapshot, wall)?;
                let drifts = imported.drifts.iter().map(WireDrift::from).collect();
                Reply::Imported { changed: imported.changed as u64, drifts }
            }
            Command::Prune { map, older_than } => {
                let kind = self.existing(&map)?.kind();
                let id = self.id_of(&map).ok_or_else(|| unknown(&map))?;
                let pruned = match self.write_at(id, kind, wall)?.0 {
                    AnyMap::Lww(m) => m.prune(older_than),
                    AnyMap::Or(m) => m.prune(older_than),
                };
                Reply::Count(pruned as u64)
            }
            Command::GetMap { map, kind } => Reply::Status(self.storage_mut().get_map(&map, kind, wall)?),
            Command::Flush => Reply::Count(self.storage_mut().flush()),
            Command::TakeEarlyWrites { map } => match self.storage_mut().take_early_map(&map) {
                Some(early) => Reply::Bytes(early.export()),
                None => return Err(Error::NothingHeld { map: excerpt(&map) }),
            },
            Command::Storage { answers } => {
                self.take_answers(answers)?;
                let store = self.storage_mut();
                let requests = core::iter::from_fn(|| store.poll_storage()).collect();
                let events = core::iter::from_fn(|| store.poll_event()).map(WireEvent::from).collect();
                Reply::Storage { requests, events }
            }
        })
    }

    /// Hands the storage adapter's answers to the storage manager. Every answer is taken even if
    /// one names no pending request; the first such error is reported after.
    pub(crate) fn take_answers(&mut self, answers: Vec<(u64, StorageResult)>) -> Result<(), Error> {
        let store = self.storage_mut();
        let mut unknown = None;
        for (id, result) in answers {
            if let Err(e) = store.handle_storage(id, result) {
                unknown.get_or_insert(e);
            }
        }
        unknown.map_or(Ok(()), Err)
    }

    fn existing(&self, name: &str) -> Result<&AnyMap, Error> {
        self.map(name).ok_or_else(|| unknown(name))
    }
}

fn unknown(name: &str) -> Error {
    Error::UnknownMap { name: excerpt(name) }
}
