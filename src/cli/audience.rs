//! `cdp audience build|list|preview`: build audiences in the warehouse, list them with
//! their last build, or preview one before building it.

use std::path::PathBuf;

use cdp::audience::preview::{self, PreviewOptions};
use cdp::audience::BuildReport;
use cdp::config::Overrides;
use cdp::state::Step;
use cdp::warehouse;

use super::{render, GlobalArgs, StepArgs, TargetArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Build audiences: one table each, the membership history, holdouts; exit 3 and
    /// nothing published when an error-level size guard fails.
    Build(BuildArgs),
    /// Each audience with its description, owner, last size and last build.
    List(ListArgs),
    /// What an audience would hold now: size, share, a sample, a breakdown, an overlap.
    Preview(PreviewArgs),
}

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub step: StepArgs,
    /// The audiences to build; all when none is named.
    pub names: Vec<String>,
    /// Record the build under this run id instead of a new one: a retry of the same
    /// scheduled run replaces that run's rows rather than adding a run.
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// The pipeline file (TOML).
    pub pipeline: PathBuf,
    #[command(flatten)]
    pub target: TargetArgs,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct PreviewArgs {
    /// The pipeline file (TOML).
    pub pipeline: PathBuf,
    /// The audience.
    pub name: String,
    #[command(flatten)]
    pub target: TargetArgs,
    /// How many members to show (by person id).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub sample: u64,
    /// Break the members down by this customer_360 column or trait.
    #[arg(long, value_name = "COLUMN")]
    pub by: Option<String>,
    /// How many members this audience shares with another.
    #[arg(long, value_name = "OTHER")]
    pub overlap: Option<String>,
    /// Count relative dates back from this instant (a data interval end); now when absent.
    #[arg(long, value_name = "TIME", value_parser = super::parse_time)]
    pub interval_end: Option<chrono::DateTime<chrono::Utc>>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Print the compiled SQL of the audience's members and nothing else.
    #[arg(long)]
    pub sql: bool,
    /// Evaluate the audience now, even when its last build (same definition, same
    /// interval end, no load since) can be read instead.
    #[arg(long)]
    pub fresh: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<()> {
    match args.command {
        Command::Build(a) => build(a, global),
        Command::List(a) => list(a),
        Command::Preview(a) => preview(a),
    }
}

fn build(args: BuildArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let (ctx, _lease) = super::open(&args.step, global, "audience")?;
    let result = ctx.attempt(Step::Audience, || {
        cdp::steps::audience::run(&ctx, &args.names, args.run_id.as_deref())
    });
    let (outcome, report) = match result {
        Ok(done) => done,
        Err(e) => {
            print_guard_failure(&e);
            return Err(e.into());
        }
    };
    ctx.finished(Step::Audience, &outcome)?;
    outln!(
        "audiences built in {} (run {}, as of {})",
        ctx.pipeline.warehouse,
        report.run_id,
        report.as_of
    )?;
    outln!("{}", sizes_table(&report))?;
    Ok(())
}

/// The sizes table beside a size guard's error, so the reader sees what failed.
pub fn print_guard_failure(err: &cdp::steps::StepError) {
    if let cdp::steps::StepError::SizeGuard { report, .. } = err.innermost() {
        let _ = outln!("{}", sizes_table(report));
    }
}

/// One line per audience: size, members, holdout, splits, entered, exited, guard.
pub fn sizes_table(report: &BuildReport) -> String {
    let rows: Vec<Vec<String>> = report
        .audiences
        .iter()
        .map(|b| {
            let splits = b
                .splits
                .iter()
                .map(|(name, n)| format!("{name} {n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let guard = b
                .guard
                .iter()
                .map(|(s, m)| format!("{}: {m}", s.to_uppercase()))
                .collect::<Vec<_>>()
                .join("; ");
            let previous = b.previous.map_or("-".to_string(), |p| p.to_string());
            vec![
                b.audience.clone(),
                b.size.to_string(),
                previous,
                b.holdout.to_string(),
                b.entered.to_string(),
                b.exited.to_string(),
                splits,
                guard,
            ]
        })
        .collect();
    render::table(
        &[
            "audience", "size", "previous", "holdout", "entered", "exited", "splits", "guard",
        ],
        &rows,
    )
}

fn list(args: ListArgs) -> anyhow::Result<()> {
    let (p, _) = super::load_pipeline(&args.pipeline, &args.target.overrides())?;
    let mut wh = warehouse::open_for_query(&p.warehouse)?;
    let listed = preview::list(wh.as_mut(), &p)?;
    match args.format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&listed)?)?,
        Format::Csv => {
            let mut w = csv::Writer::from_writer(std::io::stdout().lock());
            w.write_record(["name", "description", "owner", "last_size", "last_built"])?;
            for l in &listed {
                w.write_record([
                    l.name.clone(),
                    l.description.clone(),
                    l.owner.clone(),
                    l.last_size.map(|n| n.to_string()).unwrap_or_default(),
                    l.last_built.clone().unwrap_or_default(),
                ])?;
            }
            w.flush()?;
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = listed
                .iter()
                .map(|l| {
                    vec![
                        l.name.clone(),
                        l.last_size.map_or("-".into(), |n| n.to_string()),
                        l.last_built.clone().unwrap_or_else(|| "never built".into()),
                        l.owner.clone(),
                        l.description.clone(),
                    ]
                })
                .collect();
            outln!(
                "{}",
                render::table(
                    &[
                        "audience",
                        "last size",
                        "last built",
                        "owner",
                        "description"
                    ],
                    &rows
                )
            )?;
        }
    }
    Ok(())
}

fn preview(args: PreviewArgs) -> anyhow::Result<()> {
    let overrides = Overrides {
        lake: None,
        warehouse: args.target.warehouse.clone(),
    };
    let (p, _) = super::load_pipeline(&args.pipeline, &overrides)?;
    let as_of = args
        .interval_end
        .unwrap_or_else(chrono::Utc::now)
        .naive_utc();
    let as_of = chrono::Timelike::with_nanosecond(&as_of, 0).unwrap_or(as_of);
    if args.sql {
        let dialect = match p.warehouse {
            warehouse::WarehouseUrl::Duckdb(_) => warehouse::Dialect::DuckDb,
            warehouse::WarehouseUrl::Snowflake(_) => warehouse::Dialect::Snowflake,
        };
        let env = cdp::audience::Env { dialect, as_of };
        let sql = cdp::audience::members_sql(&p, &args.name, env)
            .ok_or_else(|| super::UsageError(format!("unknown audience {:?}", args.name)))?;
        outln!("{sql};")?;
        return Ok(());
    }
    let mut wh = warehouse::open_for_query(&p.warehouse)?;
    let options = PreviewOptions {
        sample: args.sample,
        by: args.by.clone(),
        overlap: args.overlap.clone(),
        fresh: args.fresh,
    };
    let pv = preview::preview(wh.as_mut(), &p, &args.name, as_of, &options)?;
    match args.format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&pv)?)?,
        Format::Csv => {
            let mut w = csv::Writer::from_writer(std::io::stdout().lock());
            w.write_record(&pv.sample_columns)?;
            for row in &pv.sample {
                w.write_record(row.iter().map(cell))?;
            }
            w.flush()?;
        }
        Format::Table => {
            let share = if pv.persons == 0 {
                0.0
            } else {
                pv.size as f64 * 100.0 / pv.persons as f64
            };
            outln!(
                "audience {} (as of {}): {} of {} persons ({share:.1}%)",
                pv.audience,
                pv.as_of,
                pv.size,
                pv.persons
            )?;
            if let Some(run) = &pv.built_by {
                outln!("read from the build of run {run} (nothing loaded since; --fresh evaluates it again)")?;
            }
            if !pv.sample.is_empty() {
                let headers: Vec<&str> = pv.sample_columns.iter().map(String::as_str).collect();
                let rows: Vec<Vec<String>> = pv
                    .sample
                    .iter()
                    .map(|r| r.iter().map(cell).collect())
                    .collect();
                outln!("sample ({} by person id)", rows.len())?;
                outln!("{}", render::table(&headers, &rows))?;
            }
            if let Some(by) = &pv.by {
                let rows: Vec<Vec<String>> = pv
                    .groups
                    .iter()
                    .map(|g| {
                        let share = if pv.size == 0 {
                            0.0
                        } else {
                            g.members as f64 * 100.0 / pv.size as f64
                        };
                        let value = match &g.value {
                            serde_json::Value::Null => "(none)".to_string(),
                            v => cell(v),
                        };
                        vec![value, g.members.to_string(), format!("{share:.1}%")]
                    })
                    .collect();
                outln!("by {by}")?;
                outln!(
                    "{}",
                    render::table(&[by.as_str(), "members", "share"], &rows)
                )?;
            }
            if let Some(o) = &pv.overlap {
                let share = if pv.size == 0 {
                    0.0
                } else {
                    o.both as f64 * 100.0 / pv.size as f64
                };
                outln!(
                    "overlap with {}: {} of these {} members ({share:.1}%); {} has {}",
                    o.audience,
                    o.both,
                    pv.size,
                    o.audience,
                    o.size
                )?;
            }
        }
    }
    Ok(())
}

fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
