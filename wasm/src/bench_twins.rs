//! Bench only (feature `bench-twins`): the other value path beside each shipped one, so
//! `tests/bench/value-path-bench.mjs` can time both in one module and one process. Here: values,
//! records and change events as JS values through serde-wasm-bindgen, where the shipped methods
//! pass postcard bytes that `wasm/js/values.js` reads and writes.
//!
//! Values from JavaScript go through serde-wasm-bindgen's `Deserializer` (`deserialize_any`), which
//! does not tell `undefined` from `null`, and takes any object without an iterator as a map: these
//! twins are for timing, not for the API's refusals.

use core::fmt;

use onegrid_core::value::{MAX_DEPTH, MAX_SAFE_INTEGER};
use onegrid_core::{AnyMap, ChangeEvent, Encoded, LwwRecord, Origin, Timestamp, Value};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeStruct, Serializer};
use serde_wasm_bindgen::preserve;
use wasm_bindgen::prelude::*;

use crate::interop::Failure;
use crate::js_api::{RawGrid, lww_read, lww_write, wall};

/// How values become JS values: maps as plain objects (with string keys), `None` as `null`, 64-bit
/// numbers as numbers when they are safe (the shapes below ask for a BigInt beyond).
const SER: serde_wasm_bindgen::Serializer =
    serde_wasm_bindgen::Serializer::new().serialize_maps_as_objects(true).serialize_missing_as_null(true);

/// A value the JavaScript way: `null`, a boolean, a number (a BigInt beyond 2^53), a string, a
/// `Uint8Array`, an array, a plain object (an own `__proto__` key as a data property).
pub struct JsShaped<'a>(pub &'a Value);

impl Serialize for JsShaped<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => int(*i, s),
            Value::Float(f) => s.serialize_f64(*f),
            Value::String(t) => s.serialize_str(t),
            Value::Bytes(b) => s.serialize_bytes(b),
            Value::List(items) => s.collect_seq(items.iter().map(JsShaped)),
            Value::Map(entries) if entries.iter().any(|(k, _)| &**k == "__proto__") => {
                // `object[key] = value` would set the object's prototype for this key:
                // `Object.fromEntries` defines it as an own property instead.
                let pairs = SeqOf(entries.iter().map(|(k, v)| (&**k, JsShaped(v))))
                    .serialize(&SER)
                    .map_err(serde::ser::Error::custom)?;
                let object = js_sys::Object::from_entries(&pairs)
                    .map_err(|_| serde::ser::Error::custom("Object.fromEntries threw"))?;
                preserve::serialize(&object, s)
            }
            Value::Map(entries) => s.collect_map(entries.iter().map(|(k, v)| (Key(k), JsShaped(v)))),
        }
    }
}

/// The items of an iterator as an array.
struct SeqOf<I>(I);

impl<I: Iterator<Item = T> + Clone, T: Serialize> Serialize for SeqOf<I> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.clone())
    }
}

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

/// An object key.
struct Key<'a>(&'a str);
impl Serialize for Key<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let key = self.0;
        if key.len() > KEY_MAX_LEN || !KEY_CACHE.load(core::sync::atomic::Ordering::Relaxed) {
            return s.serialize_str(key);
        }
        let slot = key.bytes().fold(key.len() as u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b))) as usize
            % KEY_SLOTS;
        KEYS.with_borrow_mut(|slots| {
            if slots.is_empty() {
                slots.resize_with(KEY_SLOTS, || None);
            }
            match &slots[slot] {
                Some((k, js)) if &**k == key => preserve::serialize(js, s),
                _ => {
                    let js = JsValue::from_str(key);
                    let out = preserve::serialize(&js, s);
                    slots[slot] = Some((key.into(), js));
                    out
                }
            }
        })
    }
}

/// An i64: a number when safe, else a BigInt.
fn int<S: Serializer>(i: i64, s: S) -> Result<S::Ok, S::Error> {
    if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&i) { s.serialize_i64(i) } else { s.serialize_i128(i.into()) }
}

/// A u64 (millis, a TTL): a number when safe, else a BigInt.
struct U64(u64);

impl Serialize for U64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 <= MAX_SAFE_INTEGER as u64 { s.serialize_u64(self.0) } else { s.serialize_u128(self.0.into()) }
    }
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

/// A record: `{ value, deleted, timestamp: { millis, counter, nodeId }, ttlMs? }`.
struct RecordJs<'a>(&'a LwwRecord);

impl Serialize for RecordJs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut o = s.serialize_struct("LwwRecordView", 4)?;
        o.serialize_field("value", &JsShaped(r.value.as_ref().unwrap_or(&Value::Null)))?;
        o.serialize_field("deleted", &r.value.is_none())?;
        o.serialize_field("timestamp", &TimestampJs(&r.timestamp))?;
        if let Some(ttl) = r.ttl_ms {
            o.serialize_field("ttlMs", &U64(ttl))?;
        }
        o.end()
    }
}

struct TimestampJs<'a>(&'a Timestamp);

impl Serialize for TimestampJs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut o = s.serialize_struct("Timestamp", 3)?;
        o.serialize_field("millis", &U64(self.0.millis))?;
        o.serialize_field("counter", &self.0.counter)?;
        o.serialize_field("nodeId", self.0.node_id.as_str())?;
        o.end()
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
    seed.deserialize(serde_wasm_bindgen::Deserializer::from(value)).map_err(|e| Failure(format!("invalid value: {e}")))
}

fn to_js(value: &impl Serialize) -> JsValue {
    // The shapes above serialize without fail (every number is representable).
    value.serialize(&SER).unwrap_or(JsValue::UNDEFINED)
}

/// Turns the object-key cache of the serde-wasm-bindgen twins on or off.
#[wasm_bindgen(js_name = benchKeyCache)]
pub fn bench_key_cache(on: bool) {
    KEY_CACHE.store(on, core::sync::atomic::Ordering::Relaxed);
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
                self.error = f.0;
                JsValue::NULL
            }
        }
    }

    /// Twin of `lwwRecord`: the record as a JS object, `undefined` when there is none.
    #[wasm_bindgen(js_name = lwwRecordJs)]
    pub fn lww_record_js(&mut self, map: u32, key: &str) -> Result<JsValue, JsError> {
        onegrid_core::check_key(key).map_err(crate::interop::js_error)?;
        Ok(match lww_read(&self.grid, map)?.get_record(key) {
            Some(r) => to_js(&RecordJs(&r)),
            None => JsValue::UNDEFINED,
        })
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
