//! SPEC section 1: node ids, timestamps and their text form, and the hybrid logical clock.

mod common;

use common::{clock as lenient, node, ts};
use onegrid_core::{ClockConfig, Error, ErrorKind, Hlc, NodeId, Timestamp};

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
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
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
    assert_eq!(err.kind(), ErrorKind::ClockDrift);
    assert!(err.to_string().contains("1001 ms ahead"), "the message gives how far ahead: {err}");
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

// ---- the end of time: millis u64::MAX (SPEC section 1) ------------------------------------------

#[test]
fn at_millis_u64_max_the_counter_advances_and_an_exhausted_clock_fails_without_going_back() {
    let mut c = lenient("a");
    c.observe(&ts(u64::MAX, u32::MAX - 3, "b"), 0);
    assert_eq!(c.last(), (u64::MAX, u32::MAX - 2));
    assert_eq!(c.now(5).expect("room"), ts(u64::MAX, u32::MAX - 1, "a"));
    assert_eq!(c.now(5).expect("room"), ts(u64::MAX, u32::MAX, "a"));
    let err = c.now(5).expect_err("exhausted");
    assert!(matches!(err, Error::ClockExhausted { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::ClockExhausted);
    assert!(err.to_string().contains("\"a\""), "the message names the node: {err}");
    assert_eq!(c.last(), (u64::MAX, u32::MAX), "a refused now() changes nothing");
}

#[test]
fn a_remote_timestamp_the_clock_cannot_get_past_is_refused_in_both_modes() {
    let end = ts(u64::MAX, u32::MAX, "b");
    let mut lenient_clock = lenient("a");
    assert!(matches!(lenient_clock.update(&end, 0), Err(Error::ClockExhausted { .. })));
    assert_eq!(lenient_clock.last(), (0, 0), "nothing changed");
    // Strict mode refuses a timestamp at u64::MAX as drift first.
    let mut strict_clock = strict("a", 1_000);
    assert!(matches!(strict_clock.update(&ts(u64::MAX, 0, "b"), 0), Err(Error::ClockDrift(_))));
    assert_eq!(strict_clock.last(), (0, 0));
}

#[test]
fn lenient_mode_never_issues_a_timestamp_older_than_one_it_observed_at_u64_max() {
    let mut c = lenient("a");
    let far = ts(u64::MAX, 7, "z");
    let drift = c.update(&far, 1_000).expect("lenient").expect("reported as drift");
    assert_eq!(drift.remote, far);
    let next = c.now(1_000).expect("room");
    assert!(next > far, "{next} must be later than {far}");
    // The old defect: a saturating add kept the millis and reset the counter to 0.
    assert_eq!(next, ts(u64::MAX, 9, "a"));
}

#[test]
fn a_batch_the_clock_cannot_absorb_is_refused_whole_before_any_change() {
    let c = lenient("a");
    // Each fits alone; together they would take the clock past (u64::MAX, u32::MAX).
    let batch = [ts(u64::MAX, u32::MAX - 1, "b"), ts(u64::MAX, 0, "c")];
    assert!(c.check(&batch[0], 0).is_ok() && c.check(&batch[1], 0).is_ok());
    assert!(matches!(c.check_all(&batch, 0), Err(Error::ClockExhausted { .. })));
    // Through a map: nothing is applied and the clock stands.
    let mut c = lenient("a");
    let mut map = onegrid_core::LwwMap::new();
    let records = batch
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let record = onegrid_core::LwwRecord { value: None, timestamp: t.clone(), ttl_ms: None };
            (format!("k{i}").into_boxed_str(), record)
        })
        .collect();
    assert!(matches!(map.merge_all(&mut c, 0, records), Err(Error::ClockExhausted { .. })));
    assert_eq!(map.records().len(), 0);
    assert_eq!(c.last(), (0, 0));
}

#[test]
fn set_many_past_the_end_of_the_clock_is_refused_whole() {
    let mut c = lenient("a");
    c.observe(&ts(u64::MAX, u32::MAX - 3, "b"), 0);
    let mut map = onegrid_core::LwwMap::new();
    let entries: Vec<(&str, onegrid_core::Value)> = (0..3).map(|i| ("k", onegrid_core::Value::from(i))).collect();
    assert!(matches!(map.set_many(&mut c, 0, entries), Err(Error::ClockExhausted { .. })));
    assert_eq!(map.records().len(), 0, "none of the batch was written");
    assert_eq!(c.last(), (u64::MAX, u32::MAX - 2));
    let two: Vec<(&str, onegrid_core::Value)> = (0..2).map(|i| ("k", onegrid_core::Value::from(i))).collect();
    assert_eq!(map.set_many(&mut c, 0, two), Ok(2), "exactly the room left");
}
