// @ts-check
// `OnegridError`: what every error the package throws or rejects with is, so apps act on its `code`
// and never on the message. The module's own errors carry the core's kinds (`onegrid_core::ErrorKind`,
// checked against the golden vectors by tests/js/vectors.test.mjs); the wrapper adds the codes of
// what only JavaScript can get wrong.

/**
 * Every code, in one list: the core's kinds, sync's, then the wrapper's own.
 * - `KIND_MISMATCH`: a map asked for, offered or stored as the other kind.
 * - `INVALID_VALUE`: a value the data model cannot hold (NaN, too deep, a lone surrogate, a cycle).
 * - `INVALID_ARGUMENT`: an argument out of its rules (a key, a TTL, an option, a node id).
 * - `MALFORMED`: bytes that do not decode (a snapshot, a stored value, a reply).
 * - `CLOCK_DRIFT`: strict mode refused a timestamp too far ahead of the wall clock.
 * - `CLOCK_EXHAUSTED`: the clock reached its last timestamp.
 * - `STORAGE`: the storage adapter failed (its error is the `cause`), or what it holds is corrupt.
 * - `NOT_FOUND`: something named does not exist (a map, held writes).
 * - `LOADING`: a map whose load has not finished.
 * - `LIMIT`: a bound was reached.
 *
 * Sync's (the codes of the core's error frames, `onegrid_core::sync::frame::codes`, and of a
 * connection's close; `MALFORMED`, `CLOCK_DRIFT` and `STORAGE` above are error-frame codes too):
 * - `VERSION`: the peer speaks another protocol version.
 * - `REFUSED`: the accepting side refused the connection (its `onHello` threw).
 * - `FORBIDDEN`: a write to a map the connection may not write.
 * - `REFUSED_RECORD`: a record a frame carried was refused (a bad value, an exhausted clock).
 * - `UNAUTHORIZED`: `onegrid serve` refused the handshake's token (missing, malformed, forged,
 *   expired): connect again with a valid one (`connectWebSocket` asks `getToken()` each time).
 * - `CLOSED`: the connection closed: `close()`, its transport, or the peer with a code this
 *   version does not know.
 *
 * The wrapper's own:
 * - `FREED`: the grid was freed (`grid.free()`).
 * - `NOT_LOADED`: the module is not loaded yet (`init()` or `initSync()` first).
 */
export const ERROR_CODES = Object.freeze(/** @type {const} */ ([
  'KIND_MISMATCH', 'INVALID_VALUE', 'INVALID_ARGUMENT', 'MALFORMED', 'CLOCK_DRIFT', 'CLOCK_EXHAUSTED',
  'STORAGE', 'NOT_FOUND', 'LOADING', 'LIMIT',
  'VERSION', 'REFUSED', 'FORBIDDEN', 'REFUSED_RECORD', 'UNAUTHORIZED', 'CLOSED',
  'FREED', 'NOT_LOADED',
]));

/** @typedef {typeof ERROR_CODES[number]} ErrorCode */

/** An error of onegrid: `code` says what went wrong, the message says it for people. */
export class OnegridError extends Error {
  /**
   * @param {ErrorCode} code
   * @param {string} message
   * @param {{ cause?: unknown }} [options] `cause`: the error behind it (the storage adapter's)
   */
  constructor(code, message, options) {
    super(message, options);
    /** @type {'OnegridError'} */
    this.name = 'OnegridError';
    /** @type {ErrorCode} */
    this.code = code;
  }
}

/** The error of any use of a freed grid, its maps or its connections (one message for all). */
export function freedError() {
  return new OnegridError('FREED', 'this grid was freed (grid.free())');
}
