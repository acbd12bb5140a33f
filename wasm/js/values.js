// @ts-check
// Values between JavaScript and the module, as postcard bytes (the layout of onegrid-core's
// `Value`, and the reply shapes listed in wasm/src/interop.rs).
//
// Walking a JS value here, in JS, costs one call into wasm per write instead of one per property,
// which is what makes `set` and `setMany` fast. Every refusal names where the bad part was:
// `invalid value at $.items[3]: a function is not a value`.

import { MAX_DEPTH } from './constants.js';
import { OnegridError } from './errors.js';

/** @typedef {import('./onegrid.js').Value} Value */
/** @typedef {Array<string | number>} Path where a value's bad part is: keys and list indexes */
/**
 * A region to write into: a byte view, where the region starts, its size.
 * @typedef {{ buf: Uint8Array, at: number, capacity: number }} Region
 */

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const SMALL_INT = 2 ** 52; // below this, zigzag(n) is exact as a double
const OBJECT_PROTO = Object.prototype;
const INSERTION_SORT_MAX = 16; // objects with more keys than this are sorted with Array#sort
const LONE_IN_STRING = 'a string contains a lone surrogate (not valid Unicode)';
const LONE_IN_KEY = 'an object key contains a lone surrogate (not valid Unicode)';
const TAG = { NULL: 0, BOOL: 1, INT: 2, FLOAT: 3, STRING: 4, BYTES: 5, LIST: 6, MAP: 7 };

const utf8 = new TextEncoder();
// `ignoreBOM`: a leading U+FEFF is part of the string, not a byte-order mark to drop.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * True when `s` has no lone surrogate (so it has a UTF-8 form).
 * @type {(s: string) => boolean}
 */
export const isWellFormed = typeof String.prototype.isWellFormed === 'function'
  ? (s) => s.isWellFormed()
  : (s) => !LONE_SURROGATE.test(s);

/**
 * A short name for the type of `v`, for error messages.
 * @param {unknown} v
 * @returns {string}
 */
export function typeName(v) {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (Array.isArray(v)) return 'an array';
  const type = typeof v;
  return type === 'object' ? 'an object' : `a ${type}`;
}

/** @param {number} n */
function varintSize(n) {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5;
}

/** @param {Path} path */
function describePath(path) {
  const shown = 12; // a cyclic value would otherwise print 64 levels
  let out = '$';
  for (const part of path.slice(0, shown)) out += typeof part === 'number' ? `[${part}]` : `.${part}`;
  return path.length > shown ? `${out}...` : out;
}

/**
 * @param {Path} path
 * @param {string} reason
 */
function invalid(path, reason) {
  return new OnegridError('INVALID_VALUE', `invalid value at ${describePath(path)}: ${reason}`);
}

/**
 * Writes postcard into a growable region that `place` provides: the API gives each grid a writer
 * whose region is the module's own input buffer, so arguments are written straight into wasm
 * memory with no copy. Positions are offsets into `buf`.
 */
export class Writer {
  /**
   * `place(min)` returns `{ buf, at, capacity }`: a byte view, where the region starts, its size.
   * @param {(min: number, old: Uint8Array) => Region} place
   */
  constructor(place) {
    this.place = place;
    // Null until the first `reset()` attaches it, and no other method runs before that one.
    this.buf = /** @type {Uint8Array} */ (/** @type {unknown} */ (null));
    /** @type {DataView | null} */
    this.view = null;
    this.start = 0;
    this.end = 0;
    this.pos = 0;
    /** @type {Path} */
    this.path = [];
    /** @type {string[]} */
    this.keys = []; // object keys being sorted, a stack shared by nested objects (see `container`)
    this.top = 0;
    // True while a value is written (`writeValues`): user code (getters, proxy traps) runs then,
    // and a message started from there would overwrite the one being written.
    this.writing = false;
  }

  /** Starts a new message (re-attaching if the memory under the region moved). */
  reset() {
    if (this.writing) throw new OnegridError('INVALID_VALUE', IN_WRITE);
    if (this.buf === null || this.buf.length === 0) this.attach(0);
    this.pos = this.start;
    if (this.path.length !== 0) this.path.length = 0;
    this.top = 0; // a write that threw may have left keys on the stack
    if (this.keys.length > 256) this.keys.length = 0; // and a big object's keys
    return this;
  }

  /** Throws if the module's memory grew under the writer since it attached: bytes written into a
   * detached view are dropped without an error, so the module would read stale ones. */
  checkAttached() {
    if (this.buf.length === 0) throw new OnegridError('INVALID_VALUE', GREW_IN_WRITE);
  }

  /** @param {number} min */
  attach(min) {
    const { buf, at, capacity } = this.place(min, this.buf);
    if (buf !== this.buf) {
      this.buf = buf;
      this.view = null; // made on the first float
    }
    this.start = at;
    this.end = at + capacity;
  }

  /** Bytes written since `reset()`. */
  get length() {
    return this.pos - this.start;
  }

  /** @param {number} n */
  reserve(n) {
    if (this.pos + n <= this.end) return;
    this.checkAttached(); // what was written must still be there to be copied
    const written = this.buf.slice(this.start, this.pos); // `place` may move or detach the memory
    this.attach(written.length + n);
    this.buf.set(written, this.start);
    this.pos = this.start + written.length;
  }

  /** @param {number} b */
  u8(b) {
    this.reserve(1);
    this.buf[this.pos++] = b;
  }

  /**
   * An unsigned varint of a non-negative integer below 2^53.
   * @param {number} n
   */
  varint(n) {
    this.reserve(8);
    const buf = this.buf;
    while (n >= 0x80) {
      buf[this.pos++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    buf[this.pos++] = n;
  }

  /**
   * An unsigned varint of a BigInt in [0, 2^64).
   * @param {bigint} n
   */
  varintBig(n) {
    this.reserve(10);
    while (n >= 0x80n) {
      this.buf[this.pos++] = Number(n & 0x7fn) | 0x80;
      n >>= 7n;
    }
    this.buf[this.pos++] = Number(n);
  }

  /**
   * A signed 64-bit integer, zigzag-encoded as postcard does.
   * @param {number | bigint} n
   */
  int(n) {
    if (typeof n === 'number' && n > -SMALL_INT && n < SMALL_INT) {
      this.varint(n >= 0 ? n * 2 : -n * 2 - 1);
    } else {
      const b = BigInt(n);
      this.varintBig(b >= 0n ? b << 1n : ((-b) << 1n) - 1n);
    }
  }

  /**
   * A byte string as varint length + the bytes, after `tag` when one is given.
   * @param {Uint8Array} b
   * @param {number} [tag]
   */
  bytes(b, tag) {
    if (tag !== undefined) this.u8(tag);
    this.varint(b.length);
    this.reserve(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** @param {number} x */
  f64(x) {
    this.reserve(8);
    this.view ??= new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    this.view.setFloat64(this.pos, x, true);
    this.pos += 8;
  }

  /**
   * A string as varint length + UTF-8; throws `what` (a message) if it has a lone surrogate.
   * @param {string} s
   * @param {string | Error} what
   */
  str(s, what) {
    const len = s.length;
    // ASCII fast path: copy code units straight in after a length prefix of known size (for
    // ASCII the UTF-8 length is `len`, so the prefix is exactly varintSize(len)).
    const prefix = varintSize(len);
    this.reserve(prefix + len + 8);
    const start = this.pos;
    const buf = this.buf;
    let at = start + prefix;
    let i = 0;
    for (; i < len; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      buf[at++] = c;
    }
    if (i === len) {
      this.varint(len);
      this.pos = at;
      return;
    }
    if (!isWellFormed(s)) throw typeof what === 'string' ? invalid(this.path, what) : what;
    const bytes = utf8.encode(s);
    this.varint(bytes.length);
    this.reserve(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  /**
   * One value (the `Value` layout).
   * @param {unknown} v
   * @param {number} [depth]
   * @returns {void}
   */
  value(v, depth = 0) {
    switch (typeof v) {
      case 'string':
        this.u8(TAG.STRING);
        this.str(v, LONE_IN_STRING);
        return;
      case 'number':
        if (Number.isSafeInteger(v)) {
          this.u8(TAG.INT);
          this.int(v === 0 ? 0 : v); // -0 is 0, as JSON.stringify writes it
        } else if (Number.isFinite(v)) {
          this.u8(TAG.FLOAT);
          this.f64(v);
        } else {
          throw invalid(this.path, 'NaN and infinities are not allowed');
        }
        return;
      case 'boolean':
        this.u8(TAG.BOOL);
        this.u8(v ? 1 : 0);
        return;
      case 'bigint':
        if (v < I64_MIN || v > I64_MAX) throw invalid(this.path, 'a BigInt outside the signed 64-bit range');
        this.u8(TAG.INT);
        this.int(v);
        return;
      case 'undefined':
        throw invalid(this.path, 'undefined is not a value (use null)');
      case 'object':
        if (v === null) {
          this.u8(TAG.NULL);
          return;
        }
        return this.container(v, depth);
      default:
        throw invalid(this.path, `${typeName(v)} is not a value`);
    }
  }

  /**
   * @param {unknown[]} v
   * @param {number} depth
   */
  list(v, depth) {
    const path = this.path;
    const count = v.length; // written first, so the list must not change under the loop
    this.u8(TAG.LIST);
    this.varint(count);
    for (let i = 0; i < count; i++) {
      path.push(i);
      this.value(v[i], depth + 1);
      path.pop();
      // Checked after each item, whose getters may have changed the list, before reading on.
      if (v.length !== count) throw invalid(path, `the list changed while it was written (${count} -> ${v.length} items)`);
    }
  }

  /**
   * @param {object} v
   * @param {number} depth
   * @returns {void}
   */
  container(v, depth) {
    if (depth >= MAX_DEPTH) throw invalid(this.path, `nested deeper than ${MAX_DEPTH} levels (or cyclic)`);
    const path = this.path;
    if (Array.isArray(v)) return this.list(v, depth); // whatever its prototype
    const proto = Object.getPrototypeOf(v);
    if (proto !== OBJECT_PROTO && proto !== null) {
      if (v instanceof Uint8Array) return this.bytes(v, TAG.BYTES);
      throw invalid(path, 'only plain objects, arrays and Uint8Array can be stored');
    }
    // Keys go sorted, so the module finds the value canonical and stores the bytes as they are;
    // it sorts a map whose keys are out of order, which costs a second pass and two allocations.
    // Sorting by UTF-16 code unit matches the module's UTF-8 byte order except between surrogates
    // and U+E000..U+FFFF, where the module's sort still makes it right. `for...in` walks V8's
    // cached key list of the object's shape (`Object.keys` would allocate an array per object);
    // the prototype was checked above, but may still carry enumerable keys, hence `hasOwn`.
    // The keys are gathered into `this.keys` from `this.top` (a stack shared by nesting) and
    // sorted there: by insertion when there are few, by the engine's sort when there are many (an
    // insertion sort of thousands of keys would cost millions of comparisons).
    const keys = this.keys;
    const base = this.top;
    let end = base;
    // (`Object.prototype.hasOwnProperty.call(v, key)` here is 5% faster, but Node 20's V8 then
    // crashed the process in its deoptimizer, "unreachable code", in a benchmark run.)
    for (const key in v) {
      if (Object.hasOwn(v, key)) keys[end++] = key;
    }
    if (end - base <= INSERTION_SORT_MAX) {
      for (let i = base + 1; i < end; i++) {
        const key = keys[i];
        let at = i;
        while (at > base && keys[at - 1] > key) {
          keys[at] = keys[at - 1];
          at--;
        }
        keys[at] = key;
      }
    } else {
      const sorted = keys.slice(base, end).sort(); // strings: by UTF-16 code unit, as above
      for (let i = 0; i < sorted.length; i++) keys[base + i] = sorted[i];
    }
    this.top = end;
    this.u8(TAG.MAP);
    this.varint(end - base);
    for (let i = base; i < end; i++) {
      const key = keys[i];
      this.str(key, LONE_IN_KEY);
      path.push(key);
      this.value(/** @type {Record<string, unknown>} */ (v)[key], depth + 1);
      path.pop();
    }
    if (end - base > INSERTION_SORT_MAX) keys.length = base; // do not keep a big object's keys alive
    this.top = base;
  }
}

const KEY_CACHE_SLOTS = 256;
const KEY_CACHE_MAX_LEN = 24;
/** @type {Array<Uint8Array | undefined>} */
const keyCacheBytes = new Array(KEY_CACHE_SLOTS);
/** @type {string[]} */
const keyCacheText = new Array(KEY_CACHE_SLOTS);

/** Reads postcard written by the module: bytes `[pos, end)` of `buf`. A grid keeps one reader and
 * points it at each reply (`at`), so a read allocates no view. */
export class Reader {
  /**
   * @param {Uint8Array} bytes
   * @param {number} [pos]
   * @param {number} [end]
   */
  constructor(bytes, pos = 0, end = bytes.length) {
    this.at(bytes, pos, end);
    /** @type {DataView | null} */
    this.view = null; // a DataView of `buf`, made on the first float
  }

  /**
   * Points the reader at `buf[pos..end)`; returns it.
   * @param {Uint8Array} buf
   * @param {number} pos
   * @param {number} end
   * @returns {this}
   */
  at(buf, pos, end) {
    if (buf !== /** @type {{ buf?: Uint8Array }} */ (this).buf) this.view = null; // (unset when the constructor calls this)
    /** @type {Uint8Array} */
    this.buf = buf;
    /** @type {number} */
    this.pos = pos;
    /** @type {number} */
    this.end = end;
    return this;
  }

  u8() {
    if (this.pos >= this.end) throw new OnegridError('MALFORMED', 'onegrid: truncated reply from the module');
    return this.buf[this.pos++];
  }

  /** An unsigned varint as a Number (exact below 2^53). */
  varint() {
    let n = 0;
    let scale = 1;
    for (;;) {
      const b = this.u8();
      n += (b & 0x7f) * scale;
      if (b < 0x80) return n;
      scale *= 0x80;
    }
  }

  /** An unsigned varint as a BigInt (exact at any size). */
  varintBig() {
    let big = 0n;
    let shift = 0n;
    for (;;) {
      const b = this.u8();
      big |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return big;
      shift += 7n;
    }
  }

  /** A zigzag i64: a Number when it is a safe integer, else a BigInt. */
  int() {
    const start = this.pos;
    let z = this.varint();
    if (z <= Number.MAX_SAFE_INTEGER) return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
    this.pos = start;
    const big = this.varintBig();
    const n = (big >> 1n) ^ -(big & 1n);
    return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
  }

  f64() {
    if (this.pos + 8 > this.end) throw new OnegridError('MALFORMED', 'onegrid: truncated reply from the module');
    this.view ??= new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    const x = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return x;
  }

  str() {
    return this.text(this.varint());
  }

  /**
   * The next `len` bytes as UTF-8 text.
   * @param {number} len
   */
  text(len) {
    const end = this.pos + len;
    if (end > this.end) throw new OnegridError('MALFORMED', 'onegrid: truncated reply from the module');
    const buf = this.buf;
    if (len <= 32) {
      let s = '';
      let i = this.pos;
      for (; i < end; i++) {
        const c = buf[i];
        if (c >= 0x80) break;
        s += String.fromCharCode(c);
      }
      if (i === end) {
        this.pos = end;
        return s;
      }
    }
    const s = utf8Decoder.decode(buf.subarray(this.pos, end));
    this.pos = end;
    return s;
  }

  /** An object key: `str()`, but a short ASCII key comes from a small cache, so decoding many
   * objects of one shape makes no new key strings (and V8 finds them already internalized). */
  key() {
    const len = this.varint();
    const start = this.pos;
    const end = start + len;
    if (len > KEY_CACHE_MAX_LEN || end > this.end) return this.text(len);
    const buf = this.buf;
    let h = len;
    for (let i = start; i < end; i++) h = (h * 31 + buf[i]) | 0;
    const slot = h & (KEY_CACHE_SLOTS - 1);
    const cached = keyCacheBytes[slot];
    if (cached !== undefined && cached.length === len) {
      let same = true;
      for (let i = 0; i < len; i++) {
        if (cached[i] !== buf[start + i]) {
          same = false;
          break;
        }
      }
      if (same) {
        this.pos = end;
        return keyCacheText[slot];
      }
    }
    const key = this.text(len);
    keyCacheBytes[slot] = buf.slice(start, end);
    keyCacheText[slot] = key;
    return key;
  }

  /**
   * @template T
   * @param {(this: Reader) => T} read
   * @returns {T | undefined}
   */
  option(read) {
    return this.u8() === 1 ? read.call(this) : undefined;
  }

  /** A byte string, copied out (the module's memory may move under a view). */
  bytes() {
    const len = this.varint();
    if (this.pos + len > this.end) throw new OnegridError('MALFORMED', 'onegrid: truncated reply from the module');
    const out = this.buf.slice(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }

  /**
   * @template T
   * @param {(this: Reader) => T} read
   * @returns {T[]}
   */
  vec(read) {
    const n = this.varint();
    /** @type {T[]} */
    const out = new Array(n);
    for (let i = 0; i < n; i++) out[i] = read.call(this);
    return out;
  }

  /** @returns {Value} */
  value() {
    switch (this.u8()) {
      case TAG.NULL: return null;
      case TAG.BOOL: return this.u8() === 1;
      case TAG.INT: return this.int();
      case TAG.FLOAT: return this.f64();
      case TAG.STRING: return this.str();
      case TAG.BYTES: return this.bytes();
      case TAG.LIST: return this.vec(this.value);
      case TAG.MAP: {
        const n = this.varint();
        /** @type {{ [key: string]: Value }} */
        const out = {};
        for (let i = 0; i < n; i++) {
          const key = this.key();
          const value = this.value();
          if (key === '__proto__') {
            Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
          } else {
            out[key] = value;
          }
        }
        return out;
      }
      default: throw new OnegridError('MALFORMED', 'onegrid: unknown value tag in a reply from the module');
    }
  }
}

const KEY_ERROR = new OnegridError('INVALID_ARGUMENT', 'a key contains a lone surrogate (not valid Unicode)');
const IN_WRITE = "a value's getter or proxy read or wrote its grid while the value was being written (values must be plain data); nothing was stored";
const GREW_IN_WRITE = "a value's getter or proxy made the module's memory grow while the value was being written (values must be plain data); nothing was stored";

/**
 * Runs `write(w, a, b)`, which writes values (and so may run the caller's getters and proxy
 * traps), refusing any use of the same writer from them, and checks the bytes all landed. `write`
 * is a function made once, not a closure per call: that would be garbage on every `set`.
 * @template A, B
 * @param {Writer} w
 * @param {(w: Writer, a: A, b: B) => void} write
 * @param {A} a
 * @param {B} [b]
 */
function writeValues(w, write, a, b) {
  w.writing = true;
  try {
    write(w, a, /** @type {B} */ (b));
  } finally {
    w.writing = false;
  }
  w.checkAttached();
  return w;
}

/**
 * Writes a string already checked to be well formed; returns the writer.
 * @param {Writer} w
 * @param {string} text
 */
export function writeText(w, text) {
  w.reset().str(text, KEY_ERROR);
  return w;
}

/**
 * Writes `(key, value)`; returns the writer.
 * @param {Writer} w
 * @param {string} key
 * @param {unknown} value
 */
export function writePair(w, key, value) {
  w.reset().str(key, KEY_ERROR);
  return writeValues(w, writeValue, value);
}

/**
 * @param {Writer} w
 * @param {unknown} value
 */
function writeValue(w, value) {
  w.value(value);
}

/**
 * Writes `[[key, value], ...]`; `checkKey(key, what)` is called for a key that is not a well-formed
 * string and throws an error naming `what`. Returns the writer.
 * @param {Writer} w
 * @param {unknown[]} entries
 * @param {(key: unknown, what: string) => void} checkKey
 */
export function writeEntries(w, entries, checkKey) {
  w.reset().reserve(entries.length * 32); // a guess that saves most regrowth copies
  w.path.push('entries', 0);
  writeValues(w, writeEntryList, entries, checkKey);
  w.path.length = 0;
  return w;
}

/**
 * @param {Writer} w
 * @param {unknown[]} entries
 * @param {(key: unknown, what: string) => void} checkKey
 */
function writeEntryList(w, entries, checkKey) {
  const count = entries.length; // written first, so the array must not change under the loop
  w.varint(count);
  for (let i = 0; i < count; i++) {
    const pair = entries[i];
    if (!Array.isArray(pair) || pair.length !== 2) {
      throw new OnegridError('INVALID_ARGUMENT', `setMany(): entry ${i} is not a [key, value] pair`);
    }
    const key = pair[0]; // not destructured: that walks an iterator in unoptimized code
    const value = pair[1];
    // The message names the entry, so it is built only for a key that fails.
    if (typeof key !== 'string' || !isWellFormed(key)) checkKey(key, `the key of entry ${i}`);
    w.str(key, KEY_ERROR);
    w.path[1] = i; // the path reads $.entries[i]
    w.value(value);
  }
  if (entries.length !== count) {
    throw new OnegridError('INVALID_ARGUMENT', `setMany(): the array of entries changed while it was written (${count} -> ${entries.length} entries); nothing was stored`);
  }
}

/**
 * Decodes one value.
 * @param {Uint8Array} bytes
 */
export function decodeValue(bytes) {
  return new Reader(bytes).value();
}
