// Driving the module through its raw byte ABI from JavaScript, as a native host does: an instance
// whose JavaScript imports all trap (the byte ABI must never call them), and one call per request.
// Used by the conformance runner (Node) and the runtimes bench (Node and Chromium).

/** Imports for an instance driven only through the byte ABI: each traps, as in wasmtime. */
export function trapImports(module) {
  const imports = {};
  for (const { module: from, name, kind } of WebAssembly.Module.imports(module)) {
    if (kind !== 'function') throw new Error(`unexpected ${kind} import ${from}.${name}`);
    imports[from] ??= {};
    imports[from][name] = () => {
      throw new Error(`the byte ABI called the JavaScript import ${from}.${name}`);
    };
  }
  return imports;
}

/** One byte-ABI call on `exports`: the request in, the reply bytes out (copied, then freed). */
export function abiCaller({ memory, onegrid_alloc, onegrid_call, onegrid_free }) {
  return (request) => {
    const at = onegrid_alloc(request.length) >>> 0;
    new Uint8Array(memory.buffer, at, request.length).set(request);
    const packed = BigInt.asUintN(64, onegrid_call(at, request.length));
    const ptr = Number(packed >> 32n);
    const len = Number(packed & 0xffffffffn);
    const reply = new Uint8Array(memory.buffer, ptr, len).slice();
    onegrid_free(ptr, len);
    return reply;
  };
}
