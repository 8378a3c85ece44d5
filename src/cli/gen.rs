//! `cdp gen --persons N --seed S --out DIR`: synthetic sources plus ground truth,
//! optionally with a campaign effect planted in the orders (`--campaign-lift`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use chrono::NaiveDate;

use cdp::gen::{generate, GenOptions, PlantedCampaign, SurnamePool};
use cdp::progress::Printer;

use super::{render, GlobalArgs, UsageError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// How many real persons to invent (records are about 2.6 per person).
    #[arg(long, default_value_t = 2000)]
    pub persons: u64,
    /// Same seed, same bytes.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Directory to write (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// `census`: surnames as common as in the 2010 US census (a long tail).
    /// `embedded`: only the few hundred commonest, so namesakes are about
    /// twenty times commoner; a stress test for identity resolution.
    #[arg(long, value_enum, default_value_t = SurnamesArg::Census)]
    pub surnames: SurnamesArg,
    /// Plant a campaign effect: persons the audience's holdout does not draw order in
    /// the campaign window with this much higher probability (0.05 is 5 points; may
    /// be negative). The other `--campaign-*` options describe the campaign.
    #[arg(long, allow_negative_numbers = true)]
    pub campaign_lift: Option<f64>,
    /// The chance that a person with a shop account orders in the window without
    /// the campaign (the holdout's conversion rate).
    #[arg(long, default_value_t = 0.2, requires = "campaign_lift")]
    pub campaign_base: f64,
    /// The campaign's first day; the window counts from its midnight (UTC).
    #[arg(long, default_value = "2026-03-01", requires = "campaign_lift")]
    pub campaign_start: NaiveDate,
    /// The window's length in days.
    #[arg(long, default_value_t = 30, requires = "campaign_lift")]
    pub campaign_days: u32,
    /// The audience the campaign goes to: its name, or its `salt` when it sets one
    /// (the holdout is drawn from a hash of the person id and this).
    #[arg(long, default_value = "campaign", requires = "campaign_lift")]
    pub campaign_audience: String,
    /// The audience's holdout, as in the pipeline file (`10%`).
    #[arg(long, default_value = "10%", requires = "campaign_lift")]
    pub campaign_holdout: String,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SurnamesArg {
    Census,
    Embedded,
}

impl From<SurnamesArg> for SurnamePool {
    fn from(s: SurnamesArg) -> Self {
        match s {
            SurnamesArg::Census => SurnamePool::Census,
            SurnamesArg::Embedded => SurnamePool::Embedded,
        }
    }
}

/// The planted campaign the options describe, if any; bad values are a usage error.
fn campaign(args: &Args) -> Result<Option<PlantedCampaign>, UsageError> {
    let Some(lift) = args.campaign_lift else {
        return Ok(None);
    };
    let holdout = args.campaign_holdout.trim();
    let percent: f64 = holdout
        .strip_suffix('%')
        .unwrap_or(holdout)
        .trim()
        .parse()
        .map_err(|_| {
            UsageError(format!(
                "--campaign-holdout: expected a percentage like 10%, not {holdout:?}"
            ))
        })?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let plan = PlantedCampaign {
        salt: args.campaign_audience.clone(),
        holdout_bps: (percent * 100.0).round().clamp(0.0, 10_000.0) as u32,
        start_day: (args.campaign_start - epoch).num_days(),
        days: args.campaign_days,
        base: args.campaign_base,
        lift,
    };
    let problems = plan.problems();
    if problems.is_empty() {
        Ok(Some(plan))
    } else {
        Err(UsageError(format!(
            "the planted campaign: {}",
            problems.join("; ")
        )))
    }
}

pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let campaign = campaign(&args)?;
    let bar = Printer::new(global.quiet).bar(args.persons, "generate persons");
    let opts = GenOptions {
        persons: args.persons,
        seed: args.seed,
        out: args.out.clone(),
        surnames: args.surnames.into(),
        campaign,
    };
    let report = generate(&opts, &mut |done| bar.set_position(done))
        .with_context(|| format!("writing generated data to {}", args.out.display()))?;
    bar.finish_and_clear();
    let rows: Vec<Vec<String>> = report
        .files
        .iter()
        .map(|f| vec![f.path.display().to_string(), f.rows.to_string()])
        .collect();
    outln!(
        "generated {} persons in {} households into {} (seed {}) in {}",
        report.persons,
        report.households,
        args.out.display(),
        args.seed,
        render::elapsed(start.elapsed())
    )?;
    outln!("{}", render::table(&["file", "rows"], &rows))?;
    if let Some(c) = &opts.campaign {
        outln!(
            "planted campaign: orders in the {} days from {} at {:.4} held out and {:.4} treated \
             (audience {:?}, holdout {:.2}%)",
            c.days,
            args.campaign_start,
            c.base,
            c.base + c.lift,
            c.salt,
            f64::from(c.holdout_bps) / 100.0
        )?;
    }
    Ok(())
}
