// Types of the onegrid JavaScript API (hand-written: the API is the wrapper in onegrid.js).

import type { StorageAdapter } from './storage.js';
export type { StorageAdapter, IndexedDbStorageOptions } from './storage.js';
export { MemoryStorage, IndexedDbStorage } from './storage.js';

/** A value a map can hold. Integers beyond 2^53 come back as BigInt; bytes as Uint8Array. */
export type Value = null | boolean | number | bigint | string | Uint8Array | Value[] | { [key: string]: Value };

/** What went wrong, as a stable name to act on (messages may be reworded; codes are not). */
export type ErrorCode =
  /** A map asked for, offered or stored as the other kind. */
  | 'KIND_MISMATCH'
  /** A value the data model cannot hold (NaN, too deep, a lone surrogate, a cycle). */
  | 'INVALID_VALUE'
  /** An argument out of its rules (a key, a TTL, an option, a node id). */
  | 'INVALID_ARGUMENT'
  /** Bytes that do not decode (a snapshot, a stored value). */
  | 'MALFORMED'
  /** Strict mode refused a timestamp too far ahead of the wall clock. */
  | 'CLOCK_DRIFT'
  /** The clock reached its last timestamp. */
  | 'CLOCK_EXHAUSTED'
  /** The storage adapter failed (its error is the `cause`), or what it holds is corrupt. */
  | 'STORAGE'
  /** Something named does not exist (a map, held writes). */
  | 'NOT_FOUND'
  /** A map whose load has not finished. */
  | 'LOADING'
  /** A bound was reached (sync: a record too large for a frame, not sent). */
  | 'LIMIT'
  /** Sync: the peer speaks another protocol version. */
  | 'VERSION'
  /** Sync: the accepting side refused the connection (its `onHello` threw; the message is its error's). */
  | 'REFUSED'
  /** Sync: a write to a map the connection may not write (nothing of the frame was applied). */
  | 'FORBIDDEN'
  /** Sync: a record a frame carried was refused (a bad value, an exhausted clock). */
  | 'REFUSED_RECORD'
  /** Sync: `onegrid serve` refused the handshake's token (missing, malformed, forged, expired). */
  | 'UNAUTHORIZED'
  /** Sync: the connection closed: `close()`, its transport (`send` threw), or the peer with a code
   * this version does not know. */
  | 'CLOSED'
  /** The grid was freed (`grid.free()`). */
  | 'FREED'
  /** The module is not loaded yet: call `init()` or `initSync()` first. */
  | 'NOT_LOADED';

/** Every `ErrorCode`. */
export const ERROR_CODES: readonly ErrorCode[];

/** What every error onegrid throws or rejects with is: act on `code`, show `message`. */
export class OnegridError extends Error {
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown });
  readonly name: 'OnegridError';
  readonly code: ErrorCode;
}

/** What `init` and `initSync` accept: the module's bytes, a compiled module, or (init) a URL/Response. */
export type InitInput = RequestInfo | URL | Response | BufferSource | WebAssembly.Module;

/** Loads the module asynchronously (by default fetches `onegrid_bg.wasm` next to onegrid.js). */
export default function init(input?: { module_or_path: InitInput | Promise<InitInput> }): Promise<unknown>;
/** Loads the module synchronously, e.g. `initSync({ module: readFileSync(path) })` in Node. */
export function initSync(input: { module: BufferSource | WebAssembly.Module }): unknown;

export interface GridOptions {
  /** 1 to 64 characters of [A-Za-z0-9._-]. */
  nodeId: string;
  /** Wall clock in milliseconds; default `Date.now`. */
  clock?: () => number;
  /** How far ahead of the wall clock a remote timestamp may be before it counts as drift; default 60000. */
  maxDriftMs?: number;
  /** Throw on drift, changing nothing, instead of accepting and reporting it; default false. */
  strictDrift?: boolean;
  /** Called for each remote timestamp found too far ahead of the wall clock (lenient mode), from
   * `importMap` or a sync connection. If it throws, the import stays applied, the other reports
   * and the change events still go out, and then `importMap` rethrows the first error (sync
   * reports it on the console). */
  onDrift?: (drift: DriftReport) => void;
  /** Where the grid's maps load from and flush to (`MemoryStorage`, `IndexedDbStorage`, or any
   * object with these async functions); without it, maps live in memory only. */
  storage?: StorageAdapter;
  /** Which keys of a map this node loads (in a cluster: the keys of partitions it owns or backs
   * up); default all. `__tombstones__` always loads. */
  isRelatedKey?: (map: string, key: string) => boolean;
  /** Called once per load that found anything stored: `count` keys other than `__tombstones__`. */
  onMapLoaded?: (map: string, count: number) => void;
}

export interface DriftReport {
  /** The remote timestamp, `"<millis>:<counter>:<nodeId>"`. */
  remote: string;
  /** A BigInt beyond `Number.MAX_SAFE_INTEGER` (a peer's clock may be anywhere in 64 bits). */
  aheadMs: number | bigint;
  maxDriftMs: number;
}

export interface Timestamp {
  /** A BigInt beyond `Number.MAX_SAFE_INTEGER` (a peer's clock may be anywhere in 64 bits). */
  millis: number | bigint;
  counter: number;
  nodeId: string;
}

export interface LwwRecordView {
  /** The stored value; `null` for a tombstone (see `deleted`). */
  value: Value;
  deleted: boolean;
  timestamp: Timestamp;
  /** Absent without a TTL; a BigInt beyond `Number.MAX_SAFE_INTEGER` (a peer's TTL may be). */
  ttlMs?: number | bigint;
}

export interface WriteOptions {
  /** Reads stop seeing the record this many milliseconds after it was written. */
  ttlMs?: number;
}

export interface LwwChange {
  key: string;
  /** The key's visible value after the change; `undefined` when removed or expired. */
  value: Value | undefined;
  origin: 'local' | 'remote';
}

export interface OrChange {
  key: string;
  /** The key's visible values after the change, oldest first. */
  values: Value[];
  origin: 'local' | 'remote';
}

/** One node of the data grid: its clock and its named maps. */
export class Grid {
  constructor(options: GridOptions);
  readonly nodeId: string;
  /** Releases the grid's memory in the module now; the grid and its maps throw on later use. */
  free(): void;
  [Symbol.dispose](): void;
  /** The LWW map `name`, at once; with storage its first touch starts its load (reads see what is
   * loaded so far; writes merge with what the load brings). Throws `KIND_MISMATCH` for an OR map. */
  getMap(name: string): LwwMap;
  /** The OR map `name`, at once (see `getMap`); throws `KIND_MISMATCH` for an LWW map. */
  getORMap(name: string): OrMap;
  /** Map `name` once loaded, of the kind it is stored as; a `kind` that disagrees with storage
   * rejects with `KIND_MISMATCH`. A failed load rejects with `STORAGE` and the adapter's error as
   * `cause`, and the next call tries again. */
  getMapAsync(name: string, kind: 'lww'): Promise<LwwMap>;
  getMapAsync(name: string, kind: 'or'): Promise<OrMap>;
  getMapAsync(name: string, kind?: 'lww' | 'or'): Promise<LwwMap | OrMap>;
  /** True while map `name` loads from storage. */
  isMapLoading(name: string): boolean;
  /** True when the grid has map `name` (loaded, loading, or its load failed). */
  hasMap(name: string): boolean;
  /** Resolves once every write made so far is durable in storage (each map's changes in one
   * `storeAll`); rejects with `STORAGE` and the adapter's error as `cause` (or `KIND_MISMATCH`
   * while writes are held, see `takeEarlyWrites`), keeping the writes for the next flush. Resolves at once for a grid without storage. */
  flush(): Promise<void>;
  /** Names of this grid's maps, sorted. */
  mapNames(): string[];
  /** A snapshot of every record, tombstones included (versioned bytes); throws for a map this grid
   * never had, and for a map still loading that nothing was written to (await `getMapAsync`). */
  exportMap(name: string): Uint8Array;
  /** The writes held aside after map `name`'s load found it stored as the other kind (every
   * `flush()` fails while they are held), as a snapshot of their kind; `null` when none are held.
   * Taken back, they are forgotten by the grid, and flushes succeed again. */
  takeEarlyWrites(name: string): Uint8Array | null;
  /** Merges a snapshot by the CRDT rules; returns records added or replaced plus new tombstones. */
  importMap(name: string, bytes: Uint8Array): number;
  /**
   * Opens a sync connection to a peer grid (SPEC section 8) over the app's transport, which must
   * deliver frames in order: `send(frame)` delivers one to the peer, and each frame from the peer
   * goes to the connection's `receive`. The peer takes it with `accept`. Both sides then push
   * their writes as they happen and catch up by Merkle comparison, both ways, for every map both
   * may see. Over WebSocket, `connectWebSocket` does all of this and reconnects.
   */
  connect(send: (frame: Uint8Array) => void, options?: ConnectOptions): Connection;
  /**
   * Takes a connection a peer opened with `connect` (the server's side, e.g. a Durable Object
   * room): `send` and `receive` as for `connect`. `options.onHello(nodeId, token)` decides, before
   * anything of the peer is applied: throw (or reject) to refuse, the error's message going to the
   * peer (`REFUSED`); return `{ read, write }` to accept with what the peer may read and write
   * (`Permissions`), or nothing for every map. Without `onHello`, every peer is accepted for
   * every map. A second connection from a node id already connected is refused.
   */
  accept(send: (frame: Uint8Array) => void, options?: AcceptOptions): Connection;
}

/** Where a sync connection is. `synced`: caught up both ways, nothing waiting to be sent or acknowledged. */
export type ConnectionState = 'connecting' | 'syncing' | 'synced' | 'closed';

export interface ConnectOptions {
  /** A credential for the accepting side's `onHello`; it travels in the handshake frame only. */
  token?: string;
  /** Called on every change of `state`. */
  onState?: (state: ConnectionState) => void;
  /**
   * Called with what went wrong: the error the connection closed with, sent to the peer or got
   * from it (`MALFORMED`, `VERSION`, `REFUSED`, `FORBIDDEN`, `CLOCK_DRIFT`, `STORAGE`,
   * `REFUSED_RECORD`; `CLOSED` when `send` threw, its `cause`), and problems that leave the
   * connection open: `KIND_MISMATCH` (a map of the other kind on the peer, never merged) and
   * `LIMIT` (a record too large for a frame, not sent). Not called for `close()`. Lenient drift
   * goes to the grid's `onDrift`.
   */
  onError?: (error: OnegridError) => void;
}

/**
 * The maps a peer may read and write. Each list holds map names, `"*"` (every map) or prefixes
 * ending in `*` (`"todo:*"`). A missing list means every map; an empty one, none. A write to a
 * map the peer may not write closes the connection with `FORBIDDEN` (nothing of it applied); a
 * map it may not read is never sent to it.
 */
export interface Permissions {
  read?: string[];
  write?: string[];
}

export interface AcceptOptions {
  /** Decides on a peer's hello: return (or resolve to) its permissions, nothing for every map;
   * throw (or reject) to refuse. `token` is what the peer's `connect` presented. */
  onHello?: (nodeId: string, token: string | undefined) => Permissions | void | Promise<Permissions | void>;
  /** Called on every change of `state`. */
  onState?: (state: ConnectionState) => void;
  /** As `ConnectOptions.onError`. */
  onError?: (error: OnegridError) => void;
}

/** One sync connection to a peer grid, from `grid.connect` or `grid.accept`. */
export class Connection {
  private constructor();
  /** Where it is; `onState` hears of each change. */
  readonly state: ConnectionState;
  /** The peer's node id, once it said it. */
  readonly peer: string | undefined;
  /** Local writes the peer has not acknowledged yet (acknowledged: durable in the peer's storage,
   * if it has one). Writes made before the connection count until its first catch-up is over. */
  readonly pendingWrites: number;
  /** Takes a frame from the peer. A bad frame closes the connection with an error frame to the
   * peer and `onError` (`MALFORMED`, ...), leaving the grid untouched; frames after a close are
   * ignored. */
  receive(frame: Uint8Array): void;
  /** Resolves once every local write made before the call is acknowledged by the peer and the
   * connection has caught up once; rejects with the error it closes with first. */
  whenSynced(): Promise<void>;
  /** Closes it (the transport is the app's to close); `whenSynced` promises reject with `CLOSED`.
   * Writes not acknowledged go with the next connection's catch-up. */
  close(): void;
}

/** What `connectWebSocket` needs of a WebSocket (the browser's, Node's, the `ws` package's). */
export interface WebSocketLike {
  binaryType: string;
  send(data: Uint8Array): void;
  close(): void;
  onopen: ((event: any) => void) | null;
  onmessage: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
}

export interface ConnectWebSocketOptions {
  /** A credential for the server (see `getToken`); sent in the handshake frame, never in the URL. */
  token?: string;
  /** Asked on every (re)connect for the token to present, instead of `token`; may be async. If it
   * throws, `onError` hears of it (`REFUSED`, the error as `cause`) and the attempt is retried. */
  getToken?: () => string | undefined | Promise<string | undefined>;
  /** Open a new socket after one drops (exponential backoff, full jitter); default true. */
  reconnect?: boolean;
  /** The WebSocket class; default `globalThis.WebSocket` (Node 20: `--experimental-websocket`,
   * or pass the `ws` package's). */
  WebSocket?: new (url: string) => WebSocketLike;
  onState?: (state: ConnectionState) => void;
  /** As `ConnectOptions.onError`, for every connection; also `getToken`'s failures. */
  onError?: (error: OnegridError) => void;
  /** The first retry waits a random part of this; each attempt doubles it up to `maxRetryDelayMs`,
   * and a sync starts it over. Default 500. */
  retryDelayMs?: number;
  /** Default 30000. */
  maxRetryDelayMs?: number;
  /** Default `Math.random` (for tests). */
  random?: () => number;
  /** Default the global ones (for tests). */
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (timer: any) => void;
}

/** A grid's connection to a sync server that reconnects: one `Connection` per socket. */
export interface LiveConnection {
  /** `connecting` also while waiting to reconnect; `closed` after `close()` (or a drop with
   * `reconnect: false`). */
  readonly state: ConnectionState;
  /** Local writes not yet acknowledged, by the current connection or, between connections, the
   * count the last one left plus the writes made since. */
  readonly pendingWrites: number;
  /** Resolves once every local write made before the call is acknowledged, by whichever
   * connection gets there; rejects if it is closed first. */
  whenSynced(): Promise<void>;
  /** Closes the socket and stops reconnecting. */
  close(): void;
}

/**
 * Connects `grid` to the sync server at `url` over WebSocket (binary frames) and keeps it
 * connected: a dropped or refused socket is opened again after an exponential backoff with full
 * jitter (capped at `maxRetryDelayMs`, reset by a sync), asking `getToken` again. The grid works
 * offline meanwhile; the next connection's catch-up sends what was written.
 */
export function connectWebSocket(grid: Grid, url: string | URL, options?: ConnectWebSocketOptions): LiveConnection;

/** A last-writer-wins map. */
export class LwwMap {
  private constructor();
  readonly kind: 'lww';
  readonly name: string;
  /** Number of visible entries. */
  readonly size: number;
  set(key: string, value: Value, options?: WriteOptions): void;
  /** Many sets in one call into the module, all or nothing. Use it in hot loops. */
  setMany(entries: Array<[string, Value]>): void;
  get(key: string): Value | undefined;
  has(key: string): boolean;
  remove(key: string): void;
  entries(): Array<[string, Value]>;
  keys(): string[];
  /** The 32-bit Merkle root. */
  rootHash(): number;
  /** The stored record of `key`, tombstones included. */
  getRecord(key: string): LwwRecordView | undefined;
  /** Drops tombstones older than `olderThanMillis`; returns how many. */
  prune(olderThanMillis: number): number;
  subscribe(callback: (change: LwwChange) => void): () => void;
}

/** An observed-remove multimap. */
export class OrMap {
  private constructor();
  readonly kind: 'or';
  readonly name: string;
  /** Number of keys with visible values. */
  readonly size: number;
  /** Adds a record (even if an equal value is there); returns its tag. */
  add(key: string, value: Value, options?: WriteOptions): string;
  /** Removes every observed record under `key` whose value is structurally equal; returns their tags. */
  remove(key: string, value: Value): string[];
  /** Values under `key`, oldest first. */
  get(key: string): Value[];
  has(key: string): boolean;
  entries(): Array<[string, Value[]]>;
  keys(): string[];
  rootHash(): number;
  tombstones(): string[];
  prune(olderThanMillis: number): number;
  subscribe(callback: (change: OrChange) => void): () => void;
}
