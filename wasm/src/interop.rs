//! The byte shapes exchanged with the JavaScript wrapper (`wasm/js/`), and errors as JS `Error`s.
//!
//! Crossing between JavaScript and wasm costs far more than encoding, so the wrapper walks JS values
//! in JS and hands the module postcard bytes (one crossing per call, one per batch), and the module
//! answers in postcard bytes that `wasm/js/values.js` decodes. Arguments are postcard tuples such as
//! `(key, value)`; replies are plain postcard of these shapes, mirrored by `values.js`:
//!
//! | shape | postcard of |
//! |---|---|
//! | value | [`Value`] |
//! | values | `Vec<Value>` |
//! | entries | `Vec<(String, Value)>` |
//! | OR entries | `Vec<(String, Vec<Value>)>` |
//! | LWW events | `Vec<(String key, u8 origin, Option<Value>)>` (origin 0 local, 1 remote) |
//! | OR events | `Vec<(String key, u8 origin, Vec<Value>)>` |
//!
//! Cold structured results (a record, drift reports, storage events) are JS values instead, built
//! by [`to_js`] through serde-wasm-bindgen.

use onegrid_core::{Encoded, Error, Origin};
use wasm_bindgen::JsError;

/// Turns a core error into a thrown JS `Error` with the core's message.
pub fn js_error(e: Error) -> JsError {
    JsError::new(&e.to_string())
}

/// An error message on its way to JavaScript: thrown as an `Error` by methods that return
/// `Result`, or kept for `takeError()` by the hot methods that return a status code instead
/// (a `Result` costs each call two extra crossings).
#[derive(Debug)]
pub struct Failure(pub String);

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Self(e.to_string())
    }
}

impl From<Failure> for JsError {
    fn from(f: Failure) -> Self {
        JsError::new(&f.0)
    }
}

/// Decodes arguments written by the wrapper, with nothing trailing.
pub fn decode_exact<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8], what: &str) -> Result<T, Failure> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((value, [])) => Ok(value),
        Ok(_) => Err(Failure(format!("onegrid: malformed {what} from JavaScript: trailing bytes"))),
        Err(e) => Err(Failure(format!("onegrid: malformed {what} from JavaScript: {e}"))),
    }
}

/// Splits a postcard string off the front of `bytes`.
pub fn take_str(bytes: &[u8]) -> Result<(&str, &[u8]), Failure> {
    postcard::take_from_bytes::<&str>(bytes)
        .map_err(|e| Failure(format!("onegrid: malformed key from JavaScript: {e}")))
}

/// Splits one encoded value off the front of `bytes`, checked and made canonical.
pub fn take_value(bytes: &[u8]) -> Result<(Encoded, &[u8]), Failure> {
    Ok(Encoded::take(bytes)?)
}

/// The origin byte of an event.
pub fn origin_byte(origin: Origin) -> u8 {
    match origin {
        Origin::Local => 0,
        Origin::Remote => 1,
    }
}

/// A TTL argument: the wrapper passes a negative number for "none".
pub fn ttl_arg(ttl: f64) -> Option<u64> {
    (ttl >= 0.0).then_some(ttl as u64)
}

pub mod to_js;
