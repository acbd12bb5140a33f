// The sync simulation's replicas in Node, through the JavaScript API (Grid, LwwMap, OrMap,
// grid.connect / grid.accept):
//   node sim-runner.mjs <package dir>
// The Rust simulation (tests/src/sim/node.rs) drives it: one JSON request per line on stdin, one
// JSON reply per line on stdout, frames in hex. Time is the request's `now`, which every grid's
// clock returns, so a run is deterministic. After each request the runner waits one macrotask, so
// the pumps the request scheduled (sync.js: once per microtask turn) have run, then reports every
// connection: its state, pending writes, the frames its `send` was given and what `onError` heard.
//
// Requests (`r`: the replica, by the order opened):
//   { op: 'open', nodeId, maxDriftMs }                    -> { replica }
//   { op: 'write', r, now, map, kind, key, value, ttl, remove } -> { ts } (lww) or { tags } (or), news
//   { op: 'connect' | 'accept', r, now }                 -> { conn, news }
//   { op: 'receive', r, now, conn, frame }                -> { news }
//   { op: 'close', r, now, conn }                         -> { news }
//   { op: 'finals', r, maps: [[name, kind], ...] }        -> { finals: [{ root, snapshot } | null] }
// A request that throws is answered with { error } (the Rust side fails the test with it).

import { createInterface } from 'node:readline';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { hex, unhex } from './tagged.mjs';

const [pkg] = process.argv.slice(2);
if (pkg === undefined) throw new Error('usage: node sim-runner.mjs <package dir>');
const onegrid = await import(pathToFileURL(join(pkg, 'onegrid.js')).href);
onegrid.initSync({ module: new WebAssembly.Module(readFileSync(join(pkg, 'onegrid_bg.wasm'))) });

/** The virtual clock: every grid reads it. */
let now = 0;

/** Per replica: its grid, its open connections by id, and the next id. */
const replicas = [];

/** One connection as the runner tracks it; `id` counts as the module's hub does (0, 1, ...). */
class Conn {
  constructor(id) {
    this.id = id;
    this.frames = [];
    this.problems = [];
    this.handle = undefined;
  }
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

function replica(r) {
  const rep = replicas[r];
  if (rep === undefined) throw new Error(`no replica ${r}`);
  return rep;
}

/** Opens a connection of replica `r` (its side says hello, or waits for one). */
function open(r, accepting) {
  const rep = replica(r);
  const conn = new Conn(rep.nextId++);
  const options = { onError: (e) => conn.problems.push(`${e.code}: ${e.message}`) };
  const send = (frame) => conn.frames.push(hex(frame));
  conn.handle = accepting ? rep.grid.accept(send, options) : rep.grid.connect(send, options);
  rep.conns.set(conn.id, conn);
  return conn.id;
}

function conn(r, id) {
  const c = replica(r).conns.get(id);
  if (c === undefined) throw new Error(`replica ${r} has no open connection ${id}`);
  return c;
}

/** Every connection of replica `r`, by id; the closed ones are reported once, then forgotten. */
function news(r) {
  const rep = replica(r);
  const out = [];
  for (const c of [...rep.conns.values()].sort((a, b) => a.id - b.id)) {
    const state = c.handle.state;
    out.push({ conn: c.id, state, pending: c.handle.pendingWrites, frames: c.frames, problems: c.problems });
    c.frames = [];
    c.problems = [];
    if (state === 'closed') rep.conns.delete(c.id);
  }
  return out;
}

const text = (t) => `${t.millis}:${t.counter}:${t.nodeId}`;

/** A local write; returns what identifies it. */
function write({ r, map, kind, key, value, ttl, remove }) {
  const grid = replica(r).grid;
  const options = ttl === null ? undefined : { ttlMs: ttl };
  if (kind === 'lww') {
    const m = grid.getMap(map);
    if (remove) m.remove(key);
    else m.set(key, value, options);
    return { ts: text(m.getRecord(key).timestamp) };
  }
  const m = grid.getORMap(map);
  return { tags: remove ? m.remove(key, value) : [m.add(key, value, options)] };
}

function finals({ r, maps }) {
  const grid = replica(r).grid;
  return maps.map(([name, kind]) => {
    if (!grid.hasMap(name)) return null;
    const m = kind === 'lww' ? grid.getMap(name) : grid.getORMap(name);
    return { root: m.rootHash(), snapshot: hex(grid.exportMap(name)) };
  });
}

async function handle(request) {
  if (request.now !== undefined) now = request.now;
  const { op, r } = request;
  let reply;
  switch (op) {
    case 'open': {
      const grid = new onegrid.Grid({ nodeId: request.nodeId, clock: () => now, maxDriftMs: request.maxDriftMs });
      replicas.push({ grid, conns: new Map(), nextId: 0 });
      return { replica: replicas.length - 1 };
    }
    case 'finals': return { finals: finals(request) };
    case 'write': reply = write(request); break;
    case 'connect': reply = { conn: open(r, false) }; break;
    case 'accept': reply = { conn: open(r, true) }; break;
    case 'receive': conn(r, request.conn).handle.receive(unhex(request.frame)); reply = {}; break;
    case 'close': conn(r, request.conn).handle.close(); reply = {}; break;
    default: throw new Error(`unknown op ${op}`);
  }
  await tick(); // the pumps the request scheduled run
  return { ...reply, news: news(r) };
}

for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
  let reply;
  try {
    reply = await handle(JSON.parse(line));
  } catch (e) {
    reply = { error: String(e?.stack ?? e) };
  }
  process.stdout.write(`${JSON.stringify(reply)}\n`);
}
