// @ts-check
// The storage driver: the loop between the module's storage manager (SPEC section 6, in Rust) and
// the app's storage adapter (a plain object of async functions over opaque bytes).
//
// The module never calls the adapter. After anything that may have queued storage work, the driver
// `pump()`s: it takes each request the module polls, starts the adapter call, and when that settles
// hands the answer back and pumps again; then it delivers the module's storage events (a map
// loaded or failed, a flush done or failed) to whoever waits for them, and tells the grid's sync
// connections (`afterEvents`: their acknowledgements wait for flushes, the module having handed
// the events to its hub already).

import { listen, messageOf } from './callbacks.js';
import { OnegridError, freedError } from './errors.js';
import { isWellFormed } from './values.js';

/** @typedef {import('./onegrid_glue.js').RawGrid} RawGrid */
/** @typedef {import('./storage.js').StorageAdapter} StorageAdapter */
/** @typedef {import('./values.js').Reader} Reader */
/** @typedef {import('./values.js').Writer} Writer */
/** @typedef {'lww' | 'or'} Kind */
/** @typedef {{ kind: Kind | undefined, resolve: (kind: Kind) => void, reject: (e: Error) => void }} Waiter */
/** @typedef {import('./errors.js').ErrorCode} ErrorCode */
/** @typedef {'loadAllKeys' | 'loadAll' | 'storeAll' | 'deleteAll'} Op */
/**
 * What the driver needs of its grid (onegrid.js's GridCore): the module, the argument writer, the
 * module's output and the clock.
 * @typedef {object} DriverCore
 * @property {RawGrid} raw
 * @property {Writer} writer
 * @property {(len: number) => Reader} output
 * @property {() => number} now
 */
/**
 * @typedef {object} DriverHooks
 * @property {((map: string, key: string) => boolean) | undefined} isRelatedKey
 * @property {((map: string, count: number) => void) | undefined} onMapLoaded
 * @property {(map: string, kind: Kind) => void} onReady
 * @property {(failedFlush: boolean) => void} afterEvents called once a pump delivered events
 *   (sync's acknowledgements wait for flushes, its frames for loads); `failedFlush` when a flush failed
 */
/**
 * A request the module polled.
 * @typedef {{ id: number, op: 'loadAllKeys', map: string, payload: undefined }
 *   | { id: number, op: 'loadAll' | 'deleteAll', map: string, payload: string[] }
 *   | { id: number, op: 'storeAll', map: string, payload: Array<[string, Uint8Array]> }} Request
 */
/**
 * An event the module polled, as the module builds it (wasm/src/interop/to_js.rs).
 * @typedef {{ type: 'loaded', map: string, count: number }
 *   | { type: 'ready', map: string, kind: Kind }
 *   | { type: 'failed', map: string, code: ErrorCode, error: string }
 *   | { type: 'flushed', flush: number }
 *   | { type: 'flushFailed', flush: number, code: ErrorCode, error: string }
 *   | { type: 'refused', map: string, asked: Kind, code: ErrorCode, error: string }} StorageEvent
 */

/** @type {Op[]} */
const OP = ['loadAllKeys', 'loadAll', 'storeAll', 'deleteAll'];

/**
 * The adapter methods the driver calls; `store` and `delete` complete the contract for other users.
 * @type {Op[]}
 */
export const ADAPTER_METHODS = ['loadAllKeys', 'loadAll', 'storeAll', 'deleteAll'];

/** @param {unknown} v */
function describe(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v;
}

/**
 * The error of a failed load or flush, with the adapter's own error (if one failed it) as `cause`.
 * @param {ErrorCode} code
 * @param {string} message
 * @param {unknown} cause
 */
function withCause(code, message, cause) {
  return cause === undefined ? new OnegridError(code, message) : new OnegridError(code, message, { cause });
}

/** @param {string} message what the adapter answered wrong */
function badAnswer(message) {
  return new OnegridError('STORAGE', `storage adapter: ${message}`);
}

export class StorageDriver {
  /**
   * `core` gives the module (`raw`), the argument writer, `output(len)` and `now()`;
   * `hooks.isRelatedKey(map, key)` filters what loads, `hooks.onMapLoaded(map, count)` hears of
   * loads, `hooks.onReady(map, kind)` runs when a map finished loading (change events).
   * @param {DriverCore} core
   * @param {StorageAdapter} adapter
   * @param {DriverHooks} hooks
   */
  constructor(core, adapter, hooks) {
    this.core = core;
    this.adapter = adapter;
    this.hooks = hooks;
    /** @type {Map<string, Waiter[]>} */
    this.waiters = new Map(); // map name -> [{ resolve, reject }]
    /** @type {Map<number, { resolve: () => void, reject: (e: Error) => void }>} */
    this.flushes = new Map(); // flush id -> { resolve, reject }
    /** @type {Map<string, unknown>} */
    this.loadCauses = new Map(); // map name -> the adapter's error that failed its load
    /** @type {unknown} */
    this.writeCause = undefined; // the adapter's error behind the next `flush failed`
    this.writes = Promise.resolve(); // writes run one after another, in the order polled
    this.pumping = false;
    this.again = false;
    this.scheduled = false;
    this.closed = false;
  }

  /**
   * Waits for the load of map `name` that `raw.getMap` with `kind` joined; resolves to the kind it
   * loaded as. The module answers: a `refused` event for the callers of the other kind, `ready`
   * for the others, `failed` for all.
   * @param {string} name
   * @param {Kind | undefined} kind
   * @returns {Promise<Kind>}
   */
  whenLoaded(name, kind) {
    return new Promise((resolve, reject) => {
      let list = this.waiters.get(name);
      if (list === undefined) this.waiters.set(name, (list = []));
      list.push({ kind, resolve, reject });
      this.pump();
    });
  }

  /**
   * Starts a flush; resolves once every write so far is durable.
   * @returns {Promise<void>}
   */
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
    const freed = freedError();
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
    let delivered = false;
    let failedFlush = false;
    try {
      do {
        this.again = false;
        const raw = this.core.raw;
        for (let len = raw.pollStorage(); len !== 0; len = raw.pollStorage()) this.start(this.readRequest(len));
        for (let event = raw.pollStorageEvent(); event !== undefined; event = raw.pollStorageEvent()) {
          this.deliver(event);
          delivered = true;
          failedFlush ||= event.type === 'flushFailed';
        }
      } while (this.again);
    } finally {
      this.pumping = false;
    }
    if (delivered) this.hooks.afterEvents(failedFlush);
  }

  /**
   * @param {number} len
   * @returns {Request}
   */
  readRequest(len) {
    const r = this.core.output(len);
    const id = r.varint();
    const op = OP[r.u8()];
    const map = r.str();
    let payload;
    if (op === 'loadAll' || op === 'deleteAll') payload = r.vec(r.str);
    else if (op === 'storeAll') payload = r.vec(/** @returns {[string, Uint8Array]} */ function () { return [this.str(), this.bytes()]; });
    return /** @type {Request} */ ({ id, op, map, payload }); // the payload goes with the op
  }

  /** Runs one request on the adapter; its answer goes back to the module when it settles. Only
   * the adapter's own failure (or a bad answer from it) fails the request: an error while the
   * module takes the answer is not the adapter's.
   * @param {Request} request
   */
  start({ id, op, map, payload }) {
    const adapter = this.adapter;
    const raw = () => this.core.raw;
    /** @type {Promise<() => void>} */
    let call; // resolves to a function that hands the answer to the module
    if (op === 'loadAllKeys') {
      call = Promise.resolve().then(() => adapter.loadAllKeys(map)).then((keys) => this.keysAnswer(id, map, keys));
    } else if (op === 'loadAll') {
      call = Promise.resolve().then(() => adapter.loadAll(map, payload)).then((values) => this.valuesAnswer(id, map, values));
    } else {
      // Writes go one after another: a later batch may hold a newer value of the same key.
      // (`op` and `payload` agree; the parentheses of the cast keep `adapter` as `this`.)
      call = this.writes.then(() => /** @type {(map: string, payload: unknown) => Promise<void>} */ (adapter[op])(map, payload)).then(() => () => raw().handleDone(id));
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

  /**
   * Hands an answer to the module (unless the grid was freed meanwhile), then pumps.
   * @param {() => void} give
   */
  answer(give) {
    if (this.closed) return;
    give();
    this.pump();
  }

  /**
   * Checks and filters a `loadAllKeys` answer; returns how to hand it to the module.
   * @param {number} id
   * @param {string} map
   * @param {unknown} keys what the adapter resolved to
   * @returns {() => void}
   */
  keysAnswer(id, map, keys) {
    if (!Array.isArray(keys)) {
      throw badAnswer(`loadAllKeys must resolve to an array of strings, not ${describe(keys)}`);
    }
    for (const k of keys) {
      if (typeof k !== 'string') throw badAnswer(`loadAllKeys returned a key that is ${describe(k)}, not a string`);
      if (!isWellFormed(k)) throw badAnswer('loadAllKeys returned a key with a lone surrogate');
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

  /**
   * Checks a `loadAll` answer; returns how to hand it to the module.
   * @param {number} id
   * @param {string} map
   * @param {unknown} values what the adapter resolved to
   * @returns {() => void}
   */
  valuesAnswer(id, map, values) {
    if (!Array.isArray(values)) {
      throw badAnswer(`loadAll must resolve to an array of [key, Uint8Array] pairs, not ${describe(values)}`);
    }
    for (let i = 0; i < values.length; i++) {
      const pair = values[i];
      if (!Array.isArray(pair) || typeof pair[0] !== 'string' || !(pair[1] instanceof Uint8Array) || !isWellFormed(pair[0])) {
        throw badAnswer(`loadAll returned entry ${i} of map "${map}" that is not a [key, Uint8Array] pair`);
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

  /** @param {StorageEvent} event */
  deliver(event) {
    switch (event.type) {
      case 'loaded':
        if (this.hooks.onMapLoaded !== undefined) {
          // A throwing callback must neither undo the load nor stop the driver.
          listen('onMapLoaded', () => /** @type {NonNullable<DriverHooks['onMapLoaded']>} */ (this.hooks.onMapLoaded)(event.map, event.count), undefined);
        }
        break;
      case 'refused': {
        // Only the callers who asked for that kind; `ready` follows for the others.
        const list = this.waiters.get(event.map);
        if (list === undefined) break;
        const error = new OnegridError(event.code, event.error);
        for (const w of list) if (w.kind === event.asked) w.reject(error);
        this.waiters.set(event.map, list.filter((w) => w.kind !== event.asked));
        break;
      }
      case 'ready': {
        this.loadCauses.delete(event.map);
        this.settle(event.map, (w) => w.resolve(event.kind));
        listen('a subscriber of the loaded records', () => this.hooks.onReady(event.map, event.kind), undefined);
        break;
      }
      case 'failed': {
        const error = withCause(event.code, event.error, this.loadCauses.get(event.map));
        this.loadCauses.delete(event.map);
        this.settle(event.map, (w) => w.reject(error));
        break;
      }
      case 'flushed':
        this.flushes.get(event.flush)?.resolve();
        this.flushes.delete(event.flush);
        break;
      case 'flushFailed': {
        const error = withCause(event.code, `flush failed: ${event.error}`, this.writeCause);
        this.writeCause = undefined;
        this.flushes.get(event.flush)?.reject(error);
        this.flushes.delete(event.flush);
        break;
      }
    }
  }

  /**
   * @param {string} map
   * @param {(waiter: Waiter) => void} fn
   */
  settle(map, fn) {
    const list = this.waiters.get(map);
    if (list === undefined) return;
    this.waiters.delete(map);
    for (const w of list) fn(w);
  }
}
