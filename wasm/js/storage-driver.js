// The storage driver: the loop between the module's storage manager (SPEC section 6, in Rust) and
// the app's storage adapter (a plain object of async functions over opaque bytes).
//
// The module never calls the adapter. After anything that may have queued storage work, the driver
// `pump()`s: it takes each request the module polls, starts the adapter call, and when that settles
// hands the answer back and pumps again; then it delivers the module's storage events (a map
// loaded or failed, a flush done or failed) to whoever waits for them.

import { isWellFormed } from './values.js';

const OP = ['loadAllKeys', 'loadAll', 'storeAll', 'deleteAll'];
const KINDS = ['lww', 'or'];
const TOMBSTONES_KEY = '__tombstones__';

/** The adapter methods the driver calls; `store` and `delete` complete the contract for other users. */
export const ADAPTER_METHODS = ['loadAllKeys', 'loadAll', 'storeAll', 'deleteAll'];

function describe(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v;
}

/** An Error for a failed adapter call that keeps the adapter's own error as its `cause`. */
function withCause(message, cause) {
  return cause === undefined ? new Error(message) : new Error(message, { cause });
}

/** Runs an app callback about a load that succeeded: one that throws must neither undo the load
 * nor stop the driver, so its error is reported, not thrown. */
function listen(who, fn) {
  try {
    fn();
  } catch (e) {
    console.error(`onegrid: ${who} threw`, e);
  }
}

function messageOf(e) {
  return e instanceof Error ? e.message : String(e);
}

export class StorageDriver {
  /**
   * `core` gives the module (`raw`), the argument writer, `output(len)` and `now()`;
   * `hooks.isRelatedKey(map, key)` filters what loads, `hooks.onMapLoaded(map, count)` hears of
   * loads, `hooks.onReady(map, kind)` runs when a map finished loading (change events).
   */
  constructor(core, adapter, hooks) {
    this.core = core;
    this.adapter = adapter;
    this.hooks = hooks;
    this.waiters = new Map(); // map name -> [{ resolve, reject }]
    this.flushes = new Map(); // flush id -> { resolve, reject }
    this.loadCauses = new Map(); // map name -> the adapter's error that failed its load
    this.writeCause = undefined; // the adapter's error behind the next `flush failed`
    this.writes = Promise.resolve(); // writes run one after another, in the order polled
    this.pumping = false;
    this.again = false;
    this.scheduled = false;
    this.closed = false;
  }

  /** Waits for map `name` to be loaded; resolves to its kind. */
  whenLoaded(name) {
    return new Promise((resolve, reject) => {
      let list = this.waiters.get(name);
      if (list === undefined) this.waiters.set(name, (list = []));
      list.push({ resolve, reject });
      this.pump();
    });
  }

  /** Starts a flush; resolves once every write so far is durable. */
  flush() {
    const id = this.core.raw.flush();
    return new Promise((resolve, reject) => {
      this.flushes.set(id, { resolve, reject });
      this.pump();
    });
  }

  /** Pumps soon (once per turn, however many writes ask). */
  poke() {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  /** The grid was freed: nothing more reaches the module; whoever waits is told. */
  close() {
    this.closed = true;
    const freed = new Error('this grid was freed (grid.free())');
    for (const list of this.waiters.values()) for (const w of list) w.reject(freed);
    for (const f of this.flushes.values()) f.reject(freed);
    this.waiters.clear();
    this.flushes.clear();
  }

  /** Starts every queued request and delivers every queued event. Not re-entrant: a call made
   * while pumping (from a callback) makes the running pump go round again. */
  pump() {
    if (this.closed) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.again = false;
        const raw = this.core.raw;
        for (let len = raw.pollStorage(); len !== 0; len = raw.pollStorage()) this.start(this.readRequest(len));
        for (let len = raw.pollStorageEvent(); len !== 0; len = raw.pollStorageEvent()) this.deliver(this.readEvent(len));
      } while (this.again);
    } finally {
      this.pumping = false;
    }
  }

  readRequest(len) {
    const r = this.core.output(len);
    const id = r.varint();
    const op = OP[r.u8()];
    const map = r.str();
    let payload;
    if (op === 'loadAll' || op === 'deleteAll') payload = r.vec(r.str);
    else if (op === 'storeAll') payload = r.vec(function () { return [this.str(), this.bytes()]; });
    return { id, op, map, payload };
  }

  readEvent(len) {
    const r = this.core.output(len);
    const tag = r.u8();
    const map = r.str();
    switch (tag) {
      case 0: return { type: 'loaded', map, count: r.varint() };
      case 1: return { type: 'ready', map, kind: KINDS[r.u8()] };
      case 2: return { type: 'failed', map, error: r.str() };
      case 3: return { type: 'flushed', flush: r.varint() };
      default: {
        const flush = r.varint();
        return { type: 'flushFailed', flush, error: r.str() };
      }
    }
  }

  /** Runs one request on the adapter; its answer goes back to the module when it settles. Only
   * the adapter's own failure (or a bad answer from it) fails the request: an error while the
   * module takes the answer is not the adapter's. */
  start({ id, op, map, payload }) {
    const adapter = this.adapter;
    const raw = () => this.core.raw;
    let call; // resolves to a function that hands the answer to the module
    if (op === 'loadAllKeys') {
      call = Promise.resolve().then(() => adapter.loadAllKeys(map)).then((keys) => this.keysAnswer(id, map, keys));
    } else if (op === 'loadAll') {
      call = Promise.resolve().then(() => adapter.loadAll(map, payload)).then((values) => this.valuesAnswer(id, map, values));
    } else {
      // Writes go one after another: a later batch may hold a newer value of the same key.
      call = this.writes.then(() => adapter[op](map, payload)).then(() => () => raw().handleDone(id));
      this.writes = call.then(() => {}, () => {});
    }
    call.then(
      (give) => this.answer(give),
      (e) => {
        if (op === 'loadAllKeys' || op === 'loadAll') this.loadCauses.set(map, e);
        else this.writeCause ??= e;
        this.answer(() => raw().handleFailed(id, `${op} failed: ${messageOf(e)}`));
      },
    );
  }

  /** Hands an answer to the module (unless the grid was freed meanwhile), then pumps. */
  answer(give) {
    if (this.closed) return;
    give();
    this.pump();
  }

  /** Checks and filters a `loadAllKeys` answer; returns how to hand it to the module. */
  keysAnswer(id, map, keys) {
    if (!Array.isArray(keys)) {
      throw new Error(`storage adapter: loadAllKeys must resolve to an array of strings, not ${describe(keys)}`);
    }
    for (const k of keys) {
      if (typeof k !== 'string') throw new Error(`storage adapter: loadAllKeys returned a key that is ${describe(k)}, not a string`);
      if (!isWellFormed(k)) throw new Error('storage adapter: loadAllKeys returned a key with a lone surrogate');
    }
    const related = this.hooks.isRelatedKey;
    // The module loads the keys marked related, `__tombstones__`, and any key written before the
    // load ends; it remembers the others, and loads one before a flush stores a write to it.
    const mask = related === undefined ? null : keys.map((k) => related(map, k) === true);
    return () => {
      const w = this.core.writer.reset();
      w.varint(keys.length);
      for (const k of keys) w.str(k, 'storage adapter: a key contains a lone surrogate');
      if (mask !== null) for (const m of mask) w.u8(m ? 1 : 0);
      this.core.raw.handleKeys(id, w.length, mask !== null);
    };
  }

  /** Checks a `loadAll` answer; returns how to hand it to the module. */
  valuesAnswer(id, map, values) {
    if (!Array.isArray(values)) {
      throw new Error(`storage adapter: loadAll must resolve to an array of [key, Uint8Array] pairs, not ${describe(values)}`);
    }
    for (let i = 0; i < values.length; i++) {
      const pair = values[i];
      if (!Array.isArray(pair) || typeof pair[0] !== 'string' || !(pair[1] instanceof Uint8Array) || !isWellFormed(pair[0])) {
        throw new Error(`storage adapter: loadAll returned entry ${i} of map "${map}" that is not a [key, Uint8Array] pair`);
      }
    }
    return () => {
      const w = this.core.writer.reset();
      w.varint(values.length);
      for (const [key, bytes] of values) {
        w.str(key, 'storage adapter: a key contains a lone surrogate');
        w.bytes(bytes);
      }
      this.core.raw.handleValues(id, w.length);
    };
  }

  deliver(event) {
    switch (event.type) {
      case 'loaded':
        if (this.hooks.onMapLoaded !== undefined) listen('onMapLoaded', () => this.hooks.onMapLoaded(event.map, event.count));
        break;
      case 'ready': {
        this.loadCauses.delete(event.map);
        this.settle(event.map, (w) => w.resolve(event.kind));
        listen('a subscriber of the loaded records', () => this.hooks.onReady(event.map, event.kind));
        break;
      }
      case 'failed': {
        const error = withCause(event.error, this.loadCauses.get(event.map));
        this.loadCauses.delete(event.map);
        this.settle(event.map, (w) => w.reject(error));
        break;
      }
      case 'flushed':
        this.flushes.get(event.flush)?.resolve();
        this.flushes.delete(event.flush);
        break;
      case 'flushFailed': {
        const error = withCause(`flush failed: ${event.error}`, this.writeCause);
        this.writeCause = undefined;
        this.flushes.get(event.flush)?.reject(error);
        this.flushes.delete(event.flush);
        break;
      }
    }
  }

  settle(map, fn) {
    const list = this.waiters.get(map);
    if (list === undefined) return;
    this.waiters.delete(map);
    for (const w of list) fn(w);
  }
}
