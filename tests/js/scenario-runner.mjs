// One conformance scenario on the module, the same code in every JavaScript engine that runs it:
// Node (conformance-runner.mjs) and workerd (workerd-worker.mjs). Plain ECMAScript and WebAssembly:
// no Node or Workers API, so each engine runs exactly this.
// - runAbi: the module's raw exports (onegrid_alloc / onegrid_call / onegrid_free) on a fresh
//   instance whose JavaScript imports all throw, as the wasmtime host defines them; returns the
//   reply bytes of every request, in hex;
// - runApi: the JavaScript API (Grid, LwwMap, OrMap) with a fixed clock; returns each step's
//   outcome and each replica's final snapshot (hex) and root.
// The scenario is the JSON that tests/src/scenario.rs writes; the Rust test compares the results.

import { abiCaller, trapImports } from './byte-abi.mjs';
import { fromTagged, hex, toTagged, unhex } from './tagged.mjs';

// ---- the byte ABI ----------------------------------------------------------------------------

/** The byte ABI on a fresh instance of `module` (a `WebAssembly.Module`). */
export function runAbi(module, scenario, abiVersion) {
  const exports = new WebAssembly.Instance(module, trapImports(module)).exports;
  const version = exports.onegrid_abi_version();
  if (version !== Number(abiVersion)) throw new Error(`unexpected ABI version ${version}`);
  const replies = [];
  const abiCall = abiCaller(exports);
  const call = (request) => {
    const reply = abiCall(request);
    replies.push(hex(reply));
    return reply;
  };
  for (const open of scenario.abi.open) call(unhex(open));
  for (const [i, requests] of scenario.abi.steps.entries()) {
    const op = scenario.steps[i].op.op;
    if (op === 'prune') {
      // Touch the map (as the API's getMap does), then prune it unless the touch was refused.
      if (!isError(call(unhex(requests[0])))) call(unhex(requests[1]));
      continue;
    }
    if (op !== 'sync') {
      if (requests.length !== 1) throw new Error(`step ${i} (${op}) has ${requests.length} requests`);
      call(unhex(requests[0]));
      continue;
    }
    // A sync: export, then import what it returned (the compiled import carries an empty snapshot,
    // whose last byte is its zero length).
    const exported = call(unhex(requests[0]));
    const snapshot = bytesReply(exported);
    if (snapshot === undefined) continue;
    const head = unhex(requests[1]).subarray(0, -1);
    call(concat(head, varint(snapshot.length), snapshot));
  }
  for (const requests of scenario.abi.finals) for (const r of requests) call(unhex(r));
  return replies;
}

/** Whether a reply is a `Reply::Error` (version 1, variant 8). */
function isError(reply) {
  return reply[0] === 1 && reply[1] === 8;
}

/** The payload of a `Reply::Bytes` (version 1, variant 6), or undefined for any other reply. */
function bytesReply(reply) {
  if (reply[0] !== 1 || reply[1] !== 6) return undefined;
  let len = 0;
  let scale = 1;
  let at = 2;
  for (;;) {
    const b = reply[at++];
    len += (b & 0x7f) * scale;
    if (b < 0x80) break;
    scale *= 0x80;
  }
  return reply.subarray(at, at + len);
}

function varint(n) {
  const out = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return Uint8Array.from(out);
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// ---- the JavaScript API ----------------------------------------------------------------------

/**
 * The JavaScript API: `api` is the package's `onegrid.js` (its `Grid`), already initialised with
 * `initSync({ module })`. Frees the grids it made, so an engine that runs many scenarios on one
 * instance (workerd) starts each with the same memory as a fresh one, apart from its size.
 */
export function runApi({ Grid }, scenario) {
  let now = 0;
  let drifts = []; // the remote timestamps `onDrift` reported during the current step
  const onDrift = (d) => drifts.push(d.remote);
  const grids = scenario.replicas.map(
    (r) => new Grid({ nodeId: r.nodeId, clock: () => now, maxDriftMs: r.maxDriftMs, strictDrift: r.strict, onDrift }),
  );
  const imported = (changed) => ({ changed, drifts });
  const options = (ttlMs) => (ttlMs === null ? undefined : { ttlMs });
  const run = (grid, op) => {
    switch (op.op) {
      case 'set': return grid.getMap(op.map).set(op.key, fromTagged(op.value), options(op.ttlMs)) ?? null;
      case 'setMany':
        return grid.getMap(op.map).setMany(op.entries.map(([k, v]) => [k, fromTagged(v)])) ?? null;
      case 'remove': return grid.getMap(op.map).remove(op.key) ?? null;
      case 'get': {
        const v = grid.getMap(op.map).get(op.key);
        return v === undefined ? null : toTagged(v);
      }
      case 'add': return grid.getORMap(op.map).add(op.key, fromTagged(op.value), options(op.ttlMs));
      case 'orRemove': return grid.getORMap(op.map).remove(op.key, fromTagged(op.value));
      case 'orGet': return grid.getORMap(op.map).get(op.key).map(toTagged);
      case 'sync': return imported(grid.importMap(op.map, grids[op.from].exportMap(op.map)));
      case 'import': return imported(grid.importMap(op.map, unhex(op.snapshot)));
      case 'prune': return (op.kind === 'lww' ? grid.getMap(op.map) : grid.getORMap(op.map)).prune(op.olderThan);
      default: throw new Error(`unknown op ${op.op}`);
    }
  };
  try {
    const steps = scenario.steps.map(({ replica, wall, op }) => {
      now = wall;
      drifts = [];
      try {
        return { ok: run(grids[replica], op) };
      } catch (e) {
        // The code is what engines must agree on; an error without one shows as `NONE`.
        return { err: { code: String(e?.code ?? 'NONE'), message: String(e?.message ?? e) } };
      }
    });
    const finals = [];
    for (const grid of grids) {
      for (const [map] of scenario.maps) {
        if (!grid.hasMap(map)) {
          finals.push({ snapshot: null, root: null });
          continue;
        }
        let root;
        try {
          root = grid.getMap(map).rootHash();
        } catch {
          root = grid.getORMap(map).rootHash();
        }
        finals.push({ snapshot: hex(grid.exportMap(map)), root });
      }
    }
    return { steps, finals };
  } finally {
    for (const grid of grids) grid.free();
  }
}

