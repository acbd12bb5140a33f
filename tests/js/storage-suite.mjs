// The storage suite (tests/storage-suite/scenarios.json, its steps in README.md there) on the
// JavaScript API: the same code in Node over MemoryStorage (storage-suite.test.mjs) and in Chromium
// over IndexedDbStorage (browser/suite.mjs). Plain ECMAScript: no Node or browser API.
//
// Every store's adapter is wrapped in a Spy that counts calls, fails the next ones on demand and
// holds loads back. After every step the interpreter lets storage run until the spy has nothing in
// flight (held loads aside), as the Rust interpreters do; a step with `as` does not wait.

const DRIVER = 'js';
const T0 = 1_000_000;

/** The scenarios this driver runs, and the names of those using a step it cannot do. */
export function scenariosFor(suite) {
  const unsupported = Object.keys(suite.unsupported?.[DRIVER] ?? {});
  const uses = (scenario, entry) => {
    const [op, field] = entry.split('.');
    return scenario.steps.some((s) => s.op === op && (field === undefined || field in s));
  };
  const run = [];
  const skipped = [];
  for (const scenario of suite.scenarios) {
    if (unsupported.some((entry) => uses(scenario, entry))) skipped.push(scenario.name);
    else run.push(scenario);
  }
  return { run, skipped };
}

/** An adapter wrapped to count calls, fail on demand and hold loads back. */
class Spy {
  constructor(inner) {
    this.inner = inner;
    this.calls = [];
    this.failLoads = 0;
    this.failWrites = 0;
    this.hold = null; // { pass } while loads are held
    this.held = [];
    this.inflight = 0;
  }

  async #call(op, map, keys, load, fn) {
    this.calls.push({ op, map, keys });
    if (load && this.hold !== null) {
      if (this.hold.pass > 0) this.hold.pass--;
      else await new Promise((release) => this.held.push(release));
    }
    this.inflight++;
    try {
      await null;
      if (load && this.failLoads > 0) {
        this.failLoads--;
        throw new Error('disk on fire');
      }
      if (!load && this.failWrites > 0) {
        this.failWrites--;
        throw new Error('disk on fire');
      }
      return await fn();
    } finally {
      this.inflight--;
    }
  }

  loadAllKeys(map) {
    return this.#call('loadAllKeys', map, undefined, true, () => this.inner.loadAllKeys(map));
  }

  loadAll(map, keys) {
    return this.#call('loadAll', map, [...keys], true, () => this.inner.loadAll(map, keys));
  }

  store(map, key, value) {
    return this.inner.store(map, key, value);
  }

  storeAll(map, entries) {
    return this.#call('storeAll', map, entries.map(([k]) => k), false, () => this.inner.storeAll(map, entries));
  }

  delete(map, key) {
    return this.inner.delete(map, key);
  }

  deleteAll(map, keys) {
    return this.#call('deleteAll', map, [...keys], false, () => this.inner.deleteAll(map, keys));
  }

  release() {
    this.hold = null;
    for (const release of this.held.splice(0)) release();
  }
}

/** Canonical JSON (object keys sorted), to compare values whatever their key order. */
function canonical(v) {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`;
  }
  return JSON.stringify(v === undefined ? null : v);
}

function same(what, got, want) {
  if (canonical(got) !== canonical(want)) throw new Error(`${what}: got ${canonical(got)}, expected ${canonical(want)}`);
}

const sorted = (values) => [...values].sort((a, b) => (canonical(a) < canonical(b) ? -1 : canonical(a) > canonical(b) ? 1 : 0));

/** A step's outcome against its `error` (a code) or success: the value, or undefined after the expected error. */
async function expectOutcome(step, run) {
  let value;
  try {
    value = await run();
  } catch (e) {
    const code = e?.code;
    if (step.error === undefined) throw new Error(`failed with ${code}: ${e?.message ?? e}`);
    if (code !== step.error) throw new Error(`failed with ${code}, expected ${step.error}: ${e?.message ?? e}`);
    return { failed: true };
  }
  if (step.error !== undefined) throw new Error(`succeeded, expected ${step.error}`);
  return { failed: false, value };
}

/** Follows a promise: `done`, then `ok` with `value` or `code`. */
function track(promise) {
  const t = { done: false };
  promise.then(
    (value) => Object.assign(t, { done: true, ok: true, value }),
    (e) => Object.assign(t, { done: true, ok: false, code: e?.code, error: e }),
  );
  return t;
}

/**
 * Runs one scenario. `env`: `{ Grid, makeAdapter(name), disposeAdapter?(adapter) }`, where
 * `makeAdapter` returns a fresh, empty adapter for a store of the scenario.
 */
export async function runScenario(scenario, env) {
  const { Grid } = env;
  const stores = new Map(); // name -> Spy
  const grids = new Map(); // name -> { grid, node, store, related, start, clock, loaded }
  const tickets = new Map();
  const snapshots = new Map();
  const roots = new Map();

  const storeOf = (name) => {
    if (!stores.has(name)) stores.set(name, new Spy(env.makeAdapter(name)));
    return stores.get(name);
  };
  const settle = async () => {
    const tick = () => new Promise((r) => setTimeout(r, 0));
    const started = Date.now();
    for (let quiet = 0; quiet < 2;) {
      await tick();
      const busy = [...stores.values()].some((s) => s.inflight > 0);
      quiet = busy ? 0 : quiet + 1;
      if (Date.now() - started > 30_000) throw new Error('storage never settled');
    }
  };
  const gridOf = (step) => {
    const g = grids.get(step.grid ?? 'g');
    if (g === undefined) throw new Error(`no grid ${step.grid ?? 'g'}`);
    return g;
  };
  /** A snapshot's kind: a grid without storage loads it at once. */
  const kindOf = async (bytes) => {
    const probe = new Grid({ nodeId: 'probe' });
    try {
      probe.importMap('x', bytes);
      return (await probe.getMapAsync('x')).kind;
    } finally {
      probe.free();
    }
  };
  /** Waits for the map's load (reads and the writes that observe what is stored do). */
  const loaded = async (g, map, kind) => {
    const t = track(g.grid.getMapAsync(map, kind));
    await settle();
    if (!t.done) throw Object.assign(new Error('the load never ended'), { code: 'NEVER_LOADED' });
    if (!t.ok) throw t.error;
    return t.value;
  };
  const checkTicket = (step, t) => {
    if (!t.done) throw new Error('it did not end');
    if (step.error !== undefined) {
      if (t.ok) throw new Error(`succeeded, expected ${step.error}`);
      if (t.code !== step.error) throw new Error(`failed with ${t.code}, expected ${step.error}: ${t.error?.message}`);
      return;
    }
    if (!t.ok) throw new Error(`failed with ${t.code}: ${t.error?.message}`);
    if (step.expect !== undefined) same('kind', t.value?.kind, step.expect);
  };

  const steps = {
    async open(step, restart) {
      const name = step.grid ?? 'g';
      const before = grids.get(name);
      if (restart && before === undefined) throw new Error('restart of a grid never opened');
      const node = step.node ?? before.node;
      const store = restart ? before.store : (step.store ?? 's');
      const related = restart ? before.related : step.related;
      const start = step.clock ?? (restart ? before.start : T0);
      before?.grid.free();
      const g = { node, store, related, start, now: start, loaded: [] };
      const clock = () => g.now;
      g.grid = new Grid({
        nodeId: node,
        clock,
        storage: storeOf(store),
        onMapLoaded: (map, count) => g.loaded.push([map, count]),
        ...(related === undefined ? {} : { isRelatedKey: (_map, key) => key.startsWith(related) }),
      });
      grids.set(name, g);
    },
    async write(step) {
      const g = gridOf(step);
      const options = step.ttl === undefined ? undefined : { ttlMs: step.ttl };
      await expectOutcome(step, async () => {
        switch (step.op) {
          case 'set': return g.grid.getMap(step.map).set(step.key, step.value, options);
          case 'set_n': return g.grid.getMap(step.map).setMany(Array.from({ length: step.count }, (_, i) => [`k${i}`, i]));
          case 'remove': return g.grid.getMap(step.map).remove(step.key);
          case 'add': return g.grid.getORMap(step.map).add(step.key, step.value, options);
          case 'or_remove': return (await loaded(g, step.map, 'or')).remove(step.key, step.value);
          default: {
            const bytes = snapshots.get(step.from);
            if (bytes === undefined) throw new Error(`no snapshot ${step.from}`);
            await loaded(g, step.map, await kindOf(bytes));
            return g.grid.importMap(step.map, bytes);
          }
        }
      });
    },
    async read(step) {
      const g = gridOf(step);
      const outcome = await expectOutcome(step, async () => {
        if (step.now === true) {
          // Only `get` reads a map still loading here, through an LWW handle.
          return g.grid.getMap(step.map);
        }
        return loaded(g, step.map, undefined);
      });
      if (outcome.failed) return;
      const m = outcome.value;
      switch (step.op) {
        case 'get': return same('value', m.get(step.key) ?? null, step.expect);
        case 'or_get': return same('values', sorted(m.get(step.key)), step.expect);
        case 'entries': {
          const got = m.kind === 'lww' ? m.entries() : m.entries().map(([k, vs]) => [k, sorted(vs)]);
          return same('entries', got, step.expect);
        }
        case 'record': {
          const r = m.getRecord(step.key);
          if (r === undefined) throw new Error('no record');
          if ('deleted' in step) same('deleted', r.deleted, step.deleted);
          if ('ttl' in step) same('ttl', r.ttlMs ?? null, step.ttl);
          if ('min_millis' in step && r.timestamp.millis < step.min_millis) {
            throw new Error(`stamped at ${r.timestamp.millis}, expected at least ${step.min_millis}`);
          }
          return undefined;
        }
        case 'tombstones': return same('tombstones', m.tombstones().length, step.expect);
        default: {
          const root = m.rootHash();
          if (step.save !== undefined) roots.set(step.save, root);
          if (step.same_as !== undefined) same('root', root, roots.get(step.same_as));
          return undefined;
        }
      }
    },
  };

  for (const [i, step] of scenario.steps.entries()) {
    const g = () => gridOf(step);
    const store = () => storeOf(step.store ?? 's');
    try {
      switch (step.op) {
        case 'open': await steps.open(step, false); break;
        case 'restart': await steps.open(step, true); break;
        case 'clock': g().now = step.ms; break;
        case 'set': case 'set_n': case 'remove': case 'add': case 'or_remove': case 'import':
          await steps.write(step);
          break;
        case 'touch':
          await expectOutcome(step, async () => (step.kind === 'or' ? g().grid.getORMap(step.map) : g().grid.getMap(step.map)));
          break;
        case 'load': case 'flush': {
          const t = track(step.op === 'load' ? g().grid.getMapAsync(step.map, step.kind) : g().grid.flush());
          if (step.as !== undefined) {
            tickets.set(step.as, t);
          } else {
            await settle();
            checkTicket(step, t);
          }
          break;
        }
        case 'await': case 'pending': {
          const t = tickets.get(step.name);
          if (t === undefined) throw new Error(`nothing started as ${step.name}`);
          await settle();
          if (step.op === 'await') checkTicket(step, t);
          else if (t.done) throw new Error(`${step.name} ended, expected it still running`);
          break;
        }
        case 'fail':
          if (step.what === 'load') store().failLoads += step.count ?? 1;
          else store().failWrites += step.count ?? 1;
          break;
        case 'hold_loads': store().hold = { pass: step.pass ?? 0 }; break;
        case 'release_loads': store().release(); break;
        case 'corrupt': await store().inner.store(step.map, step.key, new Uint8Array([0xff, 0x00, 0x13])); break;
        case 'delete_stored': await store().inner.delete(step.map, step.key); break;
        case 'get': case 'or_get': case 'entries': case 'record': case 'tombstones': case 'root':
          await steps.read(step);
          break;
        case 'loading': same('loading', g().grid.isMapLoading(step.map), step.expect); break;
        case 'export': case 'take_early_writes': {
          const outcome = await expectOutcome(step, async () => (step.op === 'export' ? g().grid.exportMap(step.map) : g().grid.takeEarlyWrites(step.map)));
          if (outcome.failed) break;
          if (step.as !== undefined) {
            if (outcome.value === null) throw new Error('no writes were held');
            snapshots.set(step.as, outcome.value);
          } else if (outcome.value !== null) {
            throw new Error('writes were held, expected none');
          }
          break;
        }
        case 'stored_keys': same('stored keys', [...(await store().inner.loadAllKeys(step.map))].sort(), step.expect); break;
        case 'calls': checkCalls(step, store()); break;
        case 'map_loaded': same('onMapLoaded calls', g().loaded.splice(0), step.expect); break;
        default: throw new Error(`unknown step ${step.op}`);
      }
      if (step.as === undefined) await settle();
    } catch (e) {
      throw new Error(`step ${i} ${JSON.stringify(step)}: ${e?.message ?? e}`, { cause: e });
    }
  }
  for (const { grid } of grids.values()) grid.free();
  for (const spy of stores.values()) {
    spy.release();
    await env.disposeAdapter?.(spy.inner);
  }
}

function checkCalls(step, spy) {
  const calls = spy.calls.splice(0);
  for (const op of ['loadAllKeys', 'loadAll', 'storeAll', 'deleteAll']) {
    const want = step[op];
    if (want === undefined) continue;
    const ofOp = calls.filter((c) => c.op === op);
    const got = typeof want === 'number'
      ? ofOp.length
      : ofOp.map((c, i) => {
        const w = want[i];
        if (c.keys === undefined || w === undefined || w.length < 2) return [c.map];
        return typeof w[1] === 'number' ? [c.map, c.keys.length] : [c.map, c.keys];
      });
    same(`${op} calls`, got, want);
  }
}

/** Runs every scenario this driver supports; resolves to `{ results: [{ name, ok, error? }], skipped }`. */
export async function runSuite(suite, env) {
  const { run, skipped } = scenariosFor(suite);
  const results = [];
  for (const scenario of run) {
    try {
      await runScenario(scenario, env);
      results.push({ name: scenario.name, ok: true });
    } catch (e) {
      results.push({ name: scenario.name, ok: false, error: `${e?.message ?? e}` });
    }
  }
  return { results, skipped };
}
