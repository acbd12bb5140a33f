// The storage adapter suite (adapter-suite.mjs) and the storage suite's scenarios
// (tests/storage-suite/, through storage-suite.mjs) on IndexedDbStorage in real headless Chromium.
//
// A static server on 127.0.0.1 serves the package ($ONEGRID_PKG, see load.mjs) under /pkg/,
// tests/js/ under /tests/ and tests/storage-suite/ under /suite/; playwright-core starts the system's Chromium ($CHROMIUM_PATH, default
// /usr/bin/chromium) on a fresh profile and opens tests/js/browser/index.html, which runs every
// case and a timing, then leaves its results in `window.onegridResults`; then it reloads the page,
// which checks what the first run stored. Each case becomes one test here, so a failure names its
// case, and the cases that ran must be exactly the expected ones. A missing browser or playwright-core fails, never
// skips: `bash tests/ci/chromium.sh` installs both.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import { dirname, extname, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

import { pkgDir } from './load.mjs';
import { adapterSuite } from './adapter-suite.mjs';
import { scenariosFor } from './storage-suite.mjs';

const testsDir = dirname(fileURLToPath(import.meta.url));
const suiteDir = resolve(testsDir, '..', 'storage-suite');
const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
/** The adapter suite's cases, as the page registers them (it can reopen: all of them). */
const ADAPTER_CASES = [];
adapterSuite((name) => ADAPTER_CASES.push(name), { fresh: null, reopen: () => null });
/** The page's own cases, after the suite's, in order. */
const PAGE_CASES = [
  'IndexedDbStorage: schema version 1 with one object store',
  'IndexedDbStorage: a database of a newer schema is refused, naming the call and map',
  'IndexedDbStorage: a corrupt bucket fails the load, naming the call and map',
  'Grid on IndexedDbStorage: TTLs, LWW tombstones and OR tombstones are flushed before a reload',
];
/** The storage suite's scenarios, after the page's own cases: every one (the JavaScript API
 * supports every step), each once. */
const SUITE = JSON.parse(readFileSync(resolve(suiteDir, 'scenarios.json'), 'utf8'));
const SUITE_CASES = scenariosFor(SUITE).run.map((s) => `storage suite on IndexedDbStorage: ${s.name}`);
/** What the page runs once reloaded. */
const AFTER_RELOAD_CASES = ['Grid on IndexedDbStorage: TTLs, LWW tombstones and OR tombstones survive a reload'];
/** How long the page may take for the whole suite and the timing. */
const PAGE_TIMEOUT_MS = 240_000;

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json; charset=utf-8',
  '.ts': 'text/plain; charset=utf-8',
};

/** The file a URL path names, or null: /pkg/... in the package, /tests/... in tests/js, /suite/...
 * in tests/storage-suite. */
function fileFor(urlPath) {
  const roots = { pkg: pkgDir, tests: testsDir, suite: suiteDir };
  const match = /^\/(pkg|tests|suite)\/(.+)$/.exec(urlPath);
  if (match === null) return null;
  const root = resolve(roots[match[1]]);
  const file = resolve(root, `.${sep}${match[2]}`);
  // Nothing outside the two roots, and nothing installed (node_modules) is served.
  if (!file.startsWith(root + sep) || file.includes(`${sep}node_modules${sep}`)) return null;
  return file;
}

/** Starts the static server on an ephemeral port of 127.0.0.1; resolves with it and its origin. */
async function serve() {
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const file = req.method === 'GET' || req.method === 'HEAD' ? fileFor(path) : null;
    try {
      if (file === null || !(await stat(file)).isFile()) throw new Error('not found');
      const body = await readFile(file);
      res.writeHead(200, {
        'content-type': MIME[extname(file)] ?? 'application/octet-stream',
        'content-length': body.length,
        'cache-control': 'no-store',
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end(`not found: ${path}`);
    }
  });
  await new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', ok);
  });
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}

/** Runs the page in Chromium; resolves with its results or rejects saying what went wrong. */
async function runPage() {
  if (!existsSync(chromiumPath)) {
    throw new Error(`no Chromium at ${chromiumPath}: install it (apt-get install -y chromium, or bash tests/ci/chromium.sh) or set CHROMIUM_PATH`);
  }
  let chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch (e) {
    throw new Error(`playwright-core is not installed in tests/js (run: cd tests/js && npm ci, or bash tests/ci/chromium.sh): ${e.message}`);
  }
  const { server, origin } = await serve();
  let browser;
  const log = [];
  try {
    browser = await chromium.launch({
      executablePath: chromiumPath,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = await browser.newPage();
    // An uncaught error means the page will never report: stop waiting at once.
    let pageFailed;
    const failure = new Promise((_, reject) => {
      pageFailed = reject;
    });
    failure.catch(() => {}); // it may fail before anything awaits it
    page.on('console', (m) => log.push(`console.${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => {
      log.push(`page error: ${e.message}`);
      pageFailed(new Error('an uncaught error in the page'));
    });
    page.on('response', (r) => {
      if (r.status() >= 400) log.push(`HTTP ${r.status()} for ${r.url()}`);
    });
    const resultsOf = async (what) => {
      try {
        await Promise.race([
          page.waitForFunction(() => window.onegridResults !== undefined, null, { timeout: PAGE_TIMEOUT_MS, polling: 250 }),
          failure,
        ]);
        const results = await page.evaluate(() => window.onegridResults);
        if (results.loadError) throw new Error(results.loadError);
        return results;
      } catch (e) {
        throw new Error(`the test page reported no results ${what}: ${e.message.split('\n')[0]}\n${log.join('\n') || '(the page logged nothing)'}`);
      }
    };
    await page.goto(`${origin}/tests/browser/index.html`);
    const results = await resultsOf('');
    // The page left a check for after a reload: reload it, as a user would.
    await page.reload();
    const reloaded = await resultsOf('after the reload');
    return { results, reloaded, version: browser.version(), log };
  } finally {
    await browser?.close();
    await new Promise((ok) => server.close(ok));
  }
}

let run;
try {
  run = await runPage();
} catch (e) {
  run = { error: e };
}

if (run.error) {
  test('IndexedDbStorage in Chromium: the test page runs', () => {
    throw run.error;
  });
} else {
  const { results, reloaded, version } = run;
  console.log(`Chromium ${version}: ${results.cases.length} cases on IndexedDbStorage, ${SUITE_CASES.length} of them the storage suite's scenarios`);
  test('IndexedDbStorage in Chromium: the page ran every case of the suite and its own, once each', () => {
    assert.equal(results.phase, 'first');
    assert.deepEqual(results.cases.map((c) => c.name), [...ADAPTER_CASES, ...PAGE_CASES, ...SUITE_CASES]);
    assert.equal(SUITE_CASES.length, SUITE.scenarios.length, 'every scenario of the storage suite');
  });
  test('IndexedDbStorage in Chromium: the reloaded page ran the check after the reload, and only it', () => {
    assert.equal(reloaded.phase, 'after-reload');
    assert.deepEqual(reloaded.cases.map((c) => c.name), AFTER_RELOAD_CASES);
  });
  for (const c of [...results.cases, ...reloaded.cases]) {
    test(`IndexedDbStorage in Chromium: ${c.name}`, () => {
      if (!c.ok) throw new Error(c.error);
    });
  }
  test('IndexedDbStorage in Chromium: timing of a load', () => {
    if (results.timingError) throw new Error(`the timing failed: ${results.timingError}`);
    const f = (n) => n.toFixed(0);
    for (const durability of ['strict', 'relaxed']) {
      const t = results.timing[durability];
      console.log(`IndexedDbStorage (durability ${durability}), ${results.timing.records} records: storeAll ${f(t.storeAll)} ms; `
        + `load ${f(t.load)} ms (loadAllKeys ${f(t.loadAllKeys)} + loadAll ${f(t.loadAll)}); cold load on a new connection ${f(t.coldLoad)} ms`);
    }
    const g = results.timing.grid;
    console.log(`Grid on IndexedDbStorage, ${results.timing.records} records: flush ${f(g.flush)} ms; `
      + `getMapAsync of the map on a new grid and connection ${f(g.load)} ms`);
  });
}
