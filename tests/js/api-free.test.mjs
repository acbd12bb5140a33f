// Tests of the onegrid JavaScript API (wasm/js/onegrid.js, typed by onegrid.d.ts): determinism
// (same operations, same bytes; convergence by any path) and freeing a grid (FREED).
// The API's tests are split by area into tests/js/api-*.test.mjs; api-helpers.mjs has what they share.
//
// Run: ONEGRID_PKG=/path/to/pkg node --test tests/js/*.test.mjs
// Every test builds its own grids on a fake clock (`clock.now`), so none depends on another.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { Grid, OnegridError, T0, makeGrid, rejectsWith, throwsError } from './load.mjs';
import { HeldStorage, sync } from './api-helpers.mjs';

describe('determinism', () => {
  /** The same operations on a fresh grid; returns its exports. */
  function run(nodeId) {
    const { grid, clock } = makeGrid(nodeId);
    const lww = grid.getMap('m');
    const or = grid.getORMap('o');
    for (let i = 0; i < 40; i++) {
      clock.now = T0 + (i % 7) * 3;
      lww.set(`k${i % 13}`, { i, list: [i, `s${i}`, i / 4], bytes: Uint8Array.of(i, 255 - i) }, i % 5 === 0 ? { ttlMs: 50 } : undefined);
      or.add(`k${i % 5}`, i % 3 === 0 ? { b: i, a: [i] } : i);
      if (i % 6 === 0) lww.remove(`k${(i + 1) % 13}`);
      if (i % 4 === 0) or.remove(`k${i % 5}`, i);
    }
    lww.setMany([['z', 1n << 62n], ['y', -0], ['x', null]]);
    return { lww: grid.exportMap('m'), or: grid.exportMap('o'), roots: [lww.rootHash(), or.rootHash()] };
  }

  test('same node id, clock and operations give byte-identical exports', () => {
    const one = run('node');
    const two = run('node');
    assert.deepEqual(one.lww, two.lww);
    assert.deepEqual(one.or, two.or);
    assert.deepEqual(one.roots, two.roots);
    assert.notDeepEqual(run('other').lww, one.lww);
  });

  test('replicas that converge by different paths export the same bytes', () => {
    const a = makeGrid('a');
    const b = makeGrid('b');
    const c = makeGrid('c');
    a.grid.getMap('m').set('x', 1);
    a.grid.getORMap('o').add('k', 'a');
    b.clock.now = T0 + 1;
    b.grid.getMap('m').set('x', 2);
    b.grid.getMap('m').remove('y');
    b.grid.getORMap('o').add('k', 'b');
    // c hears b then a; a hears b; b hears a.
    sync(b.grid, c.grid, 'm');
    sync(a.grid, c.grid, 'm');
    sync(b.grid, c.grid, 'o');
    sync(a.grid, c.grid, 'o');
    for (const name of ['m', 'o']) {
      sync(b.grid, a.grid, name);
      sync(a.grid, b.grid, name);
    }
    for (const name of ['m', 'o']) {
      assert.deepEqual(a.grid.exportMap(name), c.grid.exportMap(name));
      assert.deepEqual(b.grid.exportMap(name), c.grid.exportMap(name));
    }
    assert.deepEqual(c.grid.getORMap('o').get('k'), ['a', 'b']);
    assert.equal(c.grid.getMap('m').get('x'), 2);
  });
});

describe('freeing a grid', () => {
  test('free() releases the grid; later use of it or its maps throws FREED', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    map.set('k', 1);
    grid.free();
    grid.free(); // twice is harmless
    throwsError(() => map.get('k'), 'FREED');
    throwsError(() => grid.getMap('m'), 'FREED');
    throwsError(() => grid.exportMap('m'), 'FREED');
  });

  test("every call on a freed grid and on its maps' handles throws FREED", async () => {
    const { grid } = makeGrid();
    const lww = grid.getMap('m');
    lww.set('k', 1);
    const or = grid.getORMap('o');
    or.add('k', 1);
    const snapshot = grid.exportMap('m');
    // Maps that already have a subscriber still refuse a new one after free().
    const stopLww = lww.subscribe(() => {});
    const stopOr = or.subscribe(() => {});
    grid.free();
    // Unsubscribing after free() is harmless, as a second free() is.
    stopLww();
    stopOr();
    const calls = {
      'grid.nodeId': () => grid.nodeId,
      'grid.getMap': () => grid.getMap('m'),
      'grid.getORMap': () => grid.getORMap('o'),
      'grid.hasMap': () => grid.hasMap('m'),
      'grid.isMapLoading': () => grid.isMapLoading('m'),
      'grid.mapNames': () => grid.mapNames(),
      'grid.exportMap': () => grid.exportMap('m'),
      'grid.importMap': () => grid.importMap('m', snapshot),
      'grid.takeEarlyWrites': () => grid.takeEarlyWrites('m'),
      'grid.connect': () => grid.connect(() => {}),
      'grid.accept': () => grid.accept(() => {}),
      'lww.size': () => lww.size,
      'lww.set': () => lww.set('k', 2),
      'lww.setMany': () => lww.setMany([['a', 1]]),
      'lww.get': () => lww.get('k'),
      'lww.has': () => lww.has('k'),
      'lww.remove': () => lww.remove('k'),
      'lww.entries': () => lww.entries(),
      'lww.keys': () => lww.keys(),
      'lww.rootHash': () => lww.rootHash(),
      'lww.getRecord': () => lww.getRecord('k'),
      'lww.prune': () => lww.prune(0),
      'or.size': () => or.size,
      'or.add': () => or.add('k', 2),
      'or.remove': () => or.remove('k', 1),
      'or.get': () => or.get('k'),
      'or.has': () => or.has('k'),
      'or.entries': () => or.entries(),
      'or.keys': () => or.keys(),
      'or.rootHash': () => or.rootHash(),
      'or.tombstones': () => or.tombstones(),
      'or.prune': () => or.prune(0),
      'lww.subscribe': () => lww.subscribe(() => {}),
      'or.subscribe': () => or.subscribe(() => {}),
    };
    for (const [what, call] of Object.entries(calls)) {
      assert.throws(call, (e) => e instanceof OnegridError && e.code === 'FREED' && e.name === 'OnegridError', `${what} throws FREED`);
    }
    // The async calls reject (they never throw at once).
    await rejectsWith(grid.getMapAsync('m'), 'FREED');
    await rejectsWith(grid.flush(), 'FREED');
  });

  test('free() rejects pending loads and flushes with FREED', async () => {
    const storage = new HeldStorage();
    const grid = new Grid({ nodeId: 'a', storage });
    grid.getMap('early').set('k', 1);
    const loads = [grid.getMapAsync('m'), grid.getMapAsync('early', 'lww')];
    const flushed = grid.flush();
    grid.free();
    for (const load of loads) await rejectsWith(load, 'FREED');
    await rejectsWith(flushed, 'FREED');
    storage.release();
    await rejectsWith(grid.flush(), 'FREED');
    await rejectsWith(grid.getMapAsync('m'), 'FREED');
  });
});
