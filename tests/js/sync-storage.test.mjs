// Tests of sync with storage in the JavaScript API: a side with a storage adapter acknowledges
// what a peer sent only once its flush has it (the hub's group commit, run by the storage
// driver), and frames about a stored map wait for its load.
//
// Run: ONEGRID_PKG=/path/to/pkg node --test tests/js/*.test.mjs

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { Grid, MemoryStorage, T0, clockAt, makeGrid } from './load.mjs';
import { assertConverged, pipe, settle, tick, until } from './sync-helpers.mjs';

/** MemoryStorage whose storeAll calls wait for `release()` while `holding`. */
class HeldWrites extends MemoryStorage {
  constructor() {
    super();
    this.holding = true;
    this.held = [];
    this.stores = 0;
  }

  async storeAll(map, entries) {
    this.stores++;
    const copy = entries.map(([k, v]) => [k, v.slice()]);
    if (this.holding) await new Promise((resolve) => this.held.push(resolve));
    return super.storeAll(map, copy);
  }

  release() {
    this.holding = false;
    for (const resolve of this.held.splice(0)) resolve();
  }
}

/** MemoryStorage whose next `failures` storeAll calls reject. */
class FailingWrites extends MemoryStorage {
  constructor(failures) {
    super();
    this.failures = failures;
    this.calls = 0;
  }

  async storeAll(map, entries) {
    this.calls++;
    if (this.failures > 0) {
      this.failures--;
      throw new Error('the disk is full');
    }
    return super.storeAll(map, entries);
  }
}

/** True when `storage` holds key `key` of map `map`. */
async function holds(storage, map, key) {
  return (await storage.loadAll(map, [key])).length === 1;
}

describe('sync with storage', () => {
  test('an accepting grid with storage acknowledges a write only once its flush stored it', async () => {
    const storage = new HeldWrites();
    const server = new Grid({ nodeId: 'server', clock: clockAt(T0), storage });
    const client = makeGrid('client');
    const p = pipe(client.grid, server);
    await until(() => p.a.state === 'synced' && p.b.state === 'synced', 'the first sync');
    storage.release(); // (nothing to store yet)
    storage.holding = true;

    client.grid.getMap('m').set('k', 'v');
    assert.equal(p.a.pendingWrites, 1);
    let acked = false;
    const synced = p.a.whenSynced().then(() => {
      acked = true;
    });
    await until(() => storage.held.length > 0, "the server's flush");
    // Applied on the server, not yet stored: not acknowledged.
    assert.equal(server.getMap('m').get('k'), 'v');
    for (let i = 0; i < 20; i++) await tick();
    assert.equal(await holds(storage, 'm', 'k'), false);
    assert.equal(acked, false);
    assert.equal(p.a.pendingWrites, 1);
    assert.equal(p.a.state, 'syncing');

    storage.release();
    await synced;
    assert.equal(await holds(storage, 'm', 'k'), true);
    assert.equal(p.a.pendingWrites, 0);
    await settle([p]);
  });

  test('one flush serves a burst of frames (group commit)', async () => {
    const storage = new HeldWrites();
    storage.holding = false;
    const server = new Grid({ nodeId: 'server', clock: clockAt(T0), storage });
    const client = makeGrid('client');
    client.grid.getMap('m').set('first', 0);
    const p = pipe(client.grid, server);
    await settle([p]);
    const stores = storage.stores;
    storage.holding = true;
    const m = client.grid.getMap('m');
    m.set('k0', 0);
    await until(() => storage.held.length === 1, 'the first flush');
    for (let i = 1; i < 50; i++) {
      m.set(`k${i}`, i);
      await tick(); // each write its own frame, while the first flush is held
    }
    await until(() => p.inFlight() === 0, 'every frame delivered');
    const frames = p.frames.a.length;
    storage.release();
    await p.a.whenSynced();
    // The first flush, a second for the frame that came while it was held (two may be in
    // flight), then one for the 48 frames that came while both were.
    assert.equal(storage.stores - stores, 3);
    assert.ok(p.frames.a.length - frames <= 1);
    for (let i = 0; i < 50; i += 7) assert.equal(await holds(storage, 'm', `k${i}`), true);
  });

  test('a map stored on the accepting side loads when a frame needs it, then both converge', async () => {
    const storage = new MemoryStorage();
    const before = new Grid({ nodeId: 'server', clock: clockAt(T0), storage });
    before.getMap('m').set('stored', 1);
    before.getORMap('o').add('stored', 1);
    await before.flush();
    before.free();

    const server = new Grid({ nodeId: 'server', clock: clockAt(T0 + 1), storage });
    const client = makeGrid('client');
    client.clock.now = T0 + 2;
    client.grid.getMap('m').set('from-client', 2);
    client.grid.getORMap('o').add('from-client', 2);
    const p = pipe(client.grid, server);
    await settle([p]);
    await p.a.whenSynced();
    assertConverged([client.grid, server], { m: 'lww', o: 'or' });
    assert.equal(client.grid.getMap('m').get('stored'), 1);
    assert.deepEqual(client.grid.getORMap('o').get('stored'), [1]);
    assert.equal(await holds(storage, 'm', 'from-client'), true);
    assert.equal(await holds(storage, 'o', 'from-client'), true);
  });

  test('a connecting grid with storage stores what it pulls before acknowledging it', async () => {
    const storage = new HeldWrites();
    const client = new Grid({ nodeId: 'client', clock: clockAt(T0), storage });
    const server = makeGrid('server');
    server.grid.getMap('m').set('k', 'from server');
    const p = pipe(client, server.grid);
    await until(() => storage.held.length > 0, "the client's flush");
    assert.equal(client.getMap('m').get('k'), 'from server');
    assert.equal(p.b.pendingWrites, 1);
    storage.release();
    await p.b.whenSynced();
    assert.equal(await holds(storage, 'm', 'k'), true);
    assert.equal(p.b.pendingWrites, 0);
  });

  test('a failed flush holds the acknowledgement until a later flush succeeds', async () => {
    const storage = new FailingWrites(0);
    const server = new Grid({ nodeId: 'server', clock: clockAt(T0), storage });
    const client = makeGrid('client');
    const p = pipe(client.grid, server);
    await settle([p]);
    storage.failures = 1;
    const calls = storage.calls;
    client.grid.getMap('m').set('k', 1);
    await p.a.whenSynced(); // the hub flushes again a second after the failure
    assert.equal(storage.calls - calls, 2);
    assert.equal(await holds(storage, 'm', 'k'), true);
    assert.deepEqual(p.errors, { a: [], b: [] });
  });
});
