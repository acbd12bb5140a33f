//! [`BenchServer`]: the `onegrid serve` the load generator starts for itself: this very binary,
//! as its own process (so its memory can be read apart from the clients'), on a fresh SQLite file
//! in a temporary folder, with a random JWT secret.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::persistent::system_clock;

pub struct BenchServer {
    child: Child,
    dir: PathBuf,
    addr: String,
    secret: String,
}

impl BenchServer {
    /// Starts the server and waits until it listens.
    pub fn start() -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
        let dir = std::env::temp_dir().join(format!("onegrid-bench-{}-{}", std::process::id(), system_clock()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let secret = format!("bench-{}-{}", std::process::id(), system_clock());
        let log_path = dir.join("server.log");
        let log = std::fs::File::create(&log_path).map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        let mut child = Command::new(exe)
            .args(["serve", "--addr", "127.0.0.1:0", "--db"])
            .arg(dir.join("bench.db"))
            .env("ONEGRID_JWT_SECRET", &secret)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start onegrid serve: {e}"))?;
        let mut line = String::new();
        let stdout = child.stdout.take().ok_or("onegrid serve has no stdout")?;
        let read = BufReader::new(stdout).read_line(&mut line);
        let addr = line.trim().strip_prefix("onegrid serve: open http://").and_then(|rest| rest.strip_suffix('/'));
        match (read, addr) {
            (Ok(_), Some(addr)) => Ok(Self { addr: addr.to_owned(), child, dir, secret }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                Err(format!("onegrid serve did not start; its log:\n{log}"))
            }
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/sync", self.addr)
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The server process's resident memory (Linux's `/proc`).
    pub fn resident_bytes(&self) -> Result<u64, String> {
        let path = format!("/proc/{}/status", self.child.id());
        let status = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|kb| kb.trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .ok_or_else(|| format!("no VmRSS line in {path}"))
    }

    /// What the server logged that explains a failure: its first `lines` warnings and errors,
    /// then its last `lines` lines.
    pub fn log_excerpt(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        let warnings = all.iter().filter(|l| !l.contains("level=info")).take(lines);
        let tail = all[all.len().saturating_sub(lines)..].iter();
        warnings.chain([&"..."]).chain(tail).copied().collect::<Vec<_>>().join("\n")
    }

    /// SIGTERM (the server drains and flushes), then removes the folder.
    pub fn stop(mut self) -> Result<(), String> {
        let status = Command::new("kill").arg(self.child.id().to_string()).status();
        if !status.is_ok_and(|s| s.success()) {
            let _ = self.child.kill();
        }
        let exit = self.child.wait().map_err(|e| format!("waiting for onegrid serve: {e}"))?;
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&self.dir);
        if !exit.success() || log.contains("panicked at") {
            return Err(format!("onegrid serve ended with {exit}; its log:\n{log}"));
        }
        Ok(())
    }
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
