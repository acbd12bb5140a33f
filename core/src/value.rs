//! The dynamic value stored in maps (SPEC section 7) and its canonical JSON text, which the OR map's
//! Merkle entries hash.
//!
//! The representation is compact (24 bytes inline on 64-bit targets): text and containers are boxed
//! slices, and a map is a slice of `(key, value)` pairs sorted by key bytes with no duplicates, so two
//! equal values always have one representation and one postcard encoding.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

use serde::de::{self, DeserializeSeed, EnumAccess, SeqAccess, VariantAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Quoted, excerpt};

/// [`Encoded`] is a value's bytes, so it lives in [`crate::codec`]; its old path stays.
pub use crate::codec::value::Encoded;

/// Deepest nesting of lists and maps a value may have (a scalar is depth 0).
pub const MAX_DEPTH: usize = 64;

/// Largest integer magnitude a JavaScript number holds exactly (2^53 - 1).
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// A value stored in a map.
#[derive(Clone, Debug)]
pub enum Value {
    /// JSON `null` (distinct from a tombstone, which has no value at all).
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer, exact across its whole 64-bit range (a BigInt in JavaScript beyond 2^53).
    Int(i64),
    /// A finite float. [`Value::from`] stores integral floats of safe magnitude as `Int`.
    Float(f64),
    /// Unicode text.
    String(Box<str>),
    /// Raw bytes (`Uint8Array` in JavaScript).
    Bytes(Box<[u8]>),
    /// An ordered list.
    List(Box<[Value]>),
    /// String-keyed entries, sorted by key bytes, keys unique. Build it with [`Value::map`].
    Map(Box<[(Box<str>, Value)]>),
}

impl Value {
    /// A map value from entries in any order; a key given twice is an error.
    pub fn map<K: Into<Box<str>>>(entries: impl IntoIterator<Item = (K, Value)>) -> Result<Self, Error> {
        let mut entries: Vec<(Box<str>, Value)> = entries.into_iter().map(|(k, v)| (k.into(), v)).collect();
        crate::sort::by_key(&mut entries, |e| e.0.as_bytes());
        if let Some(pair) = entries.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(invalid("$", alloc::format!("the key {} appears twice", Quoted(&excerpt(&pair[0].0)))));
        }
        Ok(Self::Map(entries.into_boxed_slice()))
    }

    /// A list value.
    pub fn list(items: impl IntoIterator<Item = Value>) -> Self {
        Self::List(items.into_iter().collect())
    }

    /// The value of `key` in a map value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Self::Map(entries) => entries.binary_search_by(|(k, _)| (**k).cmp(key)).ok().map(|i| &entries[i].1),
            _ => None,
        }
    }

    /// Puts a value in its one canonical form, recursively: map entries sorted by key bytes (a
    /// repeated key is an error), and a whole-number float of safe magnitude (`-0.0` included)
    /// made the integer it equals, as a JavaScript number is, so every runtime stores the same
    /// bytes for it. Then checks it like [`Value::validate`].
    pub fn normalize(mut self) -> Result<Self, Error> {
        self.sort_maps()?;
        self.whole_floats_as_ints();
        self.validate()?;
        Ok(self)
    }

    /// Makes each whole-number float of safe magnitude the integer it equals (see
    /// [`Value::normalize`]); for values already checked with [`Value::validate`].
    pub(crate) fn whole_floats_as_ints(&mut self) {
        match self {
            Self::Float(f) => *self = Self::from(*f),
            Self::List(items) => items.iter_mut().for_each(Self::whole_floats_as_ints),
            Self::Map(entries) => entries.iter_mut().for_each(|(_, v)| v.whole_floats_as_ints()),
            _ => {}
        }
    }

    fn sort_maps(&mut self) -> Result<(), Error> {
        match self {
            Self::List(items) => items.iter_mut().try_for_each(Self::sort_maps),
            Self::Map(entries) => {
                if !entries.is_sorted_by(|a, b| a.0 < b.0) {
                    crate::sort::by_key(entries, |e| e.0.as_bytes());
                    if let Some(pair) = entries.windows(2).find(|w| w[0].0 == w[1].0) {
                        return Err(invalid(
                            "$",
                            alloc::format!("the key {} appears twice", Quoted(&excerpt(&pair[0].0))),
                        ));
                    }
                }
                entries.iter_mut().try_for_each(|(_, v)| v.sort_maps())
            }
            _ => Ok(()),
        }
    }

    /// Checks the invariants a hand-built value might break: finite floats, sorted unique map keys,
    /// and nesting no deeper than [`MAX_DEPTH`]. Values from [`crate::codec`] are already checked.
    pub fn validate(&self) -> Result<(), Error> {
        match self {
            // The common case, checked without building a path.
            Self::Null | Self::Bool(_) | Self::Int(_) | Self::String(_) | Self::Bytes(_) => Ok(()),
            Self::Float(f) if f.is_finite() => Ok(()),
            _ => self.validate_at(&mut String::from("$"), 0),
        }
    }

    fn validate_at(&self, path: &mut String, depth: usize) -> Result<(), Error> {
        match self {
            Self::Float(f) if !f.is_finite() => Err(invalid(path, "NaN and infinities are not allowed".into())),
            Self::List(items) => {
                check_depth(path, depth)?;
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    let _ = write!(path, "[{i}]");
                    item.validate_at(path, depth + 1)?;
                    path.truncate(len);
                }
                Ok(())
            }
            Self::Map(entries) => {
                check_depth(path, depth)?;
                if entries.windows(2).any(|w| w[0].0 >= w[1].0) {
                    return Err(invalid(
                        path,
                        "map keys must be unique and sorted (build maps with Value::map)".into(),
                    ));
                }
                for (key, item) in entries.iter() {
                    let len = path.len();
                    let _ = write!(path, ".{}", excerpt(key));
                    item.validate_at(path, depth + 1)?;
                    path.truncate(len);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Writes the canonical JSON of SPEC section 4: object keys sorted by UTF-16 code units, no
    /// white space, numbers as JavaScript's `JSON.stringify` writes them, bytes as a list of numbers.
    /// An integer beyond 2^53 (a BigInt in JavaScript, which `JSON.stringify` refuses) is written
    /// with every digit, as `BigInt.prototype.toString` does: `Int(2^60)` is
    /// `1152921504606846976`, while the float `2^60` is `1152921504606847000`.
    pub fn write_canonical_json<W: Write>(&self, w: &mut W) -> fmt::Result {
        match self {
            Self::Null => w.write_str("null"),
            Self::Bool(b) => w.write_str(if *b { "true" } else { "false" }),
            Self::Int(i) => write!(w, "{i}"),
            Self::Float(f) => write_js_number(*f, w),
            Self::String(s) => write_json_string(s, w),
            Self::Bytes(bytes) => {
                w.write_char('[')?;
                for (i, b) in bytes.iter().enumerate() {
                    if i > 0 {
                        w.write_char(',')?;
                    }
                    write!(w, "{b}")?;
                }
                w.write_char(']')
            }
            Self::List(items) => {
                w.write_char('[')?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        w.write_char(',')?;
                    }
                    item.write_canonical_json(w)?;
                }
                w.write_char(']')
            }
            Self::Map(entries) => {
                let order = utf16_order(entries);
                w.write_char('{')?;
                for (i, (key, item)) in order.into_iter().enumerate() {
                    if i > 0 {
                        w.write_char(',')?;
                    }
                    write_json_string(key, w)?;
                    w.write_char(':')?;
                    item.write_canonical_json(w)?;
                }
                w.write_char('}')
            }
        }
    }

    /// The canonical JSON as a string.
    pub fn to_canonical_json(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_canonical_json(&mut s);
        s
    }

    /// The variant's name, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "boolean",
            Self::Int(_) | Self::Float(_) => "number",
            Self::String(_) => "string",
            Self::Bytes(_) => "bytes",
            Self::List(_) => "list",
            Self::Map(_) => "map",
        }
    }
}

fn invalid(path: &str, reason: String) -> Error {
    Error::InvalidValue { path: String::from(path), reason }
}

fn check_depth(path: &str, depth: usize) -> Result<(), Error> {
    if depth >= MAX_DEPTH {
        return Err(invalid(path, alloc::format!("nested deeper than {MAX_DEPTH} levels")));
    }
    Ok(())
}

/// Structural equality, as the OR map's `remove` needs: numbers of safe magnitude compare by
/// numeric value (so an `Int(1)` equals a `Float(1.0)`, as both are `1` in JavaScript), everything
/// else by content. Equal values always have equal canonical JSON, so they hash alike.
impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Null, Self::Null) => true,
            (Self::Bool(a), Self::Bool(b)) => a == b,
            (Self::Int(a), Self::Int(b)) => a == b,
            (Self::Float(a), Self::Float(b)) => a == b,
            (Self::Int(i), Self::Float(f)) | (Self::Float(f), Self::Int(i)) => int_equals_float(*i, *f),
            (Self::String(a), Self::String(b)) => a == b,
            (Self::Bytes(a), Self::Bytes(b)) => a == b,
            (Self::List(a), Self::List(b)) => a == b,
            (Self::Map(a), Self::Map(b)) => a == b,
            _ => false,
        }
    }
}

/// `f` as an exact `i64`, if it is integral and in range (`-0.0` gives `0`).
#[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
fn exact_int(f: f64) -> Option<i64> {
    // -2^63 is exact as a float; 2^63 is not an i64, hence the half-open range.
    if !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f) {
        return None;
    }
    let i = f as i64;
    (i as f64 == f).then_some(i)
}

/// Equal only within JavaScript's safe range, where both are one number with one canonical JSON
/// text. Beyond it `Float(2^60)` is written `1152921504606847000` (JavaScript's shortest digits)
/// and `Int(2^60)` `1152921504606846976` (every digit, as a BigInt prints), so they hash apart
/// and must not compare equal either.
fn int_equals_float(i: i64, f: f64) -> bool {
    (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&i) && exact_int(f) == Some(i)
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Self::Int(i)
    }
}
impl From<i32> for Value {
    fn from(i: i32) -> Self {
        Self::Int(i64::from(i))
    }
}
/// Integral floats within JavaScript's safe range become `Int`, as a JS number would.
impl From<f64> for Value {
    fn from(f: f64) -> Self {
        match exact_int(f) {
            Some(i) if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&i) => Self::Int(i),
            _ => Self::Float(f),
        }
    }
}
impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Self::String(s.into())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Self::String(s.into_boxed_str())
    }
}
impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        Self::Bytes(b.into_boxed_slice())
    }
}

/// Writes `f` as JavaScript's `Number.prototype.toString` does (ECMA-262 Number::toString): the
/// shortest round-trip digits, in plain notation for exponents -7 < n <= 21, else `d.ddde+n`.
fn write_js_number<W: Write>(f: f64, w: &mut W) -> fmt::Result {
    if f == 0.0 {
        return w.write_char('0'); // also -0, as JSON.stringify writes it
    }
    if !f.is_finite() {
        return w.write_str("null"); // unreachable for validated values; JSON.stringify's choice
    }
    // ryu gives the shortest round-trip digits in its own notation ("1.5e-7", "100.0", "1e21");
    // read them back as digits `d1..dk` and the position `n` of the decimal point.
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(f.abs());
    let (mantissa, exp) = match text.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().map_err(|_| fmt::Error)?),
        None => (text, 0),
    };
    let point = mantissa.find('.').unwrap_or(mantissa.len());
    let mut n = i32::try_from(point).map_err(|_| fmt::Error)? + exp;
    let mut digits = [0u8; 24];
    let mut k = 0usize;
    for b in mantissa.bytes().filter(u8::is_ascii_digit) {
        if k == 0 && b == b'0' {
            n -= 1; // a leading zero moves the point left
            continue;
        }
        *digits.get_mut(k).ok_or(fmt::Error)? = b;
        k += 1;
    }
    while k > 1 && digits[k - 1] == b'0' {
        k -= 1;
    }
    let digits = core::str::from_utf8(&digits[..k]).map_err(|_| fmt::Error)?;
    if f < 0.0 {
        w.write_char('-')?;
    }
    let k = i32::try_from(k).map_err(|_| fmt::Error)?;
    if k <= n && n <= 21 {
        w.write_str(digits)?;
        for _ in 0..(n - k) {
            w.write_char('0')?;
        }
        Ok(())
    } else if 0 < n && n <= 21 {
        let (int, frac) = digits.split_at(usize::try_from(n).map_err(|_| fmt::Error)?);
        w.write_str(int)?;
        w.write_char('.')?;
        w.write_str(frac)
    } else if -6 < n && n <= 0 {
        w.write_str("0.")?;
        for _ in 0..(-n) {
            w.write_char('0')?;
        }
        w.write_str(digits)
    } else {
        let (first, rest) = digits.split_at(1);
        w.write_str(first)?;
        if !rest.is_empty() {
            w.write_char('.')?;
            w.write_str(rest)?;
        }
        w.write_char('e')?;
        w.write_char(if n - 1 < 0 { '-' } else { '+' })?;
        write_decimal(u64::from((n - 1).unsigned_abs()), w)
    }
}

/// Map entries in the order of their keys' UTF-16 code units, which the canonical JSON uses.
fn utf16_order(entries: &[(Box<str>, Value)]) -> Vec<&(Box<str>, Value)> {
    // Stored order is by UTF-8 bytes; it differs from UTF-16 order only between supplementary
    // characters and U+E000..U+FFFF, so re-sort only when needed. Big-endian UTF-16 bytes compare
    // as the code units do.
    if entries.iter().all(|(k, _)| k.is_ascii()) {
        return entries.iter().collect();
    }
    let keys: Vec<Vec<u8>> =
        entries.iter().map(|(k, _)| k.encode_utf16().flat_map(u16::to_be_bytes).collect()).collect();
    crate::sort::order(keys.iter().map(Vec::as_slice)).into_iter().map(|at| &entries[at]).collect()
}

/// Writes `n` in decimal without going through `core::fmt`'s integer machinery.
fn write_decimal<W: Write>(n: u64, w: &mut W) -> fmt::Result {
    let mut buf = [0u8; 20];
    let digits = crate::hash::decimal(n, &mut buf);
    w.write_str(core::str::from_utf8(digits).map_err(|_| fmt::Error)?)
}

/// Writes `s` as a JSON string literal, escaped as `JSON.stringify` does.
fn write_json_string<W: Write>(s: &str, w: &mut W) -> fmt::Result {
    w.write_char('"')?;
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\x08' => "\\b",
            b'\x0c' => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        w.write_str(&s[start..i])?;
        if escape.is_empty() {
            write!(w, "\\u{b:04x}")?;
        } else {
            w.write_str(escape)?;
        }
        start = i + 1;
    }
    w.write_str(&s[start..])?;
    w.write_char('"')
}

// ---- postcard (serde) form -------------------------------------------------------------------

const VARIANTS: &[&str] = &["Null", "Bool", "Int", "Float", "String", "Bytes", "List", "Map"];

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Null => s.serialize_unit_variant("Value", 0, "Null"),
            Self::Bool(b) => s.serialize_newtype_variant("Value", 1, "Bool", b),
            Self::Int(i) => s.serialize_newtype_variant("Value", 2, "Int", i),
            Self::Float(f) => s.serialize_newtype_variant("Value", 3, "Float", f),
            Self::String(t) => s.serialize_newtype_variant("Value", 4, "String", &**t),
            Self::Bytes(b) => s.serialize_newtype_variant("Value", 5, "Bytes", &Bytes(b)),
            Self::List(items) => s.serialize_newtype_variant("Value", 6, "List", &**items),
            Self::Map(entries) => s.serialize_newtype_variant("Value", 7, "Map", &MapEntries(entries)),
        }
    }
}

struct Bytes<'a>(&'a [u8]);
impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

struct MapEntries<'a>(&'a [(Box<str>, Value)]);
impl Serialize for MapEntries<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (k, v) in self.0 {
            seq.serialize_element(&(&**k, v))?;
        }
        seq.end()
    }
}

/// Decoding bounds the nesting depth (so hostile input cannot exhaust the stack) but leaves the
/// other invariants to [`Value::validate`], which names the bad part's path; [`crate::codec`] calls it.
impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ValueSeed { depth: 0 }.deserialize(d)
    }
}

/// Decodes a value at a nesting depth, so hostile input cannot recurse without bound.
#[derive(Clone, Copy)]
struct ValueSeed {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_enum("Value", VARIANTS, self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a onegrid value")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let (tag, variant): (u32, _) = data.variant()?;
        let nested = || {
            if self.depth >= MAX_DEPTH {
                Err(de::Error::custom(alloc::format!("value nested deeper than {MAX_DEPTH} levels")))
            } else {
                Ok(ValueSeed { depth: self.depth + 1 })
            }
        };
        Ok(match tag {
            0 => {
                variant.unit_variant()?;
                Value::Null
            }
            1 => Value::Bool(variant.newtype_variant()?),
            2 => Value::Int(variant.newtype_variant()?),
            3 => Value::Float(variant.newtype_variant()?),
            4 => Value::String(variant.newtype_variant::<String>()?.into_boxed_str()),
            5 => Value::Bytes(variant.newtype_variant_seed(BytesSeed)?.into_boxed_slice()),
            6 => Value::List(variant.newtype_variant_seed(ListSeed(nested()?))?.into_boxed_slice()),
            7 => Value::Map(variant.newtype_variant_seed(MapSeed(nested()?))?.into_boxed_slice()),
            other => return Err(de::Error::custom(alloc::format!("unknown value type tag {other}"))),
        })
    }
}

struct BytesSeed;
impl<'de> DeserializeSeed<'de> for BytesSeed {
    type Value = Vec<u8>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(self)
    }
}
impl<'de> Visitor<'de> for BytesSeed {
    type Value = Vec<u8>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bytes")
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }
    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }
}

/// Caps a length prefix's pre-allocation: the length is untrusted until the items arrive.
fn cautious(hint: Option<usize>) -> usize {
    hint.unwrap_or(0).min(4096)
}

struct ListSeed(ValueSeed);
impl<'de> DeserializeSeed<'de> for ListSeed {
    type Value = Vec<Value>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Value>, D::Error> {
        d.deserialize_seq(self)
    }
}
impl<'de> Visitor<'de> for ListSeed {
    type Value = Vec<Value>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of values")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Value>, A::Error> {
        let mut items = Vec::with_capacity(cautious(seq.size_hint()));
        while let Some(item) = seq.next_element_seed(self.0)? {
            items.push(item);
        }
        Ok(items)
    }
}

struct MapSeed(ValueSeed);
impl<'de> DeserializeSeed<'de> for MapSeed {
    type Value = Vec<(Box<str>, Value)>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}
impl<'de> Visitor<'de> for MapSeed {
    type Value = Vec<(Box<str>, Value)>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("map entries sorted by key")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut entries: Vec<(Box<str>, Value)> = Vec::with_capacity(cautious(seq.size_hint()));
        while let Some(entry) = seq.next_element_seed(EntrySeed(self.0))? {
            entries.push(entry);
        }
        Ok(entries)
    }
}

struct EntrySeed(ValueSeed);
impl<'de> DeserializeSeed<'de> for EntrySeed {
    type Value = (Box<str>, Value);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_tuple(2, self)
    }
}
impl<'de> Visitor<'de> for EntrySeed {
    type Value = (Box<str>, Value);
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a (key, value) pair")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let key: String = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let value = seq.next_element_seed(self.0)?.ok_or_else(|| de::Error::invalid_length(1, &self))?;
        Ok((key.into_boxed_str(), value))
    }
}
