// @ts-check
// Sync between grids (SPEC section 8), the JavaScript side. The connections live in the module (a
// `Hub` per grid, wasm/src/js_sync.rs); `SyncHub` here drives them, and `Connection` is one of them
// as apps hold it (`grid.connect`, `grid.accept`). The transport is the app's: it hands each frame
// from the peer to `receive`, and takes the frames for the peer through the `send` it gave.
//
// The pump: after a local write (GridCore.wrote), a frame received, storage events and a decision
// on a hello, `schedule()` pumps once per microtask turn, so a burst of writes makes few frames.
// One `syncPoll` call takes every connection's frames (each to its `send`), events (a hello to
// decide, the peer's node id, problems, a close) and state (to `onState`). Then subscribers hear of
// the changes peers made, `onDrift` of drift, the storage driver runs the flush the hub may have
// asked for (its group commit: acknowledgements wait for it, and the module hands the hub the
// storage events), and `whenSynced` promises are checked.

import { listen, messageOf } from './callbacks.js';
import { OnegridError, freedError } from './errors.js';
import { FREED, checkText, fail } from './grid-core.js';
import { typeName } from './values.js';

/** @typedef {import('./grid-core.js').GridCore} GridCore */
/** @typedef {import('./values.js').Reader} Reader */
/** @typedef {import('./errors.js').ErrorCode} ErrorCode */
/** @typedef {import('./onegrid.js').ConnectionState} ConnectionState */
/** @typedef {import('./onegrid.js').Permissions} Permissions */
/** @typedef {import('./onegrid.js').Connection} DeclaredConnection */
/**
 * What a connection was opened with (checked).
 * @typedef {object} Options
 * @property {((state: ConnectionState) => void) | undefined} onState
 * @property {((error: OnegridError) => void) | undefined} onError
 * @property {((nodeId: string, token: string | undefined) => unknown) | undefined} onHello
 */
/** @typedef {{ marker: number, resolve: () => void, reject: (e: Error) => void }} Waiter */
/**
 * An event of one connection, as `syncPoll` writes it.
 * @typedef {{ type: 'hello', nodeId: string, token: string | undefined }
 *   | { type: 'connected', nodeId: string }
 *   | { type: 'report', code: string, message: string }
 *   | { type: 'closed', code: string, message: string, byPeer: boolean }} SyncEvent
 */
/** @typedef {{ id: number, state: ConnectionState, pending: number, frames: Uint8Array[], events: SyncEvent[] }} Report */

/** @type {ConnectionState[]} */
const STATES = ['connecting', 'syncing', 'synced', 'closed'];

/** The codes a connection closes with (onegrid_core::sync::frame::codes, and CLOSED); a peer's
 * error frame with any other closes it as CLOSED. */
const CLOSE_CODES = new Set(['MALFORMED', 'VERSION', 'REFUSED', 'FORBIDDEN', 'CLOCK_DRIFT', 'STORAGE', 'REFUSED_RECORD', 'CLOSED']);

/** No connection has this id (the hub counts from 0): asked for it, the module counts every
 * local write it has logged. */
const NO_CONNECTION = 0xffffffff;

/** How long a failed group commit waits before the hub flushes again. */
const FLUSH_RETRY_MS = 1000;


/**
 * @this {Reader}
 * @returns {SyncEvent}
 */
function readEvent() {
  switch (this.u8()) {
    case 0: return { type: 'hello', nodeId: this.str(), token: this.option(this.str) };
    case 1: return { type: 'connected', nodeId: this.str() };
    case 2: return { type: 'report', code: this.str(), message: this.str() };
    default: return { type: 'closed', code: this.str(), message: this.str(), byPeer: this.u8() === 1 };
  }
}

/**
 * A pattern list of `onHello`'s answer: undefined (every map) or strings.
 * @param {unknown} list
 * @param {string} what
 * @returns {string[] | undefined}
 */
function patterns(list, what) {
  if (list === undefined) return undefined;
  if (!Array.isArray(list)) throw fail(`onHello's ${what} must be an array of map names and patterns, not ${typeName(list)}`);
  for (const p of list) checkText(p, `a pattern of onHello's ${what}`);
  return list;
}

/** The connections of one grid: drives the module's hub. One per grid, made by its first
 * `connect` or `accept`. */
export class SyncHub {
  /** @param {GridCore} core */
  constructor(core) {
    this.core = core;
    /** @type {Map<number, Connection>} */
    this.conns = new Map(); // open connections by id
    /** @type {Set<() => void>} */
    this.watchers = new Set(); // called after each pump (connectWebSocket's whenSynced)
    this.scheduled = false;
    this.pumping = false;
    this.again = false;
    this.closed = false;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.retry = undefined;
  }

  /** Pumps soon: once per microtask turn, however many writes and frames ask. */
  schedule() {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  /** The storage driver delivered events: acknowledgements wait for flushes, frames for loads.
   * After a failed flush, the hub flushes again a second later, not at once (an adapter that keeps
   * failing must not spin).
   * @param {boolean} failedFlush */
  afterStorage(failedFlush) {
    if (!failedFlush) return this.schedule();
    if (this.retry !== undefined || this.closed) return;
    const timer = setTimeout(() => {
      this.retry = undefined;
      this.pump();
    }, FLUSH_RETRY_MS);
    /** @type {{ unref?: () => void }} */ (/** @type {unknown} */ (timer)).unref?.(); // (Node: keeps no process alive)
    this.retry = timer;
  }

  /** A log position: every local write so far is at or before it. */
  marker() {
    return this.core.raw.syncMarker();
  }

  /** Every local write the hub has logged. */
  locals() {
    return this.core.raw.syncPending(NO_CONNECTION);
  }

  /** Pumps now. Not re-entrant: a call from a callback makes the running pump go round again. */
  pump() {
    if (this.closed) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.again = false;
        this.round();
      } while (this.again && !this.closed);
    } finally {
      this.pumping = false;
    }
  }

  round() {
    const core = this.core;
    const now = core.now();
    // Read all of it first: the callbacks below may call the module.
    const r = core.output(core.raw.syncPoll(now));
    /** @type {Report[]} */
    const reports = [];
    while (r.u8() === 1) {
      reports.push({ id: r.varint(), state: STATES[r.u8()], pending: r.varint(), frames: r.vec(r.bytes), events: r.vec(readEvent) });
    }
    const drifted = r.u8() === 1;
    for (const report of reports) {
      if (this.closed) return;
      this.conns.get(report.id)?.take(report);
    }
    if (this.closed) return;
    // Nothing can be thrown to a caller from here: what a subscriber or onDrift throws is reported.
    const drift = drifted ? core.reportDrifts() : undefined;
    const heard = core.kinds.size > 0 ? core.deliverAll(now) : undefined;
    const failure = drift ?? heard;
    if (failure !== undefined) console.error('onegrid: onDrift or a subscriber threw on changes from a peer', failure.e);
    if (this.closed) return;
    core.driver?.pump();
    for (const conn of this.conns.values()) conn.check();
    for (const watch of this.watchers) watch();
  }

  /** The grid is freed: every connection closes with `error`, nothing reaches the module. */
  close() {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retry);
    const freed = freedError();
    const conns = [...this.conns.values()];
    this.conns.clear();
    for (const conn of conns) conn.end(freed);
    for (const watch of this.watchers) watch();
  }
}

/** The key of a grid's method that gives its `SyncHub` (made on first use), for connectWebSocket. */
export const HUB = Symbol('onegrid.syncHub');

/**
 * The grid's `SyncHub`, made on first use.
 * @param {GridCore} core
 */
export function hubOf(core) {
  if (core.raw === FREED) core.raw.syncMarker(); // throws: the grid was freed
  return (core.sync ??= new SyncHub(core));
}

/** @type {(conn: Connection, marker: number) => boolean} */
let ackedBy;

/**
 * True when `conn`'s peer has acknowledged every local write up to `marker` (and the connection
 * has caught up once). For connectWebSocket.
 * @param {DeclaredConnection} conn one from `grid.connect`
 * @param {number} marker
 */
export function isAcked(conn, marker) {
  return ackedBy(/** @type {Connection} */ (/** @type {unknown} */ (conn)), marker);
}

/**
 * One connection to a peer grid. Get it from `grid.connect(send)` or `grid.accept(send)`.
 * @implements {DeclaredConnection}
 */
export class Connection {
  /** @type {SyncHub} */
  #hub;
  /** @type {number} */
  #id;
  /** @type {(frame: Uint8Array) => void} */
  #send;
  /** @type {Options} */
  #options;
  /** @type {ConnectionState} */
  #state = 'connecting';
  #pending = 0;
  /** @type {string | undefined} */
  #peer = undefined;
  /** @type {OnegridError | undefined} */
  #error = undefined; // what it closed with
  /** @type {Waiter[]} */
  #waiters = []; // by marker (markers only grow)
  #caughtUp = false; // it has been synced once
  /** @type {{ e: unknown } | undefined} */
  #sendFailed = undefined;

  static {
    ackedBy = (conn, marker) => conn.#acked(marker);
  }

  /**
   * @param {SyncHub} hub
   * @param {number} id
   * @param {(frame: Uint8Array) => void} send
   * @param {Options} options
   */
  constructor(hub, id, send, options) {
    if (!(hub instanceof SyncHub)) throw fail('use grid.connect(send) or grid.accept(send) to get a Connection');
    this.#hub = hub;
    this.#id = id;
    this.#send = send;
    this.#options = options;
  }

  /** 'connecting' (the handshake), 'syncing', 'synced' (caught up, nothing waiting to be sent or
   * acknowledged) or 'closed'; `onState` hears of each change.
   * @returns {ConnectionState} */
  get state() {
    return this.#state;
  }

  /** The peer's node id, once it said it. */
  get peer() {
    return this.#peer;
  }

  /** Local writes the peer has not acknowledged yet (a closed connection keeps its last count). */
  get pendingWrites() {
    if (this.#state === 'closed') return this.#pending;
    return this.#hub.core.raw.syncPending(this.#id);
  }

  /**
   * Takes a frame from the peer. A bad one closes the connection (an error frame goes to the
   * peer, `onError` hears of it); the grid is untouched. Frames after the close are ignored.
   * @param {Uint8Array} frame
   */
  receive(frame) {
    if (!(frame instanceof Uint8Array)) throw fail(`receive() takes a Uint8Array, not ${typeName(frame)}`);
    const hub = this.#hub;
    if (this.#error !== undefined || hub.closed) return;
    hub.core.raw.syncReceive(this.#id, hub.core.now(), frame);
    hub.schedule();
  }

  /** Resolves once every local write made before the call is acknowledged by the peer (durable in
   * its storage, if it has one) and the connection has caught up once; rejects with the error the
   * connection closes with first.
   * @returns {Promise<void>} */
  whenSynced() {
    if (this.#error !== undefined) return Promise.reject(this.#error);
    const hub = this.#hub;
    const marker = hub.marker();
    return new Promise((resolve, reject) => {
      this.#waiters.push({ marker, resolve, reject });
      this.check();
    });
  }

  /** Closes the connection (the transport is the app's to close). `whenSynced` promises reject
   * with `CLOSED`; writes not acknowledged go with the next connection's catch-up. */
  close() {
    const hub = this.#hub;
    if (this.#error !== undefined || hub.closed) return;
    hub.core.raw.syncClose(this.#id);
    hub.pump();
  }

  /**
   * @param {number} marker
   * @returns {boolean}
   */
  #acked(marker) {
    return this.#caughtUp && this.#error === undefined && this.#hub.core.raw.syncAcked(this.#id, marker);
  }

  /** Resolves the `whenSynced` promises whose writes are acknowledged. */
  check() {
    const waiters = this.#waiters;
    while (waiters.length > 0 && this.#acked(waiters[0].marker)) /** @type {Waiter} */ (waiters.shift()).resolve();
  }

  /**
   * What one poll brought this connection.
   * @param {Report} report
   */
  take({ state, pending, frames, events }) {
    this.#pending = pending;
    for (const frame of frames) {
      if (this.#sendFailed !== undefined) break;
      try {
        this.#send(frame);
      } catch (e) {
        // The transport failed: the connection closes (reported as the next poll's close).
        this.#sendFailed = { e };
        this.#hub.core.raw.syncClose(this.#id);
        this.#hub.again = true;
      }
    }
    for (const event of events) {
      switch (event.type) {
        case 'hello':
          this.#peer = event.nodeId;
          this.#hello(event.nodeId, event.token);
          break;
        case 'connected':
          this.#peer = event.nodeId;
          break;
        case 'report':
          listen('onError', this.#options.onError, new OnegridError(/** @type {ErrorCode} */ (event.code), event.message));
          break;
        case 'closed':
          this.#closed(event.code, event.message, event.byPeer);
          break;
      }
    }
    if (state === 'synced') this.#caughtUp = true;
    if (state !== this.#state && this.#state !== 'closed') {
      this.#state = state;
      listen('onState', this.#options.onState, state);
    }
  }

  /**
   * Closed: by an error frame (sent or received) or the transport.
   * @param {string} code
   * @param {string} message
   * @param {boolean} byPeer
   */
  #closed(code, message, byPeer) {
    const failed = this.#sendFailed;
    let error;
    if (failed !== undefined) {
      error = new OnegridError('CLOSED', `send() threw: ${messageOf(failed.e)}`, { cause: failed.e });
    } else {
      const known = /** @type {ErrorCode} */ (CLOSE_CODES.has(code) ? code : 'CLOSED');
      error = new OnegridError(known, byPeer ? `the peer closed the connection (${code}): ${message}` : message);
    }
    this.#hub.conns.delete(this.#id);
    this.#error = error;
    for (const w of this.#waiters.splice(0)) w.reject(error);
    if (byPeer || code !== 'CLOSED' || failed !== undefined) listen('onError', this.#options.onError, error);
  }

  /**
   * The grid was freed: closed with `error`, without a word to the module.
   * @param {OnegridError} error
   */
  end(error) {
    this.#error = error;
    for (const w of this.#waiters.splice(0)) w.reject(error);
    if (this.#state !== 'closed') {
      this.#state = 'closed';
      listen('onState', this.#options.onState, 'closed');
    }
  }

  /**
   * Accepting side: asks `onHello` (default: accept, every map both ways), then accepts or refuses.
   * @param {string} nodeId
   * @param {string | undefined} token
   */
  #hello(nodeId, token) {
    const onHello = this.#options.onHello;
    if (onHello === undefined) return this.#decide(undefined);
    let answer;
    try {
      answer = onHello(nodeId, token);
    } catch (e) {
      return this.#refuse(e);
    }
    if (answer !== null && typeof answer === 'object' && typeof (/** @type {{ then?: unknown }} */ (answer).then) === 'function') {
      /** @type {Promise<unknown>} */ (answer).then((p) => this.#decide(p), (e) => this.#refuse(e));
    } else {
      this.#decide(answer);
    }
  }

  /**
   * Accepts with the permissions `onHello` gave (`{ read, write }`, each missing for every map),
   * or refuses if they are not that.
   * @param {unknown} answer
   */
  #decide(answer) {
    const hub = this.#hub;
    if (this.#error !== undefined || hub.closed) return;
    let read;
    let write;
    try {
      if (answer !== undefined && (answer === null || typeof answer !== 'object')) {
        throw fail(`onHello must return { read, write } (or nothing, for every map), not ${typeName(answer)}`);
      }
      const p = /** @type {{ read?: unknown, write?: unknown } | undefined} */ (answer);
      read = patterns(p?.read, 'read');
      write = patterns(p?.write, 'write');
    } catch (e) {
      return this.#refuse(e);
    }
    const core = hub.core;
    const w = core.writer.reset();
    for (const list of [read, write]) {
      if (list === undefined) {
        w.u8(0);
      } else {
        w.u8(1);
        w.varint(list.length);
        for (const p of list) w.str(p, 'a pattern contains a lone surrogate');
      }
    }
    core.raw.syncAccept(this.#id, w.length);
    hub.schedule();
  }

  /**
   * Refuses the connection: the peer gets an error frame with `e`'s message.
   * @param {unknown} e
   */
  #refuse(e) {
    const hub = this.#hub;
    if (this.#error !== undefined || hub.closed) return;
    hub.core.raw.syncRefuse(this.#id, messageOf(e));
    hub.schedule();
  }
}

/**
 * `grid.connect(send, options)` and `grid.accept(send, options)`.
 * @param {GridCore} core
 * @param {unknown} send
 * @param {unknown} options
 * @param {boolean} accepting
 * @returns {Connection}
 */
export function openConnection(core, send, options, accepting) {
  const call = accepting ? 'accept' : 'connect';
  if (typeof send !== 'function') throw fail(`${call}() takes a send(frame) function, not ${typeName(send)}`);
  if (options !== undefined && (options === null || typeof options !== 'object')) {
    throw fail(`${call}()'s options must be an object, not ${typeName(options)}`);
  }
  const o = /** @type {Record<string, unknown>} */ (options ?? {});
  for (const name of accepting ? ['onState', 'onError', 'onHello'] : ['onState', 'onError']) {
    if (o[name] !== undefined && typeof o[name] !== 'function') throw fail(`options.${name} must be a function, not ${typeName(o[name])}`);
  }
  const token = accepting ? undefined : o.token;
  if (token !== undefined) checkText(token, 'options.token');
  const hub = hubOf(core);
  const id = accepting ? core.raw.syncIncoming() : core.raw.syncConnect(token);
  const conn = new Connection(hub, id, /** @type {(frame: Uint8Array) => void} */ (send), {
    onState: /** @type {Options['onState']} */ (o.onState),
    onError: /** @type {Options['onError']} */ (o.onError),
    onHello: accepting ? /** @type {Options['onHello']} */ (o.onHello) : undefined,
  });
  hub.conns.set(id, conn);
  hub.schedule();
  return conn;
}
