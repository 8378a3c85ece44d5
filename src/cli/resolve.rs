//! `cdp resolve PIPELINE [--truth FILE]`: resolve identities; score against a truth.

use std::path::PathBuf;

use anyhow::Context as _;

use cdp::identity::evaluate::Truth;
use cdp::identity::explain::{Explanation, Subject};
use cdp::identity::ResolveReport;
use cdp::steps::resolve::TruthReport;
use cdp::steps::Outcome;

use super::{render, GlobalArgs, StepArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub step: StepArgs,
    /// A ground-truth CSV (source,record_id,person_id): print pairwise precision,
    /// recall and F1 of the current identity graph.
    #[arg(long, value_name = "FILE")]
    pub truth: Option<PathBuf>,
    /// Explain the last resolution of one record (`source:record_id`, or a record id
    /// only one source uses) or one person (a `person_id` of customer_360): the
    /// person's members, the merges that built it with each comparison's level and
    /// weight, and the merges guards refused; for a record left alone, its nearest
    /// records and why each fell short. Resolves nothing.
    #[arg(long, value_name = "RECORD|PERSON", conflicts_with = "truth")]
    pub explain: Option<String>,
    /// Re-estimate the matching model and score every candidate pair (by default the
    /// last run's model is kept and only pairs touching new or changed records are
    /// scored). Implied when the [identity.matching] section changed.
    #[arg(long)]
    pub retrain: bool,
}

pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<()> {
    if let Some(record) = &args.explain {
        let (pipeline, _) = super::load_pipeline(&args.step.pipeline, &args.step.overrides())?;
        let lake = cdp::lake::Lake::open(&pipeline.lake)
            .with_context(|| format!("opening the lake {}", pipeline.lake))?;
        let identity = pipeline.identity.as_ref();
        let key = identity
            .and_then(|i| pipeline.entity(&i.entity))
            .map(|e| e.key.clone())
            .unwrap_or_default();
        let e = cdp::steps::resolve::explain(&lake, record, identity, &key)?;
        out!("{}", explanation_text(&e))?;
        return Ok(());
    }
    // The truth file is read while identities are resolved.
    let truth = args
        .truth
        .clone()
        .map(|path| std::thread::spawn(move || Truth::read(&path)));
    let (ctx, _lease) = super::open(&args.step, global, "resolve")?;
    let (outcome, report) = ctx.attempt(cdp::state::Step::Resolve, || {
        cdp::steps::resolve::run(&ctx, args.retrain)
    })?;
    ctx.finished(cdp::state::Step::Resolve, &outcome)?;
    match (&outcome, report) {
        (Outcome::Done(_), Some(report)) => outln!("{}", report_text(&report))?,
        _ => outln!("resolve: up to date (run {})", outcome.record().run_id)?,
    }
    if let Some(truth) = truth {
        let truth = truth.join().expect("reading the truth file panicked")?;
        let scored = cdp::steps::resolve::score(&ctx.lake, &ctx.pipeline, &truth)?;
        outln!("{}", accuracy_text(&scored))?;
    }
    Ok(())
}

pub fn report_text(r: &ResolveReport) -> String {
    let rows: Vec<Vec<String>> = r
        .rules
        .iter()
        .map(|s| {
            vec![
                s.rule.clone(),
                s.keyed_records.to_string(),
                s.pairs.to_string(),
                s.merges.to_string(),
                s.oversized_groups.to_string(),
            ]
        })
        .collect();
    let mut extra = String::new();
    if let Some(m) = &r.matching {
        let rows: Vec<Vec<String>> = m
            .blocking
            .iter()
            .map(|b| {
                vec![
                    b.rule.clone(),
                    b.blocks.to_string(),
                    b.pairs.to_string(),
                    b.oversized_blocks.to_string(),
                ]
            })
            .collect();
        extra.push_str(&format!(
            "\nmatching: {} candidate pairs scored ({} strong pairs reused), {} at or above the threshold, {} merges; model {}, EM {} rounds, {} (last change {:.1e}), prior {:.3e}\n{}",
            m.candidate_pairs,
            m.reused_edges,
            m.edges,
            m.merges,
            if m.trained { "trained" } else { "reused" },
            m.model.em_rounds,
            if m.model.em_converged { "converged" } else { "not converged" },
            m.model.em_final_change,
            m.model.prior,
            render::table(&["blocking rule", "blocks", "new pairs", "oversized blocks"], &rows)
        ));
        let rows: Vec<Vec<String>> = m
            .model
            .comparisons
            .iter()
            .flat_map(|c| {
                c.levels.iter().map(move |l| {
                    vec![
                        c.name.clone(),
                        l.label.clone(),
                        format!("{:.4}", l.m),
                        format!("{:.2e}", l.u),
                        format!("{:+.2}", (l.m / l.u).log2()),
                    ]
                })
            })
            .collect();
        extra.push_str(&format!(
            "\n{}",
            render::table(&["comparison", "level", "m", "u", "weight"], &rows)
        ));
        for c in &m.model.comparisons {
            for run in &c.pooled {
                extra.push_str(&format!(
                    "\n{}: levels {} pooled into one weight (EM weighed closer agreement lower)",
                    c.name,
                    run.iter()
                        .map(|l| format!("{l:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    for c in &r.chosen {
        extra.push_str(&format!("\nchosen from the data: {c}"));
    }
    if r.first_names_from_email > 0 {
        extra.push_str(&format!(
            "\nfirst names read from email addresses, for matching: {}",
            r.first_names_from_email
        ));
    }
    if r.household_merges > 0 {
        extra.push_str(&format!(
            "\nlone records joined to the household member they name: {}",
            r.household_merges
        ));
    }
    if !r.refused.is_empty() {
        let refused: Vec<String> = r.refused.iter().map(|(g, n)| format!("{g} {n}")).collect();
        extra.push_str(&format!(
            "\nmerges refused by guards: {}",
            refused.join(", ")
        ));
    }
    format!(
        "resolved {} records into {} persons (ids kept {}, new {}, merges {})\n{}{extra}",
        r.records,
        r.persons,
        r.ids.kept,
        r.ids.minted,
        r.ids.merges.len(),
        render::table(
            &[
                "rule",
                "keyed records",
                "pairs",
                "merges",
                "oversized groups"
            ],
            &rows
        )
    )
}

pub fn explanation_text(e: &Explanation) -> String {
    let key = |k: &(String, String)| format!("{}:{}", k.0, k.1);
    let mut out = match &e.subject {
        Subject::Record { key: record, rule } => format!(
            "{} is in person {} ({} records, linked by {rule})\n",
            key(record),
            e.person_id,
            e.members.len(),
        ),
        Subject::Person => format!("person {} ({} records)\n", e.person_id, e.members.len()),
    };
    for (m, rule) in &e.members {
        out.push_str(&format!("  member {} (linked by {rule})\n", key(m)));
    }
    for d in &e.decisions {
        let p = d
            .probability
            .map(|p| format!(" p={p:.4}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "{} {} -- {} by {}{p}\n",
            d.decision(),
            key(&d.left),
            key(&d.right),
            d.link
        ));
        if let Some(g) = &d.guard {
            out.push_str(&format!("    guard: {g}\n"));
        }
        if let Some(c) = &d.comparisons {
            out.push_str(&format!("    {c}\n"));
        }
    }
    if !e.near.is_empty() {
        out.push_str("nearest records, and why each fell short:\n");
    }
    for n in &e.near {
        out.push_str(&format!(
            "  near {} p={:.4}: {}\n    {}\n",
            key(&n.key),
            n.probability,
            n.reason,
            n.comparisons
        ));
    }
    out
}

/// The accuracy line (`precision=… recall=… f1=…`, which scripts read), then, when
/// truth records never reached the identity graph, how many and why.
pub fn accuracy_text(t: &TruthReport) -> String {
    let a = &t.accuracy;
    let mut out = format!(
        "precision={:.4} recall={:.4} f1={:.4} (records {}, true persons {}, predicted persons {}, persons found exactly {} = {:.1}%, pairs true {} predicted {} correct {})",
        a.precision,
        a.recall,
        a.f1,
        a.records,
        a.true_persons,
        a.predicted_persons,
        a.exact_persons,
        100.0 * a.exact_persons as f64 / a.true_persons.max(1) as f64,
        a.true_pairs,
        a.predicted_pairs,
        a.correct_pairs
    );
    if a.absent > 0 {
        let why: Vec<String> = t
            .absent_by_reason
            .iter()
            .map(|(reason, n)| format!("{n} {reason}"))
            .collect();
        out.push_str(&format!(
            "\ntruth records absent from the identity graph, scored as misses: {} ({})",
            a.absent,
            why.join(", ")
        ));
    }
    out
}
