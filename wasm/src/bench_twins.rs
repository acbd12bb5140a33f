//! Bench only (feature `bench-twins`): the other value path beside each shipped one, so
//! `tests/bench/value-path-bench.mjs` can time both in one module and one process. Values written
//! and read and change events as JS values through serde-wasm-bindgen (the serializer the shipped
//! cold results use, `crate::interop::to_js`), where the shipped methods pass postcard bytes that
//! `wasm/js/values.js` reads and writes; and a record as postcard bytes, as it was before records
//! became JS values.
//!
//! Values from JavaScript go through serde-wasm-bindgen's `Deserializer` (`deserialize_any`), which
//! does not tell `undefined` from `null`, and takes any object without an iterator as a map: these
//! twins are for timing, not for the API's refusals.

use core::fmt;

use onegrid_core::codec::{put_str, put_value, put_varint};
use onegrid_core::value::MAX_DEPTH;
use onegrid_core::{AnyMap, ChangeEvent, Encoded, Origin, Value};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeStruct, Serializer};
use serde_wasm_bindgen::preserve;
use wasm_bindgen::prelude::*;

use crate::interop::to_js::{JsShaped, to_js};
use crate::interop::{Failure, js_error};
use crate::js_api::{RawGrid, key_arg, lww_read, lww_write, wall};

/// Whether object keys come from [`KEYS`] (`benchKeyCache(on)`).
static KEY_CACHE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

const KEY_SLOTS: usize = 256;
const KEY_MAX_LEN: usize = 24;

/// A cached key: its text and its JS string.
type Slot = Option<(Box<str>, JsValue)>;

std::thread_local! {
    /// The JS strings of short object keys, 256 slots by hash, as `values.js`'s reader keeps
    /// them: a key found here crosses as a reference instead of being decoded from UTF-8 again.
    static KEYS: core::cell::RefCell<Vec<Slot>> = const { core::cell::RefCell::new(Vec::new()) };
}

/// The JS string of object key `key` from the cache, when `benchKeyCache(true)` turned it on (the
/// shipped serializer, `crate::interop::to_js`, asks).
pub fn cached_key(key: &str) -> Option<JsValue> {
    if key.len() > KEY_MAX_LEN || !KEY_CACHE.load(core::sync::atomic::Ordering::Relaxed) {
        return None;
    }
    let slot =
        key.bytes().fold(key.len() as u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b))) as usize % KEY_SLOTS;
    KEYS.with_borrow_mut(|slots| {
        if slots.is_empty() {
            slots.resize_with(KEY_SLOTS, || None);
        }
        match &slots[slot] {
            Some((k, js)) if &**k == key => Some(js.clone()),
            _ => {
                let js = JsValue::from_str(key);
                slots[slot] = Some((key.into(), js.clone()));
                Some(js)
            }
        }
    })
}

/// Turns the object-key cache of the serde-wasm-bindgen path on or off.
#[wasm_bindgen(js_name = benchKeyCache)]
pub fn bench_key_cache(on: bool) {
    KEY_CACHE.store(on, core::sync::atomic::Ordering::Relaxed);
}

/// An origin: `"local"` or `"remote"`, as a unit variant, whose JS string serde-wasm-bindgen
/// makes once and keeps.
struct OriginJs(Origin);

impl Serialize for OriginJs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Origin::Local => s.serialize_unit_variant("Origin", 0, "local"),
            Origin::Remote => s.serialize_unit_variant("Origin", 1, "remote"),
        }
    }
}

/// An LWW change: `{ key, value, origin }`, `value` undefined for a removal.
struct LwwChangeJs<'a> {
    key: &'a str,
    value: Option<Value>,
    origin: Origin,
}

impl Serialize for LwwChangeJs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut o = s.serialize_struct("LwwChange", 3)?;
        o.serialize_field("key", self.key)?;
        match &self.value {
            Some(value) => o.serialize_field("value", &JsShaped(value))?,
            None => o.serialize_field("value", &Undefined)?,
        }
        o.serialize_field("origin", &OriginJs(self.origin))?;
        o.end()
    }
}

/// `undefined` (the serializer writes `None` as `null`).
struct Undefined;

impl Serialize for Undefined {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        preserve::serialize(&JsValue::UNDEFINED, s)
    }
}

// ---- values from JavaScript ----------------------------------------------------------------------

/// A value from a JS value, `depth` levels deep.
#[derive(Clone, Copy)]
struct ValueSeed {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl ValueSeed {
    fn nested<E: de::Error>(self) -> Result<Self, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom("nested too deep"));
        }
        Ok(Self { depth: self.depth + 1 })
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a onegrid value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        i64::try_from(v).map(Value::Int).map_err(|_| E::custom("a BigInt outside the signed 64-bit range"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        if v.is_finite() { Ok(Value::Float(v)) } else { Err(E::custom("NaN and infinities are not allowed")) }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.into()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v.into_boxed_str()))
    }
    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(v.into_boxed_slice()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let item = self.nested()?;
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(item)? {
            items.push(v);
        }
        Ok(Value::List(items.into_boxed_slice()))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let item = self.nested()?;
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            entries.push((key.into_boxed_str(), map.next_value_seed(item)?));
        }
        // Sorted and checked by `normalize`.
        Ok(Value::Map(entries.into_boxed_slice()))
    }
}

/// `[[key, value], ...]` from a JS array.
struct EntriesSeed;

impl<'de> DeserializeSeed<'de> for EntriesSeed {
    type Value = Vec<(String, Value)>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EntriesSeed {
    type Value = Vec<(String, Value)>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of [key, value] pairs")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(pair) = seq.next_element_seed(PairSeed)? {
            out.push(pair);
        }
        Ok(out)
    }
}

struct PairSeed;

impl<'de> DeserializeSeed<'de> for PairSeed {
    type Value = (String, Value);
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_tuple(2, self)
    }
}

impl<'de> Visitor<'de> for PairSeed {
    type Value = (String, Value);
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a [key, value] pair")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let key: String = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let value =
            seq.next_element_seed(ValueSeed { depth: 0 })?.ok_or_else(|| de::Error::invalid_length(1, &self))?;
        Ok((key, value))
    }
}

fn from_js<T>(seed: impl for<'de> DeserializeSeed<'de, Value = T>, value: JsValue) -> Result<T, Failure> {
    seed.deserialize(serde_wasm_bindgen::Deserializer::from(value))
        .map_err(|e| Failure::invalid(format!("invalid value: {e}")))
}

#[wasm_bindgen]
impl RawGrid {
    /// Twin of `lwwSet`: the key and the value as JS values. Returns 0, or 1 after an error.
    #[wasm_bindgen(js_name = lwwSetJs)]
    pub fn lww_set_js(&mut self, map: u32, now: f64, key: &str, value: JsValue, ttl: f64) -> u32 {
        let result = (|| {
            let value = from_js(ValueSeed { depth: 0 }, value)?.normalize()?;
            let (m, clock) = lww_write(&mut self.grid, map, now)?;
            m.set_encoded(clock, wall(now), key, Encoded::new(&value), crate::interop::ttl_arg(ttl))?;
            Ok(())
        })();
        self.status(result)
    }

    /// Twin of `lwwSetMany`: the entries as a JS array of `[key, value]`.
    #[wasm_bindgen(js_name = lwwSetManyJs)]
    pub fn lww_set_many_js(&mut self, map: u32, now: f64, entries: JsValue) -> u32 {
        let result = (|| {
            let entries = from_js(EntriesSeed, entries)?;
            let mut encoded = Vec::with_capacity(entries.len());
            for (key, value) in entries {
                encoded.push((key, Encoded::new(&value.normalize()?)));
            }
            let (m, clock) = lww_write(&mut self.grid, map, now)?;
            m.set_many_encoded(clock, wall(now), encoded)?;
            Ok(())
        })();
        self.status(result)
    }

    /// Twin of `lwwGet`: the value as a JS value, `undefined` when there is none, `null` after an
    /// error (see `takeError`).
    #[wasm_bindgen(js_name = lwwGetJs)]
    pub fn lww_get_js(&mut self, map: u32, now: f64, key: &str) -> JsValue {
        let read = |grid| -> Result<_, Failure> {
            onegrid_core::check_key(key)?;
            Ok(lww_read(grid, map)?.get_encoded(key, wall(now)).map(Encoded::decode))
        };
        match read(&self.grid) {
            Ok(Some(value)) => to_js(&JsShaped(&value)),
            Ok(None) => JsValue::UNDEFINED,
            Err(f) => {
                self.error = Some(f);
                JsValue::NULL
            }
        }
    }

    /// Twin of `lwwRecord`, as it was before records became JS values: the record of the key in
    /// the input to the output as postcard, `(Option<Value>, u64 millis, u32 counter, String node,
    /// Option<u64> ttl)`; returns its length, or -1 when there is none.
    #[wasm_bindgen(js_name = lwwRecordBytes)]
    pub fn lww_record_bytes(&mut self, map: u32, len: u32) -> Result<i32, JsValue> {
        let key = key_arg(&self.input, len)?;
        onegrid_core::check_key(key).map_err(js_error)?;
        let Some(r) = lww_read(&self.grid, map)?.get_record(key) else { return Ok(-1) };
        let out = &mut self.output;
        out.clear();
        match &r.value {
            Some(value) => {
                out.push(1);
                put_value(out, value);
            }
            None => out.push(0),
        }
        put_varint(out, r.timestamp.millis);
        put_varint(out, u64::from(r.timestamp.counter));
        put_str(out, r.timestamp.node_id.as_str());
        match r.ttl_ms {
            Some(ttl) => {
                out.push(1);
                put_varint(out, ttl);
            }
            None => out.push(0),
        }
        Ok(out.len() as i32)
    }

    /// Twin of `takeEvents` for an LWW map: an array of `{ key, value, origin }`, `undefined` when
    /// there are none.
    #[wasm_bindgen(js_name = takeLwwEventsJs)]
    pub fn take_lww_events_js(&mut self, map: u32, now: f64) -> JsValue {
        let now = wall(now);
        let Some(AnyMap::Lww(m)) = self.grid.storage_mut().events_of(onegrid_core::MapId(map)) else {
            return JsValue::UNDEFINED;
        };
        let events: Vec<ChangeEvent> = core::iter::from_fn(|| m.poll_event()).collect();
        if events.is_empty() {
            return JsValue::UNDEFINED;
        }
        let changes: Vec<LwwChangeJs> = events
            .iter()
            .map(|e| LwwChangeJs {
                key: &e.key,
                value: m.get_encoded(&e.key, now).map(Encoded::decode),
                origin: e.origin,
            })
            .collect();
        to_js(&changes)
    }
}
