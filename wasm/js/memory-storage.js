// @ts-check
// onegrid: MemoryStorage, the storage adapter in this process's memory (see storage.js).

import { checkEntries, checkKey, checkKeys, checkMap, copyBytes } from './storage-checks.js';

/** @typedef {import('./storage.js').StorageAdapter} StorageAdapter */

// Arguments are typed `unknown`: callers are checked here, whatever their types said.

/**
 * Storage in this process's memory: for tests, and for grids that need no persistence.
 * @implements {StorageAdapter}
 */
export class MemoryStorage {
  /**
   * map name -> Map(key -> bytes); a map whose last key is deleted is dropped.
   * @type {Map<string, Map<string, Uint8Array>>}
   */
  #maps = new Map();

  /**
   * @param {unknown} map
   * @returns {Promise<string[]>}
   */
  async loadAllKeys(map) {
    checkMap('loadAllKeys', map);
    const records = this.#maps.get(map);
    return records === undefined ? [] : [...records.keys()];
  }

  /**
   * @param {unknown} map
   * @param {unknown} keys
   * @returns {Promise<Array<[string, Uint8Array]>>}
   */
  async loadAll(map, keys) {
    checkMap('loadAll', map);
    const wanted = checkKeys('loadAll', map, keys);
    const records = this.#maps.get(map);
    /** @type {Array<[string, Uint8Array]>} */
    const out = [];
    if (records === undefined) return out;
    for (const key of wanted) {
      const bytes = records.get(key);
      if (bytes !== undefined) out.push([key, new Uint8Array(bytes)]);
    }
    return out;
  }

  /**
   * @param {unknown} map
   * @param {unknown} key
   * @param {unknown} bytes
   */
  async store(map, key, bytes) {
    checkMap('store', map);
    checkKey('store', map, key);
    this.#put(map, [[key, copyBytes('store', map, bytes)]]);
  }

  /**
   * @param {unknown} map
   * @param {unknown} entries
   */
  async storeAll(map, entries) {
    checkMap('storeAll', map);
    this.#put(map, checkEntries('storeAll', map, entries));
  }

  /**
   * @param {unknown} map
   * @param {unknown} key
   */
  async delete(map, key) {
    checkMap('delete', map);
    checkKey('delete', map, key);
    this.#remove(map, [key]);
  }

  /**
   * @param {unknown} map
   * @param {unknown} keys
   */
  async deleteAll(map, keys) {
    checkMap('deleteAll', map);
    this.#remove(map, checkKeys('deleteAll', map, keys));
  }

  /**
   * @param {string} map
   * @param {Array<[string, Uint8Array]>} entries
   */
  #put(map, entries) {
    if (entries.length === 0) return;
    let records = this.#maps.get(map);
    if (records === undefined) this.#maps.set(map, (records = new Map()));
    for (const [key, bytes] of entries) records.set(key, bytes);
  }

  /**
   * @param {string} map
   * @param {Iterable<string>} keys
   */
  #remove(map, keys) {
    const records = this.#maps.get(map);
    if (records === undefined) return;
    for (const key of keys) records.delete(key);
    if (records.size === 0) this.#maps.delete(map);
  }
}
