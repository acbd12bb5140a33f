//! The sync simulation (`onegrid_tests::sim`) on every runtime of the module: natively, in wasmtime
//! (byte ABI) and in Node (JavaScript API). Same seed, same inputs, same times: each runtime must
//! converge, and emit the very same frames, states and final roots and snapshots as the others.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use onegrid_core::codec::{Snapshot, decode_snapshot};
use onegrid_core::sync::{Frame, SyncConfig};
use onegrid_host::{Runtime, RuntimeConfig, pkg};
use onegrid_tests::sim::abi::{AbiReplicas, Wasmtime};
use onegrid_tests::sim::net::simulate;
use onegrid_tests::sim::node::NodeReplicas;
use onegrid_tests::sim::{Outcome, Write, native};

/// The package the host embeds (the bytes wasmtime runs), written out for Node.
fn package() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("onegrid-sim-{}", std::process::id())).join("pkg");
    pkg::write(&dir).expect("write the package");
    dir
}

fn timed(f: impl FnOnce() -> Outcome) -> (Outcome, Duration) {
    let started = Instant::now();
    let outcome = f();
    (outcome, started.elapsed())
}

#[test]
fn every_runtime_runs_the_same_simulation() {
    let pkg = package();
    let runtime = Runtime::new(pkg::WASM, RuntimeConfig::default()).expect("load the module");
    for (replicas, seed) in [(3, 1), (3, 2), (4, 3)] {
        let (native, t_native) = timed(|| simulate(native::replicas(replicas, &[], SyncConfig::default()), seed, 2));
        let (wasmtime, t_wasmtime) = timed(|| simulate(AbiReplicas::new(Wasmtime::new(&runtime), replicas), seed, 2));
        let (node, t_node) = timed(|| simulate(NodeReplicas::new(&pkg, replicas), seed, 2));
        reaches_the_cases_it_is_for(&native, replicas);
        native.assert_same(&wasmtime, "wasmtime");
        native.assert_same(&node, "node");
        let (frames, bytes) = native.frames();
        eprintln!(
            "seed {seed}, {replicas} replicas: {} inputs, {frames} frames ({bytes} bytes, digest {:016x}) alike; \
             native {} ms, wasmtime {} ms, node {} ms",
            native.steps.len(),
            native.digest(),
            t_native.as_millis(),
            t_wasmtime.as_millis(),
            t_node.as_millis()
        );
    }
    let _ = std::fs::remove_dir_all(pkg.parent().expect("the run's folder"));
}

/// A run that compares runtimes must exercise what can differ between them: handshakes, pushes
/// and acknowledgements, Merkle catch-ups down to records, dropped links and their reconnects,
/// writes of every kind, and records that reach a replica more than once (relayed, and re-sent
/// after a drop).
fn reaches_the_cases_it_is_for(outcome: &Outcome, replicas: usize) {
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut sent, mut distinct) = (0, BTreeSet::new());
    for frame in outcome.steps.iter().flat_map(|s| &s.news).flat_map(|n| &n.frames) {
        let frame = Frame::decode(frame, usize::MAX).expect("the runtimes send frames that decode");
        let kind = match &frame {
            Frame::Hello { .. } => "hello",
            Frame::Welcome { .. } => "welcome",
            Frame::Ack { .. } => "ack",
            Frame::Writes { .. } => "writes",
            Frame::Root { .. } => "root",
            Frame::Children { .. } => "children",
            Frame::Pull { .. } => "pull",
            Frame::Records { .. } => "records",
            _ => "other",
        };
        *kinds.entry(kind).or_default() += 1;
        if let Frame::Writes { map, payload } | Frame::Records { map, payload, .. } = &frame {
            let tags: Vec<String> = match decode_snapshot(payload).expect("a payload") {
                Snapshot::Lww(rs) => rs.into_iter().map(|(k, r)| format!("{k}@{}", r.timestamp)).collect(),
                Snapshot::Or { keys, tombstones } => {
                    let adds = keys.into_iter().flat_map(|(_, rs)| rs).map(|r| r.timestamp.to_string());
                    adds.chain(tombstones.iter().map(|t| format!("-{t}"))).collect()
                }
            };
            sent += tags.len();
            distinct.extend(tags.into_iter().map(|t| format!("{map}/{t}")));
        }
    }
    for kind in ["hello", "welcome", "ack", "writes", "root", "children", "pull", "records"] {
        assert!(kinds.get(kind).is_some_and(|n| *n > 0), "no {kind} frame was sent: {kinds:?}");
    }
    let count = |prefix: &str| outcome.steps.iter().filter(|s| s.input.starts_with(prefix)).count();
    let links = replicas * (replicas - 1) / 2;
    assert!(count("close") >= 10, "{} connections closed", count("close"));
    assert!(count("open") >= links + 5, "{} connections opened", count("open"));
    let writes: Vec<&Write> = outcome.steps.iter().filter_map(|s| s.write.as_ref()).collect();
    let has = |f: fn(&Write) -> bool| writes.iter().any(|w| f(w));
    assert!(has(|w| matches!(w, Write::Lww(_))) && has(|w| matches!(w, Write::Add(_))), "{writes:?}");
    assert!(has(|w| matches!(w, Write::Removed(tags) if !tags.is_empty())), "no OR remove removed anything");
    // Every record reaches the other replicas at least once: more than that is a duplicate.
    assert!(sent > distinct.len() * (replicas - 1), "{sent} records sent, {} distinct: no duplicates", distinct.len());
}
