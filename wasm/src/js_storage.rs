//! The storage half of `RawGrid`: the JavaScript wrapper's driver loop around the core's storage
//! manager (SPEC section 6). The module never calls the adapter itself: the wrapper polls requests,
//! runs them on the app's adapter (a plain object of async functions), and hands the answers back.
//!
//! Shapes in the output buffer (postcard, read by `wasm/js/storage-driver.js`):
//!
//! | method | shape |
//! |---|---|
//! | `pollStorage` | `(u64 id, u8 op, String map, payload)`; op 0 `loadAllKeys` (no payload), 1 `loadAll` (`Vec<String>`), 2 `storeAll` (`Vec<(String, bytes)>`), 3 `deleteAll` (`Vec<String>`) |
//!
//! `pollStorageEvent` returns its event as a JS object instead (built by
//! [`crate::interop::to_js`]), after handing it to the grid's sync hub (`Flushed` and
//! `FlushFailed` release or hold its acknowledgements, see [`crate::js_sync`]).
//!
//! Inputs: `handleKeys` takes `Vec<String>`, `handleValues` takes `Vec<(String, bytes)>`.

use onegrid_core::codec::{put_str, put_varint};
use onegrid_core::{MapKind, MapStatus, StorageOp, StorageResult};
use wasm_bindgen::prelude::*;

use crate::interop::to_js::{StorageEventJs, to_js};
use crate::interop::{Failure, decode_exact, js_error};
use crate::js_api::{RawGrid, args, key_arg, wall};

/// A kind hint from JavaScript: 0 none, else the kind's [`MapKind::code`] plus one.
fn hint_arg(hint: u32) -> Result<Option<MapKind>, JsValue> {
    match hint.checked_sub(1) {
        None => Ok(None),
        Some(code) => MapKind::from_code(code)
            .map(Some)
            .ok_or_else(|| Failure::invalid("onegrid: kind must be \"lww\" or \"or\"").to_js()),
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[wasm_bindgen]
impl RawGrid {
    /// Touches the map named by the input with a kind hint (0 none, else the kind's code plus one):
    /// starts its load on the first touch. Returns 0 while it loads, else the loaded kind's code
    /// plus one.
    #[wasm_bindgen(js_name = getMap)]
    pub fn get_map(&mut self, now: f64, name_len: u32, hint: u32) -> Result<u32, JsValue> {
        let name = key_arg(&self.input, name_len)?;
        let status = self.grid.storage_mut().get_map(name, hint_arg(hint)?, wall(now)).map_err(js_error)?;
        Ok(match status {
            MapStatus::Loading => 0,
            MapStatus::Loaded(kind) => u32::from(kind.code()) + 1,
        })
    }

    /// True while the map's load runs.
    #[wasm_bindgen(js_name = isMapLoading)]
    pub fn is_map_loading(&self, name: &str) -> bool {
        self.grid.storage().is_map_loading(name)
    }

    /// True when the grid has the map (loaded, loading, or its load failed).
    #[wasm_bindgen(js_name = hasMap)]
    pub fn has_map(&self, name: &str) -> bool {
        self.grid.storage().has_map(name)
    }

    /// Starts a flush; returns its id (a `flushed` or `flush failed` event with it follows).
    pub fn flush(&mut self) -> f64 {
        self.grid.storage_mut().flush() as f64
    }

    /// The next storage request to the output; returns its length, 0 when there is none.
    #[wasm_bindgen(js_name = pollStorage)]
    pub fn poll_storage(&mut self) -> u32 {
        let Some(request) = self.grid.storage_mut().poll_storage() else { return 0 };
        let out = &mut self.output;
        out.clear();
        put_varint(out, request.id);
        let op = match &request.op {
            StorageOp::LoadAllKeys { .. } => 0,
            StorageOp::LoadAll { .. } => 1,
            StorageOp::StoreAll { .. } => 2,
            StorageOp::DeleteAll { .. } => 3,
        };
        out.push(op);
        put_str(out, request.op.map());
        match &request.op {
            StorageOp::LoadAllKeys { .. } => {}
            StorageOp::LoadAll { keys, .. } | StorageOp::DeleteAll { keys, .. } => {
                put_varint(out, keys.len() as u64);
                for key in keys {
                    put_str(out, key);
                }
            }
            StorageOp::StoreAll { entries, .. } => {
                put_varint(out, entries.len() as u64);
                for (key, bytes) in entries {
                    put_str(out, key);
                    put_bytes(out, bytes);
                }
            }
        }
        out.len() as u32
    }

    /// Answers a `loadAllKeys` request; input: the keys, then with `filtered` one byte per key
    /// (1: this node loads it; `isRelatedKey` runs in the wrapper).
    #[wasm_bindgen(js_name = handleKeys)]
    pub fn handle_keys(&mut self, id: f64, len: u32, filtered: bool) -> Result<(), JsValue> {
        let input = args(&self.input, len)?;
        if !filtered {
            let keys: Vec<String> = decode_exact(input, "key list")?;
            return self.answer(id, StorageResult::Keys(keys));
        }
        let malformed = || Failure::malformed("onegrid: malformed key list from JavaScript").to_js();
        let (keys, flags) = postcard::take_from_bytes::<Vec<String>>(input).map_err(|_| malformed())?;
        if flags.len() != keys.len() || flags.iter().any(|&f| f > 1) {
            return Err(malformed());
        }
        let related = flags.iter().map(|&f| f == 1).collect();
        self.grid.storage_mut().handle_keys_filtered(id as u64, keys, related).map_err(js_error)
    }

    /// Answers a `loadAll` request; input: the `(key, bytes)` pairs found.
    #[wasm_bindgen(js_name = handleValues)]
    pub fn handle_values(&mut self, id: f64, len: u32) -> Result<(), JsValue> {
        let values: Vec<(&str, &[u8])> = decode_exact(args(&self.input, len)?, "loaded values")?;
        let values = values.into_iter().map(|(k, v)| (k.to_owned(), v.to_vec())).collect();
        self.answer(id, StorageResult::Values(values))
    }

    /// Answers a `storeAll` or `deleteAll` request that succeeded.
    #[wasm_bindgen(js_name = handleDone)]
    pub fn handle_done(&mut self, id: f64) -> Result<(), JsValue> {
        self.answer(id, StorageResult::Done)
    }

    /// Answers any request whose adapter call failed, with the adapter's message.
    #[wasm_bindgen(js_name = handleFailed)]
    pub fn handle_failed(&mut self, id: f64, message: &str) -> Result<(), JsValue> {
        self.answer(id, StorageResult::Failed(message.to_owned()))
    }

    /// The next storage event (`StorageEvent` in `wasm/js/storage-driver.js`), `undefined` when
    /// there is none.
    #[wasm_bindgen(
        js_name = pollStorageEvent,
        unchecked_return_type = "import('./storage-driver.js').StorageEvent | undefined"
    )]
    pub fn poll_storage_event(&mut self) -> JsValue {
        match self.grid.storage_mut().poll_event() {
            Some(event) => {
                // Sync's acknowledgements wait for its flushes: the hub hears of every event here,
                // where the driver takes them, so no JavaScript has to pass them on.
                self.hub.handle_storage_event(&event);
                to_js(&StorageEventJs(&event))
            }
            None => JsValue::UNDEFINED,
        }
    }
}

impl RawGrid {
    fn answer(&mut self, id: f64, result: StorageResult) -> Result<(), JsValue> {
        self.grid.storage_mut().handle_storage(id as u64, result).map_err(js_error)
    }
}
