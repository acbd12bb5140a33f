//! A misbehaving guest never takes the host down: traps, deadlines, the memory limit and broken
//! replies become typed errors, the instance is dropped, and the next call works on a fresh one.
// In tests a panic is the failure report: unwrap means "this must succeed".
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{LOOP_FOREVER, big_snapshot, config, fake_module, get, i64_const, open, request, runtime, set};
use onegrid_core::{Command, Reply, Value};
use onegrid_host::{Client, CodeCache, HostError, Runtime};

/// After a lost instance: the old grid is gone, and a new one works.
fn assert_fresh_instance_works(client: &mut Client, old_grid: u32) {
    assert!(!client.has_instance());
    let Reply::Error(onegrid_core::WireError { code, message }) =
        client.call(&request(old_grid, get("m", "k"))).unwrap()
    else {
        panic!("the old grid should be gone with its instance")
    };
    assert_eq!(code, "NOT_FOUND", "{message}");
    let g = open(client, "node-after");
    client.call(&request(g, set("m", "k", "fresh"))).unwrap();
    assert_eq!(client.call(&request(g, get("m", "k"))).unwrap(), Reply::Value(Some(Value::from("fresh"))));
}

#[test]
fn a_trap_is_contained() {
    let mut client = Client::new(runtime()).unwrap();
    let g = open(&mut client, "node-trap");
    client.call(&request(g, set("m", "k", "v"))).unwrap();

    // A request pointer far outside the module's memory: decoding it traps.
    let err = client.raw_call(0xffff_fff0, 16).unwrap_err();
    assert!(matches!(&err, HostError::Trap { message } if message.contains("out of bounds")), "{err}");
    assert!(err.instance_lost());
    assert!(err.to_string().contains("grids opened on it are gone"), "{err}");
    assert_fresh_instance_works(&mut client, g);
}

#[test]
fn the_memory_limit_is_contained() {
    let mut tight = config();
    tight.memory_limit = 8 << 20;
    let runtime = Runtime::new(onegrid_host::pkg::WASM, tight).unwrap();
    let mut client = Client::new(&runtime).unwrap();
    let g = open(&mut client, "node-memory");
    client.call(&request(g, set("m", "k", "v"))).unwrap();

    let import = Command::Import { map: "big".into(), snapshot: big_snapshot().to_vec() };
    let err = client.call(&request(g, import)).unwrap_err();
    assert!(matches!(err, HostError::MemoryLimit { limit, wanted } if limit == 8 << 20 && wanted > limit), "{err}");
    assert!(err.instance_lost());
    assert_fresh_instance_works(&mut client, g);
}

#[test]
fn a_long_call_hits_its_deadline() {
    let mut fast_ticks = config();
    fast_ticks.epoch_tick = Duration::from_millis(1);
    let runtime = Runtime::new(onegrid_host::pkg::WASM, fast_ticks).unwrap();
    let mut client = Client::new(&runtime).unwrap();
    let g = open(&mut client, "node-deadline");
    client.call(&request(g, set("m", "k", "v"))).unwrap();

    client.set_call_timeout(Duration::from_millis(1)); // one tick, plus the one in progress
    let import = Command::Import { map: "big".into(), snapshot: big_snapshot().to_vec() };
    let err = client.call(&request(g, import)).unwrap_err();
    assert!(matches!(err, HostError::Deadline { timeout } if timeout == Duration::from_millis(1)), "{err}");
    assert!(err.instance_lost());

    client.set_call_timeout(Duration::from_secs(10));
    assert_fresh_instance_works(&mut client, g);
}

#[test]
fn a_runaway_guest_is_interrupted_every_time() {
    let mut config = config();
    config.call_timeout = Duration::from_millis(50);
    config.cache = CodeCache::Off;
    let runtime = Runtime::new(&fake_module(onegrid_core::ABI_VERSION as i32, LOOP_FOREVER), config).unwrap();
    let mut client = Client::new(&runtime).unwrap();
    for _ in 0..2 {
        let started = Instant::now();
        let err = client.call_bytes(b"anything").unwrap_err();
        assert!(matches!(err, HostError::Deadline { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
        assert!(!client.has_instance());
    }
}

#[test]
fn replies_outside_memory_or_too_large_are_refused() {
    let cases: [(i64, &str); 3] = [
        ((0x1_0000 << 32) | 16, "outside its memory"), // one page is 0x1_0000 bytes
        (0x7fff_ffff, "larger than the limit"),
        (0, "does not decode"),
    ];
    for (packed, expected) in cases {
        let mut config = config();
        config.cache = CodeCache::Off;
        let runtime = Runtime::new(&fake_module(onegrid_core::ABI_VERSION as i32, &i64_const(packed)), config).unwrap();
        let mut client = Client::new(&runtime).unwrap();
        let err = client.call_bytes(b"anything").unwrap_err();
        assert!(matches!(&err, HostError::AbiViolation { reason } if reason.contains(expected)), "{err}");
        assert!(err.instance_lost() && !client.has_instance());
    }
}
