// @ts-check
// What every handle of a grid shares, kept off the public objects: the loaded module and a view of
// its memory, the argument checks, and `GridCore` (the module's grid, its clock, its subscribers and
// its storage driver). onegrid.js (the grid) and maps.js (the map handles) build on it.

import { RawGrid, setErrorClass } from './onegrid_glue.js';
import { OnegridError, freedError } from './errors.js';
import { Reader, Writer, isWellFormed, typeName, writeEntries, writePair, writeText } from './values.js';
import { StorageDriver } from './storage-driver.js';

/** @typedef {import('./onegrid_glue.js').InitOutput} InitOutput */
/** @typedef {import('./onegrid.js').Value} Value */
/** @typedef {import('./onegrid.js').GridOptions} GridOptions */
/** @typedef {import('./onegrid.js').DriftReport} DriftReport */
/** @typedef {import('./onegrid.js').WriteOptions} WriteOptions */
/** @typedef {import('./onegrid.js').LwwRecordView} LwwRecordView */
/** @typedef {import('./onegrid.js').LwwChange} LwwChange */
/** @typedef {import('./onegrid.js').OrChange} OrChange */
/** @typedef {LwwChange | OrChange} Change */
/** @typedef {'lww' | 'or'} Kind */
/** @typedef {import('./onegrid.js').Grid} DeclaredGrid */
/** @typedef {import('./onegrid.js').LwwMap} DeclaredLwwMap */
/** @typedef {import('./onegrid.js').OrMap} DeclaredOrMap */

/** @typedef {import('./errors.js').ErrorCode} ErrorCode */

/** @typedef {{ e: unknown }} Failure the first error a callback threw, kept to be rethrown */

/**
 * The module's exports, once loaded.
 * @type {InitOutput | null}
 */
let wasm = null;
/** @type {Uint8Array | null} */
let memoryView = null;

/** Records the loaded module (by `init()` or `initSync()`), and has it throw `OnegridError`s.
 * @param {InitOutput} exports */
export function setModule(exports) {
  wasm = exports;
  setErrorClass(OnegridError);
}

/** The loaded module, or null before `init()` or `initSync()`. */
export function loadedModule() {
  return wasm;
}

/** The module's memory as bytes (a new view once growth detached the old one). */
function memory() {
  // (Only reached once the module is loaded.)
  if (memoryView === null || memoryView.length === 0) memoryView = new Uint8Array(/** @type {InitOutput} */ (wasm).memory.buffer);
  return memoryView;
}
export const EMPTY = new Uint8Array(0);

/**
 * What a freed grid's handles call: every method throws.
 * @type {RawGrid}
 */
export const FREED = /** @type {RawGrid} */ (/** @type {unknown} */ (new Proxy({}, {
  get: () => () => {
    throw freedError();
  },
})));

/**
 * The error for a bad argument (or whatever `code` says).
 * @param {string} message
 * @param {ErrorCode} [code]
 */
export function fail(message, code = 'INVALID_ARGUMENT') {
  return new OnegridError(code, message);
}

/**
 * @param {unknown} value
 * @param {string} what
 * @returns {asserts value is string}
 */
export function checkText(value, what) {
  if (typeof value !== 'string') throw fail(`${what} must be a string, not ${typeName(value)}`);
  if (!isWellFormed(value)) throw fail(`${what} contains a lone surrogate (not valid Unicode)`);
}

/**
 * @param {unknown} value
 * @param {string} what
 * @returns {number}
 */
export function checkMillis(value, what) {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw fail(`${what} must be a whole number of milliseconds >= 0, not ${typeof value === 'number' ? value : typeName(value)}`);
  }
  return value;
}

/** Calls the app's `fn(arg)`; what it throws is kept, not thrown, so no other callback is skipped.
 * Returns `failure`, the first error kept so far (`{ e }` or undefined), or this one if it is the first.
 * @template A
 * @param {(arg: A) => void} fn
 * @param {A} arg
 * @param {Failure | undefined} failure
 * @returns {Failure | undefined}
 */
export function guarded(fn, arg, failure) {
  try {
    fn(arg);
  } catch (e) {
    return failure ?? { e };
  }
  return failure;
}

/**
 * Throws the error `guarded` kept, if any.
 * @param {Failure | undefined} failure
 */
export function rethrow(failure) {
  if (failure !== undefined) throw failure.e;
}

/**
 * The TTL of a write's options, or -1 for none.
 * @param {WriteOptions | null | undefined} options
 */
export function ttlOf(options) {
  if (options === undefined || options === null) return -1;
  if (typeof options !== 'object') throw fail(`options must be an object, not ${typeName(options)}`);
  if (options.ttlMs === undefined) return -1;
  return checkMillis(options.ttlMs, 'options.ttlMs');
}

/** What a map handle needs from its grid; kept off the public objects. */
export class GridCore {
  /**
   * @param {RawGrid} raw
   * @param {() => number} clock
   * @param {((drift: DriftReport) => void) | undefined} onDrift
   */
  constructor(raw, clock, onDrift) {
    this.raw = raw;
    this.clock = clock;
    this.onDrift = onDrift;
    /** @type {StorageDriver | null} */
    this.driver = null; // a StorageDriver when the grid has storage
    /** @type {import('./sync.js').SyncHub | null} */
    this.sync = null; // the connections' driver, from the first connect or accept (sync.js)
    /** @type {Map<number, Set<(change: Change) => void>>} */
    this.subscribers = new Map(); // map id -> Set of callbacks
    /** @type {Map<number, Kind>} */
    this.kinds = new Map(); // map id -> its kind, for the maps with subscribers
    this.reader = new Reader(EMPTY); // re-pointed at each reply by `output`
    // Arguments are written straight into the module's input buffer (see RawGrid::input).
    this.writer = new Writer((min) => {
      const capacity = 2 ** Math.ceil(Math.log2(Math.max(min, 256)));
      const at = this.raw.input(capacity);
      return { buf: memory(), at, capacity };
    });
  }

  /** The error behind a failed status code: an `OnegridError` the module made. */
  failure() {
    return this.raw.takeError();
  }

  /**
   * Writes a checked string as the call's arguments; returns their length.
   * @param {string} s
   */
  text(s) {
    return writeText(this.writer, s).length;
  }

  /**
   * Writes `(key, value)` as the call's arguments; returns their length.
   * @param {string} key
   * @param {unknown} value
   */
  pair(key, value) {
    return writePair(this.writer, key, value).length;
  }

  /**
   * Writes a `[key, value]` batch as the call's arguments; returns its length.
   * @param {unknown[]} entries
   */
  batch(entries) {
    return writeEntries(this.writer, entries, checkText).length;
  }

  /**
   * A reader over the first `len` bytes of the module's output (use it before the next call).
   * @param {number} len
   */
  output(len) {
    const at = this.raw.output();
    return this.reader.at(memory(), at, at + len);
  }

  now() {
    const t = this.clock();
    if (typeof t !== 'number' || !(t >= 0 && t <= Number.MAX_SAFE_INTEGER)) {
      throw fail(`clock() must return milliseconds >= 0, not ${typeof t === 'number' ? t : typeName(t)}`);
    }
    return t;
  }

  /** After a write: with storage, a write may have touched an unloaded map (its load must start);
   * with connections, the write goes to the peers (both soon: once per turn, however many writes). */
  wrote() {
    if (this.driver !== null) this.driver.poke();
    if (this.sync !== null) this.sync.schedule();
  }

  /** Delivers pending change events of map `id` to its subscribers, then rethrows the first
   * error one threw.
   * @param {number} id
   * @param {number} now
   * @param {Kind} kind
   */
  dispatch(id, now, kind) {
    rethrow(this.deliver(id, now, kind));
  }

  /** Delivers pending change events of map `id` to its subscribers; returns the first error one
   * threw (as `{ e }`), or undefined.
   * @param {number} id
   * @param {number} now
   * @param {Kind} kind
   * @returns {Failure | undefined}
   */
  deliver(id, now, kind) {
    const subs = this.subscribers.get(id);
    if (subs === undefined) return undefined;
    const len = this.raw.takeEvents(id, now);
    if (len === 0) return undefined;
    const r = this.output(len);
    const changes = r.vec(/** @returns {Change} */ function () {
      const key = this.str();
      const origin = this.u8() === 0 ? 'local' : 'remote';
      return kind === 'lww'
        ? { key, value: this.option(this.value), origin }
        : { key, values: this.vec(this.value), origin };
    });
    // A throwing subscriber neither undoes the write nor keeps the others from hearing of it:
    // every change reaches every subscriber, and the caller rethrows the first error.
    let failure;
    for (const change of changes) {
      for (const fn of [...subs]) failure = guarded(fn, change, failure);
    }
    return failure;
  }

  /**
   * `deliver` for map `name` of `kind` ("lww" or "or"), found by name.
   * @param {string} name
   * @param {Kind} kind
   * @param {number} now
   */
  deliverMap(name, kind, now) {
    const id = kind === 'lww' ? this.raw.openLww(now, this.text(name)) : this.raw.openOr(now, this.text(name));
    return this.deliver(id, now, kind);
  }

  /** Hands each pending drift report to `onDrift`, every one even if a call throws; returns the
   * first error thrown (as `{ e }`), or undefined.
   * @returns {Failure | undefined}
   */
  reportDrifts() {
    const drifts = this.raw.takeDrifts(); // built by the module (see wasm/src/interop/to_js.rs)
    if (drifts === undefined || this.onDrift === undefined) return undefined;
    let failure;
    for (const d of drifts) failure = guarded(this.onDrift, d, failure);
    return failure;
  }

  /** Delivers the pending change events of every map with subscribers (changes a peer made);
   * returns the first error a subscriber threw (as `{ e }`), or undefined.
   * @param {number} now
   * @returns {Failure | undefined}
   */
  deliverAll(now) {
    let failure;
    for (const [id, kind] of this.kinds) {
      const f = this.deliver(id, now, kind);
      failure ??= f;
    }
    return failure;
  }

  /**
   * @param {number} id
   * @param {unknown} fn the app's callback, checked here
   * @param {Kind} kind the map's
   * @returns {() => void}
   */
  subscribe(id, fn, kind) {
    if (typeof fn !== 'function') throw fail(`subscribe() takes a function, not ${typeName(fn)}`);
    if (this.raw === FREED) throw freedError();
    let subs = this.subscribers.get(id);
    if (subs === undefined) {
      subs = new Set();
      this.subscribers.set(id, subs);
      this.kinds.set(id, kind);
      this.raw.recordEvents(id, true);
    }
    /** @param {Change} change */
    const entry = (change) => fn(change); // one entry per call, so the same fn can subscribe twice
    subs.add(entry);
    return () => {
      subs.delete(entry);
      // After free() there is nothing left to tell the module: unsubscribing is harmless.
      if (subs.size === 0 && this.subscribers.get(id) === subs && this.raw !== FREED) {
        this.subscribers.delete(id);
        this.kinds.delete(id);
        this.raw.recordEvents(id, false);
      }
    };
  }
}
