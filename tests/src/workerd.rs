//! workerd, Cloudflare's open-source Workers runtime (the `workerd` npm package pinned in
//! `js/package.json`), as a conformance engine.
//!
//! [`Workerd::start`] runs one workerd process for a whole test run: loopback only, on a port the
//! test picked (it binds the socket and hands it to workerd as its standard input, so no other
//! process can take the port in between), killed when the handle drops. Its one Worker imports the
//! package unchanged, `onegrid_bg.wasm` as a wasm module and `onegrid.js` as an ES module, and runs
//! `js/scenario-runner.mjs`, the code the Node runner runs, on each scenario POSTed to it
//! (`js/workerd-worker.mjs`). A missing workerd is a failure, never a skip: `npm ci` in `tests/js`
//! installs it (`tests/ci/chromium.sh`, which `run-all.sh` runs before the Rust tests).

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long one scenario may take in workerd, start-up included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The Worker's files from `js/`, beside the package's.
const WORKER_FILES: [&str; 4] = ["workerd-worker.mjs", "scenario-runner.mjs", "byte-abi.mjs", "tagged.mjs"];

/// A running workerd serving the conformance Worker; killed on drop.
#[derive(Debug)]
pub struct Workerd {
    child: Child,
    port: u16,
    log: PathBuf,
    /// `workerd --version`, e.g. `workerd 2026-11-17`.
    pub version: String,
}

impl Workerd {
    /// Starts workerd with a Worker over the package in `pkg` (its files are copied, unchanged,
    /// with the Worker's into `work/workerd`, beside the generated `config.capnp`).
    ///
    /// # Panics
    /// If workerd is not installed or cannot be started.
    pub fn start(pkg: &Path, work: &Path) -> Self {
        let binary = binary();
        let version = Command::new(&binary).arg("--version").output().expect("run workerd --version");
        assert!(version.status.success(), "workerd --version failed: {}", String::from_utf8_lossy(&version.stderr));
        let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();

        let dir = work.join("workerd");
        fs::create_dir_all(&dir).expect("create the workerd folder");
        let mut modules = vec![("workerd-worker.mjs".to_owned(), "esModule")];
        let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("js");
        for file in WORKER_FILES {
            fs::copy(js.join(file), dir.join(file)).expect("copy the Worker's files");
        }
        modules.extend(WORKER_FILES[1..].iter().map(|f| ((*f).to_owned(), "esModule")));
        let mut package: Vec<String> = fs::read_dir(pkg)
            .expect("read the package")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(".js") || name.ends_with(".wasm"))
            .collect();
        package.sort();
        for name in package {
            fs::copy(pkg.join(&name), dir.join(&name)).expect("copy the package");
            let kind = if name.ends_with(".wasm") { "wasm" } else { "esModule" };
            modules.push((name, kind));
        }
        let config = dir.join("config.capnp");
        fs::write(&config, config_text(&modules)).expect("write the workerd config");

        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
        let port = listener.local_addr().expect("the bound port").port();
        let log = dir.join("workerd.log");
        let out = File::create(&log).expect("create the workerd log");
        let child = Command::new(&binary)
            .arg("serve")
            .arg(&config)
            .args(["--socket-fd", "http=0"])
            .stdin(Stdio::from(OwnedFd::from(listener)))
            .stdout(out.try_clone().expect("the workerd log"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("start workerd ({}): {e}", binary.display()));
        Self { child, port, log, version }
    }

    /// Runs one scenario (the JSON body the Worker takes) and returns the Worker's JSON reply.
    ///
    /// # Panics
    /// If the request fails, times out or the Worker answers with an error.
    pub fn post(&mut self, body: &str) -> String {
        match self.try_post(body) {
            Ok(reply) => reply,
            Err(e) => {
                let exited = self.child.try_wait().ok().flatten();
                let log = fs::read_to_string(&self.log).unwrap_or_default();
                panic!("workerd: {e} (process exited: {exited:?})\n--- workerd log ---\n{log}");
            }
        }
    }

    fn try_post(&self, body: &str) -> Result<String, String> {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).map_err(|e| format!("connect: {e}"))?;
        stream.set_read_timeout(Some(REQUEST_TIMEOUT)).map_err(|e| e.to_string())?;
        stream.set_write_timeout(Some(REQUEST_TIMEOUT)).map_err(|e| e.to_string())?;
        let head = format!(
            "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            body.len()
        );
        stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(body.as_bytes()))
            .map_err(|e| format!("send: {e}"))?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).map_err(|e| format!("read the reply: {e}"))?;
        let split = response.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no HTTP reply")?;
        let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
        let mut body = response[split + 4..].to_vec();
        if head.contains("transfer-encoding: chunked") {
            body = unchunk(&body).ok_or("a malformed chunked reply")?;
        }
        let body = String::from_utf8(body).map_err(|e| format!("the reply is not UTF-8: {e}"))?;
        if head.starts_with("http/1.1 200") {
            Ok(body)
        } else {
            Err(format!("{}\n{body}", head.lines().next().unwrap_or_default()))
        }
    }
}

impl Drop for Workerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The workerd binary of the pinned npm package, as the package itself names it.
fn binary() -> PathBuf {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("js");
    let found = Command::new("node")
        .current_dir(&js)
        .args(["-e", "process.stdout.write(require('workerd').default)"])
        .output()
        .expect("run node");
    let path = PathBuf::from(String::from_utf8_lossy(&found.stdout).into_owned());
    assert!(
        found.status.success() && path.is_file(),
        "workerd is not installed: run `npm ci` in tests/js (tests/run-all.sh does, through tests/ci/chromium.sh)\n{}",
        String::from_utf8_lossy(&found.stderr)
    );
    path
}

fn config_text(modules: &[(String, &str)]) -> String {
    let modules: String =
        modules.iter().map(|(name, kind)| format!("    (name = \"{name}\", {kind} = embed \"{name}\"),\n")).collect();
    format!(
        "# Written by onegrid's conformance test (tests/src/workerd.rs).\n\
         using Workerd = import \"/workerd/workerd.capnp\";\n\n\
         const config :Workerd.Config = (\n  \
           services = [(name = \"main\", worker = .worker)],\n  \
           sockets = [(name = \"http\", address = \"127.0.0.1:0\", http = (), service = \"main\")],\n\
         );\n\n\
         const worker :Workerd.Worker = (\n  \
           modules = [\n{modules}  ],\n  \
           compatibilityDate = \"2025-06-01\",\n\
         );\n"
    )
}

/// The body of a `Transfer-Encoding: chunked` reply.
fn unchunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line = data.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&data[..line]).ok()?.split(';').next()?.trim();
        let size = usize::from_str_radix(size, 16).ok()?;
        data = &data[line + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}
