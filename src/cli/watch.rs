//! `cdp watch PIPELINE --queue SQS_URL`: run the pipeline for the sources whose S3
//! objects arrive, as S3 announces them on an SQS queue; a message is deleted once the
//! run that consumed it succeeded, and given up on (dead-lettered) after
//! `--max-attempts` failed runs. Runs until SIGTERM/SIGINT (after the run in hand),
//! `--until-idle SECONDS` or `--max-messages N`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use cdp::watch::{self, WatchError, WatchOptions};

use super::{GlobalArgs, TargetArgs, UsageError, WaitArg};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline file (TOML).
    pub pipeline: PathBuf,
    /// The SQS queue S3 sends object-created notifications to (its URL).
    #[arg(long, value_name = "SQS_URL")]
    pub queue: String,
    /// An SQS-compatible endpoint instead of AWS's (credentials from the default chain).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// The queue's AWS region; the default chain's when absent.
    #[arg(long)]
    pub region: Option<String>,
    /// A message whose run fails when it has been received this many times is poison.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: u32,
    /// Move poison messages to this queue (its URL) instead of deleting them.
    #[arg(long, value_name = "SQS_URL")]
    pub dead_letter_queue: Option<String>,
    /// Stop once the queue has given nothing for this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub until_idle: Option<u64>,
    /// Stop after this many messages (at the end of the run that reaches it).
    #[arg(long, value_name = "N")]
    pub max_messages: Option<u64>,
    #[command(flatten)]
    pub target: TargetArgs,
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

pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<()> {
    // SIGTERM (systemd, containers) and SIGINT finish the run in hand, then exit 0.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())
            .context("cannot install the signal handler")?;
    }
    let opts = WatchOptions {
        queue_url: args.queue.clone(),
        endpoint_url: args.endpoint_url,
        region: args.region,
        max_attempts: args.max_attempts,
        dead_letter_queue: args.dead_letter_queue,
        until_idle: args.until_idle.map(Duration::from_secs),
        max_messages: args.max_messages,
        open: cdp::steps::run::OpenOptions {
            overrides: args.target.overrides(),
            wait: Duration::from_secs(args.wait.wait),
            quiet: global.quiet,
            ..Default::default()
        },
        stop,
    };
    let mut report = match watch::watch(&args.pipeline, &opts) {
        Err(e @ WatchError::NoS3Source { .. }) => return Err(UsageError(e.to_string()).into()),
        // The pipeline file itself: its own error, so the exit code says what it was.
        Err(WatchError::Step(e)) => return Err(e.into()),
        r => r.with_context(|| format!("cdp watch {}", args.pipeline.display()))?,
    };
    match args.format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&report)?)?,
        Format::Table => {
            let failed = report.runs.iter().filter(|r| !r.ok).count();
            outln!(
                "watch {} on {}: {} messages, {} objects, {} runs ({failed} failed), {} ignored, {} dead-lettered",
                report.pipeline,
                report.queue,
                report.messages,
                report.objects,
                report.runs.len(),
                report.ignored.len(),
                report.dead_letters.len()
            )?;
            for r in &report.runs {
                outln!(
                    "  run {} for {}: {}",
                    r.run_id.as_deref().unwrap_or("-"),
                    r.sources.join(", "),
                    if r.ok { "ok" } else { "failed" }
                )?;
            }
            for d in &report.dead_letters {
                outln!("  dead letter {}: {}", d.message_id, d.reason)?;
            }
        }
    }
    // Stopped by a limit after a failed run: exit as that run would (3 for a closed
    // quality gate, 4 for a held lease, else 1). Stopped by a signal: 0.
    match report.last_failure.take() {
        Some(e) if !report.stopped => {
            Err(anyhow::Error::from(e).context("the last pipeline run of cdp watch failed"))
        }
        _ => Ok(()),
    }
}
