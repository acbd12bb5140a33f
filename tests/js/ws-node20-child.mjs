// Run by sync-websocket-real.test.mjs in a Node started with --experimental-websocket (Node 20's
// built-in WebSocket): connectWebSocket to a port nothing listens on (each attempt fails with an
// `error` event only), then a server comes up there and the write made meanwhile reaches it.
// Prints the outcome as JSON.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { serve } from './ws-server.mjs';

const pkg = process.env.ONEGRID_PKG;
const onegrid = await import(pathToFileURL(join(pkg, 'onegrid.js')).href);
onegrid.initSync({ module: readFileSync(join(pkg, 'onegrid_bg.wasm')) });

// A port nothing listens on.
const probe = createServer().listen(0, '127.0.0.1');
await new Promise((resolve) => probe.once('listening', resolve));
const port = probe.address().port;
await new Promise((resolve) => probe.close(resolve));

const events = [];
class Watched extends globalThis.WebSocket {
  constructor(url) {
    super(url);
    const n = events.length;
    events.push([]);
    for (const type of ['open', 'error', 'close']) this.addEventListener(type, () => events[n].push(type));
  }
}
const client = new onegrid.Grid({ nodeId: 'client' });
client.getMap('m').set('k', 'from a refused client');
const live = onegrid.connectWebSocket(client, `ws://127.0.0.1:${port}/sync`, {
  WebSocket: Watched,
  token: 't',
  retryDelayMs: 20,
  maxRetryDelayMs: 40,
});
const deadline = Date.now() + 10_000;
while (events.length < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
const refused = events.slice(0, 3);
const server = new onegrid.Grid({ nodeId: 'server' });
const srv = await serve(server, { port });
let timer;
await Promise.race([live.whenSynced(), new Promise((resolve) => (timer = setTimeout(resolve, 10_000)))]);
clearTimeout(timer);
const result = { refused, value: server.hasMap('m') ? server.getMap('m').get('k') : null, state: live.state, hellos: srv.hellos };
live.close();
await srv.stop();
console.log(JSON.stringify(result));
