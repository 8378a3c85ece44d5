//! The `Warehouse` contract, one suite for every back end: DuckDB (always) and
//! Snowflake (the fakesnow emulator behind tests/peers/snowflake_bridge.py, loading
//! through a real external stage from the S3 emulator). Each test runs its
//! behaviour against each back end that is up.

mod common;

use cdp::lake::{Lake, LakeUrl, S3Location};
use cdp::warehouse::snowflake::SnowflakeConfig;
use cdp::warehouse::{self, LoadObject, LoadOutcome, Warehouse, WarehouseError, WarehouseUrl};
use common::peers;

/// The password the Snowflake peer accepts (tests/peers/up.sh).
const PEER_PASSWORD: &str = "cdp-test-password";

/// One back end under test, with the lake its loads read from.
struct Backend {
    name: &'static str,
    url: WarehouseUrl,
    lake: Lake,
    _dir: tempfile::TempDir,
}

impl Backend {
    fn open(&self) -> Box<dyn Warehouse> {
        warehouse::open_for_run(&self.url, "test-run")
            .unwrap_or_else(|e| panic!("{}: open: {e}", self.name))
    }

    /// Writes rows (a VALUES list with column names) as Parquet into the lake.
    fn object(&self, key: &str, select: &str, keys: &[&str]) -> LoadObject {
        let file = self._dir.path().join("src.parquet");
        let conn = duckdb::Connection::open_in_memory().expect("duckdb");
        conn.execute_batch(&format!(
            "COPY ({select}) TO '{}' (FORMAT parquet)",
            file.display()
        ))
        .expect("write parquet");
        let (_, sha256) = self.lake.put_file(key, &file).expect("put");
        LoadObject {
            key: key.into(),
            path: self.lake.fetch(key).expect("fetch"),
            sha256,
            run_id: key.split('/').nth(2).unwrap_or("r").into(),
            keys: keys.iter().map(|k| k.to_string()).collect(),
            files: vec![key.into()],
        }
    }
}

fn duckdb_backend() -> Backend {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(&LakeUrl::Local(dir.path().join("lake"))).expect("lake");
    Backend {
        name: "duckdb",
        url: WarehouseUrl::Duckdb(dir.path().join("wh.duckdb")),
        lake,
        _dir: dir,
    }
}

/// Snowflake on the emulator, over a fresh S3 bucket and a database of its own.
fn snowflake_backend(test: &str) -> Option<Backend> {
    let sf = peers::snowflake_url(test)?;
    let s3 = peers::s3_endpoint(test)?;
    std::env::set_var("SNOWFLAKE_PASSWORD", PEER_PASSWORD);
    let bucket = peers::unique_bucket(test);
    peers::create_bucket(&s3, &bucket);
    let dir = tempfile::tempdir().expect("tempdir");
    let loc = S3Location {
        bucket: bucket.clone(),
        prefix: "lake".into(),
        region: Some("us-east-1".into()),
        endpoint_url: Some(s3),
        force_path_style: true,
        cache_dir: Some(dir.path().join("cache")),
    };
    let lake = Lake::open(&LakeUrl::S3(loc)).expect("s3 lake");
    let host = sf.trim_start_matches("http://");
    let db = bucket.replace('-', "_").to_uppercase();
    let mut conf = SnowflakeConfig::parse(&format!(
        "snowflake://cdp@{host}/{db}/PUBLIC?protocol=http&account=cdp"
    ))
    .expect("url");
    conf.pipeline = "contract".into();
    conf.lake_url = Some(format!("s3://{bucket}/lake"));
    Some(Backend {
        name: "snowflake",
        url: WarehouseUrl::Snowflake(Box::new(conf)),
        lake,
        _dir: dir,
    })
}

fn backends(test: &str) -> Vec<Backend> {
    let mut all = vec![duckdb_backend()];
    all.extend(snowflake_backend(test));
    all
}

fn scalar(wh: &mut dyn Warehouse, sql: &str) -> serde_json::Value {
    let r = wh.query(sql).expect("query");
    r.rows[0][0].clone()
}

fn as_i64(v: &serde_json::Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not a number: {v}"))
}

const V1: &str = "SELECT * FROM (VALUES ('crm', '1', 'Ann', 30), ('crm', '2', 'Bob', 41), \
                  ('shop', '1', 'Cy', 25)) t(source, record_id, name, age)";
const V2: &str = "SELECT * FROM (VALUES ('crm', '2', 'Bobby', 42, 'b@x.org'), \
                  ('shop', '9', 'Di', 33, NULL)) t(source, record_id, name, age, email)";

#[test]
fn a_snapshot_loads_exactly_once_and_the_ledger_remembers_it() {
    for b in backends("contract_once") {
        let mut wh = b.open();
        let obj = b.object("clean/person/r1/data.parquet", V1, &["source", "record_id"]);
        assert_eq!(
            wh.load_snapshot("person", &obj).expect("load"),
            LoadOutcome::Loaded { rows: 3 },
            "{}",
            b.name
        );
        assert_eq!(
            wh.load_snapshot("person", &obj).expect("reload"),
            LoadOutcome::AlreadyCurrent { rows: 3 },
            "{}",
            b.name
        );
        // A new session sees the same: the ledger is in the warehouse, not in memory.
        let mut again = b.open();
        assert_eq!(
            again.load_snapshot("person", &obj).expect("reload"),
            LoadOutcome::AlreadyCurrent { rows: 3 },
            "{}",
            b.name
        );
        assert_eq!(
            as_i64(&scalar(&mut *again, "SELECT count(*) FROM person")),
            3
        );
        let loads = scalar(
            &mut *again,
            "SELECT count(*) FROM _cdp_load_ledger WHERE table_name = 'person'",
        );
        assert_eq!(as_i64(&loads), 1, "{}", b.name);
    }
}

#[test]
fn a_new_snapshot_replaces_the_rows_and_adds_new_columns() {
    for b in backends("contract_evolve") {
        let mut wh = b.open();
        let v1 = b.object("clean/person/r1/data.parquet", V1, &["source", "record_id"]);
        let v2 = b.object("clean/person/r2/data.parquet", V2, &["source", "record_id"]);
        wh.load_snapshot("person", &v1).expect("v1");
        assert_eq!(
            wh.load_snapshot("person", &v2).expect("v2"),
            LoadOutcome::Loaded { rows: 2 },
            "{}",
            b.name
        );
        let r = wh
            .query(
                "SELECT source, record_id, name, age, email FROM person ORDER BY source, record_id",
            )
            .expect("query");
        let rows: Vec<Vec<String>> = r
            .rows
            .iter()
            .map(|row| {
                row.iter()
                    .map(|v| match v {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Null => "null".into(),
                        other => other.to_string(),
                    })
                    .collect()
            })
            .collect();
        assert_eq!(
            rows,
            [
                ["crm", "2", "Bobby", "42", "b@x.org"],
                ["shop", "9", "Di", "33", "null"]
            ],
            "{}",
            b.name
        );
        let cols: Vec<String> = r.columns.iter().map(|c| c.to_lowercase()).collect();
        assert_eq!(cols, ["source", "record_id", "name", "age", "email"]);
    }
}

#[test]
fn tables_without_keys_are_replaced_whole() {
    for b in backends("contract_nokeys") {
        let mut wh = b.open();
        let v1 = b.object("identity/r1/x.parquet", V1, &[]);
        let v2 = b.object("identity/r2/x.parquet", V2, &[]);
        wh.load_snapshot("things", &v1).expect("v1");
        wh.load_snapshot("things", &v2).expect("v2");
        assert_eq!(
            as_i64(&scalar(&mut *wh, "SELECT count(*) FROM things")),
            2,
            "{}",
            b.name
        );
    }
}

#[test]
fn snowflake_refuses_conflicting_columns_naming_them_and_loads_nothing() {
    let Some(b) = snowflake_backend("contract_conflict") else {
        return;
    };
    let mut wh = b.open();
    let v1 = b.object("clean/person/r1/data.parquet", V1, &["source", "record_id"]);
    wh.load_snapshot("person", &v1).expect("v1");
    let bad = b.object(
        "clean/person/r3/data.parquet",
        "SELECT 'crm' AS source, '7' AS record_id, 'Ed' AS name, 'old' AS age",
        &["source", "record_id"],
    );
    let err = wh
        .load_snapshot("person", &bad)
        .expect_err("age is a number");
    assert!(
        matches!(err, WarehouseError::SchemaConflict { .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains("age") && msg.contains("NUMBER"), "{msg}");
    assert_eq!(as_i64(&scalar(&mut *wh, "SELECT count(*) FROM person")), 3);
}

#[test]
fn every_backend_refuses_duplicate_keys_and_keeps_its_last_load() {
    // Regression (DuckDB): a snapshot with 41 copies of each key loaded with exit 0.
    for b in backends("contract_dupkeys") {
        let mut wh = b.open();
        let good = b.object(
            "clean/person/r0/data.parquet",
            "SELECT * FROM (VALUES ('crm', '1', 'Ann')) t(source, record_id, name)",
            &["source", "record_id"],
        );
        wh.load_snapshot("person", &good).expect("a first load");
        let dup = b.object(
            "clean/person/r1/data.parquet",
            "SELECT * FROM (VALUES ('crm', '1', 'Ann'), ('crm', '1', 'Ann B')) t(source, record_id, name)",
            &["source", "record_id"],
        );
        let err = wh
            .load_snapshot("person", &dup)
            .expect_err("duplicate keys");
        assert!(
            matches!(err, WarehouseError::DuplicateKeys { count: 1, .. }),
            "{}: {err}",
            b.name
        );
        assert_eq!(
            as_i64(&scalar(&mut *wh, "SELECT count(*) FROM person")),
            1,
            "{}: the last good load stands",
            b.name
        );
    }
}
