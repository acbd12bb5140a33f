//! Every scenario on every engine: byte-identical snapshots, equal roots, equal outcomes.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use onegrid_core::ErrorKind;
use onegrid_host::{Runtime, RuntimeConfig, pkg};
use onegrid_tests::engines::{Final, Observed, Outcome, Transcript, run_native, run_node, run_wasmtime, run_workerd};
use onegrid_tests::generate::{edge_cases, random, random_many_keys};
use onegrid_tests::scenario::{Compiled, Op, Pin, Scenario};
use onegrid_tests::workerd::Workerd;

/// A folder for this run: the JavaScript package (the bytes the host runs) and scenario files.
fn workdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("onegrid-conformance-{}", std::process::id()));
    pkg::write(&dir.join("pkg")).expect("write the package");
    dir
}

fn same_outcome(a: &Outcome, b: &Outcome) -> bool {
    match (a, b) {
        (Outcome::Ok(x), Outcome::Ok(y)) => x == y,
        // The JS API checks some arguments before the module sees them, in its own words, but
        // with the same code.
        (Outcome::Err(x), Outcome::Err(y)) => x.code == y.code,
        _ => false,
    }
}

fn check(scenario: &Scenario, runtime: &Runtime, workerd: &mut Workerd, work: &std::path::Path) -> Duration {
    let compiled = scenario.compile();
    let native = run_native(scenario, &compiled);
    let wasmtime = run_wasmtime(runtime, scenario, &compiled);
    let (node_abi, node_api) = run_node(&work.join("pkg"), scenario, &compiled, work);
    let started = Instant::now();
    let (workerd_abi, workerd_api) = run_workerd(workerd, scenario, &compiled);
    let in_workerd = started.elapsed();
    let name = &scenario.name;
    for (engine, other) in [("wasmtime", &wasmtime), ("node-abi", &node_abi), ("workerd-abi", &workerd_abi)] {
        assert_eq!(
            native.replies.len(),
            other.replies.len(),
            "{name}: {engine} answered a different number of requests"
        );
        for (i, (a, b)) in native.replies.iter().zip(&other.replies).enumerate() {
            assert_eq!(a, b, "{name}: reply {i} differs between native and {engine}");
        }
        assert_eq!(native, *other, "{name}: {engine} transcript differs");
    }
    compare_api(name, "node-api", &native, &node_api);
    compare_api(name, "workerd-api", &native, &workerd_api);
    // One runner, two engines: where the API's own checks answer, their words must agree too.
    assert_eq!(node_api, workerd_api, "{name}: workerd-api and node-api differ");
    assert!(native.finals.iter().any(|f| f.snapshot.is_some()), "{name}: the scenario left no map to compare");
    if scenario.converges {
        assert_converged(scenario, &compiled, &native);
    }
    for (i, pin) in &scenario.pins {
        let found = match &native.steps[*i] {
            Outcome::Ok(Observed::Value(v)) => v.is_some(),
            other => panic!("{name}: pinned step {i} is {other:?}"),
        };
        assert_eq!(found, *pin == Pin::Live, "{name}: step {i} should be {pin:?}");
    }
    in_workerd
}

/// Every replica ends with the same snapshot bytes and root of every map, and has every map.
fn assert_converged(scenario: &Scenario, compiled: &Compiled, transcript: &Transcript) {
    for (map, _) in &scenario.maps {
        let finals: Vec<&Final> =
            compiled.finals.iter().zip(&transcript.finals).filter(|((_, m, _), _)| m == map).map(|(_, f)| f).collect();
        assert!(finals[0].snapshot.is_some(), "{}: map {map} missing", scenario.name);
        for (replica, other) in finals.iter().enumerate().skip(1) {
            assert_eq!(*other, finals[0], "{}: replica {replica} differs from replica 0 in map {map}", scenario.name);
        }
    }
}

fn compare_api(name: &str, engine: &str, native: &Transcript, api: &Transcript) {
    assert_eq!(native.steps.len(), api.steps.len(), "{name}: {engine} ran a different number of steps");
    for (i, (a, b)) in native.steps.iter().zip(&api.steps).enumerate() {
        assert!(same_outcome(a, b), "{name}: step {i} differs: native {a:?}, {engine} {b:?}");
    }
    assert_eq!(native.finals, api.finals, "{name}: {engine} final snapshots or roots differ");
}

#[test]
fn every_engine_agrees_on_every_scenario() {
    let work = workdir();
    let runtime = Runtime::new(pkg::WASM, RuntimeConfig::default()).expect("load the module");
    // One workerd for the whole run (killed when dropped, also when a check fails).
    let started = Instant::now();
    let mut workerd = Workerd::start(&work.join("pkg"), &work);
    let mut in_workerd = started.elapsed();
    let mut scenarios = edge_cases();
    scenarios.extend([1, 2, 3].map(|seed| random(seed, 2_000)));
    scenarios.extend([4, 5].map(|seed| random_many_keys(seed, 1_500)));
    for scenario in &scenarios {
        in_workerd += check(scenario, &runtime, &mut workerd, &work);
    }
    eprintln!(
        "conformance: {} scenarios agree on native, wasmtime, node-abi, node-api, workerd-abi and workerd-api \
         ({}: {} ms)",
        scenarios.len(),
        workerd.version,
        in_workerd.as_millis()
    );
    drop(workerd);
    let _ = std::fs::remove_dir_all(&work);
}

/// The random scenarios reach what their generator is there for: drift reported and refused, TTL
/// boundaries, floats that are whole numbers or -0, and maps big enough for dense Merkle levels.
#[test]
fn random_scenarios_reach_the_cases_they_are_for() {
    let random = [1, 2, 3].map(|seed| random(seed, 2_000));
    let many = [4, 5].map(|seed| random_many_keys(seed, 1_500));
    let (mut reported, mut refused, mut pins, mut whole) = (0, 0, 0, 0);
    for scenario in random.iter().chain(&many) {
        let run = run_native(scenario, &scenario.compile());
        for outcome in &run.steps {
            match outcome {
                Outcome::Ok(Observed::Imported { drifts, .. }) if !drifts.is_empty() => reported += 1,
                outcome if outcome.failed_with(ErrorKind::ClockDrift) => refused += 1,
                _ => {}
            }
        }
        pins += scenario.pins.len();
        whole +=
            scenario.steps.iter().filter(|s| matches!(&s.op, Op::Set { value, .. } if is_whole_float(value))).count();
    }
    assert!(reported >= 50 && refused >= 50, "drift: {reported} imports reported it, {refused} refused it");
    assert!(pins >= 60, "{pins} TTL boundary probes");
    assert!(whole >= 30, "{whole} sets of whole-number floats");
    for scenario in &many {
        let run = run_native(scenario, &scenario.compile());
        let leaves = |bytes: &[u8]| -> usize {
            let keys: Vec<String> = match onegrid_core::codec::decode_snapshot(bytes).expect("a snapshot") {
                onegrid_core::codec::Snapshot::Lww(records) => records.into_iter().map(|(k, _)| k.into()).collect(),
                onegrid_core::codec::Snapshot::Or { keys, .. } => keys.into_iter().map(|(k, _)| k.into()).collect(),
            };
            keys.iter().map(|k| onegrid_core::fnv1a(k) >> 20).collect::<std::collections::BTreeSet<_>>().len()
        };
        for (map, fin) in run.finals.iter().take(scenario.maps.len()).enumerate() {
            let used = leaves(fin.snapshot.as_deref().expect("every map exists"));
            assert!(used > 256, "{}: map {map} uses {used} leaves, not enough for dense levels", scenario.name);
        }
    }
}

/// A whole-number float, as the generator writes them: 0 (from -0.0 too) and integers of safe
/// magnitude become `Int`, beyond 2^53 they stay `Float`.
fn is_whole_float(value: &onegrid_core::Value) -> bool {
    matches!(value, onegrid_core::Value::Float(f) if f.fract() == 0.0)
}

#[test]
fn edge_cases_behave_as_the_spec_says() {
    use onegrid_core::Value;
    use onegrid_tests::engines::Observed;
    let scenarios = edge_cases();
    let outcomes = |name: &str| {
        let s = scenarios.iter().find(|s| s.name == name).expect("scenario exists");
        run_native(s, &s.compile())
    };
    let ok = |v: &str| Outcome::Ok(Observed::Value(Some(Value::from(v))));
    let tie = outcomes("tie-by-node-id");
    assert_eq!(tie.steps[4], ok("from b"));
    assert_eq!(tie.steps[5], ok("from b"));
    let equal = outcomes("equal-timestamps-rejected");
    let imported = |changed| Outcome::Ok(Observed::Imported { changed, drifts: vec![] });
    let int = |i: i64| Outcome::Ok(Observed::Value(Some(Value::Int(i))));
    assert_eq!(equal.steps[1..3], [imported(1), imported(0)], "the same record twice");
    assert_eq!(equal.steps[3..5], [imported(0), int(1)], "another value at the same timestamp is refused");
    assert_eq!(equal.steps[5..8], [imported(1), imported(0), int(2)], "whichever came first stays");
    assert_eq!(equal.steps[8..], [imported(0), int(1)]);
    let resurrection = outcomes("tombstone-resurrection");
    assert_eq!(resurrection.steps[4], imported(1));
    assert_eq!(resurrection.steps[5], Outcome::Ok(Observed::Value(None)), "the newer tombstone wins");
    assert_eq!(resurrection.steps[7], imported(1));
    assert_eq!(resurrection.steps[8], int(3), "the newer write wins over the tombstone");
    assert_eq!(resurrection.steps[9], Outcome::Ok(Observed::Count(0)), "no tombstone is left to prune");
    let ttl = outcomes("ttl-boundary");
    assert_eq!(ttl.steps[1], ok("v"));
    assert_eq!(ttl.steps[2], Outcome::Ok(Observed::Value(None)));
    assert_eq!(ttl.steps[3], imported(1), "expired records still sync");
    assert_eq!(ttl.steps[4], Outcome::Ok(Observed::Value(None)), "and stay expired");
    let remove_first = outcomes("remove-before-add");
    assert_eq!(remove_first.steps[2], Outcome::Ok(Observed::Tags(vec!["100:0:a".into()])));
    assert_eq!(remove_first.steps[3], imported(1), "the tombstone alone");
    assert_eq!(remove_first.steps[4], imported(0), "the add it removes is refused");
    assert_eq!(remove_first.steps[5], Outcome::Ok(Observed::Values(vec![])));
    let concurrent = outcomes("concurrent-add-remove");
    assert_eq!(concurrent.steps[6], Outcome::Ok(Observed::Values(vec![Value::from("x")])));
    assert_eq!(concurrent.steps[7], concurrent.steps[6]);
    let readd = outcomes("remove-readd-root");
    assert_eq!(readd.steps[4], Outcome::Ok(Observed::Tags(vec!["102:0:a".into()])));
    assert_eq!(readd.steps[6], Outcome::Ok(Observed::Count(1)), "the tombstone is forgotten");
    assert_eq!(readd.steps[7], imported(1), "the same record comes back");
    assert_eq!(readd.steps[8], Outcome::Ok(Observed::Values(vec![Value::from("v")])));
    let root = |replica: usize| readd.finals[replica].root.expect("a root");
    assert_eq!(root(0), root(1), "re-adding the removed record gives the earlier root again");
    assert_eq!(root(2), root(3), "a key with no live records leaves no trace");
    assert_ne!(root(0), root(2));
    let structural = outcomes("structural-remove");
    assert!(
        matches!(&structural.steps[2], Outcome::Ok(Observed::Tags(t)) if t.len() == 1),
        "{:?}",
        structural.steps[2]
    );
    let kept = Value::map([("a", Value::list([Value::Null])), ("b", Value::from(2))]).expect("a map");
    assert_eq!(structural.steps[3], Outcome::Ok(Observed::Values(vec![kept])));
    let types = outcomes("every-value-type");
    assert_eq!(types.steps[11], int(i64::MIN));
    let emoji = Value::map([("😀", Value::from(1)), ("\u{ff5e}", Value::Bool(true))]).expect("a map");
    assert_eq!(types.steps[12], Outcome::Ok(Observed::Value(Some(emoji))));
    let or_emoji = Value::map([("😀", Value::from(1)), ("\u{ff5e}", Value::Float(0.1))]).expect("a map");
    assert_eq!(types.steps[13], Outcome::Ok(Observed::Values(vec![or_emoji, Value::Int(i64::MAX)])));
    let drift = outcomes("strict-drift");
    assert!(drift.steps[1].failed_with(ErrorKind::ClockDrift), "{:?}", drift.steps[1]);
    assert_eq!(drift.steps[2], Outcome::Ok(Observed::Value(None)), "nothing of the refused snapshot applied");
    assert_eq!(drift.steps[3], imported(1));
    let bad = outcomes("bad-input");
    assert_eq!(bad.steps[0], Outcome::Ok(Observed::Nothing));
    let codes: Vec<_> =
        bad.steps[1..4].iter().map(|o| if let Outcome::Err(e) = o { e.code.as_str() } else { "ok" }).collect();
    assert_eq!(codes, ["INVALID_ARGUMENT", "INVALID_ARGUMENT", "KIND_MISMATCH"], "{:?}", bad.steps);
    assert_eq!(bad.steps[4], Outcome::Ok(Observed::Tag("101:0:a".into())));
    assert_eq!(bad.steps[5], Outcome::Ok(Observed::Nothing), "b's map o is an LWW map");
    assert!(bad.steps[6].failed_with(ErrorKind::KindMismatch), "{:?}", bad.steps[6]);
    assert!(bad.steps[7].failed_with(ErrorKind::NotFound), "{:?}", bad.steps[7]);
    review_cases_behave_as_the_spec_says(&outcomes);
}

/// The expected outcomes of the review's cases (issue 11), pinned, not only agreed on.
fn review_cases_behave_as_the_spec_says(outcomes: &dyn Fn(&str) -> Transcript) {
    use onegrid_core::Value;
    use onegrid_tests::engines::Observed;
    let max = outcomes("clock-at-u64-max");
    let far = format!("{}:{}:x", u64::MAX, u32::MAX - 2);
    assert_eq!(max.steps[0], Outcome::Ok(Observed::Imported { changed: 1, drifts: vec![far] }), "lenient: reported");
    assert_eq!(max.steps[1], Outcome::Ok(Observed::Nothing), "the counter advances at millis u64::MAX");
    assert!(max.steps[2].failed_with(ErrorKind::ClockExhausted), "{:?}", max.steps[2]);
    assert_eq!(max.steps[3], Outcome::Ok(Observed::Value(Some(Value::from(1)))), "the later write won");
    assert!(max.steps[4].failed_with(ErrorKind::ClockDrift), "strict: {:?}", max.steps[4]);
    assert!(max.steps[5].failed_with(ErrorKind::ClockExhausted), "{:?}", max.steps[5]);
    assert_eq!(max.steps[6], Outcome::Ok(Observed::Nothing), "the refused import changed nothing");
    let or = outcomes("or-remove-canonical-value");
    assert!(matches!(&or.steps[1], Outcome::Ok(Observed::Tags(t)) if t.len() == 1), "{:?}", or.steps[1]);
    assert!(or.steps[2].failed_with(ErrorKind::InvalidValue), "NaN: {:?}", or.steps[2]);
    assert_eq!(or.steps[4], Outcome::Ok(Observed::Tags(vec![])), "2^60 as a float is not the integer 2^60");
    assert_eq!(or.steps[5], Outcome::Ok(Observed::Values(vec![Value::Int(1 << 60)])));
    assert!(matches!(&or.steps[6], Outcome::Ok(Observed::Tags(t)) if t.len() == 1));
    let reserved = outcomes("reserved-key-reads");
    assert!(reserved.steps[2..].iter().all(|o| o.failed_with(ErrorKind::InvalidArgument)), "{:?}", reserved.steps);
    let order = outcomes("or-merge-oldest-first");
    assert_eq!(order.steps[7], Outcome::Ok(Observed::Tag("500:7:y".into())), "the clock after the merge");
    let floats = outcomes("whole-floats-are-integers");
    assert_eq!(floats.steps[5], Outcome::Ok(Observed::Value(Some(Value::Int(3)))));
    assert_eq!(floats.steps[6], Outcome::Ok(Observed::Value(Some(Value::Int(0)))));
    assert_eq!(floats.steps[7], Outcome::Ok(Observed::Values(vec![Value::Int(4)])));
    assert!(matches!(&floats.steps[8], Outcome::Ok(Observed::Tags(t)) if t.len() == 1));
    let text = outcomes("awkward-text");
    assert_eq!(text.steps[5], Outcome::Ok(Observed::Value(Some(Value::from("\u{feff}abc")))));
    let nul = Value::map([("\u{feff}", Value::from("\u{0}😀"))]).expect("a map");
    assert_eq!(text.steps[6], Outcome::Ok(Observed::Value(Some(nul))));
    assert_eq!(text.steps[7], Outcome::Ok(Observed::Values(vec![Value::from("\u{feff}")])));
}
