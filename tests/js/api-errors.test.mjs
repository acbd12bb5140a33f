// Tests of the onegrid JavaScript API (wasm/js/errors.js, typed by onegrid.d.ts): what every error
// is. Each one the package throws or rejects with is an OnegridError whose `code` is one of
// ERROR_CODES; apps act on the code, never on the message. STORAGE errors carry the adapter's error
// as their `cause`.
// The API's tests are split by area into tests/js/api-*.test.mjs; api-helpers.mjs has what they share.
//
// Run: ONEGRID_PKG=/path/to/pkg node --test tests/js/*.test.mjs

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { ERROR_CODES, Grid, MemoryStorage, OnegridError, T0, makeGrid, rejectsWith, throwsError } from './load.mjs';
import { HeldStorage } from './api-helpers.mjs';

describe('errors', () => {
  test('ERROR_CODES is the frozen list of every code', () => {
    assert.deepEqual(ERROR_CODES, [
      'KIND_MISMATCH', 'INVALID_VALUE', 'INVALID_ARGUMENT', 'MALFORMED', 'CLOCK_DRIFT', 'CLOCK_EXHAUSTED',
      'STORAGE', 'NOT_FOUND', 'LOADING', 'LIMIT',
      'VERSION', 'REFUSED', 'FORBIDDEN', 'REFUSED_RECORD', 'UNAUTHORIZED', 'CLOSED',
      'FREED', 'NOT_LOADED',
    ]);
    assert.ok(Object.isFrozen(ERROR_CODES));
  });

  test('ERROR_CODES lists every code the tests use', () => {
    // A code is a quoted UPPER_SNAKE word passed after a comma: the last argument of throwsError,
    // rejectsWith, assertRefused or assertCode, the code argument of the adapter suite's rejects,
    // or the code of a [call, code] row. This file, which lists them all, is left out.
    const self = fileURLToPath(import.meta.url);
    const dir = dirname(self);
    const files = [
      ...readdirSync(dir).filter((f) => f.endsWith('.mjs')).map((f) => join(dir, f)),
      ...readdirSync(join(dir, 'browser')).filter((f) => f.endsWith('.mjs')).map((f) => join(dir, 'browser', f)),
    ].filter((f) => f !== self);
    const used = new Map();
    for (const file of files) {
      for (const [, code] of readFileSync(file, 'utf8').matchAll(/,\s*'([A-Z][A-Z_]*[A-Z])'/g)) {
        if (!used.has(code)) used.set(code, file);
      }
    }
    for (const [code, file] of used) assert.ok(ERROR_CODES.includes(code), `${code} (in ${file}) is not in ERROR_CODES`);
    // The scan still finds what the other tests use.
    for (const code of 'INVALID_ARGUMENT INVALID_VALUE KIND_MISMATCH MALFORMED NOT_FOUND CLOCK_DRIFT FREED'.split(' ')) {
      assert.ok(used.has(code), `the scan found no test of ${code}`);
    }
  });

  test('OnegridError is an Error named "OnegridError" with a code, a message and an optional cause', () => {
    const cause = new Error('the adapter failed');
    const e = new OnegridError('STORAGE', 'storage failed', { cause });
    assert.ok(e instanceof Error);
    assert.equal(Object.getPrototypeOf(OnegridError.prototype), Error.prototype);
    assert.equal(e.name, 'OnegridError');
    assert.equal(e.code, 'STORAGE');
    assert.equal(e.message, 'storage failed');
    assert.equal(e.cause, cause);
    assert.match(e.stack, /OnegridError/);
    assert.equal('cause' in new OnegridError('LIMIT', 'no cause'), false);
  });

  test('what the package throws is an OnegridError, from JavaScript and from the module alike', () => {
    const { grid } = makeGrid();
    grid.getMap('l');
    const remote = makeGrid('remote');
    remote.clock.now = T0 + 3_600_000;
    remote.grid.getMap('m').set('k', 1);
    const strict = makeGrid('strict', { maxDriftMs: 10, strictDrift: true }).grid;
    const freed = makeGrid().grid;
    freed.free();
    const calls = [
      [() => new Grid({ nodeId: 'a', clock: 5 }), 'INVALID_ARGUMENT'], // checked in JavaScript
      [() => new Grid({ nodeId: 'a b' }), 'INVALID_ARGUMENT'], // checked by the module
      [() => grid.getMap('m').set('k', NaN), 'INVALID_VALUE'],
      [() => grid.getORMap('l'), 'KIND_MISMATCH'],
      [() => grid.importMap('m', Uint8Array.of(1, 2, 3)), 'MALFORMED'],
      [() => strict.importMap('m', remote.grid.exportMap('m')), 'CLOCK_DRIFT'],
      [() => grid.exportMap('never'), 'NOT_FOUND'],
      [() => freed.getMap('m'), 'FREED'],
    ];
    for (const [call, code] of calls) {
      const e = throwsError(call, code);
      assert.equal(Object.getPrototypeOf(e), OnegridError.prototype, code);
      assert.equal(e.name, 'OnegridError', code);
      assert.equal(typeof e.message, 'string', code);
      assert.ok(e.message.length > 0, code);
    }
  });

  test('a map still loading: exportMap throws LOADING', async () => {
    const storage = new HeldStorage();
    const grid = new Grid({ nodeId: 'a', storage });
    const loading = grid.getMapAsync('m');
    throwsError(() => grid.exportMap('m'), 'LOADING');
    storage.release();
    await loading;
    assert.ok(grid.exportMap('m') instanceof Uint8Array);
  });

  test("STORAGE errors carry the adapter's error as their cause", async () => {
    /** MemoryStorage whose loads fail with `onLoad` and writes with `onStore`, when given. */
    class Failing extends MemoryStorage {
      constructor(onLoad, onStore) {
        super();
        Object.assign(this, { onLoad, onStore });
      }

      async loadAllKeys(map) {
        if (this.onLoad) throw this.onLoad;
        return super.loadAllKeys(map);
      }

      async storeAll(map, entries) {
        if (this.onStore) throw this.onStore;
        return super.storeAll(map, entries);
      }

      async store(map, key, bytes) {
        if (this.onStore) throw this.onStore;
        return super.store(map, key, bytes);
      }
    }
    const onLoad = new Error('disk on fire');
    const loader = new Grid({ nodeId: 'a', storage: new Failing(onLoad, null) });
    assert.equal((await rejectsWith(loader.getMapAsync('m'), 'STORAGE')).cause, onLoad);
    const onStore = new Error('disk full');
    const writer = new Grid({ nodeId: 'a', storage: new Failing(null, onStore) });
    writer.getMap('m').set('k', 1);
    assert.equal((await rejectsWith(writer.flush(), 'STORAGE')).cause, onStore);
  });
});
