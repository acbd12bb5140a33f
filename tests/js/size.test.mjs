// The module stays within its size budget (tests/size-budget.json): a change that grows it past the
// budget fails here with the numbers.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

import { pkgDir } from './load.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const budget = JSON.parse(readFileSync(join(here, '..', 'size-budget.json'), 'utf8'));

test('onegrid_bg.wasm is within its size budget', () => {
  const wasm = readFileSync(join(pkgDir, 'onegrid_bg.wasm'));
  const gzipped = gzipSync(wasm, { level: 9 }).length;
  const report = `onegrid_bg.wasm is ${wasm.length} bytes (budget ${budget.raw_bytes}), ${gzipped} gzipped (budget ${budget.gzip_bytes})`;
  console.log(report);
  assert.ok(wasm.length <= budget.raw_bytes, `over budget: ${report}`);
  assert.ok(gzipped <= budget.gzip_bytes, `over budget: ${report}`);
});
