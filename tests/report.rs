//! `cdp report` through the real binary on the sample pipeline, and the page checked
//! in a real browser: headless Chromium (Debian's `chromium`, which `make test`
//! installs when missing) loads the report and the cleaning step's quality report;
//! the test fails on any console message (the report's own script logs an error for
//! a chart that drew nothing) and keeps a screenshot of each page under
//! CARGO_TARGET_TMPDIR as the test's artifact.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{repo, write_sample_variant, TestContext};
use serde_json::Value;

fn chromium() -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        for name in ["chromium", "chromium-browser"] {
            let p = Path::new(dir).join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("no chromium on the PATH: `make test` installs Debian's package (make browser)");
}

/// Loads `page` headless: returns the DOM after its scripts ran, and every console
/// line Chromium logged. Saves a full-page screenshot to `shot`.
fn browse(ctx: &TestContext, page: &Path, shot: &Path) -> (String, Vec<String>) {
    let url = format!("file://{}", page.display());
    let base = |profile: &str| {
        let mut c = Command::new(chromium());
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!(
            "--user-data-dir={}",
            ctx.path().join(profile).display()
        ));
        c
    };
    let out = base("profile-dom")
        .args(["--virtual-time-budget=5000", "--dump-dom", &url])
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let console: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .map(str::to_string)
        .collect();
    let shot_out = base("profile-shot")
        .args(["--hide-scrollbars", "--window-size=1280,3000"])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .expect("run chromium");
    assert!(
        shot_out.status.success(),
        "{}",
        String::from_utf8_lossy(&shot_out.stderr)
    );
    let png = std::fs::read(shot).expect("screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    (String::from_utf8_lossy(&out.stdout).into_owned(), console)
}

fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

#[test]
fn the_report_shows_the_pipeline_and_renders_in_a_browser_without_errors() {
    let ctx = TestContext::new();
    let text =
        std::fs::read_to_string(repo().join("pipelines/customer360.toml")).expect("pipeline");
    let p = ctx.path().join("pipelines/customer360.toml");
    write_sample_variant(&p, &text);
    let ps = p.to_str().expect("path");
    let lake = ctx.lake_url();
    let wh = ctx.warehouse_url();
    // The exports of the sample's files sync land beside the pipeline file's folder.
    ctx.cdp(&["run", ps, "--lake", &lake, "--warehouse", &wh])
        .ok();
    let page = ctx.path().join("out/report.html");
    let out = ctx
        .cdp(&[
            "report",
            ps,
            "--lake",
            &lake,
            "--warehouse",
            &wh,
            "--out",
            page.to_str().expect("path"),
        ])
        .ok();
    assert!(out.stdout.contains("report.html"), "{}", out.stdout);
    let figures: Value = serde_json::from_str(
        &std::fs::read_to_string(page.with_extension("json")).expect("json beside"),
    )
    .expect("json");

    // The figures agree with the warehouse.
    let id = &figures["identity"];
    assert_eq!(id["persons"].as_i64(), Some(ctx.count("customer_360")));
    assert_eq!(id["records"].as_i64(), Some(ctx.count("identity_graph")));
    let clustered: i64 = id["cluster_sizes"]
        .as_array()
        .expect("sizes")
        .iter()
        .map(|p| p[1].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(clustered, ctx.count("customer_360"));
    let sources = id["sources"].as_array().expect("sources");
    assert!(sources.len() >= 2, "{sources:?}");
    let runs = id["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["persons"], id["persons"]);
    let quality = figures["quality"].as_array().expect("quality");
    assert!(quality.iter().any(|e| e["entity"] == "person"));
    let audiences = figures["audiences"].as_array().expect("audiences");
    assert_eq!(audiences.len(), 3, "{audiences:?}");
    let syncs = figures["syncs"].as_array().expect("syncs");
    assert_eq!(syncs[0]["runs"].as_array().map(Vec::len), Some(1));
    let lift = &figures["campaigns"][0]["lift"];
    let built = ctx.query(
        "SELECT (SELECT count(*) FROM audience_winback_test) AS t, \
         (SELECT count(*) FROM audience_holdouts WHERE audience = 'winback_test') AS h",
    );
    assert_eq!(
        lift["treatment_n"].as_i64(),
        built[0]["t"].as_i64(),
        "{lift}"
    );
    assert_eq!(lift["holdout_n"].as_i64(), built[0]["h"].as_i64(), "{lift}");
    assert!(lift["verdict"].as_str().is_some_and(|v| !v.is_empty()));

    // The page in a browser: every chart drew, nothing on the console.
    let html = std::fs::read_to_string(&page).expect("page");
    let charts = html.matches("<svg class=\"chart\"").count();
    assert!(charts >= 8, "{charts} charts");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing fetched"
    );
    let (dom, console) = browse(&ctx, &page, &artifacts().join("report.png"));
    assert!(console.is_empty(), "console: {console:#?}");
    assert!(
        dom.contains(&format!("data-charts=\"ok:{charts}\"")),
        "the page's check did not pass: {}",
        dom.lines().find(|l| l.contains("<body")).unwrap_or("")
    );

    // A planted effect: every member's orders in the campaign window replaced by
    // planted ones, ordering with probability 0.3 held out and 0.3 + LIFT treated.
    // The report's interval covers the planted lift and calls it significant; with
    // no effect planted it covers zero.
    for (planted, seed) in [(0.4, 7u64), (0.0, 11u64)] {
        let planted_members = plant(&ctx, 0.3, planted, seed);
        ctx.cdp(&[
            "report",
            ps,
            "--lake",
            &lake,
            "--warehouse",
            &wh,
            "--out",
            page.to_str().expect("path"),
        ])
        .ok();
        let figures: Value = serde_json::from_str(
            &std::fs::read_to_string(page.with_extension("json")).expect("json"),
        )
        .expect("json");
        let lift = &figures["campaigns"][0]["lift"];
        // Every member has a shop record, so the planted rates are the true ones.
        assert_eq!(
            Some(planted_members as i64),
            lift["treatment_n"]
                .as_i64()
                .zip(lift["holdout_n"].as_i64())
                .map(|(a, b)| a + b)
        );
        let (lo, hi) = (
            lift["absolute_ci"]["low"].as_f64().expect("low"),
            lift["absolute_ci"]["high"].as_f64().expect("high"),
        );
        assert!(lo <= planted && planted <= hi, "planted {planted}: {lift}");
        assert_eq!(lift["significant"].as_bool(), Some(planted > 0.0), "{lift}");
    }

    // The cleaning step's quality report gets the same check.
    let quality_page = std::fs::read_dir(ctx.path().join("lake/reports"))
        .expect("reports")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("quality.html"))
        .find(|p| p.is_file())
        .expect("a quality.html");
    let (dom, console) = browse(&ctx, &quality_page, &artifacts().join("quality.png"));
    assert!(console.is_empty(), "console: {console:#?}");
    assert!(
        dom.contains("<svg"),
        "the quality page's bars are in the DOM"
    );
}

/// Replaces the campaign window's orders of winback_test's members (treated and
/// held out) with planted ones: one order each with probability `base` (held out) or
/// `base + lift` (treated), from a fixed-seed generator.
fn plant(ctx: &TestContext, base: f64, lift: f64, seed: u64) -> usize {
    let conn = duckdb::Connection::open(ctx.path().join("warehouse.duckdb")).expect("open");
    let members = "SELECT person_id::VARCHAR AS p, false AS h FROM audience_winback_test \
         UNION ALL SELECT person_id::VARCHAR, true FROM audience_holdouts WHERE audience = 'winback_test'";
    conn.execute_batch(&format!(
        "DELETE FROM orders WHERE order_id >= 900000000 OR (ordered_at >= TIMESTAMP '2026-03-01' \
         AND ordered_at < TIMESTAMP '2026-04-30' AND customer_id::VARCHAR IN (SELECT g.record_id FROM identity_graph g \
         JOIN ({members}) m ON g.person_id::VARCHAR = m.p WHERE g.source = 'shop_customers'))"
    ))
    .expect("clear the window");
    let mut stmt = conn
        .prepare(&format!(
            "SELECT m.p, m.h, min(g.record_id) FROM ({members}) m JOIN identity_graph g \
             ON g.person_id::VARCHAR = m.p AND g.source = 'shop_customers' GROUP BY ALL ORDER BY m.p"
        ))
        .expect("members");
    let rows: Vec<(String, bool, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect();
    assert!(
        rows.len() > 100,
        "{} members with a shop record",
        rows.len()
    );
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut uniform = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    for (i, (_, held, record)) in rows.iter().enumerate() {
        let p = if *held { base } else { base + lift };
        if uniform() < p {
            conn.execute_batch(&format!(
                "INSERT INTO orders (order_id, customer_id, ordered_at, currency, total_price) \
                 VALUES ({}, {record}, TIMESTAMP '2026-03-10 12:00:00', 'USD', 50)",
                900000000 + i
            ))
            .expect("plant");
        }
    }
    rows.len()
}

#[test]
fn an_unknown_run_exits_2() {
    let ctx = TestContext::new();
    let out = ctx.cdp(&[
        "report",
        common::sample_pipeline().to_str().expect("path"),
        "--lake",
        &ctx.lake_url(),
        "--warehouse",
        &ctx.warehouse_url(),
        "--run",
        "20200101T000000000Z",
        "--out",
        ctx.path().join("r.html").to_str().expect("path"),
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("no run 20200101T000000000Z"),
        "{}",
        out.stderr
    );
}
