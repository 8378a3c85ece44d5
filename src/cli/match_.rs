//! `cdp match PIPELINE [--record JSON]`: which person a record belongs to, looked up
//! in the identity state the last resolve saved (resolves nothing). One record from
//! `--record`, else one JSON object a line on stdin, one answer line each.

use std::collections::HashMap;
use std::io::BufRead as _;

use anyhow::Context as _;

use cdp::identity::lookup::{self, Index};

use super::TargetArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline file (TOML).
    pub pipeline: std::path::PathBuf,
    #[command(flatten)]
    pub target: TargetArgs,
    /// One record as a JSON object of column -> value, e.g. '{"email":"a@b.io"}'.
    /// Without it, records are read from stdin, one JSON object a line.
    #[arg(long, value_name = "JSON", conflicts_with = "serve")]
    pub record: Option<String>,
    /// Serve lookups over HTTP on a loopback address (`127.0.0.1:8080`; port 0 picks
    /// one): `POST /match` with a record, `GET /health`. The state is reloaded after
    /// each resolve. Prints `listening on ADDRESS` on stdout once ready.
    #[arg(long, value_name = "ADDRESS")]
    pub serve: Option<std::net::SocketAddr>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (pipeline, _) = super::load_pipeline(&args.pipeline, &args.target.overrides())?;
    let lake = cdp::lake::Lake::open(&pipeline.lake)
        .with_context(|| format!("opening the lake {}", pipeline.lake))?;
    if let Some(addr) = args.serve {
        let listener = cdp::serve::bind(addr)?;
        let first = served(&lake, &pipeline).context("loading the identity state")?;
        let lake = std::sync::Arc::new(lake);
        let (version_lake, load_lake) = (std::sync::Arc::clone(&lake), lake);
        let reload = cdp::serve::Reload {
            version: Box::new(move || version(&version_lake)),
            load: Box::new(move || served(&load_lake, &pipeline).map_err(|e| format!("{e:#}"))),
            every: std::time::Duration::from_secs(1),
        };
        outln!("listening on {}", listener.local_addr()?)?;
        cdp::serve::serve(listener, first, reload);
        return Ok(());
    }
    let index = cdp::steps::resolve::lookup_index(&lake, &pipeline)
        .context("loading the identity state")?;
    if let Some(text) = &args.record {
        let record = lookup::record_from_json(text).context("--record")?;
        outln!("{}", answer(&index, &record))?;
        return Ok(());
    }
    for (i, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let out = match lookup::record_from_json(&line) {
            Ok(record) => answer(&index, &record),
            Err(e) => serde_json::json!({ "line": i + 1, "error": e.to_string() }),
        };
        outln!("{out}")?;
    }
    Ok(())
}

fn answer(index: &Index, record: &HashMap<String, String>) -> serde_json::Value {
    serde_json::to_value(index.lookup(record)).unwrap_or(serde_json::Value::Null)
}

/// The published state's version: the last resolve's run id.
fn version(lake: &cdp::lake::Lake) -> Option<String> {
    cdp::state::read_step(lake, cdp::state::Step::Resolve)
        .ok()
        .flatten()
        .map(|r| r.run_id)
}

fn served(
    lake: &cdp::lake::Lake,
    pipeline: &cdp::config::Pipeline,
) -> anyhow::Result<cdp::serve::Served> {
    // The version first: state published meanwhile is then seen as newer and reloaded.
    let version = version(lake);
    let index = cdp::steps::resolve::lookup_index(lake, pipeline)?;
    Ok(cdp::serve::Served { index, version })
}
