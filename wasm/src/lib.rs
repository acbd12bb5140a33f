//! The onegrid WebAssembly module. Its JavaScript API and byte ABI land with the one-module issue.
#![no_std]

pub use onegrid_core as core_engine;
