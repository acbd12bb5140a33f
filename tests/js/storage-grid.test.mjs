// SPEC section 6 through the JavaScript API, what only JavaScript has: the adapter's error as
// `cause`, subscribers and callbacks, map listings, argument and adapter checks, free(). The
// storage behaviour every driver shares is the storage suite (tests/storage-suite/, run here by
// storage-suite.test.mjs and in Chromium by browser.test.mjs).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { Grid, MemoryStorage, T0, clockAt, rejectsWith, throwsError } from './load.mjs';

/** MemoryStorage with a log of calls, a gate that holds loads, and failures on demand. */
class SpyStorage extends MemoryStorage {
  constructor() {
    super();
    this.calls = [];
    this.gate = null; // a promise loads wait for
    this.failLoads = 0;
    this.failWrites = 0;
  }

  hold() {
    let release;
    this.gate = new Promise((r) => (release = r));
    return () => {
      this.gate = null;
      release();
    };
  }

  async #load(op, map, args, fn) {
    this.calls.push({ op, map, args });
    if (this.gate) await this.gate;
    if (this.failLoads > 0) {
      this.failLoads--;
      throw new Error('disk on fire');
    }
    return fn();
  }

  async #write(op, map, args, fn) {
    this.calls.push({ op, map, args });
    if (this.failWrites > 0) {
      this.failWrites--;
      throw new Error('disk full');
    }
    return fn();
  }

  loadAllKeys(map) {
    return this.#load('loadAllKeys', map, [], () => super.loadAllKeys(map));
  }

  loadAll(map, keys) {
    return this.#load('loadAll', map, [keys], () => super.loadAll(map, keys));
  }

  storeAll(map, entries) {
    return this.#write('storeAll', map, [entries], () => super.storeAll(map, entries));
  }

  deleteAll(map, keys) {
    return this.#write('deleteAll', map, [keys], () => super.deleteAll(map, keys));
  }
}

function grid(storage, options = {}) {
  return new Grid({ nodeId: options.nodeId ?? 'me', clock: options.clock ?? clockAt(T0), storage, ...options });
}

/** Lets queued adapter calls and the driver's answers run. */
const settle = () => new Promise((r) => setTimeout(r, 0));

/** A storage holding map `name` written by another grid (so its bytes are real stored values). */
async function seeded(name, write, kind = 'lww') {
  const storage = new SpyStorage();
  const g = grid(storage, { nodeId: 'seed' });
  const map = await g.getMapAsync(name, kind);
  write(map);
  await g.flush();
  g.free();
  storage.calls.length = 0;
  return storage;
}

describe('the storage manager through the JS API (SPEC 6)', () => {
  test("a failed load rejects every waiter with the adapter's error as cause", async () => {
    const storage = await seeded('m', (m) => m.set('k', 'v'));
    storage.failLoads = 1;
    const g = grid(storage);
    const waiters = [g.getMapAsync('m'), g.getMapAsync('m'), g.getMapAsync('m')];
    for (const w of waiters) {
      await assert.rejects(w, (e) => {
        assert.equal(e.code, 'STORAGE');
        assert.match(e.message, /"m"/, 'the message names the map');
        assert.ok(e.cause instanceof Error && e.cause.message === 'disk on fire', 'cause is the adapter error');
        return true;
      });
    }
  });

  test("a failed flush rejects with the adapter's error as cause", async () => {
    const storage = new SpyStorage();
    const g = grid(storage);
    (await g.getMapAsync('m', 'lww')).set('a', 1);
    storage.failWrites = 1;
    await assert.rejects(g.flush(), (e) => {
      assert.equal(e.code, 'STORAGE');
      assert.equal(e.cause?.message, 'disk full');
      return true;
    });
  });

  test('subscribers hear of the records a load brings', async () => {
    const storage = await seeded('m', (m) => m.set('k', 'stored'));
    const release = storage.hold();
    const g = grid(storage);
    const heard = [];
    g.getMap('m').subscribe((c) => heard.push(c));
    release();
    await g.getMapAsync('m');
    assert.deepEqual(heard, [{ key: 'k', value: 'stored', origin: 'remote' }]);
  });

  test('mapNames and hasMap list the touched maps', async () => {
    const g = grid(new SpyStorage());
    assert.equal(g.hasMap('a'), false);
    await g.getMapAsync('b');
    g.getORMap('a');
    assert.deepEqual(g.mapNames(), ['a', 'b']);
    assert.equal(g.hasMap('a'), true);
  });

  test('without storage, getMapAsync resolves at once and flush() has nothing to do', async () => {
    const g = new Grid({ nodeId: 'mem', clock: clockAt(T0) });
    const m = await g.getMapAsync('m', 'or');
    assert.equal(m.kind, 'or');
    assert.equal((await g.getMapAsync('n')).kind, 'lww');
    assert.equal(await g.flush(), undefined);
    assert.equal(g.isMapLoading('m'), false);
  });
});

describe('bad adapters and bad arguments get clear errors', () => {
  test('an adapter missing a method is refused by new Grid()', () => {
    const missing = throwsError(() => new Grid({ nodeId: 'a', storage: { loadAllKeys() {} } }), 'INVALID_ARGUMENT');
    assert.match(missing.message, /loadAll\(\)/, 'the message names the missing method');
    throwsError(() => new Grid({ nodeId: 'a', storage: 'idb' }), 'INVALID_ARGUMENT');
    throwsError(() => new Grid({ nodeId: 'a', storage: new MemoryStorage(), isRelatedKey: 1 }), 'INVALID_ARGUMENT');
    throwsError(() => new Grid({ nodeId: 'a', storage: new MemoryStorage(), onMapLoaded: 'x' }), 'INVALID_ARGUMENT');
  });

  test('getMapAsync with an unknown kind is refused', async () => {
    const g = grid(new MemoryStorage());
    await rejectsWith(g.getMapAsync('m', 'crdt'), 'INVALID_ARGUMENT');
    await rejectsWith(g.getMapAsync(7), 'INVALID_ARGUMENT');
  });

  test('an adapter answering loadAllKeys with garbage fails the load, naming what was wrong', async () => {
    const storage = new MemoryStorage();
    storage.loadAllKeys = async () => 'not a list';
    const notList = await rejectsWith(grid(storage).getMapAsync('m'), 'STORAGE');
    assert.match(notList.message, /loadAllKeys/, 'the message names the adapter call');
    storage.loadAllKeys = async () => ['ok', 42];
    const notKey = await rejectsWith(grid(storage).getMapAsync('m'), 'STORAGE');
    assert.match(notKey.message, /loadAllKeys/, 'the message names the adapter call');
  });

  test('an adapter answering loadAll with garbage fails the load and the map stays usable after', async () => {
    const storage = await seeded('m', (m) => m.set('k', 1));
    const real = storage.loadAll.bind(storage);
    storage.loadAll = async () => [['k', 'not bytes']];
    const g = grid(storage);
    const e = await rejectsWith(g.getMapAsync('m'), 'STORAGE');
    assert.match(e.message, /loadAll\b.*entry 0.*"m"/, 'the message names the call, the entry and the map');
    storage.loadAll = real;
    assert.equal((await g.getMapAsync('m')).get('k'), 1);
  });

  test('a throwing isRelatedKey fails the load with its error', async () => {
    const storage = await seeded('m', (m) => m.set('k', 1));
    const g = grid(storage, { isRelatedKey: () => { throw new Error('no partition table'); } });
    const e = await rejectsWith(g.getMapAsync('m'), 'STORAGE');
    assert.equal(e.cause?.message, 'no partition table', "the cause is isRelatedKey's own error");
  });

  test('free() rejects whoever waits and later answers are dropped', async () => {
    const storage = await seeded('m', (m) => m.set('k', 1));
    const release = storage.hold();
    const g = grid(storage);
    const waiting = g.getMapAsync('m');
    g.free();
    await rejectsWith(waiting, 'FREED');
    release();
    await settle();
    await rejectsWith(g.flush(), 'FREED');
  });
});

describe('callers, subscribers and filters while a map loads', () => {
  test('a subscriber that throws on loaded records neither hangs getMapAsync nor leaks a rejection', async () => {
    const storage = await seeded('m', (m) => m.set('k', 1));
    const release = storage.hold();
    const g = grid(storage);
    g.getMap('m').subscribe(() => {
      throw new Error('subscriber bug');
    });
    const unhandled = [];
    const onUnhandled = (e) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    const logged = [];
    const consoleError = console.error;
    console.error = (...args) => logged.push(args);
    try {
      release();
      const m = await g.getMapAsync('m');
      assert.equal(m.get('k'), 1);
      await settle();
    } finally {
      console.error = consoleError;
      process.off('unhandledRejection', onUnhandled);
    }
    assert.deepEqual(unhandled, []);
    assert.ok(logged.some((args) => args.some((a) => a instanceof Error && a.message === 'subscriber bug')), 'reported');
  });
});
