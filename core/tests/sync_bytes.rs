//! What a catch-up costs: for a 100 000-key map that differs in 100 keys, the frames both ways
//! must come to under 2 % of a full snapshot (SPEC section 8), for LWW and OR maps.

mod common;

use common::pair::sync_pair;
use onegrid_core::sync::SyncConfig;
use onegrid_core::{ClockConfig, Grid, NodeId, Value};

const WALL: u64 = 1_700_000_000_000;
const KEYS: usize = 100_000;

fn grid(id: &str) -> Grid {
    Grid::new(NodeId::new(id).expect("node"), ClockConfig::default())
}

/// A user-like record: a few fields, a name that varies.
fn user(i: usize, salt: u64) -> Value {
    Value::Map(
        vec![
            ("active".into(), Value::Bool(i.is_multiple_of(3))),
            ("age".into(), Value::from((i % 90) as i64)),
            ("name".into(), Value::from(format!("user {} {}", i.wrapping_mul(2_654_435_761) % 100_003, salt))),
        ]
        .into_boxed_slice(),
    )
}

/// Two grids holding the same `KEYS`-key map, then `differ` keys written on `b` only (half of
/// them new keys, half overwrites). Returns (catch-up bytes, snapshot bytes).
fn lww_case(values: impl Fn(usize, u64) -> Value, differ: usize) -> (usize, usize) {
    let (mut a, mut b) = (grid("a"), grid("b"));
    let mut wall = WALL;
    {
        let (m, clock) = a.lww("m", wall).expect("lww");
        for i in 0..KEYS {
            wall += (i % 7) as u64;
            m.set(clock, wall, &format!("user:{i:06}"), values(i, 0), None).expect("set");
        }
    }
    let snapshot = a.export_map("m").expect("export");
    b.import_map("m", &snapshot, wall).expect("import");
    let (m, clock) = b.lww("m", wall).expect("lww");
    for j in 0..differ {
        let key = if j % 2 == 0 { format!("user:{:06}", j * 997 % KEYS) } else { format!("new:{j}") };
        m.set(clock, wall + 1, &key, values(j, 1), None).expect("set");
    }
    let (to_b, to_a, frames) = sync_pair(&mut a, &mut b, SyncConfig::default(), wall + 2);
    assert_eq!(a.map("m").expect("m").root(), b.map("m").expect("m").root());
    assert_eq!(a.export_map("m").expect("export"), b.export_map("m").expect("export"));
    println!(
        "LWW: {} catch-up bytes ({to_b} + {to_a}, {frames} frames) for a {}-byte snapshot",
        to_b + to_a,
        snapshot.len()
    );
    (to_b + to_a, snapshot.len())
}

#[test]
fn lww_catch_up_of_100_keys_costs_under_2_percent_of_a_snapshot() {
    let (bytes, snapshot) = lww_case(user, 100);
    let ratio = bytes as f64 / snapshot as f64;
    println!("ratio {:.3} %", ratio * 100.0);
    assert!(ratio < 0.02, "{bytes} bytes is {:.2} % of the {snapshot}-byte snapshot", ratio * 100.0);
}

#[test]
fn lww_catch_up_of_a_map_of_small_integers() {
    // The densest snapshot there is (a counter per key): the figure is reported, not asserted.
    let (bytes, snapshot) = lww_case(|i, salt| Value::from((i as u64 + salt) as i64), 100);
    println!("integers: {:.3} % of the snapshot", bytes as f64 * 100.0 / snapshot as f64);
}

#[test]
fn or_catch_up_of_100_keys_costs_under_2_percent_of_a_snapshot() {
    let (mut a, mut b) = (grid("a"), grid("b"));
    let mut wall = WALL;
    {
        let (m, clock) = a.or("m", wall).expect("or");
        for i in 0..KEYS {
            wall += (i % 7) as u64;
            m.add(clock, wall, &format!("tag:{i:06}"), user(i, 0), None).expect("add");
        }
    }
    let snapshot = a.export_map("m").expect("export");
    b.import_map("m", &snapshot, wall).expect("import");
    let (m, clock) = b.or("m", wall).expect("or");
    for j in 0..100 {
        let key = format!("tag:{:06}", j * 997 % KEYS);
        m.add(clock, wall + 1, &key, Value::from(j as i64), None).expect("add");
    }
    let (to_b, to_a, frames) = sync_pair(&mut a, &mut b, SyncConfig::default(), wall + 2);
    assert_eq!(a.map("m").expect("m").root(), b.map("m").expect("m").root());
    assert_eq!(a.export_map("m").expect("export"), b.export_map("m").expect("export"));
    let ratio = (to_b + to_a) as f64 / snapshot.len() as f64;
    println!(
        "OR: {} bytes ({frames} frames) for a {}-byte snapshot: {:.3} %",
        to_b + to_a,
        snapshot.len(),
        ratio * 100.0
    );
    assert!(ratio < 0.02);
}

#[test]
fn a_first_sync_is_split_into_pages() {
    let (mut a, mut b) = (grid("a"), grid("b"));
    let (m, clock) = a.lww("m", WALL).expect("lww");
    for i in 0..5_000 {
        m.set(clock, WALL, &format!("key-{i}"), user(i, 0), None).expect("set");
    }
    let config = SyncConfig { frame_limit: 4_096, ..SyncConfig::default() };
    let (_, _, frames) = sync_pair(&mut a, &mut b, config, WALL + 1);
    assert!(frames > 20, "{frames} frames");
    assert_eq!(a.export_map("m").expect("export"), b.export_map("m").expect("export"));
}
