//! The byte ABI for native hosts: plain `extern "C"` exports, postcard in and out, no JavaScript.
//!
//! A host calls `onegrid_alloc(len)`, writes an encoded [`Request`] there, calls
//! `onegrid_call(ptr, len)`, which frees the request buffer and returns `(reply_ptr << 32) | reply_len`,
//! reads the encoded [`Reply`] and frees it with `onegrid_free(reply_ptr, reply_len)`. Grids opened
//! through the ABI live in a table of handles inside the module. Nothing here calls an import.

use std::alloc::{Layout, alloc, dealloc};
use std::cell::RefCell;

use onegrid_core::codec::{decode_request, encode_reply};
use onegrid_core::{ABI_VERSION, ClockConfig, Command, Error, Grid, NodeId, Reply, Request, StorageConfig};

thread_local! {
    /// Open grids by handle (index + 1; 0 is never a handle).
    static GRIDS: RefCell<Vec<Option<Grid>>> = const { RefCell::new(Vec::new()) };
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
            Ok(request) => run(request).unwrap_or_else(|e| Reply::Error(e.to_string())),
            Err(e) => Reply::Error(e.to_string()),
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
    GRIDS.with_borrow_mut(|grids| match request.command {
        Command::Open { node_id, max_drift_ms, strict } => {
            let grid = Grid::new(NodeId::new(&node_id)?, ClockConfig { max_drift_ms, strict });
            Ok(Reply::Opened(open(grids, grid)))
        }
        Command::OpenPersistent { node_id, max_drift_ms, strict } => {
            let config = ClockConfig { max_drift_ms, strict };
            let grid = Grid::with_storage(NodeId::new(&node_id)?, config, StorageConfig::default());
            Ok(Reply::Opened(open(grids, grid)))
        }
        Command::Close => {
            let slot = slot_of(grids, request.grid)?;
            *slot = None;
            Ok(Reply::Done)
        }
        command => {
            let grid = slot_of(grids, request.grid)?.as_mut().ok_or(Error::UnknownGrid { handle: request.grid })?;
            grid.execute(request.wall, command)
        }
    })
}

/// Puts `grid` in the first free slot; returns its handle (slot + 1, so 0 is never a handle).
fn open(grids: &mut Vec<Option<Grid>>, grid: Grid) -> u32 {
    let slot = grids.iter().position(Option::is_none).unwrap_or(grids.len());
    if slot == grids.len() {
        grids.push(None);
    }
    grids[slot] = Some(grid);
    slot as u32 + 1
}

fn slot_of(grids: &mut [Option<Grid>], handle: u32) -> Result<&mut Option<Grid>, Error> {
    let index = (handle as usize).checked_sub(1).ok_or(Error::UnknownGrid { handle })?;
    match grids.get_mut(index) {
        Some(slot @ Some(_)) => Ok(slot),
        _ => Err(Error::UnknownGrid { handle }),
    }
}
