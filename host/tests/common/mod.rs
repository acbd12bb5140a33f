//! Helpers shared by the integration tests: a runtime over the real embedded module with a test
//! cache folder, request shorthands, a big snapshot, and tiny hand-assembled modules.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use onegrid_core::{ClockConfig, Command, Hlc, LwwMap, NodeId, Reply, Request, Value};
use onegrid_host::{Client, CodeCache, Runtime, RuntimeConfig, pkg};

pub const WALL: u64 = 1_700_000_000_000;

/// A cache folder shared by all test binaries, so the module is compiled once per build.
pub fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("onegrid-cache")
}

/// A fresh, empty folder under the target's temporary folder.
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir); // may not exist
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn config() -> RuntimeConfig {
    let mut config = RuntimeConfig::default();
    config.cache = CodeCache::Dir(cache_dir());
    config
}

/// The real module with default limits (built once per test binary).
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new(pkg::WASM, config()).unwrap())
}

pub fn request(grid: u32, command: Command) -> Request {
    Request { grid, wall: WALL, command }
}

pub fn open(client: &mut Client, node: &str) -> u32 {
    let command = Command::Open { node_id: node.into(), max_drift_ms: 60_000, strict: false };
    match client.call(&request(0, command)).unwrap() {
        Reply::Opened(handle) => handle,
        other => panic!("Open answered {other:?}"),
    }
}

pub fn set(map: &str, key: &str, value: impl Into<Value>) -> Command {
    Command::Set { map: map.into(), key: key.into(), value: value.into(), ttl_ms: None }
}

pub fn get(map: &str, key: &str) -> Command {
    Command::Get { map: map.into(), key: key.into() }
}

/// An LWW snapshot of `n` records written by one node, built natively with onegrid-core.
pub fn lww_snapshot(n: usize) -> Vec<u8> {
    let mut clock = Hlc::new(NodeId::new("snapshot-writer").unwrap(), ClockConfig::default());
    let mut map = LwwMap::new();
    for i in 0..n {
        map.set(&mut clock, WALL, &format!("key-{i:07}"), Value::from(format!("value number {i}")), None).unwrap();
    }
    onegrid_core::codec::encode_lww_snapshot(&map)
}

/// A 100 000-record snapshot (a few MiB), built once per test binary.
pub fn big_snapshot() -> &'static [u8] {
    static BIG: OnceLock<Vec<u8>> = OnceLock::new();
    BIG.get_or_init(|| lww_snapshot(100_000))
}

// ---- hand-assembled modules ------------------------------------------------------------------

fn uleb(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn sleb(mut n: i64, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        let done = (n == 0 && byte & 0x40 == 0) || (n == -1 && byte & 0x40 != 0);
        out.push(if done { byte } else { byte | 0x80 });
        if done {
            return;
        }
    }
}

fn vec_of(items: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    uleb(items.len() as u64, &mut out);
    items.iter().for_each(|item| out.extend(item));
    out
}

fn section(id: u8, body: Vec<u8>, module: &mut Vec<u8>) {
    module.push(id);
    uleb(body.len() as u64, module);
    module.extend(body);
}

/// `i64.const n`.
pub fn i64_const(n: i64) -> Vec<u8> {
    let mut out = vec![0x42];
    sleb(n, &mut out);
    out
}

/// An endless loop, then `i64.const 0` (never reached, but it makes the body type-check).
pub const LOOP_FOREVER: &[u8] = &[0x03, 0x40, 0x0c, 0x00, 0x0b, 0x42, 0x00];

/// A module with the byte-ABI exports and one page of memory: `onegrid_abi_version` returns `abi`,
/// `onegrid_alloc` returns 1024, `onegrid_free` does nothing, and `onegrid_call`'s body is `call`
/// (instructions leaving one i64).
pub fn fake_module(abi: i32, call: &[u8]) -> Vec<u8> {
    const I32: u8 = 0x7f;
    const I64: u8 = 0x7e;
    let func_type = |params: &[u8], results: &[u8]| {
        let mut t = vec![0x60];
        t.extend(vec_of(&params.iter().map(|p| vec![*p]).collect::<Vec<_>>()));
        t.extend(vec_of(&results.iter().map(|r| vec![*r]).collect::<Vec<_>>()));
        t
    };
    let export = |name: &str, kind: u8, index: u8| {
        let mut e = Vec::new();
        uleb(name.len() as u64, &mut e);
        e.extend(name.as_bytes());
        e.extend([kind, index]);
        e
    };
    let body = |instructions: &[u8]| {
        let mut code = vec![0x00]; // no locals
        code.extend(instructions);
        code.push(0x0b);
        let mut b = Vec::new();
        uleb(code.len() as u64, &mut b);
        b.extend(code);
        b
    };
    let mut version = vec![0x41];
    sleb(abi.into(), &mut version);

    let mut module = b"\0asm\x01\0\0\0".to_vec();
    let types = [
        func_type(&[], &[I32]),
        func_type(&[I32], &[I32]),
        func_type(&[I32, I32], &[]),
        func_type(&[I32, I32], &[I64]),
    ];
    section(1, vec_of(&types), &mut module);
    section(3, vec_of(&[vec![0], vec![1], vec![2], vec![3]]), &mut module);
    section(5, vec_of(&[vec![0x00, 1]]), &mut module); // one memory: min 1 page, no max
    let exports = [
        export("memory", 2, 0),
        export("onegrid_abi_version", 0, 0),
        export("onegrid_alloc", 0, 1),
        export("onegrid_free", 0, 2),
        export("onegrid_call", 0, 3),
    ];
    section(7, vec_of(&exports), &mut module);
    let bodies = [body(&version), body(&[0x41, 0x80, 0x08]), body(&[]), body(call)];
    section(10, vec_of(&bodies), &mut module);
    module
}

/// A URL of the test PostgreSQL server (`$ONEGRID_TEST_POSTGRES`) that puts a connection in a
/// schema of its own, so tests never see each other's tables. Panics with how to start a server
/// when the variable is unset: the PostgreSQL tests never skip.
pub fn postgres_schema_url() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let admin = match std::env::var("ONEGRID_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "ONEGRID_TEST_POSTGRES is not set: this test needs a PostgreSQL server. Start a throwaway one \
             on loopback with\n    export ONEGRID_TEST_POSTGRES=\"$(tests/ci/postgres.sh start)\""
        ),
    };
    let schema = format!("onegrid_host_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let mut client = ::postgres::Client::connect(&admin, ::postgres::NoTls)
        .unwrap_or_else(|e| panic!("cannot reach ONEGRID_TEST_POSTGRES ({admin}): {e}"));
    client.batch_execute(&format!("CREATE SCHEMA {schema}")).unwrap();
    let sep = if admin.contains('?') { '&' } else { '?' };
    // `options` is sent at startup: `-c search_path=<schema>`, percent-encoded.
    format!("{admin}{sep}options=-c%20search_path%3D{schema}")
}
