//! The cost of the byte ABI: 10 000 merges as one `Import` command through wasmtime, against the
//! same import run natively with `onegrid_core::Grid::import_map`.
//!
//! Run with `cargo bench -p onegrid-host --bench abi`. Each run imports a 10 000-record LWW
//! snapshot (built natively) into a fresh, empty grid, so every record is a real merge. It prints
//! the median (and minimum) of several interleaved runs; setup (opening and closing grids) is not
//! timed.
//!
//! `ONEGRID_BENCH_MODULE=FILE` benchmarks another build of the module (e.g. one built with another
//! `opt-level`) instead of the embedded one.

use std::time::{Duration, Instant};

use onegrid_core::codec::encode_request;
use onegrid_core::{ClockConfig, Command, Grid, Hlc, LwwMap, NodeId, Reply, Request, Value};
use onegrid_host::{Client, HostError, Runtime, RuntimeConfig, pkg};

const RECORDS: usize = 10_000;
const RUNS: usize = 31;
const WARMUP: usize = 3;
const WALL: u64 = 1_700_000_000_000;

fn main() -> Result<(), HostError> {
    let snapshot = snapshot();
    let wasm = match std::env::var_os("ONEGRID_BENCH_MODULE") {
        Some(path) => std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.to_string_lossy())),
        None => pkg::WASM.to_vec(),
    };
    let runtime = Runtime::new(&wasm, RuntimeConfig::default())?;
    let mut client = Client::new(&runtime)?;
    println!("{RECORDS} merges per run, snapshot of {} bytes, median of {RUNS} runs", snapshot.len());
    println!("module {} ({})", runtime.sha256_hex(), runtime.code_source());

    let import = Command::Import { map: "bench".into(), snapshot: snapshot.clone() };
    let abi = |client: &mut Client, pre_encoded: bool| -> Result<Duration, HostError> {
        let grid = open(client)?;
        let request = Request { grid, wall: WALL, command: import.clone() };
        let bytes = pre_encoded.then(|| encode_request(&request));
        let started = Instant::now();
        let reply = match &bytes {
            Some(bytes) => client.call_bytes(bytes)?,
            None => client.call(&request)?,
        };
        let elapsed = started.elapsed();
        assert_eq!(
            reply,
            Reply::Imported { changed: RECORDS as u64, drifts: vec![] },
            "every record should merge into the empty grid"
        );
        close(client, grid)?;
        Ok(elapsed)
    };
    let native = || {
        let mut grid = Grid::new(node("bench-reader"), ClockConfig::default());
        let started = Instant::now();
        let imported = grid.import_map("bench", &snapshot, WALL);
        let elapsed = started.elapsed();
        assert_eq!(imported.map(|i| i.changed).ok(), Some(RECORDS));
        elapsed
    };

    // Interleaved, so a busy machine slows all three alike.
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    for run in 0..WARMUP + RUNS {
        let sample = [native(), abi(&mut client, false)?, abi(&mut client, true)?];
        if run >= WARMUP {
            times.iter_mut().zip(sample).for_each(|(t, s)| t.push(s));
        }
    }
    for t in &mut times {
        t.sort();
    }
    let median = |t: &[Duration]| t[t.len() / 2];
    let native = median(&times[0]);
    println!("{:<38} {:>9} {:>13} {:>11} {:>9}", "", "median", "per merge", "vs native", "min");
    for (name, t) in
        ["native Grid::import_map", "ABI: Client::call", "ABI: Client::call_bytes (pre-encoded)"].iter().zip(&times)
    {
        let m = median(t);
        println!(
            "{name:<38} {:>6.3} ms {:>7.1} ns {:>10.2}x {:>6.3} ms",
            m.as_secs_f64() * 1e3,
            m.as_secs_f64() * 1e9 / RECORDS as f64,
            m.as_secs_f64() / native.as_secs_f64(),
            t[0].as_secs_f64() * 1e3,
        );
    }
    Ok(())
}

/// A snapshot of `RECORDS` small records from one writer.
fn snapshot() -> Vec<u8> {
    let mut clock = Hlc::new(node("bench-writer"), ClockConfig::default());
    let mut map = LwwMap::new();
    for i in 0..RECORDS {
        let value = Value::from(format!("value {i}"));
        map.set(&mut clock, WALL, &format!("key-{i:06}"), value, None).expect("valid key and value");
    }
    onegrid_core::codec::encode_lww_snapshot(&map)
}

fn node(id: &str) -> NodeId {
    NodeId::new(id).expect("a valid node id")
}

fn open(client: &mut Client) -> Result<u32, HostError> {
    let open = Command::Open { node_id: "bench-reader".into(), max_drift_ms: 60_000, strict: false };
    match client.call(&Request { grid: 0, wall: WALL, command: open })? {
        Reply::Opened(grid) => Ok(grid),
        other => panic!("Open answered {other:?}"),
    }
}

fn close(client: &mut Client, grid: u32) -> Result<(), HostError> {
    assert_eq!(client.call(&Request { grid, wall: WALL, command: Command::Close })?, Reply::Done);
    Ok(())
}
