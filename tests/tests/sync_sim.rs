//! Deterministic simulations of sync (`onegrid_tests::sim`) on the native core: replicas writing
//! both kinds of map at random, over links that delay, partition and drop, always converge to
//! identical roots and snapshots once healed and quiet; no write is lost, and no acknowledgement
//! leaves a replica with storage before what it covers is stored. (`sync_runtimes.rs` runs the
//! same simulation in wasmtime and in Node.)

use onegrid_core::sync::SyncConfig;
use onegrid_tests::sim::native;
use onegrid_tests::sim::net::simulate;

/// Percent chance per step that an up link drops.
const DROPS: u64 = 2;

fn run(replicas: usize, persistent: &[usize], seed: u64, config: SyncConfig) {
    simulate(native::replicas(replicas, persistent, config), seed, DROPS);
}

#[test]
fn two_replicas_converge() {
    for seed in 1..=20 {
        run(2, &[], seed, SyncConfig::default());
    }
}

#[test]
fn three_replicas_converge() {
    for seed in 1..=12 {
        run(3, &[], seed, SyncConfig::default());
    }
}

#[test]
fn five_replicas_converge() {
    for seed in 1..=4 {
        run(5, &[], seed, SyncConfig::default());
    }
}

#[test]
fn replicas_with_storage_converge_and_acknowledge_only_what_is_stored() {
    for seed in 1..=10 {
        run(3, &[0, 2], seed, SyncConfig::default());
    }
}

#[test]
fn one_flush_at_a_time_or_many_in_flight_acknowledge_only_what_is_stored() {
    for flushes in [1, 8] {
        let config = SyncConfig { flushes, ..SyncConfig::default() };
        for seed in 1..=6 {
            run(3, &[0, 1, 2], seed, config);
        }
    }
}

#[test]
fn small_frames_and_a_short_log_converge() {
    let config = SyncConfig { frame_limit: 600, log_limit: 8, ..SyncConfig::default() };
    for seed in 1..=10 {
        run(3, &[1], seed, config);
    }
}
