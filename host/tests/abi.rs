//! The byte ABI through real wasmtime and the real embedded module: round trips, and bad requests
//! that the module refuses while the instance keeps working.
// In tests a panic is the failure report: unwrap means "this must succeed".
#![allow(clippy::unwrap_used)]

mod common;

use common::{WALL, get, open, request, runtime, set};
use onegrid_core::codec::{MAX_MESSAGE_BYTES, encode_request};
use onegrid_core::{Command, Reply, Value};
use onegrid_host::{Client, HostError};

#[test]
fn set_get_export_import_between_two_grids() {
    let mut client = Client::new(runtime()).unwrap();
    let (a, b) = (open(&mut client, "node-a"), open(&mut client, "node-b"));
    assert_ne!(a, b);

    assert_eq!(client.call(&request(a, set("todos", "t1", "buy milk"))).unwrap(), Reply::Done);
    assert_eq!(client.call(&request(a, set("todos", "t2", 7))).unwrap(), Reply::Done);
    let many = Command::SetMany {
        map: "todos".into(),
        entries: vec![("t3".into(), Value::Bool(true)), ("t4".into(), Value::list([Value::Null, Value::from(0.5)]))],
    };
    assert_eq!(client.call(&request(a, many)).unwrap(), Reply::Done);
    assert_eq!(client.call(&request(a, set("todos", "t1", "buy oat milk"))).unwrap(), Reply::Done);
    assert_eq!(client.call(&request(a, get("todos", "t1"))).unwrap(), Reply::Value(Some(Value::from("buy oat milk"))));
    assert_eq!(client.call(&request(a, get("todos", "nope"))).unwrap(), Reply::Value(None));

    let Reply::Bytes(snapshot) = client.call(&request(a, Command::Export { map: "todos".into() })).unwrap() else {
        panic!("Export answers Bytes")
    };
    let import = Command::Import { map: "todos".into(), snapshot: snapshot.clone() };
    assert_eq!(client.call(&request(b, import)).unwrap(), Reply::Imported { changed: 4, drifts: vec![] });
    let root = |client: &mut Client, grid| client.call(&request(grid, Command::Root { map: "todos".into() })).unwrap();
    let root_a = root(&mut client, a);
    assert!(matches!(root_a, Reply::Root(_)));
    assert_eq!(root_a, root(&mut client, b));
    assert_eq!(client.call(&request(b, get("todos", "t2"))).unwrap(), Reply::Value(Some(Value::from(7))));

    // Importing the same snapshot again changes nothing.
    let again = Command::Import { map: "todos".into(), snapshot };
    assert_eq!(client.call(&request(b, again)).unwrap(), Reply::Imported { changed: 0, drifts: vec![] });

    // The same commands run natively give the same root: one engine, two runtimes.
    let mut native = onegrid_core::Grid::new(onegrid_core::NodeId::new("node-a").unwrap(), Default::default());
    for command in [set("todos", "t1", "buy milk"), set("todos", "t2", 7)] {
        native.execute(WALL, command).unwrap();
    }
    let mut wasm = Client::new(runtime()).unwrap();
    let c = open(&mut wasm, "node-a");
    for command in [set("todos", "t1", "buy milk"), set("todos", "t2", 7)] {
        wasm.call(&request(c, command)).unwrap();
    }
    assert_eq!(root(&mut wasm, c), Reply::Root(native.map("todos").unwrap().root()));
}

#[test]
fn or_map_commands() {
    let mut client = Client::new(runtime()).unwrap();
    let g = open(&mut client, "node-or");
    let add = |value: &str| Command::Add { map: "tags".into(), key: "k".into(), value: value.into(), ttl_ms: None };
    assert!(matches!(client.call(&request(g, add("x"))).unwrap(), Reply::Tags(tags) if tags.len() == 1));
    client.call(&request(g, add("y"))).unwrap();
    let or_get = Command::OrGet { map: "tags".into(), key: "k".into() };
    assert_eq!(client.call(&request(g, or_get)).unwrap(), Reply::Values(vec!["x".into(), "y".into()]));
    // A map's kind is fixed: LWW commands on it are refused with a message.
    let Reply::Error(onegrid_core::WireError { message, .. }) = client.call(&request(g, set("tags", "k", 1))).unwrap()
    else {
        panic!()
    };
    assert!(!message.is_empty());
}

#[test]
fn bad_requests_are_refused_and_the_instance_keeps_working() {
    let mut client = Client::new(runtime()).unwrap();
    let g = open(&mut client, "node-bad");
    client.call(&request(g, set("m", "k", "kept"))).unwrap();

    // Refused as MALFORMED; the message then says which defect, which is its job.
    let refused = |client: &mut Client, bytes: &[u8]| match client.call_bytes(bytes).unwrap() {
        Reply::Error(onegrid_core::WireError { code, message }) if code == "MALFORMED" => message,
        other => panic!("expected a MALFORMED Reply::Error for {bytes:?}, got {other:?}"),
    };
    let garbage = refused(&mut client, b"\x01garbage bytes");
    assert!(garbage.contains("request"), "{garbage}");
    let mut wrong_version = encode_request(&request(g, get("m", "k")));
    wrong_version[0] = 9;
    let message = refused(&mut client, &wrong_version);
    assert!(message.contains("format version 9"), "{message}");
    let empty = refused(&mut client, b"");
    assert!(empty.contains("empty"), "{empty}");
    let mut trailing = encode_request(&request(g, get("m", "k")));
    trailing.push(0);
    let message = refused(&mut client, &trailing);
    assert!(message.contains("unexpected bytes after the end"), "{message}");
    let Reply::Error(onegrid_core::WireError { code, message }) =
        client.call(&request(g + 100, get("m", "k"))).unwrap()
    else {
        panic!()
    };
    assert_eq!(code, "NOT_FOUND", "{message}");
    assert!(message.contains(&(g + 100).to_string()), "the message names the handle: {message}");

    // Too large: refused by the host before anything reaches the module.
    let err = client.call_bytes(&vec![1; MAX_MESSAGE_BYTES + 1]).unwrap_err();
    assert!(matches!(err, HostError::RequestTooLarge { .. }), "{err}");
    assert!(!err.instance_lost());

    // Same instance, same grid, same value.
    assert!(client.has_instance());
    assert_eq!(client.call(&request(g, get("m", "k"))).unwrap(), Reply::Value(Some(Value::from("kept"))));
}

#[test]
fn a_closed_handle_never_reaches_a_grid_opened_after_it() {
    let mut client = Client::new(runtime()).unwrap();
    let old = open(&mut client, "node-old");
    client.call(&request(old, set("m", "k", "old"))).unwrap();
    assert_eq!(client.call(&request(old, Command::Close)).unwrap(), Reply::Done);
    let new = open(&mut client, "node-new");
    assert_ne!(new, old, "the new grid has another handle");

    let unknown = |reply: Reply| matches!(reply, Reply::Error(onegrid_core::WireError { message: m, .. }) if m == format!("no grid is open with handle {old}"));
    for command in [set("m", "k", "stale"), get("m", "k"), Command::Export { map: "m".into() }, Command::Close] {
        assert!(unknown(client.call(&request(old, command.clone())).unwrap()), "{command:?}");
    }
    // The new grid saw none of it and is still open.
    assert_eq!(client.call(&request(new, get("m", "k"))).unwrap(), Reply::Value(None));
    client.call(&request(new, set("m", "k", "new"))).unwrap();
    assert_eq!(client.call(&request(new, get("m", "k"))).unwrap(), Reply::Value(Some(Value::from("new"))));
    assert!(unknown(client.call(&request(old, get("m", "k"))).unwrap()));
}

#[test]
fn clients_and_errors_can_move_between_threads() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send::<Client>();
    send_sync::<onegrid_host::Runtime>();
    send_sync::<HostError>();
}
