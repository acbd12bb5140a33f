//! What the core's tests share: short forms of node ids, timestamps and clocks, (in [`storage`])
//! a fake storage adapter that counts, holds and fails calls, and (in [`pair`]) two grids synced.
#![allow(dead_code, unused_imports)]

pub mod pair;
pub mod storage;

use onegrid_core::{ClockConfig, Hlc, NodeId, Timestamp};

pub fn node(id: &str) -> NodeId {
    NodeId::new(id).expect("node")
}

pub fn ts(millis: u64, counter: u32, id: &str) -> Timestamp {
    Timestamp::new(millis, counter, node(id))
}

/// A clock for `id` with the default (lenient) drift settings.
pub fn clock(id: &str) -> Hlc {
    Hlc::new(node(id), ClockConfig::default())
}
