// @ts-check
// The core's constants that the JavaScript side needs, in one place. They are defined in Rust
// (onegrid-core); tests/js/vectors.test.mjs checks these against the golden vectors that
// tests/tests/vectors.rs writes from the Rust definitions, so the two cannot drift apart.

/** Deepest nesting of lists and objects a value may have (`onegrid_core::value::MAX_DEPTH`). */
export const MAX_DEPTH = 64;

/** The default drift limit in milliseconds (`onegrid_core::hlc::DEFAULT_MAX_DRIFT_MS`). */
export const DEFAULT_MAX_DRIFT_MS = 60000;

/** Keys every map reserves (`RESERVED_KEY`, `MARK_KEY`). */
export const RESERVED_KEYS = Object.freeze(['__tombstones__', '__mark__']);

/**
 * The map kinds in the order of their one numbering (`MapKind::code`): the module's kind bytes are
 * indexes here; its hints and statuses are an index plus one, 0 meaning none.
 * @type {readonly ['lww', 'or']}
 */
export const MAP_KINDS = Object.freeze(/** @type {const} */ (['lww', 'or']));
