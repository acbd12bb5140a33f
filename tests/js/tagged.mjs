// The tagged form of values that the Rust tests write (tests/src/scenario.rs `tagged`): `["int",
// "5"]`, `["map", [[k, v], ...]]`, ... Integers travel as text so all 64 bits survive JSON.

/** A JavaScript value from its tagged form (integers beyond 2^53 as BigInt). */
export function fromTagged([tag, arg]) {
  switch (tag) {
    case 'null': return null;
    case 'bool': return arg;
    case 'int': {
      const n = BigInt(arg);
      return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
    }
    case 'float': return Number(arg);
    case 'str': return arg;
    case 'bytes': return Uint8Array.from(arg);
    case 'list': return arg.map(fromTagged);
    case 'map': return Object.fromEntries(arg.map(([k, v]) => [k, fromTagged(v)]));
    default: throw new Error(`unknown tag ${tag}`);
  }
}

/** The tagged form of a JavaScript value. */
export function toTagged(v) {
  if (v === null) return ['null'];
  switch (typeof v) {
    case 'boolean': return ['bool', v];
    case 'number': return Number.isSafeInteger(v) ? ['int', String(v)] : ['float', String(v)];
    case 'bigint': return ['int', v.toString()];
    case 'string': return ['str', v];
    default:
      if (v instanceof Uint8Array) return ['bytes', Array.from(v)];
      if (Array.isArray(v)) return ['list', v.map(toTagged)];
      return ['map', Object.keys(v).map((k) => [k, toTagged(v[k])])];
  }
}

// Hex without Node's Buffer, so the workerd runner can import this module too.
export const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
export const unhex = (s) => Uint8Array.from(s.match(/../g) ?? [], (p) => parseInt(p, 16));
