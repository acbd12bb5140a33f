//! Builds the onegrid WebAssembly module and its JavaScript package, so the `onegrid` binary can
//! embed the very bytes it runs and write them out with `onegrid pkg`.
//!
//! The module is built by a nested cargo for `wasm32-unknown-unknown` with the size-optimised
//! `wasm` profile, in its own target folder beside ours (the outer build holds a lock on ours), and
//! then run through wasm-bindgen's library (`--target web` output, TypeScript on). The generated
//! glue becomes `onegrid_glue.js`; the public `onegrid.js`, `onegrid.d.ts` and `values.js` come from
//! `wasm/js/`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.parent().expect("host/ sits in the workspace").to_path_buf();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    for watched in ["core/src", "core/Cargo.toml", "wasm/src", "wasm/js", "wasm/Cargo.toml", "Cargo.toml", "Cargo.lock"]
    {
        println!("cargo:rerun-if-changed={}", workspace.join(watched).display());
    }

    let module_target = module_target_dir(&out_dir, &workspace);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&workspace)
        .args(["build", "-p", "onegrid-wasm", "--lib", "--target", "wasm32-unknown-unknown", "--profile", "wasm"])
        .env("CARGO_TARGET_DIR", &module_target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("could not run cargo to build the wasm module");
    assert!(status.success(), "building the onegrid wasm module failed (see the output above)");

    let raw = module_target.join("wasm32-unknown-unknown/wasm/onegrid_wasm.wasm");
    let pkg = out_dir.join("pkg");
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
    for file in ["onegrid.js", "onegrid.d.ts", "values.js"] {
        std::fs::copy(workspace.join("wasm/js").join(file), pkg.join(file))
            .unwrap_or_else(|e| panic!("copy {file}: {e}"));
    }
    println!("cargo:rustc-env=ONEGRID_PKG_DIR={}", pkg.display());
}

/// A target folder for the nested module build: beside the outer build's target folder.
fn module_target_dir(out_dir: &Path, workspace: &Path) -> PathBuf {
    // OUT_DIR is <target>/<profile>/build/<package>-<hash>/out.
    let target = out_dir.ancestors().nth(4).map_or_else(|| workspace.join("target"), Path::to_path_buf);
    target.join("onegrid-module")
}
