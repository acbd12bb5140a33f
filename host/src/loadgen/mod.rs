//! `onegrid bench-sync`: the load generator. It starts `onegrid serve` on a fresh SQLite file (or
//! uses one at `--url`), opens many native sync clients against it ([`SyncClient`]) and measures,
//! one phase after another:
//! - **idle connections**: the server's resident memory grown per connection held open (first,
//!   on the fresh server);
//! - **acknowledged writes**: each client writes a batch, waits for the server's acknowledgement
//!   (sent only once the write is durable), and writes the next; writes per second and the
//!   acknowledgement latency of each batch;
//! - **fire-and-forget**: each client writes batches without waiting; writes per second until the
//!   server has acknowledged them all;
//! - **catch-up**: a client with a big map goes offline, both sides change keys, it reconnects;
//!   the time until both sides have converged.
//!
//! Each client owns one map, and its token lets it read and write only that one: the figures
//! measure the write path, not fan-out of every write to every client.

mod client;
mod server;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use onegrid_core::Value;
use serde_json::json;

pub use client::SyncClient;
use server::BenchServer;

use crate::persistent::system_clock;
use crate::serve::auth;

/// Keys each client writes, over and over: the grid stays the same size however long a phase
/// runs (writes are updates, as an app's mostly are).
const KEYS_PER_CLIENT: i64 = 1000;

/// How long one client may wait for anything before the bench gives up.
const PATIENCE: Duration = Duration::from_secs(120);

/// What to measure, and where.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// A running server's `ws://.../sync`; `None` starts one on a fresh SQLite file.
    pub url: Option<String>,
    /// That server's JWT secret (the bench signs each client's token with it).
    pub jwt_secret: Option<String>,
    /// Clients writing at once.
    pub clients: usize,
    /// Writes per batch (one frame).
    pub batch: usize,
    /// How long each throughput phase runs.
    pub seconds: f64,
    /// Connections held open for the memory figure (0 skips it).
    pub idle: usize,
    /// The catch-up phase's map size and keys changed on each side (0 skips it).
    pub catchup_keys: usize,
    /// See `catchup_keys`.
    pub catchup_changed: usize,
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            url: None,
            jwt_secret: None,
            clients: 200,
            batch: 10,
            seconds: 5.0,
            idle: 1000,
            catchup_keys: 100_000,
            catchup_changed: 10_000,
        }
    }
}

/// Where the clients connect, and how they sign their tokens.
struct Target {
    url: String,
    secret: Option<String>,
}

impl Target {
    /// A token for a client that may read and write `maps` only.
    fn token(&self, maps: &[&str]) -> Option<String> {
        let secret = self.secret.as_ref()?;
        let claims = json!({"sub": "bench", "exp": system_clock() / 1000 + 3600, "read": maps, "write": maps});
        Some(auth::sign(&claims, secret.as_bytes()))
    }
}

/// Runs every phase, printing each figure as it comes (through `say`).
pub fn run(config: &BenchConfig, mut say: impl FnMut(&str)) -> Result<(), String> {
    if config.clients == 0 || config.batch == 0 {
        return Err("--clients and --batch must be at least 1".into());
    }
    let server = match &config.url {
        Some(_) => None,
        None => Some(BenchServer::start()?),
    };
    let target = Arc::new(match (&config.url, &server) {
        (Some(url), _) => Target { url: url.clone(), secret: config.jwt_secret.clone() },
        (None, Some(s)) => Target { url: s.url(), secret: Some(s.secret().to_owned()) },
        (None, None) => return Err("no server".into()),
    });
    say(&format!(
        "onegrid bench-sync: {} ({}), {} clients on {} threads, batches of {}, {} s per throughput phase",
        target.url,
        if server.is_some() { "started by the bench on a fresh SQLite file" } else { "given" },
        config.clients,
        client_threads(),
        config.batch,
        config.seconds
    ));
    let window = Duration::from_secs_f64(config.seconds.max(0.1));
    if target.secret.is_none() {
        say("no --jwt-secret: every client may read every map, so each write goes out to every client");
    }
    let mut phases = || -> Result<(), String> {
        // First, while the server is fresh: later phases leave freed memory it would reuse.
        if config.idle > 0 {
            match &server {
                Some(server) => say(&idle_memory(&target, server, config.idle)?.to_string()),
                None => say("idle connections: not measured (the server is not the bench's own process)"),
            }
        }
        say(&acknowledged(&target, config.clients, config.batch, window)?.to_string());
        say(&fire_and_forget(&target, config.clients, config.batch, window)?.to_string());
        if config.catchup_keys > 0 {
            let changed = config.catchup_changed.min(config.catchup_keys);
            say(&catch_up(&target, config.catchup_keys, changed)?.to_string());
        }
        Ok(())
    };
    let result = phases();
    match (result, server) {
        (Err(e), Some(server)) => Err(format!("{e}\nfrom the server's log:\n{}", server.log_excerpt(10))),
        (Err(e), None) => Err(e),
        (Ok(()), Some(server)) => server.stop(),
        (Ok(()), None) => Ok(()),
    }
}

/// Threads the clients run on (a client's grid is not `Send`: each thread has its own runtime).
fn client_threads() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// Runs `body(i)` for clients `0..clients`, spread over [`client_threads`] threads, each with a
/// single-threaded runtime; the results in no particular order, or the first error.
fn on_threads<T, F, Fut>(clients: usize, body: F) -> Result<Vec<T>, String>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, String>> + 'static,
{
    let threads = client_threads().min(clients.max(1));
    let body = Arc::new(body);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let body = body.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start an async runtime: {e}"))?;
                let local = tokio::task::LocalSet::new();
                local.block_on(&runtime, async {
                    let mut tasks = tokio::task::JoinSet::new();
                    for i in (t..clients).step_by(threads) {
                        tasks.spawn_local(body(i));
                    }
                    let mut results = Vec::new();
                    while let Some(joined) = tasks.join_next().await {
                        results.push(joined.map_err(|e| format!("a client task failed: {e}"))??);
                    }
                    Ok::<_, String>(results)
                })
            })
        })
        .collect();
    let mut all = Vec::with_capacity(clients);
    for handle in handles {
        all.extend(handle.join().map_err(|_| "a client thread panicked".to_owned())??);
    }
    Ok(all)
}

/// Connects client `i` of phase `phase` to its own map `bench/<phase>/<i>`.
async fn connect(target: &Target, phase: &str, i: usize) -> Result<(SyncClient, String), String> {
    let map = format!("bench/{phase}/{i}");
    let mut client = SyncClient::new(&format!("bench-{phase}-{i}-{}", system_clock()))?;
    client.connect(&target.url, target.token(&[&map]), PATIENCE).await?;
    Ok((client, map))
}

/// Holds every client of a phase until all are connected, then gives each the same start.
struct Gate {
    barrier: tokio::sync::Barrier,
    start: OnceLock<Instant>,
}

impl Gate {
    fn new(clients: usize) -> Arc<Self> {
        Arc::new(Self { barrier: tokio::sync::Barrier::new(clients), start: OnceLock::new() })
    }

    async fn pass(&self) -> Instant {
        self.barrier.wait().await;
        *self.start.get_or_init(Instant::now)
    }
}

/// Acknowledgement latencies, sorted.
struct Latencies(Vec<Duration>);

impl Latencies {
    fn new(mut all: Vec<Duration>) -> Self {
        all.sort_unstable();
        Self(all)
    }

    /// The latency `p` percent of batches did not exceed.
    fn percentile(&self, p: usize) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let at = (self.0.len() * p).div_ceil(100).clamp(1, self.0.len()) - 1;
        self.0[at]
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The acknowledged phase's figures.
struct Acked {
    writes: u64,
    elapsed: Duration,
    latencies: Latencies,
}

impl std::fmt::Display for Acked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rate = self.writes as f64 / self.elapsed.as_secs_f64();
        write!(
            f,
            "acknowledged (durable) writes: {rate:.0}/s ({} in {:.2} s); batch acknowledgement latency p50 {}, p99 {}, max {}",
            self.writes,
            self.elapsed.as_secs_f64(),
            ms(self.latencies.percentile(50)),
            ms(self.latencies.percentile(99)),
            ms(self.latencies.percentile(100)),
        )
    }
}

/// Writes the next `batch` of a client's updates to `map`, `n` counting them: the keys cycle
/// through [`KEYS_PER_CLIENT`], each value is its write's number.
fn write_batch(client: &mut SyncClient, map: &str, batch: usize, n: &mut i64) -> Result<(), String> {
    for _ in 0..batch {
        *n += 1;
        client.set(map, &format!("k{}", *n % KEYS_PER_CLIENT), Value::from(*n))?;
    }
    Ok(())
}

/// Every client: a batch, then wait for its acknowledgement, until the window closes.
fn acknowledged(target: &Arc<Target>, clients: usize, batch: usize, window: Duration) -> Result<Acked, String> {
    let (target, gate) = (target.clone(), Gate::new(clients));
    let all = on_threads(clients, move |i| {
        let (target, gate) = (target.clone(), gate.clone());
        async move {
            let (mut client, map) = connect(&target, "acked", i).await?;
            let start = gate.pass().await;
            let mut latencies = Vec::new();
            let mut n = 0i64;
            while start.elapsed() < window {
                let sent = Instant::now();
                write_batch(&mut client, &map, batch, &mut n)?;
                let marker = client.marker();
                client.run_until(PATIENCE, "have a batch acknowledged", |c| c.is_acked(marker)).await?;
                latencies.push(sent.elapsed());
            }
            let elapsed = start.elapsed();
            client.disconnect();
            Ok((latencies, elapsed))
        }
    })?;
    let elapsed = all.iter().map(|(_, e)| *e).max().unwrap_or_default();
    let latencies: Vec<Duration> = all.into_iter().flat_map(|(l, _)| l).collect();
    let writes = (latencies.len() * batch) as u64;
    Ok(Acked { writes, elapsed, latencies: Latencies::new(latencies) })
}

/// The fire-and-forget phase's figures.
struct Fired {
    writes: u64,
    /// From the first write until the last acknowledgement.
    drained: Duration,
    window: Duration,
}

impl std::fmt::Display for Fired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "fire-and-forget writes: {:.0}/s taken in and acknowledged ({} written in {:.2} s, all acknowledged after {:.2} s)",
            self.writes as f64 / self.drained.as_secs_f64(),
            self.writes,
            self.window.as_secs_f64(),
            self.drained.as_secs_f64(),
        )
    }
}

/// Every client writes batches without waiting, reading what arrives between them, until the
/// window closes; then waits for every acknowledgement.
fn fire_and_forget(target: &Arc<Target>, clients: usize, batch: usize, window: Duration) -> Result<Fired, String> {
    let (target, gate) = (target.clone(), Gate::new(clients));
    let all = on_threads(clients, move |i| {
        let (target, gate) = (target.clone(), gate.clone());
        async move {
            let (mut client, map) = connect(&target, "fire", i).await?;
            let start = gate.pass().await;
            let mut n = 0i64;
            while start.elapsed() < window {
                write_batch(&mut client, &map, batch, &mut n)?;
                client.transmit().await?;
                client.receive(Duration::ZERO).await?;
            }
            client.run_until(PATIENCE, "have every write acknowledged", |c| c.pending() == 0).await?;
            let done = start.elapsed();
            client.disconnect();
            Ok((n.unsigned_abs(), done))
        }
    })?;
    let writes = all.iter().map(|(n, _)| n).sum();
    let drained = all.iter().map(|(_, d)| *d).max().unwrap_or_default();
    Ok(Fired { writes, drained, window })
}

/// The catch-up phase's figures.
struct CaughtUp {
    keys: usize,
    changed: usize,
    first_upload: Duration,
    catch_up: Duration,
}

impl std::fmt::Display for CaughtUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "catch-up after offline: {} keys changed on each side of a {}-key map converged in {:.3} s (the first upload of the map took {:.2} s)",
            self.changed,
            self.keys,
            self.catch_up.as_secs_f64(),
            self.first_upload.as_secs_f64(),
        )
    }
}

/// A client uploads a `keys`-key map and goes offline; another client changes `changed` keys on
/// the server while the first changes `changed` others; the first reconnects. Timed: from its
/// reconnect until it holds the other's changes and the server acknowledged all of its own.
fn catch_up(target: &Arc<Target>, keys: usize, changed: usize) -> Result<CaughtUp, String> {
    let target = target.clone();
    let mut all = on_threads(1, move |_| {
        let target = target.clone();
        async move { catch_up_on(&target, keys, changed).await }
    })?;
    all.pop().ok_or_else(|| "catch-up: no result".to_owned())
}

async fn catch_up_on(target: &Target, keys: usize, changed: usize) -> Result<CaughtUp, String> {
    let map = format!("bench/catchup/{}", system_clock());
    let token = || target.token(&[&map]);
    let mut offline = SyncClient::new(&format!("bench-offline-{}", system_clock()))?;
    for k in 0..keys {
        offline.set(&map, &format!("k{k}"), Value::from(i64::try_from(k).unwrap_or(i64::MAX)))?;
    }
    let start = Instant::now();
    offline.connect(&target.url, token(), PATIENCE).await?;
    offline.run_until(PATIENCE, "upload the map", SyncClient::synced).await?;
    let first_upload = start.elapsed();
    offline.disconnect();

    // The other side: changes the first `changed` keys through the server.
    let mut online = SyncClient::new(&format!("bench-online-{}", system_clock()))?;
    online.connect(&target.url, token(), PATIENCE).await?;
    online.run_until(PATIENCE, "download the map", SyncClient::synced).await?;
    for k in 0..changed {
        online.set(&map, &format!("k{k}"), Value::from("changed on the server"))?;
    }
    let marker = online.marker();
    online.run_until(PATIENCE, "have its changes acknowledged", |c| c.is_acked(marker)).await?;
    online.disconnect();

    // This side: changes the last `changed` keys offline.
    for k in keys - changed..keys {
        offline.set(&map, &format!("k{k}"), Value::from("changed offline"))?;
    }
    let start = Instant::now();
    offline.connect(&target.url, token(), PATIENCE).await?;
    offline.run_until(PATIENCE, "catch up", SyncClient::synced).await?;
    let catch_up = start.elapsed();
    if changed > 0 && offline.get(&map, "k0") != Some(Value::from("changed on the server")) {
        return Err("catch-up: the offline client does not hold the server's changes".into());
    }
    offline.disconnect();
    Ok(CaughtUp { keys, changed, first_upload, catch_up })
}

/// The idle phase's figures.
struct Idle {
    connections: usize,
    before: u64,
    after: u64,
}

impl std::fmt::Display for Idle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let grown = self.after.saturating_sub(self.before);
        write!(
            f,
            "idle connections: {} held open; the server's resident memory grew {:.1} MiB ({} to {} KiB): {:.1} KB per connection",
            self.connections,
            grown as f64 / (1 << 20) as f64,
            self.before >> 10,
            self.after >> 10,
            grown as f64 / self.connections as f64 / 1000.0,
        )
    }
}

/// Opens `n` connections that say hello, catch up (nothing: each may read only its own empty
/// map) and then stay quiet; measures the server's resident memory before and after.
fn idle_memory(target: &Arc<Target>, server: &BenchServer, n: usize) -> Result<Idle, String> {
    std::thread::sleep(Duration::from_millis(500));
    let before = server.resident_bytes()?;
    // Every client holds its connection until the measurement is taken.
    let (connected, release) = (Arc::new(tokio::sync::Barrier::new(n + 1)), Arc::new(tokio::sync::Notify::new()));
    let runner = {
        let (target, connected, release) = (target.clone(), connected.clone(), release.clone());
        std::thread::spawn(move || {
            on_threads(n, move |i| {
                let (target, connected, release) = (target.clone(), connected.clone(), release.clone());
                async move {
                    let (mut client, _) = connect(&target, "idle", i).await?;
                    client.run_until(PATIENCE, "catch up", SyncClient::synced).await?;
                    let released = release.notified();
                    connected.wait().await;
                    released.await;
                    client.disconnect();
                    Ok(())
                }
            })
        })
    };
    let waited = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start an async runtime: {e}"))?
        .block_on(async { tokio::time::timeout(PATIENCE, connected.wait()).await });
    let measured = waited.map_err(|_| "idle connections: not all connected in time".to_owned()).and_then(|_| {
        std::thread::sleep(Duration::from_millis(500));
        server.resident_bytes()
    });
    release.notify_waiters();
    runner.join().map_err(|_| "the idle clients' thread panicked".to_owned())??;
    Ok(Idle { connections: n, before, after: measured? })
}
