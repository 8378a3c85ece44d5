//! A campaign effect planted by `cdp gen --campaign-lift` and found again by `cdp
//! report`, end to end through the real binary: generated files, the sample pipeline's
//! sources, cleaning and identity, an audience of every person with a shop account
//! holding half of them out, and two campaigns on it (conversion and revenue within 30
//! days). The generator draws the holdout by the audience's own rule from the person
//! id a first resolve gives each true person (see `src/gen/campaign.rs`), so the lift
//! it plants is the true lift between the groups the report compares.

mod common;

use std::path::{Path, PathBuf};

use common::{repo, write_sample_variant, TestContext};
use serde_json::Value;

/// The mean order value the generator draws, in currency units (see
/// `MEAN_ORDER_CENTS` in `src/gen/campaign.rs`): revenue lift = lift x this.
const MEAN_ORDER: f64 = 204.99;

const AUDIENCE: &str = r#"[[audiences]]
name = "campaign"
description = "Every person with a shop account; half held out"
where = { related = "person", where = { column = "source", equals = "shop_customers" } }
holdout = "50%"
"#;

const CAMPAIGNS: &str = r#"
[[campaigns]]
name = "planted_conversion"
audience = "campaign"
start = 2026-03-01
outcome = "conversion"
days = 30
orders = "orders"
at = "ordered_at"

[[campaigns]]
name = "planted_revenue"
audience = "campaign"
start = 2026-03-01
outcome = "revenue"
amount = "total_price"
days = 30
orders = "orders"
at = "ordered_at"
"#;

/// The sample pipeline with its audiences, syncs and features replaced by the test's
/// audience and campaigns, written under `dir`.
fn pipeline(dir: &Path) -> PathBuf {
    let text =
        std::fs::read_to_string(repo().join("pipelines/customer360.toml")).expect("pipeline");
    let cut = text
        .find("# The win-back campaign")
        .expect("the sample's campaign section moved");
    let text = format!(
        "{}{CAMPAIGNS}",
        text[..cut].replace(
            "audiences = [\"audiences/*.toml\"]",
            "audiences = [\"campaign/*.toml\"]"
        )
    );
    let p = dir.join("pipelines/customer360.toml");
    write_sample_variant(&p, &text);
    std::fs::create_dir_all(dir.join("pipelines/campaign")).expect("mkdir");
    std::fs::write(dir.join("pipelines/campaign/campaign.toml"), AUDIENCE).expect("audience");
    p
}

/// Generates `persons` persons with `lift` planted, runs the pipeline and the report
/// in a fresh folder, and returns the report's campaigns (JSON).
fn planted(persons: u64, seed: u64, lift: f64) -> Vec<Value> {
    let ctx = TestContext::new();
    let p = pipeline(ctx.path());
    let (persons, seed, lift) = (persons.to_string(), seed.to_string(), lift.to_string());
    let out = ctx
        .cdp(&[
            "gen",
            "--persons",
            &persons,
            "--seed",
            &seed,
            "--out",
            "g",
            "--campaign-lift",
            &lift,
            "--campaign-base",
            "0.2",
            "--campaign-start",
            "2026-03-01",
            "--campaign-days",
            "30",
            "--campaign-audience",
            "campaign",
            "--campaign-holdout",
            "50%",
        ])
        .ok();
    assert!(out.stdout.contains("planted campaign"), "{}", out.stdout);
    let data = ctx.path().join("g");
    let ps = p.to_string_lossy().into_owned();
    let (lake, wh) = (ctx.lake_url(), ctx.warehouse_url());
    let page = ctx.path().join("report.html");
    ctx.cdp_with(
        &["run", &ps, "--lake", &lake, "--warehouse", &wh],
        &[("CDP_DATA_DIR", &data)],
    )
    .ok();
    ctx.cdp_with(
        &[
            "report",
            &ps,
            "--lake",
            &lake,
            "--warehouse",
            &wh,
            "--out",
            &page.to_string_lossy(),
        ],
        &[("CDP_DATA_DIR", &data)],
    )
    .ok();
    let figures: Value = serde_json::from_str(
        &std::fs::read_to_string(page.with_extension("json")).expect("the report's JSON"),
    )
    .expect("json");
    figures["campaigns"].as_array().expect("campaigns").clone()
}

/// The 95% interval of a campaign's absolute lift.
fn interval(campaign: &Value) -> (f64, f64) {
    let ci = &campaign["lift"]["absolute_ci"];
    (
        ci["low"].as_f64().unwrap_or_else(|| panic!("{campaign}")),
        ci["high"].as_f64().unwrap_or_else(|| panic!("{campaign}")),
    )
}

#[test]
fn the_report_finds_a_lift_planted_by_gen_within_its_95_percent_interval() {
    let (lift, base) = (0.1, 0.2);
    let campaigns = planted(2000, 5, lift);
    assert_eq!(campaigns.len(), 2, "{campaigns:?}");

    let conversion = &campaigns[0];
    let l = &conversion["lift"];
    let (n_t, n_h) = (
        l["treatment_n"].as_u64().expect("n"),
        l["holdout_n"].as_u64().expect("n"),
    );
    // Every person with a shop account is a member; the holdout draws about half.
    assert!(n_t + n_h > 1000, "{l}");
    let half = (n_t + n_h) as f64 / 2.0;
    assert!(
        (n_h as f64 - half).abs() < 2.0 * ((n_t + n_h) as f64).sqrt(),
        "{l}"
    );
    // The held-out rate is the planted base, the treated one base + lift (each within
    // 4 standard errors), and the interval of the difference covers the lift.
    let within =
        |rate: f64, p: f64, n: u64| (rate - p).abs() < 4.0 * (p * (1.0 - p) / n as f64).sqrt();
    let (rate_t, rate_h) = (
        l["treatment"].as_f64().expect("rate"),
        l["holdout"].as_f64().expect("rate"),
    );
    assert!(within(rate_h, base, n_h), "holdout {rate_h}: {l}");
    assert!(within(rate_t, base + lift, n_t), "treatment {rate_t}: {l}");
    let (lo, hi) = interval(conversion);
    eprintln!("planted conversion lift {lift}: 95% interval {lo:.4} to {hi:.4}");
    assert!(lo <= lift && lift <= hi, "planted {lift}: {l}");
    assert_eq!(l["significant"].as_bool(), Some(true), "{l}");

    // Revenue per member: the planted orders add lift x the mean order value.
    let revenue = &campaigns[1];
    let planted_revenue = lift * MEAN_ORDER;
    let (lo, hi) = interval(revenue);
    eprintln!("planted revenue lift {planted_revenue:.2}: 95% interval {lo:.2} to {hi:.2}");
    assert!(
        lo <= planted_revenue && planted_revenue <= hi,
        "planted {planted_revenue}: {}",
        revenue["lift"]
    );
}

#[test]
fn with_no_planted_effect_the_interval_covers_zero_in_about_95_percent_of_seeds() {
    // 40 independent populations (seeds), each small. If the interval's coverage is
    // 95%, the count covering zero is Binomial(40, 0.95): mean 38, sd 1.4, and at least
    // 34 with probability 0.9966, so a correct interval fails this bar once in ~300
    // sets of seeds. An interval covering 85% of the time would pass it with
    // probability 0.61, one covering 80% with 0.29: the bar catches an interval that
    // is badly too narrow, not a small miss. No upper bound: 40 of 40 happens to a
    // correct interval 13% of the time. The seeds are fixed, so the test is
    // deterministic; the bar says how a correct interval behaves.
    let seeds = 40u64;
    let mut covered = 0;
    for seed in 0..seeds {
        let campaigns = planted(250, 1000 + seed, 0.0);
        let (lo, hi) = interval(&campaigns[0]);
        covered += usize::from(lo <= 0.0 && 0.0 <= hi);
    }
    eprintln!("with no effect the interval covered zero in {covered} of {seeds} seeds");
    assert!(covered >= 34, "covered zero in {covered} of {seeds}");
}
