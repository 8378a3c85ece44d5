//! `cdp validate PIPELINE`: parse and check a pipeline file, run nothing.

use std::path::PathBuf;

use cdp::config::{Connector, Overrides, WindowMode};
use cdp::steps::preflight::Severity;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline file (TOML).
    pub pipeline: PathBuf,
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
    // What a run would meet: files, their headers, the warehouse's secrets.
    let findings = cdp::steps::preflight::preflight(&p);
    for f in &findings {
        let mark = match f.severity {
            Severity::Ok => "ok",
            Severity::Warning => "warning",
            Severity::Problem => "PROBLEM",
        };
        outln!("  check      {}: {mark}: {}", f.key, f.message)?;
    }
    let problems = findings
        .iter()
        .filter(|f| f.severity == Severity::Problem)
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
