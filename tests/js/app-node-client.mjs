// A Node client of `onegrid serve`, for app.test.mjs: the same package the browsers load, over a
// WebSocket. Connects to $ONEGRID_URL's /sync, waits until synced, prints what it sees as one JSON
// line (the maps' entries and roots), and exits. Run with --experimental-websocket on Node 20.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const pkgDir = process.env.ONEGRID_PKG;
const url = new URL('/sync', process.env.ONEGRID_URL);
url.protocol = 'ws:';
const onegrid = await import(pathToFileURL(join(pkgDir, 'onegrid.js')).href);
onegrid.initSync({ module: readFileSync(join(pkgDir, 'onegrid_bg.wasm')) });
const grid = new onegrid.Grid({ nodeId: `node-client-${process.pid}` });
const live = onegrid.connectWebSocket(grid, url.href, { WebSocket: globalThis.WebSocket, reconnect: true });
const deadline = setTimeout(() => {
  console.error(`not synced after 30 s: ${live.state}`);
  process.exit(1);
}, 30_000);
while (live.state !== 'synced') await new Promise((ok) => setTimeout(ok, 50));
clearTimeout(deadline);
const out = {};
for (const [name, kind] of [['lists', 'lww'], ['tasks', 'lww'], ['tags', 'or']]) {
  const map = kind === 'lww' ? grid.getMap(name) : grid.getORMap(name);
  out[name] = { root: map.rootHash(), entries: map.entries() };
}
console.log(JSON.stringify(out));
live.close();
process.exit(0);
