// @ts-check
// onegrid: what the storage adapters share: their argument checks (storage.js describes the contract).
//
// Arguments are checked, and bytes copied, before an adapter's first await: a caller may reuse its
// buffers as soon as the call returns, and a bad entry anywhere in a batch rejects before anything
// is written.

import { OnegridError } from './errors.js';
import { isWellFormed, typeName } from './values.js';

/**
 * The message prefix of a call: `storeAll(map "a")`.
 * @param {string} op
 * @param {unknown} map
 */
export function where(op, map) {
  return typeof map === 'string' ? `${op}(map ${JSON.stringify(map)})` : op;
}

/**
 * @param {unknown} v
 * @returns {v is Uint8Array}
 */
export function isBytes(v) {
  // The tag check also accepts a Uint8Array from another realm (an iframe, a vm context).
  return v instanceof Uint8Array || (ArrayBuffer.isView(v) && Object.prototype.toString.call(v) === '[object Uint8Array]');
}

// Names and keys must be Unicode (as every name and key of a grid is): a lone surrogate has no
// UTF-8 form, and IndexedDbStorage stores keys as UTF-8.
/**
 * @param {string} op
 * @param {unknown} map
 * @returns {asserts map is string}
 */
export function checkMap(op, map) {
  if (typeof map !== 'string') throw new OnegridError('INVALID_ARGUMENT', `${op}: map must be a string, not ${typeName(map)}`);
  if (!isWellFormed(map)) throw new OnegridError('INVALID_ARGUMENT', `${op}: map contains a lone surrogate (not valid Unicode)`);
}

/**
 * @param {string} op
 * @param {string} map
 * @param {unknown} key
 * @param {string} [what]
 * @returns {asserts key is string}
 */
export function checkKey(op, map, key, what = 'key') {
  if (typeof key !== 'string') throw new OnegridError('INVALID_ARGUMENT', `${where(op, map)}: ${what} must be a string, not ${typeName(key)}`);
  if (!isWellFormed(key)) throw new OnegridError('INVALID_ARGUMENT', `${where(op, map)}: ${what} contains a lone surrogate (not valid Unicode)`);
}

/**
 * A private, tight copy of `bytes`. Tight matters for IndexedDB: cloning a view stores its whole
 * underlying buffer (a Node Buffer is often a view into an 8 KiB pool).
 * @param {string} op
 * @param {string} map
 * @param {unknown} bytes
 * @param {string} [what]
 */
export function copyBytes(op, map, bytes, what = 'value') {
  if (!isBytes(bytes)) throw new OnegridError('INVALID_ARGUMENT', `${where(op, map)}: ${what} must be a Uint8Array, not ${typeName(bytes)}`);
  return new Uint8Array(bytes);
}

/**
 * Checks a key list; returns its distinct keys.
 * @param {string} op
 * @param {string} map
 * @param {unknown} keys
 * @returns {Set<string>}
 */
export function checkKeys(op, map, keys) {
  if (!Array.isArray(keys)) throw new OnegridError('INVALID_ARGUMENT', `${where(op, map)}: keys must be an array of strings, not ${typeName(keys)}`);
  for (let i = 0; i < keys.length; i++) checkKey(op, map, keys[i], `keys[${i}]`);
  return new Set(keys);
}

/**
 * Checks a `[key, bytes]` batch; returns `[key, copy]` pairs (the last one wins for a repeated key).
 * @param {string} op
 * @param {string} map
 * @param {unknown} entries
 * @returns {Array<[string, Uint8Array]>}
 */
export function checkEntries(op, map, entries) {
  if (!Array.isArray(entries)) {
    throw new OnegridError('INVALID_ARGUMENT', `${where(op, map)}: entries must be an array of [key, Uint8Array] pairs, not ${typeName(entries)}`);
  }
  /** @type {Array<[string, Uint8Array]>} */
  const out = new Array(entries.length);
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i];
    if (!Array.isArray(entry) || entry.length !== 2) {
      const what = Array.isArray(entry) ? `an array of ${entry.length}` : typeName(entry);
      throw new OnegridError('INVALID_ARGUMENT', `${where(op, map)}: entries[${i}] must be a [key, Uint8Array] pair, not ${what}`);
    }
    checkKey(op, map, entry[0], `entries[${i}][0] (the key)`);
    out[i] = [entry[0], copyBytes(op, map, entry[1], `entries[${i}][1] (the value of ${JSON.stringify(entry[0])})`)];
  }
  return out;
}
