// @ts-check
// The map handles: `LwwMap` and `OrMap`, each a name and an id in its grid's module, reached
// through the grid's shared `GridCore`. Get them with `grid.getMap` and `grid.getORMap`.

import { GridCore, checkMillis, checkText, fail, ttlOf } from './grid-core.js';
import { Reader, typeName } from './values.js';

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
    // Built by the module (a cold path: see wasm/src/interop/to_js.rs).
    return core.raw.lwwRecord(this.#id, core.text(key));
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
    return this.#core.subscribe(this.#id, callback, 'lww');
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
    return this.#core.subscribe(this.#id, callback, 'or');
  }
}
