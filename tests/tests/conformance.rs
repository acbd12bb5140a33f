//! Every scenario on every engine: byte-identical snapshots, equal roots, equal outcomes.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use onegrid_host::{Runtime, RuntimeConfig, pkg};
use onegrid_tests::engines::{Outcome, Transcript, run_native, run_node, run_wasmtime, run_workerd};
use onegrid_tests::generate::{edge_cases, random};
use onegrid_tests::scenario::Scenario;
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
        // The JS API checks some arguments before the module sees them, with its own words.
        (Outcome::Err(_), Outcome::Err(_)) => true,
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
    in_workerd
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
    assert_eq!(equal.steps[1..], [imported(1), imported(0)]);
    let ttl = outcomes("ttl-boundary");
    assert_eq!(ttl.steps[1], ok("v"));
    assert_eq!(ttl.steps[2], Outcome::Ok(Observed::Value(None)));
    assert_eq!(ttl.steps[3], imported(1), "expired records still sync");
    let remove_first = outcomes("remove-before-add");
    assert_eq!(remove_first.steps[5], Outcome::Ok(Observed::Values(vec![])));
    let concurrent = outcomes("concurrent-add-remove");
    assert_eq!(concurrent.steps[6], Outcome::Ok(Observed::Values(vec![Value::from("x")])));
    assert_eq!(concurrent.steps[7], concurrent.steps[6]);
    let readd = outcomes("remove-readd-root");
    assert_eq!(readd.finals[0].root, readd.finals[1].root, "a key with no live records leaves no trace");
    let drift = outcomes("strict-drift");
    assert!(matches!(&drift.steps[1], Outcome::Err(m) if m.contains("clock drift")), "{:?}", drift.steps[1]);
    assert_eq!(drift.steps[2], Outcome::Ok(Observed::Value(None)), "nothing of the refused snapshot applied");
    assert_eq!(drift.steps[3], imported(1));
    let bad = outcomes("bad-input");
    assert!(bad.steps.iter().skip(1).take(3).all(|o| matches!(o, Outcome::Err(_))));
    assert!(matches!(&bad.steps[6], Outcome::Err(m) if m.contains("kind mismatch")));
    assert!(matches!(&bad.steps[7], Outcome::Err(m) if m.contains("no map named")));
    review_cases_behave_as_the_spec_says(&outcomes);
}

/// The expected outcomes of the review's cases (issue 11), pinned, not only agreed on.
fn review_cases_behave_as_the_spec_says(outcomes: &dyn Fn(&str) -> Transcript) {
    use onegrid_core::Value;
    use onegrid_tests::engines::Observed;
    let err = |o: &Outcome, what: &str| matches!(o, Outcome::Err(m) if m.contains(what));
    let max = outcomes("clock-at-u64-max");
    let far = format!("{}:{}:x", u64::MAX, u32::MAX - 2);
    assert_eq!(max.steps[0], Outcome::Ok(Observed::Imported { changed: 1, drifts: vec![far] }), "lenient: reported");
    assert_eq!(max.steps[1], Outcome::Ok(Observed::Nothing), "the counter advances at millis u64::MAX");
    assert!(err(&max.steps[2], "clock exhausted"), "{:?}", max.steps[2]);
    assert_eq!(max.steps[3], Outcome::Ok(Observed::Value(Some(Value::from(1)))), "the later write won");
    assert!(err(&max.steps[4], "clock drift"), "strict: {:?}", max.steps[4]);
    assert!(err(&max.steps[5], "clock exhausted"), "{:?}", max.steps[5]);
    assert_eq!(max.steps[6], Outcome::Ok(Observed::Nothing), "the refused import changed nothing");
    let or = outcomes("or-remove-canonical-value");
    assert!(matches!(&or.steps[1], Outcome::Ok(Observed::Tags(t)) if t.len() == 1), "{:?}", or.steps[1]);
    assert!(err(&or.steps[2], "NaN"), "{:?}", or.steps[2]);
    assert_eq!(or.steps[4], Outcome::Ok(Observed::Tags(vec![])), "2^60 as a float is not the integer 2^60");
    assert_eq!(or.steps[5], Outcome::Ok(Observed::Values(vec![Value::Int(1 << 60)])));
    assert!(matches!(&or.steps[6], Outcome::Ok(Observed::Tags(t)) if t.len() == 1));
    let reserved = outcomes("reserved-key-reads");
    assert!(reserved.steps[2..].iter().all(|o| err(o, "is reserved")), "{:?}", reserved.steps);
    let order = outcomes("or-merge-oldest-first");
    assert_eq!(order.steps[7], Outcome::Ok(Observed::Tag("500:7:y".into())), "the clock after the merge");
    let text = outcomes("awkward-text");
    assert_eq!(text.steps[5], Outcome::Ok(Observed::Value(Some(Value::from("\u{feff}abc")))));
    assert_eq!(text.steps[7], Outcome::Ok(Observed::Values(vec![Value::from("\u{feff}")])));
}
