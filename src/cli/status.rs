//! `cdp status PIPELINE`: what each step last did, as a table or JSON.

use std::path::PathBuf;

use cdp::config::Overrides;
use cdp::lake::Lake;
use cdp::state::{self, Step};

use super::render;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline file (TOML).
    pub pipeline: PathBuf,
    /// Use this lake instead of the file's.
    #[arg(long, value_name = "URL")]
    pub lake: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let overrides = Overrides {
        lake: args.lake.clone(),
        warehouse: None,
    };
    let (pipeline, _) = super::load_pipeline(&args.pipeline, &overrides)?;
    let lake = Lake::open(&pipeline.lake)?;
    let mut records = Vec::new();
    for step in Step::ALL {
        records.push((step, state::read_step(&lake, step)?));
    }
    match args.format {
        Format::Json => {
            let map: serde_json::Map<String, serde_json::Value> = records
                .iter()
                .map(|(s, r)| {
                    (
                        s.as_str().to_string(),
                        serde_json::to_value(r).unwrap_or_default(),
                    )
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&map)?);
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = records
                .iter()
                .map(|(s, r)| match r {
                    Some(r) => vec![
                        s.as_str().into(),
                        r.run_id.clone(),
                        r.finished_at.clone(),
                        r.rows_in.to_string(),
                        r.rows_out.to_string(),
                    ],
                    None => vec![
                        s.as_str().into(),
                        "never run".into(),
                        String::new(),
                        String::new(),
                        String::new(),
                    ],
                })
                .collect();
            println!("pipeline {} (lake {})", pipeline.name, pipeline.lake);
            println!(
                "{}",
                render::table(
                    &["step", "last run", "finished", "rows in", "rows out"],
                    &rows
                )
            );
        }
    }
    Ok(())
}
