//! Storage in the host: a 100 000-record LWW map flushed to, and loaded back from, SQLite (a file in
//! WAL mode) and PostgreSQL (`$ONEGRID_TEST_POSTGRES`, when set) through the module in wasmtime.
//!
//! Run with `cargo bench -p onegrid-host --bench storage`. Each run writes the map with one grid
//! (`SetMany`, then one `flush`), then opens a fresh grid on a new connection and times
//! `get_map` until the map is loaded; it prints the median (and minimum) of a few runs. The load
//! target is under 0.5 s for SQLite.

use std::time::{Duration, Instant};

use onegrid_core::{Command, MapKind, Reply, Value};
use onegrid_host::persistent::PersistentGrid;
use onegrid_host::storage;
use onegrid_host::{Runtime, RuntimeConfig, pkg};

const RECORDS: usize = 100_000;
const RUNS: usize = 5;

fn main() {
    let runtime = Runtime::new(pkg::WASM, RuntimeConfig::default()).expect("load the module");
    println!("{RECORDS} records of {{ n, name, done }}, median of {RUNS} runs (min in brackets)");
    let dir = std::env::temp_dir().join(format!("onegrid-bench-storage-{}", std::process::id()));
    let mut locations = vec![("sqlite", dir.join("grid.db").display().to_string())];
    if let Ok(url) = std::env::var("ONEGRID_TEST_POSTGRES") {
        locations.push(("postgres", url));
    } else {
        println!("(set ONEGRID_TEST_POSTGRES to time PostgreSQL too)");
    }
    for (name, location) in locations {
        let (mut flushes, mut loads) = (Vec::new(), Vec::new());
        for run in 0..RUNS {
            let map = format!("bench_{run}");
            let (flush, load) = once(&runtime, &location, &map);
            flushes.push(flush);
            loads.push(load);
        }
        println!("{name:>8}: flush {} | load into a new grid {}", summary(&mut flushes), summary(&mut loads));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes map `map` and flushes it, then loads it on a new grid: (flush time, load time).
fn once(runtime: &Runtime, location: &str, map: &str) -> (Duration, Duration) {
    if let Some(parent) = std::path::Path::new(location).parent().filter(|_| !location.contains("://")) {
        std::fs::create_dir_all(parent).expect("bench folder");
    }
    let mut writer = PersistentGrid::open(runtime, "writer", storage::open(location).expect("open")).expect("grid");
    writer.get_map(map, Some(MapKind::Lww)).expect("empty map");
    let entries = (0..RECORDS)
        .map(|i| {
            let value = Value::map([
                ("done", Value::Bool(i % 2 == 0)),
                ("n", Value::from(i as i64)),
                ("name", Value::from(format!("item {i}"))),
            ])
            .expect("distinct keys");
            (format!("todo-{i}"), value)
        })
        .collect();
    writer.call(Command::SetMany { map: map.into(), entries }).expect("set many");
    let root = writer.call(Command::Root { map: map.into() }).expect("root");
    let started = Instant::now();
    writer.flush().expect("flush");
    let flush = started.elapsed();
    drop(writer);

    let started = Instant::now();
    let mut reader = PersistentGrid::open(runtime, "reader", storage::open(location).expect("open")).expect("grid");
    assert_eq!(reader.get_map(map, None).expect("load"), MapKind::Lww);
    let load = started.elapsed();
    assert_eq!(reader.call(Command::Root { map: map.into() }).expect("root"), root);
    assert!(matches!(root, Reply::Root(r) if r != 0));
    (flush, load)
}

fn summary(times: &mut [Duration]) -> String {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!("{:.0} ms ({:.0} ms)", ms(times[times.len() / 2]), ms(times[0]))
}
