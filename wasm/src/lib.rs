//! # onegrid-wasm
//!
//! The one WebAssembly module of onegrid, with two faces over the same [`onegrid_core`] engine:
//!
//! - [`js_api`]: a wasm-bindgen API for JavaScript (`Grid`, `LwwMap`, `OrMap`), with precise
//!   TypeScript types; all shaping of JS values lives in [`interop`]. [`js_storage`] is its
//!   storage half: the wrapper's driver loop around the core's storage manager; [`js_sync`] its
//!   sync half: the grid's sync hub, which the wrapper pumps.
//! - [`abi`]: a versioned byte ABI of `extern "C"` exports (postcard requests and replies) for native
//!   hosts such as the wasmtime-based `onegrid` binary. It never calls a JavaScript import.
//!
//! Build it with `cargo run -p onegrid-host -- pkg --out DIR` (see the README): the host embeds the
//! module built from this crate and writes the JavaScript package next to it.

// Also natively under test: its handle table is plain Rust.
#[cfg(any(target_arch = "wasm32", test))]
pub mod abi;
#[cfg(all(target_arch = "wasm32", feature = "bench-twins"))]
pub mod bench_twins;
#[cfg(target_arch = "wasm32")]
pub mod interop;
#[cfg(target_arch = "wasm32")]
pub mod js_api;
#[cfg(target_arch = "wasm32")]
pub mod js_storage;
#[cfg(target_arch = "wasm32")]
pub mod js_sync;
