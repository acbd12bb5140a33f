// The storage adapter suite (adapter-suite.mjs) on MemoryStorage, under node:test. IndexedDbStorage
// runs the same suite in Chromium: browser.test.mjs.
//
// storage.js is taken from the package ($ONEGRID_PKG, see load.mjs), which is what users get; a
// package without it fails these tests (never the sources in its place).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { pkgDir } from './load.mjs';
import { LARGE, adapterSuite, timeLoad } from './adapter-suite.mjs';

const storagePath = join(pkgDir, 'storage.js');
if (!existsSync(storagePath)) {
  throw new Error(`the package in ${pkgDir} has no storage.js: write a fresh one (cargo run -p onegrid-host -- pkg --out DIR)`);
}
const { MemoryStorage } = await import(pathToFileURL(storagePath).href);

describe('MemoryStorage: the adapter suite', () => {
  // Memory does not outlive its object, so there is nothing to reopen.
  adapterSuite(test, { fresh: () => new MemoryStorage(), reopen: null });
});

describe('MemoryStorage in Node', () => {
  test('a Buffer (a view into a shared pool) is stored as just its bytes', async () => {
    const s = new MemoryStorage();
    const buf = Buffer.from('abc');
    await s.store('m', 'k', buf);
    buf.write('xyz');
    const [[key, bytes]] = await s.loadAll('m', ['k']);
    assert.equal(key, 'k');
    assert.equal(Object.getPrototypeOf(bytes), Uint8Array.prototype);
    assert.equal(bytes.buffer.byteLength, 3);
    assert.deepEqual([...bytes], [...Buffer.from('abc')]);
  });

  test(`time: ${LARGE} records stored in one storeAll, then loaded`, async () => {
    const ms = await timeLoad(new MemoryStorage());
    const f = (n) => n.toFixed(0);
    console.log(`MemoryStorage, ${LARGE} records: storeAll ${f(ms.storeAll)} ms, loadAllKeys ${f(ms.loadAllKeys)} ms + loadAll ${f(ms.loadAll)} ms = load ${f(ms.load)} ms`);
  });
});
