#!/usr/bin/env bash
# Runs every onegrid test: the README's test command. Works on a fresh machine with rustup, cargo,
# Node 20+ and Debian's apt (for Chromium and PostgreSQL); reuses $CARGO_TARGET_DIR when set.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"

# The toolchain file lists the wasm targets; make sure this rustup has them.
rustup show active-toolchain >/dev/null 2>&1 || rustup toolchain install
rustup target add wasm32-unknown-unknown wasm32v1-none >/dev/null

echo "== formatting (rustfmt)"
cargo fmt --all -- --check

echo "== core builds for wasm32v1-none (no std at all)"
cargo build -p onegrid-core --target wasm32v1-none

echo "== lints (the wasm crate's code is all wasm32-only, so it is linted for that target too)"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p onegrid-wasm --all-targets --target wasm32-unknown-unknown -- -D warnings

echo "== a throwaway PostgreSQL on loopback for the storage tests (Debian's packages)"
if [ -z "${ONEGRID_TEST_POSTGRES:-}" ]; then
  ONEGRID_TEST_POSTGRES="$(bash tests/ci/postgres.sh start)" # its own line, so set -e sees a failure
  trap 'bash tests/ci/postgres.sh stop' EXIT
fi
export ONEGRID_TEST_POSTGRES

# Before the Rust tests: the conformance test runs workerd from tests/js/node_modules.
echo "== Chromium (Debian's, or \$CHROMIUM_PATH), and tests/js's tools (playwright-core, workerd, typescript)"
bash tests/ci/chromium.sh

echo "== Rust tests: core, host (wasmtime, SQLite, PostgreSQL), conformance on six engines (Node, workerd)"
cargo test --workspace

echo "== the package the host embeds, for the JavaScript checks"
pkg="$target/pkg"
cargo run --quiet -p onegrid-host -- pkg --out "$pkg"

echo "== types: the package's JavaScript against its .d.ts (tsc, pinned in tests/js)"
bash tests/ci/types.sh "$pkg"

echo "== JavaScript tests (Node; IndexedDB and the web app on onegrid serve in headless Chromium)"
# The app's end-to-end test runs the server binary that cargo test built above.
export ONEGRID_BIN="$(cd "$target" && pwd)/debug/onegrid"
# The files by name: Node 21+ takes a folder given to --test as a file to run, Node 20 as a folder.
ONEGRID_PKG="$(cd "$pkg" && pwd)" node --test tests/js/*.test.mjs
