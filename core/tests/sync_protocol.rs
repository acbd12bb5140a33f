//! The sync protocol at its edges: bad frames, the handshake, permissions and clock drift.

mod common;

use common::pair::sync_pair;
use onegrid_core::sync::frame::{DEFAULT_FRAME_LIMIT, PROTOCOL_VERSION, codes};
use onegrid_core::sync::{ConnId, ConnState, Event, Frame, Hub, Permissions, SyncConfig};
use onegrid_core::{ClockConfig, Grid, NodeId, Value};

const WALL: u64 = 1_700_000_000_000;

fn grid(id: &str) -> Grid {
    Grid::new(NodeId::new(id).expect("node"), ClockConfig::default())
}

fn frames(hub: &mut Hub, grid: &mut Grid, conn: ConnId) -> Vec<Frame> {
    std::iter::from_fn(|| hub.poll_transmit(grid, conn, WALL))
        .map(|b| Frame::decode(&b, usize::MAX).expect("frame"))
        .collect()
}

fn events(hub: &mut Hub, conn: ConnId) -> Vec<Event> {
    std::iter::from_fn(|| hub.poll_event(conn)).collect()
}

/// The error frame an accepting side answers `bytes` with (as its first frame).
fn answer_to(bytes: &[u8]) -> (String, String, Grid) {
    let mut server = grid("server");
    let mut hub = Hub::new(SyncConfig::default());
    let conn = hub.incoming(&mut server);
    hub.handle_frame(&mut server, conn, WALL, bytes);
    assert_eq!(hub.state(conn), ConnState::Closed);
    match frames(&mut hub, &mut server, conn).as_slice() {
        [Frame::Error { code, message }] => (code.clone(), message.clone(), server),
        other => panic!("{other:?}"),
    }
}

/// A server and a client, connected and synced; the server accepts with `permissions`.
fn connected(client: &mut Grid, server: &mut Grid, permissions: Permissions) -> (Hub, ConnId, Hub, ConnId) {
    connected_with_events(client, server, permissions).0
}

/// [`connected`], with the events each side reported meanwhile (client, server).
fn connected_with_events(
    client: &mut Grid,
    server: &mut Grid,
    permissions: Permissions,
) -> ((Hub, ConnId, Hub, ConnId), Vec<Event>, Vec<Event>) {
    let (mut seen_c, mut seen_s) = (Vec::new(), Vec::new());
    let (mut hc, mut hs) = (Hub::new(SyncConfig::default()), Hub::new(SyncConfig::default()));
    let cc = hc.connect(client, Some("token-1".into()));
    let cs = hs.incoming(server);
    let mut accepted = false;
    for _ in 0..100 {
        for f in std::iter::from_fn(|| hc.poll_transmit(client, cc, WALL)).collect::<Vec<_>>() {
            hs.handle_frame(server, cs, WALL, &f);
        }
        for e in events(&mut hs, cs) {
            seen_s.push(e.clone());
            if let Event::Hello { token, .. } = e {
                assert_eq!(token.as_deref(), Some("token-1"));
                hs.accept(server, cs, permissions.clone());
                accepted = true;
            }
        }
        for f in std::iter::from_fn(|| hs.poll_transmit(server, cs, WALL)).collect::<Vec<_>>() {
            hc.handle_frame(client, cc, WALL, &f);
        }
        seen_c.extend(events(&mut hc, cc));
        if accepted && hc.state(cc) == ConnState::Synced && hs.state(cs) == ConnState::Synced {
            return ((hc, cc, hs, cs), seen_c, seen_s);
        }
    }
    panic!("no sync: {:?} {:?}", hc.state(cc), hs.state(cs));
}

#[test]
fn garbage_truncated_oversized_and_foreign_frames_close_with_an_error_naming_the_problem() {
    let (code, message, server) = answer_to(&[PROTOCOL_VERSION, 0x7f, 1, 2, 3]);
    assert_eq!(code, codes::MALFORMED);
    assert!(message.contains("sync frame") && message.contains("unknown type tag"), "{message}");
    assert!(server.map_names().is_empty());

    let hello = Frame::Hello { version: PROTOCOL_VERSION, node_id: "client".into(), token: None }.encode();
    let (code, message, _) = answer_to(&hello[..hello.len() - 3]);
    assert_eq!(code, codes::MALFORMED);
    assert!(message.contains("truncated"), "{message}");

    let mut trailing = hello.clone();
    trailing.push(0);
    let (code, message, _) = answer_to(&trailing);
    assert_eq!(code, codes::MALFORMED);
    assert!(message.contains("1 unexpected bytes after the end"), "{message}");

    let (code, message, _) = answer_to(&vec![PROTOCOL_VERSION; DEFAULT_FRAME_LIMIT + 1]);
    assert_eq!(code, codes::MALFORMED);
    assert!(message.contains("more than the limit of 1048576"), "{message}");

    let mut foreign = hello.clone();
    foreign[0] = 9;
    let (code, message, _) = answer_to(&foreign);
    assert_eq!(code, codes::VERSION);
    assert!(message.contains("protocol version 9") && message.contains("version 1"), "{message}");

    let (code, message, _) = answer_to(&[]);
    assert_eq!(code, codes::MALFORMED);
    assert!(message.contains("empty"), "{message}");

    let bad_node = Frame::Hello { version: PROTOCOL_VERSION, node_id: "no spaces".into(), token: None }.encode();
    let (code, message, _) = answer_to(&bad_node);
    assert_eq!(code, codes::MALFORMED);
    assert!(message.contains("invalid node id"), "{message}");
}

#[test]
fn a_bad_frame_after_the_handshake_leaves_the_grid_untouched() {
    let (mut client, mut server) = (grid("client"), grid("server"));
    server.lww("m", WALL).expect("lww").0.set(&mut grid("x").clock().clone(), WALL, "k", Value::from(1), None).ok();
    let (_, _, mut hs, cs) = connected(&mut client, &mut server, Permissions::all());
    let before = server.export_map("m").expect("export");
    // A Writes frame whose snapshot is cut short.
    let mut payload = client.export_map("m").expect("export");
    payload.truncate(payload.len() - 2);
    hs.handle_frame(&mut server, cs, WALL, &Frame::Writes { map: "m".into(), payload }.encode());
    assert_eq!(hs.state(cs), ConnState::Closed);
    assert!(
        matches!(frames(&mut hs, &mut server, cs).last(), Some(Frame::Error { code, .. }) if code == codes::MALFORMED)
    );
    assert_eq!(server.export_map("m").expect("export"), before);
}

#[test]
fn nothing_is_applied_before_accept_and_a_refusal_closes() {
    let mut client = grid("client");
    client
        .lww("m", WALL)
        .expect("lww")
        .0
        .set(
            &mut onegrid_core::Hlc::new(NodeId::new("client").expect("n"), ClockConfig::default()),
            WALL,
            "k",
            Value::from(1),
            None,
        )
        .expect("set");
    let payload = client.export_map("m").expect("export");

    // A frame of data before the driver decided: refused, nothing applied.
    let mut server = grid("server");
    let mut hs = Hub::new(SyncConfig::default());
    let cs = hs.incoming(&mut server);
    let hello = Frame::Hello { version: PROTOCOL_VERSION, node_id: "client".into(), token: Some("t".into()) };
    hs.handle_frame(&mut server, cs, WALL, &hello.encode());
    assert!(
        matches!(&events(&mut hs, cs)[..], [Event::Hello { node_id, token }] if node_id == "client" && token.as_deref() == Some("t"))
    );
    hs.handle_frame(&mut server, cs, WALL, &Frame::Writes { map: "m".into(), payload }.encode());
    assert_eq!(hs.state(cs), ConnState::Closed);
    assert!(server.map("m").is_none());
    assert!(
        matches!(frames(&mut hs, &mut server, cs).last(), Some(Frame::Error { message, .. }) if message.contains("before the connection was accepted"))
    );

    // A refusal: an error frame, then closed on both sides.
    let mut hc = Hub::new(SyncConfig::default());
    let cc = hc.connect(&mut client, None);
    let cs = hs.incoming(&mut server);
    for f in frames(&mut hc, &mut client, cc) {
        hs.handle_frame(&mut server, cs, WALL, &f.encode());
    }
    hs.refuse(cs, "bad token");
    let sent = frames(&mut hs, &mut server, cs);
    assert!(matches!(&sent[..], [Frame::Error { code, message }] if code == codes::REFUSED && message == "bad token"));
    hc.handle_frame(&mut client, cc, WALL, &sent[0].encode());
    assert_eq!(hc.state(cc), ConnState::Closed);
    assert!(
        events(&mut hc, cc)
            .iter()
            .any(|e| matches!(e, Event::Closed { by_peer: true, code, .. } if code == codes::REFUSED))
    );
    assert!(server.map("m").is_none());
}

fn set(g: &mut Grid, map: &str, key: &str, value: i64) {
    let (m, clock) = g.lww(map, WALL).expect("lww");
    m.set(clock, WALL, key, Value::from(value), None).expect("set");
}

#[test]
fn permissions_limit_what_is_read_and_written() {
    let (mut client, mut server) = (grid("client"), grid("server"));
    set(&mut client, "public:a", "k", 1);
    set(&mut client, "private", "k", 2);
    set(&mut server, "secret", "k", 3);
    set(&mut server, "shared", "k", 4);
    let permissions = Permissions::new(Some(vec!["public*".into(), "shared".into()]), Some(vec!["public*".into()]));
    let (_hc, _cc, mut hs, cs) = connected(&mut client, &mut server, permissions);
    assert!(server.map("public:a").is_some());
    assert!(server.map("private").is_none(), "a map the client may not write reached the server");
    assert!(client.map("shared").is_some());
    assert!(client.map("secret").is_none(), "a map the client may not read reached it");

    // A client that writes anyway is refused, naming the map, and nothing is applied.
    let payload = client.export_map("private").expect("export");
    hs.handle_frame(&mut server, cs, WALL, &Frame::Writes { map: "private".into(), payload }.encode());
    let sent = frames(&mut hs, &mut server, cs);
    assert!(
        matches!(sent.last(), Some(Frame::Error { code, message }) if code == codes::FORBIDDEN && message.contains("\"private\"")),
        "{sent:?}"
    );
    assert!(server.map("private").is_none());
}

#[test]
fn a_map_the_peer_may_write_but_not_read_is_never_named_to_it() {
    let (mut client, mut server) = (grid("client"), grid("server"));
    set(&mut server, "inbox", "k", 1);
    set(&mut client, "feed", "k", 2);
    // The client may write everything and read nothing but "feed".
    let permissions = Permissions::new(Some(vec!["feed".into()]), None);
    let ((mut hc, cc, mut hs, cs), _, _) = connected_with_events(&mut client, &mut server, permissions);
    assert!(client.map("inbox").is_none(), "a map the client may not read was made on it");
    // Nor does a map the server may not send to the client get opened later.
    set(&mut server, "inbox2", "k", 3);
    let to_client = frames(&mut hs, &mut server, cs);
    assert!(to_client.iter().all(|f| f.map() != Some("inbox2")), "{to_client:?}");
    for f in to_client {
        hc.handle_frame(&mut client, cc, WALL, &f.encode());
    }
    assert!(client.map("inbox2").is_none());

    // The other way: a client that may not write "feed" does not make it on the server.
    let (mut client, mut server) = (grid("client"), grid("server"));
    set(&mut client, "mine", "k", 1);
    let permissions = Permissions::new(None, Some(vec!["other".into()]));
    let (mut hc, cc, _, _) = connected(&mut client, &mut server, permissions);
    assert!(server.map("mine").is_none(), "a map the client may not write was made on the server");
    // Nor are its later writes pushed (the server would refuse them).
    set(&mut client, "mine", "k2", 2);
    let sent = frames(&mut hc, &mut client, cc);
    assert!(sent.iter().all(|f| f.map() != Some("mine")), "{sent:?}");
}

/// A Writes frame from a writer whose clock is an hour ahead.
fn drifted_writes() -> Vec<u8> {
    let mut future = grid("future");
    let (m, clock) = future.lww("m", WALL + 3_600_000).expect("lww");
    m.set(clock, WALL + 3_600_000, "k", Value::from(1), None).expect("set");
    Frame::Writes { map: "m".into(), payload: future.export_map("m").expect("export") }.encode()
}

#[test]
fn strict_drift_refuses_the_whole_frame_and_lenient_applies_and_reports() {
    let mut client = grid("client");
    let mut strict =
        Grid::new(NodeId::new("server").expect("n"), ClockConfig { strict: true, ..ClockConfig::default() });
    set(&mut strict, "m", "other", 0);
    let before = strict.export_map("m").expect("export");
    let (_, _, mut hs, cs) = connected(&mut client, &mut strict, Permissions::all());
    hs.handle_frame(&mut strict, cs, WALL, &drifted_writes());
    let sent = frames(&mut hs, &mut strict, cs);
    assert!(
        matches!(sent.last(), Some(Frame::Error { code, message }) if code == codes::CLOCK_DRIFT && message.contains("clock drift")),
        "{sent:?}"
    );
    assert_eq!(strict.export_map("m").expect("export"), before);

    let mut client = grid("client");
    let mut lenient = grid("server");
    let (_, _, mut hs, cs) = connected(&mut client, &mut lenient, Permissions::all());
    hs.handle_frame(&mut lenient, cs, WALL, &drifted_writes());
    assert_ne!(hs.state(cs), ConnState::Closed);
    assert!(events(&mut hs, cs).iter().any(|e| matches!(e, Event::Drift(d) if d.ahead_ms == 3_600_000)));
    assert!(lenient.lww("m", WALL).expect("lww").0.get("k", WALL).is_some());
}

#[test]
fn a_kind_mismatch_is_reported_on_both_sides_and_never_merged() {
    let (mut a, mut b) = (grid("a"), grid("b"));
    set(&mut a, "m", "k", 1);
    let (m, clock) = b.or("m", WALL).expect("or");
    m.add(clock, WALL, "k", Value::from(2), None).expect("add");
    let (_, on_a, on_b) = connected_with_events(&mut a, &mut b, Permissions::all());
    let mismatch = |e: &Event| matches!(e, Event::KindMismatch { map, .. } if map == "m");
    assert!(on_a.iter().any(mismatch), "{on_a:?}");
    assert!(on_b.iter().any(mismatch), "{on_b:?}");
    assert!(a.lww("m", WALL).is_ok() && b.or("m", WALL).is_ok());
}

#[test]
fn a_map_found_mismatched_after_its_first_push_is_pushed_no_more() {
    let (mut a, mut b) = (grid("a"), grid("b"));
    // `b` holds an OR map "m" that `a` may not read, so the connection syncs without meeting it.
    let (m, clock) = b.or("m", WALL).expect("or");
    m.add(clock, WALL, "k", Value::from(1), None).expect("add");
    let permissions = Permissions::new(Some(Vec::new()), None);
    let (mut ha, ca, mut hb, cb) = connected(&mut a, &mut b, permissions);
    // `a` makes an LWW "m" (it goes out as a catch-up), then writes it again before `b` answers:
    // that write is pushed, and the connection remembers that "m" is sent.
    set(&mut a, "m", "k1", 1);
    let mut pushed = frames(&mut ha, &mut a, ca);
    set(&mut a, "m", "k2", 2);
    let writes = frames(&mut ha, &mut a, ca);
    assert!(writes.iter().any(|f| matches!(f, Frame::Writes { map, .. } if map == "m")), "{writes:?}");
    pushed.extend(writes);
    for f in pushed {
        hb.handle_frame(&mut b, cb, WALL, &f.encode());
    }
    for f in frames(&mut hb, &mut b, cb) {
        ha.handle_frame(&mut a, ca, WALL, &f.encode());
    }
    assert!(events(&mut ha, ca).iter().any(|e| matches!(e, Event::KindMismatch { map, .. } if map == "m")));
    // What it remembered is forgotten with the mismatch: the next write stays home.
    set(&mut a, "m", "k3", 3);
    let sent = frames(&mut ha, &mut a, ca);
    assert!(sent.iter().all(|f| f.map() != Some("m")), "{sent:?}");
    assert!(b.or("m", WALL).is_ok(), "the OR map was never merged with LWW records");
}

/// One round between a server hub and its clients: each client's frames go in (the server takes
/// them as one batch, as `onegrid serve` does), hellos are accepted, and the server's frames go
/// out. Answers what the server sent to each client.
fn relay_round(
    server: &mut Grid,
    hs: &mut Hub,
    clients: &mut [(&mut Grid, &mut Hub, ConnId, ConnId)],
) -> Vec<Vec<Frame>> {
    let mut batch = Vec::new();
    for (grid, hub, conn, on_server) in clients.iter_mut() {
        for f in std::iter::from_fn(|| hub.poll_transmit(grid, *conn, WALL)) {
            batch.push((*on_server, f));
        }
    }
    hs.handle_frames(server, WALL, batch.iter().map(|(c, f)| (*c, f.as_slice())));
    let mut sent = Vec::new();
    for (grid, hub, conn, on_server) in clients.iter_mut() {
        for e in events(hs, *on_server) {
            if matches!(e, Event::Hello { .. }) {
                hs.accept(server, *on_server, Permissions::all());
            }
        }
        let out: Vec<Vec<u8>> = std::iter::from_fn(|| hs.poll_transmit(server, *on_server, WALL)).collect();
        for f in &out {
            hub.handle_frame(grid, *conn, WALL, f);
        }
        sent.push(out.iter().map(|f| Frame::decode(f, usize::MAX).expect("frame")).collect());
    }
    sent
}

#[test]
fn a_relayed_write_reaches_the_other_peers_and_never_goes_back_to_its_writer() {
    let mut server = grid("server");
    for i in 0..20 {
        set(&mut server, &format!("other{i}"), "k", i);
    }
    let mut hs = Hub::new(SyncConfig::default());
    let (mut a, mut b) = (grid("a"), grid("b"));
    let (mut ha, mut hb) = (Hub::new(SyncConfig::default()), Hub::new(SyncConfig::default()));
    let (ca, cb) = (ha.connect(&mut a, None), hb.connect(&mut b, None));
    let (sa, sb) = (hs.incoming(&mut server), hs.incoming(&mut server));
    set(&mut a, "m", "k0", 0);
    let mut clients = [(&mut a, &mut ha, ca, sa), (&mut b, &mut hb, cb, sb)];
    for _ in 0..20 {
        relay_round(&mut server, &mut hs, &mut clients);
    }
    assert!(clients.iter().all(|(_, hub, conn, _)| hub.state(*conn) == ConnState::Synced));

    set(clients[0].0, "m", "k1", 1);
    let mut to_a = Vec::new();
    for _ in 0..4 {
        to_a.extend(relay_round(&mut server, &mut hs, &mut clients).swap_remove(0));
    }
    let value = clients[1].0.lww("m", WALL).expect("lww").0.get("k1", WALL);
    assert_eq!(value, Some(Value::from(1)), "the other client has the write");
    assert!(to_a.iter().all(|f| !matches!(f, Frame::Writes { .. })), "the write went back to its writer: {to_a:?}");
}

#[test]
fn writes_are_pushed_and_acknowledged() {
    let (mut a, mut b) = (grid("a"), grid("b"));
    let (mut ha, ca, mut hb, cb) = connected(&mut a, &mut b, Permissions::all());
    set(&mut a, "m", "k", 7);
    let marker = ha.marker(&mut a);
    assert_eq!(ha.pending_writes(ca), 1);
    assert!(!ha.is_acked(ca, marker));
    for _ in 0..4 {
        for f in std::iter::from_fn(|| ha.poll_transmit(&mut a, ca, WALL)).collect::<Vec<_>>() {
            hb.handle_frame(&mut b, cb, WALL, &f);
        }
        for f in std::iter::from_fn(|| hb.poll_transmit(&mut b, cb, WALL)).collect::<Vec<_>>() {
            ha.handle_frame(&mut a, ca, WALL, &f);
        }
    }
    assert_eq!(b.lww("m", WALL).expect("lww").0.get("k", WALL), Some(Value::from(7)));
    assert!(ha.is_acked(ca, marker));
    assert_eq!(ha.pending_writes(ca), 0);
    assert_eq!(ha.state(ca), ConnState::Synced);
}

#[test]
fn a_map_made_while_connected_travels_once() {
    let (mut a, mut b) = (grid("a"), grid("b"));
    let (mut ha, ca, mut hb, cb) = connected(&mut a, &mut b, Permissions::all());
    for i in 0..100 {
        set(&mut a, "new", &format!("k{i}"), i);
    }
    let snapshot = a.export_map("new").expect("export").len();
    let mut carried = 0;
    for _ in 0..10 {
        for f in std::iter::from_fn(|| ha.poll_transmit(&mut a, ca, WALL)).collect::<Vec<_>>() {
            if let Ok(Frame::Writes { payload, .. } | Frame::Records { payload, .. }) = Frame::decode(&f, usize::MAX) {
                carried += payload.len();
            }
            hb.handle_frame(&mut b, cb, WALL, &f);
        }
        for f in std::iter::from_fn(|| hb.poll_transmit(&mut b, cb, WALL)).collect::<Vec<_>>() {
            ha.handle_frame(&mut a, ca, WALL, &f);
        }
    }
    assert_eq!(ha.state(ca), ConnState::Synced);
    assert_eq!(b.export_map("new").expect("export").len(), snapshot);
    // The peer's catch-up made the map on b: b does not open a second one that sends it back.
    assert!(carried < snapshot * 3 / 2, "{carried} bytes of records for a snapshot of {snapshot}");
}

#[test]
fn an_idle_pair_syncs_with_few_bytes() {
    let (mut a, mut b) = (grid("a"), grid("b"));
    let (to_b, to_a, _) = sync_pair(&mut a, &mut b, SyncConfig::default(), WALL);
    assert!(to_b + to_a < 100, "{to_b} + {to_a}");
}

#[test]
fn idle_connections_cost_little() {
    // 200 clients synced with one server grid: the log keeps nothing, each connection its struct.
    let mut server = grid("server");
    set(&mut server, "m", "k", 1);
    let mut hs = Hub::new(SyncConfig::default());
    let mut clients = Vec::new();
    for i in 0..200 {
        let mut client = grid(&format!("c{i}"));
        let mut hc = Hub::new(SyncConfig::default());
        let cc = hc.connect(&mut client, None);
        let cs = hs.incoming(&mut server);
        for _ in 0..10 {
            for f in std::iter::from_fn(|| hc.poll_transmit(&mut client, cc, WALL)).collect::<Vec<_>>() {
                hs.handle_frame(&mut server, cs, WALL, &f);
            }
            for e in events(&mut hs, cs) {
                if let Event::Hello { .. } = e {
                    hs.accept(&mut server, cs, Permissions::all());
                }
            }
            for f in std::iter::from_fn(|| hs.poll_transmit(&mut server, cs, WALL)).collect::<Vec<_>>() {
                hc.handle_frame(&mut client, cc, WALL, &f);
            }
        }
        assert_eq!(hs.state(cs), ConnState::Synced);
        clients.push((client, hc, cc));
    }
    assert_eq!(hs.log_len(), 0);
    let size = std::mem::size_of::<onegrid_core::sync::Connection>();
    println!("an idle connection: {size} bytes of struct");
    assert!(size < 2_048);
}

#[test]
fn a_connecting_side_is_never_synced_before_the_maps_it_lacks_have_arrived() {
    // The accepting side answers RootsEnd with the roots of its other maps; the Ack of RootsEnd
    // must not overtake them, or the connecting side would call itself synced too early.
    let (mut client, mut server) = (grid("client"), grid("server"));
    set(&mut server, "m", "k", 1);
    let (mut hc, mut hs) = (Hub::new(SyncConfig::default()), Hub::new(SyncConfig::default()));
    let cc = hc.connect(&mut client, None);
    let cs = hs.incoming(&mut server);
    for _ in 0..100 {
        // One frame at a time each way, so an overtaking Ack would be seen on its own.
        if let Some(f) = hc.poll_transmit(&mut client, cc, WALL) {
            hs.handle_frame(&mut server, cs, WALL, &f);
        }
        for e in events(&mut hs, cs) {
            if let Event::Hello { .. } = e {
                hs.accept(&mut server, cs, Permissions::all());
            }
        }
        if let Some(f) = hs.poll_transmit(&mut server, cs, WALL) {
            hc.handle_frame(&mut client, cc, WALL, &f);
        }
        if events(&mut hc, cc).contains(&Event::Synced) || hc.state(cc) == ConnState::Synced {
            assert_eq!(client.lww("m", WALL).expect("lww").0.get("k", WALL), Some(Value::from(1)), "synced without m");
            return;
        }
    }
    panic!("never synced: {:?}", hc.state(cc));
}

#[test]
fn a_write_counts_as_acknowledged_only_once_the_frame_carrying_it_is() {
    // Writes to two maps go out in one push as two frames: the first one's acknowledgement must
    // not vouch for the second map's write.
    let (mut a, mut b) = (grid("a"), grid("b"));
    set(&mut a, "m1", "k", 0);
    set(&mut a, "m2", "k", 0);
    let (mut ha, ca, mut hb, cb) = connected(&mut a, &mut b, Permissions::all());
    set(&mut a, "m1", "k", 1);
    set(&mut a, "m2", "k", 2);
    let marker = ha.marker(&mut a);
    let sent = std::iter::from_fn(|| ha.poll_transmit(&mut a, ca, WALL)).collect::<Vec<_>>();
    assert_eq!(sent.len(), 2, "a frame per map");
    hb.handle_frame(&mut b, cb, WALL, &sent[0]);
    for f in std::iter::from_fn(|| hb.poll_transmit(&mut b, cb, WALL)).collect::<Vec<_>>() {
        ha.handle_frame(&mut a, ca, WALL, &f);
    }
    assert!(!ha.is_acked(ca, marker), "acknowledged before m2's write arrived");
    assert_eq!(ha.pending_writes(ca), 1);
    hb.handle_frame(&mut b, cb, WALL, &sent[1]);
    for f in std::iter::from_fn(|| hb.poll_transmit(&mut b, cb, WALL)).collect::<Vec<_>>() {
        ha.handle_frame(&mut a, ca, WALL, &f);
    }
    assert!(ha.is_acked(ca, marker));
    assert_eq!(ha.pending_writes(ca), 0);
}
