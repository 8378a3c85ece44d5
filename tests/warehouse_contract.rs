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

/// A pipeline whose audiences the contract builds: persons with a column of each type,
/// orders that belong to them, a trait, a holdout and splits.
const AUDIENCE_PIPELINE: &str = r#"
audiences = [
  { name = "buyers", where = { related = "orders", at_least = 2, where = { all = [{ column = "total", greater_than = 50 }, { column = "at", within_last = "90 days" }] } } },
  { name = "adults_not_buyers", where = { all = [
      { column = "birth", more_than_ago = "18 years" },
      { not_member_of = "buyers" },
      { any = [{ column = "name", starts_with = "O'" }, { column = "name", contains = "e" }, { trait = "spent", at_least = 0 }] },
  ] }, holdout = "20%", splits = { a = 50, b = 50 } },
  { name = "browsed", where = { event = "clicks", at_least = 2, where = { all = [{ column = "kind", equals = "view" }, { column = "at", within_last = "7 days" }] } } },
  { name = "cart_then_buy", where = { event = "clicks", where = { column = "kind", equals = "cart" }, then = { column = "kind", equals = "buy" }, within = "3 days", by = "at" } },
]
[pipeline]
name = "contract"
[lake]
url = "file://lake"
[warehouse]
url = "duckdb://w.duckdb"
[[sources]]
name = "crm"
kind = "files"
path = "p/*.csv"
entity = "person"
columns = { Id = "record_id", Name = "name", Birth = "birth" }
[[sources]]
name = "shop"
kind = "files"
path = "o/*.csv"
entity = "orders"
columns = { Id = "order_id", Customer = "customer_id", Total = "total", At = "at" }
[entities.person]
key = "record_id"
columns = { name = "text", birth = { kind = "date" } }
[entities.orders]
key = "order_id"
columns = { order_id = "integer", customer_id = "integer", total = "float", at = "timestamp" }
belongs_to = { source = "crm", column = "customer_id" }
[entities.click]
key = "click_id"
columns = { click_id = "text", kind = "text", at = "timestamp" }
[[streams]]
name = "clicks"
kind = "kinesis"
entity = "click"
stream_name = "clicks"
region = "us-east-1"
[identity]
entity = "person"
rules = [{ name = "n", match = ["name"] }]
attributes = ["name", "birth"]
[[traits]]
name = "spent"
related = "orders"
aggregate = "sum"
of = "total"
"#;

fn column(wh: &mut dyn Warehouse, sql: &str) -> Vec<String> {
    let mut out: Vec<String> = wh
        .query(sql)
        .expect("query")
        .rows
        .iter()
        .map(|r| match &r[0] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    out.sort();
    out
}

#[test]
fn audiences_build_publish_and_rebuild_the_same_on_every_backend() {
    use cdp::audience::{build, BuildOptions};
    let p = cdp::config::Pipeline::from_str(
        AUDIENCE_PIPELINE,
        std::path::Path::new("contract.toml"),
        &cdp::config::Overrides::default(),
    )
    .expect("pipeline");
    let as_of = chrono::NaiveDate::from_ymd_opt(2026, 3, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("as of");
    let mut results = Vec::new();
    for b in backends("contract_audiences") {
        let mut wh = b.open();
        let c360 = b.object(
            "identity/r1/profiles.parquet",
            "SELECT * FROM (VALUES ('P1', 'O''Brien', DATE '1980-01-01'), ('P2', 'Lee', DATE '2015-06-01'), \
             ('P3', 'Kim', DATE '1990-02-02'), ('P4', NULL, NULL), ('P5', 'Eve', DATE '1970-03-03')) t(person_id, name, birth)",
            &["person_id"],
        );
        let graph = b.object(
            "identity/r1/graph.parquet",
            "SELECT * FROM (VALUES ('crm', '1', 'P1'), ('crm', '2', 'P2'), ('crm', '3', 'P3'), ('crm', '5', 'P5')) t(source, record_id, person_id)",
            &["source", "record_id"],
        );
        let orders = b.object(
            "clean/orders/r1/data.parquet",
            "SELECT order_id, customer_id, total, CAST(t.\"at\" AS TIMESTAMP) AS \"at\", 'shop' AS source FROM (VALUES \
             (1, 1, 60.0, '2026-02-01 10:00:00'), (2, 1, 70.0, '2026-02-20 10:00:00'), \
             (3, 3, 80.0, '2026-02-20 10:00:00'), (4, 3, 20.0, '2026-02-21 10:00:00'), \
             (5, 5, 99.0, '2025-01-01 10:00:00'), (6, 5, 99.0, '2026-02-25 10:00:00'), (7, 5, 51.0, '2026-02-26 10:00:00')) \
             t(order_id, customer_id, total, \"at\")",
            &["order_id"],
        );
        wh.load_snapshot("customer_360", &c360)
            .expect("customer_360");
        wh.load_snapshot("identity_graph", &graph).expect("graph");
        wh.load_snapshot("orders", &orders).expect("orders");
        // Events as `cdp stream` lands them, with the person id matched then: P9 is a
        // person a later resolve retired, and one event matched nobody.
        let clicks = b.object(
            "stream/clicks/batches/0.parquet",
            "SELECT click_id, kind, CAST(t.\"at\" AS TIMESTAMP) AS \"at\", person_id FROM (VALUES \
             ('c1', 'view', '2026-02-27 10:00:00', 'P1'), ('c2', 'view', '2026-02-28 10:00:00', 'P1'), \
             ('c3', 'view', '2026-02-01 10:00:00', 'P3'), ('c4', 'view', '2026-02-28 11:00:00', 'P3'), \
             ('c5', 'cart', '2026-02-20 10:00:00', 'P3'), ('c6', 'buy', '2026-02-22 09:00:00', 'P3'), \
             ('c7', 'cart', '2026-02-01 10:00:00', 'P5'), ('c8', 'buy', '2026-02-10 10:00:00', 'P5'), \
             ('c9', 'cart', '2026-02-26 10:00:00', 'P9'), ('c10', 'buy', '2026-02-26 12:00:00', 'P9'), \
             ('c11', 'view', '2026-02-27 10:00:00', NULL), ('c12', 'view', '2026-02-28 10:00:00', NULL)) \
             t(click_id, kind, \"at\", person_id)",
            &[],
        );
        wh.load_snapshot("stream_clicks", &clicks).expect("clicks");
        let options = BuildOptions {
            run_id: "r1".into(),
            as_of,
            names: Vec::new(),
        };
        let report = build(&mut *wh, &p, &options).unwrap_or_else(|e| panic!("{}: {e}", b.name));
        assert!(report.published, "{}", b.name);
        let buyers = column(&mut *wh, "SELECT person_id FROM audience_buyers");
        assert_eq!(buyers, ["P1", "P5"], "{}", b.name);
        // Two views in the last 7 days: P1 (P3's first is older; the unmatched
        // events belong to nobody). A cart then a buy within 3 days: P3 (P5's came 9
        // days later; P9 is no longer a person).
        let browsed = column(&mut *wh, "SELECT person_id FROM audience_browsed");
        assert_eq!(browsed, ["P1"], "{}", b.name);
        let sequence = column(&mut *wh, "SELECT person_id FROM audience_cart_then_buy");
        assert_eq!(sequence, ["P3"], "{}", b.name);
        // Events arrive between loads: their audiences are never read from a build.
        let events_look = cdp::audience::preview::PreviewOptions::default();
        let pv =
            cdp::audience::preview::preview(&mut *wh, &p, "cart_then_buy", as_of, &events_look)
                .unwrap_or_else(|e| panic!("{}: preview of events: {e}", b.name));
        assert_eq!((pv.size, pv.built_by), (1, None), "{}", b.name);
        // Adults who are not buyers: P3 (P4 has no birth date; P2 is a child).
        let members = column(
            &mut *wh,
            "SELECT person_id FROM audience_adults_not_buyers UNION ALL SELECT person_id FROM audience_holdouts",
        );
        assert_eq!(members, ["P3"], "{}", b.name);
        let state = |wh: &mut dyn Warehouse| {
            [
                column(wh, "SELECT person_id || ':' || audience || ':' || run || ':' || CASE WHEN exited_at IS NULL THEN 'in' ELSE 'out' END FROM audience_membership"),
                column(wh, "SELECT audience || ':' || CAST(size AS VARCHAR) || ':' || CAST(entered AS VARCHAR) FROM audience_runs"),
                column(wh, "SELECT person_id || ':' || COALESCE(split, '-') FROM audience_adults_not_buyers"),
            ]
        };
        let first = state(&mut *wh);
        // Preview and list read the same on every back end.
        let look = cdp::audience::preview::PreviewOptions {
            sample: 5,
            by: Some("spent".into()),
            overlap: Some("adults_not_buyers".into()),
            fresh: false,
        };
        // Just built, nothing loaded since: read from the built tables. Evaluated
        // afresh (into a temporary table), the same figures.
        for fresh in [false, true] {
            let look = cdp::audience::preview::PreviewOptions {
                fresh,
                ..look.clone()
            };
            let pv = cdp::audience::preview::preview(&mut *wh, &p, "buyers", as_of, &look)
                .unwrap_or_else(|e| panic!("{}: preview: {e}", b.name));
            assert_eq!(
                pv.built_by.as_deref(),
                (!fresh).then_some(options.run_id.as_str()),
                "{}",
                b.name
            );
            assert_eq!(
                (pv.size, pv.persons, pv.sample.len()),
                (2, 5, 2),
                "{}",
                b.name
            );
            assert_eq!(pv.groups.len(), 2, "{}: {:?}", b.name, pv.groups);
            assert_eq!(
                pv.overlap.as_ref().map(|o| (o.size, o.both)),
                Some((1, 0)),
                "{}",
                b.name
            );
        }
        // Another interval end is another definition: evaluated, not read.
        let pv = cdp::audience::preview::preview(
            &mut *wh,
            &p,
            "buyers",
            as_of + chrono::TimeDelta::days(1),
            &look,
        )
        .expect("preview of another day");
        assert_eq!(pv.built_by, None, "{}", b.name);
        // A load since the build (a snapshot of orders that replaces them with one of
        // a record no person has): evaluated again, no buyers; the old orders back.
        let more = b.object(
            "clean/orders/r1b/data.parquet",
            "SELECT order_id, customer_id, total, CAST(t.\"at\" AS TIMESTAMP) AS \"at\", 'shop' AS source FROM (VALUES \
             (8, 4, 10.0, '2020-01-01 10:00:00')) t(order_id, customer_id, total, \"at\")",
            &["order_id"],
        );
        wh.load_snapshot("orders", &more).expect("more orders");
        let pv = cdp::audience::preview::preview(&mut *wh, &p, "buyers", as_of, &look)
            .expect("preview after a load");
        assert_eq!((pv.built_by, pv.size), (None, 0), "{}", b.name);
        wh.load_snapshot("orders", &orders).expect("orders again");
        let listed = cdp::audience::preview::list(&mut *wh, &p).expect("list");
        assert_eq!(listed[0].last_size, Some(2), "{}", b.name);
        // The same run again: the same state, no duplicate rows.
        build(&mut *wh, &p, &options).expect("again");
        assert_eq!(state(&mut *wh), first, "{}", b.name);
        // A later run in which P5's last orders are older than 90 days: P5 leaves buyers.
        let later = BuildOptions {
            run_id: "r2".into(),
            as_of: as_of + chrono::TimeDelta::days(120),
            names: vec!["buyers".into()],
        };
        let r2 = build(&mut *wh, &p, &later).expect("later");
        assert_eq!(
            (r2.audiences[0].size, r2.audiences[0].exited),
            (0, 2),
            "{}",
            b.name
        );
        let exits = column(
            &mut *wh,
            "SELECT person_id FROM audience_membership WHERE run = 'r2' AND exited_at IS NOT NULL",
        );
        assert_eq!(exits, ["P1", "P5"], "{}", b.name);
        results.push((b.name, first));
    }
    // Every back end gave the same members, history and splits.
    if let [(_, a), (_, b)] = results.as_slice() {
        assert_eq!(a, b, "DuckDB and Snowflake disagree");
    }
}

/// A source of kind `warehouse` reads a table of the warehouse past its cursor, the
/// same on every back end: every row once, then nothing until a newer row comes.
#[test]
fn a_warehouse_source_lands_each_row_once_on_every_backend() {
    let text = r#"
[pipeline]
name = "contract"
[lake]
url = "file://lake"
[warehouse]
url = "duckdb://w.duckdb"
[[sources]]
name = "share"
kind = "warehouse"
table = "contacts_share"
cursor = "updated_at"
entity = "person"
columns = { ID = "record_id" }
[entities.person]
key = "record_id"
"#;
    for b in backends("contract_wh_source") {
        let mut wh = b.open();
        wh.execute("CREATE TABLE contacts_share (id VARCHAR, email VARCHAR, updated_at TIMESTAMP)")
            .expect("create");
        wh.execute("INSERT INTO contacts_share VALUES ('1', 'a@x.org', '2026-01-01 10:00:00'), ('2', 'b@x.org', '2026-01-02 10:00:00')")
            .expect("insert");
        drop(wh);
        let mut p = cdp::config::Pipeline::from_str(
            text,
            std::path::Path::new("contract.toml"),
            &cdp::config::Overrides::default(),
        )
        .expect("pipeline");
        let cdp::config::Connector::Warehouse(w) = &mut p.sources[0].connector else {
            panic!("not a warehouse source");
        };
        w.warehouse = b.url.clone();
        let source = cdp::sources::build(&p.sources[0]);
        let first = source
            .land(&b.lake, "r1", None)
            .unwrap_or_else(|e| panic!("{}: land: {e}", b.name))
            .expect("rows landed");
        assert_eq!(first.rows(), 2, "{}", b.name);
        assert!(
            source.land(&b.lake, "r2", None).expect("again").is_none(),
            "{}",
            b.name
        );
        let mut wh = b.open();
        wh.execute("INSERT INTO contacts_share VALUES ('3', 'c@x.org', '2026-01-03 10:00:00')")
            .expect("insert more");
        drop(wh);
        let more = source
            .land(&b.lake, "r3", None)
            .expect("more")
            .expect("new rows");
        assert_eq!(more.rows(), 1, "{}", b.name);
        eprintln!("warehouse source on {}: ok", b.name);
        assert!(
            source
                .check_connection()
                .expect("connect")
                .contains("contacts_share"),
            "{}",
            b.name
        );
    }
}
