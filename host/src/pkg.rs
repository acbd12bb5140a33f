//! The JavaScript package, embedded: the module this host runs ([`WASM`]) and the files
//! wasm-bindgen wrote beside it. `onegrid pkg --out DIR` writes them out with a `package.json`, so
//! browsers, Node and edge workers load the very bytes the host runs (same SHA-256).

use std::path::Path;
use std::{fs, io};

/// The module: `onegrid_bg.wasm` as wasm-bindgen wrote it, built by `host/build.rs`.
pub const WASM: &[u8] = include_bytes!(concat!(env!("ONEGRID_PKG_DIR"), "/onegrid_bg.wasm"));
/// The JavaScript API (ES module: `init()` / `initSync()`, `Grid`, `LwwMap`, `OrMap`).
pub const JS: &str = include_str!(concat!(env!("ONEGRID_PKG_DIR"), "/onegrid.js"));
/// TypeScript types of the JavaScript API.
pub const DTS: &str = include_str!(concat!(env!("ONEGRID_PKG_DIR"), "/onegrid.d.ts"));
/// The API's value codec (JS values to and from the module's postcard bytes).
pub const VALUES_JS: &str = include_str!(concat!(env!("ONEGRID_PKG_DIR"), "/values.js"));
/// wasm-bindgen's glue (`--target web`), which the API imports.
pub const GLUE_JS: &str = include_str!(concat!(env!("ONEGRID_PKG_DIR"), "/onegrid_glue.js"));
/// TypeScript types of the glue.
pub const GLUE_DTS: &str = include_str!(concat!(env!("ONEGRID_PKG_DIR"), "/onegrid_glue.d.ts"));
/// TypeScript types of the module's raw exports.
pub const WASM_DTS: &str = include_str!(concat!(env!("ONEGRID_PKG_DIR"), "/onegrid_bg.wasm.d.ts"));

/// The package's files other than `package.json`, by name.
pub const FILES: [(&str, &[u8]); 7] = [
    ("onegrid_bg.wasm", WASM),
    ("onegrid.js", JS.as_bytes()),
    ("onegrid.d.ts", DTS.as_bytes()),
    ("values.js", VALUES_JS.as_bytes()),
    ("onegrid_glue.js", GLUE_JS.as_bytes()),
    ("onegrid_glue.d.ts", GLUE_DTS.as_bytes()),
    ("onegrid_bg.wasm.d.ts", WASM_DTS.as_bytes()),
];

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
