//! `quality.html`: the quality report for people. One self-contained page (no
//! scripts, no external assets): per entity, the checks with pass/warn/fail and their
//! counts, then a bar chart of null rate per column drawn as inline SVG beside the
//! distinct and invalid counts, and any schema drift.

use std::fmt::Write;

use super::quality::QualityReport;

/// Text for HTML: `&`, `<`, `>` and `"` escaped.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A horizontal bar for a rate in 0..=1.
fn bar(rate: f64) -> String {
    let width = (rate.clamp(0.0, 1.0) * 200.0).round();
    format!(
        "<svg width=\"204\" height=\"14\" role=\"img\" aria-label=\"{:.1}%\"><rect x=\"0\" y=\"1\" width=\"202\" height=\"12\" fill=\"#eee\"/><rect x=\"1\" y=\"2\" width=\"{width}\" height=\"10\" fill=\"#4a7bd0\"/></svg>",
        rate * 100.0
    )
}

pub fn render(report: &QualityReport) -> String {
    let mut h = String::new();
    let verdict = if report.passed { "passed" } else { "FAILED" };
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>cdp quality report {run}</title>\
<style>body{{font:14px system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;margin:.5em 0 1.5em}}\
td,th{{padding:3px 10px;border-bottom:1px solid #ddd;text-align:left}}td.n{{text-align:right;font-variant-numeric:tabular-nums}}\
.pass{{color:#17803d}}.warn{{color:#b26b00}}.fail{{color:#c0262d;font-weight:bold}}</style></head><body>\
<h1>Quality report</h1><p>Run <code>{run}</code>: <span class=\"{cls}\">{verdict}</span></p>",
        run = esc(&report.run_id),
        cls = if report.passed { "pass" } else { "fail" },
    );
    for e in &report.entities {
        let _ = write!(
            h,
            "<h2>{}</h2><p>{} rows read, {} clean, {} quarantined ({} unparseable), {} superseded by later landings.</p>",
            esc(&e.entity),
            e.rows_read,
            e.rows_clean,
            e.rows_quarantined,
            e.rows_unparseable,
            e.rows_superseded
        );
        if !e.checks.is_empty() {
            h.push_str("<table><tr><th>check</th><th>severity</th><th>failing</th><th>of</th><th>allowed</th><th>status</th></tr>");
            for c in &e.checks {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=\"{}\">{}</td></tr>",
                    esc(&c.check),
                    c.severity.as_str(),
                    c.failing,
                    c.total,
                    esc(&c.threshold),
                    c.status,
                    c.status
                );
            }
            h.push_str("</table>");
        }
        h.push_str("<table><tr><th>column</th><th>null rate</th><th></th><th>nulls</th><th>distinct (approx.)</th><th>invalid</th></tr>");
        for c in &e.columns {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=n>{:.1}%</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
                esc(&c.column),
                bar(c.null_rate),
                c.null_rate * 100.0,
                c.nulls,
                c.distinct,
                c.invalid
            );
        }
        h.push_str("</table>");
        if !e.schema_drift.is_empty() {
            h.push_str("<h3>Schema drift</h3><table><tr><th>source</th><th>file</th><th>unmapped columns</th><th>missing columns</th><th>empty</th></tr>");
            for d in &e.schema_drift {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&d.source),
                    esc(&d.file),
                    esc(&d.unmapped.join(", ")),
                    esc(&d.missing.join(", ")),
                    if d.empty { "yes" } else { "" }
                );
            }
            h.push_str("</table>");
        }
    }
    h.push_str("</body></html>\n");
    h
}
