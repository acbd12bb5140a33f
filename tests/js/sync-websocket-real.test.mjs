// Tests of connectWebSocket over real sockets: the `ws` package's server (tests/js/ws-server.mjs)
// and client class, and Node 20's built-in WebSocket (--experimental-websocket, in a child
// process), whose refused connection fires `error` only.
//
// Run: ONEGRID_PKG=/path/to/pkg node --test tests/js/*.test.mjs

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { WebSocket } from 'ws';

import { T0, connectWebSocket, makeGrid, pkgDir } from './load.mjs';
import { until } from './sync-helpers.mjs';
import { serve } from './ws-server.mjs';

const here = dirname(fileURLToPath(import.meta.url));

describe('connectWebSocket over real sockets', () => {
  test('syncs over the ws package, and after the server restarts, sends what was written meanwhile', async () => {
    const server = makeGrid('server');
    server.grid.getMap('m').set('from-server', 1);
    let srv = await serve(server.grid);
    const port = srv.port;
    const client = makeGrid('client');
    client.grid.getMap('m').set('from-client', 2);
    const live = connectWebSocket(client.grid, `ws://127.0.0.1:${port}/room`, {
      WebSocket,
      token: 'secret',
      retryDelayMs: 10,
      maxRetryDelayMs: 50,
    });
    try {
      await live.whenSynced();
      await until(() => live.state === 'synced', 'synced');
      assert.equal(client.grid.getMap('m').get('from-server'), 1);
      assert.equal(server.grid.getMap('m').get('from-client'), 2);
      assert.deepEqual(srv.urls, ['/room']);
      assert.deepEqual(srv.hellos, [['client', 'secret']]);

      await srv.stop();
      await until(() => live.state === 'connecting', 'disconnected', 10_000);
      client.clock.now = T0 + 5;
      client.grid.getMap('m').set('offline', 3);
      const synced = live.whenSynced();
      srv = await serve(server.grid, { port });
      await synced;
      assert.equal(server.grid.getMap('m').get('offline'), 3);
    } finally {
      live.close();
      await srv.stop();
    }
  });

  test("Node 20's WebSocket: a refused connection (error only) is tried again until a server is there", async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--experimental-websocket', join(here, 'ws-node20-child.mjs')], {
      env: { ...process.env, ONEGRID_PKG: pkgDir },
      timeout: 30_000,
    });
    const result = JSON.parse(stdout.trim().split('\n').at(-1));
    assert.equal(result.refused.length, 3);
    for (const events of result.refused) assert.ok(events.includes('error') && !events.includes('open'), JSON.stringify(events));
    assert.equal(result.value, 'from a refused client');
    assert.deepEqual(result.hellos, [['client', 't']]);
  });
});
