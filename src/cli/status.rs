//! `cdp status PIPELINE`: what each step last did, for each data interval too, and who
//! holds the lease, as a table or JSON (for an Airflow sensor or a cron wrapper).

use std::path::PathBuf;

use cdp::config::Overrides;
use cdp::lake::Lake;
use cdp::state::{self, lease, Step};

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
    let mut failures = Vec::new();
    let mut steps = Step::ALL.to_vec();
    if !pipeline.audiences.is_empty() {
        steps.push(Step::Audience);
    }
    for &step in &steps {
        records.push((step, state::read_step(&lake, step)?));
        failures.push((step, state::read_failure(&lake, step)?));
    }
    let intervals = state::read_intervals(&lake)?;
    // Each sync's last run, and a failed sync step.
    let mut syncs = Vec::new();
    for s in &pipeline.syncs {
        let st: Option<cdp::sync::SyncState> =
            lake.get_json(&cdp::lake::layout::sync_state(&s.name))?;
        syncs.push((s.name.clone(), st.and_then(|st| st.last)));
    }
    // A sync failure counts until a later run of the syncs succeeds.
    let sync_failure = if pipeline.syncs.is_empty() {
        None
    } else {
        state::read_failure(&lake, Step::Sync)?.filter(|f| {
            !syncs
                .iter()
                .any(|(_, last)| last.as_ref().is_some_and(|l| l.run_id > f.run_id))
        })
    };
    let holder = lease::current(&lake)?;
    match args.format {
        Format::Json => {
            // Each step's last run at the top level (by step name), then every interval
            // oldest first with the last run of each of its steps, then the lease.
            let mut map: serde_json::Map<String, serde_json::Value> = records
                .iter()
                .map(|(s, r)| {
                    (
                        s.as_str().to_string(),
                        serde_json::to_value(r).unwrap_or_default(),
                    )
                })
                .collect();
            let list: Vec<serde_json::Value> = intervals
                .values()
                .map(|i| {
                    serde_json::json!({
                        "start": i.interval.start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        "end": i.interval.end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        "done": i.is_done(),
                        "steps": i.steps,
                    })
                })
                .collect();
            // Each step's failure newer than its last success, or null.
            let failed: serde_json::Map<String, serde_json::Value> = failures
                .iter()
                .map(|(s, f)| {
                    (
                        s.as_str().to_string(),
                        serde_json::to_value(f).unwrap_or_default(),
                    )
                })
                .collect();
            map.insert("failed".into(), failed.into());
            let by_sync: serde_json::Map<String, serde_json::Value> = syncs
                .iter()
                .map(|(name, last)| (name.clone(), serde_json::to_value(last).unwrap_or_default()))
                .collect();
            map.insert(
                "syncs".into(),
                serde_json::json!({"last": by_sync, "failed": sync_failure}),
            );
            map.insert("intervals".into(), list.into());
            map.insert("lease".into(), serde_json::to_value(&holder)?);
            outln!("{}", serde_json::to_string_pretty(&map)?)?;
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = records
                .iter()
                .zip(&failures)
                .map(|((s, r), (_, failed))| match failed {
                    // A failure newer than the last success is what a reader needs.
                    Some(f) => vec![
                        s.as_str().into(),
                        format!("FAILED ({}): {}", f.kind.as_str(), f.run_id),
                        f.failed_at.clone(),
                        String::new(),
                        String::new(),
                    ],
                    None => match r {
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
                    },
                })
                .collect();
            outln!("pipeline {} (lake {})", pipeline.name, pipeline.lake)?;
            outln!(
                "{}",
                render::table(
                    &["step", "last run", "finished", "rows in", "rows out"],
                    &rows
                )
            )?;
            let rows: Vec<Vec<String>> = intervals
                .values()
                .flat_map(|i| {
                    let in_order = steps
                        .iter()
                        .filter_map(|s| i.steps.get(s.as_str()).map(|r| (s.as_str(), r)));
                    in_order.map(|(step, r)| {
                        vec![
                            i.interval.to_string(),
                            step.to_string(),
                            r.run_id.clone(),
                            r.outcome.clone(),
                            r.rows_in.to_string(),
                            r.rows_out.to_string(),
                        ]
                    })
                })
                .collect();
            if !rows.is_empty() {
                outln!(
                    "{}",
                    render::table(
                        &["interval", "step", "run", "outcome", "rows in", "rows out"],
                        &rows
                    )
                )?;
            }
            for (step, f) in failures.iter().filter_map(|(s, f)| Some((s, f.as_ref()?))) {
                outln!("{} failed in run {}: {}", step.as_str(), f.run_id, f.reason)?;
            }
            if !syncs.is_empty() {
                let rows: Vec<Vec<String>> = syncs
                    .iter()
                    .map(|(name, last)| match last {
                        Some(r) => vec![
                            name.clone(),
                            r.run_id.clone(),
                            r.sent.to_string(),
                            r.accepted.to_string(),
                            r.rejected.to_string(),
                        ],
                        None => vec![
                            name.clone(),
                            "never run".into(),
                            String::new(),
                            String::new(),
                            String::new(),
                        ],
                    })
                    .collect();
                outln!(
                    "{}",
                    render::table(&["sync", "last run", "sent", "accepted", "rejected"], &rows)
                )?;
            }
            if let Some(f) = &sync_failure {
                outln!("sync failed in run {}: {}", f.run_id, f.reason)?;
            }
            if let Some(h) = holder {
                outln!(
                    "running: run {} ({}) on {} pid {} since {}",
                    h.run_id,
                    h.command,
                    h.host,
                    h.pid,
                    h.acquired_at
                )?;
            }
        }
    }
    Ok(())
}
