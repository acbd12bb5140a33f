// Node benchmark of the onegrid package against Yjs, measured side by side in one process.
//
//   cargo run --release -p onegrid-host -- pkg --out target/pkg
//   (cd tests/bench && npm install)
//   ONEGRID_PKG=target/pkg node tests/bench/node-bench.mjs
//
// Each workload runs ROUNDS times, alternating libraries, and reports the median; ratios are
// onegrid's rate over the peer's. Numbers are for the machine it runs on: compare ratios.

import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as Y from 'yjs';

const pkg = resolve(process.env.ONEGRID_PKG ?? 'target/pkg');
const { initSync, Grid } = await import(pathToFileURL(join(pkg, 'onegrid.js')).href);
initSync({ module: readFileSync(join(pkg, 'onegrid_bg.wasm')) });

const N = 100_000;
const ROUNDS = 7;
const keys = Array.from({ length: N }, (_, i) => `key-${i}`);
const value = (i) => ({ n: i, name: 'item', done: (i & 1) === 0 });

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

/** Runs each named function ROUNDS times, interleaved; returns median ms per name. */
function measure(workloads) {
  const times = Object.fromEntries(Object.keys(workloads).map((k) => [k, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, run] of Object.entries(workloads)) {
      const setup = run.setup ? run.setup() : undefined;
      const t = performance.now();
      run(setup);
      times[name].push(performance.now() - t);
    }
  }
  return Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
}

// Every round starts from an empty map and releases it after (grid.free(), doc.destroy()).
const onegridSet = () => {
  const grid = new Grid({ nodeId: 'bench' });
  const m = grid.getMap('m');
  for (let i = 0; i < N; i++) m.set(keys[i], value(i));
  grid.free();
};
const yjsSet = () => {
  const doc = new Y.Doc();
  const m = doc.getMap('m');
  for (let i = 0; i < N; i++) m.set(keys[i], value(i));
  doc.destroy();
};
const yjsSetBatched = () => {
  const doc = new Y.Doc();
  const m = doc.getMap('m');
  doc.transact(() => {
    for (let i = 0; i < N; i++) m.set(keys[i], value(i));
  });
  doc.destroy();
};
const onegridSetMany = Object.assign(
  (entries) => {
    const grid = new Grid({ nodeId: 'bench' });
    grid.getMap('m').setMany(entries);
    grid.free();
  },
  { setup: () => keys.map((k, i) => [k, value(i)]) },
);

const filledOnegrid = new Grid({ nodeId: 'bench' }).getMap('m');
filledOnegrid.setMany(keys.map((k, i) => [k, value(i)]));
const filledYjs = new Y.Doc().getMap('m');
filledYjs.doc.transact(() => keys.forEach((k, i) => filledYjs.set(k, value(i))));
const onegridGet = () => {
  for (let i = 0; i < N; i++) filledOnegrid.get(keys[i]);
};
const yjsGet = () => {
  for (let i = 0; i < N; i++) filledYjs.get(keys[i]);
};

const t = measure({ onegridSet, yjsSet, yjsSetBatched, onegridSetMany, onegridGet, yjsGet });
const rate = (ms) => Math.round((N / ms) * 1000);
const rows = [
  ['set, single calls', rate(t.onegridSet), rate(t.yjsSet), 'Y.Map.set, one transaction each'],
  ['set, batch path', rate(t.onegridSetMany), rate(t.yjsSetBatched), 'setMany vs Y.Map.set in one transact'],
  ['get', rate(t.onegridGet), rate(t.yjsGet), 'Y.Map.get'],
];
console.log(`node ${process.version}, ${N} keys, median of ${ROUNDS} interleaved rounds`);
console.log('workload            onegrid ops/s     yjs ops/s   ratio  (peer path)');
for (const [name, ours, theirs, note] of rows) {
  console.log(
    `${name.padEnd(18)} ${String(ours).padStart(14)} ${String(theirs).padStart(13)} ${(ours / theirs).toFixed(2).padStart(6)}x  (${note})`,
  );
}
