//! Scenarios: replicas with fixed clocks and a list of steps, and how a scenario becomes byte-ABI
//! requests (for the native core, wasmtime and Node's raw exports) and JSON (for Node's JS API).

use onegrid_core::{Command, Request, Value};
use serde_json::{Value as Json, json};

/// A replica: one grid with its own node id and drift settings.
#[derive(Clone, Debug)]
pub struct Replica {
    /// Node id.
    pub node_id: String,
    /// Drift limit in milliseconds.
    pub max_drift_ms: u64,
    /// Strict drift mode.
    pub strict: bool,
}

/// The kind of map an op addresses (the JS API needs it to pick `getMap` or `getORMap`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// LWW map.
    Lww,
    /// OR map.
    Or,
}

/// One operation on one replica (fields as in [`onegrid_core::Command`]).
#[derive(Clone, Debug)]
#[allow(missing_docs)]
pub enum Op {
    /// LWW set.
    Set { map: String, key: String, value: Value, ttl_ms: Option<u64> },
    /// LWW set of a batch.
    SetMany { map: String, entries: Vec<(String, Value)> },
    /// LWW remove.
    Remove { map: String, key: String },
    /// LWW get.
    Get { map: String, key: String },
    /// OR add.
    Add { map: String, key: String, value: Value, ttl_ms: Option<u64> },
    /// OR remove.
    OrRemove { map: String, key: String, value: Value },
    /// OR get.
    OrGet { map: String, key: String },
    /// Export `map` from replica `from` and import it into the step's replica.
    Sync { map: String, from: usize },
    /// Prune tombstones (of a map of `kind`, made if missing, as the JavaScript API does).
    Prune { map: String, kind: Kind, older_than: u64 },
    /// Import a snapshot made outside the scenario (records no replica's clock could write).
    Import { map: String, snapshot: Vec<u8> },
}

/// One step: an op on a replica at a wall-clock time.
#[derive(Clone, Debug)]
pub struct Step {
    /// Index into [`Scenario::replicas`].
    pub replica: usize,
    /// Wall-clock milliseconds for this step.
    pub wall: u64,
    /// What to do.
    pub op: Op,
}

/// A named sequence of steps on replicas; every map it touches is compared at the end.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Name, for failure messages.
    pub name: String,
    /// The replicas.
    pub replicas: Vec<Replica>,
    /// The steps.
    pub steps: Vec<Step>,
    /// Maps compared at the end, with their kinds.
    pub maps: Vec<(String, Kind)>,
    /// The scenario ends with syncs both ways: every replica must end with the same snapshot and
    /// root of every map.
    pub converges: bool,
    /// Outcomes known in advance (by step index), checked on top of the engines' agreement.
    pub pins: Vec<(usize, Pin)>,
}

/// An outcome a generated step must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pin {
    /// An LWW get that finds a value (at exactly `millis + ttl`: still alive).
    Live,
    /// An LWW get that finds nothing (one millisecond later: expired).
    Gone,
}

/// Requests of one step, or of the final observation of one (replica, map).
#[derive(Clone, Debug)]
pub struct Compiled {
    /// Requests to open the replicas (handles 1..=n in order).
    pub open: Vec<Request>,
    /// Requests per step (a sync is an export then an import; a prune touches its map, then prunes).
    pub steps: Vec<Vec<Request>>,
    /// Per (replica, map): an export then a root request.
    pub finals: Vec<(usize, String, [Request; 2])>,
}

fn handle(replica: usize) -> u32 {
    u32::try_from(replica + 1).unwrap_or(u32::MAX)
}

impl Scenario {
    /// The byte-ABI requests that run this scenario on a fresh module instance.
    pub fn compile(&self) -> Compiled {
        let open = self
            .replicas
            .iter()
            .map(|r| Request {
                grid: 0,
                wall: 0,
                command: Command::Open { node_id: r.node_id.clone(), max_drift_ms: r.max_drift_ms, strict: r.strict },
            })
            .collect();
        let steps = self.steps.iter().map(compile_step).collect();
        let finals = (0..self.replicas.len())
            .flat_map(|replica| {
                self.maps.iter().map(move |(map, _)| {
                    let request = |command| Request { grid: handle(replica), wall: 0, command };
                    let requests =
                        [request(Command::Export { map: map.clone() }), request(Command::Root { map: map.clone() })];
                    (replica, map.clone(), requests)
                })
            })
            .collect();
        Compiled { open, steps, finals }
    }

    /// The scenario as JSON for the Node runner.
    pub fn to_json(&self, compiled: &Compiled) -> Json {
        let hex = |r: &Request| onegrid_host::hex(&onegrid_core::codec::encode_request(r));
        json!({
            "name": self.name,
            "replicas": self.replicas.iter().map(|r| json!({
                "nodeId": r.node_id, "maxDriftMs": r.max_drift_ms, "strict": r.strict,
            })).collect::<Vec<_>>(),
            "steps": self.steps.iter().map(step_json).collect::<Vec<_>>(),
            "maps": self.maps.iter().map(|(m, k)| json!([m, kind_name(*k)])).collect::<Vec<_>>(),
            "abi": {
                "open": compiled.open.iter().map(hex).collect::<Vec<_>>(),
                "steps": compiled.steps.iter().map(|rs| rs.iter().map(hex).collect::<Vec<_>>()).collect::<Vec<_>>(),
                "finals": compiled.finals.iter().map(|(_, _, rs)| rs.iter().map(hex).collect::<Vec<_>>()).collect::<Vec<_>>(),
            },
        })
    }
}

fn compile_step(step: &Step) -> Vec<Request> {
    let on = |grid: u32, command| Request { grid, wall: step.wall, command };
    let here = handle(step.replica);
    match &step.op {
        Op::Set { map, key, value, ttl_ms } => {
            vec![on(here, Command::Set { map: map.clone(), key: key.clone(), value: value.clone(), ttl_ms: *ttl_ms })]
        }
        Op::SetMany { map, entries } => vec![on(here, Command::SetMany { map: map.clone(), entries: entries.clone() })],
        Op::Remove { map, key } => vec![on(here, Command::Remove { map: map.clone(), key: key.clone() })],
        Op::Get { map, key } => vec![on(here, Command::Get { map: map.clone(), key: key.clone() })],
        Op::Add { map, key, value, ttl_ms } => {
            vec![on(here, Command::Add { map: map.clone(), key: key.clone(), value: value.clone(), ttl_ms: *ttl_ms })]
        }
        Op::OrRemove { map, key, value } => {
            vec![on(here, Command::OrRemove { map: map.clone(), key: key.clone(), value: value.clone() })]
        }
        Op::OrGet { map, key } => vec![on(here, Command::OrGet { map: map.clone(), key: key.clone() })],
        // The import's snapshot is filled in by each engine from the export's reply.
        Op::Sync { map, from } => vec![
            on(handle(*from), Command::Export { map: map.clone() }),
            on(here, Command::Import { map: map.clone(), snapshot: Vec::new() }),
        ],
        // The JavaScript API prunes through `getMap` / `getORMap`, which make the map if it is
        // missing and refuse the other kind: the byte ABI touches the map the same way first.
        Op::Prune { map, kind, older_than } => {
            let touch = match kind {
                Kind::Lww => Command::Get { map: map.clone(), key: String::new() },
                Kind::Or => Command::OrGet { map: map.clone(), key: String::new() },
            };
            vec![on(here, touch), on(here, Command::Prune { map: map.clone(), older_than: *older_than })]
        }
        Op::Import { map, snapshot } => {
            vec![on(here, Command::Import { map: map.clone(), snapshot: snapshot.clone() })]
        }
    }
}

/// `"lww"` or `"or"`.
pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Lww => "lww",
        Kind::Or => "or",
    }
}

fn step_json(step: &Step) -> Json {
    let op = match &step.op {
        Op::Set { map, key, value, ttl_ms } => {
            json!({"op": "set", "map": map, "key": key, "value": tagged(value), "ttlMs": ttl_ms})
        }
        Op::SetMany { map, entries } => json!({"op": "setMany", "map": map,
            "entries": entries.iter().map(|(k, v)| json!([k, tagged(v)])).collect::<Vec<_>>()}),
        Op::Remove { map, key } => json!({"op": "remove", "map": map, "key": key}),
        Op::Get { map, key } => json!({"op": "get", "map": map, "key": key}),
        Op::Add { map, key, value, ttl_ms } => {
            json!({"op": "add", "map": map, "key": key, "value": tagged(value), "ttlMs": ttl_ms})
        }
        Op::OrRemove { map, key, value } => json!({"op": "orRemove", "map": map, "key": key, "value": tagged(value)}),
        Op::OrGet { map, key } => json!({"op": "orGet", "map": map, "key": key}),
        Op::Sync { map, from } => json!({"op": "sync", "map": map, "from": from}),
        Op::Prune { map, kind, older_than } => {
            json!({"op": "prune", "map": map, "kind": kind_name(*kind), "olderThan": older_than})
        }
        Op::Import { map, snapshot } => json!({"op": "import", "map": map, "snapshot": onegrid_host::hex(snapshot)}),
    };
    json!({"replica": step.replica, "wall": step.wall, "op": op})
}

/// A value in the tagged JSON both sides read: `["int", "5"]`, `["map", [[k, v], ...]]`, ...
/// (integers as text keep all 64 bits; floats as text keep every bit of the double).
pub fn tagged(value: &Value) -> Json {
    match value {
        Value::Null => json!(["null"]),
        Value::Bool(b) => json!(["bool", b]),
        Value::Int(i) => json!(["int", i.to_string()]),
        Value::Float(f) => json!(["float", format!("{f:e}")]),
        Value::String(s) => json!(["str", &**s]),
        Value::Bytes(b) => json!(["bytes", &**b]),
        Value::List(items) => json!(["list", items.iter().map(tagged).collect::<Vec<_>>()]),
        Value::Map(entries) => {
            json!(["map", entries.iter().map(|(k, v)| json!([&**k, tagged(v)])).collect::<Vec<_>>()])
        }
    }
}

/// Reads a tagged value back (from the Node runner); `None` if it is not one.
pub fn untagged(json: &Json) -> Option<Value> {
    let parts = json.as_array()?;
    let tag = parts.first()?.as_str()?;
    let arg = parts.get(1);
    Some(match tag {
        "null" => Value::Null,
        "bool" => Value::Bool(arg?.as_bool()?),
        "int" => Value::Int(arg?.as_str()?.parse().ok()?),
        "float" => Value::Float(arg?.as_str()?.parse().ok()?),
        "str" => Value::from(arg?.as_str()?),
        "bytes" => {
            Value::from(arg?.as_array()?.iter().map(|b| u8::try_from(b.as_u64()?).ok()).collect::<Option<Vec<u8>>>()?)
        }
        "list" => Value::list(arg?.as_array()?.iter().map(untagged).collect::<Option<Vec<_>>>()?),
        "map" => Value::map(
            arg?.as_array()?
                .iter()
                .map(|pair| Some((pair.get(0)?.as_str()?.to_owned(), untagged(pair.get(1)?)?)))
                .collect::<Option<Vec<_>>>()?,
        )
        .ok()?,
        _ => return None,
    })
}
