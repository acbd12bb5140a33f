// SPEC section 6 through the JavaScript API: a Grid with a storage adapter. Each rule has its own
// test, driven by a spy adapter over MemoryStorage that counts calls, can hold loads back and can
// fail on demand.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { Grid, MemoryStorage, T0, clockAt } from './load.mjs';

/** MemoryStorage with a log of calls, a gate that holds loads, and failures on demand. */
class SpyStorage extends MemoryStorage {
  constructor() {
    super();
    this.calls = [];
    this.gate = null; // a promise loads wait for
    this.failLoads = 0;
    this.failWrites = 0;
  }

  count(op) {
    return this.calls.filter((c) => c.op === op).length;
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
  test('getMap returns before a slow load ends, and isMapLoading is true meanwhile', async () => {
    const storage = await seeded('m', (m) => m.set('k', 'stored'));
    const release = storage.hold();
    const g = grid(storage);
    const m = g.getMap('m');
    assert.equal(g.isMapLoading('m'), true);
    assert.equal(g.hasMap('m'), true);
    assert.equal(m.get('k'), undefined, 'nothing is loaded yet');
    await settle();
    assert.equal(g.isMapLoading('m'), true, 'still held');
    release();
    const loaded = await g.getMapAsync('m');
    assert.equal(g.isMapLoading('m'), false);
    assert.equal(loaded.get('k'), 'stored');
    assert.equal(m.get('k'), 'stored', 'the early handle sees the loaded records');
  });

  test('three concurrent getMapAsync calls cause one loadAllKeys', async () => {
    const storage = await seeded('m', (m) => m.set('k', 1));
    const g = grid(storage);
    const maps = await Promise.all([g.getMapAsync('m'), g.getMapAsync('m'), g.getMapAsync('m', 'lww')]);
    assert.equal(storage.count('loadAllKeys'), 1);
    assert.equal(storage.count('loadAll'), 1);
    for (const m of maps) assert.equal(m.get('k'), 1);
  });

  test('a stored OR value makes the map an OR map', async () => {
    const storage = await seeded('m', (m) => m.add('k', 'v'), 'or');
    const m = await grid(storage).getMapAsync('m');
    assert.equal(m.kind, 'or');
    assert.deepEqual(m.get('k'), ['v']);
  });

  test('the __tombstones__ key alone makes the map an OR map', async () => {
    const storage = await seeded('m', (m) => {
      m.add('k', 'v');
      m.remove('k', 'v');
    }, 'or');
    assert.deepEqual(await storage.loadAllKeys('m'), ['__mark__', '__tombstones__'], 'only the tombstone list (and the mark) is stored');
    const m = await grid(storage).getMapAsync('m');
    assert.equal(m.kind, 'or');
    assert.equal(m.tombstones().length, 1);
  });

  test('a map with nothing stored takes the hint, else LWW', async () => {
    const g = grid(new SpyStorage());
    assert.equal((await g.getMapAsync('a', 'or')).kind, 'or');
    assert.equal((await g.getMapAsync('b')).kind, 'lww');
  });

  test('a hint that disagrees with the stored map is a kind mismatch', async () => {
    const storage = await seeded('m', (m) => m.set('k', 1));
    const g = grid(storage);
    await assert.rejects(g.getMapAsync('m', 'or'), (e) => {
      assert.ok(e instanceof Error);
      assert.match(e.message, /kind mismatch/);
      assert.match(e.message, /LWW/);
      assert.match(e.message, /OR/);
      return true;
    });
    // Asked without the wrong hint, it loads as what it is; asked again wrongly, refused at once.
    assert.equal((await g.getMapAsync('m')).get('k'), 1);
    await assert.rejects(g.getMapAsync('m', 'or'), /kind mismatch/);
    assert.throws(() => g.getORMap('m'), /kind mismatch/);
  });

  test('isRelatedKey filters what is loaded, but __tombstones__ always loads', async () => {
    const storage = await seeded('m', (m) => {
      m.add('mine-1', 'a');
      m.add('theirs', 'b');
      m.add('gone', 'c');
      m.remove('gone', 'c');
    }, 'or');
    const asked = [];
    const g = grid(storage, { isRelatedKey: (map, key) => (asked.push([map, key]), key.startsWith('mine')) });
    const m = await g.getMapAsync('m');
    const loadAll = storage.calls.find((c) => c.op === 'loadAll');
    assert.deepEqual(loadAll.args[0], ['__mark__', '__tombstones__', 'mine-1']);
    assert.deepEqual(m.keys(), ['mine-1']);
    assert.equal(m.tombstones().length, 1);
    assert.ok(asked.every(([map]) => map === 'm'), 'the filter is told the map');
  });

  test('onMapLoaded fires once per load with the count, and not for an empty map', async () => {
    const storage = await seeded('m', (m) => {
      m.set('a', 1);
      m.set('b', 2);
      m.remove('b'); // an LWW tombstone is a stored record too
    });
    const heard = [];
    const g = grid(storage, { onMapLoaded: (name, count) => heard.push([name, count]) });
    g.getMap('m');
    await g.getMapAsync('m');
    await g.getMapAsync('m');
    await g.getMapAsync('empty');
    assert.deepEqual(heard, [['m', 2]]);
  });

  test('a failing load rejects every waiter with the adapter error, and the next call retries', async () => {
    const storage = await seeded('m', (m) => m.set('k', 'v'));
    storage.failLoads = 1;
    const g = grid(storage);
    const waiters = [g.getMapAsync('m'), g.getMapAsync('m'), g.getMapAsync('m')];
    for (const w of waiters) {
      await assert.rejects(w, (e) => {
        assert.match(e.message, /disk on fire/);
        assert.match(e.message, /"m"/);
        assert.ok(e.cause instanceof Error && e.cause.message === 'disk on fire', 'cause is the adapter error');
        return true;
      });
    }
    assert.equal(g.isMapLoading('m'), false);
    const m = await g.getMapAsync('m');
    assert.equal(m.get('k'), 'v');
    assert.equal(storage.count('loadAllKeys'), 2);
  });

  test('writes made while a map loads survive and merge with what it loads, both ways', async () => {
    const clock = clockAt(T0);
    const storage = await seeded('m', (m) => {
      m.set('old', 'stored');
      m.set('new', 'stored');
    });
    // The seed wrote at T0; "old" is overwritten later below, "new" was stored after the early write.
    const release = storage.hold();
    const g = grid(storage, { clock });
    const early = g.getMap('m');
    clock.now = T0 + 10;
    early.set('old', 'early'); // newer than what is stored: wins
    early.set('only-early', 'early');
    release();
    const m = await g.getMapAsync('m');
    assert.equal(m.get('old'), 'early');
    assert.equal(m.get('new'), 'stored');
    assert.equal(m.get('only-early'), 'early');
    await g.flush();
    // A fresh grid on the same storage sees the merged state.
    const again = await grid(storage, { nodeId: 'other' }).getMapAsync('m');
    assert.deepEqual(again.entries(), [['new', 'stored'], ['old', 'early'], ['only-early', 'early']]);
  });

  test("an early write wins over the stored record even when this node's clock is behind (SPEC 1)", async () => {
    const storage = await seeded('m', (m) => m.set('k', 'stored'), 'lww');
    const clock = clockAt(T0 - 10_000); // this node's clock is behind the seed's
    const release = storage.hold();
    const g = grid(storage, { clock });
    g.getMap('m').set('k', 'early');
    release();
    const m = await g.getMapAsync('m');
    assert.equal(m.get('k'), 'early', 'the write made after the stored one wins');
    assert.ok(m.getRecord('k').timestamp.millis >= T0, 're-stamped past the stored record');
    await g.flush();
    assert.equal((await grid(storage, { nodeId: 'reader' }).getMapAsync('m')).get('k'), 'early');
  });

  test('early writes of the other kind fail the load with kind mismatch and are not dropped', async () => {
    const storage = await seeded('m', (m) => m.add('k', 'or-value'), 'or');
    const release = storage.hold();
    const g = grid(storage);
    const early = g.getMap('m'); // LWW handle while it loads
    early.set('k', 'lww-value');
    release();
    await assert.rejects(g.getMapAsync('m', 'lww'), (e) => {
      assert.match(e.message, /kind mismatch/);
      assert.match(e.message, /early write/);
      return true;
    });
    assert.equal(early.get('k'), 'lww-value', 'the early write is kept aside, readable');
    // It is never stored over the OR map, and does not hold up other maps' writes; but while it is
    // held, a flush cannot promise every write is durable, so it fails, naming the map.
    (await g.getMapAsync('other', 'lww')).set('x', 1);
    await assert.rejects(g.flush(), (e) => {
      assert.match(e.message, /map "m"/);
      assert.match(e.message, /kind mismatch/);
      assert.match(e.message, /takeEarlyWrites/);
      return true;
    });
    assert.deepEqual(await storage.loadAllKeys('m'), ['__mark__', 'k']);
    assert.deepEqual(await storage.loadAllKeys('other'), ['__mark__', 'x']);
    await assert.rejects(g.getMapAsync('m'), /kind mismatch/, 'and the map keeps saying why');
    // Taken back as an LWW snapshot, they can go where they belong; then flushes succeed again.
    const taken = g.takeEarlyWrites('m');
    assert.ok(taken instanceof Uint8Array);
    assert.equal(g.takeEarlyWrites('m'), null, 'taken once');
    g.importMap('moved', taken);
    assert.equal(g.getMap('moved').get('k'), 'lww-value');
    await g.flush();
    assert.equal((await grid(storage, { nodeId: 'reader' }).getMapAsync('moved')).get('k'), 'lww-value');
  });

  test('only records that won their merge are written back', async () => {
    const storage = await seeded('m', (m) => m.set('k', 'newer'));
    const g = grid(storage);
    await g.getMapAsync('m');
    // A peer's snapshot with an older record of k and a new key w.
    const peer = new Grid({ nodeId: 'peer', clock: clockAt(T0 - 5_000) });
    peer.getMap('m').set('k', 'older');
    peer.getMap('m').set('w', 'peer');
    g.importMap('m', peer.exportMap('m'));
    storage.calls.length = 0;
    await g.flush();
    const stores = storage.calls.filter((c) => c.op === 'storeAll');
    assert.equal(stores.length, 1);
    assert.deepEqual(stores[0].args[0].map(([k]) => k), ['__mark__', 'w'], 'the new record and the map mark');
  });

  test('flush() after 10 000 writes is one storeAll, not 10 000', async () => {
    const storage = new SpyStorage();
    const g = grid(storage);
    const m = await g.getMapAsync('m', 'lww');
    for (let i = 0; i < 10_000; i++) m.set(`k${i}`, i);
    await g.flush();
    assert.equal(storage.count('storeAll'), 1);
    assert.equal(storage.calls.find((c) => c.op === 'storeAll').args[0].length, 10_001, 'the records and the mark');
    assert.equal((await storage.loadAllKeys('m')).length, 10_001);
    await g.flush();
    assert.equal(storage.count('storeAll'), 1, 'a flush with nothing new writes nothing');
  });

  test('a failed flush rejects with the adapter error and keeps the writes for the next flush', async () => {
    const storage = new SpyStorage();
    const g = grid(storage);
    const m = await g.getMapAsync('m', 'lww');
    m.set('a', 1);
    storage.failWrites = 1;
    await assert.rejects(g.flush(), (e) => {
      assert.match(e.message, /disk full/);
      assert.equal(e.cause?.message, 'disk full');
      return true;
    });
    assert.deepEqual(await storage.loadAllKeys('m'), []);
    await g.flush();
    const again = await grid(storage, { nodeId: 'x' }).getMapAsync('m');
    assert.equal(again.get('a'), 1);
  });

  test('a write made while a flush runs is stored by the next flush', async () => {
    const storage = new SpyStorage();
    const g = grid(storage);
    const m = await g.getMapAsync('m', 'lww');
    m.set('a', 1);
    const first = g.flush();
    m.set('a', 2);
    await first;
    await g.flush();
    assert.equal((await grid(storage, { nodeId: 'x' }).getMapAsync('m')).get('a'), 2);
  });

  test('TTLs, LWW tombstones and OR tombstones survive a reload', async () => {
    const clock = clockAt(T0);
    const storage = new SpyStorage();
    const g = grid(storage, { clock });
    const l = await g.getMapAsync('l', 'lww');
    l.set('ttl', 'v', { ttlMs: 500 });
    l.set('gone', 'x');
    l.remove('gone');
    const o = await g.getMapAsync('o', 'or');
    o.add('k', 'x', { ttlMs: 700 });
    o.add('removed', 'y');
    o.remove('removed', 'y');
    await g.flush();
    const g2 = grid(storage, { nodeId: 'b', clock });
    const l2 = await g2.getMapAsync('l');
    const o2 = await g2.getMapAsync('o');
    assert.equal(l2.rootHash(), l.rootHash());
    assert.equal(o2.rootHash(), o.rootHash());
    assert.equal(l2.getRecord('ttl').ttlMs, 500);
    assert.equal(l2.getRecord('gone').deleted, true);
    assert.deepEqual(o2.tombstones(), o.tombstones());
    clock.now = T0 + 600;
    assert.equal(l2.get('ttl'), undefined, 'the TTL still runs from the write');
    assert.deepEqual(o2.get('k'), ['x']);
    clock.now = T0 + 800;
    assert.deepEqual(o2.get('k'), []);
    // A stale add of a removed tag, from a peer, stays removed after the reload.
    assert.deepEqual(o2.get('removed'), []);
  });

  test('removing every record of an OR key deletes it from storage', async () => {
    const storage = new SpyStorage();
    const g = grid(storage);
    const o = await g.getMapAsync('o', 'or');
    o.add('k', 'v');
    await g.flush();
    o.remove('k', 'v');
    await g.flush();
    assert.deepEqual(await storage.loadAllKeys('o'), ['__mark__', '__tombstones__']);
    assert.equal(storage.count('deleteAll'), 1);
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
    assert.throws(() => new Grid({ nodeId: 'a', storage: { loadAllKeys() {} } }), /options\.storage must have a loadAll\(\) method/);
    assert.throws(() => new Grid({ nodeId: 'a', storage: 'idb' }), /options\.storage must be a storage adapter object, not a string/);
    assert.throws(() => new Grid({ nodeId: 'a', storage: new MemoryStorage(), isRelatedKey: 1 }), /isRelatedKey must be a function/);
    assert.throws(() => new Grid({ nodeId: 'a', storage: new MemoryStorage(), onMapLoaded: 'x' }), /onMapLoaded must be a function/);
  });

  test('getMapAsync with an unknown kind is refused', async () => {
    const g = grid(new MemoryStorage());
    await assert.rejects(g.getMapAsync('m', 'crdt'), /kind must be "lww" or "or", not "crdt"/);
    await assert.rejects(g.getMapAsync(7), /the map name must be a string/);
  });

  test('an adapter answering loadAllKeys with garbage fails the load, naming what was wrong', async () => {
    const storage = new MemoryStorage();
    storage.loadAllKeys = async () => 'not a list';
    await assert.rejects(grid(storage).getMapAsync('m'), /loadAllKeys must resolve to an array of strings, not string/);
    storage.loadAllKeys = async () => ['ok', 42];
    await assert.rejects(grid(storage).getMapAsync('m'), /loadAllKeys returned a key that is number, not a string/);
  });

  test('an adapter answering loadAll with garbage fails the load and the map stays usable after', async () => {
    const storage = await seeded('m', (m) => m.set('k', 1));
    const real = storage.loadAll.bind(storage);
    storage.loadAll = async () => [['k', 'not bytes']];
    const g = grid(storage);
    await assert.rejects(g.getMapAsync('m'), /loadAll returned entry 0 of map "m" that is not a \[key, Uint8Array\] pair/);
    storage.loadAll = real;
    assert.equal((await g.getMapAsync('m')).get('k'), 1);
  });

  test('a corrupt stored value fails the load naming the map and key; nothing is half-applied', async () => {
    const storage = await seeded('m', (m) => {
      m.set('a', 1);
      m.set('b', 2);
    });
    await storage.store('m', 'b', new Uint8Array([0xff, 0x00, 0x13]));
    const g = grid(storage);
    await assert.rejects(g.getMapAsync('m'), (e) => {
      assert.match(e.message, /corrupt stored value of key "b" in map "m"/);
      return true;
    });
    assert.equal(g.isMapLoading('m'), false);
    await storage.store('m', 'b', (await (await seeded('x', (m) => m.set('b', 2))).loadAll('x', ['b']))[0][1]);
    const m = await g.getMapAsync('m');
    assert.deepEqual(m.entries(), [['a', 1], ['b', 2]]);
  });

  test('a throwing isRelatedKey fails the load with its error', async () => {
    const storage = await seeded('m', (m) => m.set('k', 1));
    const g = grid(storage, { isRelatedKey: () => { throw new Error('no partition table'); } });
    await assert.rejects(g.getMapAsync('m'), (e) => e.cause?.message === 'no partition table' && /no partition table/.test(e.message));
  });

  test('free() rejects whoever waits and later answers are dropped', async () => {
    const storage = await seeded('m', (m) => m.set('k', 1));
    const release = storage.hold();
    const g = grid(storage);
    const waiting = g.getMapAsync('m');
    g.free();
    await assert.rejects(waiting, /this grid was freed/);
    release();
    await settle();
    await assert.rejects(g.flush(), /this grid was freed/);
  });
});

describe('flush() and maps still loading', () => {
  test('a write to a map that is still loading is durable when flush() resolves', async () => {
    const storage = await seeded('m', (m) => m.set('stored', 1));
    const release = storage.hold();
    const g = grid(storage);
    g.getMap('m').set('early', 2);
    const flushed = g.flush();
    let done = false;
    flushed.then(() => (done = true));
    await settle();
    assert.equal(done, false, 'the flush waits for the load');
    release();
    await flushed;
    const again = await grid(storage, { nodeId: 'x' }).getMapAsync('m');
    assert.deepEqual(again.entries(), [['early', 2], ['stored', 1]]);
  });

  test('a flush waiting for a load that fails rejects, and the next flush loads again and stores the writes', async () => {
    const storage = new SpyStorage();
    storage.failLoads = 1;
    const g = grid(storage);
    g.getMap('m').set('early', 2);
    await assert.rejects(g.flush(), /disk on fire/);
    await g.flush();
    assert.equal(storage.count('loadAllKeys'), 2);
    assert.equal((await grid(storage, { nodeId: 'x' }).getMapAsync('m')).get('early'), 2);
  });
});

describe('exportMap while a map loads', () => {
  test('a map still loading with nothing written says so; with early writes it exports them', async () => {
    const storage = await seeded('m', (m) => m.set('stored', 1));
    const release = storage.hold();
    const g = grid(storage);
    const loading = g.getMapAsync('m');
    assert.equal(g.hasMap('m'), true);
    assert.throws(() => g.exportMap('m'), /map "m" is still loading/);
    assert.throws(() => g.exportMap('never'), /no map named "never"/);
    g.getMap('m').set('early', 2);
    const early = new Grid({ nodeId: 'peer' });
    early.importMap('m', g.exportMap('m'));
    assert.deepEqual(early.getMap('m').entries(), [['early', 2]], 'what was written meanwhile');
    release();
    await loading;
    assert.equal(g.exportMap('m').length > 0, true);
  });
});

describe('callers, subscribers and filters while a map loads', () => {
  test('a caller without a kind gets the stored kind, whatever another caller asked for', async () => {
    const storage = await seeded('m', (m) => m.set('k', 1));
    const g = grid(storage);
    const [plain, wrong] = await Promise.allSettled([g.getMapAsync('m'), g.getMapAsync('m', 'or')]);
    assert.equal(plain.status, 'fulfilled');
    assert.equal(plain.value.kind, 'lww');
    assert.equal(plain.value.get('k'), 1);
    assert.equal(wrong.status, 'rejected');
    assert.match(wrong.reason.message, /kind mismatch: map "m" is an LWW map, not an OR map/);
  });

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

  test('a write to a key isRelatedKey left out is merged with the stored records before it is stored', async () => {
    const storage = await seeded('m', (m) => m.add('theirs', 'stored'), 'or');
    const g = grid(storage, { isRelatedKey: (map, key) => key.startsWith('mine') });
    // Nothing related is stored, so the kind comes from the hint (SPEC: detection is over what loaded).
    const m = await g.getMapAsync('m', 'or');
    assert.deepEqual(m.get('theirs'), [], 'not loaded');
    m.add('theirs', 'local');
    await g.flush();
    const all = await grid(storage, { nodeId: 'x' }).getMapAsync('m');
    assert.deepEqual(all.get('theirs').sort(), ['local', 'stored']);
  });
});
