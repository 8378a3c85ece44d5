//! `cdp gen`: same seed, same bytes; the committed sample data is its output.

mod common;

use common::{repo, sample_pipeline, TestContext};

const FILES: [&str; 7] = [
    "crm/contacts_2025.csv",
    "crm/contacts_2026.csv",
    "shop/customers.jsonl",
    "shop/orders.csv",
    "support/users.csv",
    "enrichment/consumers.csv",
    "truth.csv",
];

#[test]
fn gen_reproduces_the_committed_sample_data_byte_for_byte() {
    let ctx = TestContext::new();
    let out = ctx
        .cdp(&["gen", "--persons", "2000", "--seed", "42", "--out", "g"])
        .ok();
    assert!(
        out.stdout.contains("generated 2000 persons"),
        "{}",
        out.stdout
    );
    for f in FILES {
        let made = std::fs::read(ctx.path().join("g").join(f)).expect("generated file");
        let committed = std::fs::read(repo().join("sample-data").join(f)).expect("sample file");
        assert!(made == committed, "{f} differs from sample-data/{f}");
    }
}

#[test]
fn another_seed_gives_other_data_and_the_sample_pipeline_runs_on_it_unchanged() {
    let ctx = TestContext::new();
    ctx.cdp(&["gen", "--persons", "300", "--seed", "7", "--out", "g"])
        .ok();
    let truth = std::fs::read(ctx.path().join("g/truth.csv")).expect("truth");
    let sample = std::fs::read(repo().join("sample-data/truth.csv")).expect("sample truth");
    assert_ne!(truth, sample);
    let data = ctx.path().join("g");
    let (lake, wh) = (ctx.lake_url(), ctx.warehouse_url());
    let truth_path = data.join("truth.csv");
    let out = ctx
        .cdp_with(
            &[
                "run",
                &sample_pipeline().to_string_lossy(),
                "--lake",
                &lake,
                "--warehouse",
                &wh,
                "--truth",
                &truth_path.to_string_lossy(),
            ],
            &[("CDP_DATA_DIR", &data)],
        )
        .ok();
    assert!(out.stdout.contains("precision="), "{}", out.stdout);
    let truth_rows = String::from_utf8_lossy(&truth).lines().count() as i64 - 1;
    let quarantined = ctx.query(&format!(
        "SELECT count(*) AS n FROM read_parquet('{}/lake/quarantine/person/*/rows.parquet')",
        ctx.path().display()
    ))[0]["n"]
        .as_i64()
        .expect("n");
    assert_eq!(ctx.count("person") + quarantined, truth_rows);
}

/// Distinct surnames among the enrichment file's people (it writes names plainly).
fn distinct_surnames(dir: &std::path::Path) -> usize {
    let mut reader = csv::Reader::from_path(dir.join("enrichment/consumers.csv")).expect("csv");
    let names: std::collections::HashSet<String> = reader
        .records()
        .map(|r| r.expect("row")[2].to_ascii_lowercase())
        .collect();
    names.len()
}

#[test]
fn embedded_surnames_make_a_namesake_dense_population() {
    let ctx = TestContext::new();
    for (pool, out) in [("census", "c"), ("embedded", "e")] {
        ctx.cdp(&["gen", "--persons", "3000", "--surnames", pool, "--out", out])
            .ok();
    }
    let (census, embedded) = (
        distinct_surnames(&ctx.path().join("c")),
        distinct_surnames(&ctx.path().join("e")),
    );
    // 317 embedded names plus typos, against a long census-shaped tail.
    assert!(embedded < 450, "embedded pool: {embedded} surnames");
    assert!(
        census > 2 * embedded,
        "census {census}, embedded {embedded}"
    );
    let bad = ctx.cdp(&["gen", "--surnames", "rare", "--out", "x"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
}
