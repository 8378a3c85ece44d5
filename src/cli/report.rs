//! `cdp report PIPELINE [--run RUN] [--out FILE]`: the report page (HTML) and its
//! figures (JSON beside it, same name), from what the pipeline wrote; reads only.

use std::path::PathBuf;

use anyhow::Context as _;
use cdp::insights::report;
use cdp::lake::Lake;
use cdp::warehouse;

use super::{TargetArgs, UsageError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline file (TOML).
    pub pipeline: PathBuf,
    #[command(flatten)]
    pub target: TargetArgs,
    /// The last run the report covers (default: the latest).
    #[arg(long, value_name = "RUN")]
    pub run: Option<String>,
    /// Where to write the page; the JSON goes beside it with the extension .json.
    #[arg(long, value_name = "FILE", default_value = "cdp-report.html")]
    pub out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (p, _) = super::load_pipeline(&args.pipeline, &args.target.overrides())?;
    let lake = Lake::open(&p.lake).with_context(|| format!("lake {}", p.lake))?;
    if let Err(e @ report::ReportError::UnknownRun(_)) = report::runs(&lake, args.run.as_deref()) {
        return Err(UsageError(e.to_string()).into());
    }
    let mut wh = warehouse::open_for_query(&p.warehouse)?;
    let r = match report::gather(&p, &lake, wh.as_mut(), args.run.as_deref()) {
        Err(e @ report::ReportError::UnknownRun(_)) => return Err(UsageError(e.to_string()).into()),
        r => r?,
    };
    let (html, json) = report::write(&r, &args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    outln!("report: {}", html.display())?;
    outln!("figures: {}", json.display())?;
    Ok(())
}
