// The value path between JavaScript and the module, two ways side by side in one Node process:
// postcard bytes walked in JavaScript (values.js: the Writer into the module's input buffer, the
// Reader over its output) against JS values built or read in Rust through serde-wasm-bindgen.
// The module is the bench build, which carries both: the shipped methods, and their twins
// (wasm/src/bench_twins.rs, feature `bench-twins`). Values written and read and change events ship
// as postcard bytes, and their twins go through serde-wasm-bindgen; records ship through
// serde-wasm-bindgen (wasm/src/interop/to_js.rs), and their twin is the bytes path they replaced.
//
//   ONEGRID_MODULE_FEATURES=bench-twins cargo run -p onegrid-host -- pkg --out /tmp/pkg-twins
//   ONEGRID_PKG=/tmp/pkg-twins node --expose-gc tests/bench/value-path-bench.mjs
//   (ROUNDS=n sets the rounds; SHIPPED=dir names a shipped package, whose module size is printed)
//
// Both ways run through the same wrapper code (grid-core.js's GridCore, maps.js's LwwMap: the
// argument checks, the clock, the change dispatch), so a row differs only in how values cross.
// Rounds interleave the two ways; each figure is the median. Ratios are serde-wasm-bindgen's time
// over postcard's (above 1: serde-wasm-bindgen is slower).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';

const pkg = resolve(process.env.ONEGRID_PKG ?? '/tmp/pkg-twins');
const at = (file) => pathToFileURL(join(pkg, file)).href;
const { initSync } = await import(at('onegrid.js'));
const { RawGrid, benchKeyCache } = await import(at('onegrid_glue.js'));
const { GridCore, checkText, ttlOf, guarded, fail } = await import(at('grid-core.js'));
const { LwwMap } = await import(at('maps.js'));
initSync({ module: readFileSync(join(pkg, 'onegrid_bg.wasm')) });
if (typeof RawGrid.prototype.lwwRecordBytes !== 'function') {
  throw new Error(`${pkg} is not the bench build: build it with ONEGRID_MODULE_FEATURES=bench-twins`);
}

const ROUNDS = Number(process.env.ROUNDS ?? 7);
const N = 100_000;
const BATCH = 1_000;
const keys = Array.from({ length: N }, (_, i) => `key-${i}`);
const value = (i) => ({ n: i, name: 'item', done: (i & 1) === 0 });

// ---- the two ways ------------------------------------------------------------------------------

/** The shipped path's core: change events read from postcard bytes. */
class BytesCore extends GridCore {}

/** Change events as JS values from the module (the twin of `takeEvents`). */
class SerdeCore extends GridCore {
  deliver(id, now, kind) {
    const subs = this.subscribers.get(id);
    if (subs === undefined) return undefined;
    if (kind !== 'lww') throw new Error('bench: LWW only');
    const changes = this.raw.takeLwwEventsJs(id, now);
    if (changes === undefined) return undefined;
    let failure;
    for (const change of changes) {
      for (const fn of [...subs]) failure = guarded(fn, change, failure);
    }
    return failure;
  }
}

/** The shipped LwwMap, with records read from postcard bytes (the twin of `lwwRecord`), as
 * `getRecord` did before records came from serde-wasm-bindgen. */
class BytesLww extends LwwMap {
  constructor(core, name, id) {
    super(core, name, id);
    this.core = core;
    this.id = id;
  }

  getRecord(key) {
    checkText(key, 'the key');
    const core = this.core;
    const len = core.raw.lwwRecordBytes(this.id, core.text(key));
    if (len < 0) return undefined;
    const r = core.output(len);
    const value = r.option(r.value);
    const timestamp = { millis: u64(r), counter: r.varint(), nodeId: r.str() };
    const ttlMs = r.option(function () { return u64(this); });
    const record = { value: value === undefined ? null : value, deleted: value === undefined, timestamp };
    if (ttlMs !== undefined) record.ttlMs = ttlMs;
    return record;
  }
}

/** A u64 read by `r`: a Number when safe, else a BigInt (what values.js's `Reader.u64` was). */
function u64(r) {
  const start = r.pos;
  const n = r.varint();
  if (n <= Number.MAX_SAFE_INTEGER) return n;
  r.pos = start;
  return r.varintBig();
}

/** An LwwMap whose values cross as JS values: `LwwMap`'s methods with the twins' calls, and the
 * shipped `getRecord`. */
class SerdeLww {
  constructor(core, id) {
    this.core = core;
    this.id = id;
    this.shipped = new LwwMap(core, 'm', id);
  }

  set(key, value, options) {
    checkText(key, 'the key');
    const ttl = ttlOf(options);
    const core = this.core;
    const now = core.now();
    if (core.raw.lwwSetJs(this.id, now, key, value, ttl) !== 0) throw core.failure();
    core.wrote();
    core.dispatch(this.id, now, 'lww');
  }

  setMany(entries) {
    if (!Array.isArray(entries)) throw fail('setMany() takes an array');
    const core = this.core;
    const now = core.now();
    if (core.raw.lwwSetManyJs(this.id, now, entries) !== 0) throw core.failure();
    core.wrote();
    core.dispatch(this.id, now, 'lww');
  }

  get(key) {
    checkText(key, 'the key');
    const core = this.core;
    const v = core.raw.lwwGetJs(this.id, core.now(), key);
    if (v === null) throw core.failure();
    return v;
  }

  getRecord(key) {
    return this.shipped.getRecord(key);
  }
}

let clockNow = 1_700_000_000_000;
const clock = () => clockNow;

/** A fresh grid and its map `m`, the way `way` reads and writes values: 'bytes' (the shipped
 * path), 'serde', or 'serde+keys' (object keys from a cache of their JS strings in the module). */
function open(way, node = 'bench') {
  benchKeyCache(way === 'serde+keys');
  const Core = way === 'bytes' ? BytesCore : SerdeCore;
  const core = new Core(new RawGrid(node, 60_000, false, false), clock, undefined);
  const id = core.raw.openLww(clock(), core.text('m'));
  const map = way === 'bytes' ? new BytesLww(core, 'm', id) : new SerdeLww(core, id);
  return { core, id, map, free: () => core.raw.free() };
}

// ---- the ways agree ----------------------------------------------------------------------------
for (const way of ['serde', 'serde+keys']) {
  const values = [
    null, true, 0, -1, 2 ** 53 - 1, -(2 ** 53) + 1, 2n ** 53n, -(2n ** 63n), 2n ** 63n - 1n, 0.5, 1e300, '',
    'text', 'ünïcödé ✓ 😀', new Uint8Array([1, 2, 3]), [], [1, [2, [3]]], {}, { b: 1, a: [null, { c: 'x' }] },
    JSON.parse('{"__proto__": {"polluted": "yes"}, "a": 1}'), value(7),
  ];
  const a = open('bytes', 'node-a');
  const b = open(way, 'node-a');
  const heardA = [];
  const heardB = [];
  const unA = a.core.subscribe(a.id, (c) => heardA.push(c));
  const unB = b.core.subscribe(b.id, (c) => heardB.push(c));
  values.forEach((v, i) => {
    clockNow += 1;
    a.map.set(`k${i}`, v, i === 3 ? { ttlMs: 500 } : undefined);
    b.map.set(`k${i}`, v, i === 3 ? { ttlMs: 500 } : undefined);
  });
  a.map.setMany([['m1', 1], ['m2', { x: [1n << 60n] }]]);
  b.map.setMany([['m1', 1], ['m2', { x: [1n << 60n] }]]);
  // (The twins have no remove: both go through the shipped call.)
  a.map.remove('k0');
  new LwwMap(b.core, 'm', b.id).remove('k0');
  for (let i = 0; i < values.length; i++) {
    assert.deepStrictEqual(b.map.get(`k${i}`), a.map.get(`k${i}`), `get k${i}`);
    assert.deepStrictEqual(b.map.getRecord(`k${i}`), a.map.getRecord(`k${i}`), `getRecord k${i}`);
  }
  const proto = b.map.get(`k${values.length - 2}`);
  assert.ok(Object.hasOwn(proto, '__proto__') && Object.getPrototypeOf(proto) === Object.prototype);
  assert.deepStrictEqual(b.map.get('m2'), a.map.get('m2'));
  assert.deepStrictEqual(b.map.get(`k${values.length - 1}`), value(7)); // twice: from the key cache too
  assert.equal(b.map.get('missing'), undefined);
  assert.equal(b.map.getRecord('missing'), undefined);
  assert.deepStrictEqual(heardB, heardA, 'change events');
  assert.equal(heardA.length, values.length + 3);
  unA();
  unB();
  a.free();
  b.free();
}

// ---- timing ------------------------------------------------------------------------------------

const median = (xs) => [...xs].sort((x, y) => x - y)[xs.length >> 1];

/** Runs each `[name, way, setup, run]` ROUNDS times, interleaved, after one warm-up round; median
 * ms per `name/way`. `setup` is not timed; `run(input)` is. */
function measure(workloads) {
  const times = new Map();
  for (let r = -1; r < ROUNDS; r++) {
    for (const [name, way, setup, run] of workloads) {
      const input = setup(way);
      globalThis.gc?.();
      const t = performance.now();
      run(input);
      const ms = performance.now() - t;
      input.free?.();
      if (r < 0) continue;
      const id = `${name}/${way}`;
      if (!times.has(id)) times.set(id, []);
      times.get(id).push(ms);
    }
  }
  return new Map([...times].map(([id, v]) => [id, median(v)]));
}

/** A map of N entries, for the reads. */
function filled(way) {
  const g = open(way);
  for (let i = 0; i < N; i += BATCH) g.map.setMany(keys.slice(i, i + BATCH).map((k, j) => [k, value(i + j)]));
  return g;
}
const batches = Array.from({ length: N / BATCH }, (_, b) => keys.slice(b * BATCH, (b + 1) * BATCH).map((k, j) => [k, value(b * BATCH + j)]));

let sink = 0;
const IN = ['bytes', 'serde']; // values into the module: the key cache plays no part
const OUT = ['bytes', 'serde', 'serde+keys'];
const rows = [
  ['set', IN, `${N} sets of { n, name, done }, one call each`, open, (g) => {
    for (let i = 0; i < N; i++) g.map.set(keys[i], value(i));
  }],
  ['setMany', IN, `${N / BATCH} setMany of ${BATCH} entries`, open, (g) => {
    for (const batch of batches) g.map.setMany(batch);
  }],
  ['get', OUT, `${N} gets of { n, name, done }`, filled, (g) => {
    for (let i = 0; i < N; i++) sink += g.map.get(keys[i]).n;
  }],
  ['get (number)', OUT, `${N} gets of a number`, (way) => {
    const g = open(way);
    for (let i = 0; i < N; i += BATCH) g.map.setMany(keys.slice(i, i + BATCH).map((k, j) => [k, i + j]));
    return g;
  }, (g) => {
    for (let i = 0; i < N; i++) sink += g.map.get(keys[i]);
  }],
  ['getRecord', OUT, `${N} getRecord of { n, name, done }`, filled, (g) => {
    for (let i = 0; i < N; i++) sink += g.map.getRecord(keys[i]).timestamp.counter;
  }],
  ['events, one a call', OUT, `${N} sets, each change delivered to a subscriber`, (way) => {
    const g = open(way);
    g.core.subscribe(g.id, (c) => { sink += c.value.n; });
    return g;
  }, (g) => {
    // The set itself is the shipped one both ways: the row differs only in the event's path.
    const map = g.map instanceof LwwMap ? g.map : new LwwMap(g.core, 'm', g.id);
    for (let i = 0; i < N; i++) map.set(keys[i], value(i));
  }],
  ['events, a batch', OUT, `${N / BATCH} setMany of ${BATCH}, each change delivered to a subscriber`, (way) => {
    const g = open(way);
    g.core.subscribe(g.id, (c) => { sink += c.value.n; });
    return g;
  }, (g) => {
    const map = g.map instanceof LwwMap ? g.map : new LwwMap(g.core, 'm', g.id);
    for (const batch of batches) map.setMany(batch);
  }],
];

const results = measure(rows.flatMap(([name, ways, , setup, run]) => ways.map((way) => [name, way, setup, run])));

const size = (dir) => {
  const wasm = readFileSync(join(dir, 'onegrid_bg.wasm'));
  return `${wasm.length} bytes, ${gzipSync(wasm, { level: 9 }).length} gzipped`;
};
console.log(`Node ${process.version}, ${ROUNDS} rounds (medians), module ${pkg} (${size(pkg)})`);
if (process.env.SHIPPED) console.log(`shipped module ${process.env.SHIPPED}: ${size(resolve(process.env.SHIPPED))}`);
console.log('| op | workload | postcard bytes (values.js) | serde-wasm-bindgen | ratio | with a key cache | ratio |');
console.log('|---|---|---|---|---|---|---|');
for (const [name, ways, what] of rows) {
  const bytes = results.get(`${name}/bytes`);
  const per = (ms) => `${ms.toFixed(1)} ms (${((ms * 1e6) / N).toFixed(0)} ns/op)`;
  const cells = ways.slice(1).map((way) => {
    const ms = results.get(`${name}/${way}`);
    return `${per(ms)} | ${(ms / bytes).toFixed(2)}x`;
  });
  if (cells.length === 1) cells.push('- | -');
  console.log(`| ${name} | ${what} | ${per(bytes)} | ${cells.join(' | ')} |`);
}
if (sink === 0.5) console.log(sink); // keeps the reads
