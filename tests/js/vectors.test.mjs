// The golden vectors (tests/vectors/vectors.json, written and checked by tests/tests/vectors.rs)
// through the JavaScript side: the value reader, the JS API's writes, snapshots and roots, and the
// module's raw byte ABI. A layout change that the vectors do not follow fails here too.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { Grid, pkgDir } from './load.mjs';
import { abiCaller, trapImports } from './byte-abi.mjs';
import { fromTagged, hex, unhex } from './tagged.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const vectors = JSON.parse(readFileSync(join(here, '..', 'vectors', 'vectors.json'), 'utf8'));
const { decodeValue } = await import(pathToFileURL(join(pkgDir, 'values.js')).href);
const constants = await import(pathToFileURL(join(pkgDir, 'constants.js')).href);
const errors = await import(pathToFileURL(join(pkgDir, 'errors.js')).href);

test("the JavaScript constants are the core's", () => {
  assert.equal(constants.MAX_DEPTH, vectors.constants.maxDepth);
  assert.equal(constants.DEFAULT_MAX_DRIFT_MS, vectors.constants.defaultMaxDriftMs);
  assert.deepEqual([...constants.RESERVED_KEYS], vectors.constants.reservedKeys);
  assert.deepEqual([...constants.MAP_KINDS], vectors.constants.mapKinds);
  // The core's error kinds come first, in their order; the wrapper's own codes follow.
  assert.deepEqual(errors.ERROR_CODES.slice(0, vectors.constants.errorCodes.length), vectors.constants.errorCodes);
});

test('every value vector decodes to its value', () => {
  assert.ok(vectors.values.length >= 10);
  for (const v of vectors.values) {
    assert.deepEqual(decodeValue(unhex(v.hex)), fromTagged(v.value), v.name);
  }
});

/** Replays a map vector's writes through the JS API with its clock. */
function build(vector) {
  let wall = 0;
  const grid = new Grid({ nodeId: vector.nodeId, clock: () => wall });
  const map = vector.kind === 'lww' ? grid.getMap('m') : grid.getORMap('m');
  const options = (ttl) => (ttl === null ? undefined : { ttlMs: ttl });
  for (const op of vector.ops) {
    wall = op[op.length - 1];
    switch (op[0]) {
      case 'set': map.set(op[1], fromTagged(op[2]), options(op[3])); break;
      case 'remove': map.remove(op[1]); break;
      case 'add': map.add(op[1], fromTagged(op[2]), options(op[3])); break;
      case 'orRemove': map.remove(op[1], fromTagged(op[2])); break;
      default: throw new Error(`unknown op ${op[0]}`);
    }
  }
  return { grid, map };
}

test('the JS API writes every map vector to its snapshot bytes and root', () => {
  assert.ok(vectors.maps.length >= 3);
  for (const vector of vectors.maps) {
    const { grid, map } = build(vector);
    assert.equal(hex(grid.exportMap('m')), vector.snapshot, `${vector.name}: snapshot`);
    assert.equal(map.rootHash(), vector.root, `${vector.name}: root`);
    const other = new Grid({ nodeId: 'reader' });
    other.importMap('m', unhex(vector.snapshot));
    assert.equal(hex(other.exportMap('m')), vector.snapshot, `${vector.name}: imported and exported again`);
  }
});

test('the module answers the byte-ABI session with the golden replies, byte for byte', () => {
  const module = new WebAssembly.Module(readFileSync(join(pkgDir, 'onegrid_bg.wasm')));
  const exports = new WebAssembly.Instance(module, trapImports(module)).exports;
  assert.equal(exports.onegrid_abi_version(), vectors.abiVersion);
  const call = abiCaller(exports);
  const { requests, replies } = vectors.abi;
  assert.equal(requests.length, replies.length);
  requests.forEach((request, i) => {
    assert.equal(hex(call(unhex(request))), replies[i], `reply ${i}`);
  });
});
