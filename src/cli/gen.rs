//! `cdp gen --persons N --seed S --out DIR`: synthetic sources plus ground truth.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use cdp::gen::{generate, GenOptions, SurnamePool};
use cdp::progress::Printer;

use super::{render, GlobalArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// How many real persons to invent (records are about 2.6 per person).
    #[arg(long, default_value_t = 2000)]
    pub persons: u64,
    /// Same seed, same bytes.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Directory to write (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// `census`: surnames as common as in the 2010 US census (a long tail).
    /// `embedded`: only the few hundred commonest, so namesakes are about
    /// twenty times commoner; a stress test for identity resolution.
    #[arg(long, value_enum, default_value_t = SurnamesArg::Census)]
    pub surnames: SurnamesArg,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SurnamesArg {
    Census,
    Embedded,
}

impl From<SurnamesArg> for SurnamePool {
    fn from(s: SurnamesArg) -> Self {
        match s {
            SurnamesArg::Census => SurnamePool::Census,
            SurnamesArg::Embedded => SurnamePool::Embedded,
        }
    }
}

pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let bar = Printer::new(global.quiet).bar(args.persons, "generate persons");
    let opts = GenOptions {
        persons: args.persons,
        seed: args.seed,
        out: args.out.clone(),
        surnames: args.surnames.into(),
    };
    let report = generate(&opts, &mut |done| bar.set_position(done))
        .with_context(|| format!("writing generated data to {}", args.out.display()))?;
    bar.finish_and_clear();
    let rows: Vec<Vec<String>> = report
        .files
        .iter()
        .map(|f| vec![f.path.display().to_string(), f.rows.to_string()])
        .collect();
    outln!(
        "generated {} persons in {} households into {} (seed {}) in {}",
        report.persons,
        report.households,
        args.out.display(),
        args.seed,
        render::elapsed(start.elapsed())
    )?;
    outln!("{}", render::table(&["file", "rows"], &rows))?;
    Ok(())
}
