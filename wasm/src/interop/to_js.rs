//! Cold structured results as JS values, built in the module through serde-wasm-bindgen: an LWW
//! record (`getRecord`), drift reports (`onDrift`) and storage events. Each shape here is the
//! public one (`wasm/js/onegrid.d.ts`), so the wrapper hands it on as it is.
//!
//! The hot paths do not come here: values written and read, entries, and change events stay
//! postcard bytes that `wasm/js/values.js` walks, because serde-wasm-bindgen makes every property
//! a call into JavaScript, which measured 1.7 to 4.7 times slower on them (`BENCHMARKS.md`,
//! "serde-wasm-bindgen against the hand-written value path").
//!
//! Numbers keep the wrapper's rules: an `i64` or `u64` is a number when it is a safe integer,
//! else a BigInt (never a rounded number); bytes are a `Uint8Array`; `null` is a stored null.

use onegrid_core::value::MAX_SAFE_INTEGER;
use onegrid_core::{Drift, LwwRecord, MapKind, StorageEvent, Timestamp, Value};
use serde::ser::{Serialize, SerializeStruct, Serializer};
use serde_wasm_bindgen::preserve;
use wasm_bindgen::{JsValue, UnwrapThrowExt};

/// Maps become plain objects, and `()` and `None` become `null`.
const SER: serde_wasm_bindgen::Serializer =
    serde_wasm_bindgen::Serializer::new().serialize_maps_as_objects(true).serialize_missing_as_null(true);

/// `value` as a JS value.
pub fn to_js(value: &impl Serialize) -> JsValue {
    // serde-wasm-bindgen fails only on 64-bit numbers past 2^53 (these go as BigInt, see `int`)
    // and map keys that are not strings (value keys are); `Object.fromEntries` does not throw on
    // an array of pairs.
    value.serialize(&SER).expect_throw("onegrid: a result did not convert to a JS value")
}

/// A value the JavaScript way: `null`, a boolean, a number (a BigInt beyond 2^53), a string, a
/// `Uint8Array`, an array, or a plain object.
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

/// An object key. (The bench build can take its JS string from a cache: `crate::bench_twins`.)
struct Key<'a>(&'a str);

impl Serialize for Key<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[cfg(feature = "bench-twins")]
        if let Some(js) = crate::bench_twins::cached_key(self.0) {
            return preserve::serialize(&js, s);
        }
        s.serialize_str(self.0)
    }
}

/// The items of an iterator as an array (serialized once).
struct SeqOf<I>(I);

impl<I: Iterator<Item = T> + Clone, T: Serialize> Serialize for SeqOf<I> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.clone())
    }
}

/// An i64: a number when it is a safe integer (exact as an f64), else a BigInt.
fn int<S: Serializer>(i: i64, s: S) -> Result<S::Ok, S::Error> {
    if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&i) {
        s.serialize_f64(i as f64)
    } else {
        s.serialize_i128(i.into())
    }
}

/// A u64 (millis, a TTL, an id): a number when it is a safe integer, else a BigInt.
struct U64(u64);

impl Serialize for U64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 <= MAX_SAFE_INTEGER as u64 { s.serialize_f64(self.0 as f64) } else { s.serialize_u128(self.0.into()) }
    }
}

/// A string serde-wasm-bindgen makes once and keeps: it writes a unit variant as its name.
fn name<S: Serializer>(s: S, name: &'static str) -> Result<S::Ok, S::Error> {
    s.serialize_unit_variant("", 0, name)
}

/// A record as `getRecord` returns it: `{ value, deleted, timestamp, ttlMs? }` (`LwwRecordView`;
/// `value` is `null` for a tombstone).
pub struct RecordJs<'a>(pub &'a LwwRecord);

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

/// `{ millis, counter, nodeId }` (`Timestamp`).
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

/// `{ remote, aheadMs, maxDriftMs }` (`DriftReport`).
pub struct DriftJs<'a>(pub &'a Drift);

impl Serialize for DriftJs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let d = self.0;
        let mut o = s.serialize_struct("DriftReport", 3)?;
        o.serialize_field("remote", &d.remote.to_text())?;
        o.serialize_field("aheadMs", &U64(d.ahead_ms))?;
        o.serialize_field("maxDriftMs", &U64(d.max_drift_ms))?;
        o.end()
    }
}

/// A storage event as the storage driver takes it (`StorageEvent` in `wasm/js/storage-driver.js`):
/// `{ type: "loaded", map, count }`, `{ type: "ready", map, kind }`, `{ type: "failed", map,
/// code, error }`, `{ type: "flushed", flush }`, `{ type: "flushFailed", flush, code, error }` or
/// `{ type: "refused", map, asked, code, error }`.
pub struct StorageEventJs<'a>(pub &'a StorageEvent);

impl Serialize for StorageEventJs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Type(&'static str);
        impl Serialize for Type {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                name(s, self.0)
            }
        }
        struct Kind(MapKind);
        impl Serialize for Kind {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                name(s, self.0.as_str())
            }
        }
        let mut o = s.serialize_struct("StorageEvent", 5)?;
        match self.0 {
            StorageEvent::MapLoaded { map, count } => {
                o.serialize_field("type", &Type("loaded"))?;
                o.serialize_field("map", map)?;
                o.serialize_field("count", &U64(*count as u64))?;
            }
            StorageEvent::Ready { map, kind } => {
                o.serialize_field("type", &Type("ready"))?;
                o.serialize_field("map", map)?;
                o.serialize_field("kind", &Kind(*kind))?;
            }
            StorageEvent::LoadFailed { map, error } => {
                o.serialize_field("type", &Type("failed"))?;
                o.serialize_field("map", map)?;
                o.serialize_field("code", error.kind().code())?;
                o.serialize_field("error", &error.to_string())?;
            }
            StorageEvent::Flushed { flush_id } => {
                o.serialize_field("type", &Type("flushed"))?;
                o.serialize_field("flush", &U64(*flush_id))?;
            }
            StorageEvent::FlushFailed { flush_id, kind, error } => {
                o.serialize_field("type", &Type("flushFailed"))?;
                o.serialize_field("flush", &U64(*flush_id))?;
                o.serialize_field("code", kind.code())?;
                o.serialize_field("error", error)?;
            }
            StorageEvent::Refused { map, asked, error } => {
                o.serialize_field("type", &Type("refused"))?;
                o.serialize_field("map", map)?;
                o.serialize_field("asked", &Kind(*asked))?;
                o.serialize_field("code", error.kind().code())?;
                o.serialize_field("error", &error.to_string())?;
            }
        }
        o.end()
    }
}
