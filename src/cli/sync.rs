//! `cdp sync PIPELINE [NAME...]`: send each sync's changes to its destination and
//! print what happened per sync; `--dry-run` only counts and samples.

use cdp::sync::{SyncOptions, SyncReport};

use super::{render, GlobalArgs, StepArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub step: StepArgs,
    /// The syncs to run (all the pipeline declares when none is named).
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    /// Count the rows each sync would add, change and remove, show a sample of each,
    /// and send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Send every row once, as if the destination had none of them.
    #[arg(long)]
    pub full_resync: bool,
    /// Rows of each kind a dry run shows.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub sample: usize,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<()> {
    let (ctx, _lease) = super::open(&args.step, global, "sync")?;
    let opts = SyncOptions {
        dry_run: args.dry_run,
        full_resync: args.full_resync,
        sample: args.sample,
    };
    let reports = ctx.attempt(cdp::state::Step::Sync, || {
        cdp::steps::sync::run(&ctx, &args.names, &opts)
    })?;
    match args.format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&reports)?)?,
        Format::Table => print(&reports, args.dry_run)?,
    }
    Ok(())
}

pub fn print(reports: &[SyncReport], dry_run: bool) -> anyhow::Result<()> {
    if reports.is_empty() {
        outln!("no syncs declared")?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            let mut row = vec![
                r.sync.clone(),
                r.destination.clone(),
                r.mode.clone(),
                r.added.to_string(),
                r.changed.to_string(),
                r.removed.to_string(),
            ];
            if !dry_run {
                row.extend([
                    r.sent.to_string(),
                    r.accepted.to_string(),
                    r.rejected.to_string(),
                    (r.retried + r.requests_retried).to_string(),
                    format!("{:.1}s", r.seconds),
                ]);
            } else {
                row.push(r.sent.to_string());
            }
            row
        })
        .collect();
    let header: &[&str] = if dry_run {
        &[
            "sync",
            "destination",
            "mode",
            "added",
            "changed",
            "removed",
            "would send",
        ]
    } else {
        &[
            "sync",
            "destination",
            "mode",
            "added",
            "changed",
            "removed",
            "sent",
            "accepted",
            "rejected",
            "retried",
            "time",
        ]
    };
    if dry_run {
        outln!("dry run: nothing sent")?;
    }
    outln!("{}", render::table(header, &rows))?;
    for r in reports {
        let mut notes = Vec::new();
        if r.no_consent > 0 {
            notes.push(format!("{} without consent", r.no_consent));
        }
        if r.suppressed > 0 {
            notes.push(format!("{} suppressed", r.suppressed));
        }
        if r.waiting > 0 {
            notes.push(format!("{} refused before, waiting to retry", r.waiting));
        }
        if r.parked > 0 {
            notes.push(format!("{} parked after too many refusals", r.parked));
        }
        if r.resumed > 0 {
            notes.push(format!("finished {} row(s) a stopped run left", r.resumed));
        }
        if !notes.is_empty() {
            outln!("  {}: {}", r.sync, notes.join("; "))?;
        }
        for (kind, key) in &r.sample {
            outln!("  {}: {kind} {key}", r.sync)?;
        }
    }
    Ok(())
}
