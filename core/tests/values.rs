//! SPEC sections 4 and 7: values, structural equality, and canonical JSON as JavaScript writes it.

use onegrid_core::{ErrorKind, Value};

fn json(v: &Value) -> String {
    v.to_canonical_json()
}

#[test]
fn numbers_are_written_as_json_stringify_writes_them() {
    // Expected texts are what Node's JSON.stringify prints for the same numbers.
    for (f, text) in [
        (1.5, "1.5"),
        (-0.25, "-0.25"),
        (1e21, "1e+21"),
        (1.5e21, "1.5e+21"),
        (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (0.000001, "0.000001"),
        (123456789012345680000.0, "123456789012345680000"),
        (0.1 + 0.2, "0.30000000000000004"),
        (-1e-7, "-1e-7"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (100.5, "100.5"),
        (1e20, "100000000000000000000"),
        (-0.0, "0"),
    ] {
        assert_eq!(json(&Value::Float(f)), text, "{f:e}");
    }
    assert_eq!(json(&Value::Int(1)), "1");
    assert_eq!(json(&Value::Int(i64::MIN)), "-9223372036854775808");
    assert_eq!(json(&Value::from(1.0)), "1", "integral floats become integers");
}

#[test]
fn integral_floats_of_safe_magnitude_become_ints() {
    assert!(matches!(Value::from(3.0), Value::Int(3)));
    assert!(matches!(Value::from(-0.0), Value::Int(0)));
    assert!(matches!(Value::from(9007199254740991.0), Value::Int(9007199254740991)));
    assert!(matches!(Value::from(9007199254740992.0), Value::Float(_)));
    assert!(matches!(Value::from(0.5), Value::Float(_)));
}

#[test]
fn strings_are_escaped_as_json_stringify_escapes_them() {
    let s = Value::from("a\"\\\u{8}\u{c}\n\r\t\u{1}\u{1f}\u{7f}\u{2028}é😀");
    assert_eq!(json(&s), "\"a\\\"\\\\\\b\\f\\n\\r\\t\\u0001\\u001f\u{7f}\u{2028}é😀\"");
}

#[test]
fn object_keys_sort_by_utf16_code_units_recursively() {
    // U+FF5E (one unit 0xFF5E) sorts after "😀" (0xD83D 0xDE00) in UTF-16, before it in UTF-8.
    let v = Value::map([
        ("～", Value::from(1)),
        ("😀", Value::from(2)),
        ("b", Value::map([("z", Value::Null), ("a", Value::Bool(false))]).expect("map")),
        ("a", Value::list([Value::from(vec![1u8, 2, 255]), Value::from("x")])),
    ])
    .expect("map");
    assert_eq!(json(&v), r#"{"a":[[1,2,255],"x"],"b":{"a":false,"z":null},"😀":2,"～":1}"#);
}

#[test]
fn duplicate_map_keys_are_an_error() {
    let err = Value::map([("a", Value::Null), ("a", Value::Bool(true))]).expect_err("dup");
    assert_eq!(err.kind(), ErrorKind::InvalidValue, "{err}");
    assert!(err.to_string().contains("\"a\""), "the message names the key: {err}");
}

#[test]
fn structural_equality_ignores_construction_order_and_number_representation() {
    let a = Value::map([("x", Value::from(1)), ("y", Value::list([Value::Null]))]).expect("map");
    let b = Value::map([("y", Value::list([Value::Null])), ("x", Value::Float(1.0))]).expect("map");
    assert_eq!(a, b);
    assert_ne!(Value::from("1"), Value::from(1));
    assert_ne!(Value::Null, Value::Bool(false));
    assert_ne!(Value::Int(i64::MAX), Value::Float(9.223372036854776e18));
}

#[test]
fn validation_names_the_path_of_the_bad_part() {
    let v = Value::map([("a", Value::list([Value::Int(1), Value::Float(f64::NAN)]))]).expect("map");
    let err = v.validate().expect_err("NaN");
    assert_eq!(err.to_string(), "invalid value at $.a[1]: NaN and infinities are not allowed");
    let unsorted = Value::Map(vec![("b".into(), Value::Null), ("a".into(), Value::Null)].into_boxed_slice());
    assert!(unsorted.validate().is_err());
    let mut deep = Value::Null;
    for _ in 0..64 {
        deep = Value::list([deep]);
    }
    assert!(deep.validate().is_ok(), "64 levels are allowed");
    assert!(Value::list([deep]).validate().is_err(), "65 are not");
}
