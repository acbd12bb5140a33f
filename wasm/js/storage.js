// onegrid: storage adapters, the persistence a grid's storage manager writes through (SPEC 6).
//
// An adapter is a plain object of async functions over opaque bytes (each stored value is the
// postcard encoding the module made), every call scoped by a map name:
//   loadAllKeys(map)          -> string[]
//   loadAll(map, keys)        -> [key, Uint8Array][]   (keys not stored are simply absent)
//   store(map, key, bytes)    storeAll(map, [[key, bytes], ...])   (storeAll: all or none)
//   delete(map, key)          deleteAll(map, keys)                 (absent keys are no error)
// Arguments are checked, and bytes copied, before the first await: a caller may reuse its buffers
// as soon as the call returns, and a bad entry anywhere in a batch rejects before anything is
// written.

import { typeName } from './values.js';

/** The message prefix of a call: `storeAll(map "a")`. */
function where(op, map) {
  return typeof map === 'string' ? `${op}(map ${JSON.stringify(map)})` : op;
}

function isBytes(v) {
  // The tag check also accepts a Uint8Array from another realm (an iframe, a vm context).
  return v instanceof Uint8Array || Object.prototype.toString.call(v) === '[object Uint8Array]';
}

function checkMap(op, map) {
  if (typeof map !== 'string') throw new Error(`${op}: map must be a string, not ${typeName(map)}`);
}

function checkKey(op, map, key, what = 'key') {
  if (typeof key !== 'string') throw new Error(`${where(op, map)}: ${what} must be a string, not ${typeName(key)}`);
}

/**
 * A private, tight copy of `bytes`. Tight matters for IndexedDB: cloning a view stores its whole
 * underlying buffer (a Node Buffer is often a view into an 8 KiB pool).
 */
function copyBytes(op, map, bytes, what = 'value') {
  if (!isBytes(bytes)) throw new Error(`${where(op, map)}: ${what} must be a Uint8Array, not ${typeName(bytes)}`);
  return new Uint8Array(bytes);
}

/** Checks a key list; returns its distinct keys. */
function checkKeys(op, map, keys) {
  if (!Array.isArray(keys)) throw new Error(`${where(op, map)}: keys must be an array of strings, not ${typeName(keys)}`);
  for (let i = 0; i < keys.length; i++) checkKey(op, map, keys[i], `keys[${i}]`);
  return new Set(keys);
}

/** Checks a `[key, bytes]` batch; returns `[key, copy]` pairs (the last one wins for a repeated key). */
function checkEntries(op, map, entries) {
  if (!Array.isArray(entries)) {
    throw new Error(`${where(op, map)}: entries must be an array of [key, Uint8Array] pairs, not ${typeName(entries)}`);
  }
  const out = new Array(entries.length);
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i];
    if (!Array.isArray(entry) || entry.length !== 2) {
      throw new Error(`${where(op, map)}: entries[${i}] must be a [key, Uint8Array] pair, not ${typeName(entry)}`);
    }
    checkKey(op, map, entry[0], `entries[${i}][0] (the key)`);
    out[i] = [entry[0], copyBytes(op, map, entry[1], `entries[${i}][1] (the value of ${JSON.stringify(entry[0])})`)];
  }
  return out;
}

/** Storage in this process's memory: for tests, and for grids that need no persistence. */
export class MemoryStorage {
  /** map name -> Map(key -> bytes); a map whose last key is deleted is dropped. */
  #maps = new Map();

  async loadAllKeys(map) {
    checkMap('loadAllKeys', map);
    const records = this.#maps.get(map);
    return records === undefined ? [] : [...records.keys()];
  }

  async loadAll(map, keys) {
    checkMap('loadAll', map);
    const wanted = checkKeys('loadAll', map, keys);
    const records = this.#maps.get(map);
    const out = [];
    if (records === undefined) return out;
    for (const key of wanted) {
      const bytes = records.get(key);
      if (bytes !== undefined) out.push([key, new Uint8Array(bytes)]);
    }
    return out;
  }

  async store(map, key, bytes) {
    checkMap('store', map);
    checkKey('store', map, key);
    this.#put(map, [[key, copyBytes('store', map, bytes)]]);
  }

  async storeAll(map, entries) {
    checkMap('storeAll', map);
    this.#put(map, checkEntries('storeAll', map, entries));
  }

  async delete(map, key) {
    checkMap('delete', map);
    checkKey('delete', map, key);
    this.#remove(map, [key]);
  }

  async deleteAll(map, keys) {
    checkMap('deleteAll', map);
    this.#remove(map, checkKeys('deleteAll', map, keys));
  }

  #put(map, entries) {
    if (entries.length === 0) return;
    let records = this.#maps.get(map);
    if (records === undefined) this.#maps.set(map, (records = new Map()));
    for (const [key, bytes] of entries) records.set(key, bytes);
  }

  #remove(map, keys) {
    const records = this.#maps.get(map);
    if (records === undefined) return;
    for (const key of keys) records.delete(key);
    if (records.size === 0) this.#maps.delete(map);
  }
}

/** The IndexedDB schema this code writes; an older database is upgraded when opened. */
const SCHEMA_VERSION = 1;
/** One object store for every map: out-of-line keys `[map, key]`, values the stored bytes. */
const RECORDS = 'records';
/** Up to this many keys, loadAll reads key by key without first counting the map. */
const FEW_KEYS = 64;

/** Every record of `map`: `[map]` sorts before any `[map, key]`, and `[map, []]` after (arrays sort after strings). */
function mapRange(map) {
  return IDBKeyRange.bound([map], [map, []]);
}

/** The error a request or transaction failed with, wrapped so its message names the call. */
function failed(op, map, cause) {
  const reason = cause ? `${cause.name}: ${cause.message}` : 'the transaction was aborted';
  return new Error(`IndexedDbStorage.${where(op, map)} failed: ${reason}`, { cause });
}

/**
 * Storage in IndexedDB, one database per grid (or per anything that shares its name). The database
 * is opened on the first call. Writes commit with `durability: 'strict'` by default, so a promise
 * resolves only once its data is on disk (SPEC 6: a writer is acknowledged after its write is
 * durable); pass `durability: 'relaxed'` to trade that for speed.
 */
export class IndexedDbStorage {
  #name;
  #idb;
  #durability;
  /** The open connection's promise, or null until the next call opens one. */
  #db = null;

  constructor({ name = 'onegrid', indexedDB = globalThis.indexedDB, durability = 'strict' } = {}) {
    if (typeof name !== 'string' || name === '') throw new Error(`IndexedDbStorage: name must be a non-empty string, not ${typeName(name)}`);
    if (indexedDB == null) throw new Error('IndexedDbStorage: no IndexedDB here (pass one as options.indexedDB)');
    if (!['strict', 'relaxed', 'default'].includes(durability)) {
      throw new Error(`IndexedDbStorage: durability must be 'strict', 'relaxed' or 'default', not ${JSON.stringify(durability)}`);
    }
    this.#name = name;
    this.#idb = indexedDB;
    this.#durability = durability;
  }

  /** The database's name. */
  get name() {
    return this.#name;
  }

  /** Deletes database `name` (e.g. between tests); close every adapter on it first. */
  static delete(name, indexedDB = globalThis.indexedDB) {
    return new Promise((resolve, reject) => {
      const req = indexedDB.deleteDatabase(name);
      req.onsuccess = () => resolve();
      req.onerror = () => reject(new Error(`IndexedDbStorage.delete(${JSON.stringify(name)}) failed: ${req.error?.message}`, { cause: req.error }));
    });
  }

  /** Closes the connection; the next call opens it again. */
  async close() {
    const db = this.#db;
    this.#db = null;
    if (db === null) return;
    try {
      (await db).close();
    } catch {
      // It never opened: nothing to close.
    }
  }

  async loadAllKeys(map) {
    checkMap('loadAllKeys', map);
    const keys = await this.#run('loadAllKeys', map, 'readonly', (records, done) => {
      const req = records.getAllKeys(mapRange(map));
      req.onsuccess = () => done(req.result);
    });
    return keys.map((k) => k[1]);
  }

  async loadAll(map, keys) {
    checkMap('loadAll', map);
    const wanted = checkKeys('loadAll', map, keys);
    if (wanted.size === 0) return [];
    return this.#run('loadAll', map, 'readonly', (records, done) => {
      // Loading a map means asking for most of its keys: then two bulk reads of its range beat
      // one request per key by far. Asking for a few keys of a big map reads just those.
      const oneByOne = () => {
        const out = [];
        for (const key of wanted) {
          const req = records.get([map, key]);
          req.onsuccess = () => {
            if (req.result !== undefined) out.push([key, req.result]);
          };
        }
        done(out);
      };
      if (wanted.size <= FEW_KEYS) return oneByOne();
      const count = records.count(mapRange(map));
      count.onsuccess = () => {
        if (wanted.size * 4 < count.result) return oneByOne();
        const range = mapRange(map);
        const keyReq = records.getAllKeys(range);
        const valueReq = records.getAll(range);
        // Requests of one transaction succeed in order, so both are in when the second is.
        valueReq.onsuccess = () => {
          const all = keyReq.result;
          const values = valueReq.result;
          const out = [];
          for (let i = 0; i < all.length; i++) {
            const key = all[i][1];
            if (wanted.has(key)) out.push([key, values[i]]);
          }
          done(out);
        };
      };
    });
  }

  async store(map, key, bytes) {
    checkMap('store', map);
    checkKey('store', map, key);
    const copy = copyBytes('store', map, bytes);
    await this.#run('store', map, 'readwrite', (records, done) => {
      records.put(copy, [map, key]);
      done();
    });
  }

  async storeAll(map, entries) {
    checkMap('storeAll', map);
    const checked = checkEntries('storeAll', map, entries);
    if (checked.length === 0) return;
    // One transaction: if any put fails the whole batch is rolled back.
    await this.#run('storeAll', map, 'readwrite', (records, done) => {
      for (const [key, bytes] of checked) records.put(bytes, [map, key]);
      done();
    });
  }

  async delete(map, key) {
    checkMap('delete', map);
    checkKey('delete', map, key);
    await this.#run('delete', map, 'readwrite', (records, done) => {
      records.delete([map, key]);
      done();
    });
  }

  async deleteAll(map, keys) {
    checkMap('deleteAll', map);
    const gone = checkKeys('deleteAll', map, keys);
    if (gone.size === 0) return;
    await this.#run('deleteAll', map, 'readwrite', (records, done) => {
      for (const key of gone) records.delete([map, key]);
      done();
    });
  }

  /** The open database, opening (and if need be upgrading) it on first use. */
  #open() {
    if (this.#db !== null) return this.#db;
    const opening = new Promise((resolve, reject) => {
      const req = this.#idb.open(this.#name, SCHEMA_VERSION);
      req.onupgradeneeded = (event) => {
        // Each step upgrades from the version before it; version 0 is no database at all.
        const db = req.result;
        if (event.oldVersion < 1) db.createObjectStore(RECORDS);
      };
      req.onsuccess = () => {
        const db = req.result;
        // Another connection wants to upgrade or delete the database: step aside, reopen on next use.
        db.onversionchange = () => {
          db.close();
          if (this.#db === opening) this.#db = null;
        };
        // Closed by the browser (storage cleared, disk error): reopen on next use.
        db.onclose = () => {
          if (this.#db === opening) this.#db = null;
        };
        resolve(db);
      };
      req.onerror = () => reject(req.error);
      req.onblocked = () => {
        // Waits for older connections to close (they close on versionchange); nothing to do.
      };
    });
    this.#db = opening;
    // A failed open is not kept: the next call tries again.
    opening.catch(() => {
      if (this.#db === opening) this.#db = null;
    });
    return opening;
  }

  /**
   * Runs `body(records, done)` in one transaction over the records store and resolves with what
   * it passed to `done` once the transaction has committed; any failure rejects, naming the call.
   */
  async #run(op, map, mode, body) {
    let db;
    try {
      db = await this.#open();
    } catch (e) {
      throw failed(op, map, e);
    }
    return new Promise((resolve, reject) => {
      let result;
      let tx;
      try {
        tx = mode === 'readwrite'
          ? db.transaction(RECORDS, mode, { durability: this.#durability })
          : db.transaction(RECORDS, mode);
        body(tx.objectStore(RECORDS), (value) => {
          result = value;
        });
      } catch (e) {
        // e.g. InvalidStateError on a connection closed under us, or DataError for a bad key.
        try {
          tx?.abort();
        } catch {
          // Already finished.
        }
        reject(failed(op, map, e));
        return;
      }
      tx.oncomplete = () => resolve(result);
      // A failed request aborts the transaction; its error is the transaction's.
      tx.onabort = () => reject(failed(op, map, tx.error));
    });
  }
}
