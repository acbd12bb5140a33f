//! The native [`Backend`]: the core's `Replica` (a `Grid` and its `Hub`, as the module keeps each
//! grid behind the byte ABI) compiled for this machine, so its commands run exactly as the
//! module's do. Some replicas may have storage: an in-memory [`MemStore`] whose requests are
//! answered a little later than asked, in order, and which the acknowledgements are checked
//! against (SPEC section 8: a write is acknowledged only once it is durable).

use std::collections::BTreeMap;

use onegrid_core::codec::decode_stored;
use onegrid_core::sync::SyncConfig;
use onegrid_core::{
    ClockConfig, Command, Grid, NodeId, Replica, Reply, StorageConfig, StorageRequest, StoredValue, Timestamp,
    WireError,
};
use onegrid_host::storage::{Storage, StorageError, execute};

use super::abi::{AbiReplicas, Backend};
use super::{Received, Rng};

/// Native replicas; those in `persistent` have storage. `config` is every hub's.
pub fn replicas(n: usize, persistent: &[usize], config: SyncConfig) -> AbiReplicas<Native> {
    AbiReplicas::new(Native { replicas: Vec::new(), persistent: persistent.to_vec(), config }, n)
}

/// See the [module docs](self).
pub struct Native {
    replicas: Vec<(Replica, Option<Stored>)>,
    persistent: Vec<usize>,
    config: SyncConfig,
}

/// A replica's storage: what it holds, and the requests taken but not answered yet.
#[derive(Default)]
struct Stored {
    store: MemStore,
    held: Vec<StorageRequest>,
}

impl Backend for Native {
    fn name(&self) -> &str {
        "native"
    }

    fn open(&mut self, r: usize, node_id: &str) -> u32 {
        let id = NodeId::new(node_id).expect("a node id");
        let (grid, stored) = if self.persistent.contains(&r) {
            (Grid::with_storage(id, ClockConfig::default(), StorageConfig::default()), Some(Stored::default()))
        } else {
            (Grid::new(id, ClockConfig::default()), None)
        };
        self.replicas.push((Replica::with_config(grid, self.config), stored));
        u32::try_from(self.replicas.len() - 1).expect("few replicas")
    }

    fn call(&mut self, handle: u32, now: u64, command: Command) -> Reply {
        let (replica, _) = &mut self.replicas[handle as usize];
        replica.execute(now, command).unwrap_or_else(|e| Reply::Error(WireError::from(&e)))
    }

    fn storage(&mut self, r: usize, handle: u32, now: u64, rng: &mut Rng, all: bool) -> bool {
        if self.replicas[r].1.is_none() {
            return false;
        }
        // Takes the new requests, then answers some of the held ones (in order: a later write may
        // hold newer values) and takes the requests that follow.
        let run = |this: &mut Self, answers| match this.call(handle, now, Command::Storage { answers }) {
            Reply::Storage { requests, .. } => this.replicas[r].1.as_mut().expect("storage").held.extend(requests),
            other => panic!("native: Storage answered {other:?}"),
        };
        run(self, Vec::new());
        let stored = self.replicas[r].1.as_mut().expect("storage");
        let count = if all { stored.held.len() } else { rng.below(stored.held.len() as u64 + 1) as usize };
        let answers: Vec<_> =
            stored.held.drain(..count).map(|request| (request.id, execute(&mut stored.store, &request.op))).collect();
        if !answers.is_empty() {
            run(self, answers);
        }
        true
    }

    fn idle(&self, r: usize) -> bool {
        self.replicas[r].1.as_ref().is_none_or(|s| s.held.is_empty())
    }

    fn early_acks(&self, r: usize, received: &[Vec<(String, Received)>], upto: u64) -> Vec<String> {
        let Some(stored) = &self.replicas[r].1 else { return Vec::new() };
        let store = &stored.store;
        let mut early = Vec::new();
        for frame in received.iter().take(upto as usize) {
            for (map, record) in frame {
                if !store.holds(map, record) {
                    early.push(format!("replica {r}, {map}: {record:?} acknowledged before it was stored"));
                }
            }
        }
        early
    }
}

/// An in-memory storage adapter: a sorted map of keys to stored bytes per map.
#[derive(Default)]
pub struct MemStore {
    maps: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
}

impl MemStore {
    /// What `key` of `map` holds, decoded.
    pub fn stored(&self, map: &str, key: &str) -> Option<StoredValue> {
        self.maps.get(map)?.get(key).map(|b| decode_stored(b).expect("stored bytes decode"))
    }

    fn tombstones(&self, map: &str) -> Vec<Timestamp> {
        match self.stored(map, onegrid_core::RESERVED_KEY) {
            Some(StoredValue::OrTombstones(tags)) => tags,
            _ => Vec::new(),
        }
    }

    /// True when the store holds `record` of `map`, or something newer.
    fn holds(&self, map: &str, record: &Received) -> bool {
        match record {
            Received::Lww(key, ts) => matches!(self.stored(map, key), Some(StoredValue::Lww(r)) if r.timestamp >= *ts),
            Received::Or(tag) => {
                self.tombstones(map).contains(tag)
                    || self.maps.get(map).is_some_and(|m| {
                        m.keys().any(|k| {
                            matches!(self.stored(map, k), Some(StoredValue::Or(rs)) if rs.iter().any(|r| r.timestamp == *tag))
                        })
                    })
            }
            Received::Tomb(tag) => self.tombstones(map).contains(tag),
        }
    }
}

impl Storage for MemStore {
    fn load_all_keys(&mut self, map: &str) -> Result<Vec<String>, StorageError> {
        Ok(self.maps.get(map).map(|m| m.keys().cloned().collect()).unwrap_or_default())
    }

    fn load_all(&mut self, map: &str, keys: &[String]) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let m = self.maps.get(map);
        Ok(keys.iter().filter_map(|k| Some((k.clone(), m?.get(k)?.clone()))).collect())
    }

    fn store(&mut self, map: &str, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.maps.entry(map.into()).or_default().insert(key.into(), value.to_vec());
        Ok(())
    }

    fn store_all(&mut self, map: &str, entries: &[(String, Vec<u8>)]) -> Result<(), StorageError> {
        let m = self.maps.entry(map.into()).or_default();
        for (k, v) in entries {
            m.insert(k.clone(), v.clone());
        }
        Ok(())
    }

    fn delete(&mut self, map: &str, key: &str) -> Result<(), StorageError> {
        self.maps.get_mut(map).map(|m| m.remove(key));
        Ok(())
    }

    fn delete_all(&mut self, map: &str, keys: &[String]) -> Result<(), StorageError> {
        if let Some(m) = self.maps.get_mut(map) {
            for k in keys {
                m.remove(k);
            }
        }
        Ok(())
    }
}
