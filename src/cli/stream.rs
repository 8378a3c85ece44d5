//! `cdp stream PIPELINE NAME`: read a `[[streams]]` entry in micro-batches, clean,
//! match and load each exactly once; runs until SIGTERM/SIGINT (after the batch in
//! hand), `--until-idle SECONDS` or `--max-events N`. Events are matched with the
//! last resolve's state, reloaded while running when a newer resolve publishes one.

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
    /// Stop once no shard has had anything new for this many seconds (0: at the
    /// first pass that finds nothing).
    #[arg(long, value_name = "SECONDS")]
    pub until_idle: Option<u64>,
    /// Stop after this many events (at the end of the batch that reaches it).
    #[arg(long, value_name = "N")]
    pub max_events: Option<u64>,
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
    let run_id = cdp::state::new_run_id();
    // SIGTERM (systemd, containers) and SIGINT finish the batch in hand, then exit 0.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())
            .context("cannot install the signal handler")?;
    }
    let opts = StreamOptions {
        max_events: args.max_events,
        until_idle: args.until_idle.map(Duration::from_secs),
        wait: Duration::from_secs(args.wait.wait),
        stop,
    };
    let report = match stream::run(&p, &lake, &args.name, &run_id, &opts) {
        Err(e @ StreamError::Unknown { .. }) => return Err(UsageError(e.to_string()).into()),
        // Another consumer holds the stream (exit 4, as for a held pipeline lease).
        Err(StreamError::Lease(e)) => return Err(e.into()),
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
            if report.sink != "warehouse" {
                outln!("  delivered to {} (at least once)", report.sink)?;
            }
            if report.reloads > 0 {
                outln!(
                    "  identity state reloaded {} times while running (now {})",
                    report.reloads,
                    report.identity_state.as_deref().unwrap_or("none")
                )?;
            }
            for (shard, position) in &report.positions {
                outln!("  {shard}: committed through {position}")?;
            }
            if let Some(g) = &report.group_commits {
                outln!(
                    "  consumer group {}: {} offset commits, {} failed{}",
                    g.group,
                    g.committed,
                    g.failed,
                    g.last_error
                        .as_deref()
                        .map(|e| format!(" (last: {e})"))
                        .unwrap_or_default()
                )?;
            }
        }
    }
    Ok(())
}
