//! The command line: argument types, logging set-up, the mapping from errors to exit
//! codes, and one file per subcommand that calls the library and prints the result.
//! Data (query results, `--format json`) goes to stdout; logs and progress to stderr.

/// `println!` to stdout that returns the write error instead of panicking, so a
/// closed pipe (`cdp ... | head -1`) ends the command quietly (see [`is_broken_pipe`]).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `print!` to stdout, returning the write error; see [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod audience;
mod backfill;
mod clean;
mod features;
mod gen;
mod ingest;
mod load;
mod logging;
mod match_;
mod render;
mod report;
mod resolve;
mod run;
mod sql;
mod status;
mod stream;
mod sync;
mod validate;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};

use cdp::config::{ConfigError, Overrides, Pipeline};
use cdp::identity::evaluate::TruthError;
use cdp::identity::explain::ExplainError;
use cdp::sources::SourceError;
use cdp::state::interval::{parse_instant, Interval, IntervalError};
use cdp::state::lease::{Lease, LeaseError};
use cdp::steps::{Context, StepError};
use cdp::warehouse::WarehouseError;

pub use logging::{init_logging, report_end, End};

/// A command used wrongly in a way clap cannot see (no pipeline and no warehouse, a
/// bad `--warehouse` URL, a warehouse file that is not there); exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The run id of this command (a step, run or backfill), for the run-finished event.
static RUN_ID: OnceLock<String> = OnceLock::new();

/// Records this command's run id for the run-finished event.
pub fn note_run_id(run_id: &str) {
    let _ = RUN_ID.set(run_id.to_string());
}

/// This command's run id, once it has one.
pub fn run_id() -> Option<&'static str> {
    RUN_ID.get().map(String::as_str)
}

const EXIT_CODES: &str = "\
Exit codes:
  0  ok
  1  failure (I/O, warehouse, source errors)
  2  bad usage, bad pipeline file or set-up (e.g. a missing warehouse secret)
  3  quality gate failed (an error-level check went over its threshold)
  4  already running (another run holds the pipeline's lease)";

#[derive(Debug, Parser)]
#[command(
    name = "cdp",
    version,
    about = "Batch Customer Data Platform: ingest, clean, resolve identities, load the warehouse",
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr, no progress bars.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log format on stderr: `json` gives one object a line for schedulers.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a pipeline file without running anything.
    Validate(validate::Args),
    /// Land new source data in the lake's raw zone, with a manifest.
    #[command(after_help = EXIT_CODES)]
    Ingest(StepArgs),
    /// Normalise and check landed data; bad rows go to the quarantine.
    #[command(after_help = EXIT_CODES)]
    Clean(StepArgs),
    /// Resolve records into persons: identity graph and golden records.
    #[command(after_help = EXIT_CODES)]
    Resolve(resolve::Args),
    /// Which person a record belongs to, from the last resolve's saved state.
    #[command(name = "match", after_help = EXIT_CODES)]
    Match(match_::Args),
    /// Load clean data, the identity graph and customer_360 into the warehouse.
    #[command(after_help = EXIT_CODES)]
    Load(StepArgs),
    /// Run ingest, clean, resolve and load in order.
    #[command(after_help = EXIT_CODES)]
    Run(run::Args),
    /// Run the pipeline for each interval of a date range, oldest first; resumable.
    #[command(after_help = EXIT_CODES)]
    Backfill(backfill::Args),
    /// Send each sync's changes (added, changed, removed rows) to its destination.
    #[command(after_help = EXIT_CODES)]
    Sync(sync::Args),
    /// The per-person feature table for machine learning, from data before a cut-off.
    #[command(after_help = EXIT_CODES)]
    Features(features::Args),
    /// The report page: identity, quality over time, audiences, syncs, campaign lift.
    #[command(after_help = EXIT_CODES)]
    Report(report::Args),
    /// Read a stream's events in micro-batches: clean, match to persons, load once.
    #[command(after_help = EXIT_CODES)]
    Stream(stream::Args),
    /// Run the pipeline for the sources whose S3 objects an SQS queue announces.
    #[command(after_help = EXIT_CODES)]
    Watch(watch::Args),
    /// Show what each step last did.
    Status(status::Args),
    /// Run a SQL query on the pipeline's warehouse.
    Sql(sql::Args),
    /// Build, list or preview the pipeline's audiences.
    #[command(after_help = EXIT_CODES)]
    Audience(audience::Args),
    /// Generate realistic synthetic source data with a ground-truth file.
    Gen(gen::Args),
}

impl Command {
    /// The subcommand's name, as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Validate(_) => "validate",
            Self::Ingest(_) => "ingest",
            Self::Clean(_) => "clean",
            Self::Resolve(_) => "resolve",
            Self::Match(_) => "match",
            Self::Load(_) => "load",
            Self::Run(_) => "run",
            Self::Backfill(_) => "backfill",
            Self::Sync(_) => "sync",
            Self::Features(_) => "features",
            Self::Report(_) => "report",
            Self::Stream(_) => "stream",
            Self::Watch(_) => "watch",
            Self::Status(_) => "status",
            Self::Sql(_) => "sql",
            Self::Audience(_) => "audience",
            Self::Gen(_) => "gen",
        }
    }
}

/// What every step command takes.
#[derive(Debug, Clone, Args)]
pub struct StepArgs {
    /// The pipeline file (TOML).
    pub pipeline: PathBuf,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Re-run even when the inputs have not changed since the last success.
    #[arg(long)]
    pub force: bool,
    /// Start of the data interval this run is for (included): an ISO date or
    /// timestamp, such as Airflow's `{{ data_interval_start }}`. Ingest takes only the
    /// source partitions that start in the interval.
    #[arg(long, value_name = "TIME", value_parser = parse_time, requires = "interval_end")]
    pub interval_start: Option<DateTime<Utc>>,
    /// End of the data interval (excluded), such as `{{ data_interval_end }}`.
    #[arg(long, value_name = "TIME", value_parser = parse_time, requires = "interval_start")]
    pub interval_end: Option<DateTime<Utc>>,
    #[command(flatten)]
    pub wait: WaitArg,
}

/// `--lake` and `--warehouse`: where a run reads and writes instead of the file's.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Use this lake instead of the file's (`file://DIR`).
    #[arg(long, value_name = "URL")]
    pub lake: Option<String>,
    /// Use this warehouse instead of the file's (`duckdb://FILE`).
    #[arg(long, value_name = "URL")]
    pub warehouse: Option<String>,
}

impl TargetArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            lake: self.lake.clone(),
            warehouse: self.warehouse.clone(),
        }
    }
}

/// `--wait SECONDS`, shared by every command that takes the lease.
#[derive(Debug, Clone, Args)]
pub struct WaitArg {
    /// When another run holds the pipeline's lease, wait up to this many seconds for
    /// it (polling with backoff) instead of exiting 4 at once.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub wait: u64,
}

impl StepArgs {
    fn overrides(&self) -> Overrides {
        self.target.overrides()
    }

    fn interval(&self) -> anyhow::Result<Option<Interval>> {
        match (self.interval_start, self.interval_end) {
            (Some(start), Some(end)) => Ok(Some(Interval::new(start, end)?)),
            _ => Ok(None),
        }
    }
}

/// Parses `--interval-start`, `--from` and the like for clap (a bad one exits 2).
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    parse_instant(text).map_err(|e| e.to_string())
}

pub fn load_pipeline(path: &Path, overrides: &Overrides) -> anyhow::Result<(Pipeline, String)> {
    Ok(cdp::steps::run::load_pipeline(path, overrides)?)
}

/// Loads the pipeline, opens its lake and takes the lease for one command.
fn open(args: &StepArgs, global: &GlobalArgs, command: &str) -> anyhow::Result<(Context, Lease)> {
    let options = cdp::steps::run::OpenOptions {
        overrides: args.overrides(),
        force: args.force,
        interval: args.interval()?,
        wait: Duration::from_secs(args.wait.wait),
        quiet: global.quiet,
        only_sources: None,
    };
    let (ctx, lease) = cdp::steps::run::open(&args.pipeline, command, &options)?;
    note_run_id(&ctx.run_id);
    Ok((ctx, lease))
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let g = &cli.global;
    match cli.command {
        Command::Validate(a) => validate::run(a),
        Command::Ingest(a) => ingest::run(a, g),
        Command::Clean(a) => clean::run(a, g),
        Command::Resolve(a) => resolve::run(a, g),
        Command::Match(a) => match_::run(a),
        Command::Load(a) => load::run(a, g),
        Command::Run(a) => run::run(a, g),
        Command::Backfill(a) => backfill::run(a, g),
        Command::Sync(a) => sync::run(a, g),
        Command::Features(a) => features::run(a, g),
        Command::Report(a) => report::run(a),
        Command::Stream(a) => stream::run(a),
        Command::Watch(a) => watch::run(a, g),
        Command::Status(a) => status::run(a),
        Command::Sql(a) => sql::run(a),
        Command::Audience(a) => audience::run(a, g),
        Command::Gen(a) => gen::run(a, g),
    }
}

/// 2 for bad configuration, 3 for a closed quality gate, 4 for a held lease, else 1.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        // Transparent step errors hide what they wrap from the chain: ask the step
        // error itself.
        if let Some(code) = cause.downcast_ref::<StepError>().and_then(step_exit_code) {
            return code;
        }
        if cause.downcast_ref::<ConfigError>().is_some()
            || cause.downcast_ref::<UsageError>().is_some()
        {
            return 2;
        }
        if let Some(LeaseError::Held(_)) = cause.downcast_ref::<LeaseError>() {
            return 4;
        }
        // A missing secret or a lake the warehouse cannot load from: the set-up, not
        // the warehouse, is wrong.
        if let Some(WarehouseError::Setup { .. }) = cause.downcast_ref::<WarehouseError>() {
            return 2;
        }
        if let Some(e) = cause.downcast_ref::<cdp::audience::AudienceError>() {
            if let Some(code) = audience_exit_code(e) {
                return code;
            }
        }
        if cause.downcast_ref::<IntervalError>().is_some()
            || cause.downcast_ref::<TruthError>().is_some()
            || cause
                .downcast_ref::<SourceError>()
                .is_some_and(SourceError::is_usage)
        {
            return 2;
        }
    }
    1
}

/// A named audience or column that is not there, or a run id older than the last
/// build: the command is wrong (2).
fn audience_exit_code(err: &cdp::audience::AudienceError) -> Option<u8> {
    use cdp::audience::AudienceError as E;
    match err {
        E::Unknown { .. } | E::UnknownColumn { .. } | E::LaterRun { .. } => Some(2),
        E::Warehouse(WarehouseError::Setup { .. }) => Some(2),
        _ => None,
    }
}

fn step_exit_code(err: &StepError) -> Option<u8> {
    match err.innermost() {
        StepError::QualityGate { .. } | StepError::SizeGuard { .. } => Some(3),
        StepError::Audience(e) => audience_exit_code(e),
        StepError::Config(_) | StepError::Truth(_) | StepError::UnknownSync { .. } => Some(2),
        StepError::Lease(LeaseError::Held(_)) => Some(4),
        StepError::Source(e) if e.is_usage() => Some(2),
        StepError::Warehouse(WarehouseError::Setup { .. }) => Some(2),
        StepError::PartialLoad { source, .. }
            if matches!(**source, WarehouseError::Setup { .. }) =>
        {
            Some(2)
        }
        // An --explain subject that is not there: the argument is wrong.
        StepError::Explain(ExplainError::NotFound(_) | ExplainError::Ambiguous { .. }) => Some(2),
        _ => None,
    }
}

pub fn hint(err: &anyhow::Error) -> Option<&'static str> {
    for cause in err.chain() {
        let step = cause.downcast_ref::<StepError>().map(StepError::innermost);
        if let Some(StepError::Lease(LeaseError::Held(_))) = step {
            return Some("wait for it to finish (or pass --wait SECONDS); a crashed run's lease expires after 6 hours or as soon as its process is gone");
        }
        if let Some(StepError::QualityGate { .. }) = step {
            return Some(
                "nothing from this run was published; the last good clean output is still current",
            );
        }
        if let Some(StepError::SizeGuard { .. }) = step {
            return Some("no audience of this build was published; the last build's tables are still current");
        }
        if let Some(LeaseError::Held(_)) = cause.downcast_ref::<LeaseError>() {
            return Some("wait for it to finish (or pass --wait SECONDS); a crashed run's lease expires after 6 hours or as soon as its process is gone");
        }
        if let Some(WarehouseError::Locked { .. }) = cause.downcast_ref::<WarehouseError>() {
            return Some("another process (a load, or a query holding it open for writing) has the warehouse file; wait for it, or pass --wait SECONDS");
        }
        if let Some(StepError::QualityGate { .. }) = cause.downcast_ref::<StepError>() {
            return Some(
                "nothing from this run was published; the last good clean output is still current",
            );
        }
    }
    None
}

/// The error-level checks that closed the quality gate, if that is what failed.
pub fn failed_checks(err: &anyhow::Error) -> Option<&[String]> {
    err.chain()
        .find_map(|c| match c.downcast_ref::<StepError>() {
            Some(StepError::QualityGate { failed, .. }) => Some(failed.as_slice()),
            _ => None,
        })
}

pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
