//! The catch-up of two grids that each changed 10 000 keys of a 100 000-key map while apart: the
//! whole exchange (both hubs, every frame, in memory, no transport), until both are synced.
//!
//! Run with `cargo bench -p onegrid-core --bench sync`. Building the two grids is setup (divan's
//! input generator), not timed.

use divan::Bencher;
use onegrid_core::sync::{ConnState, Event, Hub, Permissions, SyncConfig};
use onegrid_core::{ClockConfig, Grid, NodeId, Value};

const WALL: u64 = 1_700_000_000_000;
const KEYS: usize = 100_000;
const CHANGED: usize = 10_000;

fn main() {
    divan::main();
}

/// Two grids with the same 100 000 keys, then 10 000 different keys changed on each.
fn pair() -> (Grid, Grid) {
    let mut a = Grid::new(NodeId::new("a").expect("node"), ClockConfig::default());
    let (m, clock) = a.lww("m", WALL).expect("lww");
    for i in 0..KEYS {
        m.set(clock, WALL, &format!("user:{i:06}"), Value::from(i as i64), None).expect("set");
    }
    let snapshot = a.export_map("m").expect("export");
    let mut b = Grid::new(NodeId::new("b").expect("node"), ClockConfig::default());
    b.import_map("m", &snapshot, WALL).expect("import");
    for (grid, offset) in [(&mut a, 0), (&mut b, CHANGED)] {
        let (m, clock) = grid.lww("m", WALL + 1).expect("lww");
        for j in 0..CHANGED {
            let key = format!("user:{:06}", ((offset + j) * 7) % KEYS);
            m.set(clock, WALL + 1, &key, Value::from(-(j as i64)), None).expect("set");
        }
    }
    (a, b)
}

/// Runs a connection between `a` and `b` until both are synced; returns the bytes sent.
fn sync(a: &mut Grid, b: &mut Grid) -> usize {
    let config = SyncConfig::default();
    let (mut ha, mut hb) = (Hub::new(config), Hub::new(config));
    let ca = ha.connect(a, None);
    let cb = hb.incoming(b);
    let mut bytes = 0;
    loop {
        let mut moved = false;
        while let Some(frame) = ha.poll_transmit(a, ca, WALL + 2) {
            bytes += frame.len();
            hb.handle_frame(b, cb, WALL + 2, &frame);
            moved = true;
        }
        while let Some(event) = hb.poll_event(cb) {
            if let Event::Hello { .. } = event {
                hb.accept(b, cb, Permissions::all());
            }
        }
        while let Some(frame) = hb.poll_transmit(b, cb, WALL + 2) {
            bytes += frame.len();
            ha.handle_frame(a, ca, WALL + 2, &frame);
            moved = true;
        }
        while ha.poll_event(ca).is_some() {}
        if !moved && ha.state(ca) == ConnState::Synced && hb.state(cb) == ConnState::Synced {
            return bytes;
        }
    }
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn catch_up_10k_changed_each_side_of_100k(bencher: Bencher) {
    bencher.with_inputs(pair).bench_local_values(|(mut a, mut b)| {
        let bytes = sync(&mut a, &mut b);
        assert_eq!(a.map("m").map(|m| m.root()), b.map("m").map(|m| m.root()));
        (a, b, bytes)
    });
}
