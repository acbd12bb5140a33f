//! Deterministic simulations of sync (see `common/sim.rs`): replicas writing both kinds of map
//! at random, over links that delay, partition and drop, always converge to identical roots and
//! snapshots once healed and quiet; no write is lost, and no acknowledgement leaves a replica
//! with storage before what it covers is stored.

mod common;

use common::sim::Net;
use onegrid_core::sync::SyncConfig;

fn run(replicas: usize, persistent: &[usize], seed: u64, config: SyncConfig) {
    let mut net = Net::new(replicas, persistent, seed, config);
    net.drop_percent = 2;
    for round in 0..6 {
        for _ in 0..40 {
            if net.rng.chance(60) {
                let r = net.rng.below(replicas as u64) as usize;
                net.random_write(r);
            }
            if net.rng.chance(3) {
                let l = net.rng.below(net.links.len() as u64) as usize;
                net.partition(l);
            }
            if net.rng.chance(2) {
                net.heal();
            }
            net.step();
        }
        if round % 2 == 1 {
            net.settle(3_000);
            net.assert_converged();
        }
    }
    net.settle(3_000);
    net.assert_converged();
    assert!(net.early_acks.is_empty(), "{:#?}", net.early_acks);
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
fn small_frames_and_a_short_log_converge() {
    let config = SyncConfig { frame_limit: 600, log_limit: 8 };
    for seed in 1..=10 {
        run(3, &[1], seed, config);
    }
}
