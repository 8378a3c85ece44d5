//! `cdp load PIPELINE`: load the current results into the warehouse.

use cdp::steps::load::TableLoad;

use super::{render, GlobalArgs, StepArgs};

pub fn run(args: StepArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let (ctx, _lease) = super::open(&args, global, "load")?;
    let (outcome, loads) = ctx.attempt(cdp::state::Step::Load, || cdp::steps::load::run(&ctx))?;
    ctx.finished(cdp::state::Step::Load, &outcome)?;
    outln!("load into {}", ctx.pipeline.warehouse)?;
    outln!("{}", loads_table(&loads))?;
    Ok(())
}

pub fn loads_table(loads: &[TableLoad]) -> String {
    let rows: Vec<Vec<String>> = loads
        .iter()
        .map(|l| {
            let what = if l.loaded { "loaded" } else { "unchanged" };
            vec![l.table.clone(), l.rows.to_string(), what.to_string()]
        })
        .collect();
    render::table(&["table", "rows", ""], &rows)
}
