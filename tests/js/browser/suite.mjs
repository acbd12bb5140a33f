// Runs the adapter suite on IndexedDbStorage in this page, then times a load of LARGE records.
// browser.test.mjs waits for `window.onegridResults`:
//   { cases: [{ name, ok, error?, ms }], timing: { ... } | null, timingError?: string }
// Every case gets its own database, deleted afterwards.

import { IndexedDbStorage } from '/pkg/storage.js';
import { LARGE, adapterSuite, timeLoad } from '/tests/adapter-suite.mjs';

const run = `suite-${Date.now().toString(36)}`;
let made = 0;

const cases = [];
adapterSuite((name, fn) => cases.push({ name, fn }), {
  fresh: () => new IndexedDbStorage({ name: `${run}-${made++}` }),
  reopen: async (adapter) => {
    await adapter.close();
    return new IndexedDbStorage({ name: adapter.name });
  },
  dispose: async (adapter) => {
    await adapter.close();
    await IndexedDbStorage.delete(adapter.name);
  },
});

function describe(e) {
  return e instanceof Error ? `${e.message}\n${e.stack ?? ''}` : String(e);
}

async function runCases() {
  const results = [];
  for (const { name, fn } of cases) {
    const t = performance.now();
    try {
      await fn();
      results.push({ name, ok: true, ms: performance.now() - t });
    } catch (e) {
      results.push({ name, ok: false, error: describe(e), ms: performance.now() - t });
    }
  }
  return results;
}

/** storeAll then loadAllKeys + loadAll, on a connection that wrote and on a freshly opened one. */
async function runTiming() {
  const name = `${run}-timing`;
  const timing = { records: LARGE };
  for (const durability of ['strict', 'relaxed']) {
    const writer = new IndexedDbStorage({ name: `${name}-${durability}`, durability });
    const ms = await timeLoad(writer, LARGE, 'timed');
    await writer.close();
    // A cold load: a new connection, as a page that starts up would have.
    const reader = new IndexedDbStorage({ name: `${name}-${durability}` });
    const t = performance.now();
    const keys = await reader.loadAllKeys('timed');
    const loaded = await reader.loadAll('timed', keys);
    const cold = performance.now() - t;
    if (loaded.length !== LARGE) throw new Error(`cold load found ${loaded.length} records, not ${LARGE}`);
    await reader.close();
    await IndexedDbStorage.delete(`${name}-${durability}`);
    timing[durability] = { ...ms, coldLoad: cold };
  }
  return timing;
}

const results = { cases: await runCases(), timing: null };
try {
  results.timing = await runTiming();
} catch (e) {
  results.timingError = describe(e);
}
window.onegridResults = results;
document.getElementById('status').textContent = 'done';
