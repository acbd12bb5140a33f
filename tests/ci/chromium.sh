#!/usr/bin/env bash
# Makes the browser, workerd and type tests runnable: Debian's Chromium (unless $CHROMIUM_PATH or
# /usr/bin/chromium already has one) and tests/js/node_modules from the lock file (playwright-core,
# workerd, whose binary comes inside its npm package, and the TypeScript that tests/ci/types.sh
# runs). playwright-core only drives the browser it is given; nothing here downloads a browser build.
set -euo pipefail
cd "$(dirname "$0")/../.."

chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ ! -x "$chromium" ] && [ "$chromium" != /usr/bin/chromium ]; then
  echo "CHROMIUM_PATH=$chromium is not an executable" >&2
  exit 1
fi
if [ ! -x "$chromium" ]; then
  echo "== installing Debian's chromium"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends chromium
fi
"$chromium" --version

echo "== tests/js dependencies (playwright-core, workerd, typescript)"
# The lock file records no download addresses: npm takes them from its configured registry.
cd tests/js
if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund
else
  npm install --no-audit --no-fund --omit-lockfile-registry-resolved
fi
