//! # onegrid-host
//!
//! The native host of onegrid: it runs the one WebAssembly module (the very `onegrid_bg.wasm` that
//! browsers, Node and edge workers load) in wasmtime, and drives it through the module's byte ABI:
//! postcard-encoded [`Request`](onegrid_core::Request)s in, [`Reply`](onegrid_core::Reply)s out.
//!
//! ## What it does and does not do
//! It loads and checks the module, caches its compiled code, runs bounded instances (a memory cap
//! and a deadline per call), and contains every guest failure: a trap becomes a [`HostError`], never
//! a crash of the host. It does not call the module's JavaScript API (wasm-bindgen's imports are
//! defined as traps). [`PersistentGrid`] drives the module's storage manager over the adapters in
//! [`storage`] (SQLite, PostgreSQL); serving sync comes next, as another loop around
//! [`Client::call`].
//!
//! ## The loop
//! Build the [`Runtime`] once per process, give each tenant or task a [`Client`] (one instance,
//! reused across calls), and send requests:
//!
//! ```
//! use onegrid_core::{Command, Reply, Request, Value};
//! use onegrid_host::{Client, Runtime, RuntimeConfig, pkg};
//!
//! let runtime = Runtime::new(pkg::WASM, RuntimeConfig::default())?;
//! let mut client = Client::new(&runtime)?;
//! let wall = 1_700_000_000_000;
//! let open = Command::Open { node_id: "server-1".into(), max_drift_ms: 60_000, strict: false };
//! let Reply::Opened(grid) = client.call(&Request { grid: 0, wall, command: open })? else {
//!     panic!("Open answers Opened")
//! };
//! let set = Command::Set { map: "todos".into(), key: "t1".into(), value: Value::from("milk"), ttl_ms: None };
//! assert_eq!(client.call(&Request { grid, wall, command: set })?, Reply::Done);
//! let get = Command::Get { map: "todos".into(), key: "t1".into() };
//! assert_eq!(client.call(&Request { grid, wall, command: get })?, Reply::Value(Some(Value::from("milk"))));
//! # Ok::<(), onegrid_host::HostError>(())
//! ```
//!
//! ## Modules
//! - [`runtime`]: [`Runtime`] and [`RuntimeConfig`]: engine, module, linker and `InstancePre`, built
//!   once; per-instance stores with a memory limit and an epoch deadline.
//! - [`client`]: [`Client`], one instance reused across calls and rebuilt after a failure.
//! - [`cache`]: the compiled-code cache on disk, and why loading it is sound.
//! - [`error`]: [`HostError`], one enum for the host/module boundary.
//! - [`pkg`]: the embedded module and JavaScript package, as `onegrid pkg` writes it.
//! - [`persistent`]: [`PersistentGrid`], a grid whose maps load from and flush to a storage adapter.
//! - [`serve`]: `onegrid serve`, the grid behind an HTTP server (the web app, the package, sync).
//! - [`loadgen`]: `onegrid bench-sync`, many native sync clients against `onegrid serve`.
//! - [`storage`]: the storage contract as a blocking [`Storage`](storage::Storage) trait, with its
//!   SQLite and PostgreSQL adapters.
//!
//! ## Features
//! None. wasmtime is built lean: Cranelift, the runtime, and its GC support (the module's
//! wasm-bindgen table of JavaScript references needs it).

pub mod cache;
pub mod client;
pub mod error;
pub mod loadgen;
pub mod persistent;
pub mod pkg;
pub mod runtime;
pub mod serve;
pub mod storage;

pub use cache::{CodeCache, CodeSource};
pub use client::Client;
pub use error::HostError;
pub use persistent::{GridError, PersistentGrid, Recovery};
pub use runtime::{Runtime, RuntimeConfig};

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use core::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}"); // writing to a String cannot fail
        out
    })
}
