// The storage adapter conformance suite (SPEC 6, wasm/js/storage.d.ts): the same cases run on
// MemoryStorage under node:test (storage-adapters.test.mjs) and on IndexedDbStorage in headless
// Chromium (browser/suite.mjs, driven by browser.test.mjs). So this file imports nothing: no
// node:assert, no package; its tiny assertions are below. Refusals are checked by their code (an
// OnegridError's `code`, wasm/js/errors.js), never by their message, except where a case's point
// is that the message names what was wrong.
//
//   adapterSuite(test, { fresh, reopen, dispose })
// - test(name, fn): registers one case; fn is async and fails by throwing.
// - fresh(): a new adapter over empty storage (may return a promise).
// - reopen(adapter): a new adapter over the same data as `adapter` (closing it if need be), or
//   null when the storage does not outlive its object (then the persistence case is left out).
// - dispose(adapter): optional, called after each case for every adapter it made.

/** The number of records of the large cases and of the timing. */
export const LARGE = 100_000;

// ---- assertions --------------------------------------------------------------------------------

function fail(message) {
  throw new Error(message);
}

function show(v) {
  if (v instanceof Uint8Array) return `Uint8Array[${v.length > 16 ? `${v.subarray(0, 16).join(',')},...` : v.join(',')}]`;
  return JSON.stringify(v);
}

function ok(cond, message) {
  if (!cond) fail(message);
}

function equal(actual, expected, what) {
  if (!Object.is(actual, expected)) fail(`${what}: expected ${show(expected)}, got ${show(actual)}`);
}

function sameBytes(actual, expected, what) {
  ok(actual instanceof Uint8Array, `${what}: expected a Uint8Array, got ${show(actual)}`);
  equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i]) fail(`${what}: byte ${i} is ${actual[i]}, expected ${expected[i]}`);
  }
}

/** Sorted by UTF-16 code units, as the keys of a Map, for order-free comparison. */
function sorted(keys) {
  return [...keys].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function sameKeys(actual, expected, what) {
  ok(Array.isArray(actual), `${what}: expected an array of keys, got ${show(actual)}`);
  const a = sorted(actual);
  const e = sorted(expected);
  if (a.length !== e.length || a.some((k, i) => k !== e[i])) {
    fail(`${what}: expected keys ${show(e.length > 20 ? `${e.length} keys` : e)}, got ${show(a.length > 20 ? `${a.length} keys` : a)}`);
  }
}

/** `entries` (a loadAll result) holds exactly the pairs of `expected` (a Map or pairs), in any order. */
function sameEntries(entries, expected, what) {
  const want = new Map(expected);
  ok(Array.isArray(entries), `${what}: expected an array of [key, bytes], got ${show(entries)}`);
  sameKeys(entries.map((e) => e[0]), [...want.keys()], `${what}: keys`);
  for (const [key, bytes] of entries) sameBytes(bytes, want.get(key), `${what}: value of ${show(key)}`);
}

/**
 * `run()` must return a promise (never throw at once) that rejects with an OnegridError of `code`
 * (checked by its name: this file cannot import the class). Returns the error.
 */
async function rejects(run, code, what) {
  let promise;
  try {
    promise = run();
  } catch (e) {
    fail(`${what}: threw at once instead of rejecting: ${e?.message ?? e}`);
  }
  ok(promise && typeof promise.then === 'function', `${what}: did not return a promise`);
  try {
    await promise;
  } catch (e) {
    ok(e instanceof Error && e.name === 'OnegridError', `${what}: rejected with ${show(String(e))}, expected an OnegridError ${code}`);
    equal(e.code, code, `${what}: the code (${show(e.message)})`);
    return e;
  }
  return fail(`${what}: resolved, expected a rejection with ${code}`);
}

/** `e`'s message matches `pattern`: for the cases whose point is that it names its input. */
function names(e, pattern, what) {
  ok(pattern.test(e.message), `${what}: the message names the argument (${pattern}), got ${show(e.message)}`);
}

// ---- data --------------------------------------------------------------------------------------

const text = new TextEncoder();
const bytesOf = (s) => text.encode(s);

/** `n` records of about 60 bytes, the same on every run: keys `r0`, `r1`, ...; values with zero bytes. */
export function makeRecords(n, seed = 1) {
  const out = new Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    const value = new Uint8Array(52 + (i % 17));
    for (let j = 0; j < value.length; j++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      value[j] = j % 7 === 0 ? 0 : x & 0xff;
    }
    out[i] = [`r${i}`, value];
  }
  return out;
}

/**
 * Times storing `n` records in one storeAll and loading them back as a load does (loadAllKeys,
 * then loadAll of those keys); checks the count. Returns milliseconds: `{ storeAll, loadAllKeys,
 * loadAll, load }` (load = the two loads together).
 */
export async function timeLoad(adapter, n = LARGE, map = 'timed') {
  const records = makeRecords(n, 7);
  let t = performance.now();
  await adapter.storeAll(map, records);
  const storeAll = performance.now() - t;
  t = performance.now();
  const keys = await adapter.loadAllKeys(map);
  const loadAllKeys = performance.now() - t;
  const loaded = await adapter.loadAll(map, keys);
  const load = performance.now() - t;
  equal(loaded.length, n, 'records loaded');
  return { storeAll, loadAllKeys, loadAll: load - loadAllKeys, load };
}

/** Keys that sort differently by code unit and by code point, look alike, or name JS builtins. */
const ODD_KEYS = [
  '', ' ', 'a', 'A', 'a"b', "it's", 'back\\slash', '😀', '👩‍👩‍👧', '𝄞', '\uffff', '\ue000', 'é', 'e\u0301',
  'a\u0000', 'a\u0000b', '\u0000', 'null', 'undefined', '[]', '__proto__', 'constructor', 'toString',
  'hasOwnProperty', '0', '00', '-1', 'line\nbreak', 'tab\t', 'x'.repeat(2000),
  // A leading U+FEFF is a character, not a byte-order mark to drop when decoding.
  '\ufeff', '\ufeffk', '\ufeff\ufeff', '\ufeff😀', '\ufeff' + 'y'.repeat(2000),
];

/** Map names that are prefixes of each other or differ only after a zero. */
const ODD_MAPS = ['a', 'ab', 'a\u0000', 'a\u0000b', 'a\u0001', '', '😀', 'a b', 'A', '\ufeff', '\ufeffa'];

// ---- the cases ---------------------------------------------------------------------------------

export function adapterSuite(test, { fresh, reopen = null, dispose = null }) {
  /** Registers a case that gets a fresh adapter and a `reopen` that tracks what it opened. */
  const it = (name, body) => test(name, async () => {
    const made = [await fresh()];
    const again = async (adapter) => {
      const next = await reopen(adapter);
      made.push(next);
      return next;
    };
    try {
      await body(made[0], again);
    } finally {
      if (dispose) for (const adapter of made) await dispose(adapter);
    }
  });

  it('a map with nothing stored has no keys and loads nothing', async (s) => {
    sameKeys(await s.loadAllKeys('nothing'), [], 'loadAllKeys of an unknown map');
    sameEntries(await s.loadAll('nothing', ['a', 'b']), [], 'loadAll of an unknown map');
    await s.store('other', 'a', bytesOf('1'));
    sameKeys(await s.loadAllKeys('nothing'), [], 'loadAllKeys after another map was written');
  });

  it('missing keys are absent from loadAll, and loadAll([]) is empty', async (s) => {
    await s.storeAll('m', [['a', bytesOf('A')], ['b', bytesOf('B')]]);
    sameEntries(await s.loadAll('m', ['x', 'a', 'y', 'b', 'z']), [['a', bytesOf('A')], ['b', bytesOf('B')]], 'loadAll');
    sameEntries(await s.loadAll('m', ['x']), [], 'loadAll of only missing keys');
    sameEntries(await s.loadAll('m', []), [], 'loadAll of no keys');
    sameEntries(await s.loadAll('m', ['a', 'a']), [['a', bytesOf('A')]], 'loadAll of a repeated key');
  });

  it('maps are isolated from each other', async (s) => {
    await s.store('one', 'k', bytesOf('in one'));
    await s.store('two', 'k', bytesOf('in two'));
    await s.storeAll('two', [['only-two', bytesOf('2')]]);
    sameKeys(await s.loadAllKeys('one'), ['k'], 'keys of one');
    sameKeys(await s.loadAllKeys('two'), ['k', 'only-two'], 'keys of two');
    sameEntries(await s.loadAll('one', ['k', 'only-two']), [['k', bytesOf('in one')]], 'one');
    await s.delete('one', 'k');
    sameEntries(await s.loadAll('two', ['k']), [['k', bytesOf('in two')]], 'two after a delete in one');
    await s.deleteAll('two', ['only-two']);
    sameKeys(await s.loadAllKeys('one'), [], 'keys of one');
    sameKeys(await s.loadAllKeys('two'), ['k'], 'keys of two after deleteAll');
  });

  it('store replaces the value of a key it stored before', async (s) => {
    await s.store('m', 'k', bytesOf('first'));
    await s.store('m', 'k', bytesOf('second, longer'));
    sameKeys(await s.loadAllKeys('m'), ['k'], 'keys');
    sameEntries(await s.loadAll('m', ['k']), [['k', bytesOf('second, longer')]], 'after two stores');
    await s.store('m', 'k', bytesOf('3'));
    sameEntries(await s.loadAll('m', ['k']), [['k', bytesOf('3')]], 'after a shorter one');
  });

  it('storeAll replaces existing keys and adds new ones', async (s) => {
    await s.storeAll('m', [['a', bytesOf('a1')], ['b', bytesOf('b1')], ['c', bytesOf('c1')]]);
    await s.storeAll('m', [['b', bytesOf('b2')], ['d', bytesOf('d2')], ['a', bytesOf('a2')]]);
    sameEntries(await s.loadAll('m', ['a', 'b', 'c', 'd']),
      [['a', bytesOf('a2')], ['b', bytesOf('b2')], ['c', bytesOf('c1')], ['d', bytesOf('d2')]], 'after the second storeAll');
    await s.storeAll('m', []);
    sameKeys(await s.loadAllKeys('m'), ['a', 'b', 'c', 'd'], 'keys after an empty storeAll');
    await s.storeAll('m', [['e', bytesOf('e1')], ['e', bytesOf('e2')]]);
    sameEntries(await s.loadAll('m', ['e']), [['e', bytesOf('e2')]], 'a key twice in one batch: the last wins');
  });

  it('store and delete one key; deleting an absent key is no error', async (s) => {
    await s.store('m', 'k', bytesOf('v'));
    await s.store('m', 'keep', bytesOf('w'));
    await s.delete('m', 'k');
    sameKeys(await s.loadAllKeys('m'), ['keep'], 'keys after delete');
    sameEntries(await s.loadAll('m', ['k', 'keep']), [['keep', bytesOf('w')]], 'loadAll after delete');
    await s.delete('m', 'k');
    await s.delete('m', 'never');
    await s.delete('no such map', 'k');
    await s.delete('m', 'keep');
    sameKeys(await s.loadAllKeys('m'), [], 'keys once all are deleted');
    await s.store('m', 'k', bytesOf('back'));
    sameEntries(await s.loadAll('m', ['k']), [['k', bytesOf('back')]], 'stored again after delete');
  });

  it('deleteAll deletes the keys given and ignores absent ones', async (s) => {
    await s.storeAll('m', [['a', bytesOf('1')], ['b', bytesOf('2')], ['c', bytesOf('3')], ['d', bytesOf('4')]]);
    await s.deleteAll('m', ['a', 'zz', 'c', 'a', 'missing']);
    sameKeys(await s.loadAllKeys('m'), ['b', 'd'], 'keys after deleteAll');
    await s.deleteAll('m', []);
    await s.deleteAll('m', ['zz']);
    await s.deleteAll('no such map', ['a', 'b']);
    sameEntries(await s.loadAll('m', ['a', 'b', 'c', 'd']), [['b', bytesOf('2')], ['d', bytesOf('4')]], 'after more deleteAlls');
    await s.deleteAll('m', ['b', 'd']);
    sameKeys(await s.loadAllKeys('m'), [], 'keys once all are deleted');
  });

  it(`a batch of ${LARGE} records in one storeAll comes back byte for byte`, async (s) => {
    const records = makeRecords(LARGE);
    await s.store('large', 'r5', bytesOf('replaced by the batch'));
    await s.storeAll('large', records);
    const keys = await s.loadAllKeys('large');
    sameKeys(keys, records.map((r) => r[0]), 'all keys');
    sameEntries(await s.loadAll('large', keys), records, 'all values');
    // A few keys of a big map, and a mix of present and missing ones.
    sameEntries(await s.loadAll('large', ['r0', 'r99999', 'r100000', 'r77']),
      [records[0], records[99999], records[77]], 'a few values');
    const half = records.filter((_, i) => i % 2 === 0);
    sameEntries(await s.loadAll('large', half.map((r) => r[0]).concat(['nope'])), half, 'every other value');
    // Replace some, delete half: every other record must stay as it was.
    const replaced = records.slice(0, 1000).map(([k]) => [k, bytesOf(`new ${k}`)]);
    await s.storeAll('large', replaced);
    await s.store('large', 'r99998', new Uint8Array(0));
    await s.deleteAll('large', records.slice(LARGE / 2).map((r) => r[0]).filter((k) => k !== 'r99998'));
    const left = [...replaced, ...records.slice(1000, LARGE / 2), ['r99998', new Uint8Array(0)]];
    const keysLeft = await s.loadAllKeys('large');
    sameKeys(keysLeft, left.map((r) => r[0]), 'keys after replacing some and deleting half');
    sameEntries(await s.loadAll('large', keysLeft), left, 'values after replacing some and deleting half');
  });

  it('keys and map names in any Unicode, prefixes of each other included', async (s) => {
    for (const [m, map] of ODD_MAPS.entries()) {
      await s.storeAll(map, ODD_KEYS.map((key, k) => [key, bytesOf(`${m}/${k}`)]));
    }
    await s.store('a\u0000', 'only in a\\0', bytesOf('x'));
    for (const [m, map] of ODD_MAPS.entries()) {
      const expected = ODD_KEYS.map((key, k) => [key, bytesOf(`${m}/${k}`)]);
      if (map === 'a\u0000') expected.push(['only in a\\0', bytesOf('x')]);
      const keys = await s.loadAllKeys(map);
      sameKeys(keys, expected.map((e) => e[0]), `keys of map ${show(map)}`);
      sameEntries(await s.loadAll(map, keys), expected, `map ${show(map)}`);
    }
    sameKeys(await s.loadAllKeys('a\u0000c'), [], 'a map between two stored ones');
    await s.deleteAll('ab', ODD_KEYS);
    sameKeys(await s.loadAllKeys('ab'), [], 'ab after deleteAll');
    equal((await s.loadAllKeys('a')).length, ODD_KEYS.length, 'a is untouched by deletes in ab');
    equal((await s.loadAllKeys('a\u0000b')).length, ODD_KEYS.length, 'a\\0b is untouched by deletes in ab');
  });

  it('values are any bytes: zeros, all 256 byte values, empty, a view into a larger buffer', async (s) => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    const big = new Uint8Array(4096).fill(0xee);
    big.set([1, 0, 2], 1000);
    const view = big.subarray(1000, 1003);
    const values = [['zeros', new Uint8Array(9)], ['all', all], ['empty', new Uint8Array(0)], ['nul', Uint8Array.of(0)]];
    await s.storeAll('bin', values);
    await s.store('bin', 'view', view);
    await s.store('bin', 'empty-single', new Uint8Array(0));
    const expected = [...values, ['view', Uint8Array.of(1, 0, 2)], ['empty-single', new Uint8Array(0)]];
    sameEntries(await s.loadAll('bin', expected.map((e) => e[0])), expected, 'values');
    const [[, back]] = await s.loadAll('bin', ['view']);
    equal(back.byteLength, 3, 'a stored view is only its own bytes');
  });

  it('storeAll with one bad entry rejects with INVALID_ARGUMENT and stores nothing', async (s) => {
    await s.storeAll('m', [['a', bytesOf('a0')], ['b', bytesOf('b0')]]);
    const good = (i) => [`new${i}`, bytesOf(`n${i}`)];
    const batches = [
      ['a value that is a string', [['a', bytesOf('a1')], good(1), ['c', 'not bytes']]],
      ['a value that is an array', [['a', bytesOf('a1')], ['b', [1, 2]], good(2)]],
      ['a missing value', [good(3), ['a', bytesOf('a1')], ['b']]],
      ['a key that is a number', [good(4), [7, bytesOf('x')], ['a', bytesOf('a1')]]],
      ['an entry that is null', [['a', bytesOf('a1')], null]],
      ['an entry that is a bare key', [['a', bytesOf('a1')], 'b']],
      ['a value that is an ArrayBuffer', [['a', bytesOf('a1')], ['b', new ArrayBuffer(2)]]],
    ];
    for (const [what, batch] of batches) {
      await rejects(() => s.storeAll('m', batch), 'INVALID_ARGUMENT', what);
      await rejects(() => s.storeAll('fresh-map', batch), 'INVALID_ARGUMENT', `${what}, into an empty map`);
    }
    await rejects(() => s.storeAll('m', { a: bytesOf('x') }), 'INVALID_ARGUMENT', 'entries as an object');
    const bad = [...makeRecords(1000), ['a', bytesOf('a1')], ['last', 'bad']];
    await rejects(() => s.storeAll('m', bad), 'INVALID_ARGUMENT', 'a large batch with a bad last entry');
    sameKeys(await s.loadAllKeys('m'), ['a', 'b'], 'keys after the refused batches');
    sameEntries(await s.loadAll('m', ['a', 'b']), [['a', bytesOf('a0')], ['b', bytesOf('b0')]], 'values after the refused batches');
    sameKeys(await s.loadAllKeys('fresh-map'), [], 'the map refused batches were aimed at');
  });

  it('a map name or key with a lone surrogate is refused with INVALID_ARGUMENT', async (s) => {
    const b = bytesOf('v');
    await rejects(() => s.store('m', 'a\uD800', b), 'INVALID_ARGUMENT', 'store of a lone high surrogate');
    await rejects(() => s.store('m', '\uDC00', b), 'INVALID_ARGUMENT', 'store of a lone low surrogate');
    await rejects(() => s.store('\uD83D', 'k', b), 'INVALID_ARGUMENT', 'a map name with a lone surrogate');
    await rejects(() => s.storeAll('m', [['ok', b], ['\uDE00\uD83D', b]]), 'INVALID_ARGUMENT', 'storeAll with one such key');
    await rejects(() => s.loadAll('m', ['ok', '\uD800']), 'INVALID_ARGUMENT', 'loadAll of such a key');
    await rejects(() => s.deleteAll('m', ['\uD800']), 'INVALID_ARGUMENT', 'deleteAll of such a key');
    await rejects(() => s.loadAllKeys('\uD800'), 'INVALID_ARGUMENT', 'loadAllKeys of such a map');
    sameKeys(await s.loadAllKeys('m'), [], 'nothing was stored');
    await s.store('m', '\uD83D\uDE00', b);
    sameEntries(await s.loadAll('m', ['😀']), [['😀', b]], 'a surrogate pair is fine');
  });

  it('bad arguments reject with INVALID_ARGUMENT naming the argument', async (s) => {
    const b = bytesOf('v');
    const cases = [
      ['loadAllKeys(1)', () => s.loadAllKeys(1), /\bmap\b/],
      ['loadAllKeys()', () => s.loadAllKeys(), /\bmap\b/],
      ['loadAll with a string for keys', () => s.loadAll('m', 'k'), /\bkeys\b/],
      ['loadAll with a null key', () => s.loadAll('m', ['k', null]), /\bkeys\[1\]/],
      ['loadAll(null)', () => s.loadAll(null, ['k']), /\bmap\b/],
      ['store of a string', () => s.store('m', 'k', 'v'), /\bvalue\b/],
      ['store of nothing', () => s.store('m', 'k'), /\bvalue\b/],
      ['store of a Uint16Array', () => s.store('m', 'k', new Uint16Array(2)), /\bvalue\b/],
      ['store with a number key', () => s.store('m', 5, b), /\bkey\b/],
      ['store with an object map', () => s.store({}, 'k', b), /\bmap\b/],
      ['storeAll()', () => s.storeAll('m'), /\bentries\b/],
      ['delete with a number key', () => s.delete('m', 1), /\bkey\b/],
      ['delete with a number map', () => s.delete(1, 'k'), /\bmap\b/],
      ['deleteAll with a string', () => s.deleteAll('m', 'k'), /\bkeys\b/],
      ['deleteAll with a number key', () => s.deleteAll('m', ['a', 2]), /\bkeys\[1\]/],
    ];
    for (const [what, run, argument] of cases) names(await rejects(run, 'INVALID_ARGUMENT', what), argument, what);
    sameKeys(await s.loadAllKeys('m'), [], 'nothing was stored');
  });

  it('values are copied in and out: neither side sees the other mutate', async (s) => {
    const buf = bytesOf('original');
    // Mutated right after the call returns, before the write could have happened.
    const stored = s.store('m', 'k', buf);
    buf.fill(0x21);
    await stored;
    const batch = [['b', bytesOf('batch')]];
    const storedAll = s.storeAll('m', batch);
    batch[0][1].fill(0x21);
    batch[0] = ['b', bytesOf('swapped')];
    await storedAll;
    const first = await s.loadAll('m', ['k', 'b']);
    sameEntries(first, [['k', bytesOf('original')], ['b', bytesOf('batch')]], 'after mutating the inputs');
    for (const [, bytes] of first) bytes.fill(0);
    const second = await s.loadAll('m', ['k', 'b']);
    sameEntries(second, [['k', bytesOf('original')], ['b', bytesOf('batch')]], 'after mutating a result');
    ok(second[0][1] !== first[0][1] && second[0][1].buffer !== first[0][1].buffer, 'two loads share a buffer');
    const keys = await s.loadAllKeys('m');
    keys.push('pushed');
    sameKeys(await s.loadAllKeys('m'), ['k', 'b'], 'after mutating a key list');
  });

  it('calls made together all take effect', async (s) => {
    const records = makeRecords(200, 3);
    await Promise.all([
      ...records.slice(0, 100).map(([k, v]) => s.store('m', k, v)),
      s.storeAll('m', records.slice(100)),
      s.storeAll('other', records.slice(0, 10)),
      s.loadAllKeys('m'),
    ]);
    sameEntries(await s.loadAll('m', records.map((r) => r[0])), records, 'every value');
    await Promise.all([s.delete('m', 'r0'), s.deleteAll('m', ['r1', 'r2']), s.deleteAll('other', ['r3'])]);
    equal((await s.loadAllKeys('m')).length, 197, 'keys left');
    equal((await s.loadAllKeys('other')).length, 9, 'keys left in other');
  });

  if (reopen) {
    it('data survives closing and reopening the storage', async (s, again) => {
      const records = makeRecords(500, 5);
      await s.storeAll('p', records);
      await s.store('p', 'single', Uint8Array.of(0, 1, 0));
      await s.store('q', '😀', new Uint8Array(0));
      await s.delete('p', 'r0');
      await s.deleteAll('p', ['r1', 'r2', 'absent']);
      const expected = [...records.slice(3), ['single', Uint8Array.of(0, 1, 0)]];
      const t = await again(s);
      const keys = await t.loadAllKeys('p');
      sameKeys(keys, expected.map((e) => e[0]), 'keys after reopening');
      sameEntries(await t.loadAll('p', keys), expected, 'values after reopening');
      sameEntries(await t.loadAll('q', ['😀']), [['😀', new Uint8Array(0)]], 'another map after reopening');
      await t.store('p', 'r0', bytesOf('written after reopening'));
      const u = await again(t);
      sameEntries(await u.loadAll('p', ['r0']), [['r0', bytesOf('written after reopening')]], 'after a second reopen');
    });
  }
}
