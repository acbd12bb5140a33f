// @ts-check
// onegrid: the JavaScript API over the one onegrid WebAssembly module.
//
// `Grid` (here), `LwwMap` and `OrMap` (maps.js) read the embedder's clock, check and encode
// arguments (values.js), and make one call into the module per operation; what they share is in
// grid-core.js. Sync connections (`grid.connect`, `grid.accept`) are driven by sync.js, and
// `connectWebSocket` lives in websocket.js. The module (`RawGrid`, generated
// by wasm-bindgen into onegrid_glue.js) holds all state and all CRDT logic.

import initGlue, { initSync as initSyncGlue, RawGrid } from './onegrid_glue.js';
import { typeName } from './values.js';
import { ADAPTER_METHODS, StorageDriver } from './storage-driver.js';
import { DEFAULT_MAX_DRIFT_MS, MAP_KINDS } from './constants.js';
import { FREED, GridCore, checkMillis, checkText, fail, loadedModule, rethrow, setModule } from './grid-core.js';
import { LwwMap, OrMap } from './maps.js';
import { HUB, hubOf, openConnection } from './sync.js';

export { LwwMap, OrMap } from './maps.js';

export { connectWebSocket } from './websocket.js';

export { OnegridError, ERROR_CODES } from './errors.js';

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
  const ready = loadedModule();
  if (ready !== null) return ready;
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
  const ready = loadedModule();
  if (ready !== null) return ready;
  // The glue would finish that load later and swap in a second instance under every grid.
  if (loading !== null) throw fail('onegrid: init() is still loading the module; await it instead of calling initSync()', 'NOT_LOADED');
  return loaded(initSyncGlue(input));
}

/** @param {InitOutput} exports */
function loaded(exports) {
  setModule(exports);
  keepShapes();
  return exports;
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
    if (loadedModule() === null) throw fail('onegrid is not loaded yet: call init() or initSync() first', 'NOT_LOADED');
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
        // Sync's acknowledgements wait for flushes, and frames about a map for its load.
        afterEvents: (failedFlush) => core.sync?.afterStorage(failedFlush),
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
    core.sync?.close();
    core.driver?.close();
    core.raw = FREED;
    raw.free();
  }

  [Symbol.dispose]() {
    this.free();
  }

  /** Opens a connection to a peer grid (SPEC section 8) over the app's transport: `send(frame)`
   * delivers a frame to the peer, and every frame from the peer goes to the connection's
   * `receive`. `options.token` travels in the handshake for the peer to check.
   * @param {(frame: Uint8Array) => void} send
   * @param {import('./onegrid.js').ConnectOptions} [options]
   * @returns {import('./onegrid.js').Connection}
   */
  connect(send, options) {
    return openConnection(this.#core, send, options, false);
  }

  /** Takes a connection a peer grid opens (the server's side): `options.onHello(nodeId, token)`
   * accepts it, with the maps the peer may read and write, or throws to refuse it.
   * @param {(frame: Uint8Array) => void} send
   * @param {import('./onegrid.js').AcceptOptions} [options]
   * @returns {import('./onegrid.js').Connection}
   */
  accept(send, options) {
    return openConnection(this.#core, send, options, true);
  }

  /** The grid's connections' driver (for connectWebSocket; not part of the API). */
  [HUB]() {
    return hubOf(this.#core);
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
    const status = core.raw.getMap(core.now(), core.text(name), hint);
    // A status is the loaded kind's number plus one; 0 while it loads. Then the module answers
    // when the load ends: the kind, or `kind mismatch` for a kind that disagrees with what is stored.
    const loaded = status === 0
      ? await /** @type {StorageDriver} */ (core.driver).whenLoaded(name, kind) // only a grid with storage loads
      : MAP_KINDS[status - 1];
    return loaded === 'lww' ? this.getMap(name) : this.getORMap(name);
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
 *   Conforms<typeof import('./errors.js').OnegridError, typeof import('./onegrid.js').OnegridError>,
 *   Conforms<typeof import('./errors.js').ERROR_CODES, typeof import('./onegrid.js').ERROR_CODES>,
 *   Conforms<typeof import('./memory-storage.js').MemoryStorage, typeof import('./onegrid.js').MemoryStorage>,
 *   Conforms<typeof import('./indexeddb-storage.js').IndexedDbStorage, typeof import('./onegrid.js').IndexedDbStorage>,
 *   Conforms<typeof import('./websocket.js').connectWebSocket, typeof import('./onegrid.js').connectWebSocket>,
 *   Conforms<import('./sync.js').Connection, import('./onegrid.js').Connection>,
 * ]} Contract
 */
