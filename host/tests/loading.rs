//! Loading modules: what is not a onegrid module is refused with a clear error, and compiled code
//! is cached and reused.
// In tests a panic is the failure report: unwrap means "this must succeed".
#![allow(clippy::unwrap_used)]

mod common;

use common::{fake_module, fresh_dir, get, i64_const, open, request};
use onegrid_core::{ABI_VERSION, Reply};
use onegrid_host::{Client, CodeCache, CodeSource, HostError, Runtime, RuntimeConfig, pkg};

fn uncached() -> RuntimeConfig {
    let mut config = RuntimeConfig::default();
    config.cache = CodeCache::Off;
    config
}

fn load_error(wasm: &[u8]) -> HostError {
    Runtime::new(wasm, uncached()).expect_err("the module should be refused")
}

#[test]
fn an_empty_module_is_not_onegrid() {
    let err = load_error(b"\0asm\x01\0\0\0");
    assert!(matches!(err, HostError::NotOnegrid { .. }), "{err}");
    let text = err.to_string();
    assert!(text.starts_with("module does not export onegrid_call"), "{text}");
    assert!(text.ends_with("not a onegrid module"), "{text}");
}

#[test]
fn bytes_that_are_not_wasm_are_refused() {
    for bytes in [&b""[..], b"hello", b"\0asm\x01\0\0\0\x7f"] {
        let err = load_error(bytes);
        assert!(matches!(err, HostError::Compile(_)), "{err}");
        assert!(err.to_string().starts_with("the module is not valid WebAssembly"), "{err}");
    }
}

#[test]
fn another_abi_version_is_refused() {
    let other = ABI_VERSION + 1;
    let err = load_error(&fake_module(i32::try_from(other).unwrap(), &i64_const(0)));
    assert!(matches!(err, HostError::AbiMismatch { module, host: ABI_VERSION } if module == other), "{err}");
    assert_eq!(err.to_string(), format!("module ABI version {other}, host expects {ABI_VERSION}"));
}

#[test]
fn the_compiled_code_is_cached_and_reused() {
    let dir = fresh_dir("cache-test");
    let mut config = RuntimeConfig::default();
    config.cache = CodeCache::Dir(dir.clone());

    let first = Runtime::new(pkg::WASM, config.clone()).unwrap();
    let CodeSource::CompiledAndSaved(path) = first.code_source().clone() else {
        panic!("first start should compile and save, got {:?}", first.code_source())
    };
    assert!(path.starts_with(&dir) && path.is_file());
    assert!(path.file_name().unwrap().to_string_lossy().starts_with(&first.sha256_hex()));

    let second = Runtime::new(pkg::WASM, config.clone()).unwrap();
    assert_eq!(second.code_source(), &CodeSource::Cache(path.clone()));
    let mut client = Client::new(&second).unwrap();
    let g = open(&mut client, "from-cache");
    assert_eq!(client.call(&request(g, get("m", "k"))).unwrap(), Reply::Value(None));

    // A damaged file is not trusted: the module is compiled again and the file replaced. (Drop the
    // runtimes first: `second` maps the file, and changing a mapped file in place is what the
    // cache itself never does.)
    drop((first, second, client));
    std::fs::write(&path, b"not a compiled module").unwrap();
    let third = Runtime::new(pkg::WASM, config).unwrap();
    assert_eq!(third.code_source(), &CodeSource::CompiledAndSaved(path.clone()));
    assert_ne!(std::fs::read(&path).unwrap(), b"not a compiled module");
    let _ = std::fs::remove_dir_all(dir); // best effort
}

#[test]
fn a_memory_limit_below_the_modules_initial_memory_is_refused_at_load() {
    let mut config = common::config();
    config.memory_limit = 64 << 10;
    let err = Runtime::new(pkg::WASM, config).expect_err("a 64 KiB limit is below the module's stack");
    assert!(matches!(err, HostError::Instantiate(_)), "{err}");
    assert!(err.to_string().contains("memory limit of 65536 bytes"), "{err}");
}

#[test]
fn a_module_whose_version_export_traps_is_refused() {
    let mut module = fake_module(onegrid_core::ABI_VERSION as i32, &i64_const(0));
    // Replace `i32.const ABI_VERSION` in onegrid_abi_version's body with `unreachable` (and a `nop`).
    let body = module.windows(5).position(|w| w == [0x04, 0x00, 0x41, ABI_VERSION as u8, 0x0b]).unwrap();
    module[body + 2..body + 4].copy_from_slice(&[0x00, 0x01]);
    let err = load_error(&module);
    assert!(matches!(err, HostError::NotOnegrid { .. }), "{err}");
    assert!(err.to_string().contains("fails in `onegrid_abi_version`"), "{err}");
}
