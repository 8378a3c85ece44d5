//! `cdp validate PIPELINE`: parse and check a pipeline file, run nothing.

use std::path::PathBuf;

use cdp::config::{Connector, Overrides, WindowMode};
use cdp::steps::preflight::{Finding, Severity};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline file (TOML).
    pub pipeline: PathBuf,
    /// Also try each service once with a read-only call, writing nothing: the lake
    /// (S3 bucket), the warehouse (`SELECT 1`) and each AWS source (DescribeFlow,
    /// ListDataSetRevisions)
    #[arg(long)]
    pub connect: bool,
    /// Print the effective `[identity]` section instead, as TOML to paste and edit:
    /// every part the file leaves out filled from the entity's column kinds, each part
    /// commented with where it came from.
    #[arg(long)]
    pub plan: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (p, _) = super::load_pipeline(&args.pipeline, &Overrides::default())?;
    if args.plan {
        let Some(identity) = &p.identity else {
            return Err(super::UsageError(format!(
                "{}: no [identity] section to plan",
                args.pipeline.display()
            ))
            .into());
        };
        outln!(
            "# The effective [identity] of {} (cdp validate --plan).",
            args.pipeline.display()
        )?;
        outln!("{}", cdp::config::identity_defaults::plan_toml(identity))?;
        return Ok(());
    }
    outln!("{}: ok (pipeline {:?})", args.pipeline.display(), p.name)?;
    outln!("  lake       {}", p.lake)?;
    outln!("  warehouse  {}", p.warehouse)?;
    for s in &p.sources {
        let what = match &s.connector {
            Connector::Files(f) => {
                let window = match (f.window, f.template.unit()) {
                    (Some(WindowMode::Path), Some(unit)) => format!("window by path, per {unit:?}"),
                    (Some(WindowMode::Snapshot), _) => "window: snapshot".into(),
                    _ => "takes no window".into(),
                };
                format!("files {}; {}", f.pattern, window.to_lowercase())
            }
            Connector::Appflow(a) => format!("appflow {}", a.flows.join(", ")),
            Connector::Dataexchange(d) => format!("dataexchange {}", d.data_sets.join(", ")),
            Connector::Warehouse(w) => format!(
                "warehouse {} past cursor {}; a data interval by the cursor",
                w.relation, w.cursor
            ),
        };
        outln!("  source     {} -> {} ({what})", s.name, s.entity)?;
    }
    for e in &p.entities {
        outln!(
            "  entity     {} (key {}, {} columns, {} checks)",
            e.name,
            e.key,
            e.columns.len(),
            e.checks.len()
        )?;
    }
    if let Some(i) = &p.identity {
        let rules: Vec<&str> = i.rules.iter().map(|r| r.name.as_str()).collect();
        outln!("  identity   {} by {}", i.entity, rules.join(", "))?;
        // A column reaches customer_360 only as an attribute: say which do not.
        if let Some(e) = p.entity(&i.entity) {
            // Matching helpers stay out by default: only profile columns are named.
            let profile = cdp::config::default_attributes(e);
            let left_out: Vec<&str> = profile
                .iter()
                .filter(|c| !i.attributes.contains(c))
                .map(String::as_str)
                .collect();
            if !left_out.is_empty() {
                outln!(
                    "  customer_360 leaves out {} (not in identity.attributes)",
                    left_out.join(", ")
                )?;
            }
        }
    }
    outln!("  load       {}", p.load_tables.join(", "))?;
    for s in &p.syncs {
        let from = match &s.from {
            cdp::config::SyncFrom::Audience(a) => format!("audience {a}"),
            cdp::config::SyncFrom::Table { table, key } => format!("table {table} by {key}"),
            cdp::config::SyncFrom::Query { key, .. } => format!("a query by {key}"),
        };
        outln!(
            "  sync       {}: {from} -> {} ({})",
            s.name,
            s.to.describe(),
            s.mode.name()
        )?;
    }
    for t in &p.traits {
        let of = t.agg.of_clause();
        outln!(
            "  trait      {} ({}{of} over {}, {})",
            t.name,
            cdp::config::agg_name(t.agg.aggregate),
            t.agg.entity,
            t.agg.ty
        )?;
    }
    for a in &p.audiences {
        let from = a
            .file
            .as_ref()
            .map(|f| format!(", from {}", f.display()))
            .unwrap_or_default();
        outln!("  audience   {} (table {}{from})", a.name, a.table())?;
    }
    // What a run would meet: files, their headers, the warehouse's secrets.
    let mut findings: Vec<(&str, Finding)> = cdp::steps::preflight::preflight(&p)
        .into_iter()
        .map(|f| ("check", f))
        .collect();
    if args.connect {
        findings.extend(
            cdp::steps::preflight::connect(&p)
                .into_iter()
                .map(|f| ("connect", f)),
        );
    }
    for (label, f) in &findings {
        let mark = match f.severity {
            Severity::Ok => "ok",
            Severity::Warning => "warning",
            Severity::Problem => "PROBLEM",
        };
        outln!("  {label:<10} {}: {mark}: {}", f.key, f.message)?;
    }
    let problems = findings
        .iter()
        .filter(|(_, f)| f.severity == Severity::Problem)
        .count();
    if problems > 0 {
        return Err(super::UsageError(format!(
            "{}: {problems} problem(s) a run would meet (see the checks above)",
            args.pipeline.display()
        ))
        .into());
    }
    Ok(())
}
