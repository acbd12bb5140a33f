//! The compiled-code cache: the module's machine code, serialized by wasmtime, in one file per
//! (module, engine) pair, so a host starts in milliseconds instead of compiling the module again.
//!
//! The folder is `$ONEGRID_CACHE_DIR`, else `$XDG_CACHE_HOME/onegrid`, else `$HOME/.cache/onegrid`
//! (see [`CodeCache`]). A file is named `<sha256 of the module>-<engine hash>.cwasm`, where the
//! engine hash is wasmtime's `precompile_compatibility_hash` (target, compiler flags, enabled wasm
//! features, wasmtime version). Old files are never deleted automatically; removing the folder is
//! always safe.
//!
//! # Why loading the file is sound
//! [`Module::deserialize_file`] is `unsafe` because wasmtime runs the machine code in the file as is:
//! bytes from anyone else could do anything, and a file changed while it is mapped changes the code.
//! We rely on three things:
//! - **Only we write these files**, with [`Module::serialize`], into a folder under the user's own
//!   cache directory. Whoever can write there can already run code as this user (the same trust we
//!   give `~/.cargo`).
//! - **The name is a content key.** The SHA-256 of the module and the engine hash are in the name,
//!   so a file is only ever looked up for exactly the module and engine it was compiled for;
//!   wasmtime also checks its own header (version, target, flags) and refuses a mismatch.
//! - **Files are never changed in place.** We write a temporary file and rename it over the final
//!   name, so a reader sees a whole file, and a file mapped by a running host keeps its contents
//!   (the rename replaces the directory entry, not the mapped inode).
//!
//! Any failure to read or load a cached file is not an error: we compile, and overwrite the file.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::{fmt, fs, io};

use wasmtime::{Engine, Module};

/// Where compiled code is cached.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodeCache {
    /// `$ONEGRID_CACHE_DIR`, else `$XDG_CACHE_HOME/onegrid`, else `$HOME/.cache/onegrid`; off when
    /// none of them is set.
    #[default]
    Default,
    /// This folder (created if needed).
    Dir(PathBuf),
    /// No cache: compile on every start.
    Off,
}

impl CodeCache {
    /// The folder this setting points at now, if any.
    pub fn dir(&self) -> Option<PathBuf> {
        match self {
            Self::Dir(dir) => Some(dir.clone()),
            Self::Off => None,
            Self::Default => {
                let var = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
                var("ONEGRID_CACHE_DIR")
                    // The XDG spec says relative paths are invalid and must be ignored.
                    .or_else(|| var("XDG_CACHE_HOME").filter(|p| p.is_absolute()).map(|p| p.join("onegrid")))
                    .or_else(|| var("HOME").map(|p| p.join(".cache").join("onegrid")))
            }
        }
    }
}

/// Where a [`crate::Runtime`]'s machine code came from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodeSource {
    /// Loaded from this cache file; nothing was compiled.
    Cache(PathBuf),
    /// Compiled, and saved to this cache file for next time.
    CompiledAndSaved(PathBuf),
    /// Compiled, but saving to the cache failed (the host works anyway).
    CompiledNotSaved {
        /// The file we tried to write.
        path: PathBuf,
        /// Why it failed.
        reason: String,
    },
    /// Compiled; the cache is off.
    Compiled,
}

impl fmt::Display for CodeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cache(path) => write!(f, "loaded from cache {}", path.display()),
            Self::CompiledAndSaved(path) => write!(f, "compiled, saved to {}", path.display()),
            Self::CompiledNotSaved { path, reason } => {
                write!(f, "compiled, not cached (writing {} failed: {reason})", path.display())
            }
            Self::Compiled => f.write_str("compiled (cache off)"),
        }
    }
}

/// The cache file for a module with this digest, compiled by `engine`, in `dir`.
pub(crate) fn file_for(dir: &Path, engine: &Engine, sha256: &[u8; 32]) -> PathBuf {
    // A mismatch of this hash only costs a cache miss (wasmtime checks compatibility itself), so
    // std's hasher, stable within a toolchain, is enough.
    let mut hasher = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    dir.join(format!("{}-{:016x}.cwasm", crate::hex(sha256), hasher.finish()))
}

/// The cached module in `path`, or `None` if it is missing or unusable for any reason.
pub(crate) fn load(engine: &Engine, path: &Path) -> Option<Module> {
    if !path.is_file() {
        return None;
    }
    // SAFETY: see the module docs: the file was written by `save` below from `Module::serialize`,
    // its name is the module's SHA-256 plus the engine hash, and it is only replaced by rename,
    // never modified in place, so the mapping stays valid for the module's life.
    unsafe { Module::deserialize_file(engine, path) }.ok()
}

/// Writes `module`'s compiled code to `path`: a temporary file in the same folder, then a rename.
pub(crate) fn save(module: &Module, path: &Path) -> io::Result<()> {
    let bytes = module.serialize().map_err(io::Error::other)?;
    let dir = path.parent().ok_or_else(|| io::Error::other("cache path has no folder"))?;
    fs::create_dir_all(dir)?;
    // Unique per process (pid) and per save within it (counter), so concurrent writers never share.
    static SAVES: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(".tmp-{}-{}.cwasm", std::process::id(), SAVES.fetch_add(1, Ordering::Relaxed)));
    let written = fs::write(&tmp, &bytes).and_then(|()| fs::rename(&tmp, path));
    if written.is_err() {
        let _ = fs::remove_file(&tmp); // best effort: the write already failed
    }
    written
}
