// Types of onegrid's storage adapters (storage.js; the contract is SPEC section 6).

/**
 * What a grid's storage manager persists through: opaque bytes (the postcard-encoded stored values)
 * under string keys, every call scoped by a map name. Implementations check their arguments and
 * copy the bytes before they first await, so callers may reuse their buffers at once.
 */
export interface StorageAdapter {
  /** Every key stored for `map`, in no particular order; `[]` for a map with nothing stored. */
  loadAllKeys(map: string): Promise<string[]>;
  /**
   * `[key, bytes]` for each distinct key of `keys` that is stored, in no particular order; keys
   * not stored are absent. The bytes are the caller's own: changing them changes neither storage
   * nor another result. They may be a view into a larger buffer (mind `byteOffset`).
   */
  loadAll(map: string, keys: string[]): Promise<Array<[string, Uint8Array]>>;
  /** Stores (or replaces) one value. */
  store(map: string, key: string, bytes: Uint8Array): Promise<void>;
  /** Stores (or replaces) every entry, atomically: all or none. A bad entry rejects before anything is stored. */
  storeAll(map: string, entries: Array<[string, Uint8Array]>): Promise<void>;
  /** Deletes one key; deleting an absent key is no error. */
  delete(map: string, key: string): Promise<void>;
  /** Deletes every key of `keys`, atomically; absent keys are ignored. */
  deleteAll(map: string, keys: string[]): Promise<void>;
}

// Each adapter class takes the contract's methods from `StorageAdapter` by declaration merging.

/** Storage in this process's memory: for tests, and for grids that need no persistence. */
export interface MemoryStorage extends StorageAdapter {}
export class MemoryStorage {
  constructor();
}

export interface IndexedDbStorageOptions {
  /** The database's name; default `'onegrid'`. */
  name?: string;
  /** The IndexedDB factory; default `globalThis.indexedDB`. */
  indexedDB?: IDBFactory;
  /** The IDBKeyRange class that goes with `indexedDB`; default `globalThis.IDBKeyRange`. */
  IDBKeyRange?: typeof IDBKeyRange;
  /** Durability of write transactions; default `'strict'` (a write resolves once it is on disk). */
  durability?: 'strict' | 'relaxed' | 'default';
}

/**
 * Storage in one IndexedDB database, opened on the first call. Failures reject with an
 * `OnegridError` whose code is `STORAGE`, whose message names the call and the map
 * (`IndexedDbStorage.storeAll(map "a") failed: ...`) and whose `cause` is IndexedDB's own error.
 */
export interface IndexedDbStorage extends StorageAdapter {}
export class IndexedDbStorage {
  constructor(options?: IndexedDbStorageOptions);
  /** The database's name. */
  readonly name: string;
  /** Deletes database `name`; close every adapter on it first. */
  static delete(name: string, indexedDB?: IDBFactory): Promise<void>;
  /** Closes the connection; the next call opens it again. */
  close(): Promise<void>;
}
