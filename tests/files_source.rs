//! The files source on compressed inputs: gzip and zstd files land as they are and
//! read as their content, whatever the format, through ingest, clean and load.

mod common;

use std::io::Write;

use common::TestContext;

const PIPELINE: &str = r#"[pipeline]
name = "compressed"
[lake]
url = "file://lake"
[warehouse]
url = "duckdb://warehouse.duckdb"
[[sources]]
name = "contacts"
kind = "files"
path = "data/*"
entity = "person"
columns = { Id = "record_id", Email = "email" }
[entities.person]
key = "record_id"
columns = { email = "email" }
"#;

#[test]
fn gzip_and_zstd_files_are_ingested_cleaned_and_loaded() {
    let ctx = TestContext::new();
    let p = ctx.write("p.toml", PIPELINE);
    ctx.write("data/plain.csv", "Id,Email\n1,a@example.com\n");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"Id,Email\n2,b@example.com\n3,c@example.com\n")
        .unwrap();
    std::fs::write(ctx.path().join("data/more.csv.gz"), gz.finish().unwrap()).unwrap();
    let jsonl =
        "{\"Id\":\"4\",\"Email\":\"d@example.com\"}\n{\"Id\":\"5\",\"Email\":\"e@example.com\"}\n";
    std::fs::write(
        ctx.path().join("data/events.jsonl.zst"),
        zstd::encode_all(jsonl.as_bytes(), 3).unwrap(),
    )
    .unwrap();

    ctx.step("ingest", &p, &[]).ok();
    let manifest_dir = std::fs::read_dir(ctx.path().join("lake/raw/contacts"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(manifest_dir.join("_manifest.json")).unwrap())
            .unwrap();
    let rows: Vec<(String, u64)> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["format"].as_str().unwrap().to_string(),
                f["rows"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [("jsonl".into(), 2), ("csv".into(), 2), ("csv".into(), 1)]
    );

    ctx.step("clean", &p, &[]).ok();
    ctx.step("load", &p, &[]).ok();
    let emails = ctx.query("SELECT string_agg(email, ',' ORDER BY record_id) AS e FROM person");
    assert_eq!(
        emails[0]["e"],
        "a@example.com,b@example.com,c@example.com,d@example.com,e@example.com"
    );

    // Unchanged compressed files are not landed again.
    let again = ctx.step("ingest", &p, &[]).ok();
    assert_eq!(
        std::fs::read_dir(ctx.path().join("lake/raw/contacts"))
            .unwrap()
            .count(),
        1,
        "{}",
        again.stdout
    );
}

#[test]
fn csv_without_a_header_row_maps_columns_by_position() {
    let ctx = TestContext::new();
    let text = PIPELINE
        .replace("path = \"data/*\"", "path = \"data/*.csv\"\nheader = false")
        .replace(
            "columns = { Id = \"record_id\", Email = \"email\" }",
            "columns = { \"1\" = \"record_id\", \"3\" = \"email\" }",
        );
    let p = ctx.write("p.toml", &text);
    ctx.write(
        "data/a.csv",
        "1,Ada,ada@example.com\n2,Alan,alan@example.com\n",
    );
    let out = ctx.step("run", &p, &[]).ok();
    let emails = ctx.query("SELECT string_agg(email, ',' ORDER BY record_id) AS e FROM person");
    assert_eq!(
        emails[0]["e"], "ada@example.com,alan@example.com",
        "{}",
        out.stdout
    );

    let bad = text.replace("\"3\" = \"email\"", "Email = \"email\"");
    let p = ctx.write("bad.toml", &bad);
    let out = ctx.cdp(&["validate", &p.to_string_lossy()]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("sources[0].columns: \"Email\": with header = false, columns are named by position: \"1\", \"2\", ..."),
        "{}",
        out.stderr
    );
    let bad = text.replace("header = false", "header = false\nformat = \"jsonl\"");
    let p = ctx.write("bad2.toml", &bad);
    let out = ctx.cdp(&["validate", &p.to_string_lossy()]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("sources[0].header: only CSV files take header"),
        "{}",
        out.stderr
    );
}
