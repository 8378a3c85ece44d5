//! A source of kind `warehouse`: rows of a table (or query) of the pipeline's own
//! warehouse, past a cursor column, land in the lake like any source's and go
//! through clean, resolve and load; a second run takes only the newer rows, a run for
//! a data interval only the rows whose cursor falls in it, and bad keys are refused
//! at validate naming them.

mod common;

use common::TestContext;

const PIPELINE: &str = r#"[pipeline]
name = "from_the_warehouse"
[lake]
url = "file://lake"
[warehouse]
url = "duckdb://warehouse.duckdb"
[[sources]]
name = "share"
kind = "warehouse"
table = "marketplace.contacts"
cursor = "UPDATED_AT"
entity = "person"
columns = { ID = "record_id", EMAIL = "email", NAME = "first_name" }
ignore = ["UPDATED_AT"]
[entities.person]
key = "record_id"
columns = { email = "email", first_name = "person_name" }
[identity]
entity = "person"
rules = [{ name = "email", match = ["email"] }]
attributes = ["email", "first_name"]
[load]
tables = ["person", "identity_graph", "customer_360"]
"#;

/// Runs SQL on the warehouse file (as the share's owner would fill it).
fn fill(ctx: &TestContext, sql: &str) {
    let conn = duckdb::Connection::open(ctx.path().join("warehouse.duckdb")).expect("open");
    conn.execute_batch(sql).expect("fill the share");
}

/// Rows landed so far by the source: the sum over its manifests.
fn landed(ctx: &TestContext) -> u64 {
    let Ok(dirs) = std::fs::read_dir(ctx.path().join("lake/raw/share")) else {
        return 0;
    };
    dirs.filter_map(|d| std::fs::read(d.ok()?.path().join("_manifest.json")).ok())
        .map(|bytes| {
            let m: serde_json::Value = serde_json::from_slice(&bytes).expect("manifest");
            m["files"]
                .as_array()
                .expect("files")
                .iter()
                .filter_map(|f| f["rows"].as_u64())
                .sum::<u64>()
        })
        .sum()
}

/// `cdp ingest` with `extra`; the rows it landed.
fn ingest(ctx: &TestContext, p: &std::path::Path, extra: &[&str]) -> u64 {
    let before = landed(ctx);
    ctx.step("ingest", p, extra).ok();
    landed(ctx) - before
}

#[test]
fn a_warehouse_table_is_read_past_its_cursor_into_the_lake_and_through_the_pipeline() {
    let ctx = TestContext::new();
    let p = ctx.write("p.toml", PIPELINE);
    fill(
        &ctx,
        "CREATE SCHEMA marketplace;
         CREATE TABLE marketplace.contacts (ID VARCHAR, EMAIL VARCHAR, NAME VARCHAR, UPDATED_AT TIMESTAMP);
         INSERT INTO marketplace.contacts VALUES
           ('1', 'ann@example.com', 'Ann', TIMESTAMP '2026-01-01 10:00:00'),
           ('2', 'ANN@example.com ', 'Ann', TIMESTAMP '2026-01-02 10:00:00'),
           ('3', 'bob@example.com', 'Bob', TIMESTAMP '2026-01-03 10:00:00');",
    );
    let validate = ctx.cdp(&["validate", p.to_str().expect("path")]).ok();
    assert!(
        validate
            .stdout
            .contains("share -> person (warehouse marketplace.contacts past cursor UPDATED_AT"),
        "{}",
        validate.stdout
    );

    assert_eq!(ingest(&ctx, &p, &[]), 3);
    ctx.step("run", &p, &[]).ok();
    // Ann's two rows are one person.
    assert_eq!(ctx.count("person"), 3);
    assert_eq!(ctx.count("customer_360"), 2);

    // Nothing new: nothing lands. Two new rows (one of an old cursor value, which a
    // source past its cursor never sees again): one lands.
    assert_eq!(ingest(&ctx, &p, &[]), 0);
    fill(
        &ctx,
        "INSERT INTO marketplace.contacts VALUES
           ('4', 'cy@example.com', 'Cy', TIMESTAMP '2026-01-04 10:00:00'),
           ('0', 'old@example.com', 'Old', TIMESTAMP '2025-12-01 10:00:00');",
    );
    assert_eq!(ingest(&ctx, &p, &[]), 1);
    ctx.step("run", &p, &[]).ok();
    assert_eq!(ctx.count("customer_360"), 3);

    // A backfill of one day takes that day's rows only, and once.
    let day = [
        "--interval-start",
        "2025-12-01",
        "--interval-end",
        "2025-12-02",
    ];
    assert_eq!(ingest(&ctx, &p, &day), 1);
    assert_eq!(ingest(&ctx, &p, &day), 0);
}

#[test]
fn a_query_source_reads_its_rows_and_bad_keys_are_refused_naming_them() {
    let ctx = TestContext::new();
    let query = PIPELINE.replace(
        "table = \"marketplace.contacts\"",
        "query = \"SELECT * FROM marketplace.contacts WHERE EMAIL LIKE '%@example.com'\"",
    );
    let p = ctx.write("p.toml", &query);
    fill(
        &ctx,
        "CREATE SCHEMA marketplace;
         CREATE TABLE marketplace.contacts (ID VARCHAR, EMAIL VARCHAR, NAME VARCHAR, UPDATED_AT TIMESTAMP);
         INSERT INTO marketplace.contacts VALUES
           ('1', 'ann@example.com', 'Ann', TIMESTAMP '2026-01-01 10:00:00'),
           ('2', 'eve@elsewhere.org', 'Eve', TIMESTAMP '2026-01-02 10:00:00');",
    );
    assert_eq!(ingest(&ctx, &p, &[]), 1);

    let bad = PIPELINE
        .replace("cursor = \"UPDATED_AT\"\n", "path = \"x/*.csv\"\n")
        .replace("table = \"marketplace.contacts\"", "table = \"a.b.c.d\"");
    let p = ctx.write("bad.toml", &bad);
    let out = ctx.cdp(&["validate", p.to_str().expect("path")]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    for expected in [
        "sources[0].path: `path` applies only to source kind files",
        "sources[0].table: \"a.b.c.d\": write NAME, SCHEMA.NAME or DATABASE.SCHEMA.NAME",
        "sources[0].cursor: missing; a warehouse source needs cursor",
    ] {
        assert!(
            out.stderr.contains(expected),
            "{expected:?} in:\n{}",
            out.stderr
        );
    }
}
