//! [`Runtime`]: the wasmtime objects that are built once per process, in stages, following
//! wasmtime's fast-instantiation guide: one [`Engine`] (with epoch interruption), the compiled
//! [`Module`] (from the [code cache](crate::cache) when possible), a [`Linker`] where wasm-bindgen's
//! JavaScript imports are traps, and an [`InstancePre`] that has resolved the imports once.
//! What is left per instance is a cheap [`Store`] with limits, made by [`crate::Client`].
//!
//! Each store is bounded by a memory cap (a [`StoreLimits`], behind a limiter that turns a refused
//! growth into a typed [`HostError::MemoryLimit`]) and by an epoch deadline per call. One ticker
//! thread per runtime advances the engine's epoch every [`RuntimeConfig::epoch_tick`]; it holds only
//! a weak reference and ends when the runtime is dropped.

use std::sync::Arc;
use std::time::Duration;

use onegrid_core::ABI_VERSION;
use sha2::{Digest, Sha256};
use wasmtime::{
    Engine, InstancePre, Linker, Memory, Module, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, TypedFunc,
};

use crate::cache::{self, CodeCache, CodeSource};
use crate::error::{HostError, MemoryLimitHit};

/// The byte-ABI exports a onegrid module must have, in the order we report missing ones.
const EXPORTS: [&str; 5] = ["onegrid_call", "onegrid_alloc", "onegrid_free", "onegrid_abi_version", "memory"];

/// Limits and caching for a [`Runtime`]. Start from `RuntimeConfig::default()` and change fields.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RuntimeConfig {
    /// Most linear memory one instance may have, in bytes (default 256 MiB). Growing past it traps
    /// with [`HostError::MemoryLimit`]. It also bounds instantiation: a module whose initial memory
    /// is larger cannot run at all.
    pub memory_limit: usize,
    /// How long one call may run (default 5 s) before it is interrupted with
    /// [`HostError::Deadline`]. A call gets at least this long and at most one tick more.
    pub call_timeout: Duration,
    /// How often the ticker thread advances the epoch (default 10 ms; at least 100 µs). Smaller
    /// ticks make deadlines more precise and cost more wake-ups.
    pub epoch_tick: Duration,
    /// Where compiled code is cached (default: [`CodeCache::Default`]).
    pub cache: CodeCache,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            memory_limit: 256 << 20,
            call_timeout: Duration::from_secs(5),
            epoch_tick: Duration::from_millis(10),
            cache: CodeCache::Default,
        }
    }
}

impl RuntimeConfig {
    fn tick(&self) -> Duration {
        self.epoch_tick.max(Duration::from_micros(100))
    }

    /// Epoch ticks for `timeout`: rounded up, plus one because the current tick is already partly
    /// over, so a call always gets at least `timeout`.
    pub(crate) fn deadline_ticks(&self, timeout: Duration) -> u64 {
        let ticks = timeout.as_nanos().div_ceil(self.tick().as_nanos());
        u64::try_from(ticks).unwrap_or(u64::MAX).saturating_add(1)
    }
}

/// The loaded module, ready to instantiate: shared by every [`crate::Client`] (cloning is cheap).
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    pre: InstancePre<StoreState>,
    config: RuntimeConfig,
    sha256: [u8; 32],
    size: usize,
    abi_version: u32,
    code_source: CodeSource,
}

impl Runtime {
    /// Loads `wasm`: compiles it (or loads its cached machine code), checks it has the byte ABI and
    /// that `onegrid_abi_version()` equals [`ABI_VERSION`], and saves the compiled code to the cache.
    pub fn new(wasm: &[u8], config: RuntimeConfig) -> Result<Self, HostError> {
        if !wasm.starts_with(b"\0asm") {
            let reason = "it does not start with the WebAssembly magic bytes `\\0asm`";
            return Err(HostError::Compile(wasmtime::Error::msg(reason)));
        }
        let sha256: [u8; 32] = Sha256::digest(wasm).into();
        let mut wasmtime_config = wasmtime::Config::new();
        wasmtime_config.epoch_interruption(true);
        let engine = Engine::new(&wasmtime_config).map_err(HostError::Engine)?;
        spawn_ticker(&engine, config.tick())?;

        let cache_file = config.cache.dir().map(|dir| cache::file_for(&dir, &engine, &sha256));
        let cached = cache_file.as_deref().and_then(|path| cache::load(&engine, path));
        let from_cache = cached.is_some();
        let module = match cached {
            Some(module) => module,
            None => Module::new(&engine, wasm).map_err(HostError::Compile)?,
        };
        let missing: Vec<&str> = EXPORTS.into_iter().filter(|name| module.get_export(name).is_none()).collect();
        if !missing.is_empty() {
            return Err(HostError::NotOnegrid { reason: format!("does not export {}", missing.join(", ")) });
        }

        let mut linker = Linker::new(&engine);
        // wasm-bindgen's imports serve the JavaScript API; the byte ABI never calls them, and if a
        // bug made it do so, the call traps instead of doing anything.
        linker.define_unknown_imports_as_traps(&module).map_err(HostError::Instantiate)?;
        let pre = linker.instantiate_pre(&module).map_err(HostError::Instantiate)?;

        let mut probe = Guest::new(&pre, &config)?;
        let abi_version = probe.abi_version(&config).map_err(|e| HostError::NotOnegrid {
            reason: format!("fails in `onegrid_abi_version` ({})", e.root_cause()),
        })?;
        if abi_version != ABI_VERSION {
            return Err(HostError::AbiMismatch { module: abi_version, host: ABI_VERSION });
        }

        let code_source = match cache_file {
            None => CodeSource::Compiled,
            Some(path) if from_cache => CodeSource::Cache(path),
            Some(path) => match cache::save(&module, &path) {
                Ok(()) => CodeSource::CompiledAndSaved(path),
                Err(e) => CodeSource::CompiledNotSaved { path, reason: e.to_string() },
            },
        };
        let inner = Inner { pre, config, sha256, size: wasm.len(), abi_version, code_source };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// SHA-256 of the module's bytes: the digest the web app shows for the same module.
    pub fn sha256(&self) -> &[u8; 32] {
        &self.inner.sha256
    }

    /// [`Self::sha256`] as lowercase hex.
    pub fn sha256_hex(&self) -> String {
        crate::hex(&self.inner.sha256)
    }

    /// Size of the module in bytes.
    pub fn module_size(&self) -> usize {
        self.inner.size
    }

    /// What the module's `onegrid_abi_version()` returned (equal to [`ABI_VERSION`]).
    pub fn abi_version(&self) -> u32 {
        self.inner.abi_version
    }

    /// Whether the machine code came from the cache or was compiled.
    pub fn code_source(&self) -> &CodeSource {
        &self.inner.code_source
    }

    /// The configuration this runtime was built with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    pub(crate) fn new_guest(&self) -> Result<Guest, HostError> {
        Guest::new(&self.inner.pre, &self.inner.config)
    }
}

impl core::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Runtime")
            .field("sha256", &self.sha256_hex())
            .field("size", &self.inner.size)
            .field("abi_version", &self.inner.abi_version)
            .field("code_source", &self.inner.code_source)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Advances `engine`'s epoch every `tick` until the engine is dropped.
fn spawn_ticker(engine: &Engine, tick: Duration) -> Result<(), HostError> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("onegrid-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(tick);
                // Holding a strong reference only for the increment lets the engine drop.
                let Some(engine) = weak.upgrade() else { break };
                engine.increment_epoch();
            }
        })
        .map(drop)
        .map_err(|e| HostError::Engine(e.into()))
}

/// What each store carries: its limits.
pub(crate) struct StoreState {
    limits: StoreLimits,
    memory_limit: usize,
}

impl ResourceLimiter for StoreState {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if self.limits.memory_growing(current, desired, maximum)? {
            return Ok(true);
        }
        // Trap with a typed error rather than let `memory.grow` return -1: the guest's allocator
        // would then abort with a bare `unreachable`, and nobody could tell what happened.
        let limit = maximum.map_or(self.memory_limit, |max| max.min(self.memory_limit));
        Err(MemoryLimitHit { wanted: desired, limit }.into())
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// One instance of the module in its own store, with its exports resolved.
pub(crate) struct Guest {
    pub(crate) store: Store<StoreState>,
    pub(crate) memory: Memory,
    version: TypedFunc<(), u32>,
    pub(crate) alloc: TypedFunc<u32, u32>,
    pub(crate) free: TypedFunc<(u32, u32), ()>,
    pub(crate) call: TypedFunc<(u32, u32), u64>,
}

impl Guest {
    fn new(pre: &InstancePre<StoreState>, config: &RuntimeConfig) -> Result<Self, HostError> {
        let limits = StoreLimitsBuilder::new().memory_size(config.memory_limit).instances(1).build();
        let state = StoreState { limits, memory_limit: config.memory_limit };
        let mut store = Store::new(pre.module().engine(), state);
        store.limiter(|state| state);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(config.deadline_ticks(config.call_timeout));
        // A memory-limit refusal here stays an `Instantiate` error: it lost no grids.
        let instance = pre.instantiate(&mut store).map_err(HostError::Instantiate)?;

        let wrong = |name: &str, e: wasmtime::Error| HostError::NotOnegrid {
            reason: format!("exports `{name}` with the wrong type ({e:#})"),
        };
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| HostError::NotOnegrid { reason: "exports `memory`, but not as a memory".into() })?;
        let version =
            instance.get_typed_func(&mut store, "onegrid_abi_version").map_err(|e| wrong("onegrid_abi_version", e))?;
        let alloc = instance.get_typed_func(&mut store, "onegrid_alloc").map_err(|e| wrong("onegrid_alloc", e))?;
        let free = instance.get_typed_func(&mut store, "onegrid_free").map_err(|e| wrong("onegrid_free", e))?;
        let call = instance.get_typed_func(&mut store, "onegrid_call").map_err(|e| wrong("onegrid_call", e))?;
        Ok(Self { store, memory, version, alloc, free, call })
    }

    fn abi_version(&mut self, config: &RuntimeConfig) -> wasmtime::Result<u32> {
        self.store.set_epoch_deadline(config.deadline_ticks(config.call_timeout));
        self.version.call(&mut self.store, ())
    }
}
