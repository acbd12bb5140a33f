#!/usr/bin/env bash
# Type-checks the package's JavaScript (wasm/js/*.js, each `// @ts-check`) against its hand-written
# .d.ts with the TypeScript pinned in tests/js (installed by tests/ci/chromium.sh, or `npm ci` in
# tests/js). Usage: tests/ci/types.sh PKG_DIR, a package `onegrid pkg --out` wrote: onegrid.js
# imports wasm-bindgen's glue, whose types (onegrid_glue.d.ts) only a built package has, so tsc runs
# on tests/js/tsconfig.json extended with `rootDirs` [wasm/js, PKG_DIR].
set -euo pipefail
cd "$(dirname "$0")/../.."
pkg="$(cd "${1:?usage: tests/ci/types.sh PKG_DIR (a package written by onegrid pkg --out)}" && pwd)"
[ -f "$pkg/onegrid_glue.d.ts" ] || { echo "$pkg has no onegrid_glue.d.ts: not a built package" >&2; exit 1; }
tsc=tests/js/node_modules/.bin/tsc
[ -x "$tsc" ] || { echo "no $tsc: run npm ci in tests/js (or bash tests/ci/chromium.sh)" >&2; exit 1; }

config="$(mktemp -d)"
trap 'rm -rf "$config"' EXIT
ONEGRID_REPO="$PWD" ONEGRID_PKG_DIR="$pkg" node -e '
  const { join } = require("node:path");
  const repo = process.env.ONEGRID_REPO;
  process.stdout.write(JSON.stringify({
    extends: join(repo, "tests/js/tsconfig.json"),
    compilerOptions: { rootDirs: [join(repo, "wasm/js"), process.env.ONEGRID_PKG_DIR] },
  }));
' > "$config/tsconfig.json"
"$tsc" --version
"$tsc" -p "$config/tsconfig.json"
