// Runs one conformance scenario on the two Node engines and prints their results as JSON:
//   node conformance-runner.mjs <package dir> <scenario.json> <ABI version>
// - abi: the module's raw exports, imports defined as traps (as the wasmtime host does);
// - api: the JavaScript API (Grid, LwwMap, OrMap) with a fixed clock.
// Both are scenario-runner.mjs, which workerd runs too (workerd-worker.mjs). The Rust test
// (tests/tests/conformance.rs) writes the scenario and compares the results.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { runAbi, runApi } from './scenario-runner.mjs';

const [pkg, scenarioPath, abiVersion] = process.argv.slice(2);
const scenario = JSON.parse(readFileSync(scenarioPath, 'utf8'));
const module = new WebAssembly.Module(readFileSync(join(pkg, 'onegrid_bg.wasm')));

const abi = runAbi(module, scenario, abiVersion);
const onegrid = await import(pathToFileURL(join(pkg, 'onegrid.js')).href);
onegrid.initSync({ module });
const api = runApi(onegrid, scenario);
process.stdout.write(JSON.stringify({ abi, api }));
