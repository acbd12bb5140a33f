//! Replicas in Node, through the JavaScript API: one `node` process runs `js/sim-runner.mjs` on
//! the package the host embeds (the bytes wasmtime runs), and takes one JSON request per line on
//! stdin, answering one JSON line on stdout (see the runner for the requests). Node must be on the
//! PATH: without it the simulation fails, as the conformance test does.

use std::io::{BufRead, BufReader, Read, Write as _};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command as Process, Stdio};

use onegrid_core::sync::ConnState;
use onegrid_core::{ClockConfig, MapKind, Timestamp};
use serde_json::{Value as Json, json};

use super::{ConnNews, MapFinal, News, Replicas, Write, WriteOp};
use crate::engines::unhex;

/// The replicas of one run, in one Node process (killed when dropped).
pub struct NodeReplicas {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    len: usize,
}

impl NodeReplicas {
    /// Starts Node on the package in `pkg` and opens `n` replicas, `r0` to `r{n-1}`.
    pub fn new(pkg: &Path, n: usize) -> Self {
        let runner = Path::new(env!("CARGO_MANIFEST_DIR")).join("js/sim-runner.mjs");
        let mut child = Process::new("node")
            .arg(runner)
            .arg(pkg)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run node (Node 20+ must be on the PATH): {e}"));
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut replicas = Self { child, stdin, stdout, len: 0 };
        let max_drift_ms = ClockConfig::default().max_drift_ms;
        for r in 0..n {
            let reply = replicas.ask(&json!({ "op": "open", "nodeId": format!("r{r}"), "maxDriftMs": max_drift_ms }));
            assert_eq!(reply["replica"], r, "node: replica {r} opened as {}", reply["replica"]);
        }
        replicas.len = n;
        replicas
    }

    /// One request, one reply; a reply with `error`, or none at all, fails the run with Node's words.
    fn ask(&mut self, request: &Json) -> Json {
        let sent = writeln!(self.stdin, "{request}").and_then(|()| self.stdin.flush());
        let mut line = String::new();
        let read = sent.and_then(|()| self.stdout.read_line(&mut line));
        if !matches!(read, Ok(n) if n > 0) {
            let _ = self.child.kill();
            let mut stderr = String::new();
            if let Some(mut pipe) = self.child.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr);
            }
            panic!("node: the runner stopped ({read:?}) on {request}:\n{stderr}");
        }
        let reply: Json =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("node: a reply that is not JSON ({e}): {line}"));
        if let Some(error) = reply.get("error") {
            panic!("node: {request} failed:\n{}", error.as_str().unwrap_or_default());
        }
        reply
    }

    /// Asks, then reads the reply's news.
    fn ask_news(&mut self, request: &Json) -> (Json, News) {
        let reply = self.ask(request);
        let news =
            reply["news"].as_array().unwrap_or_else(|| panic!("node: no news in {reply}")).iter().map(news).collect();
        (reply, news)
    }
}

impl Drop for NodeReplicas {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn news(n: &Json) -> ConnNews {
    let state = match n["state"].as_str() {
        Some("connecting") => ConnState::Connecting,
        Some("syncing") => ConnState::Syncing,
        Some("synced") => ConnState::Synced,
        Some("closed") => ConnState::Closed,
        _ => panic!("node: a connection in no known state: {n}"),
    };
    let texts = |field: &str| -> Vec<String> {
        n[field]
            .as_array()
            .unwrap_or_else(|| panic!("node: no {field} in {n}"))
            .iter()
            .map(|t| t.as_str().expect("text").to_owned())
            .collect()
    };
    ConnNews {
        conn: u32::try_from(n["conn"].as_u64().expect("a connection id")).expect("a u32 id"),
        state,
        pending: n["pending"].as_u64().unwrap_or_else(|| panic!("node: no pending count in {n}")),
        frames: texts("frames").iter().map(|f| unhex(f)).collect(),
        problems: texts("problems"),
    }
}

fn tag(text: &Json) -> Timestamp {
    let text = text.as_str().unwrap_or_else(|| panic!("node: a tag that is not text: {text}"));
    Timestamp::parse(text).unwrap_or_else(|e| panic!("node: a tag {text:?}: {e}"))
}

impl Replicas for NodeReplicas {
    fn name(&self) -> &str {
        "node"
    }

    fn count(&self) -> usize {
        self.len
    }

    fn write(&mut self, r: usize, now: u64, op: &WriteOp) -> (Write, News) {
        let request = json!({
            "op": "write", "r": r, "now": now, "map": op.map, "kind": op.kind.as_str(), "key": op.key,
            "value": op.value, "ttl": op.ttl, "remove": op.remove,
        });
        let (reply, news) = self.ask_news(&request);
        let write = match (op.kind, op.remove) {
            (MapKind::Lww, _) => Write::Lww(tag(&reply["ts"])),
            (MapKind::Or, remove) => {
                let tags: Vec<Timestamp> = reply["tags"].as_array().expect("tags").iter().map(tag).collect();
                match (remove, tags.as_slice()) {
                    (true, _) => Write::Removed(tags),
                    (false, [added]) => Write::Add(added.clone()),
                    (false, _) => panic!("node: add answered {reply}"),
                }
            }
        };
        (write, news)
    }

    fn open(&mut self, r: usize, now: u64, accepting: bool) -> (u32, News) {
        let (reply, news) =
            self.ask_news(&json!({ "op": if accepting { "accept" } else { "connect" }, "r": r, "now": now }));
        (u32::try_from(reply["conn"].as_u64().expect("a connection id")).expect("a u32 id"), news)
    }

    fn receive(&mut self, r: usize, now: u64, conn: u32, frame: &[u8]) -> News {
        self.ask_news(&json!({ "op": "receive", "r": r, "now": now, "conn": conn, "frame": onegrid_host::hex(frame) }))
            .1
    }

    fn close(&mut self, r: usize, now: u64, conn: u32) -> News {
        self.ask_news(&json!({ "op": "close", "r": r, "now": now, "conn": conn })).1
    }

    fn finals(&mut self, r: usize, maps: &[(&str, MapKind)]) -> Vec<Option<MapFinal>> {
        let maps: Vec<Json> = maps.iter().map(|(name, kind)| json!([name, kind.as_str()])).collect();
        let reply = self.ask(&json!({ "op": "finals", "r": r, "maps": maps }));
        let finals = reply["finals"].as_array().unwrap_or_else(|| panic!("node: no finals in {reply}"));
        finals
            .iter()
            .map(|f| {
                (!f.is_null()).then(|| MapFinal {
                    root: u32::try_from(f["root"].as_u64().expect("a root")).expect("a u32 root"),
                    snapshot: unhex(f["snapshot"].as_str().expect("a snapshot in hex")),
                })
            })
            .collect()
    }
}
