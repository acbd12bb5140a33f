// Every string through the JavaScript API comes back exactly as it went in: keys, values, object
// keys, map names, tags and node ids, through reads, change events, snapshots between grids and
// storage. The awkward ones: a leading U+FEFF (a character, which a UTF-8 decoder drops as a
// byte-order mark unless told not to), astral characters, U+0000, and very long strings.
//
// Run: ONEGRID_PKG=/path/to/pkg node --test tests/js/text-roundtrip.test.mjs

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { Grid, MemoryStorage, clockAt, makeGrid } from './load.mjs';

const BOM = '\uFEFF';

/** Strings a decoder could change: short ones take the reader's ASCII path, longer ones do not. */
const AWKWARD = [
  BOM,
  `${BOM}k`,
  `${BOM}${BOM}abc`,
  `${BOM}😀`,
  '😀',
  '𝄞 clef',
  '\u0000',
  `\u0000${BOM}`,
  `a\u0000b`,
  `${BOM}${'x'.repeat(40)}`,
  `${BOM}${'😀'.repeat(20_000)}`,
];

/** The longest map name: 256 bytes of UTF-8, starting with U+FEFF. */
const LONGEST_MAP = `${BOM}${'😀'.repeat(63)}x`;
/** The OR map beside map `name` (the longest name has no room for a prefix). */
function orName(name) {
  return name === LONGEST_MAP ? `${name.slice(0, -1)}o` : `or${name}`;
}
/** The longest node id: 64 bytes. */
const LONGEST_NODE = `n.${'Z_-9'.repeat(15)}xy`;
/** A long key, well past every fast path. */
const LONG_KEY = `${BOM}${'é😀\u0000'.repeat(50_000)}`;
const KEYS = [...AWKWARD, LONG_KEY];

/** Code points sort like UTF-8 bytes, which is how the module lists keys. */
function byCodePoint(a, b) {
  const x = [...a].map((c) => c.codePointAt(0));
  const y = [...b].map((c) => c.codePointAt(0));
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

/** A value of `s` in every place a string can be: itself, nested, and as object keys. */
function valueOf(s) {
  return { [s]: s, nested: { [s]: [s, { [s]: null }] }, list: [s] };
}

describe('text round trip: the strings of these tests', () => {
  test('are distinct, and the longest ones are as long as allowed', () => {
    assert.equal(new Set(KEYS).size, KEYS.length);
    assert.equal(new TextEncoder().encode(LONGEST_MAP).length, 256);
    assert.equal(LONGEST_NODE.length, 64);
  });
});

describe('text round trip: LWW map', () => {
  test('set/get/has of awkward keys and values; getRecord', () => {
    const { grid } = makeGrid(LONGEST_NODE);
    assert.equal(grid.nodeId, LONGEST_NODE);
    const map = grid.getMap('m');
    for (const key of KEYS) map.set(key, valueOf(key));
    for (const key of KEYS) {
      assert.equal(map.has(key), true);
      assert.deepEqual(map.get(key), valueOf(key));
      const record = map.getRecord(key);
      assert.deepEqual(record.value, valueOf(key));
      assert.equal(record.timestamp.nodeId, LONGEST_NODE);
    }
    // A key without its leading U+FEFF is another key.
    assert.equal(map.has('k'), false);
    assert.equal(map.get('abc'), undefined);
  });

  test('the issue: set("\\uFEFFk", "\\uFEFFabc")', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    map.set(`${BOM}k`, `${BOM}abc`);
    assert.equal(map.get(`${BOM}k`), `${BOM}abc`);
    assert.deepEqual(map.entries(), [[`${BOM}k`, `${BOM}abc`]]);
    assert.deepEqual(map.keys(), [`${BOM}k`]);
  });

  test('entries(), keys() and setMany', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    map.setMany(KEYS.map((key) => [key, key]));
    const sorted = [...KEYS].sort(byCodePoint);
    assert.deepEqual(map.keys(), sorted);
    assert.deepEqual(map.entries(), sorted.map((key) => [key, key]));
    // Twice: object keys come from a cache the second time.
    map.set('obj', valueOf(`${BOM}k`));
    assert.deepEqual(map.get('obj'), valueOf(`${BOM}k`));
    assert.deepEqual(map.get('obj'), valueOf(`${BOM}k`));
  });

  test('subscribe events carry the keys and values exactly', () => {
    const { grid } = makeGrid();
    const map = grid.getMap('m');
    const changes = [];
    map.subscribe((c) => changes.push(c));
    for (const key of KEYS) map.set(key, key);
    map.remove(BOM);
    assert.deepEqual(changes, [
      ...KEYS.map((key) => ({ key, value: key, origin: 'local' })),
      { key: BOM, value: undefined, origin: 'local' },
    ]);
  });
});

describe('text round trip: OR map', () => {
  test('add/get/has/entries/keys/remove of awkward keys and values; tags', () => {
    const { grid } = makeGrid(LONGEST_NODE);
    const map = grid.getORMap('o');
    const changes = [];
    map.subscribe((c) => changes.push(c));
    const tags = KEYS.map((key) => map.add(key, valueOf(key)));
    for (const tag of tags) assert.match(tag, new RegExp(`^\\d+:\\d+:${LONGEST_NODE.replace(/\./g, '\\.')}$`));
    for (const key of KEYS) {
      assert.equal(map.has(key), true);
      assert.deepEqual(map.get(key), [valueOf(key)]);
    }
    const sorted = [...KEYS].sort(byCodePoint);
    assert.deepEqual(map.keys(), sorted);
    assert.deepEqual(map.entries(), sorted.map((key) => [key, [valueOf(key)]]));
    assert.deepEqual(changes, KEYS.map((key) => ({ key, values: [valueOf(key)], origin: 'local' })));
    assert.deepEqual(map.remove(`${BOM}k`, valueOf(`${BOM}k`)), [tags[1]]);
    assert.deepEqual(map.tombstones(), [tags[1]]);
    assert.deepEqual(changes.at(-1), { key: `${BOM}k`, values: [], origin: 'local' });
  });
});

describe('text round trip: maps, snapshots and node ids', () => {
  test('awkward and longest map names: name, hasMap, mapNames, exportMap/importMap between grids', () => {
    const names = [BOM, `${BOM}m`, '😀', `a\u0000`, LONGEST_MAP];
    const a = makeGrid(LONGEST_NODE);
    const b = makeGrid('b');
    for (const name of names) {
      const map = a.grid.getMap(name);
      assert.equal(map.name, name);
      for (const key of KEYS) map.set(key, valueOf(key));
      const or = a.grid.getORMap(orName(name));
      for (const key of KEYS) or.add(key, valueOf(key));
    }
    const all = [...names, ...names.map(orName)].sort(byCodePoint);
    assert.deepEqual(a.grid.mapNames(), all);
    for (const name of all) {
      assert.equal(a.grid.hasMap(name), true);
      assert.equal(b.grid.importMap(name, a.grid.exportMap(name)), KEYS.length);
    }
    assert.deepEqual(b.grid.mapNames(), all);
    for (const name of names) {
      const lww = b.grid.getMap(name);
      assert.equal(lww.rootHash(), a.grid.getMap(name).rootHash());
      for (const key of KEYS) {
        assert.deepEqual(lww.get(key), valueOf(key));
        assert.equal(lww.getRecord(key).timestamp.nodeId, LONGEST_NODE);
      }
      assert.deepEqual(b.grid.getORMap(orName(name)).entries(), a.grid.getORMap(orName(name)).entries());
    }
  });

  test('importMap events carry the keys and values exactly', () => {
    const a = makeGrid('a');
    for (const key of KEYS) a.grid.getMap(BOM).set(key, key);
    const b = makeGrid('b');
    const changes = [];
    b.grid.getMap(BOM).subscribe((c) => changes.push(c));
    b.grid.importMap(BOM, a.grid.exportMap(BOM));
    const sorted = [...KEYS].sort(byCodePoint);
    assert.deepEqual(changes, sorted.map((key) => ({ key, value: key, origin: 'remote' })));
  });
});

describe('text round trip: storage', () => {
  test('MemoryStorage: awkward keys, values and map names survive flush and reload in a new Grid', async () => {
    const storage = new MemoryStorage();
    const names = [BOM, `${BOM}m`, LONGEST_MAP];
    const writer = new Grid({ nodeId: LONGEST_NODE, clock: clockAt(), storage });
    for (const name of names) {
      const lww = await writer.getMapAsync(name, 'lww');
      for (const key of KEYS) lww.set(key, valueOf(key));
      const or = await writer.getMapAsync(orName(name), 'or');
      for (const key of KEYS) or.add(key, valueOf(key));
    }
    await writer.flush();
    // The adapter was handed the keys and map names as they are.
    for (const name of names) {
      const stored = (await storage.loadAllKeys(name)).filter((k) => k !== '__mark__');
      assert.deepEqual(stored.sort(byCodePoint), [...KEYS].sort(byCodePoint));
    }

    const reader = new Grid({ nodeId: 'reader', clock: clockAt(), storage });
    for (const name of names) {
      const lww = await reader.getMapAsync(name);
      assert.equal(lww.kind, 'lww');
      assert.deepEqual(lww.keys(), [...KEYS].sort(byCodePoint));
      for (const key of KEYS) {
        assert.deepEqual(lww.get(key), valueOf(key));
        assert.equal(lww.getRecord(key).timestamp.nodeId, LONGEST_NODE);
      }
      const or = await reader.getMapAsync(orName(name));
      assert.deepEqual(or.entries(), writer.getORMap(orName(name)).entries());
    }
    assert.deepEqual(reader.mapNames(), writer.mapNames());
  });
});
