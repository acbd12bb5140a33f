//! Durability of sync through `onegrid serve`: every write a client saw acknowledged (its hub's
//! `is_acked`) is in the server's SQLite file after a SIGKILL, cycle after cycle, with two
//! clients writing both kinds of map as fast as they can. Prints acknowledged writes per second
//! and the acknowledgement latency.
// In tests a panic is the failure report: unwrap means "this must succeed".
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/sync.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{fresh_dir, runtime};
use onegrid_core::codec::decode_snapshot;
use onegrid_core::{Command, MapKind, Reply, Snapshot, Value};
use onegrid_host::PersistentGrid;
use support::{Peer, Server, sqlite};

const CYCLES: usize = 15;

/// A write a client made: its map, key and value, when, and the log position after it.
struct Write {
    map: &'static str,
    key: String,
    value: i64,
    at: Instant,
    marker: u64,
}

/// What the SQLite file holds: per LWW key its value, per OR key its values.
fn stored(db: &str) -> (BTreeMap<String, Value>, BTreeMap<String, BTreeSet<String>>) {
    let storage = onegrid_host::storage::open(db).unwrap();
    let mut grid = PersistentGrid::open(runtime(), "checker", storage).unwrap();
    let mut lww = BTreeMap::new();
    let mut or = BTreeMap::new();
    for (map, kind) in [("lww", MapKind::Lww), ("or", MapKind::Or)] {
        if grid.get_map(map, Some(kind)).is_err() {
            continue;
        }
        let Reply::Bytes(bytes) = grid.call(Command::Export { map: map.into() }).unwrap() else { panic!("export") };
        match decode_snapshot(&bytes).unwrap() {
            Snapshot::Lww(records) => {
                for (key, record) in records {
                    if let Some(value) = record.value {
                        lww.insert(key.to_string(), value);
                    }
                }
            }
            Snapshot::Or { keys, .. } => {
                for (key, records) in keys {
                    let values = records.iter().map(|r| r.value.to_canonical_json()).collect();
                    or.insert(key.to_string(), values);
                }
            }
        }
    }
    (lww, or)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_a_sigkill_over_many_cycles() {
    let dir = fresh_dir("sync-sigkill");
    let db = sqlite(&dir);
    let mut writers = [Peer::new("w0"), Peer::new("w1")];
    // ONEGRID_SYNC_TRACE=1 keeps every frame each writer sent and received, shown on a failure.
    let trace = std::env::var_os("ONEGRID_SYNC_TRACE").is_some();
    let mut waiting: [Vec<Write>; 2] = [Vec::new(), Vec::new()];
    let mut acked: Vec<Write> = Vec::new();
    let mut latencies: Vec<Duration> = Vec::new();
    let mut writing = Duration::ZERO;
    let mut next = 0i64;
    for cycle in 0..CYCLES {
        let server = Server::start(&db, &[]);
        for w in &mut writers {
            w.trace = trace.then(Vec::new);
            w.connect(&server.url(), None).await;
        }
        // Write for a while (varied, so the kill lands anywhere in a flush), then kill.
        let span = Duration::from_millis(200 + (cycle as u64 * 137) % 400);
        let started = Instant::now();
        while started.elapsed() < span {
            for (n, w) in writers.iter_mut().enumerate() {
                for _ in 0..5 {
                    next += 1;
                    let key = format!("c{cycle}-w{n}-{next}");
                    let map = if next % 3 == 0 { "or" } else { "lww" };
                    if map == "or" {
                        w.add(map, &key, next);
                    } else {
                        w.set(map, &key, next);
                    }
                    let marker = w.marker();
                    waiting[n].push(Write { map, key, value: next, at: Instant::now(), marker });
                }
                w.step(Duration::from_millis(1)).await;
                let (done, still): (Vec<Write>, Vec<Write>) =
                    std::mem::take(&mut waiting[n]).into_iter().partition(|x| w.is_acked(x.marker));
                waiting[n] = still;
                latencies.extend(done.iter().map(|x| x.at.elapsed()));
                acked.extend(done);
            }
        }
        writing += started.elapsed();
        let log = server.log();
        server.kill();

        let (lww, or) = stored(&db);
        for x in &acked {
            let found = match x.map {
                "lww" => lww.get(&x.key) == Some(&Value::from(x.value)),
                _ => or.get(&x.key).is_some_and(|v| v.contains(&Value::from(x.value).to_canonical_json())),
            };
            if !found {
                let n: usize = x.key.split("-w").nth(1).unwrap().split('-').next().unwrap().parse().unwrap();
                if let Some(trace) = writers[n].trace.as_ref() {
                    eprintln!("the frames of w{n}:\n{}", trace.join("\n"));
                }
            }
            assert!(
                found,
                "cycle {cycle}: acknowledged write {}/{} = {} (marker {}) is not stored; {} acked; the server's log:\n{log}",
                x.map,
                x.key,
                x.value,
                x.marker,
                acked.len()
            );
        }
        for w in &mut writers {
            w.disconnect();
        }
    }
    assert!(acked.len() > 1_000, "only {} writes were acknowledged", acked.len());

    // And after a last start, the writes never acknowledged arrive too: nothing is lost.
    let server = Server::start(&db, &[]);
    for w in &mut writers {
        w.connect(&server.url(), None).await;
    }
    let start = Instant::now();
    while writers.iter().any(|w| !w.synced() || w.pending() > 0) {
        assert!(start.elapsed() < Duration::from_secs(30), "the last writes were not acknowledged");
        for w in &mut writers {
            w.step(Duration::from_millis(5)).await;
        }
    }
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    let (lww, or) = stored(&db);
    assert_eq!(lww.len() + or.len(), next as usize, "every write of every cycle is stored");

    latencies.sort();
    let median = latencies[latencies.len() / 2];
    let p99 = latencies[latencies.len() * 99 / 100];
    println!(
        "{} writes acknowledged in {:.2} s of writing over {CYCLES} SIGKILL cycles: {:.0} acknowledged writes/s; \
         acknowledgement latency median {:.1} ms, p99 {:.1} ms",
        acked.len(),
        writing.as_secs_f64(),
        acked.len() as f64 / writing.as_secs_f64(),
        median.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
    );
}
