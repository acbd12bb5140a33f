//! Sync through `onegrid serve` (a real process on a loopback port, its grid in a real SQLite file;
//! PostgreSQL where `ONEGRID_TEST_POSTGRES` names a server): clients that are native grids with
//! their hubs, over real WebSockets. Convergence both ways through the server, across a server
//! restart and writes made while it was down; the handshake's tokens and permissions; a second
//! connection of a node id; the drain on SIGTERM.
// In tests a panic is the failure report: unwrap means "this must succeed".
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/sync.rs"]
mod support;

use std::time::Duration;

use common::fresh_dir;
use onegrid_core::Value;
use onegrid_core::sync::frame::codes;
use serde_json::json;
use support::{Peer, SECRET, Server, settle, sqlite, token, token_with};

const T: Duration = Duration::from_secs(20);

/// Both have the maps, with the same roots.
fn same(a: &mut Peer, b: &mut Peer, maps: &[&str]) -> bool {
    maps.iter().all(|m| a.root(m).is_some() && a.root(m) == b.root(m))
}

/// Steps both until they are synced, have nothing unacknowledged and hold the same `maps`.
async fn converged(a: &mut Peer, b: &mut Peer, maps: &[&str], what: &str) {
    let start = std::time::Instant::now();
    while !(a.synced() && b.synced() && a.pending() == 0 && b.pending() == 0 && same(a, b, maps)) {
        assert!(start.elapsed() < T, "{what}: {:?} {:?}", (a.state(), a.pending()), (b.state(), b.pending()));
        a.step(Duration::from_millis(5)).await;
        b.step(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_converge_both_ways_across_a_restart_and_offline_writes() {
    let dir = fresh_dir("sync-converge");
    let db = sqlite(&dir);
    converge(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_converge_through_a_server_on_postgresql() {
    let Some(url) = postgres_url("sync_converge") else { return };
    converge(&url).await;
}

async fn converge(storage: &str) {
    let server = Server::start(storage, &[]);
    let (mut a, mut b) = (Peer::new("alice"), Peer::new("bob"));
    a.set("todos", "t1", "milk");
    a.add("tags", "t1", "red");
    a.connect(&server.url(), None).await;
    b.connect(&server.url(), None).await;
    b.set("todos", "t2", "eggs");
    b.add("tags", "t1", "blue");
    converged(&mut a, &mut b, &["todos", "tags"], "first sync").await;
    for p in [&mut a, &mut b] {
        assert_eq!(p.get("todos", "t1"), Some(Value::from("milk")));
        assert_eq!(p.get("todos", "t2"), Some(Value::from("eggs")));
        assert_eq!(p.or_get("tags", "t1"), [Value::from("blue"), Value::from("red")]);
    }

    // LWW: the later write wins everywhere; OR: a removal reaches the other side.
    a.set("todos", "t1", "oat milk");
    b.or_remove("tags", "t1", "red");
    converged(&mut a, &mut b, &["todos", "tags"], "second round").await;
    assert_eq!(a.get("todos", "t1"), Some(Value::from("oat milk")));
    assert_eq!(b.get("todos", "t1"), Some(Value::from("oat milk")));
    assert_eq!(b.or_get("tags", "t1"), [Value::from("blue")]);
    assert_eq!(a.or_get("tags", "t1"), [Value::from("blue")]);

    // The server goes down; both write meanwhile; it comes back on the same storage.
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    a.step(Duration::from_millis(50)).await;
    b.step(Duration::from_millis(50)).await;
    a.set("todos", "offline-a", 1);
    b.add("tags", "offline-b", "green");
    b.set("todos", "t2", "brown eggs");
    let server = Server::start(storage, &[]);
    assert!(server.log().contains("event=map_loaded map=todos"), "{}", server.log());
    a.connect(&server.url(), None).await;
    b.connect(&server.url(), None).await;
    converged(&mut a, &mut b, &["todos", "tags"], "after the restart").await;
    for p in [&mut a, &mut b] {
        assert_eq!(p.get("todos", "offline-a"), Some(Value::from(1)));
        assert_eq!(p.get("todos", "t2"), Some(Value::from("brown eggs")));
        assert_eq!(p.or_get("tags", "offline-b"), [Value::from("green")]);
    }

    // A new client that has nothing gets every map the server stored, loaded at its start.
    let (status, _) = server.terminate();
    assert!(status.success());
    let server = Server::start(storage, &[]);
    let mut c = Peer::new("carol");
    c.connect(&server.url(), None).await;
    settle(&mut [&mut c], T, "a fresh client", |p| p.synced()).await;
    assert!(same(&mut a, &mut c, &["todos", "tags"]), "nothing was lost");
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    let events: Vec<&str> = log.lines().filter_map(|l| l.split(" event=").nth(1)?.split(' ').next()).collect();
    for event in ["connect", "accept", "close", "draining", "flushed", "stopped"] {
        assert!(events.contains(&event), "{event} in {log}");
    }
}

/// A URL of a fresh schema on the server at `$ONEGRID_TEST_POSTGRES`, or `None` without one.
fn postgres_url(name: &str) -> Option<String> {
    let admin = std::env::var("ONEGRID_TEST_POSTGRES").ok().filter(|u| !u.is_empty())?;
    let schema = format!("{name}_{}", std::process::id());
    let (url, sql) = (admin.clone(), format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"));
    // The blocking client runs a runtime of its own: not on this test's.
    std::thread::spawn(move || postgres::Client::connect(&url, postgres::NoTls).unwrap().batch_execute(&sql).unwrap())
        .join()
        .unwrap();
    let sep = if admin.contains('?') { '&' } else { '?' };
    Some(format!("{admin}{sep}options=-c%20search_path%3D{schema}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_in_the_handshake_and_each_bad_one_refused() {
    let dir = fresh_dir("sync-auth");
    let server = Server::start(&sqlite(&dir), &["--jwt-secret", SECRET]);
    let url = server.url();
    let exp = support::now_ms() / 1000 + 3600;
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    let forged = token_with("another secret", json!({}));
    let expired = token(json!({"exp": support::now_ms() / 1000 - 10}));
    let none_alg = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(&json!({"exp": exp}).to_string()));
    let hs512 = {
        let good = token(json!({}));
        let rest = good.split_once('.').unwrap().1;
        format!("{}.{rest}", b64(r#"{"alg":"HS512","typ":"JWT"}"#))
    };
    let cases: [(&str, Option<String>, &str); 5] = [
        ("missing", None, "needs a token"),
        ("malformed", Some("not-a-jwt".into()), "malformed"),
        ("forged", Some(forged), "signature does not match"),
        ("expired", Some(expired), "expired"),
        ("another algorithm", Some(none_alg), "only HS256"),
    ];
    for (what, token, says) in cases.into_iter().chain([("HS512", Some(hs512), "only HS256")]) {
        let mut p = Peer::new("mallory");
        p.set("m", "k", "not applied");
        p.connect(&url, token).await;
        assert!(p.until(T, |p| p.refusal().is_some()).await, "{what}: no refusal");
        let (code, message) = p.refusal().unwrap();
        assert_eq!(code, onegrid_host::serve::sync::UNAUTHORIZED, "{what}: {message}");
        assert!(message.contains(says), "{what}: {message}");
    }
    // None of them wrote anything, and a good token syncs.
    let mut ok = Peer::new("olga");
    ok.connect(&url, Some(token(json!({})))).await;
    settle(&mut [&mut ok], T, "a good token", |p| p.synced()).await;
    assert!(ok.root("m").is_none(), "a refused client's map reached the server");
    let refusals = server.events("refuse");
    assert!(refusals.len() >= 6 && refusals.iter().all(|l| l.contains("code=UNAUTHORIZED")), "{}", server.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_from_the_claims_limit_what_is_read_and_written() {
    let dir = fresh_dir("sync-permissions");
    let server = Server::start(&sqlite(&dir), &["--jwt-secret", SECRET]);
    let url = server.url();
    // An administrator (no read or write claims: every map) writes maps of every kind of name.
    let mut admin = Peer::new("admin");
    for map in ["public", "public:news", "todo:ann", "todo", "secret", "shared"] {
        admin.set(map, "k", map);
    }
    admin.connect(&url, Some(token(json!({})))).await;
    settle(&mut [&mut admin], T, "the administrator", |p| p.synced() && p.pending() == 0).await;

    // Reads public* and shared, writes todo:* only.
    let mut ann = Peer::new("ann");
    ann.set("todo:ann", "mine", 1);
    ann.set("todo", "not mine", 2);
    ann.set("public", "k", "defaced");
    ann.connect(&url, Some(token(json!({"read": ["public*", "shared"], "write": ["todo:*"]})))).await;
    settle(&mut [&mut ann, &mut admin], T, "ann", |p| p.synced()).await;
    settle(&mut [&mut ann, &mut admin], T, "ann's write", |p| p.pending() == 0).await;
    assert!(admin.until(T, |p| p.get("todo:ann", "mine").is_some()).await, "a permitted write arrives");
    assert_eq!(admin.get("todo", "not mine"), None, "todo is not todo:*");
    assert_eq!(admin.get("public", "k"), Some(Value::from("public")), "read-only maps are not written");
    assert_eq!(ann.get("public:news", "k"), Some(Value::from("public:news")), "prefix read");
    assert_eq!(ann.get("shared", "k"), Some(Value::from("shared")), "named read");
    assert!(ann.root("secret").is_none(), "an unreadable map is never sent");
    assert!(ann.get("todo:ann", "k").is_none(), "write-only: the server's records of todo:ann are not sent");

    // "*" reads everything; a write anyway to a map it may not write is refused naming the map.
    let mut raw = support::raw(&url).await;
    let hello = onegrid_core::sync::Frame::Hello {
        version: onegrid_core::sync::PROTOCOL_VERSION,
        node_id: "rawclient".into(),
        token: Some(token(json!({"read": ["*"], "write": ["todo:*"]}))),
    };
    use futures_util::SinkExt as _;
    raw.send(hello.encode().into()).await.unwrap();
    let mut private = Peer::new("forger");
    private.set("secret", "k", "overwritten");
    let payload = private.grid.export_map("secret").unwrap();
    let mut seen = Vec::new();
    // Wait for the Welcome, then answer the handshake and write anyway.
    while !seen.iter().any(|f| matches!(f, onegrid_core::sync::Frame::Welcome { .. })) {
        let (frames, closed) = support::until_closed(&mut raw, Duration::from_millis(300)).await;
        assert!(!closed, "{frames:?}");
        seen.extend(frames);
    }
    let welcome = seen.iter().find(|f| matches!(f, onegrid_core::sync::Frame::Welcome { .. })).unwrap();
    assert!(
        matches!(welcome, onegrid_core::sync::Frame::Welcome { read: Some(r), write: Some(w), .. } if r == &["*"] && w == &["todo:*"])
    );
    raw.send(onegrid_core::sync::Frame::RootsEnd.encode().into()).await.unwrap();
    let writes = onegrid_core::sync::Frame::Writes { map: "secret".into(), payload };
    raw.send(writes.encode().into()).await.unwrap();
    let (frames, closed) = support::until_closed(&mut raw, T).await;
    assert!(closed);
    let (code, message) = support::error_of(&frames).expect("an error frame");
    assert_eq!(code, codes::FORBIDDEN);
    assert!(message.contains("\"secret\""), "names the map: {message}");
    let mut reader = Peer::new("reader");
    reader.connect(&url, Some(token(json!({"read": ["*"], "write": []})))).await;
    settle(&mut [&mut reader], T, "a reader of *", |p| p.synced()).await;
    assert_eq!(reader.get("secret", "k"), Some(Value::from("secret")), "the forbidden write was not applied");
    assert!(reader.root("todo").is_some() && reader.root("public:news").is_some(), "* reads every map");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_of_a_connected_node_id_is_refused() {
    let dir = fresh_dir("sync-duplicate");
    let server = Server::start(&sqlite(&dir), &[]);
    let mut first = Peer::new("twin");
    first.connect(&server.url(), None).await;
    settle(&mut [&mut first], T, "the first", |p| p.synced()).await;
    let mut second = Peer::new("twin");
    second.connect(&server.url(), None).await;
    assert!(second.until(T, |p| p.refusal().is_some()).await);
    let (code, message) = second.refusal().unwrap();
    assert_eq!(code, codes::REFUSED);
    assert!(message.contains("twin") && message.contains("already connected"), "{message}");
    // The first is unharmed; once it has gone, the id may connect again.
    first.set("m", "k", 1);
    settle(&mut [&mut first], T, "the first still syncs", |p| p.synced() && p.pending() == 0).await;
    first.disconnect();
    server.wait_for_log(&["event=close", "node=twin", "code=CLOSED"], T);
    let mut third = Peer::new("twin");
    third.connect(&server.url(), None).await;
    settle(&mut [&mut third], T, "the id again", |p| p.synced()).await;
    assert_eq!(third.get("m", "k"), Some(Value::from(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_acknowledges_what_arrived_closes_every_connection_and_exits() {
    let dir = fresh_dir("sync-sigterm");
    let db = sqlite(&dir);
    let server = Server::start(&db, &[]);
    let mut a = Peer::new("a");
    a.connect(&server.url(), None).await;
    settle(&mut [&mut a], T, "connected", |p| p.synced()).await;
    for i in 0..100 {
        a.set("m", &format!("k{i}"), i);
    }
    a.step(Duration::from_millis(1)).await;
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("code=SHUTDOWN") || log.contains("event=close"), "{log}");
    // Whatever was acknowledged before the close is stored: a new server has it.
    a.step(Duration::from_millis(100)).await;
    let acked = a.pending() == 0;
    let server = Server::start(&db, &[]);
    let mut b = Peer::new("b");
    b.connect(&server.url(), None).await;
    settle(&mut [&mut b], T, "b", |p| p.synced()).await;
    if acked {
        assert_eq!(b.get("m", "k99"), Some(Value::from(99)));
    }
    let events: Vec<&str> = log.lines().filter_map(|l| l.split(" event=").nth(1)?.split(' ').next()).collect();
    let at = |e: &str| events.iter().position(|x| *x == e).unwrap_or_else(|| panic!("{e} in {log}"));
    assert!(at("signal") < at("draining") && at("draining") < at("flushed") && at("flushed") < at("stopped"));
}
