// @ts-check
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
//
// One module per adapter (memory-storage.js, indexeddb-storage.js; the argument checks they share
// in storage-checks.js); this one gathers them, as the package's `onegrid/storage`.

export { MemoryStorage } from './memory-storage.js';
export { IndexedDbStorage } from './indexeddb-storage.js';
