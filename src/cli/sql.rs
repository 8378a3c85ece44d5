//! `cdp sql QUERY`: run a query on the pipeline's warehouse; table, CSV or JSON out.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use cdp::config::Overrides;
use cdp::warehouse::{self, QueryResult, WarehouseUrl};

use super::{render, UsageError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The SQL to run.
    pub query: String,
    /// The pipeline file whose warehouse to query.
    #[arg(short, long, env = "CDP_PIPELINE", value_name = "FILE")]
    pub pipeline: Option<PathBuf>,
    /// Query this warehouse instead (`duckdb://FILE`).
    #[arg(long, value_name = "URL")]
    pub warehouse: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let url = match (&args.warehouse, &args.pipeline) {
        (Some(url), _) => {
            WarehouseUrl::parse(url).map_err(|m| UsageError(format!("--warehouse: {m}")))?
        }
        (None, Some(path)) => {
            super::load_pipeline(path, &Overrides::default())?
                .0
                .warehouse
        }
        (None, None) => {
            return Err(UsageError(
                "cdp sql needs --pipeline FILE (or CDP_PIPELINE) or --warehouse URL".into(),
            )
            .into())
        }
    };
    // Read-only: a query creates no file and takes no lock a load would need.
    let mut wh = warehouse::open_for_query(&url)?;
    let result = wh.query(&args.query).with_context(|| format!("on {url}"))?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match args.format {
        Format::Json => write_json(&mut out, &result)?,
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut out);
            w.write_record(&result.columns).map_err(csv_io)?;
            for row in &result.rows {
                w.write_record(row.iter().map(cell)).map_err(csv_io)?;
            }
            w.flush()?;
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = result
                .rows
                .iter()
                .map(|r| r.iter().map(cell).collect())
                .collect();
            let headers: Vec<&str> = result.columns.iter().map(String::as_str).collect();
            writeln!(out, "{}", render::table(&headers, &rows))?;
            writeln!(
                out,
                "({} row{})",
                rows.len(),
                if rows.len() == 1 { "" } else { "s" }
            )?;
        }
    }
    out.flush()?;
    Ok(())
}

/// The I/O error inside a CSV writer's error, so that a closed pipe is seen as one
/// (`csv::Error` does not expose it as its source).
fn csv_io(e: csv::Error) -> std::io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => std::io::Error::other(format!("{other:?}")),
    }
}

/// A value as a table or CSV cell: text as is, NULL empty, anything else (numbers,
/// lists, structs) as its JSON.
fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The rows as a JSON array of objects whose keys are in the query's column order
/// (written by hand: `serde_json`'s map would sort them).
fn write_json(out: &mut impl Write, result: &QueryResult) -> std::io::Result<()> {
    let keys: Vec<String> = result
        .columns
        .iter()
        .map(|c| serde_json::Value::String(c.clone()).to_string())
        .collect();
    out.write_all(b"[")?;
    for (i, row) in result.rows.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        out.write_all(b"{")?;
        for (j, (key, value)) in keys.iter().zip(row).enumerate() {
            if j > 0 {
                out.write_all(b",")?;
            }
            write!(out, "{key}:{value}")?;
        }
        out.write_all(b"}")?;
    }
    out.write_all(b"]\n")
}
