// A sync server over real WebSockets for the tests (the `ws` package): each socket is one
// connection `grid.accept`s, binary frames both ways.

import { once } from 'node:events';

import { WebSocketServer } from 'ws';

/**
 * Serves `grid` on 127.0.0.1 (`port` 0: any free one). Returns `{ port, urls, hellos, stop }`:
 * the paths asked for, the `[nodeId, token]` of each hello, and `stop()`, which drops every
 * socket and closes the server.
 */
export async function serve(grid, { port = 0 } = {}) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port });
  await once(wss, 'listening');
  const sockets = new Set();
  const urls = [];
  const hellos = [];
  wss.on('connection', (socket, request) => {
    sockets.add(socket);
    urls.push(request.url);
    const conn = grid.accept((frame) => socket.send(frame), {
      onHello: (nodeId, token) => {
        hellos.push([nodeId, token]);
      },
    });
    socket.on('message', (data, isBinary) => {
      if (isBinary) conn.receive(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    });
    socket.on('close', () => {
      sockets.delete(socket);
      conn.close();
    });
  });
  return {
    port: wss.address().port,
    urls,
    hellos,
    async stop() {
      for (const s of sockets) s.terminate();
      await new Promise((resolve) => wss.close(resolve));
    },
  };
}
