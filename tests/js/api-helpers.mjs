// Helpers the API's tests (tests/js/api-*.test.mjs) share, on top of load.mjs.

import assert from 'node:assert/strict';

import { MemoryStorage, T0, makeGrid } from './load.mjs';

/** Copies map `name` from grid `from` into grid `to`; returns what importMap returned. */
export function sync(from, to, name) {
  return to.importMap(name, from.exportMap(name));
}

/** Writes `key` = `key` into map "m" of `grid`, of `kind` "lww" (set) or "or" (add). */
export function write(grid, kind, key) {
  if (kind === 'lww') grid.getMap('m').set(key, key);
  else grid.getORMap('m').add(key, key);
}

/** MemoryStorage whose loads (loadAllKeys) wait until `release()` is called. */
export class HeldStorage extends MemoryStorage {
  constructor() {
    super();
    this.gate = new Promise((resolve) => (this.release = resolve));
  }

  async loadAllKeys(map) {
    await this.gate;
    return super.loadAllKeys(map);
  }
}

/** Records every change a map reports. */
export function recorder(map) {
  const changes = [];
  const unsubscribe = map.subscribe((change) => changes.push(change));
  return { changes, unsubscribe };
}

/** The unsigned LEB128 varint of a BigInt (postcard's integers). */
function varintOf(n) {
  const out = [];
  for (; n >= 0x80n; n >>= 7n) out.push(Number(n & 0x7fn) | 0x80);
  out.push(Number(n));
  return out;
}

/** A column of one number in an LWW snapshot: its length, then one run of one zigzag difference. */
function oneNumberColumn(n) {
  const signed = BigInt.asIntN(64, BigInt(n));
  const run = [1, ...varintOf(signed >= 0n ? signed << 1n : ((-signed) << 1n) - 1n)];
  return [run.length, ...run];
}

/**
 * The snapshot of one LWW record `"k": "v"` by node "a" stamped `millis` with TTL `ttlMs` (u64
 * BigInts). A JS clock and TTL stop at 2^53, a peer's do not: an exported snapshot has its millis
 * column and TTL column (with the counter and node columns between them) rewritten.
 */
export function lwwSnapshotAt(millis, ttlMs) {
  const { grid } = makeGrid('a');
  grid.getMap('m').set('k', 'v', { ttlMs: 500 });
  const bytes = [...grid.exportMap('m')];
  const columns = (m, t) => [...oneNumberColumn(m), 2, 1, 0, 2, 1, 0, ...oneNumberColumn(t)];
  const from = columns(T0, 500);
  const at = bytes.findIndex((_, i) => from.every((b, j) => bytes[i + j] === b));
  assert.ok(at > 0, 'the columns are in the snapshot');
  bytes.splice(at, from.length, ...columns(millis, ttlMs));
  return Uint8Array.from(bytes);
}

/** A 32-bit unsigned integer. */
export function assertU32(n) {
  assert.equal(typeof n, 'number');
  assert.ok(Number.isInteger(n) && n >= 0 && n <= 0xffffffff, `${n} is not a u32`);
}
