// Tests of the onegrid JavaScript API (wasm/js/onegrid.js, typed by onegrid.d.ts): determinism
// (same operations, same bytes; convergence by any path) and freeing a grid.
// The API's tests are split by area into tests/js/api-*.test.mjs; api-helpers.mjs has what they share.
//
// Run: ONEGRID_PKG=/path/to/pkg node --test tests/js/*.test.mjs
// Every test builds its own grids on a fake clock (`clock.now`), so none depends on another.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { T0, makeGrid, throwsError } from './load.mjs';
import { sync } from './api-helpers.mjs';

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
  test('free() releases the grid; later use of it or its maps throws a clear error', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    map.set('k', 1);
    grid.free();
    grid.free(); // twice is harmless
    throwsError(() => map.get('k'), /this grid was freed/);
    throwsError(() => grid.getMap('m'), /this grid was freed/);
    throwsError(() => grid.exportMap('m'), /this grid was freed/);
  });
});
