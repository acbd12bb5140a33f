// @ts-check
// onegrid: IndexedDbStorage, the storage adapter over a browser's IndexedDB (see storage.js).

import { OnegridError } from './errors.js';
import { typeName } from './values.js';
import { checkEntries, checkKey, checkKeys, checkMap, copyBytes, isBytes, where } from './storage-checks.js';

/** @typedef {import('./storage.js').StorageAdapter} StorageAdapter */
/** @typedef {import('./storage.js').IndexedDbStorageOptions} IndexedDbStorageOptions */
/** @typedef {Map<string, Uint8Array | undefined>} Group keys of one bucket, with their bytes when storing */
/**
 * What `#run` hands its body: `done(value)` sets what the call resolves to; `guard(fn)` wraps a
 * request callback so that what it throws aborts the transaction.
 * @template T
 * @typedef {{ done: (value: T) => void, guard: (fn: () => void) => () => void }} RunControl
 */

// Chromium spends microseconds on every IndexedDB record it reads or writes, so one record per key
// made a 100 000-key map take over a second to load and five to store. Instead each map's keys are
// spread over BUCKETS buckets by a hash of the key, and a bucket is one record holding its entries
// packed into one Uint8Array. Loading a map is then one range read of at most BUCKETS records;
// writing a key rewrites its bucket, inside the writing transaction (so writers in other tabs, whose
// transactions IndexedDB runs one at a time, lose nothing).
//
// The object store `buckets` has out-of-line keys `[map, bucket number]`. A bucket's bytes:
//   varint n; n x varint key length (UTF-16 code units); n x varint value length;
//   the n values, back to back; the n keys as one UTF-8 string, to the end.
// An empty bucket is deleted, so a map is stored exactly when it has a record. BUCKETS and the
// hash are part of the schema: changing either needs a new SCHEMA_VERSION and an upgrade.

/** The IndexedDB schema this code writes; the upgrade handler builds it from any older version. */
const SCHEMA_VERSION = 1;
const BUCKETS_STORE = 'buckets';
/** Buckets per map (a power of two): a 100 000-key map has about 100 keys per bucket. */
const BUCKETS = 1024;

const utf8 = new TextEncoder();
// `ignoreBOM`: a bucket's keys start with its first key, whose leading U+FEFF is part of it.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The bucket of `key`: FNV-1a over its UTF-16 code units, then MurmurHash3's fmix32 to spread the low bits. */
/** @param {string} key */
function bucketOf(key) {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h & (BUCKETS - 1);
}

/** @param {number} n */
function varintSize(n) {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    size++;
  }
  return size;
}

/**
 * @param {Uint8Array} buf
 * @param {number} at
 * @param {number} n
 */
function writeVarint(buf, at, n) {
  while (n >= 0x80) {
    buf[at++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 0x80);
  }
  buf[at++] = n;
  return at;
}

/**
 * Packs a bucket's entries (a Map of key -> bytes) into one tight Uint8Array.
 * @param {Map<string, Uint8Array>} entries
 */
function packBucket(entries) {
  const keys = [...entries.keys()];
  const values = [...entries.values()];
  const keyBytes = utf8.encode(keys.join(''));
  let size = varintSize(keys.length) + keyBytes.length;
  for (let i = 0; i < keys.length; i++) size += varintSize(keys[i].length) + varintSize(values[i].length) + values[i].length;
  const buf = new Uint8Array(size);
  let at = writeVarint(buf, 0, keys.length);
  for (const key of keys) at = writeVarint(buf, at, key.length);
  for (const value of values) at = writeVarint(buf, at, value.length);
  for (const value of values) {
    buf.set(value, at);
    at += value.length;
  }
  buf.set(keyBytes, at);
  return buf;
}

/**
 * A bucket record that is not what packBucket wrote.
 * @param {string} why
 */
function corrupt(why) {
  return new OnegridError('STORAGE', `a stored bucket is corrupt (${why})`);
}

/**
 * Unpacks a bucket: calls `visit(key, bytes, at, end)` for each entry, where the entry's value is
 * `bytes.subarray(at, end)` (a view into the record: copy what is kept).
 * @param {unknown} bytes a record as IndexedDB gives it back
 * @param {(key: string, bytes: Uint8Array, at: number, end: number) => void} visit
 */
function unpackBucket(bytes, visit) {
  if (!isBytes(bytes)) throw corrupt(`${typeName(bytes)}, not bytes`);
  let at = 0;
  const varint = () => {
    let n = 0;
    let scale = 1;
    for (;;) {
      if (at >= bytes.length) throw corrupt('it ends inside a length');
      const b = bytes[at++];
      n += (b & 0x7f) * scale;
      if (b < 0x80) return n;
      scale *= 0x80;
      if (scale > 2 ** 35) throw corrupt('a length is too long');
    }
  };
  const n = varint();
  /** @type {number[]} */
  const keyLengths = new Array(n);
  /** @type {number[]} */
  const valueLengths = new Array(n);
  for (let i = 0; i < n; i++) keyLengths[i] = varint();
  let valuesEnd = 0;
  for (let i = 0; i < n; i++) valuesEnd += valueLengths[i] = varint();
  valuesEnd += at;
  if (valuesEnd > bytes.length) throw corrupt('its values run past its end');
  const keys = utf8Decoder.decode(bytes.subarray(valuesEnd));
  let keyAt = 0;
  for (let i = 0; i < n; i++) {
    const key = keys.slice(keyAt, (keyAt += keyLengths[i]));
    visit(key, bytes, at, (at += valueLengths[i]));
  }
  if (keyAt !== keys.length) throw corrupt('its keys do not add up');
}

/**
 * A bucket's entries as a Map of key -> bytes (views into `bytes`).
 * @param {unknown} bytes a record as IndexedDB gives it back, or undefined for none
 */
function bucketEntries(bytes) {
  /** @type {Map<string, Uint8Array>} */
  const entries = new Map();
  if (bytes !== undefined) unpackBucket(bytes, (key, b, at, end) => entries.set(key, b.subarray(at, end)));
  return entries;
}

/**
 * `[key, bytes]` pairs grouped by bucket: Map of bucket -> Map of key -> bytes.
 * @param {Iterable<[string, Uint8Array?]>} pairs
 */
function byBucket(pairs) {
  /** @type {Map<number, Group>} */
  const groups = new Map();
  for (const [key, bytes] of pairs) {
    const b = bucketOf(key);
    let group = groups.get(b);
    if (group === undefined) groups.set(b, (group = new Map()));
    group.set(key, bytes);
  }
  return groups;
}

/**
 * The error a request or transaction failed with, wrapped so its message names the call.
 * @param {string} op
 * @param {unknown} map
 * @param {any} cause whatever failed it, read as an Error: IndexedDB's (a DOMException), one a
 *   callback threw, or null for a plain abort
 */
function failed(op, map, cause) {
  // IndexedDB's own errors are named by their DOMException name; ours and plain Errors need none.
  const named = cause && !(cause instanceof OnegridError) && cause.name !== 'Error';
  const reason = cause ? `${named ? `${cause.name}: ` : ''}${cause.message}` : 'the transaction was aborted';
  return new OnegridError('STORAGE', `IndexedDbStorage.${where(op, map)} failed: ${reason}`, { cause });
}

/**
 * Storage in IndexedDB, one database per grid (or per anything that shares its name), opened on
 * the first call. Writes commit with `durability: 'strict'` by default, so a write resolves only
 * once it is on disk (SPEC 6: a writer is acknowledged after its write is durable); pass
 * `durability: 'relaxed'` to trade that for speed.
 * @implements {StorageAdapter}
 */
export class IndexedDbStorage {
  /** @type {string} */
  #name;
  /** @type {IDBFactory} */
  #idb;
  /** @type {IDBTransactionDurability} */
  #durability;
  /** @type {typeof IDBKeyRange} */
  #keyRange;
  /**
   * The open connection's promise, or null until the next call opens one.
   * @type {Promise<IDBDatabase> | null}
   */
  #db = null;

  /** @param {IndexedDbStorageOptions} [options] */
  constructor({ name = 'onegrid', indexedDB = globalThis.indexedDB, IDBKeyRange = globalThis.IDBKeyRange, durability = 'strict' } = {}) {
    if (typeof name !== 'string' || name === '') throw new OnegridError('INVALID_ARGUMENT', `IndexedDbStorage: name must be a non-empty string, not ${typeName(name)}`);
    if (indexedDB == null || IDBKeyRange == null) {
      throw new OnegridError('INVALID_ARGUMENT', 'IndexedDbStorage: there is no IndexedDB here (pass one as options.indexedDB and options.IDBKeyRange)');
    }
    if (!['strict', 'relaxed', 'default'].includes(durability)) {
      throw new OnegridError('INVALID_ARGUMENT', `IndexedDbStorage: durability must be 'strict', 'relaxed' or 'default', not ${JSON.stringify(durability)}`);
    }
    this.#name = name;
    this.#idb = indexedDB;
    this.#durability = durability;
    this.#keyRange = IDBKeyRange;
  }

  /** The database's name. */
  get name() {
    return this.#name;
  }

  /**
   * Deletes database `name` (e.g. between tests); close every adapter on it first.
   * @param {string} name
   * @param {IDBFactory} [indexedDB]
   * @returns {Promise<void>}
   */
  static delete(name, indexedDB = globalThis.indexedDB) {
    return new Promise((resolve, reject) => {
      const req = indexedDB.deleteDatabase(name);
      req.onsuccess = () => resolve();
      req.onerror = () => reject(new OnegridError('STORAGE', `IndexedDbStorage.delete(${JSON.stringify(name)}) failed: ${req.error?.message}`, { cause: req.error }));
    });
  }

  /** Every bucket of `map`: `[map]` sorts before any `[map, n]`, and `[map, []]` after (arrays sort after numbers). */
  /** @param {string} map */
  #range(map) {
    return this.#keyRange.bound([map], [map, []]);
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

  /**
   * @param {unknown} map
   * @returns {Promise<string[]>}
   */
  async loadAllKeys(map) {
    checkMap('loadAllKeys', map);
    return this.#run('loadAllKeys', map, 'readonly', (store, { done, guard }) => {
      const req = store.getAll(this.#range(map));
      req.onsuccess = guard(() => {
        /** @type {string[]} */
        const keys = [];
        for (const bytes of req.result) unpackBucket(bytes, (key) => keys.push(key));
        done(keys);
      });
    });
  }

  /**
   * @param {unknown} map
   * @param {unknown} keys
   * @returns {Promise<Array<[string, Uint8Array]>>}
   */
  async loadAll(map, keys) {
    checkMap('loadAll', map);
    const wanted = checkKeys('loadAll', map, keys);
    if (wanted.size === 0) return [];
    /** @type {Set<number>} */
    const buckets = new Set();
    for (const key of wanted) buckets.add(bucketOf(key));
    return this.#run('loadAll', map, 'readonly', (store, { done, guard }) => {
      /** @type {Array<[string, Uint8Array]>} */
      const out = [];
      // Each value is a view into its bucket's record, which IndexedDB made afresh for this read:
      // already private to the caller, and a copy per value would double the time of a load.
      /** @param {unknown} bytes */
      const take = (bytes) => {
        unpackBucket(bytes, (key, b, at, end) => {
          if (wanted.has(key)) out.push([key, b.subarray(at, end)]);
        });
      };
      done(out);
      if (buckets.size * 4 > BUCKETS) {
        // Most of the map (a load): one range read.
        const req = store.getAll(this.#range(map));
        req.onsuccess = guard(() => req.result.forEach(take));
      } else {
        for (const b of buckets) {
          const req = store.get([map, b]);
          req.onsuccess = guard(() => {
            if (req.result !== undefined) take(req.result);
          });
        }
      }
    });
  }

  /**
   * @param {unknown} map
   * @param {unknown} key
   * @param {unknown} bytes
   * @returns {Promise<void>}
   */
  async store(map, key, bytes) {
    checkMap('store', map);
    checkKey('store', map, key);
    /** @type {Array<[string, Uint8Array]>} */
    const entries = [[key, copyBytes('store', map, bytes)]];
    await this.#update('store', map, byBucket(entries), false);
  }

  /**
   * @param {unknown} map
   * @param {unknown} entries
   * @returns {Promise<void>}
   */
  async storeAll(map, entries) {
    checkMap('storeAll', map);
    const checked = checkEntries('storeAll', map, entries);
    if (checked.length === 0) return;
    await this.#update('storeAll', map, byBucket(checked), false);
  }

  /**
   * @param {unknown} map
   * @param {unknown} key
   * @returns {Promise<void>}
   */
  async delete(map, key) {
    checkMap('delete', map);
    checkKey('delete', map, key);
    await this.#update('delete', map, byBucket([[key]]), true);
  }

  /**
   * @param {unknown} map
   * @param {unknown} keys
   * @returns {Promise<void>}
   */
  async deleteAll(map, keys) {
    checkMap('deleteAll', map);
    const gone = checkKeys('deleteAll', map, keys);
    if (gone.size === 0) return;
    await this.#update('deleteAll', map, byBucket([...gone].map((k) => [k])), true);
  }

  /**
   * Stores (or, with `deleting`, deletes) the keys of `groups` (bucket -> Map of key -> bytes),
   * rewriting each bucket they fall in, all in ONE readwrite transaction: the call is atomic.
   * @param {string} op
   * @param {string} map
   * @param {Map<number, Group>} groups
   * @param {boolean} deleting
   */
  #update(op, map, groups, deleting) {
    return this.#run(op, map, 'readwrite', (store, { guard }) => {
      for (const [b, group] of groups) {
        const req = store.get([map, b]);
        req.onsuccess = guard(() => {
          const entries = bucketEntries(req.result);
          const before = entries.size;
          if (deleting) {
            for (const key of group.keys()) entries.delete(key);
            if (entries.size === before) return; // none of them was stored
          } else {
            for (const [key, bytes] of group) entries.set(key, /** @type {Uint8Array} */ (bytes)); // stored: bytes given
          }
          if (entries.size > 0) store.put(packBucket(entries), [map, b]);
          else store.delete([map, b]);
        });
      }
    });
  }

  /**
   * The open database, opening (and if need be creating or upgrading) it on first use.
   * @returns {Promise<IDBDatabase>}
   */
  #open() {
    if (this.#db !== null) return this.#db;
    /** @type {Promise<IDBDatabase>} */
    const opening = new Promise((resolve, reject) => {
      const req = this.#idb.open(this.#name, SCHEMA_VERSION);
      req.onupgradeneeded = (event) => {
        // Each step upgrades from the version before it; version 0 is no database at all.
        if (event.oldVersion < 1) req.result.createObjectStore(BUCKETS_STORE);
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
      // onblocked: older connections are open; they close on versionchange, so just wait.
    });
    this.#db = opening;
    // A failed open is not kept: the next call tries again.
    opening.catch(() => {
      if (this.#db === opening) this.#db = null;
    });
    return opening;
  }

  /**
   * Runs `body(store, { done, guard })` in one transaction over the buckets store and resolves
   * with what it passed to `done` once the transaction has committed. Request callbacks go
   * through `guard`, so one that throws aborts the transaction with that error. Any failure
   * rejects, naming the call and the map.
   * @template T
   * @param {string} op
   * @param {string} map
   * @param {IDBTransactionMode} mode
   * @param {(store: IDBObjectStore, control: RunControl<T>) => void} body
   * @returns {Promise<T>}
   */
  async #run(op, map, mode, body) {
    let db;
    try {
      db = await this.#open();
    } catch (e) {
      throw failed(op, map, e);
    }
    return new Promise((resolve, reject) => {
      /** @type {T | undefined} */
      let result;
      /** @type {unknown} */
      let error = null;
      /** @type {IDBTransaction | undefined} */
      let tx;
      /** @param {unknown} e */
      const abort = (e) => {
        error ??= e;
        try {
          tx?.abort();
        } catch {
          // It has finished already.
        }
      };
      /** @param {() => void} fn */
      const guard = (fn) => () => {
        try {
          fn();
        } catch (e) {
          abort(e);
        }
      };
      try {
        tx = mode === 'readwrite'
          ? db.transaction(BUCKETS_STORE, mode, { durability: this.#durability })
          : db.transaction(BUCKETS_STORE, mode);
        tx.oncomplete = () => resolve(/** @type {T} */ (result)); // what `done` was given
        // A failed request aborts the transaction and is its error; a guarded throw is ours.
        tx.onabort = () => reject(failed(op, map, error ?? /** @type {IDBTransaction} */ (tx).error));
        body(tx.objectStore(BUCKETS_STORE), { done: (value) => (result = value), guard });
      } catch (e) {
        // e.g. InvalidStateError on a connection closed under us.
        abort(e);
        if (tx === undefined) reject(failed(op, map, e));
      }
    });
  }
}
