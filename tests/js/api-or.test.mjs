// Tests of the onegrid JavaScript API (wasm/js/onegrid.js, typed by onegrid.d.ts): the OR map (SPEC
// section 4): add, remove by structural equality, tags, tombstones, TTL and prune.
// The API's tests are split by area into tests/js/api-*.test.mjs; api-helpers.mjs has what they share.
//
// Run: ONEGRID_PKG=/path/to/pkg node --test tests/js/*.test.mjs
// Every test builds its own grids on a fake clock (`clock.now`), so none depends on another.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { T0, assertRefused, makeGrid } from './load.mjs';
import { sync, assertU32 } from './api-helpers.mjs';

describe('OR map', () => {
  test('add returns the tag "millis:counter:nodeId" and keeps duplicates', () => {
    const { grid, clock } = makeGrid('node_7');
    const map = grid.getORMap('o');
    assert.equal(map.add('k', 'x'), `${T0}:0:node_7`);
    assert.equal(map.add('k', 'x'), `${T0}:1:node_7`);
    clock.now = T0 + 3;
    assert.equal(map.add('j', 1), `${T0 + 3}:0:node_7`);
    assert.deepEqual(map.get('k'), ['x', 'x']);
    assert.deepEqual(map.get('missing'), []);
  });

  test('get returns values oldest first, not in arrival order', () => {
    const a = makeGrid('a');
    const b = makeGrid('b');
    a.clock.now = T0 + 20;
    a.grid.getORMap('o').add('k', 'late');
    b.clock.now = T0 + 10;
    b.grid.getORMap('o').add('k', 'early');
    // Same millis as `early`: a higher node id orders later (byte-wise).
    const c = makeGrid('c');
    c.clock.now = T0 + 10;
    c.grid.getORMap('o').add('k', 'early-c');
    const target = makeGrid('z');
    target.clock.now = T0 + 100;
    sync(a.grid, target.grid, 'o');
    sync(c.grid, target.grid, 'o');
    sync(b.grid, target.grid, 'o');
    assert.deepEqual(target.grid.getORMap('o').get('k'), ['early', 'early-c', 'late']);
    target.grid.getORMap('o').add('k', 'newest');
    assert.deepEqual(target.grid.getORMap('o').get('k'), ['early', 'early-c', 'late', 'newest']);
  });

  test('has, entries, keys, size', () => {
    const { grid } = makeGrid();
    const map = grid.getORMap('o');
    assert.equal(map.size, 0);
    assert.equal(map.has('b'), false);
    map.add('b', 1);
    map.add('a', 'x');
    map.add('b', 2);
    assert.equal(map.has('b'), true);
    assert.equal(map.size, 2);
    assert.deepEqual(map.keys(), ['a', 'b']);
    assert.deepEqual(map.entries(), [['a', ['x']], ['b', [1, 2]]]);
    map.remove('a', 'x');
    assert.equal(map.has('a'), false);
    assert.equal(map.size, 1);
    assert.deepEqual(map.keys(), ['b']);
    assert.deepEqual(map.entries(), [['b', [1, 2]]]);
  });

  test('remove by structural equality returns the removed tags and tombstones them', () => {
    const { grid } = makeGrid();
    const map = grid.getORMap('o');
    const t1 = map.add('k', { a: 1, b: [1, [2, { c: null }]] });
    const t2 = map.add('k', { b: [1, [2, { c: null }]], a: 1 }); // same value, keys in another order
    const t3 = map.add('k', { a: 1, b: [1, [{ c: null }, 2]] }); // nested array in another order
    const t4 = map.add('k', { a: 1 });
    const t5 = map.add('other', { a: 1, b: [1, [2, { c: null }]] });
    assert.deepEqual(map.remove('k', { b: [1, [2, { c: null }]], a: 1 }), [t1, t2]);
    assert.deepEqual(map.get('k'), [{ a: 1, b: [1, [{ c: null }, 2]] }, { a: 1 }]);
    assert.deepEqual(map.tombstones(), [t1, t2].sort());
    assert.deepEqual(map.remove('k', { a: 1, b: [1, [2, { c: null }]] }), []); // already removed
    assert.deepEqual(map.remove('k', { a: 2 }), []);
    assert.deepEqual(map.remove('missing', 1), []);
    assert.equal(map.get('other').length, 1); // other keys are untouched
    assert.deepEqual(map.remove('k', { a: 1, b: [1, [{ c: null }, 2]] }), [t3]);
    assert.deepEqual(map.remove('k', { a: 1 }), [t4]);
    assert.deepEqual(map.get('k'), []);
    assert.deepEqual(map.tombstones(), [t1, t2, t3, t4].sort());
    assert.deepEqual(map.remove('other', { b: [1, [2, { c: null }]], a: 1 }), [t5]);
  });

  test('remove compares numbers by value (BigInt 1n equals 1, -0 equals 0)', () => {
    const { grid } = makeGrid();
    const map = grid.getORMap('o');
    const t1 = map.add('k', 1);
    const t2 = map.add('k', 0);
    assert.deepEqual(map.remove('k', 1n), [t1]);
    assert.deepEqual(map.remove('k', -0), [t2]);
  });

  test('a key with no live values has no entry: add then remove restores the root', () => {
    const { grid } = makeGrid();
    const map = grid.getORMap('o');
    map.add('a', 1);
    const root = map.rootHash();
    assertU32(root);
    map.add('b', 2);
    map.remove('b', 2);
    assert.equal(map.rootHash(), root);
    map.remove('a', 1);
    assert.equal(map.rootHash(), 0);
    assert.equal(map.tombstones().length, 2);
  });

  test('a remove that arrives before its add wins', () => {
    const adder = makeGrid('adder');
    const remover = makeGrid('remover');
    const late = makeGrid('late');
    const tag = adder.grid.getORMap('o').add('k', 'v');
    sync(adder.grid, remover.grid, 'o');
    assert.deepEqual(remover.grid.getORMap('o').remove('k', 'v'), [tag]);
    // `late` hears of the remove first, then of the add.
    assert.equal(sync(remover.grid, late.grid, 'o'), 1); // one new tombstone
    assert.deepEqual(late.grid.getORMap('o').tombstones(), [tag]);
    assert.equal(sync(adder.grid, late.grid, 'o'), 0); // the add is refused
    assert.deepEqual(late.grid.getORMap('o').get('k'), []);
    assert.equal(late.grid.getORMap('o').rootHash(), 0);
    // And the adder hears of the remove.
    assert.equal(sync(remover.grid, adder.grid, 'o'), 1);
    assert.deepEqual(adder.grid.getORMap('o').get('k'), []);
  });

  test('concurrent add and remove: the add the remover had not seen survives', () => {
    const a = makeGrid('a');
    const b = makeGrid('b');
    const oa = a.grid.getORMap('o');
    const ob = b.grid.getORMap('o');
    const seen = oa.add('k', 'v');
    sync(a.grid, b.grid, 'o');
    // Concurrently: b removes the 'v' it has seen, a adds 'v' again.
    a.clock.now = T0 + 5;
    const unseen = oa.add('k', 'v');
    assert.deepEqual(ob.remove('k', 'v'), [seen]);
    sync(a.grid, b.grid, 'o');
    sync(b.grid, a.grid, 'o');
    for (const map of [oa, ob]) {
      assert.deepEqual(map.get('k'), ['v']);
      assert.deepEqual(map.tombstones(), [seen]);
    }
    assert.equal(oa.rootHash(), ob.rootHash());
    // Removing now removes the survivor everywhere.
    assert.deepEqual(oa.remove('k', 'v'), [unseen]);
    sync(a.grid, b.grid, 'o');
    assert.deepEqual(ob.get('k'), []);
    assert.equal(oa.rootHash(), ob.rootHash());
  });

  test('TTL: alive at exactly millis + ttl, gone 1 ms later; remove still takes expired records', () => {
    const { grid, clock } = makeGrid();
    const map = grid.getORMap('o');
    map.add('k', 'keep');
    const tag = map.add('k', 'temp', { ttlMs: 100 });
    map.add('t', 'only-temp', { ttlMs: 100 });
    clock.now = T0 + 100;
    assert.deepEqual(map.get('k'), ['keep', 'temp']);
    assert.equal(map.has('t'), true);
    assert.equal(map.size, 2);
    clock.now = T0 + 101;
    assert.deepEqual(map.get('k'), ['keep']);
    assert.equal(map.has('t'), false);
    assert.equal(map.size, 1);
    assert.deepEqual(map.keys(), ['k']);
    assert.deepEqual(map.entries(), [['k', ['keep']]]);
    assert.deepEqual(map.remove('k', 'temp'), [tag]);
  });

  test('TTL options are checked as for LWW (INVALID_ARGUMENT)', () => {
    const { grid } = makeGrid();
    const map = grid.getORMap('o');
    assertRefused(grid, map, () => map.add('k', 1, { ttlMs: 0 }), 'INVALID_ARGUMENT');
    for (const ttlMs of [-5, 0.5, '1', NaN]) {
      assertRefused(grid, map, () => map.add('k', 1, { ttlMs }), 'INVALID_ARGUMENT');
    }
    assertRefused(grid, map, () => map.add('k', 1, 'ttl'), 'INVALID_ARGUMENT');
  });

  test('prune forgets tombstones strictly older than the limit', () => {
    const { grid, clock } = makeGrid();
    const map = grid.getORMap('o');
    map.add('k', 1);
    map.add('k', 2);
    clock.now = T0 + 10;
    map.add('k', 3);
    map.remove('k', 1);
    map.remove('k', 3);
    map.add('k', 4);
    assert.deepEqual(map.tombstones(), [`${T0}:0:a`, `${T0 + 10}:0:a`]);
    assert.equal(map.prune(T0), 0);
    assert.equal(map.prune(T0 + 1), 1);
    assert.deepEqual(map.tombstones(), [`${T0 + 10}:0:a`]);
    assert.equal(map.prune(T0 + 11), 1);
    assert.deepEqual(map.tombstones(), []);
    assert.deepEqual(map.get('k'), [2, 4]);
    assertRefused(grid, map, () => map.prune(-1), 'INVALID_ARGUMENT');
  });

  test('the reserved key and bad keys are refused (INVALID_ARGUMENT)', () => {
    const { grid } = makeGrid();
    const map = grid.getORMap('o');
    map.add('k', 1);
    assertRefused(grid, map, () => map.add('__tombstones__', 1), 'INVALID_ARGUMENT');
    assertRefused(grid, map, () => map.remove('__tombstones__', 1), 'INVALID_ARGUMENT');
    assertRefused(grid, map, () => map.get('__tombstones__'), 'INVALID_ARGUMENT');
    assertRefused(grid, map, () => map.has('__mark__'), 'INVALID_ARGUMENT');
    for (const call of [(k) => map.add(k, 1), (k) => map.remove(k, 1), (k) => map.get(k), (k) => map.has(k)]) {
      assertRefused(grid, map, () => call(7), 'INVALID_ARGUMENT');
      assertRefused(grid, map, () => call(undefined), 'INVALID_ARGUMENT');
      assertRefused(grid, map, () => call('\uD800'), 'INVALID_ARGUMENT');
    }
  });
});
