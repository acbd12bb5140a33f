//! One op trace on every runtime of the module, against native code.
//!
//! Run with `cargo bench -p onegrid-host --bench runtimes` (Chromium and playwright-core first:
//! `bash tests/ci/chromium.sh`). `ROUNDS=n` sets the rounds (default 7); `SKIP=chromium` or
//! `SKIP=node,chromium` leaves JavaScript engines out; `NODE` names the node binary.
//!
//! Workloads, on a fresh grid each run (opening it and any setup are not timed):
//! - `sets`: 100 000 LWW sets of `{ n, name, done }`, one call each, wall clock `T0 + i`;
//! - `batch`: the same entries in one `SetMany` / `setMany`;
//! - `import`: 10 000 merges as one snapshot import (the `abi` bench's workload), 5 runs a round;
//! - `gets`: 100 000 gets of those entries (the map filled by one untimed `SetMany`).
//!
//! Runtimes: native `Grid::execute` on the commands; the module in wasmtime through
//! `Client::call` (which encodes each request) and `Client::call_bytes` on pre-encoded requests;
//! the module in Node and in headless Chromium, through its raw byte ABI (the same pre-encoded
//! requests, imports defined as traps) and through the JavaScript API (`Grid`, `LwwMap`).
//!
//! This program builds the trace, writes the package (`pkg::write`), the encoded requests
//! (`trace.bin`) and the same trace for the JavaScript API (`trace.json`) into a scratch directory.
//! Each round then times native and wasmtime (interleaved; the first round is preceded by an
//! unmeasured one) and runs `tests/bench/runtimes.mjs` for Node and for Chromium: a fresh process
//! that times its two ways interleaved, after a warm-up round of its own, and answers in JSON. So
//! every runtime is measured once a round, close in time to the others, and a busy machine slows
//! them alike. Every run of every runtime
//! must end with the native Merkle root, and its replies must match native's (the same reply bytes
//! through the byte ABI; the same merge count and values read through the JavaScript API), or the
//! bench fails. It prints a table of medians and one of minimums, with each runtime's ratio to
//! native.

use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::time::Instant;

use onegrid_core::codec::{decode_reply, encode_reply, encode_request};
use onegrid_core::{ClockConfig, Command, Grid, NodeId, Reply, Request, Value};
use onegrid_host::{Client, Runtime, RuntimeConfig, hex, pkg};
use serde_json::{Value as Json, json};

const N: usize = 100_000;
const MERGES: usize = 10_000;
const IMPORT_RUNS: usize = 5;
const T0: u64 = 1_700_000_000_000;
const NODE_ID: &str = "bench";
const MAP: &str = "bench";
/// The JavaScript API's default drift limit, so every runtime opens the same grid.
const MAX_DRIFT_MS: u64 = 60_000;
/// What `Open` answers on an instance with no open grid (every run closes its grid).
const HANDLE: u32 = 1;

/// One workload: requests run untimed after `Open`, then the timed ones.
struct Workload {
    key: &'static str,
    title: &'static str,
    setup: Vec<Request>,
    timed: Vec<Request>,
    /// `timed`, encoded: what `call_bytes` and the JavaScript byte ABI send.
    encoded: Vec<Vec<u8>>,
    runs: usize,
}

/// Every timed run of one workload on one runtime.
#[derive(Default)]
struct Measured {
    ms: Vec<f64>,
    roots: Vec<u32>,
    /// Byte ABI: FNV-1a of the timed replies' bytes; JavaScript API: what it read (see `api_check`).
    checks: Vec<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Way {
    Native,
    Call,
    Bytes,
}

impl Measured {
    fn extend(&mut self, other: Measured) {
        self.ms.extend(other.ms);
        self.roots.extend(other.roots);
        self.checks.extend(other.checks);
    }
}

struct RuntimeResult {
    label: String,
    /// Checked like the byte ABI (reply digests) or like the JavaScript API.
    api: bool,
    workloads: Vec<Measured>,
}

fn main() {
    let rounds: usize = std::env::var("ROUNDS").map_or(7, |r| r.parse().expect("ROUNDS is a number"));
    let skip = std::env::var("SKIP").unwrap_or_default();
    let snapshot = snapshot();
    let (entries, workloads) = trace(&snapshot);

    let runtime = Runtime::new(pkg::WASM, RuntimeConfig::default()).expect("the module loads");
    let mut client = Client::new(&runtime).expect("an instance");
    eprintln!("module {} ({} bytes)", runtime.sha256_hex(), pkg::WASM.len());

    let dir = Scratch::new();
    write_inputs(&dir.0, &entries, &snapshot, &workloads);

    // Native and wasmtime, interleaved so a busy machine slows them alike.
    let ways = [
        (Way::Native, "native (`Grid::execute`)"),
        (Way::Call, "wasmtime, byte ABI (`Client::call`)"),
        (Way::Bytes, "wasmtime, byte ABI, pre-encoded (`call_bytes`)"),
    ];
    let mut results: Vec<RuntimeResult> = ways
        .iter()
        .map(|(_, label)| RuntimeResult {
            label: (*label).into(),
            api: false,
            workloads: workloads.iter().map(|_| Measured::default()).collect(),
        })
        .collect();
    let mut expected_api = vec![String::new(); workloads.len()];
    let engines: Vec<&str> = ["node", "chromium"].into_iter().filter(|e| !skip.split(',').any(|s| s == *e)).collect();
    for round in 0..rounds {
        eprintln!("round {} of {rounds}: native and wasmtime, {}", round + 1, engines.join(", "));
        // Round 1 starts with an unmeasured round (wasmtime's instance grows its memory there).
        let measured_rounds: &[bool] = if round == 0 { &[false, true] } else { &[true] };
        for &measured in measured_rounds {
            for (w, workload) in workloads.iter().enumerate() {
                for _ in 0..workload.runs {
                    for (r, (way, _)) in ways.iter().enumerate() {
                        let (ms, root, replies) = run_rust(*way, &mut client, workload);
                        if *way == Way::Native {
                            expected_api[w] = api_check(workload.key, &replies);
                        }
                        if measured {
                            let m = &mut results[r].workloads[w];
                            m.ms.push(ms);
                            m.roots.push(root);
                            m.checks.push(digest(replies.iter().map(encode_reply)));
                        }
                    }
                }
            }
        }
        for engine in &engines {
            for new in run_js(engine, &dir.0, &workloads) {
                match results.iter_mut().find(|r| r.label == new.label) {
                    Some(old) => old.workloads.iter_mut().zip(new.workloads).for_each(|(o, n)| o.extend(n)),
                    None => results.push(new),
                }
            }
        }
    }

    let wrong = verify(&results, &workloads, &expected_api);
    drop(dir);
    if !wrong.is_empty() {
        eprintln!("\nTHE RUNTIMES DISAGREE:\n  {}", wrong.join("\n  "));
        std::process::exit(1);
    }
    println!(
        "\n{N} sets / gets of `{{ n, name, done }}`, {MERGES} merges in one import; median of {rounds} rounds \
         ({IMPORT_RUNS} import runs a round), every runtime once a round; ratio to native in brackets. Roots and replies checked on every runtime."
    );
    for (caption, pick) in [("median", 0), ("minimum", 1)] {
        println!("\n{caption}:\n");
        table(&results, &workloads, pick);
    }
    targets(&results, &workloads);
}

/// The entries of `sets`, `batch` and `gets`, and the four workloads.
fn trace(snapshot: &[u8]) -> (Vec<(String, Value)>, Vec<Workload>) {
    let entries: Vec<(String, Value)> = (0..N)
        .map(|i| {
            let fields =
                [("n", Value::from(i as i64)), ("name", Value::from("item")), ("done", Value::from(i % 2 == 0))];
            (format!("key-{i}"), Value::map(fields).expect("distinct field names"))
        })
        .collect();
    let (batch_wall, get_wall) = (T0, T0 + 1);
    let request = |wall, command| Request { grid: HANDLE, wall, command };
    let set_many = request(batch_wall, Command::SetMany { map: MAP.into(), entries: entries.clone() });
    let sets = entries
        .iter()
        .enumerate()
        .map(|(i, (key, value))| {
            let command = Command::Set { map: MAP.into(), key: key.clone(), value: value.clone(), ttl_ms: None };
            request(T0 + i as u64, command)
        })
        .collect();
    let gets =
        entries.iter().map(|(key, _)| request(get_wall, Command::Get { map: MAP.into(), key: key.clone() })).collect();
    let import = request(T0, Command::Import { map: MAP.into(), snapshot: snapshot.to_vec() });

    let workload = |key, title, setup, timed: Vec<Request>, runs| {
        let encoded = timed.iter().map(encode_request).collect();
        Workload { key, title, setup, timed, encoded, runs }
    };
    let workloads = vec![
        workload("sets", "100k sets, single calls", vec![], sets, 1),
        workload("batch", "100k sets, one batch", vec![], vec![set_many.clone()], 1),
        workload("import", "10k merges, one import", vec![], vec![import], IMPORT_RUNS),
        workload("gets", "100k gets", vec![set_many], gets, 1),
    ];
    (entries, workloads)
}

/// The `abi` bench's snapshot: `MERGES` string records from another node, written natively.
fn snapshot() -> Vec<u8> {
    let mut writer = grid("bench-writer");
    for i in 0..MERGES {
        let set = Command::Set {
            map: MAP.into(),
            key: format!("key-{i:06}"),
            value: Value::from(format!("value {i}")),
            ttl_ms: None,
        };
        writer.execute(T0, set).expect("a valid set");
    }
    match writer.execute(T0, Command::Export { map: MAP.into() }) {
        Ok(Reply::Bytes(bytes)) => bytes,
        other => panic!("Export answered {other:?}"),
    }
}

fn grid(node_id: &str) -> Grid {
    let id = NodeId::new(node_id).expect("a valid node id");
    Grid::new(id, ClockConfig { max_drift_ms: MAX_DRIFT_MS, strict: false })
}

fn open() -> Request {
    Request {
        grid: 0,
        wall: T0,
        command: Command::Open { node_id: NODE_ID.into(), max_drift_ms: MAX_DRIFT_MS, strict: false },
    }
}

fn root() -> Request {
    Request { grid: HANDLE, wall: T0, command: Command::Root { map: MAP.into() } }
}

fn close() -> Request {
    Request { grid: HANDLE, wall: T0, command: Command::Close }
}

/// One run of `w` natively or in wasmtime: (ms, root, timed replies).
fn run_rust(way: Way, client: &mut Client, w: &Workload) -> (f64, u32, Vec<Reply>) {
    let mut replies = Vec::with_capacity(w.timed.len());
    if way == Way::Native {
        let mut grid = grid(NODE_ID);
        for r in &w.setup {
            grid.execute(r.wall, r.command.clone()).expect("the setup runs");
        }
        let commands: Vec<(u64, Command)> = w.timed.iter().map(|r| (r.wall, r.command.clone())).collect();
        let started = Instant::now();
        for (wall, command) in commands {
            replies
                .push(grid.execute(wall, command).unwrap_or_else(|e| Reply::Error(onegrid_core::WireError::from(&e))));
        }
        let ms = started.elapsed().as_secs_f64() * 1e3;
        let root = grid.execute(T0, root().command).expect("a root");
        return (ms, root_of(&root), replies);
    }
    assert_eq!(call(client, &open()), Reply::Opened(HANDLE), "the pre-encoded requests name grid {HANDLE}");
    for r in &w.setup {
        assert_eq!(call(client, r), Reply::Done, "the setup runs");
    }
    let started = Instant::now();
    if way == Way::Bytes {
        for bytes in &w.encoded {
            replies.push(client.call_bytes(bytes).expect("wasmtime answers"));
        }
    } else {
        for request in &w.timed {
            replies.push(call(client, request));
        }
    }
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let root = call(client, &root());
    assert_eq!(call(client, &close()), Reply::Done);
    (ms, root_of(&root), replies)
}

fn call(client: &mut Client, request: &Request) -> Reply {
    client.call(request).expect("wasmtime answers")
}

fn root_of(reply: &Reply) -> u32 {
    match reply {
        Reply::Root(root) => *root,
        other => panic!("Root answered {other:?}"),
    }
}

/// What the JavaScript API must read in `workload`: the merge count of `import`, and how many
/// values `gets` found with the sum of their `n`; nothing for the sets.
fn api_check(workload: &str, replies: &[Reply]) -> String {
    match workload {
        "import" => match replies {
            [Reply::Imported { changed: n, .. }] => format!("{n} merged"),
            other => panic!("Import answered {other:?}"),
        },
        "gets" => {
            let (mut found, mut sum) = (0u64, 0i64);
            for reply in replies {
                if let Reply::Value(Some(value)) = reply {
                    found += 1;
                    sum += match value.get("n") {
                        Some(Value::Int(n)) => *n,
                        other => panic!("a value without an integer n: {other:?}"),
                    };
                }
            }
            format!("{found} found, sum of n {sum}")
        }
        _ => String::new(),
    }
}

/// FNV-1a (32 bits) over the concatenated replies, as lowercase hex; runtimes.mjs computes the same.
fn digest(replies: impl Iterator<Item = Vec<u8>>) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for byte in replies.flatten() {
        h = (h ^ u32::from(byte)).wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

/// Writes the package, `trace.bin` (every encoded request, each as a little-endian u32 length and
/// its bytes) and `trace.json` (the same trace for the JavaScript API, and which frames are which).
fn write_inputs(dir: &Path, entries: &[(String, Value)], snapshot: &[u8], workloads: &[Workload]) {
    pkg::write(&dir.join("pkg")).expect("the package is written");
    let mut bin = Vec::new();
    let mut count = 0;
    let mut frames = |frames: Vec<Vec<u8>>| {
        let start = count;
        for bytes in frames {
            bin.extend_from_slice(&u32::try_from(bytes.len()).expect("a frame under 4 GiB").to_le_bytes());
            bin.extend_from_slice(&bytes);
            count += 1;
        }
        json!([start, count - start])
    };
    let open = frames(vec![encode_request(&open())]);
    let root = frames(vec![encode_request(&root())]);
    let close = frames(vec![encode_request(&close())]);
    let snapshot = frames(vec![snapshot.to_vec()]);
    let listed: Vec<Json> = workloads
        .iter()
        .map(|w| {
            let setup = frames(w.setup.iter().map(encode_request).collect());
            let timed = frames(w.encoded.clone());
            // The JavaScript API runs the setup and each timed request at the request's wall clock.
            let setup_wall = w.setup.first().map(|r| r.wall);
            let walls: Vec<u64> = w.timed.iter().map(|r| r.wall).collect();
            json!({ "key": w.key, "setup": setup, "timed": timed, "runs": w.runs, "setupWall": setup_wall, "walls": walls })
        })
        .collect();
    let values: Vec<Json> = entries.iter().map(|(_, v)| to_json(v)).collect();
    let trace = json!({
        "nodeId": NODE_ID,
        "maxDriftMs": MAX_DRIFT_MS,
        "map": MAP,
        "rounds": 1, // measured rounds per process (after one warm-up round)
        "keys": entries.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        "values": values,
        "replies": { "opened": hex(&encode_reply(&Reply::Opened(HANDLE))), "done": hex(&encode_reply(&Reply::Done)) },
        "frames": { "open": open, "root": root, "close": close, "snapshot": snapshot },
        "workloads": listed,
    });
    std::fs::write(dir.join("trace.bin"), bin).expect("trace.bin is written");
    std::fs::write(dir.join("trace.json"), trace.to_string()).expect("trace.json is written");
}

/// The JSON the JavaScript API turns into `value` (the trace holds only ints, strings, booleans).
fn to_json(value: &Value) -> Json {
    match value {
        Value::Int(n) => json!(n),
        Value::String(s) => json!(s),
        Value::Bool(b) => json!(b),
        Value::Map(fields) => Json::Object(fields.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect()),
        other => panic!("no JSON for {other:?} in this trace"),
    }
}

/// Runs `tests/bench/runtimes.mjs` for `engine` and reads its two runtimes.
fn run_js(engine: &str, dir: &Path, workloads: &[Workload]) -> Vec<RuntimeResult> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/bench/runtimes.mjs");
    let node = std::env::var("NODE").unwrap_or_else(|_| "node".into());
    let out = Process::new(&node)
        .arg("--expose-gc")
        .arg(&script)
        .arg(engine)
        .arg(dir)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {node}: {e}"));
    assert!(out.status.success(), "{} {engine} failed ({}); SKIP={engine} leaves it out", script.display(), out.status);
    let answer: Json = serde_json::from_slice(&out.stdout).expect("runtimes.mjs prints JSON");
    let engine_name = answer["engine"].as_str().expect("an engine name");
    [("abi", "byte ABI, pre-encoded"), ("api", "JS API")]
        .iter()
        .map(|(way, what)| {
            let measured = workloads
                .iter()
                .map(|w| {
                    let m = &answer[way][w.key];
                    let list = |field: &str| m[field].as_array().cloned().unwrap_or_default();
                    let root = |j: &Json| match j {
                        Json::String(h) => root_of(&decode_reply(&unhex(h)).expect("a Root reply")),
                        _ => j.as_u64().and_then(|r| u32::try_from(r).ok()).expect("a root"),
                    };
                    Measured {
                        ms: list("ms").iter().map(|x| x.as_f64().expect("ms")).collect(),
                        roots: list("roots").iter().map(root).collect(),
                        checks: list("checks").iter().map(|c| c.as_str().expect("a check").to_string()).collect(),
                    }
                })
                .collect();
            RuntimeResult { label: format!("{engine_name}, {what}"), api: *way == "api", workloads: measured }
        })
        .collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

/// Where a run did not match native: its root, or its replies or the values it read.
fn verify(results: &[RuntimeResult], workloads: &[Workload], expected_api: &[String]) -> Vec<String> {
    let native = &results[0];
    let mut wrong = Vec::new();
    for (w, workload) in workloads.iter().enumerate() {
        let root = native.workloads[w].roots[0];
        let digest = &native.workloads[w].checks[0];
        for r in results {
            let m = &r.workloads[w];
            let check = if r.api { &expected_api[w] } else { digest };
            if m.ms.is_empty() {
                wrong.push(format!("{}: {}: no runs", r.label, workload.key));
            }
            if let Some(other) = m.roots.iter().find(|x| **x != root) {
                wrong.push(format!("{}: {}: root {other:08x}, native {root:08x}", r.label, workload.key));
            }
            if let Some(other) = m.checks.iter().find(|c| *c != check) {
                wrong.push(format!("{}: {}: read {other:?}, native {check:?}", r.label, workload.key));
            }
        }
    }
    wrong
}

/// The median (`pick` 0) or the minimum (`pick` 1) of `ms`.
fn stat(ms: &[f64], pick: usize) -> f64 {
    let mut sorted = ms.to_vec();
    sorted.sort_by(f64::total_cmp);
    if pick == 0 { sorted[sorted.len() / 2] } else { sorted[0] }
}

/// The benchmarks issue's targets on batched merges (the import), as median ratios to native:
/// the module in wasmtime within 1.5 times native, in Node within 2 times.
fn targets(results: &[RuntimeResult], workloads: &[Workload]) {
    let Some(import) = workloads.iter().position(|w| w.key == "import") else { return };
    let native = stat(&results[0].workloads[import].ms, 0);
    println!("\ntargets, batched merges (median ratio to native):\n");
    for r in &results[1..] {
        let ratio = stat(&r.workloads[import].ms, 0) / native;
        let target = if r.label.starts_with("wasmtime") {
            Some(1.5)
        } else if r.label.starts_with("Node") {
            Some(2.0)
        } else {
            None
        };
        match target {
            Some(t) => {
                println!("- {}: {ratio:.2}x (target {t}x: {})", r.label, if ratio <= t { "met" } else { "not met" })
            }
            None => println!("- {}: {ratio:.2}x (no target)", r.label),
        }
    }
}

/// A Markdown table: each runtime's median (`pick` 0) or minimum (1), and its ratio to native's.
fn table(results: &[RuntimeResult], workloads: &[Workload], pick: usize) {
    let stat = |ms: &[f64]| stat(ms, pick);
    let titles: Vec<&str> = workloads.iter().map(|w| w.title).collect();
    println!("| runtime | {} |", titles.join(" | "));
    println!("|---|{}", "---|".repeat(workloads.len()));
    for r in results {
        let cells: Vec<String> = (0..workloads.len())
            .map(|w| {
                let (ms, native) = (stat(&r.workloads[w].ms), stat(&results[0].workloads[w].ms));
                let digits = if ms < 10.0 { 2 } else { 1 };
                format!("{ms:.digits$} ms ({:.2}x)", ms / native)
            })
            .collect();
        println!("| {} | {} |", r.label, cells.join(" | "));
    }
}

/// A scratch directory for the package and the trace, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("onegrid-runtimes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0); // best effort: it is in the temp directory
    }
}
