//! [`HostError`]: everything that can go wrong between the host and the module, one enum for the
//! whole boundary.
//!
//! Two families matter to a caller. Loading errors ([`HostError::Compile`],
//! [`HostError::NotOnegrid`], [`HostError::AbiMismatch`], ...) come from [`crate::Runtime::new`]
//! and mean the module cannot be used at all. Call errors that [lose the
//! instance](HostError::instance_lost) mean the guest misbehaved (trapped, ran past its deadline,
//! hit its memory limit, broke the ABI): the host dropped that instance, and **every grid opened on
//! it is gone**; the next call runs on a fresh instance, so the caller reopens its grids
//! ([`crate::PersistentGrid`] does that itself, reloads its maps from storage and replays its
//! unflushed writes). A command the module refuses is not an error here: it comes back as
//! `Ok(Reply::Error(message))` and changes nothing.

use core::fmt;
use std::time::Duration;

/// What went wrong at the host/module boundary. See the [module docs](self) for the two families.
#[derive(Debug)]
#[non_exhaustive]
pub enum HostError {
    /// wasmtime could not set up its engine on this machine (or the epoch thread did not start).
    Engine(wasmtime::Error),
    /// The bytes are not a WebAssembly module wasmtime accepts.
    Compile(wasmtime::Error),
    /// A valid WebAssembly module, but it does not have the onegrid byte ABI.
    NotOnegrid {
        /// What is missing or wrong, e.g. "does not export `onegrid_call`".
        reason: String,
    },
    /// The module's `onegrid_abi_version()` differs from [`onegrid_core::ABI_VERSION`].
    AbiMismatch {
        /// What the module reports.
        module: u32,
        /// What this host speaks.
        host: u32,
    },
    /// Creating an instance failed, e.g. because the module's initial memory is above
    /// [`crate::RuntimeConfig::memory_limit`]. No grids were lost: there were none on it yet.
    Instantiate(wasmtime::Error),
    /// The encoded request is larger than [`onegrid_core::codec::MAX_MESSAGE_BYTES`]; nothing was
    /// sent and the instance is untouched.
    RequestTooLarge {
        /// Size of the encoded request in bytes.
        len: usize,
    },
    /// The guest trapped (`unreachable`, an out-of-bounds access, a call to a JavaScript import...).
    /// The instance was dropped.
    Trap {
        /// wasmtime's description of the trap.
        message: String,
    },
    /// The call ran past its deadline and was interrupted. The instance was dropped.
    Deadline {
        /// The per-call time limit that was exceeded.
        timeout: Duration,
    },
    /// The guest tried to grow its memory past the limit. The instance was dropped.
    MemoryLimit {
        /// Bytes of linear memory the guest asked for.
        wanted: usize,
        /// The limit, in bytes.
        limit: usize,
    },
    /// `onegrid_alloc` returned 0 for a non-empty request: the guest's allocator is exhausted.
    /// The instance was dropped.
    GuestAllocFailed {
        /// Bytes asked for.
        len: usize,
    },
    /// The guest broke the byte ABI: a buffer outside its memory, a reply larger than the limit, or
    /// a reply that does not decode. The instance was dropped.
    AbiViolation {
        /// What exactly was wrong.
        reason: String,
    },
}

impl HostError {
    /// True when the instance that made this error was dropped, and with it every grid opened on it.
    /// The next call builds a fresh instance.
    pub fn instance_lost(&self) -> bool {
        matches!(
            self,
            Self::Trap { .. }
                | Self::Deadline { .. }
                | Self::MemoryLimit { .. }
                | Self::GuestAllocFailed { .. }
                | Self::AbiViolation { .. }
        )
    }
}

const LOST: &str = "the instance was dropped and the grids opened on it are gone";

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Engine(e) => write!(f, "wasmtime cannot run here: {e:#}"),
            Self::Compile(e) => write!(f, "the module is not valid WebAssembly: {e:#}"),
            Self::NotOnegrid { reason } => write!(f, "module {reason}: not a onegrid module"),
            Self::AbiMismatch { module, host } => write!(f, "module ABI version {module}, host expects {host}"),
            Self::Instantiate(e) => write!(f, "could not instantiate the module: {e:#}"),
            Self::RequestTooLarge { len } => write!(
                f,
                "request of {len} bytes is larger than the limit of {} bytes; nothing was sent",
                onegrid_core::codec::MAX_MESSAGE_BYTES
            ),
            Self::Trap { message } => write!(f, "the module trapped: {message}; {LOST}"),
            Self::Deadline { timeout } => {
                write!(f, "the call ran longer than its {timeout:?} deadline and was interrupted; {LOST}")
            }
            Self::MemoryLimit { wanted, limit } => {
                write!(f, "the module needed {wanted} bytes of memory, more than the limit of {limit} bytes; {LOST}")
            }
            Self::GuestAllocFailed { len } => {
                write!(f, "the module could not allocate {len} bytes for a request; {LOST}")
            }
            Self::AbiViolation { reason } => write!(f, "the module broke the byte ABI: {reason}; {LOST}"),
        }
    }
}

impl std::error::Error for HostError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Engine(e) | Self::Compile(e) | Self::Instantiate(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}

/// The error our resource limiter raises when the guest asks for too much memory, so a call's
/// failure can be told apart from other traps by downcasting.
#[derive(Debug)]
pub(crate) struct MemoryLimitHit {
    pub(crate) wanted: usize,
    pub(crate) limit: usize,
}

impl fmt::Display for MemoryLimitHit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "memory limit of {} bytes reached (the module asked for {})", self.limit, self.wanted)
    }
}

impl std::error::Error for MemoryLimitHit {}

/// Classifies an error from a call into the guest that ran for at most `timeout`.
pub(crate) fn from_guest(e: wasmtime::Error, timeout: Duration) -> HostError {
    if let Some(hit) = e.downcast_ref::<MemoryLimitHit>() {
        return HostError::MemoryLimit { wanted: hit.wanted, limit: hit.limit };
    }
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => HostError::Deadline { timeout },
        Some(trap) => HostError::Trap { message: trap.to_string() },
        // Not a wasm trap: an error raised by a host function, e.g. a JavaScript import defined as
        // a trap. Its root cause names the import; the rest is a wasm backtrace of indices.
        None => HostError::Trap { message: e.root_cause().to_string() },
    }
}
