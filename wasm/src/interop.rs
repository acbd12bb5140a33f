//! The byte shapes exchanged with the JavaScript wrapper (`wasm/js/`), and errors as JS
//! `OnegridError`s.
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

use std::cell::RefCell;

use onegrid_core::{Encoded, Error, ErrorKind, Origin};
use wasm_bindgen::prelude::*;

thread_local! {
    /// The wrapper's `OnegridError` class (`wasm/js/errors.js`), registered by `init()`.
    static ERROR_CLASS: RefCell<Option<js_sys::Function>> = const { RefCell::new(None) };
}

/// Registers the class errors are thrown as: `new class(code, message)`. The wrapper calls it once
/// the module is loaded, so every error the module throws is an `OnegridError` with a `code`.
#[wasm_bindgen(js_name = setErrorClass)]
pub fn set_error_class(class: js_sys::Function) {
    ERROR_CLASS.with(|c| *c.borrow_mut() = Some(class));
}

/// An error on its way to JavaScript: its code (an [`ErrorKind`] code) and its message. Thrown as
/// an `OnegridError` by methods that return `Result`, or kept for `takeError()` by the hot methods
/// that return a status code instead (a `Result` costs each call two extra crossings).
#[derive(Debug)]
pub struct Failure {
    /// What the caller can act on: `KIND_MISMATCH`, `MALFORMED`, ...
    pub code: &'static str,
    /// What was wrong, for people.
    pub message: String,
}

impl Failure {
    /// Arguments the wrapper wrote that do not decode (a bug in the wrapper, or a changed layout).
    pub fn malformed(message: impl Into<String>) -> Self {
        Self { code: ErrorKind::Malformed.code(), message: message.into() }
    }

    /// An argument out of its rules (a handle of the wrong kind, an unknown kind name).
    pub fn invalid(message: impl Into<String>) -> Self {
        Self { code: ErrorKind::InvalidArgument.code(), message: message.into() }
    }

    /// The `OnegridError` to throw.
    /// Not inlined: one copy serves every error path of the module.
    #[inline(never)]
    pub fn to_js(&self) -> JsValue {
        let args = js_sys::Array::of2(&JsValue::from_str(self.code), &JsValue::from_str(&self.message));
        let built = ERROR_CLASS.with(|c| c.borrow().as_ref().map(|class| js_sys::Reflect::construct(class, &args)));
        match built {
            Some(Ok(error)) => error,
            // Only before `init()` registered the class (no caller reaches that), or if its
            // constructor threw: a plain Error then, with the message.
            _ => JsError::new(&self.message).into(),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Self { code: e.kind().code(), message: e.to_string() }
    }
}

impl From<Failure> for JsValue {
    fn from(f: Failure) -> Self {
        f.to_js()
    }
}

/// Turns a core error into a thrown `OnegridError` with the core's code and message.
#[inline(never)]
pub fn js_error(e: Error) -> JsValue {
    Failure::from(e).to_js()
}

/// Decodes arguments written by the wrapper, with nothing trailing.
pub fn decode_exact<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8], what: &str) -> Result<T, Failure> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((value, [])) => Ok(value),
        Ok(_) => Err(Failure::malformed(format!("onegrid: malformed {what} from JavaScript: trailing bytes"))),
        Err(e) => Err(Failure::malformed(format!("onegrid: malformed {what} from JavaScript: {e}"))),
    }
}

/// Splits a postcard string off the front of `bytes`.
pub fn take_str(bytes: &[u8]) -> Result<(&str, &[u8]), Failure> {
    postcard::take_from_bytes::<&str>(bytes)
        .map_err(|e| Failure::malformed(format!("onegrid: malformed key from JavaScript: {e}")))
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
