//! The storage tests' fake adapter and the short forms of the writes they make through a
//! `StorageManager`.
#![allow(dead_code, unused_imports)]

use std::collections::BTreeMap;

use onegrid_core::codec::{decode_stored, encode_stored};
use onegrid_core::{
    AnyMap, ClockConfig, Command, Error, Grid, LwwRecord, MapKind, MapStatus, Merged, NodeId, OrRecord, Reply,
    StorageConfig, StorageEvent, StorageManager, StorageOp, StorageRequest, StorageResult, StoredValue, Timestamp,
    Value, WireEvent,
};

use super::{node, ts};

pub const WALL: u64 = 1_000;

pub fn lww_rec(value: Value, millis: u64, id: &str) -> LwwRecord {
    LwwRecord { value: Some(value), timestamp: ts(millis, 0, id), ttl_ms: None }
}

pub fn manager() -> StorageManager {
    StorageManager::new(node("me"), ClockConfig::default(), StorageConfig::default())
}

// The writes the tests make, through the maps the manager hands out.
pub fn set(m: &mut StorageManager, map: &str, key: &str, value: Value, ttl: Option<u64>) -> Result<Timestamp, Error> {
    let (map, clock) = m.lww_mut(map, WALL)?;
    map.set(clock, WALL, key, value, ttl)
}

pub fn merge(m: &mut StorageManager, map: &str, key: &str, record: LwwRecord) -> Result<Merged, Error> {
    let (map, clock) = m.lww_mut(map, WALL)?;
    map.merge(clock, WALL, key, record)
}

pub fn add(m: &mut StorageManager, map: &str, key: &str, value: Value, ttl: Option<u64>) -> Result<OrRecord, Error> {
    let (map, clock) = m.or_mut(map, WALL)?;
    map.add(clock, WALL, key, value, ttl)
}

pub fn or_remove(m: &mut StorageManager, map: &str, key: &str, value: &Value) -> Result<Vec<String>, Error> {
    m.or_mut(map, WALL)?.0.remove(key, value)
}

pub fn apply(m: &mut StorageManager, map: &str, key: &str, record: OrRecord) -> Result<Merged, Error> {
    let (map, clock) = m.or_mut(map, WALL)?;
    map.apply(clock, WALL, key, record)
}

/// A BTreeMap per map; counts calls, can hold answers back and fail on demand.
#[derive(Default)]
pub struct Fake {
    pub data: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// Every op seen, in order.
    pub calls: Vec<StorageOp>,
    /// Requests taken from the manager but not answered yet.
    pub held: Vec<StorageRequest>,
    /// Fail the next n loads (`LoadAllKeys` / `LoadAll`).
    pub fail_loads: usize,
    /// Fail the next n writes (`StoreAll` / `DeleteAll`).
    pub fail_writes: usize,
}

impl Fake {
    pub fn put(&mut self, map: &str, key: &str, value: &StoredValue) {
        self.data.entry(map.into()).or_default().insert(key.into(), encode_stored(value));
    }

    pub fn put_raw(&mut self, map: &str, key: &str, bytes: Vec<u8>) {
        self.data.entry(map.into()).or_default().insert(key.into(), bytes);
    }

    pub fn stored(&self, map: &str, key: &str) -> Option<StoredValue> {
        self.data.get(map)?.get(key).map(|b| decode_stored(b).expect("stored bytes decode"))
    }

    pub fn count(&self, f: impl Fn(&StorageOp) -> bool) -> usize {
        self.calls.iter().filter(|op| f(op)).count()
    }

    pub fn execute(&mut self, op: &StorageOp) -> StorageResult {
        self.calls.push(op.clone());
        let is_load = matches!(op, StorageOp::LoadAllKeys { .. } | StorageOp::LoadAll { .. });
        let fail = if is_load { &mut self.fail_loads } else { &mut self.fail_writes };
        if *fail > 0 {
            *fail -= 1;
            return StorageResult::Failed("disk on fire".into());
        }
        match op {
            StorageOp::LoadAllKeys { map } => {
                StorageResult::Keys(self.data.get(map).map(|m| m.keys().cloned().collect()).unwrap_or_default())
            }
            StorageOp::LoadAll { map, keys } => {
                let m = self.data.get(map);
                StorageResult::Values(keys.iter().filter_map(|k| Some((k.clone(), m?.get(k)?.clone()))).collect())
            }
            StorageOp::StoreAll { map, entries } => {
                let m = self.data.entry(map.clone()).or_default();
                for (k, v) in entries {
                    m.insert(k.clone(), v.clone());
                }
                StorageResult::Done
            }
            StorageOp::DeleteAll { map, keys } => {
                if let Some(m) = self.data.get_mut(map) {
                    for k in keys {
                        m.remove(k);
                    }
                }
                StorageResult::Done
            }
        }
    }

    /// Takes the manager's requests without answering them.
    pub fn hold(&mut self, m: &mut StorageManager) {
        while let Some(r) = m.poll_storage() {
            self.held.push(r);
        }
    }

    /// Answers held and new requests until the manager is quiet.
    pub fn run(&mut self, m: &mut StorageManager) {
        self.hold(m);
        while !self.held.is_empty() {
            for r in std::mem::take(&mut self.held) {
                let result = self.execute(&r.op);
                m.handle_storage(r.id, result).expect("pending request");
            }
            self.hold(m);
        }
    }
}

pub fn events(m: &mut StorageManager) -> Vec<StorageEvent> {
    std::iter::from_fn(|| m.poll_event()).collect()
}

/// What a load that loaded `count` keys reports: `on_map_loaded`, then the map is ready.
pub fn loaded(map: &str, count: usize, kind: MapKind) -> Vec<StorageEvent> {
    vec![StorageEvent::MapLoaded { map: map.into(), count }, StorageEvent::Ready { map: map.into(), kind }]
}

pub fn is_load_keys(op: &StorageOp) -> bool {
    matches!(op, StorageOp::LoadAllKeys { .. })
}

pub fn is_store(op: &StorageOp) -> bool {
    matches!(op, StorageOp::StoreAll { .. })
}

pub fn load(m: &mut StorageManager, fake: &mut Fake, name: &str, hint: Option<MapKind>) -> Vec<StorageEvent> {
    m.get_map(name, hint, WALL).expect("get_map");
    fake.run(m);
    events(m)
}
