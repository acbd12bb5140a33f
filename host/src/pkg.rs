//! The JavaScript package, embedded: the module this host runs ([`WASM`]) and the files
//! wasm-bindgen wrote beside it. `onegrid pkg --out DIR` writes them out with a `package.json`, so
//! browsers, Node and edge workers load the very bytes the host runs (same SHA-256).

use std::path::Path;
use std::{fs, io};

/// The module: `onegrid_bg.wasm` as wasm-bindgen wrote it, built by `host/build.rs`.
pub const WASM: &[u8] = include_bytes!(concat!(env!("ONEGRID_PKG_DIR"), "/onegrid_bg.wasm"));
include!(concat!(env!("OUT_DIR"), "/pkg_files.rs"));

/// The package's `package.json`: an ES module package named `onegrid`, versioned like this crate.
pub fn package_json() -> String {
    let files: Vec<String> = FILES.iter().map(|(name, _)| format!("\"{name}\"")).collect();
    // Every interpolated value is a crate constant without quotes or backslashes: no escaping needed.
    format!(
        r#"{{
  "name": "onegrid",
  "version": "{version}",
  "description": "Offline-first CRDT data grid: the onegrid WebAssembly module and its JavaScript API.",
  "license": "{license}",
  "type": "module",
  "main": "onegrid.js",
  "module": "onegrid.js",
  "types": "onegrid.d.ts",
  "exports": {{
    ".": {{
      "types": "./onegrid.d.ts",
      "default": "./onegrid.js"
    }},
    "./storage": {{
      "types": "./storage.d.ts",
      "default": "./storage.js"
    }},
    "./onegrid_bg.wasm": "./onegrid_bg.wasm"
  }},
  "files": [{files}]
}}
"#,
        version = env!("CARGO_PKG_VERSION"),
        license = env!("CARGO_PKG_LICENSE"),
        files = files.join(", "),
    )
}

/// Writes the package into `dir` (created if needed); returns the names written.
pub fn write(dir: &Path) -> io::Result<Vec<&'static str>> {
    fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for (name, bytes) in FILES {
        fs::write(dir.join(name), bytes)?;
        written.push(name);
    }
    fs::write(dir.join("package.json"), package_json())?;
    written.push("package.json");
    Ok(written)
}
