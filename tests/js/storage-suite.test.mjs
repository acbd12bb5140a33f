// The storage suite (tests/storage-suite/scenarios.json) on the JavaScript API in Node, over
// MemoryStorage; browser.test.mjs runs the same interpreter over IndexedDbStorage in Chromium.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { Grid, MemoryStorage } from './load.mjs';
import { runSuite, scenariosFor } from './storage-suite.mjs';

const suite = JSON.parse(readFileSync(new URL('../storage-suite/scenarios.json', import.meta.url), 'utf8'));
const { results, skipped } = await runSuite(suite, { Grid, makeAdapter: () => new MemoryStorage() });

test('the storage suite ran every scenario on MemoryStorage', () => {
  assert.deepEqual(skipped, [], 'the JavaScript API supports every step');
  assert.deepEqual(results.map((r) => r.name), scenariosFor(suite).run.map((s) => s.name));
  assert.equal(results.length, suite.scenarios.length);
});

for (const r of results) {
  test(`storage suite on MemoryStorage: ${r.name}`, () => {
    if (!r.ok) throw new Error(r.error);
  });
}
