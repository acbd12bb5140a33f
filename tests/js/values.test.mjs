// Values between JavaScript and onegrid (SPEC section 7): what round-trips exactly, through every
// read path, and what is refused, with an Error that says what was wrong and no change to the map.
//
// Run: ONEGRID_PKG=/path/to/pkg node --test tests/js/*.test.mjs

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { OnegridError, T0, Writer, assertRefused, makeGrid, throwsError } from './load.mjs';

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

/** `depth` arrays around `inner`. */
function nested(depth, inner = 1) {
  let v = inner;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

/** `depth` objects around `inner`, each under key `k`. */
function nestedObjects(depth, inner = 1) {
  let v = inner;
  for (let i = 0; i < depth; i++) v = { k: v };
  return v;
}

/**
 * Every way a value comes back: LWW get, getRecord, entries and change events; OR get, entries and
 * change events; and the same after a snapshot is imported into another grid.
 */
function readBackEverywhere(value) {
  const { grid } = makeGrid('a');
  const lww = grid.getMap('m');
  const or = grid.getORMap('o');
  const events = [];
  lww.subscribe((c) => events.push(c.value));
  or.subscribe((c) => events.push(c.values[0]));
  lww.set('k', value);
  or.add('k', value);
  const other = makeGrid('b').grid;
  other.importMap('m', grid.exportMap('m'));
  other.importMap('o', grid.exportMap('o'));
  return [
    ['lww.get', lww.get('k')],
    ['lww.getRecord', lww.getRecord('k').value],
    ['lww.entries', lww.entries()[0][1]],
    ['lww event', events[0]],
    ['or.get', or.get('k')[0]],
    ['or.entries', or.entries()[0][1][0]],
    ['or event', events[1]],
    ['imported lww.get', other.getMap('m').get('k')],
    ['imported or.get', other.getORMap('o').get('k')[0]],
  ];
}

/** Asserts `value` comes back as `expected` (default: itself) by every read path. */
function assertRoundTrip(value, expected = value) {
  for (const [path, got] of readBackEverywhere(value)) {
    assert.deepStrictEqual(got, expected, `via ${path}`);
    if (typeof expected === 'number') assert.ok(Object.is(got, expected), `via ${path}: ${got} is not ${expected}`);
  }
}

describe('values round trip exactly', () => {
  const cases = [
    ['null', null],
    ['true', true],
    ['false', false],
    ['zero', 0],
    ['small integers', 42],
    ['negative integers', -7],
    ['2^31 and beyond', 2 ** 31],
    ['2^32 + 1', 2 ** 32 + 1],
    ['2^52', 2 ** 52],
    ['2^52 + 1', 2 ** 52 + 1],
    ['-(2^52) - 1', -(2 ** 52) - 1],
    ['MAX_SAFE_INTEGER', Number.MAX_SAFE_INTEGER],
    ['MIN_SAFE_INTEGER', Number.MIN_SAFE_INTEGER],
    ['0.1', 0.1],
    ['-1.5', -1.5],
    ['a tiny float', -1.5e-300],
    ['the smallest denormal', 5e-324],
    ['MAX_VALUE', Number.MAX_VALUE],
    ['1e21', 1e21],
    ['2^53 as a number (a float, not a safe integer)', 2 ** 53],
    ['2^53 + 2 as a number', 2 ** 53 + 2],
    ['-(2^60) as a number', -(2 ** 60)],
    ['2^60 as a BigInt', 2n ** 60n],
    ['-(2^60) as a BigInt', -(2n ** 60n)],
    ['2^53 as a BigInt', 2n ** 53n],
    ['-(2^53) - 1n as a BigInt', -(2n ** 53n) - 1n],
    ['i64 max', I64_MAX],
    ['i64 min', I64_MIN],
    ['i64 min + 1', I64_MIN + 1n],
    ['the empty string', ''],
    ['ASCII', 'hello, world'],
    ['Latin-1 and CJK', 'café – 東京'],
    ['emoji with ZWJ sequences', '😀👩‍👩‍👧🏳️‍🌈'],
    ['non-BMP characters', '𝄞𐐷𠀋'],
    ['a long ASCII prefix then non-ASCII', `${'a'.repeat(40)}😀`],
    ['control characters and NUL', '\u0000\u0001\n\t\u007f\u2028'],
    ['U+FFFF and U+FFFD', '\uFFFF\uFFFD'],
    ['a string of 200 kB', 'x😀'.repeat(70_000)],
    ['empty bytes', new Uint8Array(0)],
    ['bytes', Uint8Array.of(0, 1, 127, 128, 255)],
    ['1 MB of bytes', Uint8Array.from({ length: 1 << 20 }, (_, i) => (i * 31) & 255)],
    ['an empty array', []],
    ['an empty object', {}],
    ['nested arrays and objects', { a: [1, [2, [3, { b: [true, null, 'x'] }]]], c: { d: { e: [] } } }],
    ['mixed values in an array', [null, false, 1, 1.5, 2n ** 62n, 's', Uint8Array.of(9), [], {}]],
    ['objects with unusual keys', { '': 1, ' ': 2, 'a.b': 3, '$': 4, '😀': 5, constructor: 6, toString: 7, '0': 8 }],
    ['64 levels of arrays', nested(64)],
    ['64 levels of objects', nestedObjects(64)],
  ];
  for (const [name, value] of cases) {
    test(name, () => assertRoundTrip(value));
  }

  test('-0 comes back as 0 (as JSON writes it)', () => {
    assertRoundTrip(-0, 0);
    assertRoundTrip([-0, { z: -0 }], [0, { z: 0 }]);
  });

  test('a BigInt within the safe range comes back as a number', () => {
    assertRoundTrip(5n, 5);
    assertRoundTrip(-5n, -5);
    assertRoundTrip(0n, 0);
    assertRoundTrip(2n ** 53n - 1n, Number.MAX_SAFE_INTEGER);
    assertRoundTrip(-(2n ** 53n) + 1n, Number.MIN_SAFE_INTEGER);
  });

  test('BigInts beyond 2^53 come back as BigInt, numbers beyond 2^53 as numbers', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    map.set('big', 2n ** 60n);
    map.set('num', 2 ** 53);
    assert.equal(typeof map.get('big'), 'bigint');
    assert.equal(map.get('big'), 2n ** 60n);
    assert.equal(typeof map.get('num'), 'number');
    assert.equal(map.get('num'), 2 ** 53);
  });

  test('bytes come back as a plain Uint8Array with the same bytes', () => {
    for (const input of [Uint8Array.of(1, 2, 3), Buffer.from([1, 2, 3]), Uint8Array.of(0, 1, 2, 3, 4).subarray(1, 4)]) {
      for (const [path, got] of readBackEverywhere(input)) {
        assert.equal(Object.getPrototypeOf(got), Uint8Array.prototype, `via ${path}`);
        assert.deepStrictEqual([...got], [1, 2, 3], `via ${path}`);
      }
    }
  });

  test('a returned value is a copy: changing it changes nothing stored', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    const input = { list: [1, 2], bytes: Uint8Array.of(1) };
    map.set('k', input);
    input.list.push(3);
    input.bytes[0] = 99;
    const got = map.get('k');
    assert.deepStrictEqual(got, { list: [1, 2], bytes: Uint8Array.of(1) });
    got.list.push(4);
    got.bytes[0] = 42;
    assert.deepStrictEqual(map.get('k'), { list: [1, 2], bytes: Uint8Array.of(1) });
  });

  test('objects come back with their keys whatever the key order written', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    map.set('k', { b: 1, a: { d: 2, c: 3 } });
    assert.deepStrictEqual(map.get('k'), { a: { c: 3, d: 2 }, b: 1 });
  });

  test('object keys are written in the canonical order whatever the order written', () => {
    // The writer sorts keys so the module can keep the bytes as they are; the same value with its
    // keys in any order must give the same bytes, nested objects and non-ASCII keys included.
    const bytesOf = (value) => {
      const buf = new Uint8Array(1 << 16);
      const w = new Writer(() => ({ buf, at: 0, capacity: buf.length }));
      w.reset().value(value);
      return buf.slice(0, w.length);
    };
    const sorted = { a: [{ x: 1, y: 2 }], b: { c: 3, d: 4 }, z: 0, é: 'e', '\u{1F600}': 1 };
    const shuffled = { '\u{1F600}': 1, é: 'e', z: 0, b: { d: 4, c: 3 }, a: [{ y: 2, x: 1 }] };
    assert.deepStrictEqual(bytesOf(shuffled), bytesOf(sorted));
    const text = new TextDecoder().decode(bytesOf(shuffled));
    const order = ['a', 'x', 'y', 'b', 'c', 'd', 'z', 'é', '\u{1F600}'].map((k) => text.indexOf(k));
    assert.deepStrictEqual(order, [...order].sort((p, q) => p - q), 'keys in UTF-8 byte order');
    // An object with many keys is sorted another way (not by insertion): the same rule holds.
    const names = Array.from({ length: 300 }, (_, i) => `k${String(i).padStart(3, '0')}`);
    const forward = Object.fromEntries(names.map((k, i) => [k, i]));
    const backward = Object.fromEntries([...names].reverse().map((k) => [k, forward[k]]));
    assert.deepStrictEqual(bytesOf(backward), bytesOf(forward));
  });

  test('enumerable keys inherited from Object.prototype are not stored', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    Object.defineProperty(Object.prototype, 'inherited', { value: 1, enumerable: true, configurable: true });
    try {
      map.set('k', { own: 1 });
    } finally {
      delete Object.prototype.inherited;
    }
    assert.deepStrictEqual(Object.keys(map.get('k')), ['own']);
  });

  test('a write refused inside a nested object leaves the next write whole', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    throwsError(() => map.set('bad', { a: 1, b: { c: 2, d: undefined } }), 'INVALID_VALUE');
    map.set('k', { b: 1, a: 2 });
    assert.deepStrictEqual(map.get('k'), { a: 2, b: 1 });
    assert.equal(map.get('bad'), undefined);
  });

  test('objects without a prototype are stored as plain objects', () => {
    const bare = Object.create(null);
    bare.x = 1;
    assertRoundTrip(bare, { x: 1 });
  });

  test('an own "__proto__" key round-trips without prototype pollution', () => {
    const input = JSON.parse('{"__proto__": {"polluted": "yes"}, "a": 1, "nested": [{"__proto__": 2}]}');
    assert.ok(Object.hasOwn(input, '__proto__'));
    for (const [path, got] of readBackEverywhere(input)) {
      assert.equal(Object.getPrototypeOf(got), Object.prototype, `via ${path}`);
      assert.ok(Object.hasOwn(got, '__proto__'), `via ${path}`);
      assert.deepStrictEqual(Object.getOwnPropertyDescriptor(got, '__proto__').value, { polluted: 'yes' }, `via ${path}`);
      assert.equal(got.polluted, undefined, `via ${path}`);
      assert.equal(got.a, 1, `via ${path}`);
      assert.deepStrictEqual(Object.keys(got).sort(), ['__proto__', 'a', 'nested'], `via ${path}`);
      const inner = got.nested[0];
      assert.equal(Object.getPrototypeOf(inner), Object.prototype, `via ${path}`);
      assert.equal(Object.getOwnPropertyDescriptor(inner, '__proto__').value, 2, `via ${path}`);
      assert.deepStrictEqual(got, input, `via ${path}`);
    }
    assert.equal({}.polluted, undefined);
    assert.equal(Object.prototype.polluted, undefined);
  });

  test('a "__proto__" key is matched structurally by OR remove', () => {
    const { grid } = makeGrid();
    const map = grid.getORMap('o');
    const tag = map.add('k', JSON.parse('{"__proto__": {"x": 1}, "b": 2}'));
    assert.deepEqual(map.remove('k', JSON.parse('{"b": 2, "__proto__": {"x": 1}}')), [tag]);
  });

  test('large values grow the buffers, and small ones still work after', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    const sizes = [1, 5000, 70_000, 3, 1 << 21, 10];
    for (const n of sizes) map.set(`s${n}`, 'é'.repeat(n));
    for (const n of sizes) assert.equal(map.get(`s${n}`), 'é'.repeat(n));
    const many = Array.from({ length: 5000 }, (_, i) => [`key-${i}`, { i, text: `value ${i}` }]);
    map.setMany(many);
    assert.equal(map.size, sizes.length + 5000);
    assert.deepEqual(map.get('key-4321'), { i: 4321, text: 'value 4321' });
  });
});

describe('bad values are refused with INVALID_VALUE, naming where in the value, and change nothing', () => {
  const cyclicObject = {};
  cyclicObject.self = cyclicObject;
  const cyclicArray = [1];
  cyclicArray.push(cyclicArray);
  class Point {
    constructor() {
      this.x = 1;
    }
  }

  /**
   * Checks that `fn` is refused with INVALID_VALUE, leaving the map as it was, and that the message
   * names where the bad part is: `invalid value at <root><where>: ...`. `where` is null when the
   * path is not checked (the nesting limit reports a path 64 levels long).
   */
  function refused(grid, map, fn, root, where) {
    const e = assertRefused(grid, map, fn, 'INVALID_VALUE');
    const escape = (text) => text.replace(/[$.[\]]/g, '\\$&');
    const path = where === null ? `${escape(root)}\\S*` : escape(`${root}${where}`);
    assert.match(e.message, new RegExp(`^invalid value at ${path}: `), 'the message names the path of the bad part');
  }

  // [what, value, path of the bad part below the value (null: not checked)]
  const bad = [
    ['a function', () => 1, ''],
    ['a symbol', Symbol('s'), ''],
    ['undefined', undefined, ''],
    ['undefined inside an object', { a: 1, b: undefined }, '.b'],
    ['undefined inside an array', [1, undefined], '[1]'],
    ['a hole in an array', [1, , 3], '[1]'], // eslint-disable-line no-sparse-arrays
    ['a function deep inside', { a: [{ b: [0, () => 0] }] }, '.a[0].b[1]'],
    ['a cyclic object', cyclicObject, null],
    ['a cyclic array', cyclicArray, null],
    ['100 levels of arrays', nested(100), null],
    ['100 levels of objects', nestedObjects(100), null],
    ['65 levels of arrays', nested(65), null],
    ['2n ** 63n', 2n ** 63n, ''],
    ['-(2n ** 63n) - 1n', -(2n ** 63n) - 1n, ''],
    ['2n ** 64n inside an array', [2n ** 64n], '[0]'],
    ['NaN', NaN, ''],
    ['Infinity', Infinity, ''],
    ['-Infinity', -Infinity, ''],
    ['NaN inside an object', { x: { y: NaN } }, '.x.y'],
    ['a lone high surrogate', 'a\uD800b', ''],
    ['a lone low surrogate', '\uDC00', ''],
    ['a reversed surrogate pair', '\uDE00\uD83D', ''],
    ['a lone surrogate after non-ASCII', `é${'\uD800'}`, ''],
    ['a lone surrogate inside a list', ['ok', '\uD800'], '[1]'],
    ['a lone surrogate in an object key', { ['k\uD800']: 1 }, ''],
    ['a class instance', new Point(), ''],
    ['a Date', new Date(0), ''],
    ['a Map', new Map([[1, 2]]), ''],
    ['a Set', new Set([1]), ''],
    ['a RegExp', /x/, ''],
    ['an ArrayBuffer', new ArrayBuffer(2), ''],
    ['an Int8Array', new Int8Array(2), ''],
    ['a boxed number', Object(1), ''],
    ['a Date inside an object', { when: new Date(0) }, '.when'],
  ];

  /** A grid with one LWW and one OR map that already hold data. */
  function populated() {
    const { grid } = makeGrid();
    const lww = grid.getMap('m');
    lww.set('k', { existing: [1, 2] });
    lww.set('t', 'ttl', { ttlMs: 1000 });
    lww.remove('gone');
    const or = grid.getORMap('o');
    or.add('k', 'existing');
    or.add('k', 'removed');
    or.remove('k', 'removed');
    return { grid, lww, or };
  }

  for (const [name, value, where] of bad) {
    test(name, () => {
      const { grid, lww, or } = populated();
      refused(grid, lww, () => lww.set('k', value), '$', where);
      refused(grid, lww, () => lww.set('new', value, { ttlMs: 5 }), '$', where);
      refused(grid, lww, () => lww.setMany([['a', 1], ['b', value]]), '$.entries[1]', where);
      refused(grid, or, () => or.add('k', value), '$', where);
      refused(grid, or, () => or.remove('k', value), '$', where);
      assert.equal(lww.get('a'), undefined);
      assert.deepEqual(or.get('k'), ['existing']);
    });
  }

  test('a value refused after a valid one in the same setMany leaves no trace, clock included', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    const events = [];
    map.subscribe((c) => events.push(c));
    throwsError(() => map.setMany([['a', 1], ['b', 2], ['c', NaN]]), 'INVALID_VALUE');
    assert.deepEqual(events, []);
    map.set('probe', 1);
    assert.deepEqual(map.getRecord('probe').timestamp, { millis: T0, counter: 0, nodeId: 'a' });
    assert.deepEqual(map.entries(), [['probe', 1]]);
  });

  test('a getter that uses the grid while its value is written is refused with INVALID_VALUE, and stores nothing of it', () => {
    // The grid writes arguments into one buffer; a getter that reads or writes the same grid
    // would start a message over the half-written value. Before, the module refused the mix with
    // a confusing error ("trailing bytes"), or the writer failed on keys it had lost.
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    map.set('big', Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, i])));
    const writes = { a: 1, get b() { map.set('inner', { z: 1 }); return 2; }, c: 3 };
    const reads = { a: 1, get b() { map.get('big'); return 2; }, c: 3 };
    throwsError(() => map.set('outer', writes), 'INVALID_VALUE');
    throwsError(() => map.set('outer', reads), 'INVALID_VALUE');
    throwsError(() => map.setMany([['x', 1], ['outer', reads]]), 'INVALID_VALUE');
    throwsError(() => grid.getORMap('o').add('outer', writes), 'INVALID_VALUE');
    assert.deepEqual(map.keys().sort(), ['big']);
    assert.equal(grid.getORMap('o').get('outer').length, 0);
    // A getter that catches the refusal leaves the outer write whole.
    const swallows = { a: 1, get b() { try { map.get('big'); } catch {} return 2; } };
    map.set('outer', swallows);
    assert.deepEqual(map.get('outer'), { a: 1, b: 2 });
    map.set('after', { b: 1, a: 2 });
    assert.deepEqual(map.get('after'), { a: 2, b: 1 });
  });

  test("a getter that makes the module's memory grow mid-write is refused with INVALID_VALUE, and stores nothing of it", () => {
    // Growth detaches the writer's view of the module's memory, and bytes written into a detached
    // view vanish without an error: before, the module stored whatever the buffer held before.
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    map.set('k', { c: 'OLD VALUE', d: 1 });
    const other = makeGrid('b').grid.getMap('x');
    const grows = { get c() { other.set('huge', 'x'.repeat(48 << 20)); return 'NEW VALUE'; }, d: 2 };
    throwsError(() => map.set('k', grows), 'INVALID_VALUE');
    assert.deepEqual(map.get('k'), { c: 'OLD VALUE', d: 1 });
    assert.equal(other.get('huge').length, 48 << 20);
    map.set('k', { c: 'NEW VALUE', d: 2 });
    assert.deepEqual(map.get('k'), { c: 'NEW VALUE', d: 2 });
  });

  test('a setMany whose array of entries changes while it is written is refused with INVALID_ARGUMENT and stores nothing', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    const entries = [['a', 1]];
    entries.push(['b', { get v() { entries.push(['c', 3]); return 2; } }]);
    throwsError(() => map.setMany(entries), 'INVALID_ARGUMENT');
    assert.deepEqual(map.keys(), []);
  });

  test('a list that changes while it is written is refused with INVALID_VALUE, and nothing of it is stored', () => {
    // The count goes first; a getter that shrinks or grows the list made the module read the
    // following bytes as items: [[a], [b, Y]] was stored as [[a, [b]], Y].
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    const shrinks = ['g1', 'X'];
    Object.defineProperty(shrinks, 0, { get() { shrinks.length = 1; return 'v1'; }, configurable: true });
    const grows = ['g2'];
    Object.defineProperty(grows, 0, { get() { grows.push('Y'); return 'v2'; }, configurable: true });
    throwsError(() => map.set('k', [shrinks, grows]), 'INVALID_VALUE');
    throwsError(() => map.set('k', [['ok'], grows]), 'INVALID_VALUE');
    assert.equal(map.get('k'), undefined);
  });

  test("memory growth mid-write is caught (INVALID_VALUE) before the writer copies what it wrote to grow", () => {
    // After the getter, the rest of the value does not fit: the writer grows its buffer by copying
    // what it wrote, which the growth had already taken away.
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    const other = makeGrid('b').grid.getMap('x');
    const value = { a: { get x() { other.set('huge', 'x'.repeat(48 << 20)); return 1; } }, b: 'y'.repeat(1 << 21) };
    throwsError(() => map.set('k', value), 'INVALID_VALUE');
    assert.equal(map.get('k'), undefined);
  });

  test('arrays stay lists whatever their prototype', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    map.set('a', Object.setPrototypeOf([1, 2, 3], null));
    map.set('b', Object.setPrototypeOf(['x', 'y'], Object.prototype));
    assert.deepStrictEqual(map.get('a'), [1, 2, 3]);
    assert.deepStrictEqual(map.get('b'), ['x', 'y']);
  });

  test('the writer keeps none of a big object\'s keys once the write is over', () => {
    const buf = new Uint8Array(1 << 20);
    const w = new Writer(() => ({ buf, at: 0, capacity: buf.length }));
    const big = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`key ${i}`, i]));
    w.reset().value({ nested: big, other: 1 });
    assert.ok(w.keys.length <= 2, `the key stack still holds ${w.keys.length} entries`);
    throwsError(() => w.reset().value({ nested: { ...big, bad: undefined } }), 'INVALID_VALUE');
    w.reset();
    assert.ok(w.keys.length <= 2, `after a refused write the key stack holds ${w.keys.length} entries`);
  });

  test('refusals are thrown as OnegridError with the code of what was wrong', () => {
    const { grid } = makeGrid();
    for (const [fn, code] of [
      [() => grid.getMap('m').set('k', NaN), 'INVALID_VALUE'],
      [() => grid.getMap('m').set('__tombstones__', 1), 'INVALID_ARGUMENT'],
      [() => grid.getMap('m').set('k', 1, { ttlMs: 0 }), 'INVALID_ARGUMENT'],
      [() => grid.importMap('m', Uint8Array.of(1, 2, 3)), 'MALFORMED'],
      [() => grid.getORMap('m'), 'KIND_MISMATCH'],
      [() => grid.exportMap('never'), 'NOT_FOUND'],
    ]) {
      const e = throwsError(fn, code);
      assert.equal(Object.getPrototypeOf(e), OnegridError.prototype, code);
      assert.equal(e.name, 'OnegridError', code);
    }
  });
});
