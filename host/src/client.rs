//! [`Client`]: one instance of the module, reused across calls, rebuilt after a failure.
//!
//! A call copies the encoded request into guest memory with [`wasmtime::Memory::write`] (into a
//! buffer from `onegrid_alloc`), runs `onegrid_call`, copies the reply out with
//! [`wasmtime::Memory::read`] and frees it. No slice into guest memory is ever held across a guest
//! call (the guest may grow, and so move, its memory), and every pointer and length the guest hands
//! back is checked before use.

use std::time::Duration;

use onegrid_core::codec::{MAX_MESSAGE_BYTES, decode_reply, encode_request};
use onegrid_core::{Reply, Request};

use crate::error::{HostError, from_guest};
use crate::runtime::{Guest, Runtime};

/// Reply buffers larger than this are not kept between calls.
const KEEP_BUFFER_BYTES: usize = 1 << 20;

/// Owns one instance of the module and runs byte-ABI requests on it.
///
/// Grids opened through a client live inside its instance. When a call fails in a way that
/// [loses the instance](HostError::instance_lost) (a trap, the deadline, the memory limit), the
/// instance is dropped with all its grids, and the next call starts on a fresh one.
pub struct Client {
    runtime: Runtime,
    guest: Option<Guest>,
    timeout: Duration,
    /// Reused for replies (quinn's `poll_transmit(buf)` idea): most calls allocate nothing here.
    reply: Vec<u8>,
}

impl Client {
    /// A client with a fresh instance of `runtime`'s module.
    pub fn new(runtime: &Runtime) -> Result<Self, HostError> {
        let guest = runtime.new_guest()?;
        let timeout = runtime.config().call_timeout;
        Ok(Self { runtime: runtime.clone(), guest: Some(guest), timeout, reply: Vec::new() })
    }

    /// Runs one request. A command the module refuses comes back as `Ok(Reply::Error(message))`
    /// and changes nothing; an `Err` means the host could not get an answer (see [`HostError`]).
    pub fn call(&mut self, request: &Request) -> Result<Reply, HostError> {
        self.call_bytes(&encode_request(request))
    }

    /// Runs one already encoded request, e.g. bytes that came from elsewhere. The module decodes
    /// (and so validates) them; bad bytes come back as `Ok(Reply::Error(message))`.
    pub fn call_bytes(&mut self, request: &[u8]) -> Result<Reply, HostError> {
        self.exchange(request, |reply| {
            decode_reply(reply)
                .map_err(|e| HostError::AbiViolation { reason: format!("the reply does not decode: {e}") })
        })
    }

    /// Like [`Client::call_bytes`], but returns the reply's bytes exactly as the module wrote them
    /// (to compare engines byte for byte); a reply that does not decode is still an error.
    pub fn call_raw(&mut self, request: &[u8]) -> Result<Vec<u8>, HostError> {
        self.exchange(request, |reply| {
            decode_reply(reply)
                .map(|_| reply.to_vec())
                .map_err(|e| HostError::AbiViolation { reason: format!("the reply does not decode: {e}") })
        })
    }

    /// One exchange, whose reply's bytes `finish` reads; an error of `finish` that loses the
    /// instance (a reply that does not decode) drops it like a failed call.
    fn exchange<R>(
        &mut self,
        request: &[u8],
        finish: impl FnOnce(&[u8]) -> Result<R, HostError>,
    ) -> Result<R, HostError> {
        let len = match u32::try_from(request.len()) {
            Ok(len) if request.len() <= MAX_MESSAGE_BYTES => len,
            _ => return Err(HostError::RequestTooLarge { len: request.len() }),
        };
        let (reply, timeout) = (&mut self.reply, self.timeout);
        let result = Self::guarded(&mut self.guest, &self.runtime, timeout, |guest| {
            exchange(guest, request, len, reply, timeout)?;
            finish(reply)
        });
        if self.reply.capacity() > KEEP_BUFFER_BYTES {
            self.reply = Vec::new();
        }
        result
    }

    /// Calls `onegrid_call(ptr, len)` directly and returns its raw result, without allocating,
    /// writing, reading or freeing anything. For tests and diagnostics: a pointer the module did not
    /// hand out makes it trap (contained like any other trap) or corrupt its own heap.
    pub fn raw_call(&mut self, ptr: u32, len: u32) -> Result<u64, HostError> {
        let timeout = self.timeout;
        Self::guarded(&mut self.guest, &self.runtime, timeout, |guest| {
            guest.call.call(&mut guest.store, (ptr, len)).map_err(|e| from_guest(e, timeout))
        })
    }

    /// Changes the time limit for this client's calls (the runtime's `call_timeout` by default).
    pub fn set_call_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// False after a call lost the instance, until the next call builds a new one.
    pub fn has_instance(&self) -> bool {
        self.guest.is_some()
    }

    /// Runs `f` on the instance (built first if there is none) under a fresh deadline, and drops
    /// the instance if `f` failed in a way that leaves it unusable.
    fn guarded<R>(
        slot: &mut Option<Guest>,
        runtime: &Runtime,
        timeout: Duration,
        f: impl FnOnce(&mut Guest) -> Result<R, HostError>,
    ) -> Result<R, HostError> {
        let mut guest = match slot.take() {
            Some(guest) => guest,
            None => runtime.new_guest()?,
        };
        guest.store.set_epoch_deadline(runtime.config().deadline_ticks(timeout));
        let result = f(&mut guest);
        match &result {
            Err(e) if e.instance_lost() => drop(guest), // with its grids: see HostError
            _ => *slot = Some(guest),
        }
        result
    }
}

impl core::fmt::Debug for Client {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Client")
            .field("module", &self.runtime.sha256_hex())
            .field("has_instance", &self.has_instance())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// One request/reply exchange through guest memory; leaves the reply's bytes in `reply`.
fn exchange(
    guest: &mut Guest,
    request: &[u8],
    len: u32,
    reply: &mut Vec<u8>,
    timeout: Duration,
) -> Result<(), HostError> {
    let trap = |e| from_guest(e, timeout);
    let ptr = guest.alloc.call(&mut guest.store, len).map_err(trap)?;
    if ptr == 0 && len > 0 {
        return Err(HostError::GuestAllocFailed { len: request.len() });
    }
    guest.memory.write(&mut guest.store, ptr as usize, request).map_err(|_| HostError::AbiViolation {
        reason: format!("onegrid_alloc({len}) returned {ptr}, outside its memory"),
    })?;

    let packed = guest.call.call(&mut guest.store, (ptr, len)).map_err(trap)?;
    let (reply_ptr, reply_len) = ((packed >> 32) as u32, packed as u32); // the ABI's packing
    if reply_len as usize > MAX_MESSAGE_BYTES {
        return Err(HostError::AbiViolation {
            reason: format!("a reply of {reply_len} bytes is larger than the limit of {MAX_MESSAGE_BYTES}"),
        });
    }
    reply.clear();
    reply.resize(reply_len as usize, 0);
    guest.memory.read(&guest.store, reply_ptr as usize, reply).map_err(|_| HostError::AbiViolation {
        reason: format!(
            "the reply at {reply_ptr} ({reply_len} bytes) is outside its memory of {} bytes",
            guest.memory.data_size(&guest.store)
        ),
    })?;
    guest.free.call(&mut guest.store, (reply_ptr, reply_len)).map_err(trap)
}
