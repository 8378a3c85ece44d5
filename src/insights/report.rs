//! `cdp report`: the state of the customer data at a glance, as one self-contained
//! HTML page (inline SVG charts and a few lines of inline script that check them;
//! nothing fetched) and the same figures as JSON. Everything comes from what the
//! pipeline already wrote: the step records and quality reports in the lake, the
//! sync run reports, and the warehouse's identity graph, audience history and
//! orders. A part whose inputs do not exist yet (no load, no audiences) is reported
//! empty, with a note, instead of failing the report.
//!
//! Sections: identity (records and persons per run, cluster sizes, persons shared by
//! each pair of sources, how records were linked, match probabilities, guard
//! refusals, id merges and splits, the largest persons), quality over time (rows in
//! and quarantined per run, each check's failing rate per run), audiences (size,
//! entries and exits per run), syncs (outcomes per run) and campaigns (lift over
//! the holdout with 95% intervals, see [`super::lift`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use chrono::{NaiveDateTime, TimeDelta};
use serde::Serialize;
use serde_json::Value as J;

use super::campaign::{measure, Member, Order};
use super::lift::Lift;
use crate::audience::build::{HOLDOUTS_TABLE, RUNS_TABLE};
use crate::audience::related_from;
use crate::clean::html::esc;
use crate::clean::quality::QualityReport;
use crate::config::{CampaignOutcome, Pipeline, Value, IDENTITY_GRAPH_TABLE};
use crate::lake::{layout, Lake, LakeError};
use crate::state::{Figure, Step, StepRecord};
use crate::sync::SyncReport;
use crate::warehouse::{columns_of, Warehouse, WarehouseError};

/// Runs shown in the series (the latest ones).
const HISTORY: usize = 12;
/// Persons listed as the largest.
const LARGEST: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error("no run {0} in the lake's history; `cdp status` lists the runs")]
    UnknownRun(String),
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    pub pipeline: String,
    /// The last run the report covers (runs after it are left out).
    pub run: Option<String>,
    pub generated_at: String,
    pub identity: Identity,
    pub quality: Vec<EntityQuality>,
    pub audiences: Vec<AudienceSeries>,
    pub syncs: Vec<SyncSeries>,
    pub campaigns: Vec<CampaignResult>,
    /// Parts left empty, and why.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Identity {
    pub records: u64,
    pub persons: u64,
    pub runs: Vec<ResolveRun>,
    /// (records per person, persons with that many).
    pub cluster_sizes: Vec<(u64, u64)>,
    pub sources: Vec<String>,
    /// `shared[i][j]`: persons with records in both `sources[i]` and `sources[j]`
    /// (the diagonal: persons with a record in the source).
    pub shared: Vec<Vec<u64>>,
    /// (how a record was linked: a rule, `probabilistic`, `household`, `singleton`,
    /// records).
    pub links: Vec<(String, u64)>,
    /// (lower bound of a 0.1-wide probability bucket, records linked by matching).
    pub probabilities: Vec<(f64, u64)>,
    /// (guard, merges it refused) in the last resolve.
    pub refused: Vec<(String, u64)>,
    pub largest: Vec<LargePerson>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResolveRun {
    pub run_id: String,
    pub records: u64,
    pub persons: u64,
    pub ids_kept: u64,
    pub ids_minted: u64,
    /// Persons merged into another since the previous run.
    pub ids_merged: u64,
    pub rule_merges: u64,
    pub matching_merges: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LargePerson {
    pub person_id: String,
    pub records: u64,
    /// `cdp resolve PIPELINE --explain` takes this.
    pub explain: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct EntityQuality {
    pub entity: String,
    pub runs: Vec<QualityRun>,
    pub checks: Vec<CheckSeries>,
}

#[derive(Debug, Clone, Serialize)]
pub struct QualityRun {
    pub run_id: String,
    pub rows_read: u64,
    pub rows_quarantined: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckSeries {
    pub check: String,
    /// (run, failing share of rows checked), oldest first.
    pub rates: Vec<(String, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AudienceSeries {
    pub audience: String,
    pub runs: Vec<AudienceRun>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AudienceRun {
    pub run: String,
    pub as_of: String,
    pub size: u64,
    pub entered: u64,
    pub exited: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SyncSeries {
    pub sync: String,
    pub runs: Vec<SyncReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CampaignResult {
    pub name: String,
    pub audience: String,
    pub start: String,
    pub days: u32,
    pub outcome: String,
    pub lift: Option<Lift>,
    pub note: Option<String>,
}

fn num(v: Option<&J>) -> u64 {
    match v {
        Some(J::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().map(|f| f.max(0.0) as u64))
            .unwrap_or(0),
        Some(J::String(s)) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

fn float(v: Option<&J>) -> Option<f64> {
    match v {
        Some(J::Number(n)) => n.as_f64(),
        Some(J::String(s)) => s.parse().ok(),
        _ => None,
    }
}

fn text(v: Option<&J>) -> String {
    match v {
        Some(J::String(s)) => s.clone(),
        Some(J::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// The run ids of the lake's history, oldest first, up to `last` (which must be one).
pub fn runs(lake: &Lake, last: Option<&str>) -> Result<Vec<String>, ReportError> {
    let prefix = format!("{}runs/", layout::STATE);
    let mut ids: Vec<String> = lake
        .list(&prefix)?
        .iter()
        .filter_map(|k| {
            k.strip_prefix(&prefix)?
                .split('/')
                .next()
                .map(str::to_string)
        })
        .collect();
    ids.sort();
    ids.dedup();
    if let Some(last) = last {
        if !ids.iter().any(|r| r == last) {
            return Err(ReportError::UnknownRun(last.into()));
        }
        ids.retain(|r| r.as_str() <= last);
    }
    Ok(ids)
}

fn tables(wh: &mut dyn Warehouse) -> Result<Vec<String>, ReportError> {
    let r = wh.query("SELECT lower(table_name) FROM information_schema.tables")?;
    Ok(r.rows.iter().map(|row| text(row.first())).collect())
}

/// Gathers the report's figures.
pub fn gather(
    p: &Pipeline,
    lake: &Lake,
    wh: &mut dyn Warehouse,
    run: Option<&str>,
) -> Result<Report, ReportError> {
    let history = runs(lake, run)?;
    let mut report = Report {
        pipeline: p.name.clone(),
        run: history.last().cloned(),
        generated_at: crate::state::now_rfc3339(),
        ..Report::default()
    };
    let recent: Vec<&String> = history.iter().rev().take(HISTORY).rev().collect();

    // Per-run step records: resolve figures, and which runs cleaned.
    for r in &recent {
        let key = layout::run_step_record(r, Step::Resolve.as_str());
        if let Some(rec) = lake.get_json::<StepRecord>(&key)? {
            let f = |fig: Figure| rec.figures.get(&fig.key()).copied().unwrap_or(0);
            let rule_merges = rec
                .figures
                .iter()
                .filter(|(k, _)| k.starts_with("rule.") && k.ends_with(".merges"))
                .map(|(_, v)| v)
                .sum();
            report.identity.runs.push(ResolveRun {
                run_id: rec.run_id.clone(),
                records: rec.rows_in,
                persons: f(Figure::Persons),
                ids_kept: f(Figure::IdsKept),
                ids_minted: f(Figure::IdsMinted),
                ids_merged: f(Figure::IdsMerged),
                rule_merges,
                matching_merges: f(Figure::MatchingMerges),
            });
            report.identity.refused = rec
                .figures
                .iter()
                .filter_map(|(k, v)| Some((k.strip_prefix("refused.")?.to_string(), *v)))
                .collect();
        }
    }

    // Quality over time, from each run's quality report.
    let mut quality: BTreeMap<String, EntityQuality> = BTreeMap::new();
    for r in &recent {
        let Some(q) = lake.get_json::<QualityReport>(&layout::quality_report(r))? else {
            continue;
        };
        for e in q.entities {
            let eq = quality
                .entry(e.entity.clone())
                .or_insert_with(|| EntityQuality {
                    entity: e.entity.clone(),
                    runs: Vec::new(),
                    checks: Vec::new(),
                });
            eq.runs.push(QualityRun {
                run_id: q.run_id.clone(),
                rows_read: e.rows_read,
                rows_quarantined: e.rows_quarantined,
            });
            for c in e.checks {
                let rate = if c.total == 0 {
                    0.0
                } else {
                    c.failing as f64 / c.total as f64
                };
                match eq.checks.iter_mut().find(|s| s.check == c.check) {
                    Some(s) => s.rates.push((q.run_id.clone(), rate)),
                    None => eq.checks.push(CheckSeries {
                        check: c.check,
                        rates: vec![(q.run_id.clone(), rate)],
                    }),
                }
            }
        }
    }
    report.quality = quality.into_values().collect();
    if report.quality.is_empty() {
        report
            .notes
            .push("quality: no quality report yet (run `cdp clean`)".into());
    }

    // Syncs: their run reports.
    for s in &p.syncs {
        let mut runs: Vec<SyncReport> = Vec::new();
        for key in lake.list(&layout::sync_run_reports(&s.name))? {
            if let Some(r) = lake.get_json::<SyncReport>(&key)? {
                if run.is_none_or(|last| r.run_id.as_str() <= last) {
                    runs.push(r);
                }
            }
        }
        runs.sort_by(|a, b| a.run_id.cmp(&b.run_id));
        let skip = runs.len().saturating_sub(HISTORY);
        report.syncs.push(SyncSeries {
            sync: s.name.clone(),
            runs: runs.split_off(skip),
        });
    }

    let present = tables(wh)?;
    if present.iter().any(|t| t == IDENTITY_GRAPH_TABLE) {
        identity_figures(wh, &mut report.identity)?;
    } else {
        report
            .notes
            .push("identity: no identity_graph in the warehouse yet (run `cdp load`)".into());
    }
    if present.iter().any(|t| t == RUNS_TABLE) {
        report.audiences = audience_series(wh, p, run)?;
    } else if !p.audiences.is_empty() {
        report
            .notes
            .push("audiences: none built yet (run `cdp audience build`)".into());
    }
    for c in &p.campaigns {
        report.campaigns.push(campaign(wh, p, c, &present)?);
    }
    Ok(report)
}

fn identity_figures(wh: &mut dyn Warehouse, id: &mut Identity) -> Result<(), ReportError> {
    let d = wh.dialect();
    let g = d.ident(IDENTITY_GRAPH_TABLE);
    let r = wh.query(&format!(
        "SELECT COUNT(*), COUNT(DISTINCT person_id) FROM {g}"
    ))?;
    if let Some(row) = r.rows.first() {
        id.records = num(row.first());
        id.persons = num(row.get(1));
    }
    let r = wh.query(&format!(
        "SELECT n, COUNT(*) FROM (SELECT person_id, COUNT(*) AS n FROM {g} GROUP BY person_id) AS c GROUP BY n ORDER BY n"
    ))?;
    id.cluster_sizes = r
        .rows
        .iter()
        .map(|row| (num(row.first()), num(row.get(1))))
        .collect();
    let r = wh.query(&format!(
        "WITH s AS (SELECT DISTINCT person_id, source FROM {g}) \
         SELECT a.source, b.source, COUNT(*) FROM s AS a JOIN s AS b ON a.person_id = b.person_id \
         GROUP BY a.source, b.source ORDER BY a.source, b.source"
    ))?;
    let mut sources: Vec<String> = r.rows.iter().map(|row| text(row.first())).collect();
    sources.dedup();
    let index: HashMap<&str, usize> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let mut shared = vec![vec![0; sources.len()]; sources.len()];
    for row in &r.rows {
        if let (Some(&i), Some(&j)) = (
            index.get(text(row.first()).as_str()),
            index.get(text(row.get(1)).as_str()),
        ) {
            shared[i][j] = num(row.get(2));
        }
    }
    id.sources = sources;
    id.shared = shared;
    let graph_columns = columns_of(wh, IDENTITY_GRAPH_TABLE)?.unwrap_or_default();
    if graph_columns.iter().any(|c| c == "rule") {
        let r = wh.query(&format!(
            "SELECT {rule}, COUNT(*) FROM {g} GROUP BY {rule} ORDER BY COUNT(*) DESC, {rule}",
            rule = d.ident("rule")
        ))?;
        id.links = r
            .rows
            .iter()
            .map(|row| (text(row.first()), num(row.get(1))))
            .collect();
    }
    let mut buckets = [0u64; 10];
    if graph_columns.iter().any(|c| c == "match_probability") {
        let r = wh.query(&format!(
            "SELECT LEAST(FLOOR(match_probability * 10), 9) AS b, COUNT(*) FROM {g} \
             WHERE match_probability IS NOT NULL GROUP BY b ORDER BY b"
        ))?;
        for row in &r.rows {
            let b = float(row.first()).unwrap_or(0.0).clamp(0.0, 9.0) as usize;
            buckets[b] += num(row.get(1));
        }
    }
    id.probabilities = buckets
        .iter()
        .enumerate()
        .map(|(i, n)| (i as f64 / 10.0, *n))
        .collect();
    let r = wh.query(&format!(
        "SELECT {pid}, COUNT(*) AS n, MIN(source || ':' || record_id) FROM {g} \
         GROUP BY {pid} ORDER BY n DESC, {pid} LIMIT {LARGEST}",
        pid = d.cast_text("person_id")
    ))?;
    id.largest = r
        .rows
        .iter()
        .map(|row| LargePerson {
            person_id: text(row.first()),
            records: num(row.get(1)),
            explain: text(row.get(2)),
        })
        .collect();
    Ok(())
}

fn audience_series(
    wh: &mut dyn Warehouse,
    p: &Pipeline,
    run: Option<&str>,
) -> Result<Vec<AudienceSeries>, ReportError> {
    let d = wh.dialect();
    let mut out = Vec::new();
    for a in &p.audiences {
        let mut filter = format!("audience = {}", d.text(&a.name));
        if let Some(r) = run {
            // Audience build runs are named like pipeline runs; later ones are left out.
            let _ = write!(filter, " AND run <= {}", d.text(r));
        }
        let r = wh.query(&format!(
            "SELECT run, {asof}, size, entered, exited FROM {t} WHERE {filter} ORDER BY as_of DESC, run DESC LIMIT {HISTORY}",
            asof = d.cast_text("as_of"),
            t = d.ident(RUNS_TABLE)
        ))?;
        let mut runs: Vec<AudienceRun> = r
            .rows
            .iter()
            .map(|row| AudienceRun {
                run: text(row.first()),
                as_of: text(row.get(1)),
                size: num(row.get(2)),
                entered: num(row.get(3)),
                exited: num(row.get(4)),
            })
            .collect();
        runs.reverse();
        out.push(AudienceSeries {
            audience: a.name.clone(),
            runs,
        });
    }
    Ok(out)
}

/// A campaign's lift: the audience's members of its latest build (treatment: the
/// audience table; holdout: that build's held-out persons), their orders in the
/// window.
fn campaign(
    wh: &mut dyn Warehouse,
    p: &Pipeline,
    c: &crate::config::CampaignConfig,
    present: &[String],
) -> Result<CampaignResult, ReportError> {
    let d = wh.dialect();
    let (outcome, amount) = match &c.outcome {
        CampaignOutcome::Conversion => ("conversion", None),
        CampaignOutcome::Revenue { amount } => ("revenue", Some(amount.clone())),
    };
    let mut result = CampaignResult {
        name: c.name.clone(),
        audience: c.audience.clone(),
        start: c.start.to_string(),
        days: c.days,
        outcome: outcome.into(),
        lift: None,
        note: None,
    };
    let Some(a) = p.audiences.iter().find(|a| a.name == c.audience) else {
        return Ok(result);
    };
    let table = a.table();
    if !present.contains(&table) || !present.iter().any(|t| t == HOLDOUTS_TABLE) {
        result.note = Some(format!(
            "audience {} is not built yet (run `cdp audience build`)",
            a.name
        ));
        return Ok(result);
    }
    if !present.contains(&c.orders) {
        result.note = Some(format!("no {} table in the warehouse yet", c.orders));
        return Ok(result);
    }
    let name = d.text(&a.name);
    let r = wh.query(&format!(
        "SELECT {pid}, FALSE FROM {t} UNION ALL \
         SELECT {pid}, TRUE FROM {h} WHERE audience = {name} AND run = (SELECT MAX(run) FROM {h} WHERE audience = {name})",
        pid = d.cast_text("person_id"),
        t = d.ident(&table),
        h = d.ident(HOLDOUTS_TABLE)
    ))?;
    let mut ids: HashMap<String, u64> = HashMap::new();
    let mut members = Vec::new();
    for row in &r.rows {
        let next = ids.len() as u64;
        let id = *ids.entry(text(row.first())).or_insert(next);
        members.push(Member {
            person_id: id,
            holdout: matches!(row.get(1), Some(J::Bool(true))),
        });
    }
    let start = c.start.and_hms_opt(0, 0, 0).unwrap_or_default();
    let end = start + TimeDelta::days(i64::from(c.days));
    let from = related_from(p, &c.orders, d).unwrap_or_default();
    let at = format!("r.{}", d.ident(&c.at));
    let value = amount
        .as_ref()
        .map(|a| format!("r.{}", d.ident(a)))
        .unwrap_or_else(|| "0".into());
    let bound = |t: NaiveDateTime| d.literal(&Value::Timestamp(t));
    let r = wh.query(&format!(
        "SELECT {pid}, {ts}, {value} {from} WHERE {at} >= {} AND {at} < {}",
        bound(start),
        bound(end),
        pid = d.cast_text("g.person_id"),
        ts = d.cast_text(&at),
    ))?;
    let mut orders = Vec::new();
    for row in &r.rows {
        let Some(&person_id) = ids.get(&text(row.first())) else {
            continue;
        };
        let at = text(row.get(1));
        let at = NaiveDateTime::parse_from_str(&at, "%Y-%m-%d %H:%M:%S%.f")
            .or_else(|_| {
                NaiveDateTime::parse_from_str(&format!("{at} 00:00:00"), "%Y-%m-%d %H:%M:%S")
            })
            .unwrap_or(start);
        orders.push(Order {
            person_id,
            at,
            amount: float(row.get(2)).unwrap_or(0.0),
        });
    }
    if members.is_empty() {
        result.note = Some(format!("audience {} has no members", a.name));
        return Ok(result);
    }
    result.lift = Some(measure(c, members, orders));
    Ok(result)
}

// ------------------------------------------------------------------------- HTML

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A column chart (one bar per label), as inline SVG of class `chart`.
fn columns(title: &str, bars: &[(String, f64)], width: u32, height: u32, percent: bool) -> String {
    let mut s = String::new();
    let max = bars
        .iter()
        .map(|b| b.1)
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE);
    let n = bars.len().max(1) as f64;
    let plot_h = f64::from(height) - 34.0;
    let slot = (f64::from(width) - 10.0) / n;
    let _ = write!(
        s,
        "<svg class=\"chart\" role=\"img\" aria-label=\"{t}\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\"><title>{t}</title>\
<line x1=\"5\" y1=\"{base}\" x2=\"{x2}\" y2=\"{base}\" stroke=\"#999\"/>",
        t = esc(title),
        base = plot_h + 14.0,
        x2 = width - 5,
    );
    for (i, (label, v)) in bars.iter().enumerate() {
        let h = (v / max * plot_h).max(if *v > 0.0 { 1.0 } else { 0.0 });
        let x = 5.0 + slot * i as f64 + slot * 0.1;
        let shown = if percent {
            format!("{:.1}%", v * 100.0)
        } else {
            thousands(v.round() as u64)
        };
        let _ = write!(
            s,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"#4a7bd0\"><title>{l}: {shown}</title></rect>",
            y = plot_h + 14.0 - h,
            w = slot * 0.8,
            l = esc(label),
        );
        if bars.len() <= 16 {
            let _ = write!(
                s,
                "<text x=\"{cx:.1}\" y=\"{ty:.1}\" font-size=\"10\" text-anchor=\"middle\">{l}</text>",
                cx = x + slot * 0.4,
                ty = plot_h + 27.0,
                l = esc(label),
            );
        }
    }
    let _ = write!(
        s,
        "<text x=\"5\" y=\"10\" font-size=\"10\" fill=\"#555\">max {}</text></svg>",
        if percent {
            format!("{:.1}%", max * 100.0)
        } else {
            thousands(max.round() as u64)
        }
    );
    s
}

fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = String::from("<table><tr>");
    for h in headers {
        let _ = write!(s, "<th>{}</th>", esc(h));
    }
    s.push_str("</tr>");
    for r in rows {
        s.push_str("<tr>");
        for c in r {
            let class = if c
                .chars()
                .next()
                .is_some_and(|ch| ch.is_ascii_digit() || ch == '-' || ch == '+')
            {
                " class=n"
            } else {
                ""
            };
            let _ = write!(s, "<td{class}>{}</td>", esc(c));
        }
        s.push_str("</tr>");
    }
    s.push_str("</table>");
    s
}

fn short_run(run: &str) -> String {
    // 20261125T210400123Z -> 11-25 21:04
    if run.len() >= 13 && run.as_bytes().get(8) == Some(&b'T') {
        format!(
            "{}-{} {}:{}",
            &run[4..6],
            &run[6..8],
            &run[9..11],
            &run[11..13]
        )
    } else {
        run.to_string()
    }
}

fn pct(x: f64) -> String {
    format!("{:+.2}%", x * 100.0)
}

/// The page. Its script checks that every chart drew something and says so on the
/// body (`data-charts="ok:N"`), or logs an error naming the chart.
pub fn render(r: &Report) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>cdp report: {p}</title>\
<style>body{{font:14px system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}}h2{{margin-top:2em;border-bottom:2px solid #4a7bd0}}\
table{{border-collapse:collapse;margin:.5em 0 1.5em}}td,th{{padding:3px 10px;border-bottom:1px solid #ddd;text-align:left}}\
td.n{{text-align:right;font-variant-numeric:tabular-nums}}.grid{{display:flex;flex-wrap:wrap;gap:12px}}.grid figure{{margin:0}}\
figcaption{{font-size:12px;color:#555}}.note{{color:#8a5a00}}.sig{{color:#17803d;font-weight:bold}}.ns{{color:#555}}</style></head><body>\
<h1>Customer data report: {p}</h1><p>Generated {g}{run}.</p>",
        p = esc(&r.pipeline),
        g = esc(&r.generated_at),
        run = r
            .run
            .as_ref()
            .map(|x| format!(", up to run <code>{}</code>", esc(x)))
            .unwrap_or_default(),
    );
    for n in &r.notes {
        let _ = write!(h, "<p class=\"note\">{}</p>", esc(n));
    }

    // Identity.
    let id = &r.identity;
    let _ = write!(
        h,
        "<h2>Identity</h2><p>{} records resolved into {} persons.</p>",
        thousands(id.records),
        thousands(id.persons)
    );
    if !id.runs.is_empty() {
        let rows: Vec<Vec<String>> = id
            .runs
            .iter()
            .map(|x| {
                vec![
                    x.run_id.clone(),
                    thousands(x.records),
                    thousands(x.persons),
                    thousands(x.ids_kept),
                    thousands(x.ids_minted),
                    thousands(x.ids_merged),
                    thousands(x.rule_merges),
                    thousands(x.matching_merges),
                ]
            })
            .collect();
        h.push_str("<h3>Records and persons per run</h3>");
        h.push_str(&table(
            &[
                "run",
                "records",
                "persons",
                "ids kept",
                "new ids",
                "ids merged away",
                "rule merges",
                "matching merges",
            ],
            &rows,
        ));
        let bars: Vec<(String, f64)> = id
            .runs
            .iter()
            .map(|x| (short_run(&x.run_id), x.persons as f64))
            .collect();
        h.push_str(&columns("persons per run", &bars, 640, 160, false));
    }
    if !id.cluster_sizes.is_empty() {
        h.push_str("<h3>Records per person</h3>");
        let mut bars: Vec<(String, f64)> = Vec::new();
        for (size, n) in &id.cluster_sizes {
            if *size < 10 {
                bars.push((size.to_string(), *n as f64));
            } else {
                match bars.last_mut() {
                    Some(last) if last.0 == "10+" => last.1 += *n as f64,
                    _ => bars.push(("10+".into(), *n as f64)),
                }
            }
        }
        h.push_str(&columns(
            "persons by records per person",
            &bars,
            480,
            180,
            false,
        ));
    }
    if !id.sources.is_empty() {
        h.push_str("<h3>Persons shared by each pair of sources</h3><table><tr><th></th>");
        for s in &id.sources {
            let _ = write!(h, "<th>{}</th>", esc(s));
        }
        h.push_str("</tr>");
        let max = id
            .shared
            .iter()
            .flatten()
            .copied()
            .max()
            .unwrap_or(1)
            .max(1);
        for (i, s) in id.sources.iter().enumerate() {
            let _ = write!(h, "<tr><th>{}</th>", esc(s));
            for v in &id.shared[i] {
                let alpha = *v as f64 / max as f64 * 0.6;
                let _ = write!(
                    h,
                    "<td class=n style=\"background:rgba(74,123,208,{alpha:.2})\">{}</td>",
                    thousands(*v)
                );
            }
            h.push_str("</tr>");
        }
        h.push_str("</table>");
    }
    if !id.links.is_empty() {
        h.push_str("<h3>How records were linked</h3><div class=\"grid\"><figure>");
        let bars: Vec<(String, f64)> = id
            .links
            .iter()
            .map(|(k, v)| (k.clone(), *v as f64))
            .collect();
        h.push_str(&columns("records by link", &bars, 420, 180, false));
        h.push_str("<figcaption>records by the rule that linked them (probabilistic: matching; singleton: alone)</figcaption></figure><figure>");
        let bars: Vec<(String, f64)> = id
            .probabilities
            .iter()
            .map(|(b, n)| (format!("{b:.1}"), *n as f64))
            .collect();
        h.push_str(&columns("match probability", &bars, 420, 180, false));
        h.push_str("<figcaption>records linked by matching, by match probability (buckets of 0.1)</figcaption></figure></div>");
    }
    if !id.refused.is_empty() {
        h.push_str("<h3>Merges refused by guards (last resolve)</h3>");
        let rows: Vec<Vec<String>> = id
            .refused
            .iter()
            .map(|(g, n)| vec![g.clone(), thousands(*n)])
            .collect();
        h.push_str(&table(&["guard", "merges refused"], &rows));
    }
    if !id.largest.is_empty() {
        h.push_str("<h3>Largest persons</h3>");
        let rows: Vec<Vec<String>> = id
            .largest
            .iter()
            .map(|x| {
                vec![
                    x.person_id.clone(),
                    thousands(x.records),
                    format!("cdp resolve PIPELINE --explain {}", x.explain),
                ]
            })
            .collect();
        h.push_str(&table(&["person", "records", "explain it with"], &rows));
    }

    // Quality.
    h.push_str("<h2>Quality over time</h2>");
    for e in &r.quality {
        let _ = write!(h, "<h3>{}</h3>", esc(&e.entity));
        let rows: Vec<Vec<String>> = e
            .runs
            .iter()
            .map(|x| {
                vec![
                    x.run_id.clone(),
                    thousands(x.rows_read),
                    thousands(x.rows_quarantined),
                ]
            })
            .collect();
        h.push_str(&table(&["run", "rows in", "quarantined"], &rows));
        if !e.checks.is_empty() {
            h.push_str("<div class=\"grid\">");
            for c in &e.checks {
                let bars: Vec<(String, f64)> = c
                    .rates
                    .iter()
                    .map(|(run, v)| (short_run(run), *v))
                    .collect();
                let _ = write!(
                    h,
                    "<figure>{}<figcaption>{}: failing rows per run</figcaption></figure>",
                    columns(&format!("{} {}", e.entity, c.check), &bars, 220, 110, true),
                    esc(&c.check)
                );
            }
            h.push_str("</div>");
        }
    }

    // Audiences and syncs.
    h.push_str("<h2>Audiences and syncs</h2>");
    if !r.audiences.is_empty() {
        h.push_str("<div class=\"grid\">");
        for a in &r.audiences {
            let bars: Vec<(String, f64)> = a
                .runs
                .iter()
                .map(|x| {
                    (
                        x.as_of.get(..10).unwrap_or(&x.as_of).to_string(),
                        x.size as f64,
                    )
                })
                .collect();
            let last = a.runs.last();
            let _ = write!(
                h,
                "<figure>{}<figcaption>{}: size per build; last +{} entered, -{} exited</figcaption></figure>",
                columns(&format!("audience {}", a.audience), &bars, 320, 140, false),
                esc(&a.audience),
                last.map_or(0, |x| x.entered),
                last.map_or(0, |x| x.exited),
            );
        }
        h.push_str("</div>");
    }
    for s in &r.syncs {
        let _ = write!(h, "<h3>sync {}</h3>", esc(&s.sync));
        let rows: Vec<Vec<String>> = s
            .runs
            .iter()
            .map(|x| {
                vec![
                    x.run_id.clone(),
                    thousands(x.added),
                    thousands(x.changed),
                    thousands(x.removed),
                    thousands(x.sent),
                    thousands(x.accepted),
                    thousands(x.rejected),
                ]
            })
            .collect();
        if rows.is_empty() {
            h.push_str("<p class=\"note\">not run yet</p>");
        } else {
            h.push_str(&table(
                &[
                    "run", "added", "changed", "removed", "sent", "accepted", "rejected",
                ],
                &rows,
            ));
        }
    }

    // Campaigns.
    h.push_str("<h2>Campaigns</h2>");
    if r.campaigns.is_empty() {
        h.push_str("<p class=\"note\">No [[campaigns]] declared.</p>");
    }
    for c in &r.campaigns {
        let _ = write!(
            h,
            "<h3>{}</h3><p>Audience <code>{}</code>, from {} for {} days, outcome: {}.</p>",
            esc(&c.name),
            esc(&c.audience),
            esc(&c.start),
            c.days,
            esc(&c.outcome)
        );
        if let Some(n) = &c.note {
            let _ = write!(h, "<p class=\"note\">{}</p>", esc(n));
        }
        if let Some(l) = &c.lift {
            let fmt = |x: f64| {
                if c.outcome == "conversion" {
                    format!("{:.2}%", x * 100.0)
                } else {
                    format!("{x:.2}")
                }
            };
            let ci = |i: &Option<super::lift::Interval>, f: &dyn Fn(f64) -> String| {
                i.map(|i| format!("[{}, {}]", f(i.low), f(i.high)))
                    .unwrap_or_else(|| "n/a".into())
            };
            let rows = vec![
                vec![
                    "treatment".to_string(),
                    thousands(l.treatment_n),
                    fmt(l.treatment),
                ],
                vec![
                    "holdout".to_string(),
                    thousands(l.holdout_n),
                    fmt(l.holdout),
                ],
            ];
            h.push_str(&table(&["group", "members", &c.outcome], &rows));
            let absolute = if c.outcome == "conversion" {
                format!("{:+.2} points", l.absolute * 100.0)
            } else {
                format!("{:+.2}", l.absolute)
            };
            let abs_ci = ci(&l.absolute_ci, &|x| {
                if c.outcome == "conversion" {
                    format!("{:+.2}", x * 100.0)
                } else {
                    format!("{x:+.2}")
                }
            });
            let rel = l.relative.map(pct).unwrap_or_else(|| "n/a".into());
            let rel_ci = ci(&l.relative_ci, &pct);
            let _ = write!(
                h,
                "<p>Absolute lift {absolute} (95% CI {abs_ci}); relative lift {rel} (95% CI {rel_ci}). \
<span class=\"{}\">{}</span> <small>({})</small></p>",
                if l.significant { "sig" } else { "ns" },
                esc(&l.verdict),
                esc(l.method)
            );
        }
    }

    h.push_str(
        "<script>(function(){var c=document.querySelectorAll('svg.chart'),bad=0;\
c.forEach(function(s){var b=s.getBBox();if(!(b.width>0&&b.height>0)||!s.querySelector('rect,line')){bad++;\
console.error('chart did not render: '+s.getAttribute('aria-label'));}});\
document.body.setAttribute('data-charts',bad?'failed:'+bad:'ok:'+c.length);})();</script></body></html>\n",
    );
    h
}

/// Writes the page and its JSON; returns the two paths. Each write is atomic (a
/// temporary file beside it, then a rename).
pub fn write(
    report: &Report,
    out: &std::path::Path,
) -> std::io::Result<(std::path::PathBuf, std::path::PathBuf)> {
    let json_path = out.with_extension("json");
    let write_atomic = |path: &std::path::Path, bytes: &[u8]| -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension(format!(
            "{}.tmp-{}",
            path.extension().and_then(|e| e.to_str()).unwrap_or(""),
            std::process::id()
        ));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)
    };
    let json = serde_json::to_vec_pretty(report).map_err(std::io::Error::other)?;
    write_atomic(&json_path, &json)?;
    write_atomic(out, render(report).as_bytes())?;
    Ok((out.to_path_buf(), json_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_scale_to_the_largest_bar_and_escape_labels() {
        let svg = columns(
            "a<b",
            &[("x&y".into(), 5.0), ("z".into(), 10.0)],
            200,
            100,
            false,
        );
        assert!(svg.contains("aria-label=\"a&lt;b\""));
        assert!(svg.contains("x&amp;y"));
        assert!(svg.contains("max 10"));
        assert_eq!(svg.matches("<rect").count(), 2);
    }

    #[test]
    fn an_empty_report_renders_with_its_notes() {
        let r = Report {
            pipeline: "p".into(),
            notes: vec!["identity: none".into()],
            ..Report::default()
        };
        let html = render(&r);
        assert!(html.contains("identity: none"));
        assert!(html.ends_with("</html>\n"));
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(short_run("20261125T210400123Z"), "11-25 21:04");
    }
}
