//! The storage contract (SPEC section 6) on every adapter: each case is one generic function, run on
//! SQLite (a temporary file) and on PostgreSQL (the server at `$ONEGRID_TEST_POSTGRES`, in a schema
//! of its own). Without that variable the PostgreSQL cases fail and say how to start a server.
// In tests a panic is the failure report: unwrap means "this must succeed".
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use onegrid_core::{StorageOp, StorageResult};
use onegrid_host::storage::{self, PostgresStorage, SqliteStorage, Storage, StorageError};

/// A key whose writes a test can make the database refuse, from inside the database. It sorts
/// after every other key of the tests, so a batch fails after writing all the rest.
const POISON: &str = "~poison";

/// One kind of database, as the cases see it.
trait Backend {
    /// The adapter's name in error messages.
    const NAME: &str;
    /// A fresh, empty store that no other test uses.
    fn fresh() -> Self;
    /// A new adapter on this store (through [`storage::open`], which must pick this backend).
    fn open(&self) -> Box<dyn Storage>;
    /// Opening with this backend's own constructor, to see its error.
    fn open_err(&self) -> StorageError;
    /// From now on, the database itself refuses any write of the key [`POISON`].
    fn poison(&self);
    /// Marks the store as written by a onegrid with schema `version`.
    fn set_schema_version(&self, version: i64);
}

fn unique(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

// ---- SQLite ------------------------------------------------------------------------------------

struct Sqlite {
    dir: PathBuf,
    file: PathBuf,
}

impl Backend for Sqlite {
    const NAME: &str = "sqlite";

    fn fresh() -> Self {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique("storage"));
        let _ = std::fs::remove_dir_all(&dir); // may not exist
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("grid.db");
        Self { dir, file }
    }

    fn open(&self) -> Box<dyn Storage> {
        storage::open(self.file.to_str().unwrap()).unwrap()
    }

    fn open_err(&self) -> StorageError {
        SqliteStorage::open(&self.file).expect_err("opening should fail")
    }

    fn poison(&self) {
        let sql = format!(
            "CREATE TRIGGER test_poison BEFORE INSERT ON onegrid_records WHEN NEW.key = '{POISON}'
             BEGIN SELECT RAISE(ABORT, 'poisoned by the test'); END"
        );
        rusqlite::Connection::open(&self.file).unwrap().execute_batch(&sql).unwrap();
    }

    fn set_schema_version(&self, version: i64) {
        rusqlite::Connection::open(&self.file).unwrap().pragma_update(None, "user_version", version).unwrap();
    }
}

impl Drop for Sqlite {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir); // best effort
    }
}

// ---- PostgreSQL --------------------------------------------------------------------------------

/// A schema of its own on the test server; the adapter finds it through `search_path`.
struct Postgres {
    admin: String,
    schema: String,
    url: String,
}

fn postgres_admin_url() -> String {
    match std::env::var("ONEGRID_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "ONEGRID_TEST_POSTGRES is not set: the PostgreSQL adapter tests need a server. Start a \
             throwaway one on loopback with\n    export ONEGRID_TEST_POSTGRES=\"$(tests/ci/postgres.sh start)\"\n\
             and stop it afterwards with `tests/ci/postgres.sh stop`."
        ),
    }
}

impl Postgres {
    fn admin(&self) -> ::postgres::Client {
        ::postgres::Client::connect(&self.admin, ::postgres::NoTls).unwrap()
    }
}

impl Backend for Postgres {
    const NAME: &str = "postgres";

    fn fresh() -> Self {
        let admin = postgres_admin_url();
        let schema = unique("onegrid_test");
        let mut client = ::postgres::Client::connect(&admin, ::postgres::NoTls).unwrap_or_else(|e| {
            panic!("cannot reach ONEGRID_TEST_POSTGRES: {e} ({:?})", std::error::Error::source(&e))
        });
        client.batch_execute(&format!("CREATE SCHEMA {schema}")).unwrap();
        let sep = if admin.contains('?') { '&' } else { '?' };
        // `options` is sent at startup: `-c search_path=<schema>`, percent-encoded.
        let url = format!("{admin}{sep}options=-c%20search_path%3D{schema}&application_name={schema}");
        Self { admin, schema, url }
    }

    fn open(&self) -> Box<dyn Storage> {
        storage::open(&self.url).unwrap()
    }

    fn open_err(&self) -> StorageError {
        PostgresStorage::connect(&self.url).expect_err("connecting should fail")
    }

    fn poison(&self) {
        let s = &self.schema;
        self.admin()
            .batch_execute(&format!(
                "CREATE FUNCTION {s}.test_poison() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN
                     IF NEW.key = convert_to('{POISON}', 'UTF8') THEN RAISE EXCEPTION 'poisoned by the test'; END IF;
                     RETURN NEW;
                 END $$;
                 CREATE TRIGGER test_poison BEFORE INSERT ON {s}.onegrid_records
                     FOR EACH ROW EXECUTE FUNCTION {s}.test_poison();"
            ))
            .unwrap();
    }

    fn set_schema_version(&self, version: i64) {
        let sql = format!("UPDATE {}.onegrid_schema SET version = $1", self.schema);
        assert_eq!(self.admin().execute(&sql, &[&version]).unwrap(), 1);
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Ok(mut client) = ::postgres::Client::connect(&self.admin, ::postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema)); // best effort
        }
    }
}

// ---- helpers -----------------------------------------------------------------------------------

fn strings(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

fn entry(key: &str, value: &[u8]) -> (String, Vec<u8>) {
    (key.to_string(), value.to_vec())
}

fn key_set(s: &mut dyn Storage, map: &str) -> BTreeSet<String> {
    let keys = s.load_all_keys(map).unwrap();
    let set: BTreeSet<String> = keys.iter().cloned().collect();
    assert_eq!(set.len(), keys.len(), "load_all_keys returned a key twice");
    set
}

/// Everything stored for `map`, by loading all its keys.
fn contents(s: &mut dyn Storage, map: &str) -> BTreeMap<String, Vec<u8>> {
    let keys: Vec<String> = key_set(s, map).into_iter().collect();
    let values = s.load_all(map, &keys).unwrap();
    assert_eq!(values.len(), keys.len(), "load_all of every key in {map:?}");
    values.into_iter().collect()
}

fn expect(entries: &[(&str, &[u8])]) -> BTreeMap<String, Vec<u8>> {
    entries.iter().map(|(k, v)| entry(k, v)).collect()
}

/// Bytes that look like stored values: every byte value, zeros included.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

// ---- the cases ---------------------------------------------------------------------------------

fn maps_are_isolated<B: Backend>(b: &B) {
    let mut s = b.open();
    s.store("a", "k", b"in a").unwrap();
    s.store_all("b", &[entry("k", b"in b"), entry("only-b", b"x")]).unwrap();
    assert_eq!(contents(&mut *s, "a"), expect(&[("k", b"in a")]));
    assert_eq!(contents(&mut *s, "b"), expect(&[("k", b"in b"), ("only-b", b"x")]));
    assert_eq!(s.load_all("a", &strings(&["only-b"])).unwrap(), []);

    s.delete("a", "k").unwrap();
    s.delete_all("b", &strings(&["only-b"])).unwrap();
    assert_eq!(contents(&mut *s, "a"), expect(&[]));
    assert_eq!(contents(&mut *s, "b"), expect(&[("k", b"in b")]));
    // A map name that is a prefix of another is another map.
    s.store("ab", "k", b"in ab").unwrap();
    assert_eq!(contents(&mut *s, "a"), expect(&[]));
}

fn missing_keys_are_absent<B: Backend>(b: &B) {
    let mut s = b.open();
    s.store_all("m", &[entry("a", b"1"), entry("c", b"3")]).unwrap();
    let mut found = s.load_all("m", &strings(&["a", "b", "c", "d"])).unwrap();
    found.sort();
    assert_eq!(found, [entry("a", b"1"), entry("c", b"3")]);
    assert_eq!(s.load_all("m", &[]).unwrap(), []);
    assert_eq!(s.load_all("no such map", &strings(&["a"])).unwrap(), []);
}

fn an_unknown_map_has_no_keys<B: Backend>(b: &B) {
    let mut s = b.open();
    assert_eq!(s.load_all_keys("never written").unwrap(), Vec::<String>::new());
    s.store("m", "k", b"v").unwrap();
    s.delete("m", "k").unwrap();
    assert_eq!(s.load_all_keys("m").unwrap(), Vec::<String>::new());
}

fn the_last_write_wins<B: Backend>(b: &B) {
    let mut s = b.open();
    s.store("m", "k", b"first").unwrap();
    s.store("m", "k", b"second").unwrap();
    assert_eq!(contents(&mut *s, "m"), expect(&[("k", b"second")]));

    s.store_all("m", &[entry("j", b"new"), entry("k", b"third")]).unwrap();
    assert_eq!(contents(&mut *s, "m"), expect(&[("j", b"new"), ("k", b"third")]));

    // A key twice in one batch: its last entry wins.
    s.store_all("m", &[entry("k", b"x"), entry("a", b"a"), entry("k", b"fourth")]).unwrap();
    assert_eq!(contents(&mut *s, "m"), expect(&[("a", b"a"), ("j", b"new"), ("k", b"fourth")]));

    // A longer value, then a shorter one: nothing of the old one is left.
    s.store("m", "k", &[7; 1000]).unwrap();
    s.store("m", "k", b"z").unwrap();
    assert_eq!(s.load_all("m", &strings(&["k"])).unwrap(), [entry("k", b"z")]);
}

fn single_store_and_delete<B: Backend>(b: &B) {
    let mut s = b.open();
    s.store("m", "a", b"1").unwrap();
    s.store("m", "b", b"2").unwrap();
    s.delete("m", "a").unwrap();
    s.delete("m", "a").unwrap(); // again: no error
    s.delete("m", "never").unwrap();
    s.delete("other", "b").unwrap();
    assert_eq!(contents(&mut *s, "m"), expect(&[("b", b"2")]));
}

fn delete_all_ignores_absent_keys<B: Backend>(b: &B) {
    let mut s = b.open();
    s.store_all("m", &[entry("a", b"1"), entry("b", b"2"), entry("c", b"3")]).unwrap();
    s.delete_all("m", &strings(&["b", "x", "y", "b"])).unwrap();
    assert_eq!(contents(&mut *s, "m"), expect(&[("a", b"1"), ("c", b"3")]));
    s.delete_all("m", &[]).unwrap();
    s.store_all("m", &[]).unwrap();
    s.delete_all("never", &strings(&["a"])).unwrap();
    assert_eq!(contents(&mut *s, "m"), expect(&[("a", b"1"), ("c", b"3")]));
    s.delete_all("m", &strings(&["a", "c"])).unwrap();
    assert_eq!(contents(&mut *s, "m"), expect(&[]));
}

fn a_large_batch_round_trips<B: Backend>(b: &B) {
    const N: usize = 100_000;
    let entries: Vec<(String, Vec<u8>)> =
        (0..N).map(|i| (format!("record-{i:06}"), bytes(i as u64, 48 + i % 25))).collect();
    let mut s = b.open();

    let start = Instant::now();
    s.store_all("big", &entries).unwrap();
    let stored = start.elapsed();

    let start = Instant::now();
    let mut keys = s.load_all_keys("big").unwrap();
    let keys_loaded = start.elapsed();
    keys.sort();
    let start = Instant::now();
    let mut loaded = s.load_all("big", &keys).unwrap();
    let values_loaded = start.elapsed();
    eprintln!(
        "{}: {N} records of ~60 bytes: store_all {stored:.2?}, load_all_keys {keys_loaded:.2?}, \
         load_all {values_loaded:.2?}",
        B::NAME
    );

    assert_eq!(keys.len(), N);
    assert!(keys.iter().eq(entries.iter().map(|(k, _)| k)), "load_all_keys brought other keys");
    loaded.sort();
    assert!(loaded == entries, "load_all brought other records");

    s.delete_all("big", &keys[..N / 2]).unwrap();
    assert_eq!(s.load_all_keys("big").unwrap().len(), N / 2);
}

fn keys_and_map_names_may_hold_any_text<B: Backend>(b: &B) {
    let long = "ключ🗝".repeat(2_000);
    let keys = [
        "",
        " ",
        "a",
        "a ",
        "A",
        "😀",
        "quote'\"`",
        "back\\slash",
        "percent%_under",
        "new\nline\ttab\r",
        "nul\0inside",
        "\0",
        "é",        // composed
        "e\u{301}", // decomposed: another key
        "\u{feff}bom",
        "__tombstones__",
        "'); DROP TABLE onegrid_records; --",
        long.as_str(),
    ];
    let mut s = b.open();
    for map in ["m", "ünïcødé 🗺", "map \"with\" quotes", "nul\0map", &"m".repeat(256)] {
        let entries: Vec<(String, Vec<u8>)> =
            keys.iter().enumerate().map(|(i, k)| (k.to_string(), format!("v{i}").into_bytes())).collect();
        s.store_all(map, &entries).unwrap();
        assert_eq!(contents(&mut *s, map), entries.iter().cloned().collect(), "map {map:?}");
        s.store(map, "", b"empty key again").unwrap();
        assert_eq!(s.load_all(map, &strings(&[""])).unwrap(), [entry("", b"empty key again")]);
        s.delete(map, "nul\0inside").unwrap();
        assert_eq!(s.load_all(map, &strings(&["nul\0inside", "nul"])).unwrap(), []);
        s.delete_all(map, &keys.iter().map(|k| k.to_string()).collect::<Vec<_>>()).unwrap();
        assert_eq!(contents(&mut *s, map), expect(&[]), "map {map:?}");
    }
}

fn values_are_opaque_bytes<B: Backend>(b: &B) {
    let all: Vec<u8> = (0..=255).collect();
    let big = bytes(7, 3 << 20);
    let values: [(&str, &[u8]); 6] = [
        ("empty", b""),
        ("zero", &[0]),
        ("zeros", &[0, 0, 0]),
        ("all", &all),
        ("big", &big),
        ("bad utf8", &[0xff, 0xfe, 0]),
    ];
    let mut s = b.open();
    s.store_all("m", &values.iter().map(|(k, v)| entry(k, v)).collect::<Vec<_>>()).unwrap();
    assert_eq!(contents(&mut *s, "m"), expect(&values));
    for (k, v) in values {
        s.store("single", k, v).unwrap();
    }
    assert_eq!(contents(&mut *s, "single"), expect(&values));
}

fn data_survives_a_reopen<B: Backend>(b: &B) {
    {
        let mut s = b.open();
        s.store_all("m", &[entry("a", b"1"), entry("b", &[0, 1])]).unwrap();
        s.store("n", "c", b"3").unwrap();
        s.delete("m", "a").unwrap();
    }
    let mut s = b.open();
    assert_eq!(contents(&mut *s, "m"), expect(&[("b", &[0, 1])]));
    assert_eq!(contents(&mut *s, "n"), expect(&[("c", b"3")]));
}

fn two_adapters_share_one_store<B: Backend>(b: &B) {
    let mut one = b.open();
    let mut two = b.open();
    one.store_all("m", &[entry("a", b"1")]).unwrap();
    assert_eq!(contents(&mut *two, "m"), expect(&[("a", b"1")]));
    two.delete_all("m", &strings(&["a"])).unwrap();
    assert_eq!(contents(&mut *one, "m"), expect(&[]));
}

fn store_all_is_all_or_nothing<B: Backend>(b: &B) {
    let mut s = b.open();
    s.store_all("m", &[entry("existing", b"old")]).unwrap();
    b.poison();

    // Large values, so on PostgreSQL the batch takes several statements and the poison comes in the
    // last one, after the others were written.
    let batch = vec![
        entry("a", &bytes(1, 3 << 20)),
        entry("b", &bytes(2, 3 << 20)),
        entry("existing", b"new"),
        entry(POISON, b"refused"),
    ];
    let err = s.store_all("m", &batch).expect_err("the database refuses the poisoned key");
    let text = err.to_string();
    assert!(text.starts_with(&format!("{}: store_all on map \"m\": ", B::NAME)), "{text}");
    assert!(text.contains("poisoned by the test"), "{text}");
    assert_eq!((err.backend(), err.op()), (B::NAME, "store_all"));
    assert_eq!(contents(&mut *s, "m"), expect(&[("existing", b"old")]), "nothing of the batch landed");

    // The adapter is still usable, and the same batch without the poison goes through.
    s.store_all("m", &batch[..3]).unwrap();
    assert_eq!(key_set(&mut *s, "m"), ["a", "b", "existing"].map(String::from).into());
    let err = s.store("m", POISON, b"x").expect_err("refused alone too");
    assert!(err.to_string().starts_with(&format!("{}: store on map \"m\": ", B::NAME)), "{err}");
}

fn a_newer_schema_is_refused<B: Backend>(b: &B) {
    drop(b.open()); // creates the tables
    b.set_schema_version(99);
    let err = b.open_err();
    let text = err.to_string();
    assert_eq!((err.backend(), err.op()), (B::NAME, "open"));
    assert!(text.starts_with(&format!("{}: open ", B::NAME)), "{text}");
    assert!(text.contains("schema version 99, newer than version 1"), "{text}");
    b.set_schema_version(1);
    let mut s = b.open();
    s.store("m", "k", b"v").unwrap();
}

fn execute_answers_the_managers_requests<B: Backend>(b: &B) {
    let mut s = b.open();
    let map = || "m".to_string();
    let store = StorageOp::StoreAll { map: map(), entries: vec![entry("a", b"1"), entry("b", b"2")] };
    assert_eq!(storage::execute(&mut *s, &store), StorageResult::Done);
    let keys = storage::execute(&mut *s, &StorageOp::LoadAllKeys { map: map() });
    let StorageResult::Keys(mut keys) = keys else { panic!("{keys:?}") };
    keys.sort();
    assert_eq!(keys, strings(&["a", "b"]));
    let load = StorageOp::LoadAll { map: map(), keys: strings(&["a", "c"]) };
    assert_eq!(storage::execute(&mut *s, &load), StorageResult::Values(vec![entry("a", b"1")]));
    let delete = StorageOp::DeleteAll { map: map(), keys: strings(&["a", "z"]) };
    assert_eq!(storage::execute(&mut *s, &delete), StorageResult::Done);
    assert_eq!(contents(&mut *s, "m"), expect(&[("b", b"2")]));

    b.poison();
    let poisoned = StorageOp::StoreAll { map: map(), entries: vec![entry(POISON, b"x")] };
    let StorageResult::Failed(message) = storage::execute(&mut *s, &poisoned) else { panic!("should fail") };
    assert!(message.starts_with(&format!("{}: store_all on map \"m\": ", B::NAME)), "{message}");
}

/// Each case as a test on each backend.
macro_rules! on_every_backend {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $case() { super::$case(&<super::Sqlite as super::Backend>::fresh()); })*
        }
        mod postgres {
            $(#[test] fn $case() { super::$case(&<super::Postgres as super::Backend>::fresh()); })*
        }
    };
}

on_every_backend!(
    maps_are_isolated,
    missing_keys_are_absent,
    an_unknown_map_has_no_keys,
    the_last_write_wins,
    single_store_and_delete,
    delete_all_ignores_absent_keys,
    a_large_batch_round_trips,
    keys_and_map_names_may_hold_any_text,
    values_are_opaque_bytes,
    data_survives_a_reopen,
    two_adapters_share_one_store,
    store_all_is_all_or_nothing,
    a_newer_schema_is_refused,
    execute_answers_the_managers_requests,
);

// ---- one backend only --------------------------------------------------------------------------

#[test]
fn sqlite_uses_wal_and_refuses_a_file_that_is_not_a_database() {
    let b = Sqlite::fresh();
    drop(b.open());
    let conn = rusqlite::Connection::open(&b.file).unwrap();
    let mode: String = conn.pragma_query_value(None, "journal_mode", |row| row.get(0)).unwrap();
    assert_eq!(mode, "wal");

    let junk = b.dir.join("junk.db");
    std::fs::write(&junk, b"this is not a SQLite database, not even close to one").unwrap();
    let err = SqliteStorage::open(&junk).expect_err("not a database");
    let text = err.to_string();
    assert!(text.starts_with(&format!("sqlite: open {junk:?}: ")), "{text}");
    assert!(text.contains("not a database"), "{text}");
}

#[test]
fn postgres_reconnects_after_losing_its_connection() {
    let b = Postgres::fresh();
    let mut s = b.open();
    s.store("m", "k", b"v").unwrap();
    let ended: i64 = b
        .admin()
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1) t",
            &[&b.schema],
        )
        .unwrap()
        .get(0);
    assert_eq!(ended, 1, "the adapter's connection was found and ended");
    assert_eq!(contents(&mut *s, "m"), expect(&[("k", b"v")]));
    s.store("m", "k", b"w").unwrap();
}

#[test]
fn postgres_errors_name_the_server_but_not_the_password() {
    // Port 1 on loopback: nothing listens there.
    let err = PostgresStorage::connect("postgresql://me:hunter2@127.0.0.1:1/app").expect_err("nothing listens");
    let text = err.to_string();
    assert!(text.starts_with("postgres: open 127.0.0.1:1/app: error connecting to server"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    let err = PostgresStorage::connect("postgresql://me:hunter2@[bad").expect_err("not a URL");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}
