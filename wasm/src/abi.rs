//! The byte ABI for native hosts: plain `extern "C"` exports, postcard in and out, no JavaScript.
//!
//! A host calls `onegrid_alloc(len)`, writes an encoded [`Request`] there, calls
//! `onegrid_call(ptr, len)`, which frees the request buffer and returns `(reply_ptr << 32) | reply_len`,
//! reads the encoded [`Reply`] and frees it with `onegrid_free(reply_ptr, reply_len)`. Grids opened
//! through the ABI live in a table inside the module under handles that are never reused, so the
//! handle of a closed grid never reaches a later grid. Each grid has the hub of its sync
//! connections beside it (a [`Replica`]): the sync commands drive it, and the storage manager's
//! flush events reach it inside `Storage`. Nothing here calls an import.

use std::alloc::{Layout, alloc, dealloc};
use std::cell::RefCell;

use onegrid_core::codec::{decode_request, encode_reply};
use onegrid_core::{
    ABI_VERSION, ClockConfig, Command, Error, ErrorKind, Grid, NodeId, Replica, Reply, Request, StorageConfig,
    WireError,
};

thread_local! {
    /// The open grids by handle.
    static GRIDS: RefCell<Table> = const { RefCell::new(Table { last: 0, grids: Vec::new() }) };
}

/// Open grids (each with its hub) with their handles. Handles count up from 1 and are never reused: the handle of a
/// closed grid never names a later grid.
struct Table {
    /// The last handle issued (0 before the first Open).
    last: u32,
    grids: Vec<(u32, Replica)>,
}

impl Table {
    fn open(&mut self, grid: Grid) -> Reply {
        match self.last.checked_add(1) {
            Some(handle) => {
                self.last = handle;
                self.grids.push((handle, Replica::new(grid)));
                Reply::Opened(handle)
            }
            None => Reply::Error(WireError::new(ErrorKind::Limit, "every grid handle has been used")),
        }
    }

    /// Where the grid of `handle` is (a scan: hosts open few grids).
    fn index(&self, handle: u32) -> Result<usize, Error> {
        self.grids.iter().position(|(h, _)| *h == handle).ok_or(Error::UnknownGrid { handle })
    }
}

/// The version of the request/reply layout.
#[unsafe(no_mangle)]
pub extern "C" fn onegrid_abi_version() -> u32 {
    ABI_VERSION
}

/// Allocates `len` bytes for the host to write into; 0 if `len` is 0 or memory is exhausted.
#[unsafe(no_mangle)]
pub extern "C" fn onegrid_alloc(len: u32) -> u32 {
    let Ok(layout) = Layout::from_size_align(len as usize, 1) else { return 0 };
    if layout.size() == 0 {
        return 0;
    }
    // SAFETY: the layout has a non-zero size.
    let ptr = unsafe { alloc(layout) };
    ptr as usize as u32
}

/// Frees a buffer from `onegrid_alloc` or a reply from `onegrid_call`.
///
/// # Safety
/// `ptr` and `len` must describe exactly one live buffer handed out by this module.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onegrid_free(ptr: u32, len: u32) {
    if ptr == 0 || len == 0 {
        return;
    }
    if let Ok(layout) = Layout::from_size_align(len as usize, 1) {
        // SAFETY: the caller promises (ptr, len) came from onegrid_alloc or onegrid_call.
        unsafe { dealloc(ptr as usize as *mut u8, layout) };
    }
}

/// Runs one request (and frees its buffer); returns the reply buffer as `(ptr << 32) | len`.
///
/// # Safety
/// `ptr` and `len` must describe one live buffer from `onegrid_alloc` that the host filled.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onegrid_call(ptr: u32, len: u32) -> u64 {
    let reply = {
        let bytes: &[u8] = if ptr == 0 || len == 0 {
            &[]
        } else {
            // SAFETY: the caller promises the buffer is live and `len` bytes long.
            unsafe { std::slice::from_raw_parts(ptr as usize as *const u8, len as usize) }
        };
        let reply = match decode_request(bytes) {
            Ok(request) => run(request).unwrap_or_else(|e| Reply::Error(WireError::from(&e))),
            Err(e) => Reply::Error(WireError::from(&e)),
        };
        encode_reply(&reply)
    };
    // SAFETY: the request buffer is no longer borrowed.
    unsafe { onegrid_free(ptr, len) };
    let out = reply.into_boxed_slice();
    let (out_len, out_ptr) = (out.len() as u64, Box::into_raw(out) as *mut u8 as usize as u64);
    (out_ptr << 32) | out_len
}

/// Runs a decoded request against the grid table.
fn run(request: Request) -> Result<Reply, Error> {
    GRIDS.with_borrow_mut(|table| match request.command {
        Command::Open { node_id, max_drift_ms, strict } => {
            Ok(table.open(Grid::new(NodeId::new(&node_id)?, ClockConfig { max_drift_ms, strict })))
        }
        Command::OpenPersistent { node_id, max_drift_ms, strict } => {
            let config = ClockConfig { max_drift_ms, strict };
            Ok(table.open(Grid::with_storage(NodeId::new(&node_id)?, config, StorageConfig::default())))
        }
        Command::Close => {
            let at = table.index(request.grid)?;
            table.grids.swap_remove(at);
            Ok(Reply::Done)
        }
        command => {
            let at = table.index(request.grid)?;
            table.grids[at].1.execute(request.wall, command)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(grid: u32, command: Command) -> Reply {
        run(Request { grid, wall: 1, command }).unwrap_or_else(|e| Reply::Error(WireError::from(&e)))
    }

    #[test]
    fn no_handle_is_issued_twice() {
        // (host/tests/abi.rs checks a stale handle against the module in wasmtime; this runs many
        // opens natively, where they are fast.)
        let mut seen = std::collections::HashSet::new();
        let kept = call(0, Command::Open { node_id: "kept".into(), max_drift_ms: 1, strict: false });
        for _ in 0..70_000 {
            let Reply::Opened(handle) = call(0, Command::Open { node_id: "n".into(), max_drift_ms: 1, strict: false })
            else {
                panic!("Open answers Opened")
            };
            assert!(seen.insert(handle), "handle {handle:#x} issued twice");
            assert_eq!(call(handle, Command::Close), Reply::Done);
            let closed = Reply::Error(WireError::from(&onegrid_core::Error::UnknownGrid { handle }));
            assert_eq!(call(handle, Command::Close), closed);
        }
        // A grid opened before them all is still there under its handle.
        assert_eq!(kept, Reply::Opened(1));
        let no_map = WireError::from(&onegrid_core::Error::UnknownMap { name: "m".into() });
        assert_eq!(call(1, Command::Root { map: "m".into() }), Reply::Error(no_map));
    }
}
