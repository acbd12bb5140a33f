//! `onegrid`: the native host's command line. It checks and runs the module (`run`, the default),
//! describes it (`info`), writes the JavaScript package (`pkg`) and serves the grid (`serve`).
//!
//! Arguments are parsed by hand: four commands and a few options do not need a parser crate.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use onegrid_core::{Command, Reply, Request, Value};
use onegrid_host::serve::{self, ServeConfig};
use onegrid_host::{Client, GridError, HostError, PersistentGrid, Runtime, RuntimeConfig, loadgen, pkg, storage};

const USAGE: &str = "\
usage: onegrid [COMMAND] [OPTIONS]

commands:
  run             load the module, check its ABI and run a smoke test on a grid, in memory and
                  on storage (the default)
  info            print the module's SHA-256, size and ABI version
  pkg --out DIR   write the JavaScript package (onegrid_bg.wasm, onegrid.js, types, package.json)
  serve           serve the grid: the web app, the JavaScript package and sync, on one port
  bench-sync      the load generator: starts onegrid serve on a fresh SQLite file (or uses
                  --url) and measures acknowledged and fire-and-forget writes, catch-up after
                  offline and the server's memory per idle connection

serve options:
  --addr ADDR       where to listen (default 127.0.0.1:8080; port 0 picks a free one)
  --db FILE         the SQLite file holding the grid (default ./onegrid.db)
  --postgres URL    hold the grid in PostgreSQL instead (postgres://user@host:port/db)
  --jwt-secret S    every connection must present an HS256 JWT signed with S (also
                    $ONEGRID_JWT_SECRET); required on an address other than loopback
  --node-id ID      the server grid's node id (default server)
  --lenient-clock   apply a client's write stamped beyond the drift limit (a minute ahead of
                    the server's clock) and log it; by default the frame is refused
  --hello-timeout-ms MS   refuse a sync connection that has not said hello by then (10000)
  --max-send-queue-mib N  close a sync connection with more than N MiB waiting to be sent to
                    it, a client that does not read (64)

bench-sync options:
  --url URL         a running server's ws://HOST:PORT/sync instead of a server of its own
  --jwt-secret S    that server's secret, to sign each client's token
  --clients N       clients writing at once (200)
  --batch N         writes per batch (10)
  --seconds S       how long each throughput phase runs (5)
  --idle N          idle connections to hold for the memory figure (1000; 0 skips it)
  --catchup-keys N  the catch-up map's size (100000; 0 skips the phase)
  --catchup-changed N  keys changed on each side while offline (10000)

options:
  --module FILE   use this module instead of the embedded one (run, info)
  --storage LOC   run: the storage of the smoke test, a SQLite file path or a postgres:// URL
                  (default: a SQLite file in a new temporary folder, removed afterwards)
  -h, --help      print this help
  -V, --version   print the version

Compiled code is cached in $ONEGRID_CACHE_DIR, else $XDG_CACHE_HOME/onegrid, else ~/.cache/onegrid.";

/// What the command line asks for.
#[derive(Debug)]
enum Cli {
    Run { module: Option<PathBuf>, storage: Option<String> },
    Info { module: Option<PathBuf> },
    Pkg { out: PathBuf },
    Serve(ServeConfig),
    BenchSync(loadgen::BenchConfig),
    Help,
    Version,
}

/// Why the program stops.
enum Failure {
    /// The command line is wrong: exit 2 with the usage.
    Usage(String),
    /// The command failed: exit 1.
    Failed(String),
}

impl From<HostError> for Failure {
    fn from(e: HostError) -> Self {
        Self::Failed(e.to_string())
    }
}

/// `println!` that reports a failed write instead of panicking, and stops quietly when the reader
/// went away (`onegrid --help | head -1`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        match writeln!(std::io::stdout(), $($arg)*) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(Failure::Failed(format!("cannot write to stdout: {e}")));
            }
            _ => {}
        }
    }};
}

fn main() -> ExitCode {
    let result = parse(std::env::args_os().skip(1)).and_then(|cli| match cli {
        Cli::Run { module, storage } => run(module, storage),
        Cli::Info { module } => info(module),
        Cli::Pkg { out } => write_pkg(out),
        Cli::Serve(config) => serve(config),
        Cli::BenchSync(config) => bench_sync(&config),
        Cli::Help => {
            out!("{USAGE}");
            Ok(())
        }
        Cli::Version => {
            out!("onegrid {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("onegrid: {message}\n\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(message)) => {
            eprintln!("onegrid: error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Cli, Failure> {
    let mut args = args.into_iter().peekable();
    let command = match args.peek().and_then(|a| a.to_str()) {
        Some(c @ ("run" | "info" | "pkg" | "serve" | "bench-sync")) => {
            let c = c.to_owned();
            args.next();
            c
        }
        Some(other) if !other.starts_with('-') => return Err(Failure::Usage(format!("unknown command `{other}`"))),
        _ => "run".to_owned(),
    };
    let (mut module, mut out, mut storage) = (None, None, None);
    let (mut addr, mut db, mut postgres, mut secret, mut node_id) = (None, None, None, None, None);
    let (mut lenient_clock, mut hello_timeout, mut send_queue) = (false, None, None);
    let mut bench = loadgen::BenchConfig::default();
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy();
        let (name, inline) = match text.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name.to_owned(), Some(OsString::from(value))),
            _ => (text.into_owned(), None),
        };
        let mut value =
            || inline.clone().or_else(|| args.next()).ok_or_else(|| Failure::Usage(format!("{name} needs a value")));
        match name.as_str() {
            "-h" | "--help" => return Ok(Cli::Help),
            "-V" | "--version" => return Ok(Cli::Version),
            "--module" if command != "pkg" => module = Some(PathBuf::from(value()?)),
            "--out" if command == "pkg" => out = Some(PathBuf::from(value()?)),
            "--storage" if command == "run" => storage = Some(value()?.to_string_lossy().into_owned()),
            "--addr" if command == "serve" => addr = Some(value()?.to_string_lossy().into_owned()),
            "--db" if command == "serve" => db = Some(value()?.to_string_lossy().into_owned()),
            "--postgres" if command == "serve" => postgres = Some(value()?.to_string_lossy().into_owned()),
            "--jwt-secret" if command == "serve" || command == "bench-sync" => {
                secret = Some(value()?.to_string_lossy().into_owned())
            }
            "--node-id" if command == "serve" => node_id = Some(value()?.to_string_lossy().into_owned()),
            "--lenient-clock" if command == "serve" && inline.is_none() => lenient_clock = true,
            "--hello-timeout-ms" if command == "serve" => hello_timeout = Some(number(&name, &value()?)?),
            "--max-send-queue-mib" if command == "serve" => send_queue = Some(number(&name, &value()?)?),
            "--url" if command == "bench-sync" => bench.url = Some(value()?.to_string_lossy().into_owned()),
            "--clients" if command == "bench-sync" => bench.clients = count(&name, &value()?)?,
            "--batch" if command == "bench-sync" => bench.batch = count(&name, &value()?)?,
            "--idle" if command == "bench-sync" => bench.idle = count(&name, &value()?)?,
            "--catchup-keys" if command == "bench-sync" => bench.catchup_keys = count(&name, &value()?)?,
            "--catchup-changed" if command == "bench-sync" => bench.catchup_changed = count(&name, &value()?)?,
            "--seconds" if command == "bench-sync" => {
                let text = value()?.to_string_lossy().into_owned();
                bench.seconds = text
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .ok_or_else(|| Failure::Usage(format!("{name} {text:?} is not a positive number")))?;
            }
            _ => return Err(Failure::Usage(format!("unexpected argument `{name}` for `onegrid {command}`"))),
        }
    }
    Ok(match command.as_str() {
        "info" => Cli::Info { module },
        "pkg" => Cli::Pkg { out: out.ok_or_else(|| Failure::Usage("pkg needs --out DIR".into()))? },
        "serve" => {
            let addr = addr.as_deref().unwrap_or(serve::DEFAULT_ADDR);
            let addr = addr.parse().map_err(|e| Failure::Usage(format!("--addr {addr:?} is not an address: {e}")))?;
            let storage = match (db, postgres) {
                (Some(_), Some(_)) => return Err(Failure::Usage("give --db or --postgres, not both".into())),
                (_, Some(url)) => url,
                (db, None) => db.unwrap_or_else(|| serve::DEFAULT_DB.into()),
            };
            let jwt_secret = secret.or_else(|| std::env::var("ONEGRID_JWT_SECRET").ok());
            let node_id = node_id.unwrap_or_else(|| "server".into());
            let mut config = ServeConfig::new(addr, storage, jwt_secret, node_id);
            config.lenient_clock = lenient_clock;
            if let Some(ms) = hello_timeout {
                config.sync.hello_timeout = Duration::from_millis(ms);
            }
            if let Some(mib) = send_queue {
                config.sync.send_queue_limit = usize::try_from(mib).unwrap_or(usize::MAX).saturating_mul(1 << 20);
            }
            Cli::Serve(config)
        }
        "bench-sync" => {
            bench.jwt_secret = secret.or_else(|| std::env::var("ONEGRID_JWT_SECRET").ok());
            Cli::BenchSync(bench)
        }
        _ => Cli::Run { module, storage },
    })
}

/// A count given to option `name`.
fn count(name: &str, value: &OsString) -> Result<usize, Failure> {
    usize::try_from(number(name, value)?).map_err(|_| Failure::Usage(format!("{name} is too large")))
}

/// `onegrid bench-sync`: each figure as its phase ends.
fn bench_sync(config: &loadgen::BenchConfig) -> Result<(), Failure> {
    let mut printed = Ok(());
    let result = loadgen::run(config, |line| {
        use std::io::Write as _;
        if printed.is_ok() {
            printed = writeln!(std::io::stdout(), "{line}").and_then(|()| std::io::stdout().flush());
        }
    });
    printed.map_err(|e| Failure::Failed(format!("cannot write to stdout: {e}")))?;
    result.map_err(Failure::Failed)
}

/// A whole number given to option `name`.
fn number(name: &str, value: &OsString) -> Result<u64, Failure> {
    let text = value.to_string_lossy();
    text.parse().map_err(|_| Failure::Usage(format!("{name} {text:?} is not a whole number")))
}

/// `onegrid serve`: prints the URL to open once it listens, and runs until SIGTERM or Ctrl-C.
fn serve(config: ServeConfig) -> Result<(), Failure> {
    let mut printed = Ok(());
    let result = serve::run(config, |addr| {
        use std::io::Write as _;
        printed =
            writeln!(std::io::stdout(), "onegrid serve: open http://{addr}/").and_then(|()| std::io::stdout().flush());
    });
    printed.map_err(|e| Failure::Failed(format!("cannot write to stdout: {e}")))?;
    result.map_err(Failure::Failed)
}

/// The module's bytes and a name for it: the embedded module, or the file.
fn module_bytes(path: Option<&PathBuf>) -> Result<(std::borrow::Cow<'static, [u8]>, String), Failure> {
    match path {
        None => Ok((pkg::WASM.into(), "embedded".into())),
        Some(path) => std::fs::read(path)
            .map(|bytes| (bytes.into(), path.display().to_string()))
            .map_err(|e| Failure::Failed(format!("cannot read module {}: {e}", path.display()))),
    }
}

fn info(module: Option<PathBuf>) -> Result<(), Failure> {
    let (bytes, name) = module_bytes(module.as_ref())?;
    let runtime = Runtime::new(&bytes, RuntimeConfig::default())?;
    out!("module: {name}");
    out!("sha256: {}", runtime.sha256_hex());
    out!("size: {} bytes", runtime.module_size());
    out!("abi: {}", runtime.abi_version());
    Ok(())
}

fn write_pkg(out: PathBuf) -> Result<(), Failure> {
    let written =
        pkg::write(&out).map_err(|e| Failure::Failed(format!("cannot write the package to {}: {e}", out.display())))?;
    out!("wrote {} to {}", written.join(", "), out.display());
    out!("sha256 of onegrid_bg.wasm: {}", onegrid_host::hex(&sha256(pkg::WASM)));
    Ok(())
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

/// The smoke run: load, check, open two grids, write, read, export, import, compare roots; then
/// the same records through storage: write, flush, load into a new grid, compare roots.
fn run(module: Option<PathBuf>, storage: Option<String>) -> Result<(), Failure> {
    let (bytes, name) = module_bytes(module.as_ref())?;
    let started = Instant::now();
    let runtime = Runtime::new(&bytes, RuntimeConfig::default())?;
    let loaded = started.elapsed();
    out!("module: {name}");
    out!("sha256: {}", runtime.sha256_hex());
    out!("size: {} bytes", runtime.module_size());
    out!("abi: {}", runtime.abi_version());
    out!("code: {} in {}", runtime.code_source(), ms(loaded));

    let started = Instant::now();
    let mut client = Client::new(&runtime)?;
    out!("instance: ready in {}", ms(started.elapsed()));

    let started = Instant::now();
    let mut calls: u32 = 0;
    let mut call = |grid: u32, command: Command| -> Result<Reply, Failure> {
        calls += 1;
        match client.call(&Request { grid, wall: wall_ms(), command })? {
            Reply::Error(error) => {
                Err(Failure::Failed(format!("the module refused a smoke-test command: {}", error.message)))
            }
            reply => Ok(reply),
        }
    };
    let open = |node: &str| Command::Open { node_id: node.into(), max_drift_ms: 60_000, strict: false };
    let records = [
        ("greeting", Value::from("hello from the host")),
        ("answer", Value::from(42)),
        ("ratio", Value::from(0.25)),
        ("tags", Value::list([Value::from("smoke"), Value::Bool(true), Value::Null])),
    ];
    let map = || "smoke".to_owned();

    let Reply::Opened(a) = call(0, open("host-smoke-a"))? else { return Err(unexpected("Open")) };
    for (key, value) in &records {
        call(a, Command::Set { map: map(), key: (*key).into(), value: value.clone(), ttl_ms: None })?;
    }
    for (key, value) in &records {
        let got = call(a, Command::Get { map: map(), key: (*key).into() })?;
        if got != Reply::Value(Some(value.clone())) {
            return Err(Failure::Failed(format!("read back {key}: expected {value:?}, got {got:?}")));
        }
    }
    let Reply::Bytes(snapshot) = call(a, Command::Export { map: map() })? else { return Err(unexpected("Export")) };
    let Reply::Opened(b) = call(0, open("host-smoke-b"))? else { return Err(unexpected("Open")) };
    let imported = call(b, Command::Import { map: map(), snapshot: snapshot.clone() })?;
    let (root_a, root_b) = (call(a, Command::Root { map: map() })?, call(b, Command::Root { map: map() })?);
    let elapsed = started.elapsed();
    let Reply::Root(root) = root_a else { return Err(unexpected("Root")) };
    let all_imported = matches!(&imported, Reply::Imported { changed, .. } if *changed == records.len() as u64);
    if root_b != root_a || !all_imported {
        return Err(Failure::Failed(format!(
            "the second grid differs after import: {imported:?}, roots {root_a:?} and {root_b:?}"
        )));
    }
    out!(
        "smoke: {n} writes, {n} reads, a {} byte snapshot imported into a second grid: {calls} calls in {} ({} per call)",
        snapshot.len(),
        ms(elapsed),
        ms(elapsed / calls),
        n = records.len(),
    );
    out!("root: {root:#010x} (equal on both grids)");
    smoke_storage(&runtime, storage, &records)?;
    out!("ok");
    Ok(())
}

/// The storage part of the smoke run, on `location` or a SQLite file in a new temporary folder.
fn smoke_storage(runtime: &Runtime, location: Option<String>, records: &[(&str, Value)]) -> Result<(), Failure> {
    let temp = location.is_none().then(|| std::env::temp_dir().join(format!("onegrid-smoke-{}", std::process::id())));
    let location = match (&location, &temp) {
        (Some(location), _) => location.clone(),
        (None, Some(dir)) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| Failure::Failed(format!("cannot create {}: {e}", dir.display())))?;
            dir.join("grid.db").display().to_string()
        }
        (None, None) => unreachable!("a temporary folder is made when no location is given"),
    };
    let result = smoke_storage_at(runtime, &location, records);
    if let Some(dir) = temp {
        let _ = std::fs::remove_dir_all(dir); // best effort: it is a temporary folder
    }
    result
}

fn smoke_storage_at(runtime: &Runtime, location: &str, records: &[(&str, Value)]) -> Result<(), Failure> {
    let failed = |e: GridError| Failure::Failed(format!("storage smoke test on {}: {e}", storage::describe(location)));
    let open = |node: &str| -> Result<PersistentGrid, Failure> {
        let store = storage::open(location).map_err(|e| Failure::Failed(e.to_string()))?;
        PersistentGrid::open(runtime, node, store).map_err(failed)
    };
    // A map name of its own per run, so a shared database (a --storage URL) starts it empty.
    let map = format!("smoke-{}-{}", std::process::id(), wall_ms());
    let started = Instant::now();
    let mut writer = open("host-smoke-writer")?;
    for (key, value) in records {
        let set = Command::Set { map: map.clone(), key: (*key).into(), value: value.clone(), ttl_ms: None };
        writer.call(set).map_err(failed)?;
    }
    writer.flush().map_err(failed)?;
    let root = writer.call(Command::Root { map: map.clone() }).map_err(failed)?;
    let written = started.elapsed();
    drop(writer);
    let started = Instant::now();
    let mut reader = open("host-smoke-reader")?;
    reader.get_map(&map, None).map_err(failed)?;
    let reloaded = reader.call(Command::Root { map: map.clone() }).map_err(failed)?;
    if reloaded != root {
        return Err(Failure::Failed(format!("the reloaded map differs: root {reloaded:?}, written {root:?}")));
    }
    out!(
        "storage: {} ({}): {} records written and flushed in {}, loaded into a new grid in {}: roots equal",
        storage::describe(location),
        if location.contains("://") { "PostgreSQL" } else { "SQLite, WAL" },
        records.len(),
        ms(written),
        ms(started.elapsed()),
    );
    Ok(())
}

fn unexpected(command: &str) -> Failure {
    Failure::Failed(format!("the module answered {command} with an unexpected reply"))
}

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}
