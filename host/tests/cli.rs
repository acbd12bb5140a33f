//! The `onegrid` binary: `pkg` writes the very module `info` describes, `run` passes, errors exit
//! non-zero with a message.
// In tests a panic is the failure report: unwrap means "this must succeed".
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Output};

use common::{cache_dir, fresh_dir};
use sha2::{Digest, Sha256};

fn onegrid(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_onegrid"))
        .args(args)
        .env("ONEGRID_CACHE_DIR", cache_dir())
        .output()
        .expect("run the onegrid binary")
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn field<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines().find_map(|line| line.strip_prefix(name)).unwrap_or_else(|| panic!("no `{name}` in:\n{text}"))
}

#[test]
fn pkg_writes_the_module_that_info_hashes() {
    let info = stdout(&onegrid(&["info"]));
    let sha = field(&info, "sha256: ");
    assert_eq!(field(&info, "abi: "), onegrid_core::ABI_VERSION.to_string());

    let dir = fresh_dir("pkg-test");
    stdout(&onegrid(&["pkg", "--out", dir.to_str().unwrap()]));
    let wasm = std::fs::read(dir.join("onegrid_bg.wasm")).unwrap();
    assert_eq!(onegrid_host::hex(&Sha256::digest(&wasm)), sha);
    assert_eq!(field(&info, "size: "), format!("{} bytes", wasm.len()));
    assert_eq!(wasm, onegrid_host::pkg::WASM);

    for (name, bytes) in onegrid_host::pkg::FILES {
        assert_eq!(std::fs::read(dir.join(name)).unwrap(), bytes, "{name}");
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("package.json")).unwrap()).unwrap();
    assert_eq!(json["name"], "onegrid");
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["type"], "module");
    assert_eq!(json["exports"]["."]["default"], "./onegrid.js");
    assert_eq!(json["exports"]["./onegrid_bg.wasm"], "./onegrid_bg.wasm");
    let listed: Vec<&str> = json["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    assert_eq!(listed, onegrid_host::pkg::FILES.map(|(name, _)| name));
    let _ = std::fs::remove_dir_all(dir); // best effort
}

#[test]
fn pkg_replaces_an_earlier_package_and_keeps_other_files() {
    let dir = fresh_dir("pkg-rewrite");
    let out = dir.to_str().unwrap();
    stdout(&onegrid(&["pkg", "--out", out]));
    // An earlier package that shipped `gone.js`, since removed from wasm/js, beside a user's files.
    let manifest = dir.join("package.json");
    let text = std::fs::read_to_string(&manifest).unwrap().replace(r#""files": ["#, r#""files": ["gone.js", "#);
    std::fs::write(&manifest, text).unwrap();
    std::fs::write(dir.join("gone.js"), "export {};").unwrap();
    std::fs::write(dir.join("onegrid.js"), "stale").unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    std::fs::create_dir(dir.join("src")).unwrap();

    stdout(&onegrid(&["pkg", "--out", out]));
    assert!(!dir.join("gone.js").exists(), "a file the package no longer has lives on");
    assert_eq!(std::fs::read_to_string(dir.join("notes.txt")).unwrap(), "mine");
    assert!(dir.join("src").is_dir());
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    let mut expected: Vec<&str> = onegrid_host::pkg::FILES.map(|(name, _)| name).to_vec();
    expected.extend(["notes.txt", "package.json", "src"]);
    expected.sort();
    assert_eq!(names, expected);
    for (name, bytes) in onegrid_host::pkg::FILES {
        assert_eq!(std::fs::read(dir.join(name)).unwrap(), bytes, "{name}");
    }
    let _ = std::fs::remove_dir_all(dir); // best effort
}

#[test]
fn pkg_refuses_to_overwrite_files_of_no_onegrid_package() {
    // A file the package would write, in a folder with no package.json or another package's.
    for manifest in [None, Some(r#"{ "name": "other", "files": ["onegrid.js"] }"#), Some("not json")] {
        let dir = fresh_dir("pkg-foreign");
        std::fs::write(dir.join("onegrid.js"), "mine").unwrap();
        if let Some(text) = manifest {
            std::fs::write(dir.join("package.json"), text).unwrap();
        }
        let refused = onegrid(&["pkg", "--out", dir.to_str().unwrap()]);
        assert_eq!(refused.status.code(), Some(1), "{manifest:?}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("onegrid.js is there but is not part of an onegrid package"), "{stderr}");
        assert_eq!(std::fs::read_to_string(dir.join("onegrid.js")).unwrap(), "mine");
        let left = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(left, 1 + usize::from(manifest.is_some()), "nothing written");
        let _ = std::fs::remove_dir_all(dir); // best effort
    }
}

#[test]
fn run_is_the_default_and_passes() {
    for args in [&[][..], &["run"]] {
        let out = stdout(&onegrid(args));
        assert_eq!(field(&out, "sha256: "), onegrid_host::hex(&Sha256::digest(onegrid_host::pkg::WASM)));
        assert!(field(&out, "root: ").contains("equal on both grids"), "{out}");
        assert_eq!(out.lines().last(), Some("ok"));
    }
}

#[test]
fn help_and_errors() {
    assert!(stdout(&onegrid(&["--help"])).starts_with("usage: onegrid"));
    let usage = onegrid(&["frobnicate"]);
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("unknown command `frobnicate`"));
    assert_eq!(onegrid(&["pkg"]).status.code(), Some(2));

    let dir = fresh_dir("cli-errors");
    let empty = dir.join("empty.wasm");
    std::fs::write(&empty, b"\0asm\x01\0\0\0").unwrap();
    let failed = onegrid(&["run", "--module", empty.to_str().unwrap()]);
    assert_eq!(failed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&failed.stderr).contains("not a onegrid module"));
    let missing = onegrid(&["info", "--module", dir.join("missing.wasm").to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read module"));
    let _ = std::fs::remove_dir_all(dir); // best effort
}
