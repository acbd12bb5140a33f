// Tests of the onegrid JavaScript API (wasm/js/onegrid.js, typed by onegrid.d.ts): subscriptions:
// the changes local writes and imports report, and subscribers that throw.
// The API's tests are split by area into tests/js/api-*.test.mjs; api-helpers.mjs has what they share.
//
// Run: ONEGRID_PKG=/path/to/pkg node --test tests/js/*.test.mjs
// Every test builds its own grids on a fake clock (`clock.now`), so none depends on another.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { makeGrid, throwsError } from './load.mjs';
import { sync, recorder } from './api-helpers.mjs';

describe('subscribe', () => {
  test('LWW: {key, value, origin:"local"} for set, setMany and remove', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    const { changes } = recorder(map);
    map.set('a', 1);
    map.setMany([['b', { x: 2 }], ['c', null]]);
    map.remove('a');
    assert.deepEqual(changes, [
      { key: 'a', value: 1, origin: 'local' },
      { key: 'b', value: { x: 2 }, origin: 'local' },
      { key: 'c', value: null, origin: 'local' },
      { key: 'a', value: undefined, origin: 'local' },
    ]);
  });

  test('LWW: importMap reports origin "remote", and nothing for records that lose', () => {
    const a = makeGrid('a');
    const b = makeGrid('b');
    a.grid.getMap('m').set('x', 'from a');
    a.grid.getMap('m').remove('y');
    const { changes } = recorder(b.grid.getMap('m'));
    sync(a.grid, b.grid, 'm');
    assert.deepEqual(changes, [
      { key: 'x', value: 'from a', origin: 'remote' },
      { key: 'y', value: undefined, origin: 'remote' },
    ]);
    sync(a.grid, b.grid, 'm');
    assert.equal(changes.length, 2);
  });

  test('unsubscribe stops calls; other subscribers keep theirs', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    const first = recorder(map);
    const second = recorder(grid.getMap('m')); // another handle of the same map
    map.set('a', 1);
    first.unsubscribe();
    map.set('b', 2);
    first.unsubscribe(); // twice is harmless
    assert.deepEqual(first.changes.map((c) => c.key), ['a']);
    assert.deepEqual(second.changes.map((c) => c.key), ['a', 'b']);
    second.unsubscribe();
    map.set('c', 3);
    assert.equal(second.changes.length, 2);
    // Subscribing again after everyone left works.
    const third = recorder(map);
    map.set('d', 4);
    assert.deepEqual(third.changes, [{ key: 'd', value: 4, origin: 'local' }]);
  });

  test('the same function subscribed twice is called twice, and each unsubscribe removes one', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    const seen = [];
    const fn = (c) => seen.push(c.key);
    const un1 = map.subscribe(fn);
    map.subscribe(fn);
    map.set('a', 1);
    un1();
    map.set('b', 1);
    assert.deepEqual(seen, ['a', 'a', 'b']);
  });

  test('events of one map do not reach subscribers of another', () => {
    const { grid } = makeGrid();
    const m1 = recorder(grid.getMap('m1'));
    const o1 = recorder(grid.getORMap('o1'));
    grid.getMap('m2').set('k', 1);
    grid.getORMap('o2').add('k', 1);
    assert.deepEqual(m1.changes, []);
    assert.deepEqual(o1.changes, []);
  });

  test('a callback can call back into the map', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    const seen = [];
    map.subscribe((change) => {
      seen.push({ change, read: map.get(change.key), size: map.size, entries: map.entries() });
      if (change.key === 'a') map.set('echo', `echo of ${change.value}`);
    });
    map.set('a', 1);
    assert.equal(map.get('echo'), 'echo of 1');
    assert.deepEqual(seen.map((s) => s.change), [
      { key: 'a', value: 1, origin: 'local' },
      { key: 'echo', value: 'echo of 1', origin: 'local' },
    ]);
    assert.equal(seen[0].read, 1);
    assert.equal(seen[0].size, 1);
    assert.deepEqual(seen[0].entries, [['a', 1]]);
    assert.deepEqual(seen[1].entries, [['a', 1], ['echo', 'echo of 1']]);
  });

  test('a callback can unsubscribe itself and write to other maps of the grid', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    const log = grid.getORMap('log');
    let calls = 0;
    const unsubscribe = map.subscribe((change) => {
      calls += 1;
      log.add('changes', change.key);
      unsubscribe();
    });
    map.set('a', 1);
    map.set('b', 2);
    assert.equal(calls, 1);
    assert.deepEqual(log.get('changes'), ['a']);
  });

  test('subscribe takes a function (INVALID_ARGUMENT)', () => {
    const { grid } = makeGrid();
    for (const bad of [undefined, null, 1, {}]) {
      throwsError(() => grid.getMap('m').subscribe(bad), 'INVALID_ARGUMENT');
      throwsError(() => grid.getORMap('o').subscribe(bad), 'INVALID_ARGUMENT');
    }
  });

  test('OR: {key, values, origin} for add, remove and importMap', () => {
    const a = makeGrid('a');
    const map = a.grid.getORMap('o');
    const { changes, unsubscribe } = recorder(map);
    map.add('k', 1);
    map.add('k', { two: 2 });
    map.remove('k', 1);
    map.remove('k', 'not there'); // nothing removed: no event
    assert.deepEqual(changes, [
      { key: 'k', values: [1], origin: 'local' },
      { key: 'k', values: [1, { two: 2 }], origin: 'local' },
      { key: 'k', values: [{ two: 2 }], origin: 'local' },
    ]);
    unsubscribe();
    map.add('k', 3);
    assert.equal(changes.length, 3);

    // One event per record merged, each carrying the key's values after the whole import.
    const b = makeGrid('b');
    const remote = recorder(b.grid.getORMap('o'));
    sync(a.grid, b.grid, 'o');
    const after = { key: 'k', values: [{ two: 2 }, 3], origin: 'remote' };
    assert.deepEqual(remote.changes, [after, after]);
    sync(a.grid, b.grid, 'o');
    assert.equal(remote.changes.length, 2);
  });

  test('events of one call carry each key\'s state after the whole call', () => {
    const { grid } = makeGrid();
    const { changes } = recorder(grid.getMap('m'));
    grid.getMap('m').setMany([['k', 1], ['j', 0], ['k', 2]]);
    assert.deepEqual(changes, [
      { key: 'k', value: 2, origin: 'local' },
      { key: 'j', value: 0, origin: 'local' },
      { key: 'k', value: 2, origin: 'local' },
    ]);
  });
});
