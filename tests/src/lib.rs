//! # onegrid-tests
//!
//! Conformance across runtimes: the same scenarios (the SPEC's edge cases and random ones from
//! fixed seeds) run on four engines, the native core, the module in wasmtime, the module's raw
//! exports in Node and the JavaScript API in Node, and every engine must end with byte-identical
//! snapshots and equal Merkle roots. The three byte-ABI engines must also return byte-identical
//! replies to every request.
//!
//! - [`scenario`]: the scenario model, compiled to byte-ABI requests and to JSON for Node;
//! - [`generate`]: the edge cases and the random generator;
//! - [`engines`]: running a scenario on each engine.
//!
//! The test itself is `tests/conformance.rs`; the Node side is `js/conformance-runner.mjs`.

pub mod engines;
pub mod generate;
pub mod scenario;
