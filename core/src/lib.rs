//! # onegrid-core
//!
//! The CRDT engine of onegrid, the offline-first data grid: a hybrid logical clock, last-writer-wins
//! maps, observed-remove maps, their Merkle trees, the postcard codec for snapshots and stored
//! values, the sans-IO storage manager, and the byte ABI that hosts drive it through. The semantics
//! are the contract in `SPEC.md`: every runtime that runs this code (natively, or as the one
//! WebAssembly module in browsers, Node, edge workers and the wasmtime host) reaches the same state
//! and the same hashes from the same inputs.
//!
//! ## What it does not do
//! No I/O, no clock, no randomness, no threads. Wall time is an argument (`wall`, milliseconds since
//! the Unix epoch), identity is an argument ([`NodeId`]), and change events are polled
//! ([`LwwMap::poll_event`]). It is `#![no_std]` with `alloc`, and builds for `wasm32v1-none`.
//!
//! ## The loop
//! A replica writes locally with a clock, and merges what peers send; every merge observes the
//! remote timestamp first, so the next local write is newer than everything seen.
//!
//! ```
//! use onegrid_core::{ClockConfig, Hlc, LwwMap, NodeId, Value};
//!
//! let mut clock_a = Hlc::new(NodeId::new("a")?, ClockConfig::default());
//! let mut clock_b = Hlc::new(NodeId::new("b")?, ClockConfig::default());
//! let (mut a, mut b) = (LwwMap::new(), LwwMap::new());
//!
//! a.set(&mut clock_a, 1_000, "color", Value::from("red"), None)?;
//! b.set(&mut clock_b, 1_000, "color", Value::from("blue"), None)?; // same millisecond: "b" > "a" wins
//! b.set(&mut clock_b, 1_001, "size", Value::from(3), None)?;
//!
//! // Exchange everything both ways (sync does this by comparing Merkle trees).
//! for (key, record) in a.records() {
//!     b.merge(&mut clock_b, 1_002, key, record)?;
//! }
//! for (key, record) in b.records() {
//!     a.merge(&mut clock_a, 1_002, key, record)?;
//! }
//! assert_eq!(a.get("color", 1_002), Some(Value::from("blue")));
//! assert_eq!(a.root(), b.root());
//! # Ok::<(), onegrid_core::Error>(())
//! ```
//!
//! Two grids sync through a [`Hub`](sync::Hub) each (see [`sync`] for the driver's loop):
//!
//! ```
//! use onegrid_core::sync::{ConnState, Event, Hub, Permissions, SyncConfig};
//! use onegrid_core::{ClockConfig, Grid, NodeId, Value};
//!
//! let mut a = Grid::new(NodeId::new("a")?, ClockConfig::default());
//! let mut b = Grid::new(NodeId::new("b")?, ClockConfig::default());
//! let (map, clock) = a.lww("todo", 1_000)?;
//! map.set(clock, 1_000, "milk", Value::from(true), None)?;
//!
//! let (mut ha, mut hb) = (Hub::new(SyncConfig::default()), Hub::new(SyncConfig::default()));
//! let ca = ha.connect(&mut a, None);
//! let cb = hb.incoming(&mut b);
//! for _ in 0..10 {
//!     while let Some(frame) = ha.poll_transmit(&mut a, ca, 1_001) {
//!         hb.handle_frame(&mut b, cb, 1_001, &frame);
//!     }
//!     while let Some(event) = hb.poll_event(cb) {
//!         if let Event::Hello { .. } = event {
//!             hb.accept(&mut b, cb, Permissions::all()); // a server checks the token first
//!         }
//!     }
//!     while let Some(frame) = hb.poll_transmit(&mut b, cb, 1_001) {
//!         ha.handle_frame(&mut a, ca, 1_001, &frame);
//!     }
//! }
//! assert_eq!(ha.state(ca), ConnState::Synced);
//! assert_eq!(b.map("todo").map(|m| m.root()), a.map("todo").map(|m| m.root()));
//! # Ok::<(), onegrid_core::Error>(())
//! ```
//!
//! ## Modules, bottom up
//! Each layer uses only those below it (`ARCHITECTURE.md` draws them; a test in `layers.rs` checks
//! every reference between modules against that order, so there is no import cycle).
//! - The vocabulary: [`hlc`] ([`NodeId`], [`Timestamp`] and its one text form, the clock [`Hlc`]
//!   with drift detection), [`hash`] (FNV-1a over UTF-16 code units, `mix`, `combine`,
//!   [`partition_of`]), [`value`] ([`Value`] and its canonical JSON), the one [`Error`], and the
//!   private `map_common` (key and TTL rules, [`MapKind`]), `dirty`, `event`, `sort`.
//! - [`codec`]'s primitives: the writer, the reader cursors, and a value's bytes ([`Encoded`]: an
//!   LWW map holds its values encoded, so these sit below the maps).
//! - The CRDT: [`lww`] and [`or_map`], the two map kinds, each with an incremental [`MerkleTree`]
//!   ([`merkle`]).
//! - [`codec`]'s records: snapshots (LWW ones column by column) and stored values
//!   ([`StoredValue`], [`MapMark`]), decoded defensively.
//! - [`storage`]: [`StorageManager`], the sans-IO storage manager of SPEC section 6: it owns the
//!   maps ([`AnyMap`], [`MapId`]) and the clock, hands out [`StorageRequest`]s and takes their
//!   [`StorageResult`]s.
//! - [`grid`]: [`Grid`], one node: the façade every runtime drives (maps by name, snapshot export
//!   and import), over its storage manager.
//! - [`abi`]: the byte ABI's [`Request`], [`Command`] and [`Reply`], their bytes, and
//!   [`Grid::execute`] (`onegrid_core::command` is its old name).
//! - [`sync`]: the connections between grids (SPEC section 8), beside `abi` over the grid: its
//!   [`frame`](sync::frame)s (a version byte, postcard, a size limit), [`Permissions`](sync::Permissions),
//!   the [`Hub`](sync::Hub) (one per grid: the change log every connection pushes from with its
//!   own cursor, group commits, acknowledgements) and its [`Connection`](sync::Connection)s (the
//!   handshake, pushes, and the Merkle catch-up, turn by turn, in `sync/catchup.rs`). Every
//!   runtime drives the same code: frames in, frames and events out.
//!
//! ## Features
//! - `std` (off): nothing yet beyond what `core::error::Error` already gives; reserved for
//!   embedders that want std-only conveniences.
#![no_std]
#![deny(unsafe_code)]
#![warn(clippy::std_instead_of_core, clippy::std_instead_of_alloc, clippy::alloc_instead_of_core)]

extern crate alloc;

pub mod abi;
pub mod codec;
mod dirty;
mod error;
mod event;
pub mod grid;
pub mod hash;
pub mod hlc;
#[cfg(test)]
mod layers;
pub mod lww;
mod map_common;
pub mod merkle;
pub mod or_map;
mod sort;
pub mod storage;
pub mod sync;
pub mod value;

/// The byte ABI's old path (`onegrid_core::command`), kept so callers compile unchanged.
#[doc(hidden)]
pub use abi as command;

pub use abi::{
    ABI_VERSION, Command, InFrame, Replica, Reply, Request, SyncEvent, SyncOutput, WireDrift, WireError, WireEvent,
};
pub use codec::{Encoded, MapMark, Snapshot, StoredValue};
pub use error::{Error, ErrorKind};
pub use event::{ChangeEvent, Origin};
pub use grid::{Grid, Imported};
pub use hash::{combine, fnv1a, mix, partition_of};
pub use hlc::{ClockConfig, Drift, Hlc, NodeId, Timestamp};
pub use lww::{LwwMap, LwwRecord};
pub use map_common::{MARK_KEY, MapKind, Merged, RESERVED_KEY, check_key};
pub use merkle::MerkleTree;
pub use or_map::{KeyMerge, OrMap, OrRecord};
pub use storage::{
    AnyMap, MapId, MapStatus, StorageConfig, StorageEvent, StorageManager, StorageOp, StorageRequest, StorageResult,
};
pub use value::Value;
