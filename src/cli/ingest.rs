//! `cdp ingest PIPELINE`: land what is new from every source.

use cdp::steps::ingest::Landed;

use super::{render, GlobalArgs, StepArgs};

pub fn run(args: StepArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let (ctx, _lease) = super::open(&args, global, "ingest")?;
    let (outcome, landed) =
        ctx.attempt(cdp::state::Step::Ingest, || cdp::steps::ingest::run(&ctx))?;
    ctx.finished(cdp::state::Step::Ingest, &outcome)?;
    outln!("ingest {} (run {})", ctx.pipeline.name, ctx.run_id)?;
    outln!("{}", landed_table(&landed))?;
    Ok(())
}

pub fn landed_table(landed: &[Landed]) -> String {
    let rows: Vec<Vec<String>> = landed
        .iter()
        .map(|l| {
            vec![
                l.source.clone(),
                l.files.to_string(),
                l.rows.to_string(),
                l.bytes.to_string(),
            ]
        })
        .collect();
    render::table(&["source", "new files", "rows", "bytes"], &rows)
}
