//! Builds the onegrid WebAssembly module and its JavaScript package, so the `onegrid` binary can
//! embed the very bytes it runs and write them out with `onegrid pkg`.
//!
//! The module is built by a nested cargo for `wasm32-unknown-unknown` with the size-optimised
//! `wasm` profile, in its own target folder beside ours (the outer build holds a lock on ours), and
//! then run through wasm-bindgen's library (`--target web` output, TypeScript on). The generated
//! glue becomes `onegrid_glue.js`; the public API (`onegrid.js`, `onegrid.d.ts`, and every other file
//! of `wasm/js/`) is copied beside it, and `pkg_files.rs` lists the package for `pkg.rs` to embed.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.parent().expect("host/ sits in the workspace").to_path_buf();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // Relative to host/, so cargo checks the checkout being built: two clones sharing one target
    // folder share this script's output folder too, and absolute paths would watch the other one.
    for watched in
        ["core/src", "core/Cargo.toml", "wasm/src", "wasm/js", "wasm/Cargo.toml", "Cargo.toml", "Cargo.lock", "www"]
    {
        println!("cargo:rerun-if-changed=../{watched}");
    }
    embed_www(&workspace.join("www"), &out_dir);

    // Features of the module, for bench-only builds (`bench-twins`: tests/bench/value-path-bench.mjs);
    // the shipped module has none.
    println!("cargo:rerun-if-env-changed=ONEGRID_MODULE_FEATURES");
    let features = std::env::var("ONEGRID_MODULE_FEATURES").unwrap_or_default();

    ensure_wasm_target();
    let module_target = module_target_dir(&out_dir, &workspace);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&workspace)
        .args(["build", "-p", "onegrid-wasm", "--lib", "--target", "wasm32-unknown-unknown", "--profile", "wasm"])
        .args(["--features", &features])
        .env("CARGO_TARGET_DIR", &module_target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("could not run cargo to build the wasm module");
    assert!(status.success(), "building the onegrid wasm module failed (see the output above)");

    let raw = module_target.join("wasm32-unknown-unknown/wasm/onegrid_wasm.wasm");
    let pkg = out_dir.join("pkg");
    // Start empty, so a file removed from wasm/js does not linger in the package.
    let _ = std::fs::remove_dir_all(&pkg);
    std::fs::create_dir_all(&pkg).expect("create the package folder");
    let mut bindgen = wasm_bindgen_cli_support::Bindgen::new();
    bindgen
        .input_path(&raw)
        .out_name("onegrid")
        .typescript(true)
        .remove_name_section(true)
        .remove_producers_section(true);
    bindgen.web(true).expect("wasm-bindgen web target");
    bindgen.generate(&pkg).unwrap_or_else(|e| panic!("wasm-bindgen failed on {}: {e:#}", raw.display()));
    // wasm-bindgen's glue is internal: the public API is the wrapper in wasm/js, which imports it.
    for (from, to) in [("onegrid.js", "onegrid_glue.js"), ("onegrid.d.ts", "onegrid_glue.d.ts")] {
        std::fs::rename(pkg.join(from), pkg.join(to)).unwrap_or_else(|e| panic!("rename {from}: {e}"));
    }
    // Every file of wasm/js ships: the API, its value codec, the storage driver and adapters.
    let js_dir = workspace.join("wasm/js");
    for entry in std::fs::read_dir(&js_dir).unwrap_or_else(|e| panic!("read {}: {e}", js_dir.display())) {
        let path = entry.expect("wasm/js entry").path();
        if path.is_file() {
            let name = path.file_name().expect("file name");
            std::fs::copy(&path, pkg.join(name)).unwrap_or_else(|e| panic!("copy {}: {e}", path.display()));
        }
    }
    // The package's file list, for `pkg.rs` to embed: every file in it, sorted by name.
    let mut names: Vec<String> = std::fs::read_dir(&pkg)
        .expect("read the package folder")
        .map(|e| e.expect("package entry").file_name().into_string().expect("UTF-8 file name"))
        .filter(|name| name != "package.json")
        .collect();
    names.sort();
    let list: String = names
        .iter()
        .map(|name| format!("    ({name:?}, include_bytes!({:?})),\n", pkg.join(name).display().to_string()))
        .collect();
    let generated = format!(
        "/// The package's files other than `package.json`, by name.\npub const FILES: [(&str, &[u8]); {}] = [\n{list}];\n",
        names.len()
    );
    std::fs::write(out_dir.join("pkg_files.rs"), generated).expect("write pkg_files.rs");
    println!("cargo:rustc-env=ONEGRID_PKG_DIR={}", pkg.display());
}

/// Lists the web app's files (`www/`, every file under it) in `www_files.rs`, for `serve` to
/// embed, so a fresh machine needs nothing beside the binary. They are copied under `OUT_DIR`
/// first: `include_bytes!` takes an absolute path, and a build directory shared by two checkouts
/// (CI's cache) may skip this script for the second one when its files are older than the last
/// run, which then failed to build. (The second checkout then gets the first one's app and module,
/// as for every input of this script; a fresh clone's files are newer, so CI always reruns it.)
fn embed_www(www: &Path, out_dir: &Path) {
    let copies = out_dir.join("www");
    let _ = std::fs::remove_dir_all(&copies);
    let mut files = Vec::new();
    let mut dirs = vec![www.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
            let path = entry.expect("www entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let name = path.strip_prefix(www).expect("under www").to_str().expect("UTF-8 path").replace('\\', "/");
                let copy = copies.join(&name);
                std::fs::create_dir_all(copy.parent().expect("under www")).expect("create a www copy's folder");
                std::fs::copy(&path, &copy).unwrap_or_else(|e| panic!("copy {}: {e}", path.display()));
                files.push((name, copy));
            }
        }
    }
    files.sort();
    let list: String = files
        .iter()
        .map(|(name, path)| format!("    ({name:?}, include_bytes!({:?})),\n", path.display().to_string()))
        .collect();
    let generated = format!(
        "/// The web app's files (`www/`), by path relative to it.\npub const FILES: [(&str, &[u8]); {}] = [\n{list}];\n",
        files.len()
    );
    std::fs::write(out_dir.join("www_files.rs"), generated).expect("write www_files.rs");
}

/// The target the module is built for.
const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// Makes sure the toolchain building us has the standard library for [`WASM_TARGET`].
///
/// rust-toolchain.toml lists the target, but rustup adds a toolchain file's targets only when it
/// installs the toolchain itself: with the toolchain already there (or `RUSTUP_AUTO_INSTALL=0`)
/// the nested build would stop at `can't find crate for core`. So ask the compiler in use where
/// the target's libraries live; if they are missing, add them with rustup for this very toolchain
/// (`RUSTUP_TOOLCHAIN`, which rustup's proxies set), or say what to run.
fn ensure_wasm_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let printed = Command::new(&rustc).args(["--print", "target-libdir", "--target", WASM_TARGET]).output();
    let dir = match printed {
        Ok(out) if out.status.success() => PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()),
        _ => panic!("could not ask `{rustc} --print target-libdir --target {WASM_TARGET}` where the target lives"),
    };
    let installed = || {
        std::fs::read_dir(&dir).is_ok_and(|entries| {
            entries.flatten().any(|e| e.file_name().to_str().is_some_and(|n| n.starts_with("libcore-")))
        })
    };
    if installed() {
        return;
    }
    let toolchain = std::env::var("RUSTUP_TOOLCHAIN").ok().filter(|t| !t.is_empty());
    let mut add = Command::new("rustup");
    add.args(["target", "add", WASM_TARGET]);
    add.args(toolchain.iter().flat_map(|t| ["--toolchain", t.as_str()]));
    // Its stdout would be read by cargo as this script's instructions.
    add.stdout(std::io::stderr());
    let shown = match &toolchain {
        Some(t) => format!("rustup target add {WASM_TARGET} --toolchain {t}"),
        None => format!("rustup target add {WASM_TARGET}"),
    };
    println!(
        "cargo:warning=the Rust toolchain lacks the {WASM_TARGET} target (no {}): running `{shown}`",
        dir.display()
    );
    let failed = match add.status() {
        Ok(status) if status.success() => None,
        Ok(status) => Some(format!("`{shown}` failed ({status})")),
        Err(e) => Some(format!("rustup could not be run ({e})")),
    };
    if failed.is_none() && installed() {
        return;
    }
    let why = failed.unwrap_or_else(|| format!("`{shown}` ran, but the folder still has no libcore"));
    // Not a panic: a backtrace would bury what to run.
    eprintln!(
        "error: the module needs the {WASM_TARGET} target, and the Rust toolchain of `{rustc}` does not have it \
         (its libraries would be in {}): {why}.\n\
         With rustup, run:  {shown}\n\
         Without rustup, install your Rust distribution's standard library for {WASM_TARGET} (e.g. Debian's \
         `libstd-rust-dev-wasm32`), so that the folder above holds libcore-*.rlib.",
        dir.display()
    );
    std::process::exit(1);
}

/// A target folder for the nested module build: beside the outer build's target folder.
fn module_target_dir(out_dir: &Path, workspace: &Path) -> PathBuf {
    // OUT_DIR is <target>/<profile>/build/<package>-<hash>/out.
    let target = out_dir.ancestors().nth(4).map_or_else(|| workspace.join("target"), Path::to_path_buf);
    target.join("onegrid-module")
}
