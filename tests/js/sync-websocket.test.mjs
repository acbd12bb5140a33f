// Tests of connectWebSocket (wasm/js/websocket.js) over a fake WebSocket class whose server side is
// a grid accepting each socket: binary frames, the token in the handshake only, getToken per
// attempt, reconnects with exponential backoff and full jitter (injected timers and random),
// Node 20's refused connection (an `error` event only, the socket left CONNECTING), offline writes
// sent by the next connection, whenSynced across reconnects, and close().
//
// Run: ONEGRID_PKG=/path/to/pkg node --test tests/js/*.test.mjs

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { T0, assertCode, connectWebSocket, makeGrid, rejectsWith, throwsError } from './load.mjs';
import { tick, until } from './sync-helpers.mjs';

/**
 * A sync server for fake sockets: a grid that accepts each socket while `up`; a socket opened
 * while it is down fails as Node 20's WebSocket does when the connection is refused (`error`
 * only, readyState stays CONNECTING). `WebSocket` is the class to hand connectWebSocket.
 */
function fakeServer(nodeId = 'server', onHello = undefined) {
  const server = makeGrid(nodeId);
  const state = { up: true, sockets: [], hellos: [], urls: [] };
  class FakeWebSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.binaryType = 'blob';
      this.onopen = null;
      this.onmessage = null;
      this.onerror = null;
      this.onclose = null;
      this.sent = 0;
      state.urls.push(url);
      state.sockets.push(this);
      setImmediate(() => this.#start());
    }

    #start() {
      if (this.readyState !== 0) return;
      if (!state.up) {
        this.onerror?.({ type: 'error' }); // and nothing else: still CONNECTING
        return;
      }
      this.readyState = 1;
      this.conn = server.grid.accept((frame) => {
        const copy = frame.slice().buffer;
        setImmediate(() => {
          if (this.readyState === 1) this.onmessage?.({ data: this.binaryType === 'arraybuffer' ? copy : new Blob([copy]) });
        });
      }, {
        onHello: (id, token) => {
          state.hellos.push([id, token]);
          return onHello?.(id, token);
        },
      });
      this.onopen?.({ type: 'open' });
    }

    send(data) {
      assert.ok(data instanceof Uint8Array, 'frames are sent as bytes');
      if (this.readyState !== 1) throw new Error('InvalidStateError: not open');
      this.sent++;
      const copy = data.slice();
      setImmediate(() => {
        if (this.readyState === 1) this.conn.receive(copy);
      });
    }

    close() {
      if (this.readyState >= 2) return;
      const wasOpen = this.readyState === 1;
      this.readyState = 3;
      this.conn?.close();
      if (wasOpen) setImmediate(() => this.onclose?.({ type: 'close', code: 1000 }));
    }

    /** The server side drops the socket (the network went away). */
    drop() {
      if (this.readyState !== 1) return;
      this.readyState = 3;
      this.conn.close();
      setImmediate(() => this.onclose?.({ type: 'close', code: 1006 }));
    }

    /** A text message arrives. */
    text(s) {
      this.onmessage?.({ data: s });
    }
  }
  return {
    ...server,
    state,
    WebSocket: FakeWebSocket,
    open: () => state.sockets.filter((s) => s.readyState === 1),
    /** Takes the server down, dropping every open socket. */
    down() {
      state.up = false;
      for (const s of state.sockets) s.drop();
    },
    up() {
      state.up = true;
    },
  };
}

/** Timers run by hand: `timers.delays` records each delay asked for; `timers.next()` runs the
 * first pending one. */
function manualTimers() {
  const pending = [];
  const timers = {
    delays: [],
    pending,
    setTimeout(fn, ms) {
      timers.delays.push(ms);
      const t = { fn, ms };
      pending.push(t);
      return t;
    },
    clearTimeout(t) {
      const at = pending.indexOf(t);
      if (at >= 0) pending.splice(at, 1);
    },
    next() {
      const t = pending.shift();
      assert.ok(t, 'a timer is pending');
      t.fn();
    },
  };
  return timers;
}

describe('connectWebSocket', () => {
  test('syncs both ways over binary frames; the token travels in the handshake only', async () => {
    const srv = fakeServer();
    srv.grid.getMap('m').set('from-server', 1);
    const client = makeGrid('client');
    client.grid.getMap('m').set('from-client', 2);
    const states = [];
    const live = connectWebSocket(client.grid, 'wss://sync.example/room/1', {
      token: 'secret-token',
      WebSocket: srv.WebSocket,
      onState: (s) => states.push(s),
    });
    assert.equal(live.state, 'connecting');
    await live.whenSynced();
    await until(() => live.state === 'synced', 'synced');
    assert.deepEqual(states, ['syncing', 'synced']);
    assert.equal(client.grid.getMap('m').get('from-server'), 1);
    assert.equal(srv.grid.getMap('m').get('from-client'), 2);
    assert.deepEqual(srv.state.urls, ['wss://sync.example/room/1']);
    assert.deepEqual(srv.state.hellos, [['client', 'secret-token']]);
    assert.equal(srv.state.sockets[0].binaryType, 'arraybuffer');
    assert.equal(live.pendingWrites, 0);
    live.close();
    assert.equal(live.state, 'closed');
    assert.deepEqual(states.at(-1), 'closed');
  });

  test('getToken is asked on every attempt, and may be async', async () => {
    const srv = fakeServer();
    const timers = manualTimers();
    let n = 0;
    const client = makeGrid('client');
    const live = connectWebSocket(client.grid, 'ws://x', {
      getToken: async () => {
        await tick();
        n++;
        return `token-${n}`;
      },
      WebSocket: srv.WebSocket,
      setTimeout: timers.setTimeout,
      clearTimeout: timers.clearTimeout,
      random: () => 0,
    });
    await until(() => live.state === 'synced', 'synced');
    srv.down();
    await until(() => timers.pending.length === 1, 'a retry');
    timers.next(); // refused: the server is down
    await until(() => timers.pending.length === 1, 'another retry');
    srv.up();
    timers.next();
    await until(() => live.state === 'synced', 'synced again');
    assert.equal(n, 3);
    assert.deepEqual(srv.state.hellos.map(([, token]) => token), ['token-1', 'token-3']);
    assert.deepEqual(srv.state.urls, ['ws://x', 'ws://x', 'ws://x']);
    live.close();
  });

  test('reconnects with exponential backoff and full jitter, capped, reset by a sync', async () => {
    const srv = fakeServer();
    srv.state.up = false; // refused from the start
    const timers = manualTimers();
    let random = 1;
    const client = makeGrid('client');
    const live = connectWebSocket(client.grid, 'ws://x', {
      WebSocket: srv.WebSocket,
      setTimeout: timers.setTimeout,
      clearTimeout: timers.clearTimeout,
      random: () => random,
    });
    for (let i = 0; i < 9; i++) {
      await until(() => timers.pending.length === 1, `retry ${i}`);
      if (i === 8) break;
      timers.next();
    }
    // Node 20's refused socket: an error event only, the socket still CONNECTING.
    assert.ok(srv.state.sockets.every((s) => s.readyState !== 1));
    assert.deepEqual(timers.delays, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    assert.equal(live.state, 'connecting');
    // Full jitter: a random part of the cap.
    random = 0.25;
    srv.up();
    timers.next();
    await until(() => live.state === 'synced', 'synced');
    srv.state.sockets.at(-1).drop();
    await until(() => timers.pending.length === 1, 'a retry after the drop');
    assert.equal(timers.delays.at(-1), 125, 'the backoff starts over after a sync');
    assert.equal(live.state, 'connecting');
    live.close();
    assert.equal(timers.pending.length, 0, 'close() clears the timer');
  });

  test('writes made offline are sent by the next connection; whenSynced spans reconnects', async () => {
    const srv = fakeServer();
    const timers = manualTimers();
    const client = makeGrid('client');
    const live = connectWebSocket(client.grid, 'ws://x', {
      WebSocket: srv.WebSocket,
      setTimeout: timers.setTimeout,
      clearTimeout: timers.clearTimeout,
      random: () => 0,
    });
    await until(() => live.state === 'synced', 'synced');
    srv.down();
    await until(() => live.state === 'connecting', 'disconnected');
    client.clock.now = T0 + 10;
    const m = client.grid.getMap('m');
    m.set('offline-1', 1);
    m.set('offline-2', 2);
    client.grid.getORMap('o').add('k', 'offline');
    assert.equal(live.pendingWrites, 3);
    let synced = false;
    const done = live.whenSynced().then(() => {
      synced = true;
    });
    timers.next(); // refused
    await until(() => timers.pending.length === 1, 'a retry');
    await tick();
    assert.equal(synced, false);
    srv.up();
    timers.next();
    await done;
    assert.equal(srv.grid.getMap('m').get('offline-2'), 2);
    assert.deepEqual(srv.grid.getORMap('o').get('k'), ['offline']);
    assert.equal(live.pendingWrites, 0);

    // A write whose connection drops before its acknowledgement: the next one gets it there.
    m.set('in-flight', 3);
    const acked = live.whenSynced();
    srv.state.sockets.at(-1).drop();
    await until(() => timers.pending.length === 1, 'a retry');
    timers.next();
    await acked;
    assert.equal(srv.grid.getMap('m').get('in-flight'), 3);
    live.close();
  });

  test('close() stops reconnecting and rejects whenSynced with CLOSED', async () => {
    const srv = fakeServer();
    srv.state.up = false;
    const timers = manualTimers();
    const client = makeGrid('client');
    const states = [];
    const live = connectWebSocket(client.grid, 'ws://x', {
      WebSocket: srv.WebSocket,
      setTimeout: timers.setTimeout,
      clearTimeout: timers.clearTimeout,
      onState: (s) => states.push(s),
    });
    client.grid.getMap('m').set('k', 1);
    const synced = rejectsWith(live.whenSynced(), 'CLOSED');
    await until(() => timers.pending.length === 1, 'a retry');
    live.close();
    await synced;
    await rejectsWith(live.whenSynced(), 'CLOSED');
    assert.equal(timers.pending.length, 0);
    assert.deepEqual(states, ['closed']);
    live.close(); // twice is harmless
    for (let i = 0; i < 5; i++) await tick();
    assert.equal(srv.state.sockets.length, 1, 'no socket after close()');
  });

  test('reconnect: false closes for good when the socket drops', async () => {
    const srv = fakeServer();
    const client = makeGrid('client');
    const live = connectWebSocket(client.grid, 'ws://x', { WebSocket: srv.WebSocket, reconnect: false });
    await until(() => live.state === 'synced', 'synced');
    srv.down();
    await until(() => live.state === 'closed', 'closed');
    await rejectsWith(live.whenSynced(), 'CLOSED');
  });

  test("the server's refusal reaches onError, and the next attempt asks for a new token", async () => {
    let accept = false;
    const srv = fakeServer('server', (id, token) => {
      if (!accept) throw new Error(`token ${token} expired`);
    });
    const timers = manualTimers();
    const errors = [];
    let n = 0;
    const client = makeGrid('client');
    const live = connectWebSocket(client.grid, 'ws://x', {
      getToken: () => `t${++n}`,
      WebSocket: srv.WebSocket,
      setTimeout: timers.setTimeout,
      clearTimeout: timers.clearTimeout,
      random: () => 0,
      onError: (e) => errors.push(e),
    });
    await until(() => timers.pending.length === 1, 'a retry');
    assertCode(errors[0], 'REFUSED');
    assert.match(errors[0].message, /token t1 expired/, "the message is the server's");
    accept = true;
    timers.next();
    await until(() => live.state === 'synced', 'synced');
    assert.deepEqual(srv.state.hellos.map(([, t]) => t), ['t1', 't2']);
    live.close();
  });

  test('getToken failing, a text message: onError hears of it and the connection is tried again', async () => {
    const srv = fakeServer();
    const timers = manualTimers();
    const errors = [];
    let fail = true;
    const cause = new Error('signed out');
    const client = makeGrid('client');
    const live = connectWebSocket(client.grid, 'ws://x', {
      getToken: () => {
        if (fail) throw cause;
        return 'ok';
      },
      WebSocket: srv.WebSocket,
      setTimeout: timers.setTimeout,
      clearTimeout: timers.clearTimeout,
      random: () => 0,
      onError: (e) => errors.push(e),
    });
    await until(() => timers.pending.length === 1, 'a retry');
    assert.equal(assertCode(errors[0], 'REFUSED').cause, cause);
    assert.equal(srv.state.sockets.length, 0);
    fail = false;
    timers.next();
    await until(() => live.state === 'synced', 'synced');
    srv.state.sockets[0].text('hello');
    await until(() => timers.pending.length === 1, 'a retry');
    assertCode(errors[1], 'MALFORMED');
    timers.next();
    await until(() => live.state === 'synced', 'synced again');
    live.close();
  });

  test('freeing the grid stops it', async () => {
    const srv = fakeServer();
    const client = makeGrid('client');
    const live = connectWebSocket(client.grid, 'ws://x', { WebSocket: srv.WebSocket });
    await until(() => live.state === 'synced', 'synced');
    client.grid.free();
    await until(() => live.state === 'closed', 'closed');
    await rejectsWith(live.whenSynced(), 'FREED');
  });

  test('arguments are checked', () => {
    const { grid } = makeGrid();
    const WebSocket = fakeServer().WebSocket;
    for (const [call, code] of [
      [() => connectWebSocket({}, 'ws://x', { WebSocket }), 'INVALID_ARGUMENT'],
      [() => connectWebSocket(grid, 42, { WebSocket }), 'INVALID_ARGUMENT'],
      [() => connectWebSocket(grid, 'ws://x', { WebSocket, token: 1 }), 'INVALID_ARGUMENT'],
      [() => connectWebSocket(grid, 'ws://x', { WebSocket, getToken: 'x' }), 'INVALID_ARGUMENT'],
      [() => connectWebSocket(grid, 'ws://x', { WebSocket, reconnect: 'yes' }), 'INVALID_ARGUMENT'],
      [() => connectWebSocket(grid, 'ws://x', { WebSocket, retryDelayMs: -1 }), 'INVALID_ARGUMENT'],
      [() => connectWebSocket(grid, 'ws://x', 'options'), 'INVALID_ARGUMENT'],
    ]) {
      throwsError(call, code);
    }
    if (globalThis.WebSocket === undefined) throwsError(() => connectWebSocket(grid, 'ws://x'), 'INVALID_ARGUMENT');
  });
});
