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

/// The manifest of the only landing of source `contacts`.
fn only_manifest(ctx: &TestContext) -> serde_json::Value {
    let runs: Vec<_> = std::fs::read_dir(ctx.path().join("lake/raw/contacts"))
        .expect("raw")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    serde_json::from_slice(&std::fs::read(runs[0].join("_manifest.json")).expect("manifest"))
        .expect("json")
}

fn origins(manifest: &serde_json::Value) -> Vec<String> {
    manifest["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["origin"].as_str().expect("origin").to_string())
        .collect()
}

/// `cdp ingest`, failing the test if it has not finished within a minute.
fn ingest_within_a_minute(ctx: &TestContext, pipeline: &std::path::Path) -> common::Run {
    let lake = ctx.lake_url();
    let mut child = ctx
        .command(&["ingest", &pipeline.to_string_lossy(), "--lake", &lake])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let started = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > std::time::Duration::from_secs(60) {
            child.kill().expect("kill");
            panic!("ingest still running after a minute");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().expect("output").into()
}

#[test]
fn folder_links_back_into_the_tree_land_each_file_once_and_do_not_hang() {
    use std::os::unix::fs::symlink;
    let ctx = TestContext::new();
    let p = ctx.write(
        "p.toml",
        &PIPELINE.replace("path = \"data/*\"", "path = \"in/**/*.csv\""),
    );
    ctx.write("in/a.csv", "Id,Email\n1,a@example.com\n");
    ctx.write("in/sub/b.csv", "Id,Email\n2,b@example.com\n");
    // A loop to the folder itself, one to its parent, and a second name for a file.
    symlink(".", ctx.path().join("in/loop")).unwrap();
    symlink("..", ctx.path().join("in/sub/up")).unwrap();
    symlink("a.csv", ctx.path().join("in/sub/alias.csv")).unwrap();
    let out = ingest_within_a_minute(&ctx, &p).ok();
    let manifest = only_manifest(&ctx);
    assert_eq!(
        origins(&manifest),
        ["in/a.csv", "in/sub/b.csv"],
        "{}",
        out.stderr
    );
    assert!(manifest.get("skipped").is_none(), "{manifest}");
}

#[test]
fn a_folder_link_out_of_the_tree_is_not_followed_and_is_listed_as_skipped() {
    use std::os::unix::fs::symlink;
    let ctx = TestContext::new();
    let p = ctx.write(
        "p.toml",
        &PIPELINE.replace("path = \"data/*\"", "path = \"in/**/*.csv\""),
    );
    ctx.write("in/a.csv", "Id,Email\n1,a@example.com\n");
    ctx.write("elsewhere/b.csv", "Id,Email\n2,b@example.com\n");
    symlink("../elsewhere", ctx.path().join("in/ext")).unwrap();
    let out = ingest_within_a_minute(&ctx, &p).ok();
    let manifest = only_manifest(&ctx);
    assert_eq!(origins(&manifest), ["in/a.csv"]);
    assert_eq!(manifest["skipped"][0]["path"], "in/ext", "{manifest}");
    assert!(
        out.stderr.contains("in/ext") && out.stderr.contains("not followed"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_name_that_is_not_utf8_is_skipped_with_a_warning_and_alone_fails_the_source() {
    use std::os::unix::ffi::OsStrExt;
    let ctx = TestContext::new();
    let p = ctx.write(
        "p.toml",
        &PIPELINE.replace("path = \"data/*\"", "path = \"in/*.csv\""),
    );
    let bad = ctx
        .path()
        .join("in")
        .join(std::ffi::OsStr::from_bytes(b"caf\xe9.csv"));
    std::fs::create_dir_all(ctx.path().join("in")).unwrap();
    std::fs::write(&bad, "Id,Email\n9,z@example.com\n").unwrap();
    // Nothing readable: the source fails, naming what it skipped.
    let out = ingest_within_a_minute(&ctx, &p);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("nothing readable matches")
            && out
                .stderr
                .contains("caf\u{fffd}.csv: the name is not valid UTF-8"),
        "{}",
        out.stderr
    );
    // With a readable file beside it, that lands and the manifest lists the other.
    ctx.write("in/ok.csv", "Id,Email\n1,a@example.com\n");
    let out = ingest_within_a_minute(&ctx, &p).ok();
    assert!(out.stderr.contains("caf\u{fffd}.csv"), "{}", out.stderr);
    let manifest = only_manifest(&ctx);
    assert_eq!(origins(&manifest), ["in/ok.csv"]);
    assert_eq!(
        manifest["skipped"],
        serde_json::json!([{"path": "in/caf\u{fffd}.csv", "reason": "the name is not valid UTF-8"}])
    );
}

#[test]
fn files_under_an_unreadable_folder_are_skipped_with_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let ctx = TestContext::new();
    let p = ctx.write(
        "p.toml",
        &PIPELINE.replace("path = \"data/*\"", "path = \"in/**/*.csv\""),
    );
    ctx.write("in/a.csv", "Id,Email\n1,a@example.com\n");
    ctx.write("in/locked/b.csv", "Id,Email\n2,b@example.com\n");
    let locked = ctx.path().join("in/locked");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read_dir(&locked).is_ok() {
        // Root reads a mode-000 folder anyway: nothing to test here.
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
        eprintln!("skipped: this user reads mode-000 folders (root)");
        return;
    }
    let out = ingest_within_a_minute(&ctx, &p);
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = out.ok();
    assert!(out.stderr.contains("in/locked"), "{}", out.stderr);
    let manifest = only_manifest(&ctx);
    assert_eq!(origins(&manifest), ["in/a.csv"]);
    assert_eq!(manifest["skipped"][0]["path"], "in/locked", "{manifest}");
}
