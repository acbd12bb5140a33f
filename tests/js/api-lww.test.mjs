// Tests of the onegrid JavaScript API (wasm/js/onegrid.js, typed by onegrid.d.ts): the LWW map
// (SPEC section 3): set, get, remove, setMany, TTL, prune, records and roots.
// The API's tests are split by area into tests/js/api-*.test.mjs; api-helpers.mjs has what they share.
//
// Run: ONEGRID_PKG=/path/to/pkg node --test tests/js/*.test.mjs
// Every test builds its own grids on a fake clock (`clock.now`), so none depends on another.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { T0, assertRefused, makeGrid, throwsError } from './load.mjs';
import { sync, lwwSnapshotAt, assertU32 } from './api-helpers.mjs';

describe('LWW map', () => {
  test('set, get, has, remove, entries, keys, size', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    assert.equal(map.size, 0);
    assert.equal(map.get('b'), undefined);
    assert.equal(map.has('b'), false);
    map.set('b', 2);
    map.set('a', { x: [1] });
    map.set('c', 'three');
    assert.equal(map.get('b'), 2);
    assert.equal(map.has('a'), true);
    assert.equal(map.size, 3);
    assert.deepEqual(map.entries(), [['a', { x: [1] }], ['b', 2], ['c', 'three']]);
    assert.deepEqual(map.keys(), ['a', 'b', 'c']);
    map.set('b', 'replaced');
    assert.equal(map.get('b'), 'replaced');
    map.remove('b');
    assert.equal(map.get('b'), undefined);
    assert.equal(map.has('b'), false);
    assert.equal(map.size, 2);
    assert.deepEqual(map.keys(), ['a', 'c']);
    assert.deepEqual(map.entries(), [['a', { x: [1] }], ['c', 'three']]);
  });

  test('entries and keys are sorted by key', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    const keys = ['zeta', 'Alpha', 'alpha', '10', '9', 'a b', '_', '-', 'ä'];
    keys.forEach((k, i) => map.set(k, i));
    const sorted = [...keys].sort();
    assert.deepEqual(map.keys(), sorted);
    assert.deepEqual(map.entries().map(([k]) => k), sorted);
    assert.deepEqual(map.entries().map(([k, v]) => keys[v] === k), sorted.map(() => true));
  });

  test('a stored null differs from a tombstone', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    map.set('n', null);
    assert.equal(map.get('n'), null);
    assert.equal(map.has('n'), true);
    assert.equal(map.size, 1);
    assert.deepEqual(map.entries(), [['n', null]]);
    assert.deepEqual(map.getRecord('n'), { value: null, deleted: false, timestamp: { millis: T0, counter: 0, nodeId: 'a' } });

    map.remove('n');
    assert.equal(map.get('n'), undefined);
    assert.equal(map.has('n'), false);
    assert.equal(map.size, 0);
    assert.deepEqual(map.getRecord('n'), { value: null, deleted: true, timestamp: { millis: T0, counter: 1, nodeId: 'a' } });
  });

  test('remove of a key never seen stores a tombstone', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    assert.equal(map.getRecord('ghost'), undefined);
    const root = map.rootHash();
    map.remove('ghost');
    assert.deepEqual(map.getRecord('ghost'), { value: null, deleted: true, timestamp: { millis: T0, counter: 0, nodeId: 'a' } });
    assert.notEqual(map.rootHash(), root);
    assert.equal(map.size, 0);
    assert.deepEqual(map.keys(), []);
  });

  test('getRecord: timestamp from the hybrid logical clock, ttlMs only when set', () => {
    const { grid, clock } = makeGrid('writer-1');
    const map = grid.getMap('m');
    map.set('a', 1);
    map.set('b', 2, { ttlMs: 500 });
    clock.now = T0 + 7;
    map.set('c', 3);
    clock.now = T0 - 100; // the wall clock goes backwards: the HLC does not
    map.set('d', 4);
    const a = map.getRecord('a');
    assert.deepEqual(a, { value: 1, deleted: false, timestamp: { millis: T0, counter: 0, nodeId: 'writer-1' } });
    assert.equal('ttlMs' in a, false);
    assert.deepEqual(map.getRecord('b'), { value: 2, deleted: false, timestamp: { millis: T0, counter: 1, nodeId: 'writer-1' }, ttlMs: 500 });
    assert.deepEqual(map.getRecord('c').timestamp, { millis: T0 + 7, counter: 0, nodeId: 'writer-1' });
    assert.deepEqual(map.getRecord('d').timestamp, { millis: T0 + 7, counter: 1, nodeId: 'writer-1' });
  });

  test('getRecord: millis and TTL beyond 2^53 are BigInt, never rounded; a Number up to 2^53 - 1', () => {
    const SAFE = BigInt(Number.MAX_SAFE_INTEGER);
    const U64_MAX = 2n ** 64n - 1n;
    /** What the API must return for the u64 `n`. */
    const asJs = (n) => (n <= SAFE ? Number(n) : n);
    const cases = [[SAFE, SAFE], [SAFE + 1n, SAFE + 1n], [2n ** 60n + 3n, 2n ** 55n + 1n], [U64_MAX, U64_MAX]];
    for (const [millis, ttlMs] of cases) {
      const reports = [];
      const { grid } = makeGrid('b', { onDrift: (d) => reports.push(d) });
      const map = grid.getMap('m');
      assert.equal(grid.importMap('m', lwwSnapshotAt(millis, ttlMs)), 1);
      const record = map.getRecord('k');
      assert.deepEqual(record, { value: 'v', deleted: false, timestamp: { millis: asJs(millis), counter: 0, nodeId: 'a' }, ttlMs: asJs(ttlMs) });
      assert.deepEqual(reports.map((d) => d.aheadMs), [asJs(millis - BigInt(T0))]);
      // The clock moved to the remote's millis: the next local write is stamped there too.
      map.set('after', 1);
      assert.deepEqual(map.getRecord('after').timestamp.millis, asJs(millis));
    }
  });

  test('a fractional wall time is truncated to whole milliseconds', () => {
    const { grid, clock } = makeGrid();
    clock.now = T0 + 0.9;
    grid.getMap('m').set('k', 1);
    assert.equal(grid.getMap('m').getRecord('k').timestamp.millis, T0);
  });

  test('TTL: alive at exactly millis + ttl, gone 1 ms later, still stored', () => {
    const { grid, clock } = makeGrid();
    const map = grid.getMap('m');
    map.set('keep', 'forever');
    map.set('t', 'temp', { ttlMs: 100 });
    clock.now = T0 + 100;
    assert.equal(map.get('t'), 'temp');
    assert.equal(map.has('t'), true);
    assert.equal(map.size, 2);
    assert.deepEqual(map.keys(), ['keep', 't']);
    clock.now = T0 + 101;
    assert.equal(map.get('t'), undefined);
    assert.equal(map.has('t'), false);
    assert.equal(map.size, 1);
    assert.deepEqual(map.keys(), ['keep']);
    assert.deepEqual(map.entries(), [['keep', 'forever']]);
    // Expired is a read filter: the record is still stored, and reading in the past sees it again.
    assert.deepEqual(map.getRecord('t'), { value: 'temp', deleted: false, timestamp: { millis: T0, counter: 1, nodeId: 'a' }, ttlMs: 100 });
    clock.now = T0 + 50;
    assert.equal(map.get('t'), 'temp');
  });

  test('TTL survives export and import', () => {
    const a = makeGrid('a');
    const b = makeGrid('b');
    a.grid.getMap('m').set('t', 1, { ttlMs: 10 });
    assert.equal(sync(a.grid, b.grid, 'm'), 1);
    assert.equal(b.grid.getMap('m').getRecord('t').ttlMs, 10);
    b.clock.now = T0 + 10;
    assert.equal(b.grid.getMap('m').get('t'), 1);
    b.clock.now = T0 + 11;
    assert.equal(b.grid.getMap('m').get('t'), undefined);
  });

  test('an overwrite without TTL clears the TTL', () => {
    const { grid, clock } = makeGrid();
    const map = grid.getMap('m');
    map.set('k', 1, { ttlMs: 5 });
    map.set('k', 2);
    clock.now = T0 + 1000;
    assert.equal(map.get('k'), 2);
    assert.equal('ttlMs' in map.getRecord('k'), false);
  });

  test('write options: undefined/null/{} mean no TTL; bad TTLs are refused with INVALID_ARGUMENT', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    map.set('a', 1, undefined);
    map.set('b', 1, null);
    map.set('c', 1, {});
    map.set('d', 1, { ttlMs: undefined });
    for (const k of ['a', 'b', 'c', 'd']) assert.equal('ttlMs' in map.getRecord(k), false);
    assertRefused(grid, map, () => map.set('k', 1, { ttlMs: 0 }), 'INVALID_ARGUMENT');
    for (const ttlMs of [-1, 1.5, NaN, Infinity, '10', null, 10n]) {
      assertRefused(grid, map, () => map.set('k', 1, { ttlMs }), 'INVALID_ARGUMENT');
    }
    assertRefused(grid, map, () => map.set('k', 1, 100), 'INVALID_ARGUMENT');
  });

  test('prune drops tombstones strictly older than the limit and returns the count', () => {
    const { grid, clock } = makeGrid();
    const map = grid.getMap('m');
    map.set('live', 1);
    map.set('old', 1);
    map.remove('old'); // tombstone at T0
    clock.now = T0 + 10;
    map.remove('newer'); // tombstone at T0 + 10
    map.set('expired', 1, { ttlMs: 1 });
    assert.equal(map.prune(T0), 0);
    assert.equal(map.prune(T0 + 1), 1);
    assert.equal(map.getRecord('old'), undefined);
    assert.equal(map.getRecord('newer').deleted, true);
    clock.now = T0 + 1000;
    assert.equal(map.prune(T0 + 1000), 1);
    assert.equal(map.getRecord('newer'), undefined);
    assert.equal(map.prune(T0 + 1000), 0);
    // Live and expired records are never pruned.
    assert.equal(map.get('live'), 1);
    assert.equal(map.getRecord('expired').value, 1);
  });

  test('a pruned tombstone leaves no trace in the root', () => {
    const { grid, clock } = makeGrid();
    const map = grid.getMap('m');
    assert.equal(map.rootHash(), 0);
    map.set('a', 1);
    const withA = map.rootHash();
    map.set('b', 2);
    map.remove('b');
    clock.now = T0 + 1;
    assert.equal(map.prune(T0 + 1), 1);
    assert.equal(map.rootHash(), withA);
    map.remove('a');
    assert.equal(map.prune(T0 + 2), 1);
    assert.equal(map.rootHash(), 0);
  });

  test('prune argument must be a whole number >= 0 (INVALID_ARGUMENT)', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    for (const bad of [-1, 1.5, NaN, '1', undefined]) {
      assertRefused(grid, map, () => map.prune(bad), 'INVALID_ARGUMENT');
    }
  });

  test('rootHash is a u32 and equal for replicas with equal state', () => {
    const a = makeGrid('a');
    const b = makeGrid('b');
    const ma = a.grid.getMap('m');
    const mb = b.grid.getMap('m');
    assert.equal(ma.rootHash(), 0);
    for (let i = 0; i < 100; i++) ma.set(`k${i}`, i);
    ma.remove('k7');
    b.clock.now = T0 + 5;
    mb.set('k1', 'from b');
    mb.remove('k50');
    mb.set('only-b', true);
    assertU32(ma.rootHash());
    assertU32(mb.rootHash());
    assert.notEqual(ma.rootHash(), mb.rootHash());
    sync(a.grid, b.grid, 'm');
    sync(b.grid, a.grid, 'm');
    assert.equal(ma.rootHash(), mb.rootHash());
    assert.deepEqual(ma.entries(), mb.entries());
    assert.equal(ma.get('k1'), 'from b'); // b wrote later
    assert.equal(ma.get('k50'), undefined);
    assert.equal(ma.get('k7'), undefined);
    assert.equal(ma.size, 99); // 100 - k7 - k50 + only-b
  });

  test('the root depends on timestamps, not on values', () => {
    const a = makeGrid('n');
    const b = makeGrid('n');
    a.grid.getMap('m').set('k', 'one value');
    b.grid.getMap('m').set('k', { another: ['value'] });
    assert.equal(a.grid.getMap('m').rootHash(), b.grid.getMap('m').rootHash());
  });

  test('setMany sets every pair, later pairs win over earlier ones', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    map.setMany([['b', 1], ['a', [2]], ['b', 3]]);
    assert.deepEqual(map.entries(), [['a', [2]], ['b', 3]]);
    map.setMany([]);
    assert.deepEqual(map.entries(), [['a', [2]], ['b', 3]]);
  });

  test('setMany is all or nothing and the map stays usable', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    map.set('existing', 'v');
    const batches = [
      [[['a', 1], ['b', NaN], ['c', 3]], 'INVALID_VALUE'],
      [[['a', 1], ['b', { deep: [() => 1] }]], 'INVALID_VALUE'],
      [[['a', 1], ['b', 2n ** 64n]], 'INVALID_VALUE'],
      [[['a', 1], ['__tombstones__', 2]], 'INVALID_ARGUMENT'],
      [[['a', 1], ['b\uD800', 2]], 'INVALID_ARGUMENT'],
      [[['a', 1], [5, 2]], 'INVALID_ARGUMENT'],
      [[['a', 1], ['b']], 'INVALID_ARGUMENT'],
      [[['a', 1], ['b', 2, 3]], 'INVALID_ARGUMENT'],
      [[['a', 1], 'b'], 'INVALID_ARGUMENT'],
    ];
    for (const [batch, code] of batches) assertRefused(grid, map, () => map.setMany(batch), code);
    assertRefused(grid, map, () => map.setMany({ a: 1 }), 'INVALID_ARGUMENT');
    assertRefused(grid, map, () => map.setMany(undefined), 'INVALID_ARGUMENT');
    assert.equal(map.get('a'), undefined);
  });

  test('a refused write does not advance the clock', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    throwsError(() => map.setMany([['a', 1], ['__tombstones__', 2]]), 'INVALID_ARGUMENT');
    throwsError(() => map.set('a', 1, { ttlMs: 0 }), 'INVALID_ARGUMENT');
    throwsError(() => map.remove('__tombstones__'), 'INVALID_ARGUMENT');
    map.set('probe', 1);
    assert.equal(map.getRecord('probe').timestamp.counter, 0);
  });

  test('the reserved keys "__tombstones__" and "__mark__" are refused by every write and read (INVALID_ARGUMENT)', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    for (const key of ['__tombstones__', '__mark__']) {
      assertRefused(grid, map, () => map.set(key, 1), 'INVALID_ARGUMENT');
      assertRefused(grid, map, () => map.remove(key), 'INVALID_ARGUMENT');
      assertRefused(grid, map, () => map.setMany([[key, 1]]), 'INVALID_ARGUMENT');
      assertRefused(grid, map, () => map.get(key), 'INVALID_ARGUMENT');
      assertRefused(grid, map, () => map.has(key), 'INVALID_ARGUMENT');
      assertRefused(grid, map, () => map.getRecord(key), 'INVALID_ARGUMENT');
    }
  });

  test('keys must be strings without lone surrogates (INVALID_ARGUMENT)', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    map.set('k', 1);
    const calls = [
      (k) => map.set(k, 1),
      (k) => map.get(k),
      (k) => map.has(k),
      (k) => map.remove(k),
      (k) => map.getRecord(k),
    ];
    for (const call of calls) {
      for (const bad of [1, null, undefined, {}, ['k'], Symbol('k'), 1n]) {
        assertRefused(grid, map, () => call(bad), 'INVALID_ARGUMENT');
      }
      for (const bad of ['\uD800', 'a\uDC00', '\uDBFF\uDBFF', 'x\uD83D']) {
        assertRefused(grid, map, () => call(bad), 'INVALID_ARGUMENT');
      }
    }
  });

  test('non-BMP and empty keys work', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    for (const key of ['', '😀', '𝄞 clef', 'a'.repeat(10_000)]) {
      map.set(key, key.length);
      assert.equal(map.get(key), key.length);
    }
    assert.equal(map.size, 4);
  });
});
