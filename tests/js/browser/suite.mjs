// Runs the adapter suite and the storage suite's scenarios on IndexedDbStorage in this page, then
// times a load of LARGE records.
// browser.test.mjs waits for `window.onegridResults`:
//   { phase: 'first', cases: [{ name, ok, error?, ms }], timing: { ... } | null, timingError?: string }
// then reloads the page, which runs only the check after a reload: { phase: 'after-reload', cases }.
// Every case gets its own database, deleted afterwards.

import init, { Grid } from '/pkg/onegrid.js';
import { IndexedDbStorage } from '/pkg/storage.js';
import { LARGE, adapterSuite, timeLoad } from '/tests/adapter-suite.mjs';
import { runScenario, scenariosFor } from '/tests/storage-suite.mjs';

const run = `suite-${Date.now().toString(36)}`;
let made = 0;

const cases = [];
adapterSuite((name, fn) => cases.push({ name, fn }), {
  fresh: () => new IndexedDbStorage({ name: `${run}-${made++}` }),
  reopen: async (adapter) => {
    await adapter.close();
    return new IndexedDbStorage({ name: adapter.name });
  },
  dispose: async (adapter) => {
    await adapter.close();
    await IndexedDbStorage.delete(adapter.name);
  },
});

/** A request's result, or its error. */
function settled(req) {
  return new Promise((ok, fail) => {
    req.onsuccess = () => ok(req.result);
    req.onerror = () => fail(req.error);
  });
}

/**
 * Awaits `promise`, which must reject with an OnegridError of `code`; `names`, when given, is what
 * the message must name (the call, the map): these cases are about what the message says.
 */
async function rejectsWith(promise, code, names) {
  try {
    await promise;
  } catch (e) {
    if (e?.name !== 'OnegridError' || e.code !== code) throw new Error(`rejected with ${e?.code} ${e?.message ?? e}, expected ${code}`);
    if (names && !names.test(e.message)) throw new Error(`the message ${JSON.stringify(e.message)} does not name ${names}`);
    return e;
  }
  throw new Error(`resolved, expected a rejection with ${code}`);
}

// What only IndexedDbStorage has: its schema, and errors from IndexedDB itself.
cases.push({
  name: 'IndexedDbStorage: schema version 1 with one object store',
  fn: async () => {
    const name = `${run}-schema`;
    const s = new IndexedDbStorage({ name });
    await s.store('m', 'k', Uint8Array.of(1));
    await s.close();
    const db = await settled(indexedDB.open(name));
    const stores = [...db.objectStoreNames];
    db.close();
    await IndexedDbStorage.delete(name);
    if (db.version !== 1 || stores.join() !== 'buckets') throw new Error(`version ${db.version}, stores ${stores}`);
  },
});
cases.push({
  name: 'IndexedDbStorage: a database of a newer schema is refused, naming the call and map',
  fn: async () => {
    const name = `${run}-newer`;
    const open = indexedDB.open(name, 7);
    open.onupgradeneeded = () => open.result.createObjectStore('buckets');
    (await settled(open)).close();
    const s = new IndexedDbStorage({ name });
    const e = await rejectsWith(s.loadAllKeys('m'), 'STORAGE', /^IndexedDbStorage\.loadAllKeys\(map "m"\) failed: VersionError/);
    if (!e.cause) throw new Error('no cause');
    // The failed open is not kept: after the database is gone the next call works.
    await IndexedDbStorage.delete(name);
    await s.store('m', 'k', Uint8Array.of(1));
    await s.close();
    await IndexedDbStorage.delete(name);
  },
});
cases.push({
  name: 'IndexedDbStorage: a corrupt bucket fails the load, naming the call and map',
  fn: async () => {
    const name = `${run}-corrupt`;
    const s = new IndexedDbStorage({ name });
    await s.store('m', 'k', Uint8Array.of(1));
    await s.close();
    const db = await settled(indexedDB.open(name));
    const tx = db.transaction('buckets', 'readwrite');
    tx.objectStore('buckets').put(Uint8Array.of(5, 1), ['m', 0]);
    tx.objectStore('buckets').put('not bytes', ['n', 0]);
    await new Promise((ok) => (tx.oncomplete = ok));
    db.close();
    await rejectsWith(s.loadAllKeys('m'), 'STORAGE', /^IndexedDbStorage\.loadAllKeys\(map "m"\) failed: a stored bucket is corrupt/);
    await rejectsWith(s.loadAllKeys('n'), 'STORAGE', /^IndexedDbStorage\.loadAllKeys\(map "n"\) failed: a stored bucket is corrupt \(a string/);
    // A batch that touches a corrupt bucket fails whole: map c has half its buckets corrupt, and
    // 100 keys all missing them is a 2^-100 chance.
    const db2 = await settled(indexedDB.open(name));
    const tx2 = db2.transaction('buckets', 'readwrite');
    for (let b = 0; b < 512; b++) tx2.objectStore('buckets').put(Uint8Array.of(9), ['c', b]);
    await new Promise((ok) => (tx2.oncomplete = ok));
    const batch = Array.from({ length: 100 }, (_, i) => [`key${i}`, Uint8Array.of(i)]);
    await rejectsWith(s.storeAll('c', batch), 'STORAGE', /^IndexedDbStorage\.storeAll\(map "c"\) failed: a stored bucket is corrupt/);
    const left = await settled(db2.transaction('buckets').objectStore('buckets').getAll(IDBKeyRange.bound(['c'], ['c', []])));
    db2.close();
    if (left.length !== 512 || left.some((v) => v.length !== 1 || v[0] !== 9)) throw new Error('the failed batch changed map c');
    await s.close();
    await IndexedDbStorage.delete(name);
  },
});

// A Grid on IndexedDbStorage: the storage manager with the browser's own storage behind it.
await init(); // fetches /pkg/onegrid_bg.wasm, as an app would

function assertEqual(actual, expected, what) {
  const a = JSON.stringify(actual);
  const b = JSON.stringify(expected);
  if (a !== b) throw new Error(`${what}: got ${a}, expected ${b}`);
}

// Survives a reload: the page writes and flushes, and browser.test.mjs reloads it once the suite
// is done; the reloaded page finds what to check in sessionStorage and runs only that check.
const RELOAD_CHECK = 'onegrid-reload-check';

cases.push({
  name: 'Grid on IndexedDbStorage: TTLs, LWW tombstones and OR tombstones are flushed before a reload',
  fn: async () => {
    const name = `${run}-grid`;
    const now = 1_000_000;
    const storage = new IndexedDbStorage({ name });
    const g = new Grid({ nodeId: 'browser', clock: () => now, storage });
    const l = await g.getMapAsync('todos', 'lww');
    l.set('ttl', { title: 'soon gone' }, { ttlMs: 500 });
    l.set('kept', { title: 'kept', done: false });
    l.set('gone', 1);
    l.remove('gone');
    const o = await g.getMapAsync('tags', 'or');
    o.add('k', 'x');
    o.add('removed', 'y');
    o.remove('removed', 'y');
    await g.flush();
    // Nothing is freed or closed: the reload ends this page as a user's reload would.
    sessionStorage.setItem(RELOAD_CHECK, JSON.stringify({ name, now, roots: [l.rootHash(), o.rootHash()] }));
  },
});

/** The check the reloaded page runs, on what the page before it wrote. */
function afterReload({ name, now, roots }) {
  return {
    name: 'Grid on IndexedDbStorage: TTLs, LWW tombstones and OR tombstones survive a reload',
    fn: async () => {
      const navigation = performance.getEntriesByType('navigation')[0]?.type;
      if (navigation !== 'reload') throw new Error(`this page was not reloaded (navigation: ${navigation})`);
      const clock = () => now;
      const storage = new IndexedDbStorage({ name });
      const loads = [];
      const g = new Grid({ nodeId: 'browser-2', clock, storage, onMapLoaded: (m, n) => loads.push([m, n]) });
      const [l, o] = await Promise.all([g.getMapAsync('todos'), g.getMapAsync('tags')]);
      assertEqual([l.kind, o.kind], ['lww', 'or'], 'detected kinds');
      assertEqual([l.rootHash(), o.rootHash()], roots, 'roots after the reload');
      assertEqual(l.get('kept'), { done: false, title: 'kept' }, 'a value (keys come back sorted)');
      assertEqual(l.get('ttl'), { title: 'soon gone' }, 'a TTL not yet expired');
      assertEqual(l.getRecord('gone').deleted, true, 'an LWW tombstone');
      assertEqual(o.get('k'), ['x'], 'an OR value');
      assertEqual(o.tombstones().length, 1, 'the OR tombstones');
      assertEqual(loads.sort(), [['tags', 1], ['todos', 3]], 'onMapLoaded (keys other than __tombstones__)');
      now += 600;
      assertEqual(l.get('ttl'), undefined, 'an expired TTL');
      g.free();
      await storage.close();
      await IndexedDbStorage.delete(name);
    },
  };
}

// The storage suite (tests/storage-suite/scenarios.json): every scenario on a Grid over
// IndexedDbStorage, each store a database of its own, deleted afterwards.
const storageSuite = await (await fetch('/suite/scenarios.json')).json();
for (const scenario of scenariosFor(storageSuite).run) {
  cases.push({
    name: `storage suite on IndexedDbStorage: ${scenario.name}`,
    fn: () => runScenario(scenario, {
      Grid,
      makeAdapter: () => new IndexedDbStorage({ name: `${run}-suite-${made++}` }),
      disposeAdapter: async (adapter) => {
        await adapter.close();
        await IndexedDbStorage.delete(adapter.name);
      },
    }),
  });
}

/** A Grid loading a map of LARGE records from IndexedDB: written by one grid, loaded by a new one. */
async function timeGridLoad() {
  const name = `${run}-grid-timing`;
  const writer = new IndexedDbStorage({ name });
  const g = new Grid({ nodeId: 'writer', storage: writer });
  const m = await g.getMapAsync('todos', 'lww');
  const entries = Array.from({ length: LARGE }, (_, i) => [`todo-${i}`, { n: i, name: `item ${i}`, done: i % 2 === 0 }]);
  m.setMany(entries);
  let t = performance.now();
  await g.flush();
  const flush = performance.now() - t;
  const root = m.rootHash();
  g.free();
  await writer.close();
  const reader = new IndexedDbStorage({ name });
  t = performance.now();
  const g2 = new Grid({ nodeId: 'reader', storage: reader });
  const loaded = await g2.getMapAsync('todos');
  const load = performance.now() - t;
  if (loaded.size !== LARGE || loaded.rootHash() !== root) throw new Error(`loaded ${loaded.size} records, root ${loaded.rootHash()} (want ${root})`);
  g2.free();
  await reader.close();
  await IndexedDbStorage.delete(name);
  return { flush, load };
}

function describe(e) {
  return e instanceof Error ? `${e.message}\n${e.stack ?? ''}` : String(e);
}

async function runCases(cases) {
  const results = [];
  for (const { name, fn } of cases) {
    const t = performance.now();
    try {
      await fn();
      results.push({ name, ok: true, ms: performance.now() - t });
    } catch (e) {
      results.push({ name, ok: false, error: describe(e), ms: performance.now() - t });
    }
  }
  return results;
}

/** storeAll then loadAllKeys + loadAll, on a connection that wrote and on a freshly opened one. */
async function runTiming() {
  const name = `${run}-timing`;
  const timing = { records: LARGE };
  for (const durability of ['strict', 'relaxed']) {
    const writer = new IndexedDbStorage({ name: `${name}-${durability}`, durability });
    const ms = await timeLoad(writer, LARGE, 'timed');
    await writer.close();
    // A cold load: a new connection, as a page that starts up would have.
    const reader = new IndexedDbStorage({ name: `${name}-${durability}` });
    const t = performance.now();
    const keys = await reader.loadAllKeys('timed');
    const loaded = await reader.loadAll('timed', keys);
    const cold = performance.now() - t;
    if (loaded.length !== LARGE) throw new Error(`cold load found ${loaded.length} records, not ${LARGE}`);
    await reader.close();
    await IndexedDbStorage.delete(`${name}-${durability}`);
    timing[durability] = { ...ms, coldLoad: cold };
  }
  return timing;
}

const check = sessionStorage.getItem(RELOAD_CHECK);
let results;
if (check === null) {
  results = { phase: 'first', cases: await runCases(cases), timing: null };
  try {
    results.timing = await runTiming();
    results.timing.grid = await timeGridLoad();
  } catch (e) {
    results.timingError = describe(e);
  }
} else {
  sessionStorage.removeItem(RELOAD_CHECK);
  results = { phase: 'after-reload', cases: await runCases([afterReload(JSON.parse(check))]), timing: null };
}
window.onegridResults = results;
document.getElementById('status').textContent = 'done';
