//! [`SqliteStorage`]: every map in one table of one SQLite file.
//!
//! The file is in WAL mode with `synchronous=FULL`: readers never block the writer, and each commit
//! is synced to disk before it returns, so a flush the manager reports as done survives a power
//! loss too (SPEC section 6 acknowledges a write only once it is durable). A flush is one
//! transaction, so that is one sync per flush, not per write. The log's checkpoints run on a
//! thread of their own ([`checkpoint`]), not inside the commits. Other processes may share the
//! file; a writer waits up to [`BUSY_TIMEOUT`] for another one's lock.
//!
//! The schema version is the file's `PRAGMA user_version`: 0 for a file onegrid never touched (the
//! table is created), [`SCHEMA_VERSION`] for ours, and a newer version is refused.

mod checkpoint;

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use onegrid_core::storage::StorageOp;
use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;
use rusqlite::{Connection, ErrorCode, TransactionBehavior};

use self::checkpoint::Checkpoints;
pub(crate) use self::checkpoint::Policy as CheckpointPolicy;
pub use self::checkpoint::Stats as CheckpointStats;
use super::{SCHEMA_VERSION, Storage, StorageError, newer_schema};

const BACKEND: &str = "sqlite";

/// How long a call waits for another connection's lock before it fails with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// `WITHOUT ROWID`: the rows live in the primary key's B-tree, so a lookup is one search and a
/// map's rows are contiguous.
const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS onegrid_records (
    map TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (map, key)
) WITHOUT ROWID";

const SELECT_KEYS: &str = "SELECT key FROM onegrid_records WHERE map = ?1";
const SCAN_FROM: &str = "SELECT key, value FROM onegrid_records WHERE map = ?1 AND key >= ?2 ORDER BY key";
/// Rows a [`merge_scan`] steps over (cheap) before it seeks to the next wanted key (a B-tree
/// search) instead.
const MAX_SKIP: usize = 16;
const UPSERT: &str = "INSERT INTO onegrid_records (map, key, value) VALUES (?1, ?2, ?3)
    ON CONFLICT (map, key) DO UPDATE SET value = excluded.value";
const DELETE: &str = "DELETE FROM onegrid_records WHERE map = ?1 AND key = ?2";
/// The distinct maps, one index search each (a loose index scan) rather than a walk of every row.
const SELECT_MAPS: &str = "WITH RECURSIVE maps (name) AS (
        SELECT MIN(map) FROM onegrid_records
        UNION ALL
        SELECT (SELECT MIN(map) FROM onegrid_records WHERE map > maps.name) FROM maps WHERE maps.name IS NOT NULL
    )
    SELECT name FROM maps WHERE name IS NOT NULL";

/// A SQLite file holding every map of a grid, in one table keyed by `(map, key)`.
pub struct SqliteStorage {
    conn: Connection,
    /// Shared with the connection's WAL hook, which drives it; `None` for a database not in WAL
    /// mode (in memory).
    checkpoints: Option<Arc<Mutex<Checkpoints>>>,
}

impl SqliteStorage {
    /// Opens (or creates) the file at `path`, creating onegrid's table on first use. Fails when the
    /// file is not a SQLite database, or holds a newer onegrid schema than this build knows.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        Self::open_with(path.as_ref(), CheckpointPolicy::default())
    }

    /// [`SqliteStorage::open`], with checkpoints on `policy`.
    pub(crate) fn open_with(path: &Path, policy: CheckpointPolicy) -> Result<Self, StorageError> {
        let fail = |reason: &dyn ToString| StorageError::opening(BACKEND, &format!("{path:?}"), reason.to_string());
        let mut conn = Connection::open(path).map_err(|e| fail(&e))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| fail(&e))?;
        match create_schema(&mut conn) {
            Ok(Ok(())) => {}
            Ok(Err(found)) => return Err(fail(&newer_schema(found))),
            Err(e) => return Err(fail(&e)),
        }
        // After the version check, so a file we refuse keeps its journal mode. An in-memory
        // database answers "memory" and stays so; that is fine for tests.
        let mode = use_wal(&conn).map_err(|e| fail(&e))?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(|e| fail(&e))?;
        let checkpoints = match mode.eq_ignore_ascii_case("wal") {
            true => Some(checkpoint_off_commits(&mut conn, path, policy).map_err(|e| fail(&e))?),
            false => None,
        };
        Ok(Self { conn, checkpoints })
    }

    /// What the checkpoints did so far (`None` for a database not in WAL mode).
    pub fn checkpoint_stats(&self) -> Option<CheckpointStats> {
        let checkpoints = self.checkpoints.as_ref()?;
        Some(checkpoints.lock().unwrap_or_else(PoisonError::into_inner).stats())
    }
}

impl std::fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStorage").field("conn", &self.conn).finish_non_exhaustive()
    }
}

impl Drop for SqliteStorage {
    /// Stops the checkpoint thread (closing its connection) before the writer's connection
    /// closes: the last connection to close checkpoints the whole log and removes it.
    fn drop(&mut self) {
        let _ = self.conn.wal_hook(None::<fn(&mut Wal, std::ffi::c_int) -> rusqlite::Result<()>>);
        self.checkpoints = None;
    }
}

/// Starts the checkpoint thread and hands the writer's side to the connection's WAL hook, which
/// SQLite calls after each commit with the log's length. The hook replaces SQLite's automatic
/// checkpoint. It never fails: an error there would make a commit that happened report failure.
fn checkpoint_off_commits(
    conn: &mut Connection,
    path: &Path,
    policy: CheckpointPolicy,
) -> Result<Arc<Mutex<Checkpoints>>, String> {
    let checkpoints = Arc::new(Mutex::new(Checkpoints::start(path, policy)?));
    let hook = Arc::clone(&checkpoints);
    conn.wal_hook(Some(move |wal: &mut Wal, frames: std::ffi::c_int| {
        let checkpoint = || {
            let (_, copied) = wal.checkpoint_v2(CheckpointMode::PASSIVE).ok()?;
            u32::try_from(copied).ok()
        };
        let frames = u32::try_from(frames).unwrap_or(0);
        hook.lock().unwrap_or_else(PoisonError::into_inner).after_commit(frames, checkpoint);
        Ok(())
    }))
    .map_err(|e| e.to_string())?;
    Ok(checkpoints)
}

/// Switches the file to write-ahead logging. Another connection's lock can make SQLite refuse
/// the switch with "database is locked" at once, without waiting in the busy handler (a test
/// opening four adapters on a new file at once hit it), so it is retried until [`BUSY_TIMEOUT`]
/// has passed (one try may itself wait that long in the busy handler). Answers the journal mode
/// the file is in: "wal", or "memory" for an in-memory database.
fn use_wal(conn: &Connection) -> rusqlite::Result<String> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == ErrorCode::DatabaseBusy && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            result => return result,
        }
    }
}

/// Creates the table in a file at version 0, in one write transaction so two processes opening a
/// new file at once do not race. `Ok(Err(version))` for a file newer than this build.
fn create_schema(conn: &mut Connection) -> rusqlite::Result<Result<(), i64>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Ok(Err(version)); // dropping `tx` rolls back, having written nothing
    }
    if version < SCHEMA_VERSION {
        tx.execute_batch(CREATE_TABLE)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    tx.commit()?;
    Ok(Ok(()))
}

/// Loads the stored ones of `wanted` (sorted, no duplicates) by walking the map's rows in key order
/// alongside them: a load of most of a map is one scan (2-3x faster than a lookup per key),
/// and after [`MAX_SKIP`] rows that nobody wanted the walk seeks to the next wanted key, so a load
/// of a few keys of a big map costs little more than one lookup each.
fn merge_scan(conn: &Connection, map: &str, wanted: &[&str]) -> rusqlite::Result<Vec<(String, Vec<u8>)>> {
    let mut found = Vec::with_capacity(wanted.len());
    let mut stmt = conn.prepare_cached(SCAN_FROM)?;
    let mut next = 0; // the first wanted key not yet found or passed
    'seek: while let Some(&from) = wanted.get(next) {
        let mut rows = stmt.query((map, from))?;
        let mut skipped = 0;
        while let Some(row) = rows.next()? {
            // Text compares as its UTF-8 bytes both in SQLite (BINARY collation) and for `str`.
            let key = row.get_ref(0)?.as_str()?;
            while wanted.get(next).is_some_and(|w| *w < key) {
                next += 1; // passed: not stored
            }
            let Some(&want) = wanted.get(next) else { break 'seek };
            if want == key {
                found.push((want.to_string(), row.get(1)?));
                next += 1;
                skipped = 0;
            } else {
                skipped += 1;
                if skipped > MAX_SKIP {
                    continue 'seek;
                }
            }
        }
        break; // no rows left: the other wanted keys are not stored
    }
    Ok(found)
}

fn failed(op: &'static str, map: &str) -> impl FnOnce(rusqlite::Error) -> StorageError {
    move |e| StorageError::on_map(BACKEND, op, map, e)
}

impl Storage for SqliteStorage {
    fn map_names(&mut self) -> Result<Vec<String>, StorageError> {
        let run = || {
            let mut stmt = self.conn.prepare_cached(SELECT_MAPS)?;
            stmt.query_map([], |row| row.get(0))?.collect::<rusqlite::Result<Vec<String>>>()
        };
        run().map_err(failed("map_names", "*"))
    }

    fn load_all_keys(&mut self, map: &str) -> Result<Vec<String>, StorageError> {
        let run = || {
            let mut stmt = self.conn.prepare_cached(SELECT_KEYS)?;
            stmt.query_map([map], |row| row.get(0))?.collect::<rusqlite::Result<Vec<String>>>()
        };
        run().map_err(failed("load_all_keys", map))
    }

    fn load_all(&mut self, map: &str, keys: &[String]) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let mut wanted: Vec<&str> = keys.iter().map(String::as_str).collect();
        if !wanted.is_sorted_by(|a, b| a < b) {
            wanted.sort_unstable();
            wanted.dedup();
        }
        let mut run = || {
            // One read transaction: one snapshot and one lock for every scan.
            let tx = self.conn.transaction()?;
            let found = merge_scan(&tx, map, &wanted)?;
            tx.commit()?;
            Ok(found)
        };
        run().map_err(failed("load_all", map))
    }

    fn store(&mut self, map: &str, key: &str, value: &[u8]) -> Result<(), StorageError> {
        let run = || self.conn.prepare_cached(UPSERT)?.execute((map, key, value));
        run().map(drop).map_err(failed("store", map))
    }

    fn store_all(&mut self, map: &str, entries: &[(String, Vec<u8>)]) -> Result<(), StorageError> {
        let mut run = || {
            // IMMEDIATE takes the write lock up front (waiting up to the busy timeout), so the
            // transaction never fails half way for want of it.
            let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut stmt = tx.prepare_cached(UPSERT)?;
                for (key, value) in entries {
                    stmt.execute((map, key, value))?;
                }
            }
            tx.commit() // an error before this drops `tx`, which rolls back
        };
        run().map_err(failed("store_all", map))
    }

    fn write_all(&mut self, writes: &[&StorageOp]) -> Result<(), StorageError> {
        let mut at = ("commit", "");
        let mut run = || {
            let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for op in writes {
                match op {
                    StorageOp::StoreAll { map, entries } => {
                        at = ("store_all", map.as_str());
                        let mut stmt = tx.prepare_cached(UPSERT)?;
                        for (key, value) in entries {
                            stmt.execute((map, key, value))?;
                        }
                    }
                    StorageOp::DeleteAll { map, keys } => {
                        at = ("delete_all", map.as_str());
                        let mut stmt = tx.prepare_cached(DELETE)?;
                        for key in keys {
                            stmt.execute((map, key))?;
                        }
                    }
                    StorageOp::LoadAllKeys { .. } | StorageOp::LoadAll { .. } => {}
                }
            }
            at = ("commit", "");
            tx.commit()
        };
        run().map_err(|e| StorageError::on_map(BACKEND, at.0, at.1, e))
    }

    fn delete(&mut self, map: &str, key: &str) -> Result<(), StorageError> {
        let run = || self.conn.prepare_cached(DELETE)?.execute((map, key));
        run().map(drop).map_err(failed("delete", map))
    }

    fn delete_all(&mut self, map: &str, keys: &[String]) -> Result<(), StorageError> {
        let mut run = || {
            let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut stmt = tx.prepare_cached(DELETE)?;
                for key in keys {
                    stmt.execute((map, key))?;
                }
            }
            tx.commit()
        };
        run().map_err(failed("delete_all", map))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// A file path in a folder of its own, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("onegrid-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("create a scratch folder");
            Self(dir)
        }

        fn db(&self) -> PathBuf {
            self.0.join("grid.db")
        }

        fn wal_bytes(&self) -> u64 {
            std::fs::metadata(self.0.join("grid.db-wal")).map_or(0, |m| m.len())
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const ROWS: usize = 40;
    const KEYS: usize = 5_000;

    /// `commits` transactions of [`ROWS`] rows of 200 bytes, on keys spread over the table (as a
    /// server's writes are), so each commit logs many pages.
    fn write(storage: &mut SqliteStorage, commits: usize) {
        for commit in 0..commits {
            let entries: Vec<(String, Vec<u8>)> = (0..ROWS)
                .map(|row| (format!("k{:05}", (commit * ROWS + row) * 7_919 % KEYS), vec![commit as u8; 200]))
                .collect();
            storage.store_all("m", &entries).expect("store");
        }
    }

    #[test]
    fn the_thread_copies_the_log_back_and_the_writer_only_its_tail_so_the_log_starts_over() {
        let scratch = Scratch::new("checkpoint-restart");
        let policy = CheckpointPolicy { pass_at: 50, restart_at: 300, tail: 60, cap: u32::MAX };
        let mut storage = SqliteStorage::open_with(&scratch.db(), policy).expect("open");
        write(&mut storage, 400);
        let stats = storage.checkpoint_stats().expect("a file in WAL mode has checkpoints");
        assert!(stats.passes >= 2, "the thread ran passes: {stats:?}");
        assert!(stats.restarts >= 2, "the log started over: {stats:?}");
        assert!(
            stats.writer_pages <= stats.writer_passes * u64::from(policy.tail),
            "the writer copied only tails: {stats:?}"
        );
        assert!(stats.writer_pages * 4 < stats.logged, "the thread copied most of the log: {stats:?}");
        let logged_bytes = stats.logged * 4_096;
        assert!(
            scratch.wal_bytes() * 3 < logged_bytes,
            "the log file ({} B) was reused, not grown to {logged_bytes} B",
            scratch.wal_bytes()
        );

        drop(storage);
        assert_eq!(scratch.wal_bytes(), 0, "the writer's connection closed last, emptying the log");
        let mut storage = SqliteStorage::open(scratch.db()).expect("open again");
        assert_eq!(storage.load_all_keys("m").expect("keys").len(), KEYS.min(400 * ROWS));
        let last = storage.load_all("m", &[format!("k{:05}", (399 * ROWS) * 7_919 % KEYS)]).expect("load");
        assert_eq!(last[0].1, vec![399_usize as u8; 200], "the last commit's value is stored");
    }

    #[test]
    fn past_the_cap_the_writer_checkpoints_itself() {
        let scratch = Scratch::new("checkpoint-cap");
        // The thread never runs (its threshold is out of reach), and the log never reaches the
        // length at which it would start over by the thread's passes.
        let policy = CheckpointPolicy { pass_at: u32::MAX, restart_at: u32::MAX, tail: 0, cap: 200 };
        let mut storage = SqliteStorage::open_with(&scratch.db(), policy).expect("open");
        write(&mut storage, 200);
        let stats = storage.checkpoint_stats().expect("a file in WAL mode has checkpoints");
        assert_eq!(stats.passes, 0, "{stats:?}");
        assert!(stats.writer_passes >= 2 && stats.restarts >= 2, "the writer checkpointed at the cap: {stats:?}");
        assert!(stats.writer_pages * 2 >= stats.logged, "the writer copied the log back itself: {stats:?}");
        // The cap and at most one commit's pages past it (with their frame headers).
        assert!(scratch.wal_bytes() <= (200 + 100) * 4_120, "the log stayed near the cap: {} B", scratch.wal_bytes());
    }

    #[test]
    fn a_database_in_memory_has_no_checkpoints() {
        let storage = SqliteStorage::open(":memory:").expect("open");
        assert_eq!(storage.checkpoint_stats(), None);
    }
}
