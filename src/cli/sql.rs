//! `cdp sql QUERY`: run a query on the pipeline's warehouse; table, CSV or JSON out.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use cdp::config::Overrides;
use cdp::warehouse::{self, QueryResult, WarehouseUrl};

use super::render;

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
        (Some(url), _) => WarehouseUrl::parse(url).map_err(anyhow::Error::msg)?,
        (None, Some(path)) => {
            super::load_pipeline(path, &Overrides::default())?
                .0
                .warehouse
        }
        (None, None) => {
            return Err(cdp::config::ConfigError::Parse {
                path: PathBuf::from("-"),
                message: "cdp sql needs --pipeline FILE (or CDP_PIPELINE) or --warehouse URL"
                    .into(),
            }
            .into())
        }
    };
    let mut wh = warehouse::open(&url)?;
    let result = wh.query(&args.query).with_context(|| format!("on {url}"))?;
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => writeln!(out, "{}", to_json(&result))?,
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut out);
            w.write_record(&result.columns)?;
            for row in &result.rows {
                w.write_record(row.iter().map(cell))?;
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
    Ok(())
}

fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn to_json(result: &QueryResult) -> String {
    let rows: Vec<serde_json::Value> = result
        .rows
        .iter()
        .map(|r| {
            serde_json::Value::Object(
                result
                    .columns
                    .iter()
                    .cloned()
                    .zip(r.iter().cloned())
                    .collect(),
            )
        })
        .collect();
    serde_json::Value::Array(rows).to_string()
}
