//! The JavaScript package, embedded: the module this host runs ([`WASM`]) and the files
//! wasm-bindgen wrote beside it. `onegrid pkg --out DIR` writes them out with a `package.json`, so
//! browsers, Node and edge workers load the very bytes the host runs (same SHA-256).

use std::collections::BTreeSet;
use std::path::Path;
use std::{fs, io};

/// The module: `onegrid_bg.wasm` as wasm-bindgen wrote it, built by `host/build.rs`.
pub const WASM: &[u8] = include_bytes!(concat!(env!("ONEGRID_PKG_DIR"), "/onegrid_bg.wasm"));
include!(concat!(env!("OUT_DIR"), "/pkg_files.rs"));

/// The npm manifest as it sits in `wasm/js/package.json` (valid JSON, so Node can read it beside
/// the sources), with `${version}`, `${license}` and `"${files}"` for [`package_json`] to fill in.
const PACKAGE_JSON_TEMPLATE: &str = include_str!("../../wasm/js/package.json");

/// The package's `package.json`: an ES module package named `onegrid`, versioned like this crate,
/// whose `files` lists every file of the package but itself ([`FILES`]).
pub fn package_json() -> String {
    let files: Vec<String> = FILES.iter().map(|(name, _)| format!("\"{name}\"")).collect();
    // Every interpolated value is a crate constant or a file name without quotes or backslashes
    // (build.rs names them): no escaping needed.
    PACKAGE_JSON_TEMPLATE
        .replace("${version}", env!("CARGO_PKG_VERSION"))
        .replace("${license}", env!("CARGO_PKG_LICENSE"))
        .replace("\"${files}\"", &files.join(", "))
}

/// Writes the package into `dir` (created if needed); returns the names written.
///
/// The folder may hold other files, which stay untouched, and an earlier package, whose files go:
/// those its `package.json` (`"name": "onegrid"`) lists in `files`, so a file the package no longer
/// has does not live on. A file of the package's that is already there and not listed by an earlier
/// package is someone else's: the call then fails with `AlreadyExists` before changing anything.
pub fn write(dir: &Path) -> io::Result<Vec<&'static str>> {
    fs::create_dir_all(dir)?;
    let owned = earlier_package(dir)?;
    let names: Vec<&'static str> = FILES.iter().map(|(name, _)| *name).chain(["package.json"]).collect();
    for name in &names {
        if !owned.contains(*name) && fs::symlink_metadata(dir.join(name)).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{name} is there but is not part of an onegrid package (no package.json of onegrid lists it): \
                     write the package to an empty folder or remove it"
                ),
            ));
        }
    }
    // The earlier package's files that this one lacks go first; package.json is written before the
    // files it lists, so a write cut short leaves a folder the next run still recognises.
    for stale in owned.iter().filter(|name| !names.contains(&name.as_str())) {
        let path = dir.join(stale);
        match fs::symlink_metadata(&path) {
            Ok(meta) if !meta.is_dir() => fs::remove_file(&path)?,
            _ => {} // gone already, or a folder: not a file an earlier run wrote
        }
    }
    fs::write(dir.join("package.json"), package_json())?;
    for (name, bytes) in FILES {
        fs::write(dir.join(name), bytes)?;
    }
    Ok(names)
}

/// The files of the onegrid package already in `dir`: its `package.json` and the plain file names
/// its `files` lists. Empty when there is no `package.json`, or it is not onegrid's.
fn earlier_package(dir: &Path) -> io::Result<BTreeSet<String>> {
    let text = match fs::read(dir.join("package.json")) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(e),
    };
    let Ok(manifest) = serde_json::from_slice::<serde_json::Value>(&text) else { return Ok(BTreeSet::new()) };
    let (Some("onegrid"), Some(files)) = (manifest["name"].as_str(), manifest["files"].as_array()) else {
        return Ok(BTreeSet::new());
    };
    let plain = |name: &&str| !name.is_empty() && *name != "." && *name != ".." && !name.contains(['/', '\\']);
    let mut owned: BTreeSet<String> = files.iter().filter_map(|f| f.as_str()).filter(plain).map(String::from).collect();
    owned.insert("package.json".into());
    Ok(owned)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_manifest_template_is_filled_in() {
        let json = super::package_json();
        assert!(!json.contains("${"), "{json}");
        let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(value["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(value["files"].as_array().map(Vec::len), Some(super::FILES.len()));
    }
}
