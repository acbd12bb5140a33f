// Tests of the onegrid JavaScript API (wasm/js/onegrid.js, typed by onegrid.d.ts): loading the
// module (initSync and init), Grid construction and its options, and map handles.
// The API's tests are split by area into tests/js/api-*.test.mjs; api-helpers.mjs has what they share.
//
// Run: ONEGRID_PKG=/path/to/pkg node --test tests/js/*.test.mjs
// Every test builds its own grids on a fake clock (`clock.now`), so none depends on another.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { Grid, LwwMap, OrMap, T0, assertRefused, clockAt, makeGrid, pkgDir, throwsError } from './load.mjs';

describe('loading the module', () => {
  // Each case runs in a fresh Node process: the module loads once per process.
  const run = (body) => {
    const script = `
      import { readFileSync } from 'node:fs';
      const onegrid = await import(${JSON.stringify(pathToFileURL(join(pkgDir, 'onegrid.js')).href)});
      const bytes = readFileSync(${JSON.stringify(join(pkgDir, 'onegrid_bg.wasm'))});
      const works = () => {
        const map = new onegrid.Grid({ nodeId: 'a' }).getMap('m');
        map.set('k', { b: 1, a: 2 });
        return JSON.stringify(map.get('k'));
      };
      ${body}`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(child.status, 0, child.stderr);
    return child.stdout.trim();
  };

  test('init() after initSync() returns the loaded module, and grids work', () => {
    const out = run(`
      const first = onegrid.initSync({ module: bytes });
      const second = await onegrid.default({ module_or_path: bytes });
      console.log(first === second, works());`);
    assert.equal(out, 'true {"a":2,"b":1}');
  });

  test('initSync() while init() is loading throws NOT_LOADED, and the load still completes', () => {
    // The glue would finish the async load later and swap a second instance in under every grid.
    const out = run(`
      const loading = onegrid.default({ module_or_path: bytes });
      let refused = 'nothing thrown';
      try { onegrid.initSync({ module: bytes }); } catch (e) { refused = [e instanceof onegrid.OnegridError, e.name, e.code].join(' '); }
      await loading;
      console.log(refused, works(), onegrid.initSync({ module: bytes }) === await loading);`);
    assert.equal(out, 'true OnegridError NOT_LOADED {"a":2,"b":1} true');
  });

  test('a Grid made before the module is loaded throws NOT_LOADED', () => {
    const out = run(`
      let refused = 'nothing thrown';
      try { new onegrid.Grid({ nodeId: 'a' }); } catch (e) { refused = [e instanceof onegrid.OnegridError, e.name, e.code].join(' '); }
      onegrid.initSync({ module: bytes });
      console.log(refused, works());`);
    assert.equal(out, 'true OnegridError NOT_LOADED {"a":2,"b":1}');
  });

  test('a fresh grid shows nothing of the grid the package keeps alive', () => {
    const out = run(`
      onegrid.initSync({ module: bytes });
      const grid = new onegrid.Grid({ nodeId: 'a' });
      console.log(JSON.stringify(grid.mapNames()), grid.hasMap('m'), grid.hasMap('o'));`);
    assert.equal(out, '[] false false');
  });
});

describe('Grid construction', () => {
  test('a valid node id is kept and read back by grid.nodeId', () => {
    for (const id of ['a', 'node-1', 'N.o_d-e', '0', 'x'.repeat(64)]) {
      assert.equal(new Grid({ nodeId: id, clock: clockAt() }).nodeId, id);
    }
  });

  test('an invalid node id throws INVALID_ARGUMENT', () => {
    throwsError(() => new Grid({ nodeId: '' }), 'INVALID_ARGUMENT');
    throwsError(() => new Grid({ nodeId: 'x'.repeat(65) }), 'INVALID_ARGUMENT');
    for (const bad of ['a b', 'a:b', 'a/b', 'é', 'a\u0000', '😀']) {
      throwsError(() => new Grid({ nodeId: bad }), 'INVALID_ARGUMENT');
    }
    throwsError(() => new Grid({ nodeId: '\uD800' }), 'INVALID_ARGUMENT');
  });

  test('a node id that is not a string throws INVALID_ARGUMENT', () => {
    for (const bad of [5, null, undefined, {}, ['a'], Symbol('a'), 1n]) {
      throwsError(() => new Grid({ nodeId: bad }), 'INVALID_ARGUMENT');
    }
    throwsError(() => new Grid({}), 'INVALID_ARGUMENT');
  });

  test('options that are not an object throw INVALID_ARGUMENT', () => {
    throwsError(() => new Grid(), 'INVALID_ARGUMENT');
    throwsError(() => new Grid(null), 'INVALID_ARGUMENT');
    throwsError(() => new Grid('a'), 'INVALID_ARGUMENT');
  });

  test('option type errors throw INVALID_ARGUMENT naming the option', () => {
    const refused = (options, name) => {
      const e = throwsError(() => new Grid({ nodeId: 'a', ...options }), 'INVALID_ARGUMENT');
      assert.match(e.message, new RegExp(`\\boptions\\.${name}\\b`), 'the message names the option');
    };
    for (const clock of [5, 'now', null, {}]) refused({ clock }, 'clock');
    for (const maxDriftMs of [-1, 1.5, NaN, Infinity, '100', null, 2 ** 53]) refused({ maxDriftMs }, 'maxDriftMs');
    for (const strictDrift of [1, 'true', null, 0]) refused({ strictDrift }, 'strictDrift');
    for (const onDrift of [1, 'fn', {}, null]) refused({ onDrift }, 'onDrift');
  });

  test('valid options are accepted', () => {
    const grid = new Grid({ nodeId: 'a', clock: clockAt(), maxDriftMs: 0, strictDrift: true, onDrift: () => {} });
    assert.equal(grid.nodeId, 'a');
    assert.deepEqual(grid.mapNames(), []);
  });

  test('a clock returning a bad time makes writes throw INVALID_ARGUMENT and change nothing', () => {
    const { grid, clock } = makeGrid();
    const map = grid.getMap('m');
    map.set('k', 1);
    for (const bad of [NaN, -1, Infinity, '5', undefined]) {
      clock.now = bad;
      throwsError(() => map.set('k', 2), 'INVALID_ARGUMENT');
    }
    clock.now = T0;
    assert.equal(map.get('k'), 1);
  });

  test('a clock beyond 2^53 ms is refused like any other bad time', () => {
    // Such a time cannot come back exactly (getRecord's millis is a number), and past 2^64 the
    // module saturates it to u64::MAX, which then pins this grid's clock (and its peers') forever.
    const { grid, clock } = makeGrid();
    const map = grid.getMap('m');
    map.set('k', 1);
    const before = grid.exportMap('m');
    for (const bad of [2 ** 53, 2 ** 64, 1e20, Number.MAX_VALUE]) {
      clock.now = bad;
      throwsError(() => map.set('k', 2), 'INVALID_ARGUMENT');
    }
    clock.now = T0;
    assert.deepEqual(grid.exportMap('m'), before);
    map.set('k', 3);
    assert.equal(map.get('k'), 3);
  });

  test('a clock that reads the grid does not change what a write stores', () => {
    // The clock runs inside set/remove/add/setMany; here it reads a settings map (say, a clock
    // offset kept in the grid). That must not change which key or value gets written.
    let settings;
    const clock = () => {
      settings?.getRecord('xy');
      return T0;
    };
    const grid = new Grid({ nodeId: 'a', clock });
    settings = grid.getMap('settings');
    const map = grid.getMap('m');
    map.set('ab', 'cd');
    map.setMany([['ef', 'gh']]);
    map.remove('ij');
    grid.getORMap('o').add('kl', 'mn');
    assert.deepEqual(map.entries(), [['ab', 'cd'], ['ef', 'gh']]);
    assert.equal(map.getRecord('ij')?.deleted, true);
    assert.equal(map.getRecord('xy'), undefined);
    assert.deepEqual(grid.getORMap('o').entries(), [['kl', ['mn']]]);
  });

  test('map handles cannot be built directly', () => {
    throwsError(() => new LwwMap({}, 'm', 0), 'INVALID_ARGUMENT');
    throwsError(() => new OrMap({}, 'm', 0), 'INVALID_ARGUMENT');
  });
});

describe('map handles', () => {
  test('getMap and getORMap give handles with kind and name', () => {
    const { grid } = makeGrid();
    const lww = grid.getMap('users');
    const or = grid.getORMap('tags');
    assert.ok(lww instanceof LwwMap);
    assert.ok(or instanceof OrMap);
    assert.equal(lww.kind, 'lww');
    assert.equal(lww.name, 'users');
    assert.equal(or.kind, 'or');
    assert.equal(or.name, 'tags');
  });

  test('two handles of one map share its state', () => {
    const { grid } = makeGrid();
    grid.getMap('m').set('k', 'v');
    assert.equal(grid.getMap('m').get('k'), 'v');
    grid.getORMap('o').add('k', 1);
    assert.deepEqual(grid.getORMap('o').get('k'), [1]);
  });

  test('kind mismatch both ways throws KIND_MISMATCH naming the map and both kinds, and changes nothing', () => {
    const { grid } = makeGrid();
    const lww = grid.getMap('l');
    lww.set('k', 1);
    const or = grid.getORMap('o');
    or.add('k', 1);
    for (const [e, name] of [
      [assertRefused(grid, lww, () => grid.getORMap('l'), 'KIND_MISMATCH'), 'l'],
      [assertRefused(grid, or, () => grid.getMap('o'), 'KIND_MISMATCH'), 'o'],
    ]) {
      assert.ok(e.message.includes(`"${name}"`), 'the message names the map');
      assert.match(e.message, /\bLWW\b/i, 'the message names both kinds');
      assert.match(e.message, /\bOR\b/i, 'the message names both kinds');
    }
    assert.equal(grid.getMap('l').kind, 'lww');
    assert.equal(grid.getORMap('o').kind, 'or');
  });

  test('hasMap and mapNames (sorted)', () => {
    const { grid } = makeGrid();
    assert.equal(grid.hasMap('b'), false);
    for (const name of ['b', 'a', 'C', 'aa', '1']) grid.getMap(name);
    grid.getORMap('0or');
    assert.equal(grid.hasMap('b'), true);
    assert.equal(grid.hasMap('0or'), true);
    assert.equal(grid.hasMap('zz'), false);
    assert.deepEqual(grid.mapNames(), ['0or', '1', 'C', 'a', 'aa', 'b']);
  });

  test('names and keys are sorted by code point (UTF-8 byte order), not UTF-16 order', () => {
    // U+FFFD sorts before U+1F600 by code point; JavaScript's default sort puts the emoji first.
    const { grid } = makeGrid();
    for (const name of ['😀', '\uFFFD', 'b']) grid.getMap(name);
    assert.deepEqual(grid.mapNames(), ['b', '\uFFFD', '😀']);
    const map = grid.getMap('b');
    for (const key of ['😀', '\uFFFD', 'é', 'e']) map.set(key, 1);
    assert.deepEqual(map.keys(), ['e', 'é', '\uFFFD', '😀']);
  });

  test('map names: non-strings, lone surrogates, empty and over 256 bytes are refused with INVALID_ARGUMENT', () => {
    const { grid } = makeGrid();
    for (const open of [(n) => grid.getMap(n), (n) => grid.getORMap(n), (n) => grid.hasMap(n), (n) => grid.exportMap(n)]) {
      throwsError(() => open(5), 'INVALID_ARGUMENT');
      throwsError(() => open(undefined), 'INVALID_ARGUMENT');
      throwsError(() => open('a\uD800'), 'INVALID_ARGUMENT');
      throwsError(() => open('\uDC00b'), 'INVALID_ARGUMENT');
    }
    throwsError(() => grid.importMap('\uD800', new Uint8Array([1])), 'INVALID_ARGUMENT');
    throwsError(() => grid.getMap(''), 'INVALID_ARGUMENT');
    throwsError(() => grid.getORMap(''), 'INVALID_ARGUMENT');
    throwsError(() => grid.getMap('n'.repeat(257)), 'INVALID_ARGUMENT');
    assert.equal(grid.getMap('n'.repeat(256)).name.length, 256);
    assert.equal(grid.getMap('é'.repeat(128)).name, 'é'.repeat(128)); // 256 bytes
    throwsError(() => grid.getMap('é'.repeat(129)), 'INVALID_ARGUMENT');
    assert.deepEqual(grid.mapNames(), ['n'.repeat(256), 'é'.repeat(128)]);
  });
});
