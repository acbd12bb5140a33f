// Helpers the sync tests (tests/js/sync-*.test.mjs) share: in-memory pipes between grids, with
// frames delivered in order but later (each on its own macrotask), and waits for them to settle.

import assert from 'node:assert/strict';

/** Waits one macrotask (frames in flight move one step, microtask pumps run). */
export const tick = () => new Promise((resolve) => setImmediate(resolve));

/**
 * Links grid `a` (it connects) to grid `b` (it accepts) through an in-memory pipe: each frame is
 * delivered on a later macrotask, in order. `options.connect` and `options.accept` go to
 * `connect` and `accept`; every state change and error is recorded.
 * Returns `{ a, b, states, errors, frames, cut, inFlight }`: the two connections, the states and
 * errors each side saw (`states.a`, `errors.b`, ...), every frame sent (`frames.a` by a), `cut()`
 * to drop the pipe (frames in flight are lost, both connections close), and `inFlight()`.
 */
export function pipe(a, b, options = {}) {
  const states = { a: [], b: [] };
  const errors = { a: [], b: [] };
  const frames = { a: [], b: [] };
  let up = true;
  let flying = 0;
  const conns = {};
  const deliver = (to, frame) => {
    flying++;
    setImmediate(() => {
      flying--;
      if (up) conns[to].receive(frame);
    });
  };
  const side = (me, other, extra) => ({
    ...extra,
    onState: (s) => {
      states[me].push(s);
      extra?.onState?.(s);
    },
    onError: (e) => {
      errors[me].push(e);
      extra?.onError?.(e);
    },
  });
  conns.a = a.connect((frame) => {
    assert.ok(frame instanceof Uint8Array);
    frames.a.push(frame);
    deliver('b', frame);
  }, side('a', 'b', options.connect));
  conns.b = b.accept((frame) => {
    frames.b.push(frame);
    deliver('a', frame);
  }, side('b', 'a', options.accept));
  return {
    a: conns.a,
    b: conns.b,
    states,
    errors,
    frames,
    inFlight: () => flying,
    cut() {
      up = false;
      conns.a.close();
      conns.b.close();
    },
  };
}

/**
 * Waits until every pipe of `pipes` is quiet: nothing in flight and both ends synced (fails after
 * `limit` macrotasks).
 */
export async function settle(pipes, limit = 2000) {
  for (let i = 0; i < limit; i++) {
    await tick();
    if (pipes.every((p) => p.inFlight() === 0 && p.a.state === 'synced' && p.b.state === 'synced')) {
      // One more turn: nothing may move after this.
      await tick();
      if (pipes.every((p) => p.inFlight() === 0)) return;
    }
  }
  const report = pipes.map((p) => `${p.a.state}/${p.b.state} (${p.inFlight()} in flight)`).join(', ');
  assert.fail(`the pipes did not settle: ${report}`);
}

/** Waits until `cond()` holds (fails after `limit` macrotasks). */
export async function until(cond, what = 'the condition', limit = 2000) {
  for (let i = 0; i < limit; i++) {
    if (cond()) return;
    await tick();
  }
  assert.fail(`${what} never held`);
}

/** Asserts every grid of `grids` has the maps of `kinds` (`{ name: 'lww' | 'or' }`), and only
 * those, with the same root and snapshot bytes. */
export function assertConverged(grids, kinds) {
  const [first, ...rest] = grids;
  const handle = (g, name) => (kinds[name] === 'lww' ? g.getMap(name) : g.getORMap(name));
  assert.deepEqual(first.mapNames(), Object.keys(kinds).sort());
  for (const name of Object.keys(kinds)) {
    const snapshot = first.exportMap(name);
    const root = handle(first, name).rootHash();
    for (const g of rest) {
      assert.equal(handle(g, name).rootHash(), root, `root of map ${name} on ${g.nodeId}`);
      assert.deepEqual(g.exportMap(name), snapshot, `map ${name} of ${g.nodeId} differs from ${first.nodeId}'s`);
    }
  }
  for (const g of rest) assert.deepEqual(g.mapNames(), first.mapNames());
}
