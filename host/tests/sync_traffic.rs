//! Bad traffic at `onegrid serve`'s `/sync`: garbage, truncated, oversized and foreign-version
//! frames, a text message, data before the hello, a client that never says hello, one that
//! disconnects in the middle of a catch-up, one that never reads, many that vanish while the
//! server writes to them. Each closes that connection
//! (with an error frame where one applies) and is logged; the server and two good clients keep
//! syncing throughout.
// In tests a panic is the failure report: unwrap means "this must succeed".
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/sync.rs"]
mod support;

use std::time::{Duration, Instant};

use common::fresh_dir;
use futures_util::SinkExt as _;
use onegrid_core::Value;
use onegrid_core::sync::frame::{DEFAULT_FRAME_LIMIT, codes};
use onegrid_core::sync::{ConnState, Frame, PROTOCOL_VERSION};
use support::{Peer, Server, error_of, raw, sqlite, until_closed};
use tokio_tungstenite::tungstenite::Message;

const T: Duration = Duration::from_secs(20);

/// The good clients still sync: `a` writes, `b` sees it, and the other way.
async fn still_syncing(a: &mut Peer, b: &mut Peer, n: u32) {
    a.set("m", &format!("from-a-{n}"), i64::from(n));
    b.set("m", &format!("from-b-{n}"), i64::from(n));
    let start = Instant::now();
    while a.get("m", &format!("from-b-{n}")).is_none() || b.get("m", &format!("from-a-{n}")).is_none() {
        assert!(start.elapsed() < T, "round {n}: the good clients stopped syncing");
        a.step(Duration::from_millis(5)).await;
        b.step(Duration::from_millis(5)).await;
    }
}

fn hello(node: &str) -> Vec<u8> {
    Frame::Hello { version: PROTOCOL_VERSION, node_id: node.into(), token: None }.encode()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_traffic_closes_only_its_own_connection() {
    let dir = fresh_dir("sync-traffic");
    let server = Server::start(&sqlite(&dir), &["--hello-timeout-ms", "500", "--max-send-queue-mib", "1"]);
    let url = server.url();
    let (mut a, mut b) = (Peer::new("good-a"), Peer::new("good-b"));
    a.connect(&url, None).await;
    b.connect(&url, None).await;
    still_syncing(&mut a, &mut b, 0).await;

    // Frames that do not decode, or do not belong: an error frame naming the problem, then closed.
    let truncated = {
        let h = hello("x");
        h[..h.len() - 2].to_vec()
    };
    let mut foreign = hello("x");
    foreign[0] = 9;
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        ("garbage", vec![PROTOCOL_VERSION, 0x7f, 1, 2, 3], codes::MALFORMED, "unknown type tag"),
        ("truncated", truncated, codes::MALFORMED, "truncated"),
        ("another version", foreign, codes::VERSION, "protocol version 9"),
        ("empty", Vec::new(), codes::MALFORMED, "empty"),
        ("over the limit", vec![PROTOCOL_VERSION; DEFAULT_FRAME_LIMIT + 1], codes::MALFORMED, "more than the limit"),
        ("data before hello", Frame::RootsEnd.encode(), codes::MALFORMED, "not expected"),
    ];
    for (n, (what, bytes, code, says)) in cases.into_iter().enumerate() {
        let mut ws = raw(&url).await;
        ws.send(Message::Binary(bytes.into())).await.unwrap();
        let (frames, closed) = until_closed(&mut ws, T).await;
        assert!(closed, "{what}: not closed");
        let (got, message) = error_of(&frames).unwrap_or_else(|| panic!("{what}: no error frame in {frames:?}"));
        assert_eq!(got, code, "{what}: {message}");
        assert!(message.contains(says), "{what}: {message}");
        still_syncing(&mut a, &mut b, n as u32 + 1).await;
    }

    // A message far over the limit is cut by the WebSocket layer: closed, without an error frame.
    let mut ws = raw(&url).await;
    let _ = ws.send(Message::Binary(vec![PROTOCOL_VERSION; 3 * DEFAULT_FRAME_LIMIT].into())).await;
    let (_, closed) = until_closed(&mut ws, T).await;
    assert!(closed, "a huge message: not closed");
    still_syncing(&mut a, &mut b, 10).await;

    // A text message after a good hello.
    let mut ws = raw(&url).await;
    ws.send(Message::Binary(hello("texter").into())).await.unwrap();
    ws.send(Message::Text("hello?".into())).await.unwrap();
    let (frames, closed) = until_closed(&mut ws, T).await;
    assert!(closed);
    let (code, message) = error_of(&frames).expect("an error frame");
    assert_eq!(code, codes::MALFORMED);
    assert!(message.contains("text message"), "{message}");
    still_syncing(&mut a, &mut b, 11).await;

    // Never says hello: refused after the hello timeout.
    let mut ws = raw(&url).await;
    let (frames, closed) = until_closed(&mut ws, T).await;
    assert!(closed);
    let (code, message) = error_of(&frames).expect("an error frame");
    assert_eq!(code, codes::REFUSED);
    assert!(message.contains("no Hello"), "{message}");
    still_syncing(&mut a, &mut b, 12).await;

    // Leaves in the middle of a catch-up of a big map.
    let mut big = Peer::new("leaver");
    for i in 0..5_000 {
        big.set("big", &format!("k{i}"), i);
    }
    big.connect(&url, None).await;
    big.step(Duration::from_millis(30)).await;
    big.disconnect();
    server.wait_for_log(&["event=close", "node=leaver"], T);
    still_syncing(&mut a, &mut b, 13).await;

    // Never reads: its queue passes the limit (1 MiB here) and it is closed.
    let mut slow = raw(&url).await;
    slow.send(Message::Binary(hello("sloth").into())).await.unwrap();
    server.wait_for_log(&["event=accept", "node=sloth"], T);
    let blob = "x".repeat(16 << 10);
    let start = Instant::now();
    let mut i = 0;
    while !server.log().contains("code=SLOW") {
        assert!(start.elapsed() < T, "the slow client was not closed:\n{}", server.log());
        for _ in 0..20 {
            i += 1;
            a.set("bulk", &format!("b{i}"), blob.as_str());
        }
        a.step(Duration::from_millis(5)).await;
        b.step(Duration::from_millis(1)).await;
    }
    drop(slow);
    still_syncing(&mut a, &mut b, 14).await;
    assert_eq!(b.get("m", "from-a-14"), Some(Value::from(14)));

    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    for needle in ["code=MALFORMED", "code=VERSION", "code=REFUSED", "node=leaver", "code=SLOW", "node=texter"] {
        assert!(log.contains(needle), "{needle} in the log:\n{log}");
    }
}

/// Clients that vanish (no close frame, unread data in flight) while the server is sending them a
/// catch-up: each one is noticed, logged and let go, whichever of the server's reader and writer
/// meets the dead socket first, and its node id may connect again at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vanished_client_is_let_go() {
    const CLIENTS: usize = 40;
    let dir = fresh_dir("sync-vanish");
    let server = Server::start(&sqlite(&dir), &[]);
    let url = server.url();
    let mut seeder = Peer::new("seeder");
    let blob = "v".repeat(512);
    for i in 0..4_000 {
        seeder.set("big", &format!("k{i}"), blob.as_str());
    }
    seeder.connect(&url, None).await;
    assert!(seeder.until(T, |p| p.synced() && p.pending() == 0).await, "the seeder's writes were not acknowledged");

    for i in 0..CLIENTS {
        let mut peer = Peer::new(&format!("vanisher-{i}"));
        peer.connect(&url, None).await;
        // Accepted, and into the catch-up: the server is writing to it when it vanishes.
        assert!(peer.until(T, |p| p.state() != ConnState::Connecting).await, "vanisher-{i} was not accepted");
        peer.step(Duration::from_millis(5)).await;
        peer.disconnect();
    }
    for i in 0..CLIENTS {
        server.wait_for_log(&["event=close", &format!("node=vanisher-{i} ")], T);
    }
    let mut again = Peer::new("vanisher-0");
    again.connect(&url, None).await;
    assert!(again.until(T, |p| p.synced()).await, "vanisher-0 could not connect again: {:?}", again.refusal());
    assert_eq!(again.get("big", "k3999"), Some(Value::from(blob.as_str())));
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}
