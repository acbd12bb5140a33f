//! The engines a scenario runs on, and what each run yields: the replies to every byte-ABI
//! request (engines that speak the ABI) and a transcript of outcomes and final states (all).
//!
//! - native: `onegrid_core::Grid::execute`, compiled for this machine;
//! - wasmtime: the module in the `onegrid` host's runtime;
//! - node-abi: the module's raw exports in Node (imports defined as traps, like the host);
//! - node-api: the JavaScript API (`Grid`, `LwwMap`, `OrMap`) in Node;
//! - workerd-abi, workerd-api: the same two, by the same code (`js/scenario-runner.mjs`), in a
//!   Worker in workerd ([`crate::workerd`]).

use std::path::Path;
use std::process::Command as Process;

use onegrid_core::codec::{decode_reply, encode_reply, encode_request};
use onegrid_core::{ClockConfig, Command, ErrorKind, Grid, NodeId, Replica, Reply, Request, Value, WireError};
use onegrid_host::{Client, Runtime};
use serde_json::Value as Json;

use crate::scenario::{Compiled, Op, Scenario, untagged};
use crate::workerd::Workerd;

/// What one step observed.
#[derive(Clone, Debug, PartialEq)]
pub enum Observed {
    /// A write that returns nothing.
    Nothing,
    /// An LWW read.
    Value(Option<Value>),
    /// An OR add's tag.
    Tag(String),
    /// OR remove's tags.
    Tags(Vec<String>),
    /// An OR read.
    Values(Vec<Value>),
    /// A count (prune).
    Count(u64),
    /// What an import (or the import of a sync) changed, and the drifted timestamps it reported.
    Imported {
        /// Records added or replaced plus new tombstones.
        changed: u64,
        /// Lenient drift reports: the remote timestamps, in text form.
        drifts: Vec<String>,
    },
}

/// A step's outcome: what it observed, or the error (its code and message).
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// It worked.
    Ok(Observed),
    /// It failed (and changed nothing).
    Err(WireError),
}

impl Outcome {
    /// A failure of the test harness itself, not of an engine (code `TEST`).
    fn broken(message: String) -> Self {
        Self::Err(WireError { code: "TEST".into(), message })
    }

    /// True for a failure with this error kind's code.
    pub fn failed_with(&self, kind: ErrorKind) -> bool {
        matches!(self, Self::Err(e) if e.code == kind.code())
    }
}

/// One (replica, map) at the end: its snapshot and root, or `None` where the map does not exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Final {
    /// Snapshot bytes.
    pub snapshot: Option<Vec<u8>>,
    /// Merkle root.
    pub root: Option<u32>,
}

/// Everything a run of a scenario yields.
#[derive(Clone, Debug, PartialEq)]
pub struct Transcript {
    /// Outcome per step.
    pub steps: Vec<Outcome>,
    /// Final state per (replica, map), in [`Compiled::finals`] order.
    pub finals: Vec<Final>,
    /// Encoded replies of every request, in order, as the engine wrote them (empty for the JS API
    /// engine).
    pub replies: Vec<Vec<u8>>,
}

/// Runs a compiled scenario through any byte-ABI `call`, which returns the encoded reply exactly as
/// the engine wrote it (recorded as is, so engines are compared byte for byte; decoded here for
/// the outcomes), filling each sync's import with the snapshot its export returned.
pub fn run_abi(scenario: &Scenario, compiled: &Compiled, mut call: impl FnMut(&Request) -> Vec<u8>) -> Transcript {
    let mut replies = Vec::new();
    let mut call = |request: &Request| {
        let bytes = call(request);
        let reply = decode_reply(&bytes)
            .unwrap_or_else(|e| Reply::Error(WireError::new(ErrorKind::Malformed, format!("undecodable reply: {e}"))));
        replies.push(bytes);
        reply
    };
    for open in &compiled.open {
        call(open);
    }
    let mut steps = Vec::new();
    for (step, requests) in scenario.steps.iter().zip(&compiled.steps) {
        let outcome = match (&step.op, requests.as_slice()) {
            (Op::Sync { .. }, [export, import]) => match call(export) {
                Reply::Bytes(snapshot) => {
                    let mut import = import.clone();
                    if let Command::Import { snapshot: s, .. } = &mut import.command {
                        *s = snapshot;
                    }
                    outcome_of(&step.op, call(&import))
                }
                other => outcome_of(&step.op, other),
            },
            // A prune first touches its map as the JavaScript API does (`getMap` / `getORMap`).
            (Op::Prune { .. }, [touch, prune]) => match call(touch) {
                Reply::Error(error) => Outcome::Err(error),
                _ => outcome_of(&step.op, call(prune)),
            },
            (op, [request]) => outcome_of(op, call(request)),
            _ => Outcome::broken("scenario compiled wrongly".into()),
        };
        steps.push(outcome);
    }
    let finals = compiled
        .finals
        .iter()
        .map(|(_, _, [export, root])| {
            let snapshot = match call(export) {
                Reply::Bytes(b) => Some(b),
                _ => None,
            };
            let root = match call(root) {
                Reply::Root(r) => Some(r),
                _ => None,
            };
            Final { snapshot, root }
        })
        .collect();
    Transcript { steps, finals, replies }
}

fn outcome_of(op: &Op, reply: Reply) -> Outcome {
    let observed = match (op, reply) {
        (_, Reply::Error(error)) => return Outcome::Err(error),
        (Op::Set { .. } | Op::SetMany { .. } | Op::Remove { .. }, Reply::Done) => Observed::Nothing,
        (Op::Get { .. }, Reply::Value(v)) => Observed::Value(v),
        (Op::Add { .. }, Reply::Tags(mut tags)) if tags.len() == 1 => Observed::Tag(tags.remove(0)),
        (Op::OrRemove { .. }, Reply::Tags(tags)) => Observed::Tags(tags),
        (Op::OrGet { .. }, Reply::Values(values)) => Observed::Values(values),
        (Op::Prune { .. }, Reply::Count(n)) => Observed::Count(n),
        (Op::Sync { .. } | Op::Import { .. }, Reply::Imported { changed, drifts }) => {
            Observed::Imported { changed, drifts: drifts.into_iter().map(|d| d.remote).collect() }
        }
        (_, other) => return Outcome::broken(format!("unexpected reply {other:?}")),
    };
    Outcome::Ok(observed)
}

/// The native core: grids in a table, each with its sync hub, as the module's byte ABI keeps them.
pub fn run_native(scenario: &Scenario, compiled: &Compiled) -> Transcript {
    let mut grids: Vec<Replica> = Vec::new();
    run_abi(scenario, compiled, |request| {
        let reply = match &request.command {
            Command::Open { node_id, max_drift_ms, strict } => match NodeId::new(node_id) {
                Ok(id) => {
                    let config = ClockConfig { max_drift_ms: *max_drift_ms, strict: *strict };
                    grids.push(Replica::new(Grid::new(id, config)));
                    Reply::Opened(u32::try_from(grids.len()).unwrap_or(u32::MAX))
                }
                Err(e) => Reply::Error(WireError::from(&e)),
            },
            command => match grids.get_mut((request.grid as usize).wrapping_sub(1)) {
                Some(grid) => {
                    grid.execute(request.wall, command.clone()).unwrap_or_else(|e| Reply::Error(WireError::from(&e)))
                }
                None => Reply::Error(WireError::from(&onegrid_core::Error::UnknownGrid { handle: request.grid })),
            },
        };
        encode_reply(&reply)
    })
}

/// The module in wasmtime, on a fresh instance.
pub fn run_wasmtime(runtime: &Runtime, scenario: &Scenario, compiled: &Compiled) -> Transcript {
    let mut client = Client::new(runtime).expect("instantiate the module");
    run_abi(scenario, compiled, |request| {
        client.call_raw(&encode_request(request)).unwrap_or_else(|e| {
            encode_reply(&Reply::Error(WireError::new(ErrorKind::Limit, format!("host error: {e}"))))
        })
    })
}

/// Both Node engines (raw exports and JS API) on the package in `pkg`; returns (abi, api).
pub fn run_node(pkg: &Path, scenario: &Scenario, compiled: &Compiled, work: &Path) -> (Transcript, Transcript) {
    let input = work.join(format!("{}.json", scenario.name));
    std::fs::write(&input, scenario.to_json(compiled).to_string()).expect("write the scenario");
    let runner = Path::new(env!("CARGO_MANIFEST_DIR")).join("js/conformance-runner.mjs");
    let output = Process::new("node")
        .arg(runner)
        .arg(pkg)
        .arg(&input)
        .arg(onegrid_core::ABI_VERSION.to_string())
        .output()
        .expect("run node");
    assert!(
        output.status.success(),
        "node runner failed on {}:\n{}",
        scenario.name,
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Json = serde_json::from_slice(&output.stdout).expect("the runner prints JSON");
    (abi_transcript(scenario, compiled, &result["abi"]), api_transcript(scenario, &result["api"]))
}

/// Both engines (raw exports and JS API) in the Worker that `workerd` serves; returns (abi, api).
pub fn run_workerd(workerd: &mut Workerd, scenario: &Scenario, compiled: &Compiled) -> (Transcript, Transcript) {
    let body = serde_json::json!({ "scenario": scenario.to_json(compiled), "abiVersion": onegrid_core::ABI_VERSION });
    let reply = workerd.post(&body.to_string());
    let result: Json = serde_json::from_str(&reply).expect("the Worker answers JSON");
    assert_eq!(result["engine"], "Cloudflare-Workers", "{}: not our Worker in workerd answered", scenario.name);
    (abi_transcript(scenario, compiled, &result["abi"]), api_transcript(scenario, &result["api"]))
}

/// Bytes from hex our own tools wrote (the JS runners, the golden vectors): anything else fails.
pub fn unhex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd-length hex from the runner");
    (0..text.len() / 2)
        .map(|i| text.get(2 * i..2 * i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()).expect("hex from the runner"))
        .collect()
}

/// Replays the Node runner's raw replies through the same bookkeeping as the Rust ABI engines:
/// each request takes the next reply as Node's module wrote it. Fewer replies than requests, or
/// more, fail the run.
fn abi_transcript(scenario: &Scenario, compiled: &Compiled, replies: &Json) -> Transcript {
    let replies = replies.as_array().expect("abi replies");
    let mut queue = replies.iter().map(|r| unhex(r.as_str().expect("a reply in hex")));
    let mut taken = 0;
    let transcript = run_abi(scenario, compiled, |_| {
        taken += 1;
        queue.next().unwrap_or_else(|| panic!("{}: the JS engine sent fewer replies than requests", scenario.name))
    });
    assert_eq!(
        replies.len(),
        taken,
        "{}: the JS engine sent {} replies for {taken} requests",
        scenario.name,
        replies.len()
    );
    transcript
}

fn api_transcript(scenario: &Scenario, api: &Json) -> Transcript {
    let steps = scenario
        .steps
        .iter()
        .zip(api["steps"].as_array().expect("api steps"))
        .map(|(step, outcome)| api_outcome(&step.op, outcome))
        .collect();
    let finals = api["finals"]
        .as_array()
        .expect("api finals")
        .iter()
        .map(|f| Final {
            snapshot: f["snapshot"].as_str().map(unhex),
            root: f["root"].as_u64().and_then(|r| u32::try_from(r).ok()),
        })
        .collect();
    Transcript { steps, finals, replies: Vec::new() }
}

fn api_outcome(op: &Op, outcome: &Json) -> Outcome {
    if let Some(error) = outcome.get("err") {
        let text = |field: &str| error[field].as_str().unwrap_or_default().to_owned();
        return Outcome::Err(WireError { code: text("code"), message: text("message") });
    }
    let ok = &outcome["ok"];
    let strings = |j: &Json| j.as_array().map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect());
    let observed = match op {
        Op::Set { .. } | Op::SetMany { .. } | Op::Remove { .. } => ok.is_null().then_some(Observed::Nothing),
        Op::Get { .. } => if ok.is_null() { Some(None) } else { untagged(ok).map(Some) }.map(Observed::Value),
        Op::Add { .. } => ok.as_str().map(|t| Observed::Tag(t.to_owned())),
        Op::OrRemove { .. } => strings(ok).map(Observed::Tags),
        Op::OrGet { .. } => {
            ok.as_array().and_then(|a| a.iter().map(untagged).collect::<Option<Vec<_>>>()).map(Observed::Values)
        }
        Op::Prune { .. } => ok.as_u64().map(Observed::Count),
        Op::Sync { .. } | Op::Import { .. } => ok["changed"]
            .as_u64()
            .zip(strings(&ok["drifts"]))
            .map(|(changed, drifts)| Observed::Imported { changed, drifts }),
    };
    observed.map_or_else(|| Outcome::broken(format!("unreadable outcome {outcome}")), Outcome::Ok)
}
