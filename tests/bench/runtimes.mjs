// The JavaScript engines of the runtimes bench; `cargo bench -p onegrid-host --bench runtimes`
// (host/benches/runtimes.rs, which explains the whole) runs this twice:
//   node --expose-gc tests/bench/runtimes.mjs node DIR      the byte ABI and the JS API in Node
//   node tests/bench/runtimes.mjs chromium DIR              the same in headless Chromium
// DIR holds what the Rust bench wrote: the package (DIR/pkg), trace.json and trace.bin. Both
// run runtimes-workloads.mjs and print its results as JSON on stdout, with the engine's name.
//
// Chromium: $CHROMIUM_PATH (default /usr/bin/chromium), driven by the playwright-core installed
// in tests/js (`bash tests/ci/chromium.sh` installs both). A static server on 127.0.0.1 serves
// DIR/pkg under /pkg/, trace.json and trace.bin under /trace/, and the page with the workloads
// under /bench/, cross-origin isolated so performance.now() keeps its fine resolution.

import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { readFrames, runWorkloads, trapImports } from './runtimes-workloads.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const [engine, dirArg] = process.argv.slice(2);
if (!['node', 'chromium'].includes(engine) || dirArg === undefined) {
  console.error('usage: node --expose-gc runtimes.mjs node|chromium DIR');
  process.exit(2);
}
const dir = resolve(dirArg);
const PAGE_TIMEOUT_MS = 30 * 60_000;

async function inNode() {
  const pkg = join(dir, 'pkg');
  const { initSync, Grid } = await import(pathToFileURL(join(pkg, 'onegrid.js')).href);
  const module = new WebAssembly.Module(readFileSync(join(pkg, 'onegrid_bg.wasm')));
  initSync({ module });
  const abi = new WebAssembly.Instance(module, trapImports(module)).exports;
  const trace = JSON.parse(readFileSync(join(dir, 'trace.json'), 'utf8'));
  const frames = readFrames(new Uint8Array(readFileSync(join(dir, 'trace.bin'))));
  const results = runWorkloads({ Grid, abi, trace, frames, gc: globalThis.gc });
  return { engine: `Node ${process.versions.node}`, ...results };
}

const MIME = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm' };

/** The file a URL path names, or null. */
function fileFor(path) {
  const fixed = {
    '/bench/runtimes.html': join(here, 'runtimes.html'),
    '/bench/runtimes-workloads.mjs': join(here, 'runtimes-workloads.mjs'),
    '/js/byte-abi.mjs': join(here, '..', 'js', 'byte-abi.mjs'),
    '/trace/trace.json': join(dir, 'trace.json'),
    '/trace/trace.bin': join(dir, 'trace.bin'),
  };
  if (Object.hasOwn(fixed, path)) return fixed[path];
  const pkgFile = /^\/pkg\/([\w.-]+)$/.exec(path); // one file name, no directories
  return pkgFile === null ? null : join(dir, 'pkg', pkgFile[1]);
}

async function serve() {
  const server = createServer((req, res) => {
    const file = fileFor(decodeURIComponent(new URL(req.url, 'http://x').pathname));
    if (file === null || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    const body = readFileSync(file);
    res.writeHead(200, {
      'content-type': MIME[file.slice(file.lastIndexOf('.'))] ?? 'application/octet-stream',
      'content-length': body.length,
      'cache-control': 'no-store',
      // Cross-origin isolation: timers at 5 µs instead of 100 µs.
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-embedder-policy': 'require-corp',
    });
    res.end(body);
  });
  await new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', ok);
  });
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}

async function inChromium() {
  const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
  if (!existsSync(chromiumPath)) throw new Error(`no Chromium at ${chromiumPath}: bash tests/ci/chromium.sh, or set CHROMIUM_PATH`);
  let chromium;
  try {
    ({ chromium } = createRequire(join(here, '..', 'js', 'package.json'))('playwright-core'));
  } catch (e) {
    throw new Error(`playwright-core is not installed in tests/js (bash tests/ci/chromium.sh): ${e.message}`);
  }
  const { server, origin } = await serve();
  let browser;
  try {
    browser = await chromium.launch({
      executablePath: chromiumPath,
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--js-flags=--expose-gc'],
    });
    const page = await browser.newPage();
    page.on('console', (m) => console.error(`chromium console.${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => console.error(`chromium page error: ${e.message}`));
    await page.goto(`${origin}/bench/runtimes.html`);
    await page.waitForFunction(() => window.benchResults !== undefined, null, { timeout: PAGE_TIMEOUT_MS, polling: 500 });
    const results = await page.evaluate(() => window.benchResults);
    if (results.error) throw new Error(`the page failed: ${results.error}`);
    return { engine: `Chromium ${browser.version()}`, ...results };
  } finally {
    await browser?.close();
    await new Promise((ok) => server.close(ok));
  }
}

const results = engine === 'node' ? await inNode() : await inChromium();
process.stdout.write(JSON.stringify(results));
