//! Storage adapters: where the storage manager's records live (SPEC section 6, the storage contract).
//!
//! One adapter serves every map of a grid; each call is scoped by map name. Values are opaque bytes
//! (the core's encoded stored values): an adapter never looks inside them. The calls are blocking,
//! because the host drives the manager from one loop per grid and an adapter is owned by that loop.
//!
//! - [`Storage`]: the six calls of the contract (and `map_names`, for the server).
//! - [`SqliteStorage`]: one local file, in WAL mode (the default for a path).
//! - [`PostgresStorage`]: a PostgreSQL server (or one that speaks its wire protocol), for a
//!   `postgres://` or `postgresql://` URL.
//! - [`open`]: picks one of them from a location given by the user.
//! - [`execute`]: runs one of the manager's [`StorageOp`]s on an adapter.

mod postgres;
mod sqlite;

use core::fmt;

use onegrid_core::storage::{StorageOp, StorageResult};

pub use self::postgres::PostgresStorage;
pub use self::sqlite::{CheckpointStats, SqliteStorage};

/// The storage contract: one adapter for all maps, every call scoped by map name.
///
/// Each call is all or nothing: a call that returns an error changed nothing. Keys are any string
/// (the empty one included); values are any bytes.
pub trait Storage: Send {
    /// Every key stored for `map` (empty for a map with nothing stored), in no promised order.
    fn load_all_keys(&mut self, map: &str) -> Result<Vec<String>, StorageError>;

    /// The stored values of `keys` in `map`, as `(key, value)`; keys with nothing stored are
    /// simply absent from the answer.
    fn load_all(&mut self, map: &str, keys: &[String]) -> Result<Vec<(String, Vec<u8>)>, StorageError>;

    /// Stores one value, replacing what `key` held.
    fn store(&mut self, map: &str, key: &str, value: &[u8]) -> Result<(), StorageError>;

    /// Stores every entry in one transaction: all of them or none. Existing keys are replaced; when
    /// a key appears twice, its last entry wins.
    fn store_all(&mut self, map: &str, entries: &[(String, Vec<u8>)]) -> Result<(), StorageError>;

    /// Deletes one key; deleting a key with nothing stored is no error.
    fn delete(&mut self, map: &str, key: &str) -> Result<(), StorageError>;

    /// Deletes every key in one transaction; keys with nothing stored are no error.
    fn delete_all(&mut self, map: &str, keys: &[String]) -> Result<(), StorageError>;

    /// Runs `writes` (the `StoreAll`s and `DeleteAll`s of one storage round) in order. SQLite and
    /// PostgreSQL run them in one transaction, so a flush that touches many maps costs one commit
    /// (one fsync), not one per map: the group commit of `onegrid serve` depends on it. This
    /// default gives each write its own transaction and stops at the first error. On an error
    /// [`execute_all`] runs each write again on its own to learn which failed, so one map that
    /// cannot be written never holds back the others.
    fn write_all(&mut self, writes: &[&StorageOp]) -> Result<(), StorageError> {
        writes.iter().try_for_each(|op| write_one(self, op))
    }

    /// Every map with something stored, in no promised order. Not part of the storage contract
    /// (the core never asks for it): `onegrid serve` loads every stored map before it listens, so
    /// that a client's catch-up finds the maps it has never seen. An adapter that cannot list its
    /// maps keeps this default, an error, and the server loads maps as clients touch them.
    fn map_names(&mut self) -> Result<Vec<String>, StorageError> {
        Err(StorageError::on_map("storage", "map_names", "*", "this adapter cannot list its maps"))
    }
}

/// A storage call that failed. Its message names the backend, the call and the map, e.g.
/// `sqlite: store_all on map "todos": database is locked`, because it travels as plain text (in
/// [`StorageResult::Failed`], then in the manager's events) far from the call that made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageError {
    backend: &'static str,
    op: &'static str,
    /// What the call was about: `on map "todos"`, or for opening, where.
    subject: String,
    reason: String,
}

impl StorageError {
    /// An error of `op` (the contract's call, e.g. `"store_all"`) on `map`, from `backend`. Public
    /// so that other adapters (and test fakes) report errors the same way.
    pub fn on_map(backend: &'static str, op: &'static str, map: &str, reason: impl ToString) -> Self {
        Self { backend, op, subject: format!("on map {map:?}"), reason: reason.to_string() }
    }

    /// An error opening the storage at `location` (a path, or a server without its password).
    pub fn opening(backend: &'static str, location: &str, reason: impl ToString) -> Self {
        Self { backend, op: "open", subject: location.to_string(), reason: reason.to_string() }
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// The call that failed: `"open"` or one of the contract's calls, e.g. `"store_all"`.
    pub fn op(&self) -> &'static str {
        self.op
    }

    /// What went wrong, as the database said it.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} {}: {}", self.backend, self.op, self.subject, self.reason)
    }
}

impl std::error::Error for StorageError {}

/// Runs one of the storage manager's requests on `storage` and answers it; a failure becomes
/// [`StorageResult::Failed`] with the error's full message.
pub fn execute(storage: &mut dyn Storage, op: &StorageOp) -> StorageResult {
    let result = match op {
        StorageOp::LoadAllKeys { map } => storage.load_all_keys(map).map(StorageResult::Keys),
        StorageOp::LoadAll { map, keys } => storage.load_all(map, keys).map(StorageResult::Values),
        StorageOp::StoreAll { .. } | StorageOp::DeleteAll { .. } => {
            write_one(storage, op).map(|()| StorageResult::Done)
        }
    };
    result.unwrap_or_else(|e| StorageResult::Failed(e.to_string()))
}

/// Runs one `StoreAll` or `DeleteAll` in its own transaction.
pub(crate) fn write_one<S: Storage + ?Sized>(storage: &mut S, op: &StorageOp) -> Result<(), StorageError> {
    match op {
        StorageOp::StoreAll { map, entries } => storage.store_all(map, entries),
        StorageOp::DeleteAll { map, keys } => storage.delete_all(map, keys),
        StorageOp::LoadAllKeys { map } | StorageOp::LoadAll { map, .. } => {
            Err(StorageError::on_map("storage", "write_all", map, "a load is not a write"))
        }
    }
}

/// Runs the requests of one storage round in order and answers each. Every run of consecutive
/// writes goes to [`Storage::write_all`] as one group; when the group fails, its writes run again
/// one by one (each is an idempotent overwrite, so running one twice is harmless) and each gets
/// its own answer.
pub fn execute_all(storage: &mut dyn Storage, ops: &[&StorageOp]) -> Vec<StorageResult> {
    let mut results = Vec::with_capacity(ops.len());
    let mut rest = ops;
    while !rest.is_empty() {
        // A load alone, or a run of writes.
        let (group, after) = rest.split_at(rest.iter().take_while(|op| op.is_write()).count().max(1));
        if group.len() > 1 && storage.write_all(group).is_ok() {
            results.extend(group.iter().map(|_| StorageResult::Done));
        } else {
            results.extend(group.iter().map(|op| execute(storage, op)));
        }
        rest = after;
    }
    results
}

/// Opens the storage at `location`: a PostgreSQL server for a `postgres://` or `postgresql://` URL,
/// else a SQLite file at that path (created if missing).
pub fn open(location: &str) -> Result<Box<dyn Storage>, StorageError> {
    if location.is_empty() {
        // SQLite would open a private temporary database: data that vanishes on close.
        return Err(StorageError::opening(
            "storage",
            "an empty location",
            "give a SQLite file path or a postgres:// URL",
        ));
    }
    if is_postgres_url(location) {
        Ok(Box::new(PostgresStorage::connect(location)?))
    } else {
        Ok(Box::new(SqliteStorage::open(location)?))
    }
}

/// `location` for messages: a SQLite path as it is, a PostgreSQL URL as `host:port/database`
/// (never its user or password).
pub fn describe(location: &str) -> String {
    if is_postgres_url(location) { postgres::describe_url(location) } else { location.to_owned() }
}

/// URL schemes are case-insensitive.
fn is_postgres_url(location: &str) -> bool {
    ["postgres://", "postgresql://"]
        .iter()
        .any(|scheme| location.get(..scheme.len()).is_some_and(|s| s.eq_ignore_ascii_case(scheme)))
}

/// The version of the tables this build writes. A database with a newer one is refused (an older
/// build must not write into tables it does not understand); older ones are upgraded when one exists.
pub const SCHEMA_VERSION: i64 = 1;

/// The message for a database whose schema is newer than [`SCHEMA_VERSION`].
fn newer_schema(found: i64) -> String {
    format!(
        "the database has onegrid schema version {found}, newer than version {SCHEMA_VERSION} that this build \
         knows; use a newer onegrid, or another database"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_are_told_from_paths() {
        assert!(is_postgres_url("postgres://u@h/db"));
        assert!(is_postgres_url("PostgreSQL://u@h/db"));
        assert!(!is_postgres_url("postgres.db"));
        assert!(!is_postgres_url("./postgres://x"));
        assert!(!is_postgres_url(""));
    }

    #[test]
    fn messages_name_backend_call_and_map() {
        let e = StorageError::on_map("sqlite", "store_all", "todos", "database is locked");
        assert_eq!(e.to_string(), r#"sqlite: store_all on map "todos": database is locked"#);
        let e = StorageError::opening("postgres", "127.0.0.1:5432/app", "connection refused");
        assert_eq!(e.to_string(), "postgres: open 127.0.0.1:5432/app: connection refused");
    }
}
