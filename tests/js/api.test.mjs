// Tests of the onegrid JavaScript API (wasm/js/onegrid.js, typed by onegrid.d.ts) against SPEC
// sections 1, 3 and 4: grids and their options, map handles, LWW and OR maps, TTL, pruning,
// subscriptions, snapshots between grids, clock drift and determinism.
//
// Run: ONEGRID_PKG=/path/to/pkg node --test tests/js/
// Every test builds its own grids on a fake clock (`clock.now`), so none depends on another.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { Grid, LwwMap, OrMap, T0, assertRefused, clockAt, makeGrid, pkgDir, throwsError } from './load.mjs';

/** Copies map `name` from grid `from` into grid `to`; returns what importMap returned. */
function sync(from, to, name) {
  return to.importMap(name, from.exportMap(name));
}

/** Writes `key` = `key` into map "m" of `grid`, of `kind` "lww" (set) or "or" (add). */
function write(grid, kind, key) {
  if (kind === 'lww') grid.getMap('m').set(key, key);
  else grid.getORMap('m').add(key, key);
}

/** Records every change a map reports. */
function recorder(map) {
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
function lwwSnapshotAt(millis, ttlMs) {
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
function assertU32(n) {
  assert.equal(typeof n, 'number');
  assert.ok(Number.isInteger(n) && n >= 0 && n <= 0xffffffff, `${n} is not a u32`);
}

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

  test('initSync() while init() is loading throws, and the load still completes', () => {
    // The glue would finish the async load later and swap a second instance in under every grid.
    const out = run(`
      const loading = onegrid.default({ module_or_path: bytes });
      let refused = '';
      try { onegrid.initSync({ module: bytes }); } catch (e) { refused = e.message; }
      await loading;
      console.log(JSON.stringify(refused), works(), onegrid.initSync({ module: bytes }) === await loading);`);
    assert.equal(out, '"onegrid: init() is still loading the module; await it instead of calling initSync()" {"a":2,"b":1} true');
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

  test('an invalid node id throws an Error naming the problem', () => {
    throwsError(() => new Grid({ nodeId: '' }), /invalid node id.*empty/);
    throwsError(() => new Grid({ nodeId: 'x'.repeat(65) }), /invalid node id.*longer than 64/);
    for (const bad of ['a b', 'a:b', 'a/b', 'é', 'a\u0000', '😀']) {
      throwsError(() => new Grid({ nodeId: bad }), /invalid node id.*only the characters A-Z a-z 0-9 \. _ -/);
    }
    throwsError(() => new Grid({ nodeId: '\uD800' }), /nodeId.*lone surrogate/);
  });

  test('a node id that is not a string throws', () => {
    for (const bad of [5, null, undefined, {}, ['a'], Symbol('a'), 1n]) {
      throwsError(() => new Grid({ nodeId: bad }), /options\.nodeId must be a string/);
    }
    throwsError(() => new Grid({}), /options\.nodeId must be a string/);
  });

  test('options that are not an object throw', () => {
    throwsError(() => new Grid(), /options object with a nodeId/);
    throwsError(() => new Grid(null), /options object with a nodeId/);
    throwsError(() => new Grid('a'), /options object with a nodeId/);
  });

  test('option type errors name the option', () => {
    for (const clock of [5, 'now', null, {}]) {
      throwsError(() => new Grid({ nodeId: 'a', clock }), /options\.clock must be a function/);
    }
    for (const maxDriftMs of [-1, 1.5, NaN, Infinity, '100', null, 2 ** 53]) {
      throwsError(() => new Grid({ nodeId: 'a', maxDriftMs }), /options\.maxDriftMs must be a whole number of milliseconds >= 0/);
    }
    for (const strictDrift of [1, 'true', null, 0]) {
      throwsError(() => new Grid({ nodeId: 'a', strictDrift }), /options\.strictDrift must be a boolean/);
    }
    for (const onDrift of [1, 'fn', {}, null]) {
      throwsError(() => new Grid({ nodeId: 'a', onDrift }), /options\.onDrift must be a function/);
    }
  });

  test('valid options are accepted', () => {
    const grid = new Grid({ nodeId: 'a', clock: clockAt(), maxDriftMs: 0, strictDrift: true, onDrift: () => {} });
    assert.equal(grid.nodeId, 'a');
    assert.deepEqual(grid.mapNames(), []);
  });

  test('a clock returning a bad time makes writes throw and change nothing', () => {
    const { grid, clock } = makeGrid();
    const map = grid.getMap('m');
    map.set('k', 1);
    for (const bad of [NaN, -1, Infinity, '5', undefined]) {
      clock.now = bad;
      throwsError(() => map.set('k', 2), /clock\(\) must return milliseconds >= 0/);
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
      throwsError(() => map.set('k', 2), /clock\(\) must return milliseconds/);
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
    throwsError(() => new LwwMap({}, 'm', 0), /grid\.getMap/);
    throwsError(() => new OrMap({}, 'm', 0), /grid\.getORMap/);
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

  test('kind mismatch both ways names both kinds and changes nothing', () => {
    const { grid } = makeGrid();
    const lww = grid.getMap('l');
    lww.set('k', 1);
    const or = grid.getORMap('o');
    or.add('k', 1);
    const e1 = assertRefused(grid, lww, () => grid.getORMap('l'), /kind mismatch/);
    assert.match(e1.message, /\bLWW\b/i);
    assert.match(e1.message, /\bOR\b/i);
    assert.match(e1.message, /"l"/);
    const e2 = assertRefused(grid, or, () => grid.getMap('o'), /kind mismatch/);
    assert.match(e2.message, /\bLWW\b/i);
    assert.match(e2.message, /\bOR\b/i);
    assert.match(e2.message, /"o"/);
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

  test('map names: non-strings, lone surrogates, empty and over 256 bytes are refused', () => {
    const { grid } = makeGrid();
    for (const open of [(n) => grid.getMap(n), (n) => grid.getORMap(n), (n) => grid.hasMap(n), (n) => grid.exportMap(n)]) {
      throwsError(() => open(5), /map name must be a string/);
      throwsError(() => open(undefined), /map name must be a string/);
      throwsError(() => open('a\uD800'), /map name contains a lone surrogate/);
      throwsError(() => open('\uDC00b'), /map name contains a lone surrogate/);
    }
    throwsError(() => grid.importMap('\uD800', new Uint8Array([1])), /map name contains a lone surrogate/);
    throwsError(() => grid.getMap(''), /invalid map name "": it is empty/);
    throwsError(() => grid.getORMap(''), /invalid map name "": it is empty/);
    throwsError(() => grid.getMap('n'.repeat(257)), /invalid map name.*longer than 256 bytes/);
    assert.equal(grid.getMap('n'.repeat(256)).name.length, 256);
    assert.equal(grid.getMap('é'.repeat(128)).name, 'é'.repeat(128)); // 256 bytes
    throwsError(() => grid.getMap('é'.repeat(129)), /longer than 256 bytes/);
    assert.deepEqual(grid.mapNames(), ['n'.repeat(256), 'é'.repeat(128)]);
  });
});

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

  test('write options: undefined/null/{} mean no TTL; bad TTLs are refused', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    map.set('a', 1, undefined);
    map.set('b', 1, null);
    map.set('c', 1, {});
    map.set('d', 1, { ttlMs: undefined });
    for (const k of ['a', 'b', 'c', 'd']) assert.equal('ttlMs' in map.getRecord(k), false);
    assertRefused(grid, map, () => map.set('k', 1, { ttlMs: 0 }), /invalid TTL: it must be at least 1 millisecond/);
    for (const ttlMs of [-1, 1.5, NaN, Infinity, '10', null, 10n]) {
      assertRefused(grid, map, () => map.set('k', 1, { ttlMs }), /options\.ttlMs must be a whole number of milliseconds >= 0/);
    }
    assertRefused(grid, map, () => map.set('k', 1, 100), /options must be an object/);
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

  test('prune argument must be a whole number >= 0', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    for (const bad of [-1, 1.5, NaN, '1', undefined]) {
      assertRefused(grid, map, () => map.prune(bad), /olderThanMillis must be a whole number of milliseconds >= 0/);
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
      [[['a', 1], ['b', NaN], ['c', 3]], /invalid value at \$\.entries\[1\]: NaN/],
      [[['a', 1], ['b', { deep: [() => 1] }]], /invalid value at \$\.entries\[1\]\.deep\[0\]: a function is not a value/],
      [[['a', 1], ['__tombstones__', 2]], /"__tombstones__" is reserved/],
      [[['a', 1], ['b\uD800', 2]], /key of entry 1 .*lone surrogate/],
      [[['a', 1], [5, 2]], /the key of entry 1 must be a string/],
      [[['a', 1], ['b']], /setMany\(\): entry 1 is not a \[key, value\] pair/],
      [[['a', 1], ['b', 2, 3]], /entry 1 is not a \[key, value\] pair/],
      [[['a', 1], 'b'], /entry 1 is not a \[key, value\] pair/],
      [[['a', 1], ['b', 2n ** 64n]], /entries\[1\]: a BigInt outside the signed 64-bit range/],
    ];
    for (const [batch, pattern] of batches) assertRefused(grid, map, () => map.setMany(batch), pattern);
    assertRefused(grid, map, () => map.setMany({ a: 1 }), /setMany\(\) takes an array of \[key, value\] pairs/);
    assertRefused(grid, map, () => map.setMany(undefined), /setMany\(\) takes an array/);
    assert.equal(map.get('a'), undefined);
  });

  test('a refused write does not advance the clock', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    throwsError(() => map.setMany([['a', 1], ['__tombstones__', 2]]), /reserved/);
    throwsError(() => map.set('a', 1, { ttlMs: 0 }), /TTL/);
    throwsError(() => map.remove('__tombstones__'), /reserved/);
    map.set('probe', 1);
    assert.equal(map.getRecord('probe').timestamp.counter, 0);
  });

  test('the reserved keys "__tombstones__" and "__mark__" are refused by every write and read', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    for (const key of ['__tombstones__', '__mark__']) {
      const reserved = new RegExp(`the key "${key}" is reserved`);
      assertRefused(grid, map, () => map.set(key, 1), reserved);
      assertRefused(grid, map, () => map.remove(key), reserved);
      assertRefused(grid, map, () => map.setMany([[key, 1]]), reserved);
      assertRefused(grid, map, () => map.get(key), reserved);
      assertRefused(grid, map, () => map.has(key), reserved);
      assertRefused(grid, map, () => map.getRecord(key), reserved);
    }
  });

  test('keys must be strings without lone surrogates', () => {
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
        assertRefused(grid, map, () => call(bad), /the key must be a string/);
      }
      for (const bad of ['\uD800', 'a\uDC00', '\uDBFF\uDBFF', 'x\uD83D']) {
        assertRefused(grid, map, () => call(bad), /key contains a lone surrogate/);
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

  test('TTL options are checked as for LWW', () => {
    const { grid } = makeGrid();
    const map = grid.getORMap('o');
    assertRefused(grid, map, () => map.add('k', 1, { ttlMs: 0 }), /invalid TTL: it must be at least 1 millisecond/);
    for (const ttlMs of [-5, 0.5, '1', NaN]) {
      assertRefused(grid, map, () => map.add('k', 1, { ttlMs }), /options\.ttlMs must be a whole number of milliseconds >= 0/);
    }
    assertRefused(grid, map, () => map.add('k', 1, 'ttl'), /options must be an object/);
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
    assertRefused(grid, map, () => map.prune(-1), /olderThanMillis/);
  });

  test('the reserved key and bad keys are refused', () => {
    const { grid } = makeGrid();
    const map = grid.getORMap('o');
    map.add('k', 1);
    assertRefused(grid, map, () => map.add('__tombstones__', 1), /the key "__tombstones__" is reserved/);
    assertRefused(grid, map, () => map.remove('__tombstones__', 1), /the key "__tombstones__" is reserved/);
    assertRefused(grid, map, () => map.get('__tombstones__'), /the key "__tombstones__" is reserved/);
    assertRefused(grid, map, () => map.has('__mark__'), /the key "__mark__" is reserved/);
    for (const call of [(k) => map.add(k, 1), (k) => map.remove(k, 1), (k) => map.get(k), (k) => map.has(k)]) {
      assertRefused(grid, map, () => call(7), /the key must be a string/);
      assertRefused(grid, map, () => call(undefined), /the key must be a string/);
      assertRefused(grid, map, () => call('\uD800'), /lone surrogate/);
    }
  });
});

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

  test('subscribe takes a function', () => {
    const { grid } = makeGrid();
    for (const bad of [undefined, null, 1, {}]) {
      throwsError(() => grid.getMap('m').subscribe(bad), /subscribe\(\) takes a function/);
      throwsError(() => grid.getORMap('o').subscribe(bad), /subscribe\(\) takes a function/);
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

  test('import into a map of the other kind throws kind mismatch and changes nothing', () => {
    const a = makeGrid('a');
    const b = makeGrid('b');
    a.grid.getMap('m').set('k', 1);
    a.grid.getORMap('o').add('k', 1);
    const bo = b.grid.getORMap('m');
    bo.add('mine', 1);
    const bl = b.grid.getMap('o');
    bl.set('mine', 1);
    const e1 = assertRefused(b.grid, bo, () => b.grid.importMap('m', a.grid.exportMap('m')), /kind mismatch/);
    assert.match(e1.message, /\bLWW\b/i);
    assert.match(e1.message, /\bOR\b/i);
    const e2 = assertRefused(b.grid, bl, () => b.grid.importMap('o', a.grid.exportMap('o')), /kind mismatch/);
    assert.match(e2.message, /\bLWW\b/i);
    assert.match(e2.message, /\bOR\b/i);
  });

  test('exportMap of a map the grid never had throws', () => {
    const { grid } = makeGrid();
    throwsError(() => grid.exportMap('nope'), /no map named "nope"/);
    assert.equal(grid.hasMap('nope'), false);
  });

  test('importMap takes a Uint8Array (a view at an offset works, other types are refused)', () => {
    const a = makeGrid('a');
    a.grid.getMap('m').set('k', 'v');
    const bytes = a.grid.exportMap('m');
    assert.ok(bytes instanceof Uint8Array);
    const { grid } = makeGrid('b');
    const map = grid.getMap('m');
    map.set('mine', 1);
    for (const bad of [[...bytes], bytes.buffer, 'bytes', null, undefined, new Uint16Array(4), new DataView(bytes.buffer)]) {
      assertRefused(grid, map, () => grid.importMap('m', bad), /importMap\(\) takes a Uint8Array/);
    }
    const padded = new Uint8Array(bytes.length + 16);
    padded.set(bytes, 7);
    assert.equal(grid.importMap('m', padded.subarray(7, 7 + bytes.length)), 1);
    assert.equal(map.get('k'), 'v');
    assert.equal(grid.importMap('m', Buffer.from(bytes)), 0);
  });

  test('malformed snapshots are refused with "malformed snapshot" and change nothing', () => {
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
      assertRefused(grid, map, () => grid.importMap('m', bytes), /malformed snapshot/);
    }
    const e = throwsError(() => grid.importMap('m', wrongVersion), /malformed snapshot/);
    assert.match(e.message, /version/);
    // Every truncation is refused, and a refused import into a new name leaves no map behind.
    for (let n = 0; n < good.length; n++) {
      throwsError(() => grid.importMap('fresh', good.subarray(0, n)), /malformed snapshot/);
    }
    assert.equal(grid.hasMap('fresh'), false);
    assert.deepEqual(grid.mapNames(), ['m']);
    // The good snapshot still imports.
    assert.equal(grid.importMap('m', good), 3);
  });

  test('crafted snapshots that break the rules are refused and change nothing', () => {
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
      ['the reserved key (LWW)', patch(exported((m) => m.set('__tombstonesXY', 1)), '__tombstonesXY', '__tombstones__'), 'lww', /reserved/],
      ['the reserved key (OR)', patch(exported((m) => m.add('__tombstonesXY', 1), 'or'), '__tombstonesXY', '__tombstones__'), 'or', /reserved/],
      ['a key that is not UTF-8', patch(exported((m) => m.set('abc', 1)), 'abc', Uint8Array.of(0xed, 0xa0, 0x80)), 'lww', /UTF-8/],
      ['an invalid node id', patch(exported((m) => m.set('k', 1)), 'nodeA', 'node '), 'lww', /invalid node id/],
      ['an OR tag with an invalid node id', patch(exported((m) => m.add('k', 1), 'or'), 'nodeA', 'no:eA'), 'or', /invalid node id/],
      ['NaN', patch(exported((m) => m.set('k', 1.5)), f64(1.5), f64(NaN)), 'lww', /NaN/],
      ['Infinity', patch(exported((m) => m.add('k', 1.5), 'or'), f64(1.5), f64(Infinity)), 'or', /NaN and infinities/],
      ['a repeated object key', patch(exported((m) => m.set('k', { a: 1, b: 2 })), Uint8Array.of(1, 0x62), Uint8Array.of(1, 0x61)), 'lww', /unique and sorted/],
      [
        'unsorted object keys',
        patch(patch(exported((m) => m.add('k', { a: 1, b: 2 }), 'or'), Uint8Array.of(1, 0x61), Uint8Array.of(1, 0x63)), Uint8Array.of(1, 0x62), Uint8Array.of(1, 0x61)),
        'or',
        /unique and sorted/,
      ],
    ];
    for (const [what, bytes, kind, pattern] of cases) {
      const { grid } = makeGrid('target');
      const map = kind === 'lww' ? grid.getMap('m') : grid.getORMap('m');
      if (kind === 'lww') map.set('mine', 1);
      else map.add('mine', 1);
      const e = assertRefused(grid, map, () => grid.importMap('m', bytes), /^malformed snapshot/);
      assert.match(e.message, pattern, what);
      throwsError(() => grid.importMap('fresh', bytes), /^malformed snapshot/);
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
          assert.ok(e instanceof Error);
          assert.match(e.message, /malformed|invalid|kind mismatch|clock drift/);
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
      const e = throwsError(() => sync(remote.grid, grid, 'm'), /onDrift threw at report 1/);
      assert.equal(e, thrown[0], kind);
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
    const { grid } = makeGrid('local', { maxDriftMs: 10, onDrift: (d) => { reports.push(d); throw new Error('from onDrift'); } });
    const map = grid.getMap('m');
    map.subscribe(() => {
      throw new Error('from a subscriber');
    });
    const heard = recorder(map);
    const remote = makeGrid('remote');
    remote.clock.now = T0 + 3_600_000;
    write(remote.grid, 'lww', 'k1');
    write(remote.grid, 'lww', 'k2');
    throwsError(() => sync(remote.grid, grid, 'm'), /^from onDrift$/);
    assert.equal(reports.length, 2);
    assert.deepEqual(heard.changes.map((c) => c.key), ['k1', 'k2']);
    // Without drift, the subscriber's error is the one rethrown, after every subscriber heard.
    const calm = makeGrid('calm');
    write(calm.grid, 'lww', 'k3');
    throwsError(() => sync(calm.grid, grid, 'm'), /^from a subscriber$/);
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

  test('strict mode throws "clock drift" and changes nothing, clock included', () => {
    const reports = [];
    const { grid } = makeGrid('local', { maxDriftMs: 10, strictDrift: true, onDrift: (d) => reports.push(d) });
    const lww = grid.getMap('m');
    lww.set('mine', 1);
    const or = grid.getORMap('o');
    or.add('mine', 1);
    const remote = remoteAhead(3_600_000);
    const e = assertRefused(grid, lww, () => sync(remote, grid, 'm'), /clock drift/);
    assert.match(e.message, /3600000 ms ahead/);
    assertRefused(grid, or, () => sync(remote, grid, 'o'), /clock drift/);
    assert.deepEqual(reports, []);
    // A refused import into a map the grid did not have leaves no map behind.
    throwsError(() => grid.importMap('new', remote.exportMap('m')), /clock drift/);
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
    assertRefused(grid, map, () => sync(remote.grid, grid, 'm'), /clock drift/);
    assert.equal(map.get('ok'), undefined);
  });
});

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
