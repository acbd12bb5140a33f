//! The byte ABI for native hosts: plain `extern "C"` exports, postcard in and out, no JavaScript.
//!
//! A host calls `onegrid_alloc(len)`, writes an encoded [`Request`] there, calls
//! `onegrid_call(ptr, len)`, which frees the request buffer and returns `(reply_ptr << 32) | reply_len`,
//! reads the encoded [`Reply`] and frees it with `onegrid_free(reply_ptr, reply_len)`. Grids opened
//! through the ABI live in a table of slots inside the module; a handle names a slot and its
//! generation, so the handle of a closed grid never reaches a later grid in the same slot. Nothing
//! here calls an import.

use std::alloc::{Layout, alloc, dealloc};
use std::cell::RefCell;

use onegrid_core::codec::{decode_request, encode_reply};
use onegrid_core::{ABI_VERSION, ClockConfig, Command, Error, Grid, NodeId, Reply, Request, StorageConfig};

thread_local! {
    /// Open grids by slot; a grid's handle is its slot and the slot's generation (see [`handle`]).
    static GRIDS: RefCell<Vec<Slot>> = const { RefCell::new(Vec::new()) };
}

/// Bits of a handle that name the slot (plus one, so 0 is never a handle); the bits above them
/// count how often the slot was reused. At most `2^SLOT_BITS - 1` grids are open at once.
const SLOT_BITS: u32 = 16;
/// Generations a slot goes through before it is retired for good: `2^(32 - SLOT_BITS)`.
const GENERATIONS: u32 = 1 << (32 - SLOT_BITS);

/// A place in the grid table. Each close moves it to its next generation, so the handle of a
/// closed grid never names the grid that reuses its slot; a slot whose generations are used up is
/// never reused, so no handle is ever issued twice.
#[derive(Default)]
struct Slot {
    /// How often this slot was closed: the high bits of its grid's handle.
    generation: u32,
    grid: Option<Grid>,
}

/// The handle of the grid in slot `index` at `generation`.
fn handle(index: usize, generation: u32) -> u32 {
    (generation << SLOT_BITS) | (index as u32 + 1)
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
            Ok(open(grids, grid))
        }
        Command::OpenPersistent { node_id, max_drift_ms, strict } => {
            let config = ClockConfig { max_drift_ms, strict };
            let grid = Grid::with_storage(NodeId::new(&node_id)?, config, StorageConfig::default());
            Ok(open(grids, grid))
        }
        Command::Close => {
            let slot = slot_of(grids, request.grid)?;
            slot.grid = None;
            slot.generation += 1; // may reach GENERATIONS: the slot is retired
            Ok(Reply::Done)
        }
        command => slot_of(grids, request.grid)?
            .grid
            .as_mut()
            .map_or(Err(Error::UnknownGrid { handle: request.grid }), |grid| grid.execute(request.wall, command)),
    })
}

/// Puts `grid` in the first free slot that is not retired; returns its handle, or an error reply
/// when every slot is taken or retired (after 2^32 - 1 opens, or with 2^16 - 1 grids open).
fn open(grids: &mut Vec<Slot>, grid: Grid) -> Reply {
    let free = grids.iter().position(|slot| slot.grid.is_none() && slot.generation < GENERATIONS);
    let index = match free {
        Some(index) => index,
        None if grids.len() < (1 << SLOT_BITS) - 1 => {
            grids.push(Slot::default());
            grids.len() - 1
        }
        None => return Reply::Error("too many grids: close one before opening another".into()),
    };
    grids[index].grid = Some(grid);
    Reply::Opened(handle(index, grids[index].generation))
}

/// The open grid's slot that `handle` names, if it is the slot's current generation.
fn slot_of(grids: &mut [Slot], handle: u32) -> Result<&mut Slot, Error> {
    let index = ((handle & ((1 << SLOT_BITS) - 1)) as usize).checked_sub(1).ok_or(Error::UnknownGrid { handle })?;
    match grids.get_mut(index) {
        Some(slot) if slot.grid.is_some() && slot.generation == handle >> SLOT_BITS => Ok(slot),
        _ => Err(Error::UnknownGrid { handle }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(grid: u32, command: Command) -> Reply {
        run(Request { grid, wall: 1, command }).unwrap_or_else(|e| Reply::Error(e.to_string()))
    }

    #[test]
    fn no_handle_is_issued_twice_even_when_a_slot_has_gone_through_every_generation() {
        // (host/tests/abi.rs checks a stale handle against the module in wasmtime; this runs the
        // 2^16 opens natively, where they are fast.)
        let mut seen = std::collections::HashSet::new();
        for _ in 0..GENERATIONS + 2 {
            let Reply::Opened(handle) = call(0, Command::Open { node_id: "n".into(), max_drift_ms: 1, strict: false })
            else {
                panic!("Open answers Opened")
            };
            assert!(seen.insert(handle), "handle {handle:#x} issued twice");
            assert_eq!(call(handle, Command::Close), Reply::Done);
            assert_eq!(call(handle, Command::Close), Reply::Error(format!("no grid is open with handle {handle}")));
        }
        // Slot 1 went through generations 0 to 2^16 - 1 and was retired; slot 2 took over.
        assert!(seen.contains(&0xffff_0001) && seen.contains(&2) && seen.contains(&0x0001_0002));
    }
}
