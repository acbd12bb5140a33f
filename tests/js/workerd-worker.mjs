// The conformance worker for workerd (tests/src/workerd.rs starts it): the package as a Worker
// imports it, `onegrid_bg.wasm` as a wasm module (a `WebAssembly.Module`) and `onegrid.js` as an
// ES module, unchanged. Each POST carries one scenario (the JSON the Node runner reads, as
// `{ scenario, abiVersion }`); the reply is the same `{ abi, api }` JSON conformance-runner.mjs
// prints, from the same code (scenario-runner.mjs).

import * as onegrid from './onegrid.js';
import module from './onegrid_bg.wasm';
import { runAbi, runApi } from './scenario-runner.mjs';

export default {
  async fetch(request) {
    if (request.method !== 'POST') return new Response('POST a scenario', { status: 405 });
    try {
      const { scenario, abiVersion } = await request.json();
      const abi = runAbi(module, scenario, abiVersion);
      onegrid.initSync({ module }); // once per isolate: later calls keep the first instance
      const api = runApi(onegrid, scenario);
      return Response.json({ engine: navigator.userAgent, abi, api });
    } catch (e) {
      return new Response(String(e?.stack ?? e), { status: 500 });
    }
  },
};
