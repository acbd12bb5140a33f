#!/usr/bin/env bash
# Runs every onegrid test: the README's test command. Works on a fresh machine with rustup, cargo
# and the network access to the package registries; reuses $CARGO_TARGET_DIR when set.
set -euo pipefail
cd "$(dirname "$0")/.."

# The toolchain file lists the wasm targets; make sure this rustup has them.
rustup show active-toolchain >/dev/null 2>&1 || rustup toolchain install
rustup target add wasm32-unknown-unknown wasm32v1-none >/dev/null

echo "== core builds for wasm32v1-none (no std at all)"
cargo build -p onegrid-core --target wasm32v1-none

echo "== cargo test (workspace)"
cargo test --workspace

echo "== doc tests and lints"
cargo clippy --workspace --all-targets -- -D warnings
