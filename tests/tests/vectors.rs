//! Golden vectors: the bytes and Merkle roots every engine and language must reproduce, kept in
//! `tests/vectors/vectors.json` and read by this test and by `tests/js/vectors.test.mjs`.
//!
//! The inputs are defined here; each run rebuilds their bytes and roots and requires them equal to
//! the file, so a change of layout fails until the vectors are written again on purpose:
//! `ONEGRID_WRITE_VECTORS=1 cargo test -p onegrid-tests --test vectors` (then review the diff).

use std::path::PathBuf;

use onegrid_core::codec::{
    self, MapMark, decode_request, decode_snapshot, decode_stored, encode_reply, encode_request,
};
use onegrid_core::{
    ClockConfig, Command, Grid, InFrame, LwwRecord, MapKind, NodeId, OrRecord, Replica, Reply, Request, StoredValue,
    Timestamp, Value,
};
use onegrid_host::hex;
use onegrid_tests::engines::unhex;
use onegrid_tests::scenario::{tagged, untagged};
use serde_json::{Value as Json, json};

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors/vectors.json")
}

fn ts(millis: u64, counter: u32, node: &str) -> Timestamp {
    Timestamp::new(millis, counter, NodeId::new(node).expect("node id"))
}

fn object(pairs: &[(&str, Value)]) -> Value {
    Value::map(pairs.iter().cloned()).expect("distinct keys")
}

/// Values of every type and the awkward corners of each.
fn values() -> Vec<(&'static str, Value)> {
    vec![
        ("null", Value::Null),
        ("true", Value::Bool(true)),
        ("zero", Value::Int(0)),
        ("negative", Value::Int(-300)),
        ("int-min", Value::Int(i64::MIN)),
        ("int-max", Value::Int(i64::MAX)),
        ("beyond-2^53", Value::Int((1 << 53) + 1)),
        ("float", Value::Float(-1.5e-7)),
        ("float-2^60", Value::Float((1_u64 << 60) as f64)),
        ("float-1e21", Value::Float(1e21)),
        ("string", Value::from("héllo 😀 \u{ff5e}")),
        ("string-bom-nul", Value::from("\u{feff}a\u{0}b")),
        ("bytes", Value::from(vec![0, 1, 127, 128, 255])),
        ("list", Value::list([Value::Int(1), Value::from("two"), Value::list([])])),
        (
            "map",
            object(&[
                ("😀", Value::Int(1)),
                ("\u{ff5e}", Value::Bool(false)),
                ("a", Value::Null),
                ("nested", object(&[("k", Value::list([Value::Float(0.1)]))])),
            ]),
        ),
    ]
}

fn lww(value: Option<Value>, t: Timestamp, ttl_ms: Option<u64>) -> StoredValue {
    StoredValue::Lww(LwwRecord { value, timestamp: t, ttl_ms })
}

/// Stored values of each kind the storage contract holds.
fn stored() -> Vec<(&'static str, StoredValue)> {
    let record = |value: Value, t: Timestamp, ttl_ms| OrRecord { value, timestamp: t, ttl_ms };
    vec![
        ("lww", lww(Some(object(&[("done", Value::Bool(false))])), ts(1_700_000_000_000, 3, "laptop-1"), None)),
        ("lww-ttl", lww(Some(Value::from("v")), ts(5, 0, "a"), Some(60_000))),
        ("lww-tombstone", lww(None, ts(u64::MAX, u32::MAX, "node.Z_9"), None)),
        (
            "or",
            StoredValue::Or(vec![
                record(Value::from("x"), ts(100, 0, "a"), None),
                record(Value::Int(2), ts(100, 1, "b"), Some(5)),
            ]),
        ),
        ("or-tombstones", StoredValue::OrTombstones(vec![ts(1, 0, "a"), ts(2, 7, "b")])),
        ("mark-lww", StoredValue::Mark(MapMark { kind: MapKind::Lww, millis: 1_000, counter: 2 })),
        ("mark-or", StoredValue::Mark(MapMark { kind: MapKind::Or, millis: u64::MAX, counter: u32::MAX })),
    ]
}

/// A map built by writes, as `[op, key, value?, ttl?, wall]` lists the JS side replays.
struct MapVector {
    name: &'static str,
    kind: MapKind,
    node: &'static str,
    ops: Vec<Json>,
}

fn maps() -> Vec<MapVector> {
    let set = |key: &str, v: Value, ttl: Option<u64>, wall: u64| json!(["set", key, tagged(&v), ttl, wall]);
    let remove = |key: &str, wall: u64| json!(["remove", key, wall]);
    let add = |key: &str, v: Value, ttl: Option<u64>, wall: u64| json!(["add", key, tagged(&v), ttl, wall]);
    let or_remove = |key: &str, v: Value, wall: u64| json!(["orRemove", key, tagged(&v), wall]);
    let mut every_value: Vec<Json> =
        values().into_iter().enumerate().map(|(i, (name, v))| set(name, v, None, 1_000 + i as u64)).collect();
    every_value.push(set("ttl", Value::from(1), Some(500), 2_000));
    every_value.push(remove("zero", 2_001));
    every_value.push(remove("never-set", 2_001));
    let tasks: Vec<Json> = (0..300)
        .map(|i| {
            set(
                &format!("task-{i:03}"),
                object(&[("n", Value::Int(i)), ("done", Value::Bool(i % 3 == 0))]),
                None,
                5_000,
            )
        })
        .collect();
    vec![
        MapVector { name: "lww-every-value", kind: MapKind::Lww, node: "laptop-1", ops: every_value },
        MapVector { name: "lww-300-keys-one-millisecond", kind: MapKind::Lww, node: "n", ops: tasks },
        MapVector {
            name: "or-adds-removes-ttl",
            kind: MapKind::Or,
            node: "phone-7",
            ops: vec![
                add("tags", Value::from("red"), None, 100),
                add("tags", Value::from("blue"), Some(1_000), 100),
                add("tags", Value::from("red"), None, 101),
                add("😀", object(&[("b", Value::Int(2)), ("a", Value::Int(1))]), None, 102),
                or_remove("tags", Value::from("red"), 103),
                add("gone", Value::Null, None, 104),
                or_remove("gone", Value::Null, 105),
            ],
        },
    ]
}

fn command_of(op: &Json) -> (u64, Command) {
    let s = |i: usize| op[i].as_str().expect("text").to_owned();
    let v = |i: usize| untagged(&op[i]).expect("tagged value");
    let wall = |i: usize| op[i].as_u64().expect("wall");
    let map = "m".to_owned();
    match op[0].as_str().expect("op") {
        "set" => (wall(4), Command::Set { map, key: s(1), value: v(2), ttl_ms: op[3].as_u64() }),
        "remove" => (wall(2), Command::Remove { map, key: s(1) }),
        "add" => (wall(4), Command::Add { map, key: s(1), value: v(2), ttl_ms: op[3].as_u64() }),
        "orRemove" => (wall(3), Command::OrRemove { map, key: s(1), value: v(2) }),
        other => panic!("unknown op {other}"),
    }
}

/// Runs a map vector's writes natively; returns the snapshot and the root.
fn build(vector: &MapVector) -> (Vec<u8>, u32) {
    let mut grid = Grid::new(NodeId::new(vector.node).expect("node id"), ClockConfig::default());
    for op in &vector.ops {
        let (wall, command) = command_of(op);
        grid.execute(wall, command).expect("a valid write");
    }
    let map = grid.map("m").expect("the map");
    assert_eq!(map.kind(), vector.kind);
    (map.export(), map.root())
}

/// One byte-ABI session on a fresh module: requests in order, with the replies they must get.
fn abi_session() -> Vec<Request> {
    let req = |grid, wall, command| Request { grid, wall, command };
    let m = || "todos".to_owned();
    vec![
        req(0, 0, Command::Open { node_id: "laptop-1".into(), max_drift_ms: 60_000, strict: false }),
        req(1, 1_000, Command::Set { map: m(), key: "t1".into(), value: Value::from("milk"), ttl_ms: None }),
        req(
            1,
            1_000,
            Command::SetMany { map: m(), entries: vec![("t2".into(), Value::Int(2)), ("t3".into(), Value::Null)] },
        ),
        req(1, 1_001, Command::Get { map: m(), key: "t1".into() }),
        req(1, 1_002, Command::Remove { map: m(), key: "t2".into() }),
        req(1, 1_003, Command::Add { map: "tags".into(), key: "t1".into(), value: Value::from("x"), ttl_ms: Some(10) }),
        req(1, 1_004, Command::OrGet { map: "tags".into(), key: "t1".into() }),
        req(1, 1_005, Command::OrRemove { map: "tags".into(), key: "t1".into(), value: Value::from("x") }),
        req(1, 1_006, Command::Root { map: m() }),
        req(1, 1_007, Command::Export { map: m() }),
        req(1, 1_008, Command::Set { map: m(), key: "__tombstones__".into(), value: Value::Null, ttl_ms: None }),
        req(1, 1_009, Command::Prune { map: "tags".into(), older_than: 2_000 }),
        req(0, 0, Command::Open { node_id: "phone-7".into(), max_drift_ms: 1_000, strict: true }),
        req(2, 1_010, Command::Import { map: m(), snapshot: Vec::new() }),
        req(2, 1_011, Command::Get { map: m(), key: "t1".into() }),
        req(7, 0, Command::Root { map: m() }),
        // Sync between the two grids: grid 2 says hello, grid 1 accepts (reading only "todos"),
        // refuses a second connection, and a closed one is forgotten. The frames of a
        // `SyncFrames` are those the poll before it answered.
        req(2, 1_012, Command::SyncConnect { token: Some("a.b.c".into()) }),
        req(2, 1_013, Command::SyncPoll { conns: Vec::new() }),
        req(1, 1_014, Command::SyncIncoming),
        req(1, 1_015, Command::SyncFrames { frames: Vec::new() }),
        req(1, 1_016, Command::SyncPoll { conns: Vec::new() }),
        req(1, 1_017, Command::SyncAccept { conn: 0, read: Some(vec![m()]), write: None }),
        req(1, 1_018, Command::SyncPoll { conns: vec![0] }),
        req(2, 1_019, Command::SyncFrames { frames: Vec::new() }),
        req(2, 1_020, Command::SyncPoll { conns: vec![0] }),
        req(1, 1_021, Command::SyncFrames { frames: Vec::new() }),
        req(1, 1_022, Command::SyncPoll { conns: vec![0] }),
        req(2, 1_023, Command::SyncFrames { frames: Vec::new() }),
        req(2, 1_024, Command::SyncPoll { conns: vec![0] }),
        req(2, 1_025, Command::SyncMarker),
        req(1, 1_026, Command::SyncIncoming),
        req(1, 1_027, Command::SyncRefuse { conn: 1, code: "UNAUTHORIZED".into(), reason: "no token".into() }),
        req(1, 1_028, Command::SyncPoll { conns: vec![1] }),
        req(1, 1_029, Command::SyncClose { conn: 0 }),
        req(1, 1_030, Command::SyncPoll { conns: Vec::new() }),
        req(1, 1_031, Command::SyncRemove { conn: 0 }),
        req(1, 1_032, Command::SyncRemove { conn: 1 }),
        req(1, 1_033, Command::SyncPoll { conns: Vec::new() }),
        req(1, 1_034, Command::Export { map: m() }),
        req(2, 1_035, Command::Export { map: m() }),
    ]
}

/// Runs the session natively, filling the import with the export before it and each `SyncFrames`
/// with the frames of the poll before it; returns the requests as sent and the replies.
fn run_session() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut grids: Vec<Replica> = Vec::new();
    let mut exported = Vec::new();
    let mut polled: Vec<Vec<u8>> = Vec::new();
    let (mut requests, mut replies) = (Vec::new(), Vec::new());
    for mut request in abi_session() {
        if let Command::Import { snapshot, .. } = &mut request.command {
            *snapshot = exported.clone();
        }
        if let Command::SyncFrames { frames } = &mut request.command {
            *frames = polled.drain(..).map(|bytes| InFrame { conn: 0, bytes }).collect();
        }
        let reply = match &request.command {
            Command::Open { node_id, max_drift_ms, strict } => {
                let config = ClockConfig { max_drift_ms: *max_drift_ms, strict: *strict };
                grids.push(Replica::new(Grid::new(NodeId::new(node_id).expect("node id"), config)));
                Reply::Opened(grids.len() as u32)
            }
            command => match grids.get_mut((request.grid as usize).wrapping_sub(1)) {
                Some(grid) => grid
                    .execute(request.wall, command.clone())
                    .unwrap_or_else(|e| Reply::Error(onegrid_core::WireError::from(&e))),
                None => Reply::Error(onegrid_core::WireError::from(&onegrid_core::Error::UnknownGrid {
                    handle: request.grid,
                })),
            },
        };
        if let Reply::Bytes(bytes) = &reply {
            exported = bytes.clone();
        }
        if let Reply::Sync(outputs) = &reply {
            polled = outputs.iter().flat_map(|o| o.frames.iter().cloned()).collect();
        }
        requests.push(encode_request(&request));
        replies.push(encode_reply(&reply));
    }
    (requests, replies)
}

fn vectors() -> Json {
    let hexes = |list: &[Vec<u8>]| list.iter().map(|b| hex(b)).collect::<Vec<_>>();
    let (requests, replies) = run_session();
    json!({
        "comment": "Golden vectors of onegrid's formats: read by tests/tests/vectors.rs and tests/js/vectors.test.mjs. \
                    Values are in the tagged form of tests/src/scenario.rs. Written by \
                    `ONEGRID_WRITE_VECTORS=1 cargo test -p onegrid-tests --test vectors`; never edit by hand.",
        "formatVersion": codec::FORMAT_VERSION,
        "abiVersion": onegrid_core::ABI_VERSION,
        "values": values().iter().map(|(name, v)| json!({
            "name": name,
            "value": tagged(v),
            "hex": hex(onegrid_core::Encoded::new(v).as_bytes()),
            "json": v.to_canonical_json(),
        })).collect::<Vec<_>>(),
        "stored": stored().iter().map(|(name, s)| json!({"name": name, "hex": hex(&codec::encode_stored(s))})).collect::<Vec<_>>(),
        "maps": maps().iter().map(|m| {
            let (snapshot, root) = build(m);
            json!({"name": m.name, "kind": m.kind.as_str(), "nodeId": m.node, "ops": m.ops, "snapshot": hex(&snapshot), "root": root})
        }).collect::<Vec<_>>(),
        "abi": {"requests": hexes(&requests), "replies": hexes(&replies)},
        "constants": {
            "maxDepth": onegrid_core::value::MAX_DEPTH,
            "defaultMaxDriftMs": onegrid_core::hlc::DEFAULT_MAX_DRIFT_MS,
            "reservedKeys": [onegrid_core::RESERVED_KEY, onegrid_core::MARK_KEY],
            "mapKinds": MapKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
            "errorCodes": onegrid_core::ErrorKind::ALL.iter().map(|k| k.code()).collect::<Vec<_>>(),
        },
    })
}

#[test]
fn the_formats_match_the_golden_vectors() {
    let now = vectors();
    if std::env::var_os("ONEGRID_WRITE_VECTORS").is_some() {
        let text = serde_json::to_string_pretty(&now).expect("json") + "\n";
        std::fs::create_dir_all(path().parent().expect("a folder")).expect("create tests/vectors");
        std::fs::write(path(), text).expect("write the vectors");
        return;
    }
    let text =
        std::fs::read_to_string(path()).expect("tests/vectors/vectors.json (write it with ONEGRID_WRITE_VECTORS=1)");
    let golden: Json = serde_json::from_str(&text).expect("valid JSON");
    for section in ["formatVersion", "abiVersion", "values", "stored", "maps", "abi", "constants"] {
        let (a, b) = (&now[section], &golden[section]);
        if let (Some(a), Some(b)) = (a.as_array(), b.as_array()) {
            assert_eq!(a.len(), b.len(), "{section}: the number of vectors changed");
            for (x, y) in a.iter().zip(b) {
                assert_eq!(x, y, "{section} {}: the layout changed; write the vectors again on purpose", x["name"]);
            }
        } else {
            assert_eq!(a, b, "{section} changed; write the vectors again on purpose");
        }
    }
}

#[test]
fn the_golden_bytes_decode_to_their_inputs() {
    let golden: Json = serde_json::from_str(&std::fs::read_to_string(path()).expect("vectors")).expect("json");
    for (vector, (name, value)) in golden["values"].as_array().expect("values").iter().zip(values()) {
        let bytes = unhex(vector["hex"].as_str().expect("hex"));
        let (decoded, rest) = codec::take_value(&bytes).expect("a value");
        assert!(rest.is_empty(), "{name}: trailing bytes");
        assert_eq!(decoded, value, "{name}");
        assert_eq!(untagged(&vector["value"]).as_ref(), Some(&value), "{name}: the tagged form");
    }
    for (vector, (name, value)) in golden["stored"].as_array().expect("stored").iter().zip(stored()) {
        assert_eq!(decode_stored(&unhex(vector["hex"].as_str().expect("hex"))).as_ref(), Ok(&value), "{name}");
    }
    for vector in golden["maps"].as_array().expect("maps") {
        let snapshot = decode_snapshot(&unhex(vector["snapshot"].as_str().expect("hex"))).expect("a snapshot");
        assert_eq!(snapshot.kind().as_str(), vector["kind"].as_str().expect("kind"));
    }
    for request in golden["abi"]["requests"].as_array().expect("requests") {
        let bytes = unhex(request.as_str().expect("hex"));
        assert_eq!(encode_request(&decode_request(&bytes).expect("a request")), bytes);
    }
    for reply in golden["abi"]["replies"].as_array().expect("replies") {
        let bytes = unhex(reply.as_str().expect("hex"));
        assert_eq!(encode_reply(&codec::decode_reply(&bytes).expect("a reply")), bytes);
    }
}
