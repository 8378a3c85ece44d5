//! `cdp stream PIPELINE NAME`: read a `[[streams]]` entry in micro-batches, clean,
//! match and load each exactly once; runs until stopped, `--until-idle` or
//! `--max-batches`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use cdp::lake::Lake;
use cdp::stream::{self, StreamError, StreamOptions};

use super::{TargetArgs, UsageError, WaitArg};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline file (TOML).
    pub pipeline: PathBuf,
    /// The stream (a `[[streams]]` name).
    pub name: String,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Stop once every shard has nothing new.
    #[arg(long)]
    pub until_idle: bool,
    /// Stop after this many micro-batches.
    #[arg(long, value_name = "N")]
    pub max_batches: Option<usize>,
    #[command(flatten)]
    pub wait: WaitArg,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (p, _) = super::load_pipeline(&args.pipeline, &args.target.overrides())?;
    let lake = Lake::open(&p.lake).with_context(|| format!("lake {}", p.lake))?;
    // Matching needs the last resolve's state; without one, events load unmatched.
    let index = match cdp::steps::resolve::lookup_index(&lake, &p) {
        Ok(index) => Some(index),
        Err(e) => {
            tracing::warn!(error = %e, "events are loaded without person ids");
            None
        }
    };
    let run_id = cdp::state::new_run_id();
    let opts = StreamOptions {
        max_batches: args.max_batches,
        until_idle: args.until_idle,
        wait: Duration::from_secs(args.wait.wait),
    };
    let report = match stream::run(&p, &lake, &args.name, &run_id, &opts, index.as_ref()) {
        Err(e @ StreamError::Unknown { .. }) => return Err(UsageError(e.to_string()).into()),
        r => r?,
    };
    match args.format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&report)?)?,
        Format::Table => {
            outln!(
                "stream {} ({}): {} batches, {} events, {} loaded ({} matched to a person), {} quarantined, {:.1}s",
                report.stream,
                report.source,
                report.batches,
                report.events,
                report.loaded,
                report.matched,
                report.quarantined,
                report.seconds
            )?;
            for (shard, position) in &report.positions {
                outln!("  {shard}: committed through {position}")?;
            }
        }
    }
    Ok(())
}
