//! Every error has a kind with a stable code, reached through the calls that really fail, so code
//! that acts on an error matches its kind, never its text.

mod common;

use common::storage::{Fake, WALL, manager};
use common::{clock, node, ts};
use onegrid_core::codec::decode_snapshot;
use onegrid_core::{
    ClockConfig, ErrorKind, Grid, Hlc, LwwMap, MapKind, NodeId, StorageConfig, StorageEvent, Timestamp, Value,
};

#[test]
fn each_failure_has_its_kind() {
    let kind = |result: Result<(), onegrid_core::Error>| result.expect_err("a failure").kind();
    let mut map = LwwMap::new();
    let mut c = clock("a");
    assert_eq!(kind(NodeId::new("").map(drop)), ErrorKind::InvalidArgument);
    assert_eq!(kind(Timestamp::parse("1:01:a").map(drop)), ErrorKind::InvalidArgument);
    assert_eq!(kind(map.set(&mut c, 1, "__mark__", Value::Null, None).map(drop)), ErrorKind::InvalidArgument);
    assert_eq!(kind(map.set(&mut c, 1, "k", Value::Null, Some(0)).map(drop)), ErrorKind::InvalidArgument);
    assert_eq!(kind(map.set(&mut c, 1, "k", Value::Float(f64::NAN), None).map(drop)), ErrorKind::InvalidValue);
    assert_eq!(kind(decode_snapshot(&[]).map(drop)), ErrorKind::Malformed);
    let mut strict = Hlc::new(node("a"), ClockConfig { max_drift_ms: 10, strict: true });
    assert_eq!(kind(strict.update(&ts(1_000, 0, "b"), 0).map(drop)), ErrorKind::ClockDrift);
    let mut end = clock("a");
    end.observe(&ts(u64::MAX, u32::MAX - 1, "b"), 0);
    assert_eq!(kind(end.now(0).map(drop)), ErrorKind::ClockExhausted);

    let mut grid = Grid::with_storage(node("a"), ClockConfig::default(), StorageConfig::default());
    assert_eq!(kind(grid.export_map("never").map(drop)), ErrorKind::NotFound);
    grid.storage_mut().get_map("m", Some(MapKind::Lww), WALL).expect("touch");
    assert_eq!(kind(grid.export_map("m").map(drop)), ErrorKind::Loading);
    Fake::default().run(grid.storage_mut());
    assert_eq!(kind(grid.storage_mut().get_map("m", Some(MapKind::Or), WALL).map(drop)), ErrorKind::KindMismatch);

    let mut m = manager();
    let mut fake = Fake { fail_loads: 1, ..Fake::default() };
    m.get_map("m", None, WALL).expect("touch");
    fake.run(&mut m);
    let failed = std::iter::from_fn(|| m.poll_event()).find_map(|e| match e {
        StorageEvent::LoadFailed { error, .. } => Some(error),
        _ => None,
    });
    assert_eq!(failed.expect("a failed load").kind(), ErrorKind::Storage);
}

#[test]
fn codes_are_distinct_and_in_screaming_snake_case() {
    let kinds = [
        ErrorKind::KindMismatch,
        ErrorKind::InvalidValue,
        ErrorKind::InvalidArgument,
        ErrorKind::Malformed,
        ErrorKind::ClockDrift,
        ErrorKind::ClockExhausted,
        ErrorKind::Storage,
        ErrorKind::NotFound,
        ErrorKind::Loading,
        ErrorKind::Limit,
    ];
    let codes: std::collections::BTreeSet<&str> = kinds.iter().map(|k| k.code()).collect();
    assert_eq!(codes.len(), kinds.len());
    assert!(codes.iter().all(|c| c.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_')), "{codes:?}");
}
