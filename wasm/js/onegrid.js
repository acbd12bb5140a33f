// @ts-check
// onegrid: the JavaScript API over the one onegrid WebAssembly module.
//
// `Grid`, `LwwMap` and `OrMap` read the embedder's clock, check and encode arguments here (see
// values.js), and make one call into the module per operation. The module (`RawGrid`, generated
// by wasm-bindgen into onegrid_glue.js) holds all state and all CRDT logic.

import initGlue, { initSync as initSyncGlue, RawGrid } from './onegrid_glue.js';
import { Reader, Writer, isWellFormed, typeName, writeEntries, writePair, writeText } from './values.js';
import { ADAPTER_METHODS, StorageDriver } from './storage-driver.js';
import { DEFAULT_MAX_DRIFT_MS, MAP_KINDS } from './constants.js';

export { MemoryStorage, IndexedDbStorage } from './storage.js';

// Types: the public ones are onegrid.d.ts's (`import('./onegrid.js')` names that file); the
// module's own come from wasm-bindgen's onegrid_glue.d.ts, which sits beside onegrid.js in the
// package. The end of this file checks the exports against onegrid.d.ts.
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
/** @typedef {{ e: unknown }} Failure the first error a callback threw, kept to be rethrown */

/**
 * The module's exports, once loaded.
 * @type {InitOutput | null}
 */
let wasm = null;
/** @type {Uint8Array | null} */
let memoryView = null;
/**
 * An `init()` still loading the module.
 * @type {Promise<InitOutput> | null}
 */
let loading = null;

/** Loads the module asynchronously: fetches `onegrid_bg.wasm` next to this file, or takes
 * `{ module_or_path }` (a URL, a `Response`, bytes or a compiled `WebAssembly.Module`). Once the
 * module is loaded, by either call, later calls return it.
 * @param {Parameters<typeof initGlue>[0]} [input] what the glue takes (onegrid.d.ts promises less)
 * @returns {Promise<InitOutput>}
 */
export default async function init(input) {
  if (wasm !== null) return wasm;
  loading ??= initGlue(input ?? { module_or_path: new URL('./onegrid_bg.wasm', import.meta.url) })
    .then(loaded)
    .finally(() => {
      loading = null;
    });
  return loading;
}

/**
 * Loads the module from bytes or a compiled `WebAssembly.Module`: `initSync({ module })`.
 * @param {Parameters<typeof initSyncGlue>[0]} input what the glue takes (onegrid.d.ts promises less)
 * @returns {InitOutput}
 */
export function initSync(input) {
  if (wasm !== null) return wasm;
  // The glue would finish that load later and swap in a second instance under every grid.
  if (loading !== null) throw fail('onegrid: init() is still loading the module; await it instead of calling initSync()');
  return loaded(initSyncGlue(input));
}

/** @param {InitOutput} exports */
function loaded(exports) {
  wasm = exports;
  keepShapes();
  return wasm;
}

/**
 * A grid that is never freed, with a map of each kind; see `keepShapes`.
 * @type {{ grid: Grid, lww: LwwMap, or: OrMap } | undefined}
 */
let dormant;

/**
 * Keeps one object of each kind the API makes per grid alive for the life of the module. V8's
 * optimized code holds the hidden classes it was specialized for weakly: a full garbage collection
 * that finds no grid alive lets them die and throws away the optimized code of the whole API, so an
 * app that makes short-lived grids (a request handler, a test) ran up to 4 times slower after each
 * collection (crdt-benchmarks B3.1: 11-30 ms after `gc()`, 7 ms without). The dormant grid is one
 * empty grid in the module.
 */
function keepShapes() {
  const grid = new Grid({ nodeId: 'onegrid-dormant' });
  const lww = grid.getMap('m');
  const or = grid.getORMap('o');
  lww.get('k'); // points the grid's reader and writer at the module's buffers, as any use does
  dormant = { grid, lww, or };
}

/** The module's memory as bytes (a new view once growth detached the old one). */
function memory() {
  // (Only reached once the module is loaded.)
  if (memoryView === null || memoryView.length === 0) memoryView = new Uint8Array(/** @type {InitOutput} */ (wasm).memory.buffer);
  return memoryView;
}

const EMPTY = new Uint8Array(0);

/**
 * What a freed grid's handles call: every method throws.
 * @type {RawGrid}
 */
const FREED = /** @type {RawGrid} */ (/** @type {unknown} */ (new Proxy({}, {
  get: () => () => {
    throw new Error('this grid was freed (grid.free())');
  },
})));

/** @param {string} message */
function fail(message) {
  return new Error(message);
}

/**
 * @param {unknown} value
 * @param {string} what
 * @returns {asserts value is string}
 */
function checkText(value, what) {
  if (typeof value !== 'string') throw fail(`${what} must be a string, not ${typeName(value)}`);
  if (!isWellFormed(value)) throw fail(`${what} contains a lone surrogate (not valid Unicode)`);
}

/**
 * @param {unknown} value
 * @param {string} what
 * @returns {number}
 */
function checkMillis(value, what) {
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
function guarded(fn, arg, failure) {
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
function rethrow(failure) {
  if (failure !== undefined) throw failure.e;
}

/**
 * The TTL of a write's options, or -1 for none.
 * @param {WriteOptions | null | undefined} options
 */
function ttlOf(options) {
  if (options === undefined || options === null) return -1;
  if (typeof options !== 'object') throw fail(`options must be an object, not ${typeName(options)}`);
  if (options.ttlMs === undefined) return -1;
  return checkMillis(options.ttlMs, 'options.ttlMs');
}

/** What a map handle needs from its grid; kept off the public objects. */
class GridCore {
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
    /** @type {Map<number, Set<(change: Change) => void>>} */
    this.subscribers = new Map(); // map id -> Set of callbacks
    this.reader = new Reader(EMPTY); // re-pointed at each reply by `output`
    // Arguments are written straight into the module's input buffer (see RawGrid::input).
    this.writer = new Writer((min) => {
      const capacity = 2 ** Math.ceil(Math.log2(Math.max(min, 256)));
      const at = this.raw.input(capacity);
      return { buf: memory(), at, capacity };
    });
  }

  /** The error behind a failed status code. */
  failure() {
    return new Error(this.raw.takeError());
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

  /** After a write: with storage, a write may have touched an unloaded map (its load must start). */
  wrote() {
    if (this.driver !== null) this.driver.poke();
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
    const len = this.raw.takeDrifts();
    if (len === 0 || this.onDrift === undefined) return undefined;
    const r = this.output(len);
    const drifts = r.vec(/** @returns {DriftReport} */ function () {
      return { remote: this.str(), aheadMs: this.u64(), maxDriftMs: this.varint() };
    });
    let failure;
    for (const d of drifts) failure = guarded(this.onDrift, d, failure);
    return failure;
  }

  /**
   * @param {number} id
   * @param {unknown} fn the app's callback, checked here
   * @returns {() => void}
   */
  subscribe(id, fn) {
    if (typeof fn !== 'function') throw fail(`subscribe() takes a function, not ${typeName(fn)}`);
    let subs = this.subscribers.get(id);
    if (subs === undefined) {
      subs = new Set();
      this.subscribers.set(id, subs);
      this.raw.recordEvents(id, true);
    }
    /** @param {Change} change */
    const entry = (change) => fn(change); // one entry per call, so the same fn can subscribe twice
    subs.add(entry);
    return () => {
      subs.delete(entry);
      if (subs.size === 0 && this.subscribers.get(id) === subs) {
        this.subscribers.delete(id);
        this.raw.recordEvents(id, false);
      }
    };
  }
}

/** Kind hints as the module takes them: a kind's number plus one (0: no hint). */
const HINTS = { lww: MAP_KINDS.indexOf('lww') + 1, or: MAP_KINDS.indexOf('or') + 1 };

/**
 * @param {unknown} storage
 * @returns {asserts storage is import('./storage.js').StorageAdapter}
 */
function checkStorage(storage) {
  if (storage === null || typeof storage !== 'object') {
    throw fail(`options.storage must be a storage adapter object, not ${typeName(storage)}`);
  }
  for (const method of ADAPTER_METHODS) {
    if (typeof /** @type {Record<string, unknown>} */ (storage)[method] !== 'function') {
      throw fail(`options.storage must have a ${method}() method (see StorageAdapter in onegrid.d.ts)`);
    }
  }
}

/** One node of the data grid: its clock and its named maps, loaded from and flushed to
 * `options.storage` when it has one (SPEC section 6).
 * @implements {DeclaredGrid}
 */
export class Grid {
  /** @type {GridCore} */
  #core;

  /** @param {GridOptions} options */
  constructor(options) {
    if (options === null || typeof options !== 'object') {
      throw fail('new Grid() takes an options object with a nodeId');
    }
    const {
      nodeId, clock = Date.now, maxDriftMs = DEFAULT_MAX_DRIFT_MS, strictDrift = false, onDrift,
      storage, isRelatedKey, onMapLoaded,
    } = options;
    checkText(nodeId, 'options.nodeId');
    if (typeof clock !== 'function') throw fail('options.clock must be a function returning milliseconds');
    checkMillis(maxDriftMs, 'options.maxDriftMs');
    if (typeof strictDrift !== 'boolean') throw fail('options.strictDrift must be a boolean');
    if (onDrift !== undefined && typeof onDrift !== 'function') throw fail('options.onDrift must be a function');
    if (storage !== undefined) checkStorage(storage);
    if (isRelatedKey !== undefined && typeof isRelatedKey !== 'function') {
      throw fail('options.isRelatedKey must be a function (map, key) => boolean');
    }
    if (onMapLoaded !== undefined && typeof onMapLoaded !== 'function') {
      throw fail('options.onMapLoaded must be a function (map, count) => void');
    }
    if (wasm === null) throw fail('onegrid is not loaded yet: call init() or initSync() first');
    const core = new GridCore(new RawGrid(nodeId, maxDriftMs, strictDrift, storage !== undefined), clock, onDrift);
    if (storage !== undefined) {
      core.driver = new StorageDriver(core, storage, {
        isRelatedKey,
        onMapLoaded,
        // Records a load brought are changes too: subscribers of the map hear of them.
        onReady: (name, kind) => {
          if (core.subscribers.size === 0) return;
          const now = core.now();
          rethrow(core.deliverMap(name, kind, now));
        },
      });
    }
    this.#core = core;
  }

  /** Releases the grid's memory in the module now (instead of when it is garbage collected).
   * The grid and its map handles throw on any later use; pending loads and flushes reject. */
  free() {
    const core = this.#core;
    if (core.raw === FREED) return;
    const raw = core.raw;
    core.driver?.close();
    core.raw = FREED;
    raw.free();
  }

  [Symbol.dispose]() {
    this.free();
  }

  /** This grid's node id. */
  get nodeId() {
    return this.#core.raw.nodeId();
  }

  /** The LWW map `name`, at once. With storage, the first touch starts its load: reads see what
   * is loaded so far, writes are merged with what the load brings. Throws `kind mismatch` for an
   * OR map.
   * @param {string} name
   * @returns {LwwMap}
   */
  getMap(name) {
    checkText(name, 'the map name');
    const core = this.#core;
    const handle = new LwwMap(core, name, core.raw.openLww(core.now(), core.text(name)));
    core.wrote();
    return handle;
  }

  /**
   * The OR map `name`, at once (see `getMap`). Throws `kind mismatch` for an LWW map.
   * @param {string} name
   * @returns {OrMap}
   */
  getORMap(name) {
    checkText(name, 'the map name');
    const core = this.#core;
    const handle = new OrMap(core, name, core.raw.openOr(core.now(), core.text(name)));
    core.wrote();
    return handle;
  }

  /** Resolves to map `name` once it is loaded, as an `LwwMap` or `OrMap` of the kind it is stored
   * as (`kind` "lww" or "or" asks for one: `kind mismatch` if it is stored as the other). Rejects
   * with the adapter's error (as `cause`) if the load fails; the next call tries again.
   * @overload
   * @param {string} name
   * @param {'lww'} kind
   * @returns {Promise<LwwMap>}
   */
  /**
   * @overload
   * @param {string} name
   * @param {'or'} kind
   * @returns {Promise<OrMap>}
   */
  /**
   * @overload
   * @param {string} name
   * @param {Kind} [kind]
   * @returns {Promise<LwwMap | OrMap>}
   */
  /**
   * @param {string} name
   * @param {Kind} [kind]
   * @returns {Promise<LwwMap | OrMap>}
   */
  async getMapAsync(name, kind) {
    checkText(name, 'the map name');
    if (kind !== undefined && !(kind in HINTS && Object.hasOwn(HINTS, kind))) {
      throw fail(`kind must be "lww" or "or", not ${typeof kind === 'string' ? JSON.stringify(kind) : typeName(kind)}`);
    }
    const core = this.#core;
    const hint = kind === undefined ? 0 : HINTS[kind];
    let status = core.raw.getMap(core.now(), core.text(name), hint);
    if (status === 0) {
      await /** @type {StorageDriver} */ (core.driver).whenLoaded(name); // only a grid with storage loads
      // A hint binds no load: asked again, the module answers with the kind, or throws
      // `kind mismatch` for a hint that disagrees with what is stored.
      status = core.raw.getMap(core.now(), core.text(name), hint);
    }
    // A status is the loaded kind's number plus one.
    return MAP_KINDS[status - 1] === 'lww' ? this.getMap(name) : this.getORMap(name);
  }

  /**
   * True while map `name` is loading from storage.
   * @param {string} name
   */
  isMapLoading(name) {
    checkText(name, 'the map name');
    return this.#core.raw.isMapLoading(name);
  }

  /**
   * True when this grid has the map `name` (loaded, loading, or its load failed).
   * @param {string} name
   */
  hasMap(name) {
    checkText(name, 'the map name');
    return this.#core.raw.hasMap(name);
  }

  /** Names of this grid's maps, sorted. */
  mapNames() {
    return this.#core.raw.mapNames();
  }

  /** Resolves when every write made so far is durable in storage (at once without storage). If
   * the adapter fails, rejects with its error as `cause`; the writes stay pending for the next
   * flush. Each map's changes go in one `storeAll` (and one `deleteAll`), not one call per write.
   * @returns {Promise<void>}
   */
  async flush() {
    const core = this.#core;
    if (core.raw === FREED) core.raw.flush(); // throws: the grid was freed
    if (core.driver === null) return;
    await core.driver.flush();
  }

  /** The writes made to map `name` while it loaded, held aside because storage holds it as the
   * other kind (its load failed with `kind mismatch`, and every `flush()` fails while they are
   * held), as a snapshot of their kind; `null` when none are held. Once taken, they are forgotten
   * here and flushes succeed again: re-apply them where they belong.
   * @param {string} name
   */
  takeEarlyWrites(name) {
    checkText(name, 'the map name');
    return this.#core.raw.takeEarlyWrites(name) ?? null;
  }

  /** A snapshot of every record of map `name`, tombstones included (versioned bytes; LWW maps
   * column by column, 3.5-4 bytes a record for small objects).
   * @param {string} name
   */
  exportMap(name) {
    checkText(name, 'the map name');
    return this.#core.raw.exportMap(name);
  }

  /**
   * Merges a snapshot into map `name`; returns records added or replaced plus new tombstones.
   * @param {string} name
   * @param {Uint8Array} bytes
   */
  importMap(name, bytes) {
    checkText(name, 'the map name');
    if (!(bytes instanceof Uint8Array)) throw fail(`importMap() takes a Uint8Array, not ${typeName(bytes)}`);
    const core = this.#core;
    const now = core.now();
    const changed = core.raw.importMap(name, now, bytes);
    core.wrote();
    // The import stays applied whatever a callback throws: every drift is reported and every
    // change delivered first, then the first error (in that order) is rethrown.
    const drifted = core.reportDrifts();
    // (The map exists now, so it has a kind.)
    const heard = core.subscribers.size > 0 ? core.deliverMap(name, /** @type {Kind} */ (core.raw.mapKind(name)), now) : undefined;
    rethrow(drifted ?? heard);
    return changed;
  }
}

/**
 * A last-writer-wins map. Get it with `grid.getMap(name)`.
 * @implements {DeclaredLwwMap}
 */
export class LwwMap {
  /** @type {GridCore} */
  #core;
  /** @type {string} */
  #name;
  /** @type {number} */
  #id;

  /**
   * @param {GridCore} core
   * @param {string} name
   * @param {number} id
   */
  constructor(core, name, id) {
    if (!(core instanceof GridCore)) throw fail('use grid.getMap(name) to get an LwwMap');
    this.#core = core;
    this.#name = name;
    this.#id = id;
  }

  /** @returns {'lww'} */
  get kind() {
    return 'lww';
  }

  get name() {
    return this.#name;
  }

  /**
   * Stores `value` under `key`; `options.ttlMs` makes reads stop seeing it after that long.
   * @param {string} key
   * @param {Value} value
   * @param {WriteOptions} [options]
   */
  set(key, value, options) {
    checkText(key, 'the key');
    const ttl = ttlOf(options);
    const core = this.#core;
    const now = core.now(); // before writing arguments: the clock may itself use the grid
    const len = core.pair(key, value);
    if (core.raw.lwwSet(this.#id, now, len, ttl) !== 0) throw core.failure();
    core.wrote();
    core.dispatch(this.#id, now, 'lww');
  }

  /**
   * Sets many `[key, value]` pairs in one call into the module, all or nothing.
   * @param {Array<[string, Value]>} entries
   */
  setMany(entries) {
    if (!Array.isArray(entries)) throw fail(`setMany() takes an array of [key, value] pairs, not ${typeName(entries)}`);
    const core = this.#core;
    const now = core.now();
    const len = core.batch(entries);
    if (core.raw.lwwSetMany(this.#id, now, len) !== 0) throw core.failure();
    core.wrote();
    core.dispatch(this.#id, now, 'lww');
  }

  /**
   * The value of `key`, or `undefined` if missing, removed or expired.
   * @param {string} key
   * @returns {Value | undefined}
   */
  get(key) {
    checkText(key, 'the key');
    const core = this.#core;
    const now = core.now();
    const len = core.raw.lwwGet(this.#id, now, core.text(key));
    if (len >= 0) return core.output(len).value();
    if (len === -1) return undefined;
    throw core.failure();
  }

  /**
   * True when `get(key)` would return a value.
   * @param {string} key
   */
  has(key) {
    checkText(key, 'the key');
    const core = this.#core;
    const now = core.now();
    return core.raw.lwwHas(this.#id, now, core.text(key));
  }

  /**
   * Removes `key` (stores a tombstone, also for a key never seen).
   * @param {string} key
   */
  remove(key) {
    checkText(key, 'the key');
    const core = this.#core;
    const now = core.now();
    const len = core.text(key);
    if (core.raw.lwwRemove(this.#id, now, len) !== 0) throw core.failure();
    core.wrote();
    core.dispatch(this.#id, now, 'lww');
  }

  /** `[key, value]` pairs of the visible entries, sorted by key. */
  entries() {
    const core = this.#core;
    return core.output(core.raw.lwwEntries(this.#id, core.now())).vec(/** @returns {[string, Value]} */ function () {
      return [this.str(), this.value()];
    });
  }

  /** Keys of the visible entries, sorted. */
  keys() {
    return this.#core.raw.lwwKeys(this.#id, this.#core.now());
  }

  /** Number of visible entries. */
  get size() {
    return this.#core.raw.lwwSize(this.#id, this.#core.now());
  }

  /** The 32-bit Merkle root. */
  rootHash() {
    return this.#core.raw.root(this.#id);
  }

  /** The stored record of `key`, tombstones included: `{ value, deleted, timestamp, ttlMs? }`;
   * `timestamp.millis` and `ttlMs` are BigInt beyond 2^53 - 1.
   * @param {string} key
   * @returns {LwwRecordView | undefined}
   */
  getRecord(key) {
    checkText(key, 'the key');
    const core = this.#core;
    const len = core.raw.lwwRecord(this.#id, core.text(key));
    if (len < 0) return undefined;
    const r = core.output(len);
    const value = r.option(r.value);
    // Millis and TTL are u64: a peer's may pass 2^53, and those come back as BigInt.
    const timestamp = { millis: r.u64(), counter: r.varint(), nodeId: r.str() };
    const ttlMs = r.option(r.u64);
    /** @type {LwwRecordView} */
    const record = { value: value === undefined ? null : value, deleted: value === undefined, timestamp };
    if (ttlMs !== undefined) record.ttlMs = ttlMs;
    return record;
  }

  /**
   * Drops tombstones older than `olderThanMillis`; returns how many.
   * @param {number} olderThanMillis
   */
  prune(olderThanMillis) {
    const core = this.#core;
    const pruned = core.raw.prune(this.#id, core.now(), checkMillis(olderThanMillis, 'olderThanMillis'));
    core.wrote();
    return pruned;
  }

  /**
   * Calls `callback({ key, value, origin })` after each change; returns the unsubscribe function.
   * @param {(change: LwwChange) => void} callback
   */
  subscribe(callback) {
    return this.#core.subscribe(this.#id, callback);
  }
}

/**
 * An observed-remove multimap. Get it with `grid.getORMap(name)`.
 * @implements {DeclaredOrMap}
 */
export class OrMap {
  /** @type {GridCore} */
  #core;
  /** @type {string} */
  #name;
  /** @type {number} */
  #id;

  /**
   * @param {GridCore} core
   * @param {string} name
   * @param {number} id
   */
  constructor(core, name, id) {
    if (!(core instanceof GridCore)) throw fail('use grid.getORMap(name) to get an OrMap');
    this.#core = core;
    this.#name = name;
    this.#id = id;
  }

  /** @returns {'or'} */
  get kind() {
    return 'or';
  }

  get name() {
    return this.#name;
  }

  /**
   * Adds `value` under `key` (a new record even if an equal value is there); returns its tag.
   * @param {string} key
   * @param {Value} value
   * @param {WriteOptions} [options]
   */
  add(key, value, options) {
    checkText(key, 'the key');
    const ttl = ttlOf(options);
    const core = this.#core;
    const now = core.now();
    const len = core.pair(key, value);
    const tag = core.raw.orAdd(this.#id, now, len, ttl);
    core.wrote();
    core.dispatch(this.#id, now, 'or');
    return tag;
  }

  /**
   * Removes every observed record under `key` whose value equals `value`; returns their tags.
   * @param {string} key
   * @param {Value} value
   */
  remove(key, value) {
    checkText(key, 'the key');
    const core = this.#core;
    const now = core.now();
    const tags = core.raw.orRemove(this.#id, now, core.pair(key, value));
    core.wrote();
    core.dispatch(this.#id, now, 'or');
    return tags;
  }

  /**
   * The values under `key`, oldest first.
   * @param {string} key
   */
  get(key) {
    checkText(key, 'the key');
    const core = this.#core;
    const now = core.now();
    return core.output(core.raw.orGet(this.#id, now, core.text(key))).vec(Reader.prototype.value);
  }

  /**
   * True when `key` has a visible value.
   * @param {string} key
   */
  has(key) {
    return this.get(key).length > 0;
  }

  /** `[key, values]` pairs, sorted by key. */
  entries() {
    const core = this.#core;
    return core.output(core.raw.orEntries(this.#id, core.now())).vec(/** @returns {[string, Value[]]} */ function () {
      return [this.str(), this.vec(this.value)];
    });
  }

  /** Keys with visible values, sorted. */
  keys() {
    return this.#core.raw.orKeys(this.#id, this.#core.now());
  }

  /** Number of keys with visible values. */
  get size() {
    return this.#core.raw.orSize(this.#id, this.#core.now());
  }

  /** The 32-bit Merkle root. */
  rootHash() {
    return this.#core.raw.root(this.#id);
  }

  /** The removed tags, sorted. */
  tombstones() {
    return this.#core.raw.orTombstones(this.#id);
  }

  /**
   * Forgets tombstones older than `olderThanMillis`; returns how many.
   * @param {number} olderThanMillis
   */
  prune(olderThanMillis) {
    const core = this.#core;
    const pruned = core.raw.prune(this.#id, core.now(), checkMillis(olderThanMillis, 'olderThanMillis'));
    core.wrote();
    return pruned;
  }

  /**
   * Calls `callback({ key, values, origin })` after each change; returns the unsubscribe function.
   * @param {(change: OrChange) => void} callback
   */
  subscribe(callback) {
    return this.#core.subscribe(this.#id, callback);
  }
}

// The exports against onegrid.d.ts, the public contract: for tsc only (these are comments).
/**
 * `Actual`, if it can stand where `Declared` is expected (else tsc reports the difference).
 * @template {Declared} Actual
 * @template Declared
 * @typedef {Actual} Conforms
 */
/**
 * The classes' instances are checked by their `@implements`; the map classes' constructors are
 * private in onegrid.d.ts (maps come from `grid.getMap`).
 * @typedef {[
 *   Conforms<typeof init, typeof import('./onegrid.js').default>,
 *   Conforms<typeof initSync, typeof import('./onegrid.js').initSync>,
 *   Conforms<typeof Grid, typeof import('./onegrid.js').Grid>,
 *   Conforms<typeof import('./memory-storage.js').MemoryStorage, typeof import('./onegrid.js').MemoryStorage>,
 *   Conforms<typeof import('./indexeddb-storage.js').IndexedDbStorage, typeof import('./onegrid.js').IndexedDbStorage>,
 * ]} Contract
 */
