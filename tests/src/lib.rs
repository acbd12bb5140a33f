//! # onegrid-tests
//!
//! Conformance across runtimes: the same scenarios (the SPEC's edge cases and random ones from
//! fixed seeds) run on six engines, the native core, the module in wasmtime, the module's raw
//! exports and the JavaScript API in Node, and the same two in workerd, and every engine must end
//! with byte-identical snapshots and equal Merkle roots. The four byte-ABI engines must also return
//! byte-identical replies to every request.
//!
//! - [`scenario`]: the scenario model, compiled to byte-ABI requests and to JSON for Node;
//! - [`generate`]: the edge cases and the random generator;
//! - [`engines`]: running a scenario on each engine;
//! - [`workerd`]: the workerd process and its Worker;
//! - [`sim`]: the deterministic sync simulation, on the native core, in wasmtime and in Node.
//!
//! The test itself is `tests/conformance.rs`; the JavaScript side is `js/scenario-runner.mjs`, run
//! by `js/conformance-runner.mjs` in Node and by `js/workerd-worker.mjs` in workerd.

pub mod engines;
pub mod generate;
pub mod scenario;
pub mod sim;
pub mod workerd;
