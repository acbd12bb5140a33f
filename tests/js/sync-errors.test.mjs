// Tests of sync's edges in the JavaScript API: the handshake (onHello accepts, refuses, grants
// permissions), bad frames, clock drift, closing, freeing, argument checks and the error codes.
// Errors are checked by code; a message only where the point is that it travels to the peer.
//
// Run: ONEGRID_PKG=/path/to/pkg node --test tests/js/*.test.mjs

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { ERROR_CODES, OnegridError, T0, assertCode, makeGrid, rejectsWith, throwsError } from './load.mjs';
import { pipe, settle, tick, until } from './sync-helpers.mjs';

const WRITES = 4; // a frame's type is its second byte (the first is the protocol version)

/** Grids `client` and `server` piped, the server's `onHello` being `onHello`. */
function linked(onHello, connect = {}) {
  const client = makeGrid('client');
  const server = makeGrid('server');
  const p = pipe(client.grid, server.grid, { connect, accept: { onHello } });
  return { client, server, p };
}

/** A real `Writes` frame of map `map` (one key), taken from a connection that may write it. */
async function writesFrame(map) {
  const x = makeGrid('x');
  const y = makeGrid('y');
  x.grid.getMap(map).set('first', 1); // a map both have: later writes are pushed
  const p = pipe(x.grid, y.grid);
  await settle([p]);
  const from = p.frames.a.length;
  x.grid.getMap(map).set('k', 'sneaked in');
  await settle([p]);
  const frame = p.frames.a.slice(from).find((f) => f[1] === WRITES);
  assert.ok(frame, 'a Writes frame');
  return frame;
}

describe('sync: the handshake', () => {
  test('onHello hears the node id and the token; what it returns decides', async () => {
    const heard = [];
    const { p } = linked((nodeId, token) => {
      heard.push([nodeId, token]);
      return { read: ['*'] };
    }, { token: 'secret-token' });
    await settle([p]);
    assert.deepEqual(heard, [['client', 'secret-token']]);
    // Without a token, onHello hears undefined; an async onHello works too.
    const later = [];
    const { p: q } = linked(async (nodeId, token) => {
      await tick();
      later.push([nodeId, token]);
    });
    await settle([q]);
    assert.deepEqual(later, [['client', undefined]]);
  });

  test("a refusal in onHello reaches the connecting side's onError and closes both", async () => {
    for (const onHello of [
      () => {
        throw new Error('bad token');
      },
      async () => {
        await tick();
        throw new Error('bad token');
      },
    ]) {
      const { client, server, p } = linked(onHello);
      client.grid.getMap('m').set('k', 1);
      const synced = rejectsWith(p.a.whenSynced(), 'REFUSED');
      await until(() => p.a.state === 'closed' && p.b.state === 'closed', 'both closed');
      const e = assertCode(p.errors.a[0], 'REFUSED');
      assert.match(e.message, /bad token/, 'the message of the error onHello threw travels to the peer');
      assertCode(p.errors.b[0], 'REFUSED');
      await synced;
      await rejectsWith(p.a.whenSynced(), 'REFUSED');
      assert.deepEqual(server.grid.mapNames(), []);
      assert.deepEqual(p.states.a, ['closed']);
    }
  });

  test('onHello returning something that is not permissions refuses the connection', async () => {
    for (const answer of [42, null, { read: 'm' }, { write: [1] }]) {
      const { p } = linked(() => answer);
      await until(() => p.a.state === 'closed', 'closed');
      assertCode(p.errors.a[0], 'REFUSED');
    }
  });

  test('a second connection from a node id already connected is refused', async () => {
    const client = makeGrid('client');
    const twin = makeGrid('client');
    const server = makeGrid('server');
    const first = pipe(client.grid, server.grid);
    await settle([first]);
    const second = pipe(twin.grid, server.grid);
    await until(() => second.a.state === 'closed', 'the second closed');
    assertCode(second.errors.a[0], 'REFUSED');
    assert.equal(first.a.state, 'synced');
  });
});

describe('sync: permissions', () => {
  test('a map the peer may not read never reaches it, even written later', async () => {
    const { client, server, p } = linked(() => ({ read: ['public', 'todo:*'] }));
    server.grid.getMap('public').set('k', 1);
    server.grid.getMap('private').set('k', 'secret');
    server.grid.getORMap('todo:1').add('k', 'task');
    await settle([p]);
    assert.deepEqual(client.grid.mapNames(), ['public', 'todo:1']);
    server.grid.getMap('private').set('k2', 'secret');
    server.grid.getMap('public').set('k2', 2);
    await settle([p]);
    assert.deepEqual(client.grid.mapNames(), ['public', 'todo:1']);
    assert.equal(client.grid.getMap('public').get('k2'), 2);
    assert.deepEqual(p.errors, { a: [], b: [] });
  });

  test('a connecting side does not send writes to maps it may not write; they stay local', async () => {
    const { client, server, p } = linked(() => ({ write: ['notes'] }));
    client.grid.getMap('notes').set('k', 1);
    client.grid.getMap('admin').set('k', 'mine');
    await settle([p]);
    client.grid.getMap('admin').set('k2', 'mine too');
    await p.a.whenSynced();
    await settle([p]);
    assert.deepEqual(server.grid.mapNames(), ['notes']);
    assert.deepEqual(p.errors, { a: [], b: [] });
    // The server's writes to a map the client may read but not write still arrive.
    server.grid.getMap('admin').set('from-server', 1);
    await settle([p]);
    assert.equal(client.grid.getMap('admin').get('from-server'), 1);
    assert.equal(server.grid.getMap('admin').get('k'), undefined);
  });

  test('a write to a map not writable closes the connection with FORBIDDEN, nothing applied', async () => {
    const frame = await writesFrame('secret');
    const { client, server, p } = linked(() => ({ write: ['public'] }));
    server.grid.getMap('public').set('k', 1);
    await settle([p]);
    p.b.receive(frame); // a peer that ignores what it was granted
    await until(() => p.a.state === 'closed' && p.b.state === 'closed', 'both closed');
    assertCode(p.errors.b[0], 'FORBIDDEN');
    assert.match(p.errors.b[0].message, /secret/, 'the error names the map');
    assertCode(p.errors.a[0], 'FORBIDDEN');
    assert.deepEqual(server.grid.mapNames(), ['public']);
    assert.deepEqual(client.grid.mapNames(), ['public']);
  });
});

describe('sync: bad frames', () => {
  test('a garbage frame closes the connection with MALFORMED and leaves the grid unchanged', async () => {
    for (const garbage of [Uint8Array.of(1, 0x7f, 1, 2, 3), Uint8Array.of(), Uint8Array.of(1, 4, 1, 0x6d, 200, 1)]) {
      const { server, p } = linked();
      server.grid.getMap('m').set('k', 1);
      await settle([p]);
      const before = server.grid.exportMap('m');
      p.b.receive(garbage);
      await until(() => p.b.state === 'closed' && p.a.state === 'closed', 'both closed');
      assertCode(p.errors.b[0], 'MALFORMED');
      assertCode(p.errors.a[0], 'MALFORMED');
      assert.deepEqual(server.grid.exportMap('m'), before);
      assert.deepEqual(server.grid.mapNames(), ['m']);
      assert.deepEqual(p.states.b.at(-1), 'closed');
    }
  });

  test('a frame of another protocol version closes with VERSION', async () => {
    const { p } = linked();
    p.b.receive(Uint8Array.of(9, 0, 1, 2));
    await until(() => p.b.state === 'closed', 'closed');
    assertCode(p.errors.b[0], 'VERSION');
  });

  test('receive takes a Uint8Array', () => {
    const { p } = linked();
    for (const bad of [[1, 2], 'frame', new ArrayBuffer(2), undefined]) throwsError(() => p.b.receive(bad), 'INVALID_ARGUMENT');
  });
});

describe('sync: clock drift', () => {
  test('lenient drift is applied and goes to the receiving grid\'s onDrift', async () => {
    const drifts = [];
    const client = makeGrid('client');
    const server = makeGrid('server', { onDrift: (d) => drifts.push(d) });
    client.clock.now = T0 + 3_600_000; // an hour ahead
    client.grid.getMap('m').set('k', 'ahead');
    const p = pipe(client.grid, server.grid);
    await settle([p]);
    assert.equal(server.grid.getMap('m').get('k'), 'ahead');
    assert.equal(drifts.length, 1);
    assert.equal(drifts[0].maxDriftMs, 60_000);
  });

  test('strict drift refuses the frame with CLOCK_DRIFT, nothing applied', async () => {
    const client = makeGrid('client');
    const server = makeGrid('server', { strictDrift: true });
    client.clock.now = T0 + 3_600_000;
    client.grid.getMap('m').set('k', 'ahead');
    const p = pipe(client.grid, server.grid);
    await until(() => p.a.state === 'closed' && p.b.state === 'closed', 'both closed');
    assertCode(p.errors.b[0], 'CLOCK_DRIFT');
    assertCode(p.errors.a[0], 'CLOCK_DRIFT');
    assert.equal(server.grid.hasMap('m') ? server.grid.getMap('m').get('k') : undefined, undefined);
  });
});

describe('sync: closing', () => {
  test('close() rejects whenSynced with CLOSED, calls no onError, and is idempotent', async () => {
    const { client, p } = linked();
    await settle([p]);
    p.b.close(); // the server goes away; the client's writes are never acknowledged
    client.grid.getMap('m').set('k', 1);
    const synced = rejectsWith(p.a.whenSynced(), 'CLOSED');
    await tick();
    p.a.close();
    assert.equal(p.a.state, 'closed');
    p.a.close();
    await synced;
    await rejectsWith(p.a.whenSynced(), 'CLOSED');
    assert.deepEqual(p.errors, { a: [], b: [] });
    assert.equal(p.states.a.filter((s) => s === 'closed').length, 1);
  });

  test('a send that throws closes the connection with CLOSED, its error as cause', async () => {
    const client = makeGrid('client');
    const failure = new Error('the socket is gone');
    const errors = [];
    const conn = client.grid.connect(() => {
      throw failure;
    }, { onError: (e) => errors.push(e) });
    const synced = rejectsWith(conn.whenSynced(), 'CLOSED');
    await until(() => conn.state === 'closed', 'closed');
    const e = assertCode(errors[0], 'CLOSED');
    assert.equal(e.cause, failure);
    await synced;
  });

  test('freeing the grid closes its connections with FREED', async () => {
    const { client, p } = linked();
    await settle([p]);
    client.grid.getMap('m').set('k', 1);
    const synced = rejectsWith(p.a.whenSynced(), 'FREED');
    client.grid.free();
    assert.equal(p.a.state, 'closed');
    assert.deepEqual(p.states.a.at(-1), 'closed');
    await synced;
    p.a.receive(Uint8Array.of(1, 2)); // ignored
    p.a.close(); // harmless
    throwsError(() => client.grid.connect(() => {}), 'FREED');
  });

  test("a callback's error is reported, not thrown, and the connection goes on", async () => {
    const errors = [];
    const original = console.error;
    console.error = (...args) => errors.push(args);
    try {
      const { client, server, p } = linked(undefined, {
        onState: () => {
          throw new Error('onState failed');
        },
      });
      const lww = server.grid.getMap('m');
      lww.subscribe(() => {
        throw new Error('the subscriber failed');
      });
      client.grid.getMap('m').set('k', 1);
      await settle([p]);
      assert.equal(server.grid.getMap('m').get('k'), 1);
      assert.ok(errors.some((args) => args.some((a) => a instanceof Error && a.message === 'onState failed')));
      assert.ok(errors.some((args) => args.some((a) => a instanceof Error && a.message === 'the subscriber failed')));
    } finally {
      console.error = original;
    }
  });
});

describe('sync: arguments and codes', () => {
  test('connect and accept check their arguments', () => {
    const { grid } = makeGrid();
    for (const [call, code] of [
      [() => grid.connect(), 'INVALID_ARGUMENT'],
      [() => grid.connect('ws://x'), 'INVALID_ARGUMENT'],
      [() => grid.connect(() => {}, 'options'), 'INVALID_ARGUMENT'],
      [() => grid.connect(() => {}, { token: 42 }), 'INVALID_ARGUMENT'],
      [() => grid.connect(() => {}, { token: 'a\ud800' }), 'INVALID_ARGUMENT'],
      [() => grid.connect(() => {}, { onState: 'yes' }), 'INVALID_ARGUMENT'],
      [() => grid.accept(() => {}, { onHello: {} }), 'INVALID_ARGUMENT'],
      [() => grid.accept(null), 'INVALID_ARGUMENT'],
    ]) {
      throwsError(call, code);
    }
  });

  test("ERROR_CODES holds every code of the core's error frames", () => {
    const here = dirname(fileURLToPath(import.meta.url));
    const frame = readFileSync(join(here, '..', '..', 'core', 'src', 'sync', 'frame.rs'), 'utf8');
    const block = frame.slice(frame.indexOf('pub mod codes'));
    const codes = [...block.slice(0, block.indexOf('\n}')).matchAll(/pub const \w+: &str = "([A-Z_]+)";/g)].map((m) => m[1]);
    assert.ok(codes.length >= 7, `found ${codes}`);
    // onegrid serve's own refusal of a token.
    const serve = readFileSync(join(here, '..', '..', 'host', 'src', 'serve', 'sync.rs'), 'utf8');
    const unauthorized = /pub const UNAUTHORIZED: &str = "([A-Z_]+)";/.exec(serve)?.[1];
    assert.equal(unauthorized, 'UNAUTHORIZED');
    for (const code of [...codes, unauthorized, 'CLOSED']) assert.ok(ERROR_CODES.includes(code), `${code} is not in ERROR_CODES`);
    assert.ok(new OnegridError('FORBIDDEN', 'x') instanceof Error);
  });
});
