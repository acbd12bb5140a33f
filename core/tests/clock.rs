//! SPEC section 1: node ids, timestamps and their text form, and the hybrid logical clock.

use onegrid_core::{ClockConfig, Error, Hlc, NodeId, Timestamp};

fn node(id: &str) -> NodeId {
    NodeId::new(id).expect("valid node id")
}

fn ts(millis: u64, counter: u32, id: &str) -> Timestamp {
    Timestamp::new(millis, counter, node(id))
}

fn lenient(id: &str) -> Hlc {
    Hlc::new(node(id), ClockConfig::default())
}

fn strict(id: &str, max_drift_ms: u64) -> Hlc {
    Hlc::new(node(id), ClockConfig { max_drift_ms, strict: true })
}

#[test]
fn node_ids_accept_the_allowed_alphabet_up_to_64_bytes() {
    assert!(NodeId::new("a").is_ok());
    assert!(NodeId::new("Node-1.eu_west").is_ok());
    assert!(NodeId::new(&"x".repeat(64)).is_ok());
}

#[test]
fn node_ids_reject_empty_long_and_foreign_characters_with_a_reason() {
    for (id, reason) in [
        ("", "empty"),
        (&*"x".repeat(65), "longer than 64"),
        ("a b", "only the characters"),
        ("a:b", "only the characters"),
        ("é", "only the characters"),
    ] {
        let err = NodeId::new(id).expect_err(id);
        let msg = err.to_string();
        assert!(matches!(err, Error::InvalidNodeId { .. }), "{msg}");
        assert!(msg.contains(reason), "{id:?}: {msg}");
    }
}

#[test]
fn timestamps_order_by_millis_then_counter_then_node_bytes() {
    assert!(ts(1, 9, "z") < ts(2, 0, "a"));
    assert!(ts(2, 0, "z") < ts(2, 1, "a"));
    assert!(ts(2, 1, "a") < ts(2, 1, "b"));
    // Byte order, not locale order: uppercase sorts before lowercase, "B" < "a".
    assert!(ts(2, 1, "B") < ts(2, 1, "a"));
    assert!(ts(2, 1, "a") < ts(2, 1, "aa"));
    assert_eq!(ts(2, 1, "a"), ts(2, 1, "a"));
}

#[test]
fn text_form_round_trips() {
    let t = ts(1_700_000_000_000, 7, "node-1");
    assert_eq!(t.to_text(), "1700000000000:7:node-1");
    assert_eq!(Timestamp::parse("1700000000000:7:node-1").expect("parses"), t);
    assert_eq!(Timestamp::parse("0:0:a").expect("zero is canonical"), ts(0, 0, "a"));
    let max = format!("{}:{}:n", u64::MAX, u32::MAX);
    assert_eq!(Timestamp::parse(&max).expect("max fits"), ts(u64::MAX, u32::MAX, "n"));
}

#[test]
fn parsing_rejects_everything_but_the_canonical_form() {
    for text in [
        "",
        "1:2",
        "1:2:n:extra",
        "01:2:n",
        "1:02:n",
        "+1:2:n",
        "-1:2:n",
        " 1:2:n",
        "1:2: n",
        "1.0:2:n",
        "1:2:",
        "x:2:n",
        "18446744073709551616:0:n",
        "1:4294967296:n",
        "1:2:bad id",
    ] {
        let err = Timestamp::parse(text).expect_err(text);
        assert!(matches!(err, Error::InvalidTimestamp { .. }), "{text:?} gave {err}");
        assert!(err.to_string().contains("invalid timestamp"), "{err}");
    }
}

#[test]
fn now_uses_the_wall_clock_when_it_moves_forward() {
    let mut c = lenient("a");
    assert_eq!(c.now(100).expect("the clock has room"), ts(100, 0, "a"));
    assert_eq!(c.now(101).expect("the clock has room"), ts(101, 0, "a"));
}

#[test]
fn now_counts_within_a_millisecond_and_when_the_wall_clock_goes_back() {
    let mut c = lenient("a");
    c.now(100).expect("the clock has room");
    assert_eq!(c.now(100).expect("the clock has room"), ts(100, 1, "a"));
    assert_eq!(c.now(50).expect("the clock has room"), ts(100, 2, "a"));
}

#[test]
fn counter_overflow_carries_into_millis() {
    let mut c = lenient("a");
    c.observe(&ts(100, u32::MAX - 1, "b"), 0); // counter becomes MAX
    assert_eq!(c.last(), (100, u32::MAX));
    assert_eq!(c.now(100).expect("the clock has room"), ts(101, 0, "a"));
    // And through update: remote counter at MAX with equal millis.
    let mut c = lenient("a");
    c.observe(&ts(200, u32::MAX, "b"), 0);
    assert_eq!(c.last(), (201, 0));
}

#[test]
fn update_follows_the_four_cases_in_order() {
    // m equals both last_millis and remote.millis: max(counters) + 1.
    let mut c = lenient("a");
    c.observe(&ts(100, 5, "b"), 0); // (100, 6)
    c.update(&ts(100, 9, "b"), 50).expect("no drift");
    assert_eq!(c.last(), (100, 10));
    c.update(&ts(100, 3, "b"), 50).expect("no drift");
    assert_eq!(c.last(), (100, 11));
    // Only last_millis: last_counter + 1.
    c.update(&ts(90, 99, "b"), 50).expect("no drift");
    assert_eq!(c.last(), (100, 12));
    // Only remote.millis: remote.counter + 1.
    c.update(&ts(150, 4, "b"), 120).expect("no drift");
    assert_eq!(c.last(), (150, 5));
    // Wall clock ahead of both: counter 0.
    c.update(&ts(10, 4, "b"), 300).expect("no drift");
    assert_eq!(c.last(), (300, 0));
}

#[test]
fn the_next_local_timestamp_is_after_everything_seen() {
    let mut c = lenient("a");
    let remote = ts(5_000, 3, "z");
    c.update(&remote, 5_000).expect("no drift");
    let next = c.now(4_000).expect("the clock has room");
    assert!(next > remote, "{next} must follow {remote}");
}

#[test]
fn lenient_mode_accepts_drift_and_reports_it() {
    let mut c = Hlc::new(node("a"), ClockConfig { max_drift_ms: 1_000, strict: false });
    let remote = ts(10_000, 0, "b");
    let drift = c.update(&remote, 8_999).expect("lenient").expect("drift reported");
    assert_eq!(drift.ahead_ms, 1_001);
    assert_eq!(drift.remote, remote);
    assert_eq!(c.last(), (10_000, 1));
    // Exactly at the limit is not drift.
    assert_eq!(c.update(&ts(10_000, 0, "b"), 9_000).expect("lenient"), None);
}

#[test]
fn strict_mode_fails_before_changing_anything() {
    let mut c = strict("a", 1_000);
    c.now(500).expect("the clock has room");
    let before = c.last();
    let err = c.update(&ts(10_000, 0, "b"), 8_999).expect_err("drift");
    assert!(matches!(err, Error::ClockDrift(_)));
    assert!(err.to_string().contains("1001 ms ahead"), "{err}");
    assert_eq!(c.last(), before);
    // A remote behind the wall clock is never drift.
    c.update(&ts(1, 0, "b"), 1_000_000).expect("behind is fine");
}

#[test]
fn the_default_drift_limit_is_a_minute_and_lenient() {
    let config = ClockConfig::default();
    assert_eq!(config.max_drift_ms, 60_000);
    assert!(!config.strict);
}

#[test]
fn observe_never_fails_for_the_nodes_own_past() {
    let mut c = strict("a", 10);
    c.observe(&ts(1_000_000, 4, "a"), 0);
    assert_eq!(c.last(), (1_000_000, 5));
    assert!(c.now(0).expect("the clock has room") > ts(1_000_000, 4, "a"));
}
