// The web app end to end, as people use it: `onegrid serve` (the binary, $ONEGRID_BIN) on a
// SQLite file, and two separate browser profiles in real headless Chromium (playwright-core,
// Debian's Chromium as in browser.test.mjs). Both edit while the server is stopped, one reloads
// with the server down (the service worker and IndexedDB bring the board back before any
// network), the server restarts on the same file, and both converge with nothing lost; a Node
// client on the same package then sees the very same state.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { pkgDir } from './load.mjs';

const testsDir = dirname(fileURLToPath(import.meta.url));
const repo = resolve(testsDir, '..', '..');
const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const bin = process.env.ONEGRID_BIN || join(repo, 'target', 'debug', 'onegrid');
const ARGS = ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const WAIT = { timeout: 90_000, polling: 100 };

/** A free loopback port (the server restarts on the same one, so the pages reconnect to it). */
async function freePort() {
  const server = createServer();
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address();
  await new Promise((ok) => server.close(ok));
  return port;
}

/** Starts `onegrid serve`; resolves once it prints its URL. */
function startServer(port, db) {
  const child = spawn(bin, ['serve', '--addr', `127.0.0.1:${port}`, '--db', db], { stdio: ['ignore', 'pipe', 'pipe'] });
  const log = [];
  child.stderr.on('data', (d) => log.push(String(d)));
  return new Promise((ok, fail) => {
    child.on('error', fail);
    child.on('exit', (code) => fail(new Error(`onegrid serve exited (${code}): ${log.join('')}`)));
    child.stdout.on('data', (d) => {
      if (String(d).includes('open http://')) ok({ child, log });
    });
  });
}

async function stopServer({ child }) {
  const exited = new Promise((ok) => child.once('exit', ok));
  child.kill('SIGTERM');
  await exited;
}

/** Runs the Node client (app-node-client.mjs) against the server: what it sees once synced. */
function nodeClient(origin) {
  const flags = typeof WebSocket === 'undefined' ? ['--experimental-websocket'] : [];
  const child = spawn(process.execPath, [...flags, join(testsDir, 'app-node-client.mjs')], {
    env: { ...process.env, ONEGRID_PKG: pkgDir, ONEGRID_URL: origin },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  return new Promise((ok, fail) => {
    child.on('exit', (code) => (code === 0 ? ok(JSON.parse(out)) : fail(new Error(`the Node client failed (${code}): ${err}`))));
  });
}

/** What a page's grid holds: entries and roots of the app's three maps. */
function stateOf(page) {
  return page.evaluate(() => {
    const { lists, tasks, tags } = window.onegridApp.maps;
    const of = (m) => ({ root: m.rootHash(), entries: m.entries() });
    return { lists: of(lists), tasks: of(tasks), tags: of(tags) };
  });
}

/** The id of the task titled `title`. */
function taskId(page, title) {
  return page.evaluate((t) => window.onegridApp.maps.tasks.entries().find(([, v]) => v.title === t)?.[0], title);
}

test('two browsers edit offline, the server restarts on the same file, everything converges', { timeout: 300_000 }, async () => {
  assert.ok(existsSync(bin), `no onegrid binary at ${bin} (cargo build -p onegrid-host, or set ONEGRID_BIN)`);
  assert.ok(existsSync(chromiumPath), `no Chromium at ${chromiumPath} (bash tests/ci/chromium.sh)`);
  const { chromium } = await import('playwright-core');
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const db = join(mkdtempSync(join(tmpdir(), 'onegrid-app-')), 'board.db');
  let server = await startServer(port, db);
  const browser = await chromium.launch({ executablePath: chromiumPath, args: ARGS });
  try {
    // Two profiles: separate IndexedDB, service workers and tabs, as two people's browsers.
    const [a, b] = await Promise.all([browser.newContext(), browser.newContext()].map(async (c) => {
      const page = await (await c).newPage();
      page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
      await page.goto(origin);
      await page.waitForFunction(() => window.onegridApp?.live.state === 'synced', null, WAIT);
      // Controlled by the service worker, so it can reload without the server.
      await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, WAIT);
      return page;
    }));

    // The module each page runs is the one the server runs.
    const sha = createHash('sha256').update(readFileSync(join(pkgDir, 'onegrid_bg.wasm'))).digest('hex');
    assert.equal(await a.textContent('#module-sha'), sha);
    assert.notEqual(await a.textContent('#node'), await b.textContent('#node'), 'a node id per tab');

    // Online: a list and a task made in A reach B through the UI.
    await a.fill('#new-list-name', 'Groceries');
    await a.click('#new-list button[type=submit]');
    await a.fill('.new-task input', 'eggs');
    await a.press('.new-task input', 'Enter');
    await b.waitForFunction(() => window.onegridApp.maps.tasks.size === 1, null, WAIT);
    await Promise.all([a, b].map((p) => p.waitForFunction(() => window.onegridApp.live.pendingWrites === 0 && window.onegridApp.live.state === 'synced', null, WAIT)));

    // The server goes away; both keep editing.
    await stopServer(server);
    await Promise.all([a, b].map((p) => p.waitForFunction(() => window.onegridApp.live.state !== 'synced', null, WAIT)));
    const eggs = await taskId(a, 'eggs');
    await a.fill('.new-task input', 'milk');
    await a.press('.new-task input', 'Enter');
    await b.fill('.new-task input', 'bread');
    await b.press('.new-task input', 'Enter');
    // The same task renamed on both sides: a concurrent edit, resolved by the later write.
    await a.fill(`[data-task="${eggs}"] .title`, 'eggs (6)');
    await a.press(`[data-task="${eggs}"] .title`, 'Enter');
    await b.fill(`[data-task="${eggs}"] .title`, 'eggs (12)');
    await b.press(`[data-task="${eggs}"] .title`, 'Enter');
    await a.fill(`[data-task="${eggs}"] .new-tag input`, 'dairy');
    await a.press(`[data-task="${eggs}"] .new-tag input`, 'Enter');
    await b.fill(`[data-task="${eggs}"] .new-tag input`, 'fresh');
    await b.press(`[data-task="${eggs}"] .new-tag input`, 'Enter');
    await Promise.all([a, b].map((p) => p.waitForFunction(() => window.onegridApp.live.pendingWrites > 0, null, WAIT)));

    // A reloads while the server is down: the shell comes from the service worker, the board from
    // IndexedDB, before any network.
    await a.evaluate(() => window.onegridApp.grid.flush());
    await a.reload();
    await a.waitForFunction(() => window.onegridApp?.maps.tasks.size === 2, null, WAIT);
    assert.deepEqual((await a.$$eval('.task .title', (els) => els.map((e) => e.value))).sort(), ['eggs (6)', 'milk']);

    // Back on the same file: both reconnect and converge, nothing lost.
    server = await startServer(port, db);
    await Promise.all([a, b].map((p) => p.waitForFunction(() => window.onegridApp.live.state === 'synced' && window.onegridApp.live.pendingWrites === 0, null, WAIT)));
    const [sa, sb] = await Promise.all([stateOf(a), stateOf(b)]);
    assert.deepEqual(sa, sb, 'both browsers hold the same maps');
    const titles = sa.tasks.entries.map(([, t]) => t.title).sort();
    assert.equal(titles.length, 3);
    assert.ok(titles.includes('milk') && titles.includes('bread'), titles.join());
    assert.ok(titles.includes('eggs (6)') !== titles.includes('eggs (12)'), `one rename won: ${titles.join()}`);
    assert.deepEqual(sa.tags.entries.find(([k]) => k === eggs)?.[1].sort(), ['dairy', 'fresh'], 'both tags kept (OR map)');
    // The tab whose rename lost says so.
    const loser = titles.includes('eggs (6)') ? b : a;
    await loser.waitForFunction(() => document.querySelector('#activity').textContent.includes('Concurrent edit'), null, WAIT);

    // A Node client on the same package sees the same state.
    const seen = await nodeClient(origin);
    assert.deepEqual(seen, sa);
  } finally {
    await browser.close();
    await stopServer(server).catch(() => {});
  }
});
