//! Two in-memory grids synced to the end over a perfect link, for the sync tests that count what
//! a catch-up sends. The deterministic simulation of many replicas over a lossy network, on every
//! runtime, is `onegrid_tests::sim` (tests/src/sim/).

use onegrid_core::Grid;
use onegrid_core::sync::{ConnState, Event, Hub, Permissions, SyncConfig};

/// Connects two in-memory grids (`a` says hello, `b` accepts everything), runs them until both
/// are synced, and returns the bytes each sent (handshake included) and the frames.
pub fn sync_pair(a: &mut Grid, b: &mut Grid, config: SyncConfig, wall: u64) -> (usize, usize, usize) {
    let (mut ha, mut hb) = (Hub::new(config), Hub::new(config));
    let ca = ha.connect(a, None);
    let cb = hb.incoming(b);
    let (mut sent_a, mut sent_b, mut frames) = (0, 0, 0);
    for _ in 0..10_000 {
        let mut moved = false;
        while let Some(bytes) = ha.poll_transmit(a, ca, wall) {
            assert!(bytes.len() <= config.frame_limit, "a frame of {} bytes", bytes.len());
            sent_a += bytes.len();
            frames += 1;
            hb.handle_frame(b, cb, wall, &bytes);
            moved = true;
        }
        while let Some(event) = hb.poll_event(cb) {
            if let Event::Hello { .. } = event {
                hb.accept(b, cb, Permissions::all());
            }
            assert!(!matches!(event, Event::Closed { .. }), "{event:?}");
        }
        while let Some(bytes) = hb.poll_transmit(b, cb, wall) {
            assert!(bytes.len() <= config.frame_limit, "a frame of {} bytes", bytes.len());
            sent_b += bytes.len();
            frames += 1;
            ha.handle_frame(a, ca, wall, &bytes);
            moved = true;
        }
        while let Some(event) = ha.poll_event(ca) {
            assert!(!matches!(event, Event::Closed { .. }), "{event:?}");
        }
        if !moved && ha.state(ca) == ConnState::Synced && hb.state(cb) == ConnState::Synced {
            return (sent_a, sent_b, frames);
        }
    }
    panic!("the pair did not sync: {:?} / {:?}", ha.state(ca), hb.state(cb));
}
