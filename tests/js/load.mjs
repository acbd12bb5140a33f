// Loads the onegrid JavaScript package once for the Node tests, plus the few helpers they share.
//
// The package directory is $ONEGRID_PKG (an absolute path) or, by default, <repo>/target/pkg. It
// must hold onegrid.js, onegrid_bg.wasm and the files they import (`onegrid pkg --out DIR` writes
// them; add a package.json with {"type":"module"} if the directory is outside the repository).

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const pkgDir = process.env.ONEGRID_PKG || join(repo, 'target', 'pkg');

if (!existsSync(join(pkgDir, 'onegrid.js'))) {
  throw new Error(`no onegrid package in ${pkgDir}: build one (cargo run -p onegrid-host -- pkg --out DIR) and set ONEGRID_PKG=DIR`);
}

const onegrid = await import(pathToFileURL(join(pkgDir, 'onegrid.js')).href);
onegrid.initSync({ module: readFileSync(join(pkgDir, 'onegrid_bg.wasm')) });

export const { Grid, LwwMap, OrMap, MemoryStorage, OnegridError, ERROR_CODES, connectWebSocket } = onegrid;
/** The value writer the API uses, for tests of the bytes it writes. */
export const { Writer } = await import(pathToFileURL(join(pkgDir, 'values.js')).href);

/** The fake wall time every test starts at. */
export const T0 = 1_000_000;

/** A fake clock: `clock()` returns `clock.now`, which the test moves by hand. */
export function clockAt(ms = T0) {
  const clock = () => clock.now;
  clock.now = ms;
  return clock;
}

/** A grid on a fresh fake clock: `{ grid, clock }`. Extra options are passed through. */
export function makeGrid(nodeId = 'a', options = {}) {
  const clock = clockAt(T0);
  const grid = new Grid({ nodeId, clock, ...options });
  return { grid, clock };
}

/**
 * Checks that `e` is an `OnegridError` with `code` (tests act on codes, never on message text).
 */
export function assertCode(e, code) {
  assert.ok(ERROR_CODES.includes(code), `${code} is not an error code`);
  assert.ok(e instanceof OnegridError, `expected an OnegridError ${code}, got ${e?.stack ?? String(e)}`);
  assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
  return e;
}

/** Asserts `fn` throws an `OnegridError` with `code`; returns the error. */
export function throwsError(fn, code) {
  let caught;
  assert.throws(fn, (e) => {
    caught = e;
    return true;
  });
  return assertCode(caught, code);
}

/** Asserts `promise` rejects with an `OnegridError` with `code`; returns the error. */
export async function rejectsWith(promise, code) {
  let caught;
  await assert.rejects(promise, (e) => {
    caught = e;
    return true;
  });
  return assertCode(caught, code);
}

/** Everything observable about a map, to compare before and after a refused call. */
export function stateOf(grid, map) {
  return {
    snapshot: grid.exportMap(map.name),
    root: map.rootHash(),
    entries: map.entries(),
    size: map.size,
    tombstones: map.kind === 'or' ? map.tombstones() : undefined,
  };
}

/** Asserts the map still takes writes and reads them back (without disturbing `stateOf` callers). */
export function assertUsable(map) {
  const key = `usable-${Math.random().toString(36).slice(2)}`;
  if (map.kind === 'lww') {
    map.set(key, { ok: [1, 'two'] });
    assert.deepEqual(map.get(key), { ok: [1, 'two'] });
  } else {
    map.add(key, { ok: [1, 'two'] });
    assert.deepEqual(map.get(key), [{ ok: [1, 'two'] }]);
  }
}

/**
 * Asserts `fn` is refused with an `OnegridError` with `code`, leaves `map` exactly as it was
 * (snapshot bytes, root, entries, size, tombstones) and that the map is still usable. Returns the error.
 */
export function assertRefused(grid, map, fn, code) {
  const before = stateOf(grid, map);
  const error = throwsError(fn, code);
  assert.deepEqual(stateOf(grid, map), before, `state changed by a refused call (${error.message})`);
  assertUsable(map);
  return error;
}
