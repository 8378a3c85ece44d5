//! Audiences through the real binary on the sample pipeline: a build publishes one
//! table per audience, the membership history, holdouts and runs; the same run id
//! built again ends in the same state; a failed size guard exits 3 and publishes
//! nothing; a build killed at random moments and built again ends as if never killed;
//! `list` and `preview` print what the snapshots show; bad audience files exit 2
//! naming the file, key and line.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{redact, repo, Run, TestContext};

/// The sample pipeline and its audiences, copied into the test's folder (audience
/// files are found relative to the pipeline file).
fn sample(ctx: &TestContext) -> PathBuf {
    let dir = ctx.path().join("pipelines");
    std::fs::create_dir_all(dir.join("audiences")).expect("mkdir");
    std::fs::copy(
        repo().join("pipelines/customer360.toml"),
        dir.join("customer360.toml"),
    )
    .expect("copy pipeline");
    std::fs::copy(
        repo().join("pipelines/audiences/marketing.toml"),
        dir.join("audiences/marketing.toml"),
    )
    .expect("copy audiences");
    dir.join("customer360.toml")
}

/// The pipeline's steps up to load, one by one (`cdp run` would build the audiences
/// too, as of now).
fn prepare(ctx: &TestContext, p: &std::path::Path) {
    for step in ["ingest", "clean", "resolve", "load"] {
        ctx.step(step, p, &[]).ok();
    }
}

const INTERVAL: [&str; 4] = [
    "--interval-start",
    "2026-11-01",
    "--interval-end",
    "2026-12-01",
];

fn audience(ctx: &TestContext, args: &[&str]) -> Run {
    let (lake, wh) = (ctx.lake_url(), ctx.warehouse_url());
    let mut all = vec!["audience"];
    all.extend_from_slice(args);
    if matches!(args.first(), Some(&"build")) {
        all.extend(["--lake", lake.as_str()]);
    }
    all.extend(["--warehouse", wh.as_str()]);
    ctx.cdp(&all)
}

/// Everything a build publishes, minus when it was built.
fn published(ctx: &TestContext) -> Vec<String> {
    let rows = |sql: &str| -> Vec<String> {
        ctx.query(sql)
            .into_iter()
            .map(|r| serde_json::Value::Object(r).to_string())
            .collect()
    };
    let mut out = Vec::new();
    for a in ["high_value_recent", "lapsed", "winback_test"] {
        out.extend(rows(&format!(
            "SELECT '{a}' AS a, person_id, split, run, as_of FROM audience_{a} ORDER BY ALL"
        )));
    }
    out.extend(rows("SELECT * FROM audience_membership ORDER BY ALL"));
    out.extend(rows("SELECT * FROM audience_holdouts ORDER BY ALL"));
    out.extend(rows(
        "SELECT * EXCLUDE (built_at) FROM audience_runs ORDER BY ALL",
    ));
    out
}

#[test]
fn a_build_publishes_tables_history_and_holdouts_and_the_same_run_again_changes_nothing() {
    let ctx = TestContext::new();
    let p = sample(&ctx);
    let p = p.to_string_lossy().into_owned();
    prepare(&ctx, p.as_ref());
    let mut args = vec!["build", p.as_str(), "--run-id", "r1"];
    args.extend(INTERVAL);
    let first = audience(&ctx, &args).ok();
    assert!(first.stdout.contains("winback_test"), "{}", first.stdout);
    let state = published(&ctx);
    // Sizes agree across the tables.
    let runs = ctx.query("SELECT audience, size, members, holdout, entered FROM audience_runs WHERE run = 'r1' ORDER BY audience");
    for r in &runs {
        let a = r["audience"].as_str().expect("audience");
        let size = r["size"].as_i64().expect("size");
        assert_eq!(
            ctx.count(&format!("audience_{a}")),
            r["members"].as_i64().expect("members"),
            "{a}"
        );
        let held = ctx.query(&format!(
            "SELECT count(*) AS n FROM audience_holdouts WHERE audience = '{a}'"
        ))[0]["n"]
            .as_i64();
        assert_eq!(held, r["holdout"].as_i64(), "{a}");
        assert_eq!(
            r["entered"].as_i64(),
            Some(size),
            "{a}: everyone entered in the first run"
        );
    }
    // A 10% holdout and two even splits, near their shares.
    let w = &runs[2];
    let (size, holdout) = (
        w["size"].as_i64().unwrap_or(0),
        w["holdout"].as_i64().unwrap_or(0),
    );
    assert!(size > 100, "{size}");
    assert!(
        (holdout as f64) > size as f64 * 0.04 && (holdout as f64) < size as f64 * 0.16,
        "{holdout} of {size}"
    );
    let splits = ctx.query(
        "SELECT split, count(*) AS n FROM audience_winback_test GROUP BY split ORDER BY split",
    );
    assert_eq!(splits.len(), 2, "{splits:?}");
    // The same run id again: the same state, no duplicate rows.
    audience(&ctx, &args).ok();
    assert_eq!(published(&ctx), state);
    // A later run with nothing changed: no entries or exits, the same members.
    let mut later = vec!["build", p.as_str(), "--run-id", "r2"];
    later.extend(INTERVAL);
    let second = audience(&ctx, &later).ok();
    assert!(second.stdout.contains("previous"), "{}", second.stdout);
    let churn = ctx.query("SELECT count(*) AS n FROM audience_membership WHERE run = 'r2'");
    assert_eq!(churn[0]["n"].as_i64(), Some(0));
    // Holdouts are stable across runs: the same persons.
    let moved = ctx.query("SELECT count(*) AS n FROM audience_holdouts h JOIN audience_winback_test a USING (person_id)");
    assert_eq!(
        moved[0]["n"].as_i64(),
        Some(0),
        "a held-out person is never in the audience table"
    );
    // An earlier run id than the last build is refused (exit 2).
    let mut old = vec!["build", p.as_str(), "--run-id", "r0"];
    old.extend(INTERVAL);
    let refused = audience(&ctx, &old);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("later run (r2)"),
        "{}",
        refused.stderr
    );
    // A month later the lapsed audience changes: exits and entries are recorded.
    let next = audience(
        &ctx,
        &[
            "build",
            p.as_str(),
            "lapsed",
            "--run-id",
            "r3",
            "--interval-start",
            "2027-05-01",
            "--interval-end",
            "2027-06-01",
        ],
    )
    .ok();
    assert!(next.stdout.contains("lapsed"), "{}", next.stdout);
    let churn = ctx.query("SELECT count(*) FILTER (WHERE exited_at IS NULL) AS entered, count(exited_at) AS exited FROM audience_membership WHERE run = 'r3'");
    assert!(churn[0]["entered"].as_i64().unwrap_or(0) > 0, "{churn:?}");
}

#[test]
fn a_failed_size_guard_exits_3_and_publishes_nothing() {
    let ctx = TestContext::new();
    let p = sample(&ctx);
    prepare(&ctx, &p);
    let ps = p.to_string_lossy().into_owned();
    let mut first = vec!["build", ps.as_str(), "--run-id", "r1"];
    first.extend(INTERVAL);
    audience(&ctx, &first).ok();
    let before = published(&ctx);
    // The same audiences, one of them now guarded beyond what it can reach.
    let file = ctx.path().join("pipelines/audiences/marketing.toml");
    let text = std::fs::read_to_string(&file)
        .expect("read")
        .replace("min_size = 1", "min_size = 100000");
    std::fs::write(&file, text).expect("write");
    let mut args = vec!["build", ps.as_str(), "--run-id", "r2"];
    args.extend(INTERVAL);
    let out = audience(&ctx, &args);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("high_value_recent: size")
            && out.stderr.contains("below min_size 100000"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.contains("ERROR: size"),
        "the sizes table shows the failure:\n{}",
        out.stdout
    );
    assert_eq!(
        published(&ctx),
        before,
        "nothing of the failed build was published"
    );
    let work = ctx.query(
        "SELECT count(*) AS n FROM information_schema.tables WHERE table_name LIKE '_cdp_work%'",
    );
    assert_eq!(work[0]["n"].as_i64(), Some(0), "work tables are dropped");
}

#[test]
fn a_build_killed_at_random_moments_and_built_again_ends_as_if_never_killed() {
    let reference = TestContext::new();
    let p = sample(&reference);
    prepare(&reference, &p);
    let ps = p.to_string_lossy().into_owned();
    let mut args = vec!["build", ps.as_str(), "--run-id", "r1"];
    args.extend(INTERVAL);
    let started = Instant::now();
    audience(&reference, &args).ok();
    let took = started.elapsed();
    let expected = published(&reference);

    let ctx = TestContext::new();
    let p = sample(&ctx);
    prepare(&ctx, &p);
    let ps = p.to_string_lossy().into_owned();
    let (lake, wh) = (ctx.lake_url(), ctx.warehouse_url());
    let mut kill_args = vec![
        "audience",
        "build",
        ps.as_str(),
        "--run-id",
        "r1",
        "--lake",
        lake.as_str(),
        "--warehouse",
        wh.as_str(),
    ];
    kill_args.extend(INTERVAL);
    let mut seed = 0x5eed_u64;
    let mut killed_mid_build = 0;
    let trials = 8;
    for _ in 0..trials {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let at = Duration::from_micros((seed >> 33) % (took.as_micros() as u64 + 1));
        let mut child = ctx.command(&kill_args).spawn().expect("spawn");
        std::thread::sleep(at);
        if child.try_wait().expect("poll").is_none() {
            killed_mid_build += 1;
        }
        child.kill().ok();
        child.wait().expect("reap");
        // Each killed build is followed by a whole one of the same run.
        let mut again = kill_args.clone();
        again.extend(["--wait", "30"]);
        let out = ctx.cdp(&again);
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
        assert_eq!(
            published(&ctx),
            expected,
            "the state differs from a build never killed"
        );
    }
    eprintln!("{trials} trials, {killed_mid_build} kills landed mid-build");
    assert!(
        killed_mid_build * 2 >= trials,
        "most kills should land mid-build ({killed_mid_build})"
    );
}

#[test]
fn list_and_preview_show_sizes_samples_breakdowns_and_overlaps() {
    let ctx = TestContext::new();
    let p = sample(&ctx);
    prepare(&ctx, &p);
    let p = p.to_string_lossy().into_owned();
    let mut args = vec!["build", p.as_str(), "--run-id", "r1"];
    args.extend(INTERVAL);
    audience(&ctx, &args).ok();
    let time = regex::Regex::new(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}").expect("re");
    let list = audience(&ctx, &["list", p.as_str()]).ok();
    insta::assert_snapshot!(
        "audience_list",
        time.replace_all(&redact(&list.stdout, &ctx), "[BUILT AT]")
    );
    let preview = audience(
        &ctx,
        &[
            "preview",
            p.as_str(),
            "winback_test",
            "--sample",
            "3",
            "--by",
            "state",
            "--overlap",
            "high_value_recent",
            "--interval-end",
            "2026-12-01",
        ],
    )
    .ok();
    let head: Vec<&str> = preview.stdout.lines().take(14).collect();
    insta::assert_snapshot!("audience_preview", head.join("\n"));
    // Just built with nothing loaded since, the preview read the build; evaluated
    // afresh (into a temporary table of a read-only session) it says the same.
    let fresh = audience(
        &ctx,
        &[
            "preview",
            p.as_str(),
            "winback_test",
            "--sample",
            "3",
            "--by",
            "state",
            "--overlap",
            "high_value_recent",
            "--interval-end",
            "2026-12-01",
            "--fresh",
        ],
    )
    .ok();
    let built: Vec<&str> = preview
        .stdout
        .lines()
        .filter(|l| !l.starts_with("read from the build of run r1"))
        .collect();
    assert_ne!(built.len(), preview.stdout.lines().count());
    assert_eq!(fresh.stdout.lines().collect::<Vec<_>>(), built);
    let json = audience(
        &ctx,
        &[
            "preview",
            p.as_str(),
            "lapsed",
            "--sample",
            "1",
            "--by",
            "lifetime_value",
            "--interval-end",
            "2026-12-01",
            "--format",
            "json",
        ],
    )
    .ok();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    // Keys in a stable order for scripts.
    let at = |k: &str| {
        json.stdout
            .find(&format!("\n  \"{k}\":"))
            .unwrap_or(usize::MAX)
    };
    let order = [
        "audience",
        "as_of",
        "size",
        "persons",
        "sample_columns",
        "sample",
        "by",
        "groups",
        "overlap",
    ];
    assert!(
        order.windows(2).all(|w| at(w[0]) < at(w[1])),
        "{}",
        json.stdout
    );
    assert_eq!(v["as_of"], "2026-12-01 00:00:00");
    // The preview's size is the size a build as of the same instant gave.
    let built = ctx.query("SELECT size FROM audience_runs WHERE audience = 'lapsed'");
    assert_eq!(v["size"].as_i64(), built[0]["size"].as_i64());
    let sql = audience(
        &ctx,
        &[
            "preview",
            p.as_str(),
            "lapsed",
            "--sql",
            "--interval-end",
            "2026-12-01",
        ],
    )
    .ok();
    assert!(
        sql.stdout.starts_with("WITH ") && sql.stdout.contains("TIMESTAMP '2026-06-04 00:00:00'"),
        "{}",
        sql.stdout
    );
    let unknown = audience(&ctx, &["preview", p.as_str(), "nope"]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
}

#[test]
fn bad_audience_files_exit_2_naming_file_key_and_line() {
    let ctx = TestContext::new();
    let p = sample(&ctx);
    ctx.write(
        "pipelines/audiences/broken.toml",
        r#"[[audiences]]
name = "vip"
where = { all = [
  { column = "birth_date", greater_than = "last week" },
  { trait = "lifetime_valu", at_least = 1000 },
  { related = "orders", aggregate = "sum", of = "currency", at_least = 5 },
  { member_of = "vip2" },
] }

[[audiences]]
name = "vip2"
where = { any = [{ member_of = "vip" }, { column = "city", within_last = "30 days" }] }
"#,
    );
    let out = ctx.cdp(&["validate", &p.to_string_lossy()]);
    assert_eq!(out.code, 2, "{}", out.stdout);
    insta::assert_snapshot!("audience_validate_errors", redact(&out.stderr, &ctx));
}
