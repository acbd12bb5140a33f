// Tests of the onegrid JavaScript API (wasm/js/onegrid.js, typed by onegrid.d.ts): snapshots
// between grids: exportMap and importMap by the CRDT rules, and bad snapshots.
// The API's tests are split by area into tests/js/api-*.test.mjs; api-helpers.mjs has what they share.
//
// Run: ONEGRID_PKG=/path/to/pkg node --test tests/js/*.test.mjs
// Every test builds its own grids on a fake clock (`clock.now`), so none depends on another.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { T0, assertCode, assertRefused, makeGrid, throwsError } from './load.mjs';
import { sync } from './api-helpers.mjs';

describe('export and import', () => {
  test('importMap returns records added or replaced plus new tombstones; twice gives 0', () => {
    const a = makeGrid('a');
    const b = makeGrid('b');
    const ma = a.grid.getMap('m');
    ma.set('x', 1);
    ma.set('y', 2);
    ma.remove('z');
    assert.equal(sync(a.grid, b.grid, 'm'), 3);
    assert.equal(sync(a.grid, b.grid, 'm'), 0);
    assert.deepEqual(b.grid.getMap('m').entries(), [['x', 1], ['y', 2]]);
    assert.equal(b.grid.getMap('m').getRecord('z').deleted, true);
    a.clock.now = T0 + 1;
    ma.set('x', 'newer');
    assert.equal(sync(a.grid, b.grid, 'm'), 1);
    assert.equal(b.grid.getMap('m').get('x'), 'newer');
    // The older state coming back changes nothing.
    assert.equal(sync(b.grid, a.grid, 'm'), 0);
  });

  test('OR importMap counts added records plus new tombstones', () => {
    const a = makeGrid('a');
    const b = makeGrid('b');
    const oa = a.grid.getORMap('o');
    oa.add('k', 1);
    oa.add('k', 2);
    oa.add('j', 3);
    oa.remove('k', 1);
    assert.equal(sync(a.grid, b.grid, 'o'), 3); // two live records + one tombstone
    assert.equal(sync(a.grid, b.grid, 'o'), 0);
    assert.deepEqual(b.grid.getORMap('o').entries(), [['j', [3]], ['k', [2]]]);
    assert.deepEqual(b.grid.getORMap('o').tombstones(), oa.tombstones());
  });

  test('import creates the map with the snapshot\'s kind', () => {
    const a = makeGrid('a');
    const b = makeGrid('b');
    a.grid.getMap('l').set('k', 1);
    a.grid.getORMap('o').add('k', 1);
    a.grid.getMap('empty');
    assert.equal(sync(a.grid, b.grid, 'l'), 1);
    assert.equal(sync(a.grid, b.grid, 'o'), 1);
    assert.equal(sync(a.grid, b.grid, 'empty'), 0);
    assert.deepEqual(b.grid.mapNames(), ['empty', 'l', 'o']);
    assert.equal(b.grid.getMap('l').get('k'), 1);
    assert.deepEqual(b.grid.getORMap('o').get('k'), [1]);
    assert.equal(b.grid.getMap('empty').size, 0);
    // A snapshot can be imported under another name.
    assert.equal(b.grid.importMap('copy', a.grid.exportMap('l')), 1);
    assert.equal(b.grid.getMap('copy').get('k'), 1);
  });

  test('import into a map of the other kind throws KIND_MISMATCH and changes nothing', () => {
    const a = makeGrid('a');
    const b = makeGrid('b');
    a.grid.getMap('m').set('k', 1);
    a.grid.getORMap('o').add('k', 1);
    const bo = b.grid.getORMap('m');
    bo.add('mine', 1);
    const bl = b.grid.getMap('o');
    bl.set('mine', 1);
    assertRefused(b.grid, bo, () => b.grid.importMap('m', a.grid.exportMap('m')), 'KIND_MISMATCH');
    assertRefused(b.grid, bl, () => b.grid.importMap('o', a.grid.exportMap('o')), 'KIND_MISMATCH');
  });

  test('exportMap of a map the grid never had throws NOT_FOUND', () => {
    const { grid } = makeGrid();
    throwsError(() => grid.exportMap('nope'), 'NOT_FOUND');
    assert.equal(grid.hasMap('nope'), false);
  });

  test('importMap takes a Uint8Array (a view at an offset works, other types are refused with INVALID_ARGUMENT)', () => {
    const a = makeGrid('a');
    a.grid.getMap('m').set('k', 'v');
    const bytes = a.grid.exportMap('m');
    assert.ok(bytes instanceof Uint8Array);
    const { grid } = makeGrid('b');
    const map = grid.getMap('m');
    map.set('mine', 1);
    for (const bad of [[...bytes], bytes.buffer, 'bytes', null, undefined, new Uint16Array(4), new DataView(bytes.buffer)]) {
      assertRefused(grid, map, () => grid.importMap('m', bad), 'INVALID_ARGUMENT');
    }
    const padded = new Uint8Array(bytes.length + 16);
    padded.set(bytes, 7);
    assert.equal(grid.importMap('m', padded.subarray(7, 7 + bytes.length)), 1);
    assert.equal(map.get('k'), 'v');
    assert.equal(grid.importMap('m', Buffer.from(bytes)), 0);
  });

  test('malformed snapshots are refused with MALFORMED and change nothing', () => {
    const a = makeGrid('a');
    const am = a.grid.getMap('m');
    am.set('k', { some: ['value', 1.5] });
    am.set('k2', 'v2', { ttlMs: 9 });
    am.remove('gone');
    const good = a.grid.exportMap('m');
    const { grid } = makeGrid('b');
    const map = grid.getMap('m');
    map.set('mine', 1);
    const wrongVersion = Uint8Array.from(good);
    wrongVersion[0] = good[0] + 1;
    const cases = [
      new Uint8Array(0),
      Uint8Array.of(0xff, 0xff, 0xff),
      Uint8Array.of(good[0], 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
      good.subarray(0, 1),
      good.subarray(0, good.length - 1),
      good.subarray(0, good.length >> 1),
      Uint8Array.of(...good, 0), // trailing garbage
      wrongVersion,
      Uint8Array.of(0, ...good.subarray(1)),
    ];
    for (const bytes of cases) {
      assertRefused(grid, map, () => grid.importMap('m', bytes), 'MALFORMED');
    }
    // Every truncation is refused, and a refused import into a new name leaves no map behind.
    for (let n = 0; n < good.length; n++) {
      throwsError(() => grid.importMap('fresh', good.subarray(0, n)), 'MALFORMED');
    }
    assert.equal(grid.hasMap('fresh'), false);
    assert.deepEqual(grid.mapNames(), ['m']);
    // The good snapshot still imports.
    assert.equal(grid.importMap('m', good), 3);
  });

  test('crafted snapshots that break the rules are refused with MALFORMED and change nothing', () => {
    /** `bytes` with the first occurrence of `from` replaced by `to` (same length). */
    const patch = (bytes, from, to) => {
      const f = typeof from === 'string' ? new TextEncoder().encode(from) : from;
      const t = typeof to === 'string' ? new TextEncoder().encode(to) : to;
      assert.equal(f.length, t.length);
      for (let i = 0; i + f.length <= bytes.length; i++) {
        if (f.every((b, j) => bytes[i + j] === b)) {
          const out = Uint8Array.from(bytes);
          out.set(t, i);
          return out;
        }
      }
      throw new Error(`pattern ${from} not in the snapshot`);
    };
    const exported = (fill, kind = 'lww') => {
      const { grid } = makeGrid('nodeA');
      fill(kind === 'lww' ? grid.getMap('m') : grid.getORMap('m'));
      return grid.exportMap('m');
    };
    const f64 = (x) => new Uint8Array(new Float64Array([x]).buffer);
    const cases = [
      ['the reserved key (LWW)', patch(exported((m) => m.set('__tombstonesXY', 1)), '__tombstonesXY', '__tombstones__'), 'lww'],
      ['the reserved key (OR)', patch(exported((m) => m.add('__tombstonesXY', 1), 'or'), '__tombstonesXY', '__tombstones__'), 'or'],
      ['a key that is not UTF-8', patch(exported((m) => m.set('abc', 1)), 'abc', Uint8Array.of(0xed, 0xa0, 0x80)), 'lww'],
      ['an invalid node id', patch(exported((m) => m.set('k', 1)), 'nodeA', 'node '), 'lww'],
      ['an OR tag with an invalid node id', patch(exported((m) => m.add('k', 1), 'or'), 'nodeA', 'no:eA'), 'or'],
      ['NaN', patch(exported((m) => m.set('k', 1.5)), f64(1.5), f64(NaN)), 'lww'],
      ['Infinity', patch(exported((m) => m.add('k', 1.5), 'or'), f64(1.5), f64(Infinity)), 'or'],
      ['a repeated object key', patch(exported((m) => m.set('k', { a: 1, b: 2 })), Uint8Array.of(1, 0x62), Uint8Array.of(1, 0x61)), 'lww'],
      [
        'unsorted object keys',
        patch(patch(exported((m) => m.add('k', { a: 1, b: 2 }), 'or'), Uint8Array.of(1, 0x61), Uint8Array.of(1, 0x63)), Uint8Array.of(1, 0x62), Uint8Array.of(1, 0x61)),
        'or',
      ],
    ];
    for (const [what, bytes, kind] of cases) {
      const { grid } = makeGrid('target');
      const map = kind === 'lww' ? grid.getMap('m') : grid.getORMap('m');
      if (kind === 'lww') map.set('mine', 1);
      else map.add('mine', 1);
      assertRefused(grid, map, () => grid.importMap('m', bytes), 'MALFORMED');
      throwsError(() => grid.importMap('fresh', bytes), 'MALFORMED');
      assert.equal(grid.hasMap('fresh'), false, what);
    }
  });

  test('every single-byte corruption of a snapshot is refused or imports consistently', () => {
    // No corruption may crash the module or leave it unusable; one that still decodes must import
    // like any other snapshot (replicas that import it agree).
    const a = makeGrid('a');
    a.grid.getORMap('o').add('key', { v: [1, 'x'] });
    a.grid.getORMap('o').add('key', 2, { ttlMs: 4 });
    a.grid.getORMap('o').remove('key', 2);
    const good = a.grid.exportMap('o');
    for (let i = 0; i < good.length; i++) {
      for (const flip of [0x01, 0x80, 0xff]) {
        const bytes = Uint8Array.from(good);
        bytes[i] ^= flip;
        const x = makeGrid('x');
        const y = makeGrid('y');
        let ok = true;
        try {
          x.grid.importMap('o', bytes);
        } catch (e) {
          ok = false;
          assertCode(e, 'MALFORMED');
          assert.equal(x.grid.hasMap('o'), false);
        }
        if (ok) {
          y.grid.importMap('o', bytes);
          assert.equal(x.grid.getORMap('o').rootHash(), y.grid.getORMap('o').rootHash());
        }
        x.grid.getMap('still-usable').set('k', 1);
        assert.equal(x.grid.getMap('still-usable').get('k'), 1);
      }
    }
  });

  test('import merges by LWW rules: later timestamp wins, node id breaks ties byte-wise', () => {
    // Same millis and counter: node id "a" (0x61) beats "B" (0x42) byte-wise, though a locale
    // comparison would order "B" after "a".
    const upper = makeGrid('B');
    const lower = makeGrid('a');
    upper.grid.getMap('m').set('k', 'from B');
    lower.grid.getMap('m').set('k', 'from a');
    assert.equal(sync(upper.grid, lower.grid, 'm'), 0);
    assert.equal(sync(lower.grid, upper.grid, 'm'), 1);
    assert.equal(upper.grid.getMap('m').get('k'), 'from a');
    assert.equal(lower.grid.getMap('m').get('k'), 'from a');
  });

  test('equal timestamps: the value never breaks a tie (the local record stays)', () => {
    const one = makeGrid('same');
    const two = makeGrid('same');
    one.grid.getMap('m').set('k', 1);
    two.grid.getMap('m').set('k', 2);
    assert.equal(sync(two.grid, one.grid, 'm'), 0);
    assert.equal(one.grid.getMap('m').get('k'), 1);
  });

  test('import advances the clock past every timestamp seen', () => {
    const ahead = makeGrid('ahead');
    ahead.clock.now = T0 + 5000; // within the default drift limit
    ahead.grid.getMap('m').set('x', 1);
    ahead.grid.getMap('m').set('y', 1); // counter 1
    const { grid } = makeGrid('behind');
    sync(ahead.grid, grid, 'm');
    grid.getMap('m').set('z', 1);
    // update(x): only the remote has T0+5000, counter 0+1; update(y): both, max(1,1)+1 = 2; now(): 3.
    assert.deepEqual(grid.getMap('m').getRecord('z').timestamp, { millis: T0 + 5000, counter: 3, nodeId: 'behind' });
    // And through an OR map too.
    ahead.clock.now = T0 + 9000;
    ahead.grid.getORMap('o').add('k', 1);
    sync(ahead.grid, grid, 'o');
    // update: only the remote has T0+9000, counter 0+1; now(): 2.
    assert.equal(grid.getORMap('o').add('k', 2), `${T0 + 9000}:2:behind`);
  });
});
