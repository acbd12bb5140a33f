// @ts-check
// `connectWebSocket`: a grid's connection to a sync server over WebSocket that outlives its
// sockets. Each socket carries one `Connection` (sync.js) in binary frames; when it drops, the
// next one is opened after an exponential backoff with full jitter (capped, reset by a sync), with
// a token asked for again. Writes made meanwhile land in the grid, and the next connection's
// catch-up sends them. `whenSynced` spans the sockets: it waits for whichever connection gets
// every earlier write acknowledged.

import { listen, messageOf } from './callbacks.js';
import { OnegridError, freedError } from './errors.js';
import { checkText, fail } from './grid-core.js';
import { HUB, isAcked } from './sync.js';
import { typeName } from './values.js';

/** @typedef {import('./sync.js').SyncHub} SyncHub */
/** @typedef {import('./onegrid.js').Connection} Connection */
/** @typedef {import('./onegrid.js').Grid} Grid */
/** @typedef {import('./onegrid.js').ConnectionState} ConnectionState */
/** @typedef {import('./onegrid.js').ConnectWebSocketOptions} ConnectWebSocketOptions */
/** @typedef {import('./onegrid.js').WebSocketLike} WebSocketLike */
/** @typedef {import('./onegrid.js').LiveConnection} DeclaredLiveConnection */
/** @typedef {{ marker: number, resolve: () => void, reject: (e: Error) => void }} Waiter */

/** The first retry waits up to this long (full jitter: a random part of it). */
const RETRY_MS = 500;
/** No retry waits longer. */
const MAX_RETRY_MS = 30_000;


/**
 * @param {unknown} v
 * @param {string} what
 */
function checkFunction(v, what) {
  if (v !== undefined && typeof v !== 'function') throw fail(`options.${what} must be a function, not ${typeName(v)}`);
}

/**
 * @param {unknown} v
 * @param {string} what
 * @param {number} fallback
 */
function delayOption(v, what, fallback) {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !(v >= 0) || !Number.isFinite(v)) throw fail(`options.${what} must be milliseconds >= 0, not ${typeName(v)}`);
  return v;
}

/**
 * Connects `grid` to the sync server at `url` (`ws:` or `wss:`) and keeps it connected.
 * @param {Grid} grid
 * @param {string | URL} url
 * @param {ConnectWebSocketOptions} [options]
 * @returns {DeclaredLiveConnection}
 */
export function connectWebSocket(grid, url, options) {
  return new LiveConnection(grid, url, options);
}

/** @implements {DeclaredLiveConnection} */
class LiveConnection {
  /** @type {Grid} */
  #grid;
  /** @type {SyncHub} */
  #hub;
  /** @type {string} */
  #url;
  /** @type {string | undefined} */
  #token;
  /** @type {(() => unknown) | undefined} */
  #getToken;
  #reconnect;
  /** @type {new (url: string) => WebSocketLike} */
  #WebSocket;
  #retryMs;
  #maxRetryMs;
  /** @type {() => number} */
  #random;
  /** @type {(fn: () => void, ms: number) => unknown} */
  #setTimeout;
  /** @type {(timer: any) => void} */
  #clearTimeout;
  /** @type {((state: ConnectionState) => void) | undefined} */
  #onState;
  /** @type {((error: OnegridError) => void) | undefined} */
  #onError;

  /** @type {ConnectionState} */
  #state = 'connecting';
  /** @type {OnegridError | undefined} */
  #error = undefined; // set by close(), or when it stops
  /** @type {Connection | null} */
  #conn = null; // the current socket's, once it opened
  /** @type {(() => void) | undefined} */
  #drop = undefined; // drops the current socket
  /** @type {unknown} */
  #timer = undefined;
  #tries = 0; // attempts since the last sync
  /** @type {Waiter[]} */
  #waiters = [];
  // pendingWrites between connections: the count last known, and the local writes logged then.
  #pending = 0;
  #localsAt = 0;
  #watch = () => this.#check();

  /**
   * @param {Grid} grid
   * @param {string | URL} url
   * @param {ConnectWebSocketOptions | undefined} options
   */
  constructor(grid, url, options) {
    const hubOf = /** @type {{ [HUB]?: unknown }} */ (/** @type {unknown} */ (grid))?.[HUB];
    if (typeof hubOf !== 'function') throw fail(`connectWebSocket() takes a Grid, not ${typeName(grid)}`);
    if (typeof url !== 'string' && !(url instanceof URL)) throw fail(`connectWebSocket() takes a URL, not ${typeName(url)}`);
    if (options !== undefined && (options === null || typeof options !== 'object')) {
      throw fail(`connectWebSocket()'s options must be an object, not ${typeName(options)}`);
    }
    const o = options ?? {};
    if (o.token !== undefined) checkText(o.token, 'options.token');
    for (const name of /** @type {const} */ (['getToken', 'onState', 'onError', 'WebSocket', 'random', 'setTimeout', 'clearTimeout'])) {
      checkFunction(o[name], name);
    }
    if (o.reconnect !== undefined && typeof o.reconnect !== 'boolean') throw fail(`options.reconnect must be a boolean, not ${typeName(o.reconnect)}`);
    const WebSocket = o.WebSocket ?? /** @type {{ WebSocket?: new (url: string) => WebSocketLike }} */ (globalThis).WebSocket;
    if (WebSocket === undefined) throw fail('this runtime has no WebSocket: pass options.WebSocket (a WebSocket class, e.g. the ws package\'s)');
    this.#grid = grid;
    this.#hub = /** @type {() => SyncHub} */ (hubOf).call(grid);
    this.#url = String(url);
    this.#token = o.token;
    this.#getToken = o.getToken;
    this.#reconnect = o.reconnect ?? true;
    this.#WebSocket = WebSocket;
    this.#retryMs = delayOption(o.retryDelayMs, 'retryDelayMs', RETRY_MS);
    this.#maxRetryMs = delayOption(o.maxRetryDelayMs, 'maxRetryDelayMs', MAX_RETRY_MS);
    this.#random = o.random ?? Math.random;
    this.#setTimeout = o.setTimeout ?? globalThis.setTimeout;
    this.#clearTimeout = o.clearTimeout ?? globalThis.clearTimeout;
    this.#onState = o.onState;
    this.#onError = o.onError;
    this.#pending = this.#hub.locals();
    this.#localsAt = this.#pending;
    this.#hub.watchers.add(this.#watch);
    this.#attempt();
  }

  /** 'connecting' (no socket synced yet, or waiting to reconnect), 'syncing', 'synced', or
   * 'closed' (after `close()`, or a drop with `reconnect: false`). */
  get state() {
    return this.#state;
  }

  /** Local writes not yet acknowledged: by the current connection, or, between connections, the
   * count the last one left plus the writes made since. */
  get pendingWrites() {
    if (this.#error !== undefined || this.#hub.closed) return this.#pending;
    const locals = this.#hub.locals();
    let pending = this.#pending + (locals - this.#localsAt);
    const conn = this.#conn;
    // (A new connection counts every write until its catch-up is over: the estimate is better.)
    if (conn !== null && conn.state !== 'closed') pending = Math.min(pending, conn.pendingWrites);
    this.#pending = pending;
    this.#localsAt = locals;
    return pending;
  }

  /** Resolves once every local write made before the call is acknowledged by a connection
   * (through reconnects); rejects if it stops first (`close()`, or `reconnect: false`).
   * @returns {Promise<void>} */
  whenSynced() {
    if (this.#error !== undefined) return Promise.reject(this.#error);
    const marker = this.#hub.marker();
    return new Promise((resolve, reject) => {
      this.#waiters.push({ marker, resolve, reject });
      this.#check();
    });
  }

  /** Closes the socket and stops reconnecting; `whenSynced` promises reject with `CLOSED`. */
  close() {
    this.#stop(new OnegridError('CLOSED', 'connectWebSocket: close() was called'));
  }

  #check() {
    if (this.#hub.closed) return this.#stop(freedError());
    const conn = this.#conn;
    const waiters = this.#waiters;
    while (conn !== null && waiters.length > 0 && isAcked(conn, waiters[0].marker)) /** @type {Waiter} */ (waiters.shift()).resolve();
  }

  /** @param {OnegridError} error */
  #stop(error) {
    if (this.#error !== undefined) return;
    this.pendingWrites; // (its last count, kept)
    this.#error = error;
    this.#hub.watchers.delete(this.#watch);
    if (this.#timer !== undefined) {
      const clear = this.#clearTimeout;
      clear(this.#timer);
      this.#timer = undefined;
    }
    this.#drop?.();
    for (const w of this.#waiters.splice(0)) w.reject(error);
    this.#update();
  }

  /** Tells `onState` of a change of the state. */
  #update() {
    const conn = this.#conn;
    /** @type {ConnectionState} */
    let state = 'connecting';
    if (this.#error !== undefined) state = 'closed';
    else if (conn !== null && (conn.state === 'syncing' || conn.state === 'synced')) state = conn.state;
    if (state === this.#state) return;
    this.#state = state;
    listen('onState', this.#onState, state);
  }

  /** Opens the next socket after a backoff: a random part (full jitter) of the retry delay, which
   * doubles with each attempt since the last sync up to the maximum. */
  #retry() {
    if (this.#error !== undefined) return;
    if (!this.#reconnect) return this.#stop(new OnegridError('CLOSED', 'connectWebSocket: the WebSocket closed'));
    const cap = Math.min(this.#maxRetryMs, this.#retryMs * 2 ** Math.min(this.#tries, 30));
    this.#tries++;
    const set = this.#setTimeout;
    this.#timer = set(() => {
      this.#timer = undefined;
      this.#attempt();
    }, this.#random() * cap);
  }

  /** Asks for a token, opens a socket, and on it a connection. */
  async #attempt() {
    let token = this.#token;
    if (this.#getToken !== undefined) {
      try {
        token = /** @type {string | undefined} */ (await this.#getToken());
        if (token !== undefined) checkText(token, 'the token getToken() gave');
      } catch (e) {
        if (this.#error !== undefined) return;
        listen('onError', this.#onError, e instanceof OnegridError ? e : new OnegridError('REFUSED', `getToken() failed: ${messageOf(e)}`, { cause: e }));
        return this.#retry();
      }
      if (this.#error !== undefined) return;
    }
    /** @type {WebSocketLike} */
    let ws;
    try {
      ws = new this.#WebSocket(this.#url);
      ws.binaryType = 'arraybuffer';
    } catch (e) {
      listen('onError', this.#onError, new OnegridError('INVALID_ARGUMENT', `new WebSocket(url) threw: ${messageOf(e)}`, { cause: e }));
      return this.#retry();
    }
    /** @type {Connection | null} */
    let conn = null;
    let done = false;
    // The socket is gone (closed, failed, or refused: Node 20's WebSocket fires only `error` then,
    // and stays CONNECTING), or its connection closed: once per socket.
    const drop = () => {
      if (done) return;
      done = true;
      this.#drop = undefined;
      try {
        ws.close();
      } catch {
        // (already closing)
      }
      if (conn !== null) {
        this.pendingWrites; // (the count this connection leaves)
        this.#conn = null;
        conn.close();
      }
      this.#update();
      this.#retry();
    };
    this.#drop = drop;
    ws.onopen = () => {
      if (done) return;
      try {
        conn = this.#grid.connect((frame) => ws.send(frame), {
          token,
          onState: (state) => {
            if (state === 'synced') this.#tries = 0;
            if (state === 'closed') drop();
            else this.#update();
          },
          onError: (e) => listen('onError', this.#onError, e),
        });
      } catch (e) {
        // The grid was freed.
        return this.#stop(e instanceof OnegridError ? e : new OnegridError('CLOSED', messageOf(e)));
      }
      this.#conn = conn;
    };
    ws.onmessage = (event) => {
      if (done || conn === null) return;
      const data = event.data;
      if (Object.prototype.toString.call(data) === '[object ArrayBuffer]') {
        conn.receive(new Uint8Array(/** @type {ArrayBuffer} */ (data)));
      } else if (ArrayBuffer.isView(data)) {
        conn.receive(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      } else {
        listen('onError', this.#onError, new OnegridError('MALFORMED', `connectWebSocket: a message of ${typeName(data)} arrived; sync frames are binary`));
        drop();
      }
    };
    ws.onerror = drop;
    ws.onclose = drop;
  }
}
