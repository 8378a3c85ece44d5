//! Crash safety through the real binary: `cdp run` killed (SIGKILL) at random moments
//! of ingest, clean, resolve and load, then run again to the end, leaves exactly the
//! warehouse a run that was never killed leaves: the same rows, the same persons, no
//! duplicates and nothing lost. `CDP_CRASH_TRIALS` sets how many kills (default 12);
//! the kill moments come from a fixed seed, so a failure can be replayed.

mod common;

use std::time::{Duration, Instant};

use common::{repo, TestContext};

/// The tutorial's data and pipeline (17 rows, every step), copied into `ctx`.
fn tutorial(ctx: &TestContext) -> String {
    for name in ["customers.csv", "pipeline.toml"] {
        std::fs::copy(
            repo().join("docs/tutorial").join(name),
            ctx.path().join(name),
        )
        .expect("copy tutorial");
    }
    "pipeline.toml".to_string()
}

/// What a finished run leaves, minus what names runs: the clean rows (without the
/// landing run), the persons as sets of records, and the golden records (without
/// their person id and run).
fn final_state(ctx: &TestContext) -> Vec<String> {
    let rows = |sql: &str| -> Vec<String> {
        ctx.query_at("warehouse.duckdb", sql)
            .into_iter()
            .map(|r| serde_json::Value::Object(r).to_string())
            .collect()
    };
    let mut state = Vec::new();
    state.extend(rows(
        "SELECT * EXCLUDE (landed_run) FROM customer ORDER BY ALL",
    ));
    state.extend(rows(
        "SELECT string_agg(source || ':' || record_id, ',' ORDER BY source, record_id) AS members \
         FROM identity_graph GROUP BY person_id ORDER BY members",
    ));
    state.extend(rows(
        "SELECT count(*) AS persons, count(DISTINCT person_id) AS ids FROM customer_360",
    ));
    // No key twice anywhere.
    state.extend(rows(
        "SELECT (SELECT count(*) - count(DISTINCT (source, record_id)) FROM customer) AS dup_rows, \
                (SELECT count(*) - count(DISTINCT (source, record_id)) FROM identity_graph) AS dup_graph",
    ));
    state
}

/// A small fixed-seed generator (splitmix64), for kill moments.
fn next(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[test]
fn a_run_killed_at_random_moments_and_rerun_ends_as_if_never_killed() {
    let reference = TestContext::new();
    let p = tutorial(&reference);
    let started = Instant::now();
    reference.cdp(&["run", &p]).ok();
    let took = started.elapsed();
    let expected = final_state(&reference);
    assert!(expected.len() > 10, "{expected:?}");

    let trials: u64 = std::env::var("CDP_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let mut seed = 0x00c0_ffee_u64;
    let mut killed_mid_run = 0;
    for trial in 0..trials {
        let ctx = TestContext::new();
        let p = tutorial(&ctx);
        // One or two kills at moments spread over a whole run, then a run to the end.
        let kills = 1 + next(&mut seed) % 2;
        for _ in 0..kills {
            let at = Duration::from_micros(next(&mut seed) % (took.as_micros() as u64 + 1));
            let mut child = ctx.command(&["run", &p]).spawn().expect("spawn cdp");
            std::thread::sleep(at);
            if child.try_wait().expect("poll").is_none() {
                killed_mid_run += 1;
            }
            child.kill().ok();
            child.wait().expect("reap");
        }
        let out = ctx.cdp(&["run", &p, "--wait", "30"]);
        assert_eq!(
            out.code, 0,
            "trial {trial}: the run after the kill failed\n{}\n{}",
            out.stdout, out.stderr
        );
        assert_eq!(
            final_state(&ctx),
            expected,
            "trial {trial}: the state differs from a run never killed"
        );
    }
    eprintln!("{trials} trials, {killed_mid_run} kills landed mid-run, 0 bad outcomes");
    assert!(
        killed_mid_run * 2 >= trials,
        "most kills should land mid-run ({killed_mid_run} of {trials})"
    );
}

/// A run killed after it saved the model and its pairs but before it published the
/// assignment they index leaves the two apart; the next run must not read one by the
/// other (it once panicked on an index out of bounds) and trains afresh instead.
#[test]
fn model_pairs_saved_without_their_assignment_are_not_reused() {
    let ctx = TestContext::new();
    let p = tutorial(&ctx);
    let first = ctx.cdp(&["run", &p]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let expected = final_state(&ctx);
    let state = ctx.path().join("lake/_state/identity");
    assert!(state.join("edges.parquet").exists(), "no saved pairs");
    // The kill: the assignment from before the first run (none) beside the new pairs.
    std::fs::remove_file(state.join("assignment.parquet")).expect("remove assignment");
    let again = ctx.cdp(&["resolve", &p, "--force"]);
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    assert!(
        again.stdout.contains("(0 strong pairs reused)") && again.stdout.contains("model trained"),
        "pairs apart from their assignment were reused:\n{}",
        again.stdout
    );
    // Saved together again, they are reused together.
    let third = ctx.cdp(&["resolve", &p, "--force"]);
    assert!(third.stdout.contains("model reused"), "{}", third.stdout);
    assert_eq!(ctx.cdp(&["load", &p]).code, 0);
    assert_eq!(final_state(&ctx), expected);
}
