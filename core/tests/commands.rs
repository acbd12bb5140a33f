//! The byte ABI's commands (`Grid::execute`) leave no trace when they fail, take back writes held
//! after a kind mismatch, and say why a map cannot be exported yet.

mod common;

use common::storage::*;
use common::{node, ts};
use onegrid_core::codec::decode_snapshot;
use onegrid_core::{
    ClockConfig, Command, Error, ErrorKind, Grid, MapKind, OrRecord, Reply, StorageConfig, StoredValue, Value,
};

fn grid() -> Grid {
    Grid::new(node("a"), ClockConfig::default())
}

fn persistent() -> Grid {
    Grid::with_storage(node("a"), ClockConfig::default(), StorageConfig::default())
}

#[test]
fn a_failed_command_on_a_new_map_creates_no_map() {
    let mut g = grid();
    let refused = [
        Command::Set { map: "m".into(), key: "__tombstones__".into(), value: Value::Null, ttl_ms: None },
        Command::Set { map: "m".into(), key: "k".into(), value: Value::Float(f64::NAN), ttl_ms: None },
        Command::Add { map: "o".into(), key: "k".into(), value: Value::Null, ttl_ms: Some(0) },
        Command::OrRemove { map: "o".into(), key: "k".into(), value: Value::Float(f64::INFINITY) },
        Command::Get { map: "g".into(), key: "__mark__".into() },
        Command::Import { map: "i".into(), snapshot: vec![1, 2, 3] },
    ];
    for command in refused {
        assert!(g.execute(1, command.clone()).is_err(), "{command:?}");
    }
    assert!(g.map_names().is_empty(), "{:?}", g.map_names());
    // So the next command on the name may make it of either kind.
    assert!(g.execute(1, Command::Add { map: "m".into(), key: "k".into(), value: Value::Null, ttl_ms: None }).is_ok());
    assert_eq!(g.map("m").map(|m| m.kind()), Some(MapKind::Or));
}

#[test]
fn a_failed_command_on_an_existing_map_keeps_it() {
    let mut g = grid();
    g.execute(1, Command::Set { map: "m".into(), key: "k".into(), value: Value::from(1), ttl_ms: None }).expect("set");
    let refused = Command::Set { map: "m".into(), key: "__tombstones__".into(), value: Value::Null, ttl_ms: None };
    assert!(g.execute(2, refused).is_err());
    assert_eq!(g.map_names(), vec!["m"]);
}

#[test]
fn take_early_writes_hands_back_what_a_kind_mismatch_held() {
    let mut fake = Fake::default();
    let stored = OrRecord { value: Value::from("v"), timestamp: ts(5, 0, "x"), ttl_ms: None };
    fake.put("m", "k", &StoredValue::Or(vec![stored]));
    let mut g = persistent();
    let set = Command::Set { map: "m".into(), key: "k".into(), value: Value::from("early"), ttl_ms: None };
    g.execute(WALL, set).expect("an early write while the map loads");
    fake.run(g.storage_mut());
    let nothing = g.execute(WALL, Command::TakeEarlyWrites { map: "other".into() });
    assert!(matches!(nothing, Err(Error::NothingHeld { .. })), "{nothing:?}");
    let Ok(Reply::Bytes(snapshot)) = g.execute(WALL, Command::TakeEarlyWrites { map: "m".into() }) else {
        panic!("the held writes come back")
    };
    let snapshot = decode_snapshot(&snapshot).expect("a snapshot");
    assert_eq!(snapshot.kind(), MapKind::Lww);
    // Once taken, a flush succeeds and the map loads as stored.
    let Ok(Reply::Count(id)) = g.execute(WALL, Command::Flush) else { panic!("a flush id") };
    fake.run(g.storage_mut());
    let events = events(g.storage_mut());
    assert!(events.contains(&onegrid_core::StorageEvent::Flushed { flush_id: id }), "{events:?}");
}

#[test]
fn exporting_a_map_that_is_still_loading_says_so() {
    let mut g = persistent();
    g.storage_mut().get_map("m", None, WALL).expect("touch");
    assert!(g.storage().has_map("m"));
    let err = g.export_map("m").expect_err("still loading");
    assert!(matches!(err, Error::MapLoading { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Loading);
    assert!(matches!(g.export_map("never"), Err(Error::UnknownMap { .. })));
    // Once loaded, it exports.
    Fake::default().run(g.storage_mut());
    assert!(g.export_map("m").is_ok());
}

#[test]
fn import_replies_carry_the_lenient_drift_reports() {
    let mut peer = grid();
    let far = WALL + 1_000_000;
    peer.execute(far, Command::Set { map: "m".into(), key: "k".into(), value: Value::from(1), ttl_ms: None })
        .expect("set");
    let Ok(Reply::Bytes(snapshot)) = peer.execute(far, Command::Export { map: "m".into() }) else { panic!("export") };
    let mut g = grid();
    let Ok(Reply::Imported { changed, drifts }) = g.execute(WALL, Command::Import { map: "m".into(), snapshot }) else {
        panic!("an Imported reply")
    };
    assert_eq!(changed, 1);
    assert_eq!(drifts.len(), 1);
    assert_eq!(drifts[0].remote, format!("{far}:0:a"));
    assert_eq!((drifts[0].wall, drifts[0].ahead_ms, drifts[0].max_drift_ms), (WALL, 1_000_000, 60_000));
}
