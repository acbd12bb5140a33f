// The JavaScript half of the runtimes bench (host/benches/runtimes.rs explains the whole): runs
// the bench's trace through the module's raw byte ABI and through its JavaScript API, interleaved,
// in whichever engine loads this file: Node (runtimes.mjs) or Chromium (runtimes.html).
//
// trace.json holds the keys, values and wall clocks, and which frames of trace.bin are which;
// trace.bin holds the encoded byte-ABI requests, each as a little-endian u32 length and its bytes.
// Results, per way ('abi', 'api') and workload: { ms: [...], roots: [...], checks: [...] }: a root
// is the Root reply's hex (byte ABI) or rootHash() (API); a check is the FNV-1a of the timed
// replies (byte ABI) or what the API read (merge count, values found and the sum of their n).

import { abiCaller, trapImports } from '../js/byte-abi.mjs';

export { trapImports };

/** The frames of trace.bin. */
export function readFrames(bin) {
  const view = new DataView(bin.buffer, bin.byteOffset, bin.byteLength);
  const frames = [];
  for (let at = 0; at < bin.length;) {
    const len = view.getUint32(at, true);
    frames.push(bin.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
  return frames;
}

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

/** FNV-1a (32 bits) over the concatenated replies; runtimes.rs computes the same. */
function digest(replies) {
  let h = 0x811c9dc5;
  for (const reply of replies) {
    for (const b of reply) h = Math.imul(h ^ b, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

/**
 * Runs every workload `trace.rounds` times after one warm-up round, the byte ABI (on `abi`, the
 * exports of an instance with trapping imports) and the API (`Grid`) interleaved; `gc` (if any)
 * runs before each timed part.
 */
export function runWorkloads({ Grid, abi, trace, frames, gc = () => {} }) {
  const { nodeId, maxDriftMs, map, keys, values, replies } = trace;
  const pick = ([start, count]) => frames.slice(start, start + count);
  const [open] = pick(trace.frames.open);
  const [root] = pick(trace.frames.root);
  const [close] = pick(trace.frames.close);
  const [snapshot] = pick(trace.frames.snapshot);
  const entries = keys.map((k, i) => [k, values[i]]);
  const call = abiCaller(abi);
  const expect = (reply, wanted, what) => {
    if (hex(reply) !== wanted) throw new Error(`${what} answered ${hex(reply)}, expected ${wanted}`);
  };

  function viaAbi(w) {
    const [setup, timed] = [pick(w.setup), pick(w.timed)];
    expect(call(open), replies.opened, 'Open');
    for (const request of setup) expect(call(request), replies.done, 'a setup request');
    const out = new Array(timed.length);
    gc();
    const started = performance.now();
    for (let i = 0; i < timed.length; i++) out[i] = call(timed[i]);
    const ms = performance.now() - started;
    const rootReply = hex(call(root));
    expect(call(close), replies.done, 'Close');
    return { ms, root: rootReply, check: digest(out) };
  }

  /** The API's runs: each on a fresh grid whose clock reads `now`, set to each request's wall. */
  const api = {
    sets(w) {
      let now = w.walls[0];
      const grid = new Grid({ nodeId, maxDriftMs, clock: () => now });
      const m = grid.getMap(map);
      gc();
      const started = performance.now();
      for (let i = 0; i < keys.length; i++) {
        now = w.walls[i];
        m.set(keys[i], values[i]);
      }
      return done(grid, started, '');
    },
    batch(w) {
      const now = w.walls[0];
      const grid = new Grid({ nodeId, maxDriftMs, clock: () => now });
      const m = grid.getMap(map);
      gc();
      const started = performance.now();
      m.setMany(entries);
      return done(grid, started, '');
    },
    import(w) {
      const now = w.walls[0];
      const grid = new Grid({ nodeId, maxDriftMs, clock: () => now });
      gc();
      const started = performance.now();
      const merged = grid.importMap(map, snapshot);
      return done(grid, started, `${merged} merged`);
    },
    gets(w) {
      let now = w.setupWall;
      const grid = new Grid({ nodeId, maxDriftMs, clock: () => now });
      const m = grid.getMap(map);
      m.setMany(entries);
      now = w.walls[0];
      let found = 0;
      let sum = 0;
      gc();
      const started = performance.now();
      for (let i = 0; i < keys.length; i++) {
        now = w.walls[i];
        const v = m.get(keys[i]);
        if (v !== undefined) {
          found++;
          sum += v.n;
        }
      }
      return done(grid, started, `${found} found, sum of n ${sum}`);
    },
  };
  function done(grid, started, check) {
    const ms = performance.now() - started;
    const rootHash = grid.getMap(map).rootHash() >>> 0;
    grid.free();
    return { ms, root: rootHash, check };
  }

  const results = { abi: {}, api: {} };
  for (let round = 0; round <= trace.rounds; round++) {
    for (const w of trace.workloads) {
      for (let run = 0; run < w.runs; run++) {
        for (const way of ['abi', 'api']) {
          const r = way === 'abi' ? viaAbi(w) : api[w.key](w);
          if (round === 0) continue; // the warm-up round
          const slot = (results[way][w.key] ??= { ms: [], roots: [], checks: [] });
          slot.ms.push(r.ms);
          slot.roots.push(r.root);
          slot.checks.push(r.check);
        }
      }
    }
  }
  return results;
}
