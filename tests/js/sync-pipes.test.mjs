// Tests of sync between grids in the JavaScript API (wasm/js/sync.js over the module's hub): grids
// connected through in-memory pipes (frames delivered in order, each on a later macrotask)
// converge both ways, LWW and OR, two and three of them, across disconnections.
//
// Run: ONEGRID_PKG=/path/to/pkg node --test tests/js/*.test.mjs

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { T0, makeGrid } from './load.mjs';
import { assertConverged, pipe, settle, tick, until } from './sync-helpers.mjs';

/** Some writes of every kind on `grid`, tagged with `tag`. */
function writeSome(grid, tag) {
  const lww = grid.getMap('m');
  lww.set(`${tag}-1`, { by: tag, n: 1 });
  lww.set(`${tag}-2`, [tag, 2]);
  lww.set('shared', tag);
  lww.remove(`${tag}-gone`);
  const or = grid.getORMap('o');
  or.add('k', tag);
  or.add(`${tag}-k`, 1);
  or.add(`${tag}-k`, 2);
  or.remove(`${tag}-k`, 1);
}

describe('sync through pipes', () => {
  test('two grids converge both ways, LWW and OR, and report their states', async () => {
    const a = makeGrid('a');
    const b = makeGrid('b');
    writeSome(a.grid, 'a');
    b.clock.now = T0 + 1;
    writeSome(b.grid, 'b');
    const p = pipe(a.grid, b.grid);
    assert.equal(p.a.state, 'connecting');
    assert.equal(p.b.state, 'connecting');
    await settle([p]);
    assert.deepEqual(p.states.a, ['syncing', 'synced']);
    assert.deepEqual(p.states.b, ['syncing', 'synced']);
    assert.equal(p.a.peer, 'b');
    assert.equal(p.b.peer, 'a');
    assert.deepEqual(p.errors, { a: [], b: [] });
    assertConverged([a.grid, b.grid], { m: 'lww', o: 'or' });
    const lww = a.grid.getMap('m');
    assert.equal(lww.get('shared'), 'b'); // the later write wins on both
    assert.deepEqual(lww.get('a-1'), { by: 'a', n: 1 });
    assert.deepEqual(b.grid.getMap('m').get('a-2'), ['a', 2]);
    assert.deepEqual(b.grid.getORMap('o').get('k'), ['a', 'b']);
    assert.deepEqual(a.grid.getORMap('o').get('b-k'), [2]);
    assert.equal(p.a.pendingWrites, 0);
    assert.equal(p.b.pendingWrites, 0);

    // Writes while connected are pushed, both ways.
    a.clock.now = T0 + 5;
    a.grid.getMap('m').set('live', 'from a');
    b.grid.getORMap('o').remove('k', 'a');
    assert.equal(p.a.pendingWrites, 1);
    await p.a.whenSynced();
    await p.b.whenSynced();
    await settle([p]);
    assertConverged([a.grid, b.grid], { m: 'lww', o: 'or' });
    assert.equal(b.grid.getMap('m').get('live'), 'from a');
    assert.deepEqual(a.grid.getORMap('o').get('k'), ['b']);
  });

  test('frames handed to the peer at once, inside send, work too', async () => {
    const a = makeGrid('a');
    const b = makeGrid('b');
    writeSome(a.grid, 'a');
    writeSome(b.grid, 'b');
    let ca = null;
    let cb = null;
    ca = a.grid.connect((frame) => cb.receive(frame));
    cb = b.grid.accept((frame) => ca.receive(frame));
    await ca.whenSynced();
    await cb.whenSynced();
    await until(() => ca.state === 'synced' && cb.state === 'synced', 'both synced');
    assertConverged([a.grid, b.grid], { m: 'lww', o: 'or' });
  });

  test('maps only one side has are made on the other with their kind', async () => {
    const a = makeGrid('a');
    const b = makeGrid('b');
    a.grid.getMap('only-a').set('k', 1);
    b.grid.getORMap('only-b').add('k', 2);
    const p = pipe(a.grid, b.grid);
    await settle([p]);
    assertConverged([a.grid, b.grid], { 'only-a': 'lww', 'only-b': 'or' });
    assert.deepEqual(a.grid.getORMap('only-b').get('k'), [2]);
    assert.equal(b.grid.getMap('only-a').get('k'), 1);
  });

  test('three grids converge through a server in the middle, writes relayed', async () => {
    const server = makeGrid('server');
    const x = makeGrid('x');
    const y = makeGrid('y');
    writeSome(x.grid, 'x');
    y.clock.now = T0 + 2;
    writeSome(y.grid, 'y');
    server.grid.getMap('m').set('from-server', true);
    const px = pipe(x.grid, server.grid);
    const py = pipe(y.grid, server.grid);
    await settle([px, py]);
    assertConverged([server.grid, x.grid, y.grid], { m: 'lww', o: 'or' });
    // A write on x reaches y through the server.
    x.clock.now = T0 + 10;
    x.grid.getMap('m').set('relayed', 'x');
    x.grid.getORMap('o').add('relayed', 'x');
    await px.a.whenSynced();
    await until(() => y.grid.getMap('m').get('relayed') === 'x', 'the write relayed to y');
    await settle([px, py]);
    assertConverged([server.grid, x.grid, y.grid], { m: 'lww', o: 'or' });
  });

  test('three grids connected pairwise converge', async () => {
    const g = ['a', 'b', 'c'].map((id, i) => {
      const made = makeGrid(id);
      made.clock.now = T0 + i;
      writeSome(made.grid, id);
      return made.grid;
    });
    const pipes = [pipe(g[0], g[1]), pipe(g[1], g[2]), pipe(g[2], g[0])];
    await settle(pipes);
    assertConverged(g, { m: 'lww', o: 'or' });
    g[2].getMap('m').set('late', 'c');
    g[0].getORMap('o').add('late', 'a');
    await Promise.all(pipes.flatMap((p) => [p.a.whenSynced(), p.b.whenSynced()]));
    await settle(pipes);
    assertConverged(g, { m: 'lww', o: 'or' });
  });

  test('writes made while disconnected reach the peer on reconnect, both ways', async () => {
    const a = makeGrid('a');
    const b = makeGrid('b');
    writeSome(a.grid, 'a');
    const first = pipe(a.grid, b.grid);
    await settle([first]);
    first.cut();
    await tick();
    assert.equal(first.a.state, 'closed');
    assert.equal(first.b.state, 'closed');
    assert.deepEqual(first.states.a.at(-1), 'closed');
    assert.deepEqual(first.errors, { a: [], b: [] }); // close() is no error
    // Offline: both keep working.
    a.clock.now = T0 + 20;
    a.grid.getMap('m').set('offline-a', 1);
    a.grid.getORMap('o').add('offline', 'a');
    b.clock.now = T0 + 21;
    b.grid.getMap('m').set('offline-b', 2);
    b.grid.getMap('m').set('shared', 'b, offline');
    b.grid.getORMap('o').remove('k', 'a');
    assert.equal(b.grid.getMap('m').get('offline-a'), undefined);
    // Frames for a closed connection are ignored.
    first.a.receive(Uint8Array.of(1, 2, 3));
    const second = pipe(a.grid, b.grid);
    await second.a.whenSynced();
    await settle([second]);
    assertConverged([a.grid, b.grid], { m: 'lww', o: 'or' });
    assert.equal(b.grid.getMap('m').get('offline-a'), 1);
    assert.equal(a.grid.getMap('m').get('offline-b'), 2);
    assert.equal(a.grid.getMap('m').get('shared'), 'b, offline');
    assert.deepEqual(a.grid.getORMap('o').get('k'), []);
    assert.deepEqual(b.grid.getORMap('o').get('offline'), ['a']);
  });

  test('a burst of writes goes out in few frames', async () => {
    const a = makeGrid('a');
    const b = makeGrid('b');
    const p = pipe(a.grid, b.grid);
    await settle([p]);
    const ACK = 3; // a frame's type is its second byte (the first is the protocol version)
    const data = (frames) => frames.filter((f) => f[1] !== ACK).length;
    const before = p.frames.a.length;
    const m = a.grid.getMap('m');
    for (let i = 0; i < 200; i++) m.set(`k${i}`, i);
    await settle([p]);
    // A map made while connected is caught up (its root, records, a turn), not pushed key by key.
    const made = data(p.frames.a.slice(before));
    assert.ok(made <= 4, `${made} frames for 200 writes to a new map`);
    assert.equal(b.grid.getMap('m').size, 200);
    const more = p.frames.a.length;
    for (let i = 0; i < 200; i++) m.set(`k${i}`, -i);
    await settle([p]);
    assert.equal(p.frames.a.length - more, 1, 'one frame for 200 writes to a map both have');
    assertConverged([a.grid, b.grid], { m: 'lww' });
  });

  test("subscribers hear a peer's changes as remote", async () => {
    const a = makeGrid('a');
    const b = makeGrid('b');
    const lww = b.grid.getMap('m');
    const or = b.grid.getORMap('o');
    const heard = [];
    lww.subscribe((c) => heard.push(['lww', c]));
    or.subscribe((c) => heard.push(['or', c]));
    const p = pipe(a.grid, b.grid);
    await settle([p]);
    a.grid.getMap('m').set('k', 'v');
    a.grid.getORMap('o').add('k', 1);
    await settle([p]);
    assert.deepEqual(heard, [
      ['lww', { key: 'k', value: 'v', origin: 'remote' }],
      ['or', { key: 'k', values: [1], origin: 'remote' }],
    ]);
  });

  test('whenSynced waits for the acknowledgement of the writes made before it', async () => {
    const a = makeGrid('a');
    const b = makeGrid('b');
    const p = pipe(a.grid, b.grid);
    let done = false;
    a.grid.getMap('m').set('k', 1);
    const synced = p.a.whenSynced().then(() => {
      done = true;
    });
    await tick();
    assert.equal(done, false);
    assert.equal(p.a.pendingWrites, 1);
    await synced;
    assert.equal(b.grid.getMap('m').get('k'), 1);
    assert.equal(p.a.pendingWrites, 0);
    // Nothing written since: at once (well, a turn later).
    await p.a.whenSynced();
  });

  test('a map of the other kind on the peer is reported on both sides and never merged', async () => {
    const a = makeGrid('a');
    const b = makeGrid('b');
    a.grid.getMap('x').set('k', 1);
    b.grid.getORMap('x').add('k', 2);
    a.grid.getMap('m').set('fine', 1);
    const p = pipe(a.grid, b.grid);
    await settle([p]);
    assert.deepEqual(p.errors.a.map((e) => e.code), ['KIND_MISMATCH']);
    assert.deepEqual(p.errors.b.map((e) => e.code), ['KIND_MISMATCH']);
    assert.equal(p.a.state, 'synced');
    assert.equal(b.grid.getMap('m').get('fine'), 1);
    assert.deepEqual(b.grid.getORMap('x').get('k'), [2]);
    assert.equal(a.grid.getMap('x').get('k'), 1);
  });
});
