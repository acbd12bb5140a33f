// Merkle roots seen from JavaScript, checked against a reference written here straight from SPEC
// sections 2 to 5 (fnv1a over UTF-16 code units, fmix32, wrapping sums, a depth-3 hex tree, LWW
// item hashes and OR entry hashes with canonical JSON). Roots must match TopGun peers, so any
// difference is a bug on one side or the other.
//
// Run: ONEGRID_PKG=/path/to/pkg node --test tests/js/*.test.mjs

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { T0, makeGrid } from './load.mjs';

/** 32-bit FNV-1a over the UTF-16 code units of `s`. */
function fnv1a(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** MurmurHash3's fmix32. */
function mix(h) {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The wrapping 32-bit sum of `mix(h)`; 0 for none. */
function combine(hashes) {
  let sum = 0;
  for (const h of hashes) sum = (sum + mix(h)) >>> 0;
  return sum;
}

/** The root of a depth-3 Merkle tree over `[key, itemHash]` pairs. */
function merkleRoot(items) {
  const root = new Map();
  for (const [key, hash] of items) {
    const path = fnv1a(key).toString(16).padStart(8, '0');
    let node = root;
    for (const digit of path.slice(0, 2)) {
      if (!node.has(digit)) node.set(digit, new Map());
      node = node.get(digit);
    }
    if (!node.has(path[2])) node.set(path[2], []);
    node.get(path[2]).push(hash);
  }
  const hashOf = (node, depth) => (depth === 3 ? combine(node) : combine([...node.values()].map((child) => hashOf(child, depth + 1))));
  return hashOf(root, 0);
}

/** Canonical JSON (SPEC 4): keys sorted by UTF-16 code units, numbers as JSON.stringify, bytes as arrays. */
function canonicalJson(v) {
  if (v instanceof Uint8Array) return `[${[...v].join(',')}]`;
  if (typeof v === 'bigint') return v.toString();
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** The LWW item hash of a record as `getRecord` shows it. */
function lwwItemHash(key, { timestamp: t }) {
  return fnv1a(`${key}:${t.millis}:${t.counter}:${t.nodeId}`);
}

/** The OR entry hash of a key with records `[{ tag, value, ttlMs? }]`. */
function orEntryHash(key, records) {
  let text = `key:${key}`;
  for (const r of [...records].sort((a, b) => (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0))) {
    const [millis, counter, nodeId] = r.tag.split(':');
    text += `|${r.tag}:${canonicalJson(r.value)}:${millis}:${counter}:${nodeId}`;
    if (r.ttlMs !== undefined) text += `:ttl=${r.ttlMs}`;
  }
  return fnv1a(text);
}

/** The root SPEC gives an LWW map: every stored record of `keys`, tombstones included. */
function expectedLwwRoot(map, keys) {
  return merkleRoot(keys.filter((k) => map.getRecord(k) !== undefined).map((k) => [k, lwwItemHash(k, map.getRecord(k))]));
}

describe('reference hashing', () => {
  test('fnv1a and fmix32 reference vectors', () => {
    assert.equal(fnv1a(''), 0x811c9dc5);
    assert.equal(fnv1a('a'), 0xe40c292c);
    assert.equal(fnv1a('foobar'), 0xbf9cf968);
    assert.equal(mix(0), 0);
    assert.equal(combine([]), 0);
  });
});

describe('LWW roots follow SPEC', () => {
  test('an empty map has root 0', () => {
    const { grid } = makeGrid();
    assert.equal(grid.getMap('m').rootHash(), 0);
  });

  test('records and tombstones, ASCII keys', () => {
    const { grid, clock } = makeGrid('node-1');
    const map = grid.getMap('m');
    const keys = [];
    for (let i = 0; i < 300; i++) {
      clock.now = T0 + (i % 11);
      keys.push(`key${i}`);
      map.set(`key${i}`, i % 2 ? { i } : 'v', i % 3 === 0 ? { ttlMs: 1 } : undefined);
    }
    for (let i = 0; i < 300; i += 7) map.remove(`key${i}`);
    map.remove('never-set');
    keys.push('never-set');
    assert.equal(map.rootHash(), expectedLwwRoot(map, keys));
  });

  test('non-ASCII keys hash their UTF-16 code units', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    const keys = ['é', '😀', '𝄞', '東京', '\uFFFD', '', 'a:b:c'];
    keys.forEach((k, i) => map.set(k, i));
    assert.equal(map.rootHash(), expectedLwwRoot(map, keys));
  });

  test('after a merge, the root is that of the merged records', () => {
    const a = makeGrid('a');
    const b = makeGrid('b');
    a.grid.getMap('m').set('x', 1);
    b.clock.now = T0 + 3;
    b.grid.getMap('m').set('x', 2);
    b.grid.getMap('m').set('y', 3);
    a.grid.importMap('m', b.grid.exportMap('m'));
    const map = a.grid.getMap('m');
    assert.equal(map.rootHash(), expectedLwwRoot(map, ['x', 'y']));
  });
});

describe('OR roots follow SPEC', () => {
  test('live records hashed with canonical JSON values and TTLs; tombstones not hashed', () => {
    const { grid } = makeGrid('n1');
    const map = grid.getORMap('o');
    const k = [
      { tag: map.add('k', 1), value: 1 },
      { tag: map.add('k', 'x'), value: 'x' },
    ];
    const removed = map.add('k', 'gone');
    assert.deepEqual(map.remove('k', 'gone'), [removed]);
    const j = [{ tag: map.add('j', { b: 1, a: [true, null] }, { ttlMs: 5 }), value: { b: 1, a: [true, null] }, ttlMs: 5 }];
    assert.equal(map.rootHash(), merkleRoot([['k', orEntryHash('k', k)], ['j', orEntryHash('j', j)]]));
  });

  const values = [
    ['integers', 42],
    ['negative integers', -7],
    ['-0 as 0', -0],
    ['1.5', 1.5],
    ['0.1', 0.1],
    ['1e21', 1e21],
    ['1e-7', 1e-7],
    ['5e-324', 5e-324],
    ['MAX_VALUE', Number.MAX_VALUE],
    ['2^53 as a number', 2 ** 53],
    ['-(2^60) as a number', -(2 ** 60)],
    ['2^60 as a BigInt', 2n ** 60n],
    ['i64 min', -(2n ** 63n)],
    ['null', null],
    ['booleans', [true, false]],
    ['strings needing escapes', 'é"\n\u0001\u007f\u2028\t/\\'],
    ['non-BMP strings', '😀𝄞'],
    ['bytes', Uint8Array.of(1, 0, 255)],
    ['empty containers', [[], {}, new Uint8Array(0), '']],
    ['object keys sorted by UTF-16 code units, recursively', { '\uFFFD': 1, '😀': 2, b: { z: 1, A: 2, é: 3 }, a: [{ d: 1, c: 2 }] }],
  ];
  for (const [name, value] of values) {
    test(`value hashing: ${name}`, () => {
      const { grid } = makeGrid('n1');
      const map = grid.getORMap('o');
      const tag = map.add('key', value);
      assert.equal(map.rootHash(), merkleRoot([['key', orEntryHash('key', [{ tag, value }])]]));
    });
  }

  test('many keys and records from several writers', () => {
    const writers = ['a', 'b', 'c'].map((id) => makeGrid(id));
    const target = makeGrid('t');
    const expected = new Map();
    writers.forEach(({ grid, clock }, w) => {
      for (let i = 0; i < 60; i++) {
        clock.now = T0 + i;
        const key = `k${(i * 7 + w) % 40}`;
        const value = { w, i };
        const ttlMs = i % 9 === 0 ? 1000 : undefined;
        const tag = grid.getORMap('o').add(key, value, ttlMs ? { ttlMs } : undefined);
        if (!expected.has(key)) expected.set(key, []);
        expected.get(key).push({ tag, value, ttlMs });
      }
      target.grid.importMap('o', grid.exportMap('o'));
    });
    const root = merkleRoot([...expected].map(([key, records]) => [key, orEntryHash(key, records)]));
    assert.equal(target.grid.getORMap('o').rootHash(), root);
  });
});
