//! [`PostgresStorage`]: every map in one table of a PostgreSQL database.
//!
//! `map` and `key` are `bytea`, not `text`: a onegrid key may hold any character, NUL included,
//! which `text` refuses, and bytes do not depend on the database's encoding or collation. The SQL is
//! kept plain (no stored procedures, no advisory locks) so that databases speaking PostgreSQL's wire
//! protocol, such as CockroachDB, take it too. The connection is plain TCP (no TLS).
//!
//! A batch is one transaction of few statements: rows travel as arrays (`UNNEST`, `= ANY`) in
//! chunks of about [`CHUNK_BYTES`], so 100 000 records cost a handful of round trips. A call that
//! finds its connection lost opens a new one and runs again (every call of the contract is
//! idempotent).
//!
//! The schema version is the row of `onegrid_schema`; a newer version than [`SCHEMA_VERSION`] is
//! refused.

use std::collections::HashMap;

use ::postgres::config::Host;
use ::postgres::error::SqlState;
use ::postgres::{Client, Config, NoTls, Statement};

use onegrid_core::storage::StorageOp;

use super::{SCHEMA_VERSION, Storage, StorageError, newer_schema};

const BACKEND: &str = "postgres";

/// About this many bytes of keys and values go in one statement. CockroachDB refuses messages over
/// 16 MiB by default, and smaller chunks keep the server's memory per statement modest.
const CHUNK_BYTES: usize = 4 << 20;

/// Creating the tables may race with another process doing the same; these errors mean it did, and
/// the setup is tried again (the second time the tables exist).
const SETUP_ATTEMPTS: usize = 3;

const CREATE_SCHEMA_TABLE: &str = "CREATE TABLE IF NOT EXISTS onegrid_schema (
    id INT PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
)";
const CREATE_RECORDS_TABLE: &str = "CREATE TABLE IF NOT EXISTS onegrid_records (
    map BYTEA NOT NULL,
    key BYTEA NOT NULL,
    value BYTEA NOT NULL,
    PRIMARY KEY (map, key)
)";
const SELECT_VERSION: &str = "SELECT version FROM onegrid_schema WHERE id = 1";
const INSERT_VERSION: &str = "INSERT INTO onegrid_schema (id, version) VALUES (1, $1) ON CONFLICT (id) DO NOTHING";

const SELECT_KEYS: &str = "SELECT key FROM onegrid_records WHERE map = $1";
const SELECT_VALUES: &str = "SELECT key, value FROM onegrid_records WHERE map = $1 AND key = ANY($2::bytea[])";
const UPSERT_ONE: &str = "INSERT INTO onegrid_records (map, key, value) VALUES ($1, $2, $3)
    ON CONFLICT (map, key) DO UPDATE SET value = EXCLUDED.value";
const UPSERT_MANY: &str = "INSERT INTO onegrid_records (map, key, value)
    SELECT $1, k, v FROM UNNEST($2::bytea[], $3::bytea[]) AS t (k, v)
    ON CONFLICT (map, key) DO UPDATE SET value = EXCLUDED.value";
const DELETE_ONE: &str = "DELETE FROM onegrid_records WHERE map = $1 AND key = $2";
const DELETE_MANY: &str = "DELETE FROM onegrid_records WHERE map = $1 AND key = ANY($2::bytea[])";
/// The distinct maps, one index search each (a loose index scan) rather than a walk of every row.
/// (`bytea` has no `MIN`: the first row in key order instead.)
const SELECT_MAPS: &str = "WITH RECURSIVE maps (name) AS (
        (SELECT map FROM onegrid_records ORDER BY map LIMIT 1)
        UNION ALL
        SELECT (SELECT map FROM onegrid_records WHERE map > maps.name ORDER BY map LIMIT 1)
        FROM maps WHERE maps.name IS NOT NULL
    )
    SELECT name FROM maps WHERE name IS NOT NULL";

/// A PostgreSQL database holding every map of a grid, in one table keyed by `(map, key)`.
pub struct PostgresStorage {
    config: Config,
    /// The server and database without user or password, for messages.
    location: String,
    /// `None` after a connection was lost and opening a new one failed.
    conn: Option<Conn>,
}

impl std::fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not `config`: it holds the password.
        f.debug_struct("PostgresStorage").field("location", &self.location).finish_non_exhaustive()
    }
}

/// One connection and its prepared statements.
struct Conn {
    client: Client,
    select_keys: Statement,
    select_values: Statement,
    upsert_one: Statement,
    upsert_many: Statement,
    delete_one: Statement,
    delete_many: Statement,
}

impl PostgresStorage {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`, or the
    /// `key=value` form), creating onegrid's tables on first use. Fails when the server cannot be
    /// reached, or the database holds a newer onegrid schema than this build knows.
    pub fn connect(url: &str) -> Result<Self, StorageError> {
        // The URL is never shown: it may hold a password.
        let config: Config = url.parse().map_err(|e| StorageError::opening(BACKEND, "URL", reason(&e)))?;
        let location = describe(&config);
        let conn = Conn::open(&config).map_err(|reason| StorageError::opening(BACKEND, &location, reason))?;
        Ok(Self { config, location, conn: Some(conn) })
    }

    /// The connection, opened again if the last one was lost.
    fn conn(&mut self, op: &'static str, map: &str) -> Result<&mut Conn, StorageError> {
        if self.conn.as_ref().is_none_or(|c| c.client.is_closed()) {
            self.conn = None;
            let conn = Conn::open(&self.config).map_err(|reason| {
                StorageError::on_map(BACKEND, op, map, format!("reconnecting to {}: {reason}", self.location))
            })?;
            self.conn = Some(conn);
        }
        self.conn.as_mut().ok_or_else(|| StorageError::on_map(BACKEND, op, map, "not connected"))
    }
}

impl PostgresStorage {
    /// Runs `call` on the connection. When the connection turns out lost (the server restarted, an
    /// administrator ended it), it runs once more on a new one: every call of the contract is
    /// idempotent, and a transaction cut off with its connection either committed whole or not at
    /// all.
    fn run<T>(
        &mut self,
        op: &'static str,
        map: &str,
        call: impl Fn(&mut Conn) -> Result<T, ::postgres::Error>,
    ) -> Result<T, StorageError> {
        let conn = self.conn(op, map)?;
        match call(conn) {
            Err(e) if lost(conn, &e) => {
                // The client may not have noticed yet that the server is closing the connection.
                self.conn = None;
                call(self.conn(op, map)?).map_err(failed(op, map))
            }
            result => result.map_err(failed(op, map)),
        }
    }
}

/// True when `e` means the connection is gone: closed, or ended by the server. A terminated
/// backend's last word is an error with SQLSTATE 57P01 ("terminating connection due to
/// administrator command", or 57P02 after a crash of another backend); the client can report it
/// before it marks itself closed.
fn lost(conn: &Conn, e: &::postgres::Error) -> bool {
    conn.client.is_closed()
        || e.is_closed()
        || e.code().is_some_and(|code| *code == SqlState::ADMIN_SHUTDOWN || *code == SqlState::CRASH_SHUTDOWN)
}

impl Conn {
    /// Connects, sets the schema up and prepares the statements; the error is a reason for a message.
    fn open(config: &Config) -> Result<Self, String> {
        let mut client = config.connect(NoTls).map_err(|e| reason(&e))?;
        setup(&mut client)?;
        let mut prepare = |sql| client.prepare(sql).map_err(|e| reason(&e));
        Ok(Self {
            select_keys: prepare(SELECT_KEYS)?,
            select_values: prepare(SELECT_VALUES)?,
            upsert_one: prepare(UPSERT_ONE)?,
            upsert_many: prepare(UPSERT_MANY)?,
            delete_one: prepare(DELETE_ONE)?,
            delete_many: prepare(DELETE_MANY)?,
            client,
        })
    }
}

/// Creates the tables if needed and checks the schema version, in one transaction (DDL is
/// transactional), tried again when a concurrent setup won a race.
fn setup(client: &mut Client) -> Result<(), String> {
    let mut attempt = 1;
    loop {
        match try_setup(client) {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(found)) => return Err(newer_schema(found)),
            Err(e) if attempt < SETUP_ATTEMPTS && is_setup_race(&e) => attempt += 1,
            Err(e) => return Err(format!("setting up onegrid's tables: {}", reason(&e))),
        }
    }
}

/// `Ok(Err(version))` for a database newer than this build; nothing is created then.
fn try_setup(client: &mut Client) -> Result<Result<(), i64>, ::postgres::Error> {
    let mut tx = client.transaction()?;
    tx.batch_execute(CREATE_SCHEMA_TABLE)?;
    let version: Option<i64> = tx.query_opt(SELECT_VERSION, &[])?.map(|row| row.get(0));
    match version {
        Some(found) if found > SCHEMA_VERSION => return Ok(Err(found)), // dropping `tx` rolls back
        Some(found) if found == SCHEMA_VERSION => {}
        _ => {
            tx.batch_execute(CREATE_RECORDS_TABLE)?;
            tx.execute(INSERT_VERSION, &[&SCHEMA_VERSION])?;
        }
    }
    tx.commit()?;
    Ok(Ok(()))
}

/// Two processes creating the same table at once: PostgreSQL reports a duplicate (in its catalog or
/// the table), CockroachDB a serialization failure.
fn is_setup_race(e: &::postgres::Error) -> bool {
    let race = [SqlState::UNIQUE_VIOLATION, SqlState::DUPLICATE_TABLE, SqlState::DUPLICATE_OBJECT];
    e.code().is_some_and(|code| race.contains(code) || *code == SqlState::T_R_SERIALIZATION_FAILURE)
}

/// [`describe`] of a URL; one that does not parse is shown as `a PostgreSQL URL`.
pub(super) fn describe_url(url: &str) -> String {
    url.parse::<Config>().map_or_else(|_| String::from("a PostgreSQL URL"), |config| describe(&config))
}

/// `host:port,... /database` of a connection configuration: no user, no password.
fn describe(config: &Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(dir) => format!("{}:{port}", dir.display()),
            }
        })
        .collect();
    let database = config.get_dbname().or(config.get_user()).unwrap_or("");
    format!("{}/{database}", hosts.join(","))
}

/// One line for an error: the server's message, detail and SQLSTATE when the server said it, else
/// the client's error and its cause (e.g. "error connecting to server: Connection refused").
fn reason(e: &::postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let detail = db.detail().map(|d| format!("; {d}")).unwrap_or_default();
        return format!("{}{detail} (SQLSTATE {})", db.message(), db.code().code());
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

fn failed(op: &'static str, map: &str) -> impl Fn(::postgres::Error) -> StorageError {
    move |e| StorageError::on_map(BACKEND, op, map, reason(&e))
}

fn corrupt(op: &'static str, map: &str) -> impl Fn(String) -> StorageError {
    move |reason| StorageError::on_map(BACKEND, op, map, reason)
}

/// Splits `items` into runs of about [`CHUNK_BYTES`] (at least one item each) by `size`.
fn chunks<'a, T>(items: &'a [T], size: impl Fn(&T) -> usize + 'a) -> impl Iterator<Item = &'a [T]> + 'a {
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let end = rest
            .iter()
            .position(|item| {
                bytes += size(item);
                bytes > CHUNK_BYTES
            })
            .map_or(rest.len(), |i| i.max(1));
        let (chunk, tail) = rest.split_at(end);
        rest = tail;
        Some(chunk)
    })
}

/// Per-element overhead of an array parameter (its length word).
const ARRAY_ITEM: usize = 4;

/// The entries without the earlier ones of a key that appears twice (one `INSERT ... ON CONFLICT`
/// statement cannot update a row twice). Sorted, duplicate-free input, as the storage manager
/// sends, costs one pass and no map.
fn last_wins(entries: &[(String, Vec<u8>)]) -> Vec<&(String, Vec<u8>)> {
    if entries.windows(2).all(|pair| pair[0].0 < pair[1].0) {
        return entries.iter().collect();
    }
    let last: HashMap<&str, usize> = entries.iter().enumerate().map(|(i, (key, _))| (key.as_str(), i)).collect();
    entries.iter().enumerate().filter(|(i, (key, _))| last.get(key.as_str()) == Some(i)).map(|(_, e)| e).collect()
}

fn as_bytes(keys: &[String]) -> Vec<&[u8]> {
    keys.iter().map(|k| k.as_bytes()).collect()
}

/// A key read back: `bytea` holds whatever was written, which was a `&str`.
fn utf8_key(bytes: Vec<u8>) -> Result<String, String> {
    String::from_utf8(bytes)
        .map_err(|e| format!("a stored key is not UTF-8 (the table was written by something else): {e}"))
}

impl Storage for PostgresStorage {
    fn map_names(&mut self) -> Result<Vec<String>, StorageError> {
        const OP: &str = "map_names";
        let rows = self.run(OP, "*", |c| c.client.query(SELECT_MAPS, &[]))?;
        rows.into_iter().map(|row| utf8_key(row.get(0))).collect::<Result<_, _>>().map_err(corrupt(OP, "*"))
    }

    fn load_all_keys(&mut self, map: &str) -> Result<Vec<String>, StorageError> {
        const OP: &str = "load_all_keys";
        let rows = self.run(OP, map, |c| c.client.query(&c.select_keys, &[&map.as_bytes()]))?;
        rows.into_iter().map(|row| utf8_key(row.get(0))).collect::<Result<_, _>>().map_err(corrupt(OP, map))
    }

    fn load_all(&mut self, map: &str, keys: &[String]) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        const OP: &str = "load_all";
        let rows = self.run(OP, map, |c| {
            let mut rows = Vec::new();
            for chunk in chunks(keys, |k| k.len() + ARRAY_ITEM) {
                rows.extend(c.client.query(&c.select_values, &[&map.as_bytes(), &as_bytes(chunk)])?);
            }
            Ok(rows)
        })?;
        rows.into_iter()
            .map(|row| Ok((utf8_key(row.get(0))?, row.get(1))))
            .collect::<Result<_, _>>()
            .map_err(corrupt(OP, map))
    }

    fn store(&mut self, map: &str, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.run("store", map, |c| c.client.execute(&c.upsert_one, &[&map.as_bytes(), &key.as_bytes(), &value]))?;
        Ok(())
    }

    fn store_all(&mut self, map: &str, entries: &[(String, Vec<u8>)]) -> Result<(), StorageError> {
        let entries = last_wins(entries);
        self.run("store_all", map, |c| {
            let mut tx = c.client.transaction()?;
            for chunk in chunks(&entries, |(k, v)| k.len() + v.len() + 2 * ARRAY_ITEM) {
                let keys: Vec<&[u8]> = chunk.iter().map(|(k, _)| k.as_bytes()).collect();
                let values: Vec<&[u8]> = chunk.iter().map(|(_, v)| v.as_slice()).collect();
                // An error drops `tx`, which rolls back everything this call wrote.
                tx.execute(&c.upsert_many, &[&map.as_bytes(), &keys, &values])?;
            }
            tx.commit()
        })
    }

    fn write_all(&mut self, writes: &[&StorageOp]) -> Result<(), StorageError> {
        let groups: Vec<Write<'_>> = writes
            .iter()
            .filter_map(|op| match op {
                StorageOp::StoreAll { map, entries } => Some(Write::Store(map, last_wins(entries))),
                StorageOp::DeleteAll { map, keys } => Some(Write::Delete(map, keys)),
                StorageOp::LoadAllKeys { .. } | StorageOp::LoadAll { .. } => None,
            })
            .collect();
        let first = writes.first().map_or("", |op| op.map());
        self.run("write_all", first, |c| {
            let mut tx = c.client.transaction()?;
            for write in &groups {
                match write {
                    Write::Store(map, entries) => {
                        for chunk in chunks(entries, |(k, v)| k.len() + v.len() + 2 * ARRAY_ITEM) {
                            let keys: Vec<&[u8]> = chunk.iter().map(|(k, _)| k.as_bytes()).collect();
                            let values: Vec<&[u8]> = chunk.iter().map(|(_, v)| v.as_slice()).collect();
                            tx.execute(&c.upsert_many, &[&map.as_bytes(), &keys, &values])?;
                        }
                    }
                    Write::Delete(map, keys) => {
                        for chunk in chunks(keys, |k| k.len() + ARRAY_ITEM) {
                            tx.execute(&c.delete_many, &[&map.as_bytes(), &as_bytes(chunk)])?;
                        }
                    }
                }
            }
            tx.commit()
        })
    }

    fn delete(&mut self, map: &str, key: &str) -> Result<(), StorageError> {
        self.run("delete", map, |c| c.client.execute(&c.delete_one, &[&map.as_bytes(), &key.as_bytes()]))?;
        Ok(())
    }

    fn delete_all(&mut self, map: &str, keys: &[String]) -> Result<(), StorageError> {
        self.run("delete_all", map, |c| {
            let mut tx = c.client.transaction()?;
            for chunk in chunks(keys, |k| k.len() + ARRAY_ITEM) {
                tx.execute(&c.delete_many, &[&map.as_bytes(), &as_bytes(chunk)])?;
            }
            tx.commit()
        })
    }
}

/// One write of a group, its entries deduplicated as `store_all` does.
enum Write<'a> {
    Store(&'a str, Vec<&'a (String, Vec<u8>)>),
    Delete(&'a str, &'a [String]),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_split_by_size_and_never_come_empty() {
        let items = vec![CHUNK_BYTES / 2; 5];
        let lens: Vec<usize> = chunks(&items, |n| *n).map(<[usize]>::len).collect();
        assert_eq!(lens, [2, 2, 1]);
        let huge = vec![CHUNK_BYTES * 3, 1];
        let lens: Vec<usize> = chunks(&huge, |n| *n).map(<[usize]>::len).collect();
        assert_eq!(lens, [1, 1]);
        assert_eq!(chunks(&[] as &[usize], |n| *n).count(), 0);
    }

    #[test]
    fn the_last_entry_of_a_key_wins() {
        let e = |k: &str, v: u8| (k.to_string(), vec![v]);
        let entries = [e("b", 1), e("a", 2), e("b", 3)];
        let kept: Vec<_> = last_wins(&entries).into_iter().cloned().collect();
        assert_eq!(kept, [e("a", 2), e("b", 3)]);
    }

    #[test]
    fn the_location_shows_no_password() {
        let config: Config = "postgresql://me:secret@db.example:6543/app".parse().unwrap();
        assert_eq!(describe(&config), "db.example:6543/app");
    }
}
