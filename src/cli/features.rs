//! `cdp features PIPELINE [--as-of TIME]`: the per-person feature table for machine
//! learning, from data before the cut-off; prints the table, its size and the lake
//! objects written.

use cdp::insights::features::{self, FeaturesError};
use chrono::{DateTime, Utc};

use super::{GlobalArgs, StepArgs, UsageError};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub step: StepArgs,
    /// The cut-off: only data before it counts (default: --interval-end, else now).
    #[arg(long, value_name = "TIME", value_parser = super::parse_time)]
    pub as_of: Option<DateTime<Utc>>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<()> {
    let (ctx, _lease) = super::open(&args.step, global, "features")?;
    let as_of = args
        .as_of
        .or(args.step.interval_end)
        .unwrap_or_else(Utc::now)
        .naive_utc();
    let as_of = chrono::Timelike::with_nanosecond(&as_of, 0).unwrap_or(as_of);
    let p = &ctx.pipeline;
    let mut wh = cdp::warehouse::open_for_run_waiting(&p.warehouse, &ctx.run_id, ctx.wait)?;
    let report = match features::run(p, &ctx.lake, wh.as_mut(), as_of) {
        Err(FeaturesError::NotConfigured) => {
            return Err(UsageError(FeaturesError::NotConfigured.to_string()).into())
        }
        r => r?,
    };
    match args.format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&report)?)?,
        Format::Table => {
            outln!(
                "features as of {}: {} persons, {} columns in {} ({:.1}s)",
                report.as_of,
                report.persons,
                report.columns.len(),
                report.table,
                report.seconds
            )?;
            for key in &report.objects {
                outln!("  lake {key}")?;
            }
        }
    }
    Ok(())
}
