// Tests of the onegrid JavaScript API (wasm/js/onegrid.js, typed by onegrid.d.ts): clock drift
// (SPEC section 1): lenient reports through onDrift, strict refuses the whole import.
// The API's tests are split by area into tests/js/api-*.test.mjs; api-helpers.mjs has what they share.
//
// Run: ONEGRID_PKG=/path/to/pkg node --test tests/js/*.test.mjs
// Every test builds its own grids on a fake clock (`clock.now`), so none depends on another.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { T0, assertRefused, makeGrid, throwsError } from './load.mjs';
import { sync, write, recorder } from './api-helpers.mjs';

describe('clock drift', () => {
  /** A grid whose clock is `aheadMs` ahead of T0, with one LWW and one OR record. */
  function remoteAhead(aheadMs) {
    const remote = makeGrid('remote');
    remote.clock.now = T0 + aheadMs;
    remote.grid.getMap('m').set('k', 'future');
    remote.grid.getORMap('o').add('k', 'future');
    return remote.grid;
  }

  test('lenient mode accepts and reports drift through onDrift', () => {
    const reports = [];
    const { grid } = makeGrid('local', { maxDriftMs: 10, onDrift: (d) => reports.push(d) });
    const remote = remoteAhead(3_600_000);
    assert.equal(sync(remote, grid, 'm'), 1);
    assert.deepEqual(reports, [{ remote: `${T0 + 3_600_000}:0:remote`, aheadMs: 3_600_000, maxDriftMs: 10 }]);
    assert.equal(grid.getMap('m').get('k'), 'future');
    assert.equal(sync(remote, grid, 'o'), 1);
    assert.deepEqual(reports[1], { remote: `${T0 + 3_600_000}:1:remote`, aheadMs: 3_600_000, maxDriftMs: 10 });
    assert.equal(reports.length, 2);
  });

  test('drift is "more than maxDriftMs ahead": exactly maxDriftMs is not drift', () => {
    const reports = [];
    const { grid } = makeGrid('local', { maxDriftMs: 100, onDrift: (d) => reports.push(d) });
    sync(remoteAhead(100), grid, 'm');
    assert.deepEqual(reports, []);
    sync(remoteAhead(101), grid, 'o');
    assert.equal(reports.length, 1);
    assert.equal(reports[0].aheadMs, 101);
    const strict = makeGrid('strict', { maxDriftMs: 100, strictDrift: true });
    assert.equal(sync(remoteAhead(100), strict.grid, 'm'), 1);
  });

  test('a throwing onDrift: every drift is reported, every subscriber hears the import, then its first error is rethrown', () => {
    for (const kind of ['lww', 'or']) {
      const reports = [];
      const thrown = [];
      const onDrift = (d) => {
        reports.push(d);
        thrown.push(new Error(`onDrift threw at report ${reports.length}`));
        throw thrown.at(-1);
      };
      const { grid } = makeGrid('local', { maxDriftMs: 10, onDrift });
      const map = kind === 'lww' ? grid.getMap('m') : grid.getORMap('m');
      const first = recorder(map);
      const second = recorder(map);
      const remote = makeGrid('remote');
      remote.clock.now = T0 + 3_600_000;
      for (const key of ['k1', 'k2']) write(remote.grid, kind, key);
      assert.throws(() => sync(remote.grid, grid, 'm'), (e) => e === thrown[0], `${kind}: the first error onDrift threw, itself`);
      assert.deepEqual(reports.map((d) => d.remote), [`${T0 + 3_600_000}:0:remote`, `${T0 + 3_600_000}:1:remote`], kind);
      assert.deepEqual(first.changes.map((c) => c.key), ['k1', 'k2'], kind);
      assert.deepEqual(second.changes, first.changes, kind);
      assert.deepEqual(map.keys(), ['k1', 'k2'], kind);
      // Nothing of the import is left over for the next write to deliver.
      write(grid, kind, 'later');
      assert.deepEqual(first.changes.map((c) => c.key), ['k1', 'k2', 'later'], kind);
    }
  });

  test('onDrift and a subscriber both throw during importMap: all run, the first error is rethrown', () => {
    const reports = [];
    const fromOnDrift = new Error('from onDrift');
    const fromSubscriber = new Error('from a subscriber');
    const { grid } = makeGrid('local', { maxDriftMs: 10, onDrift: (d) => { reports.push(d); throw fromOnDrift; } });
    const map = grid.getMap('m');
    map.subscribe(() => {
      throw fromSubscriber;
    });
    const heard = recorder(map);
    const remote = makeGrid('remote');
    remote.clock.now = T0 + 3_600_000;
    write(remote.grid, 'lww', 'k1');
    write(remote.grid, 'lww', 'k2');
    assert.throws(() => sync(remote.grid, grid, 'm'), (e) => e === fromOnDrift, "onDrift's error, itself");
    assert.equal(reports.length, 2);
    assert.deepEqual(heard.changes.map((c) => c.key), ['k1', 'k2']);
    // Without drift, the subscriber's error is the one rethrown, after every subscriber heard.
    const calm = makeGrid('calm');
    write(calm.grid, 'lww', 'k3');
    assert.throws(() => sync(calm.grid, grid, 'm'), (e) => e === fromSubscriber, "the subscriber's error, itself");
    assert.deepEqual(heard.changes.map((c) => c.key), ['k1', 'k2', 'k3']);
    assert.equal(reports.length, 2);
  });

  test('a remote behind the wall clock is never drift', () => {
    const reports = [];
    const { grid } = makeGrid('local', { maxDriftMs: 0, strictDrift: true });
    const lenient = makeGrid('lenient', { maxDriftMs: 0, onDrift: (d) => reports.push(d) });
    const old = remoteAhead(-500_000);
    assert.equal(sync(old, grid, 'm'), 1);
    assert.equal(sync(old, lenient.grid, 'm'), 1);
    assert.deepEqual(reports, []);
  });

  test('lenient mode without onDrift imports silently', () => {
    const { grid } = makeGrid('local', { maxDriftMs: 10 });
    assert.equal(sync(remoteAhead(1_000_000), grid, 'm'), 1);
    assert.equal(grid.getMap('m').get('k'), 'future');
  });

  test('strict mode throws CLOCK_DRIFT and changes nothing, clock included', () => {
    const reports = [];
    const { grid } = makeGrid('local', { maxDriftMs: 10, strictDrift: true, onDrift: (d) => reports.push(d) });
    const lww = grid.getMap('m');
    lww.set('mine', 1);
    const or = grid.getORMap('o');
    or.add('mine', 1);
    const remote = remoteAhead(3_600_000);
    assertRefused(grid, lww, () => sync(remote, grid, 'm'), 'CLOCK_DRIFT');
    assertRefused(grid, or, () => sync(remote, grid, 'o'), 'CLOCK_DRIFT');
    assert.deepEqual(reports, []);
    // A refused import into a map the grid did not have leaves no map behind.
    throwsError(() => grid.importMap('new', remote.exportMap('m')), 'CLOCK_DRIFT');
    assert.equal(grid.hasMap('new'), false);
    // The clock did not move to the remote's time.
    lww.set('after', 1);
    assert.equal(lww.getRecord('after').timestamp.millis, T0);
  });

  test('strict mode refuses a whole batch when only one record drifts', () => {
    const { grid } = makeGrid('local', { maxDriftMs: 10, strictDrift: true });
    const map = grid.getMap('m');
    const remote = makeGrid('remote');
    remote.grid.getMap('m').set('ok', 1);
    remote.clock.now = T0 + 1000;
    remote.grid.getMap('m').set('drifting', 2);
    assertRefused(grid, map, () => sync(remote.grid, grid, 'm'), 'CLOCK_DRIFT');
    assert.equal(map.get('ok'), undefined);
  });
});
