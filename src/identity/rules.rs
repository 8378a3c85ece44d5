//! Deterministic matching: records that agree exactly on all columns of a rule are
//! linked, rules in priority order. A value shared by too many records (a placeholder
//! email, a call-centre phone) is not identifying and links nothing.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::config::MatchRule;

/// A text column, one value per record.
type Column = Vec<Option<String>>;

/// Per-rule figures for the resolve report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RuleStats {
    pub rule: String,
    /// Records with every column of the rule present.
    pub keyed_records: u64,
    /// Candidate pairs the rule's groups contain.
    pub pairs: u64,
    /// Merges it caused (unions that joined two different sets).
    pub merges: u64,
    /// Groups left unlinked because they were larger than `max_key_group`.
    pub oversized_groups: u64,
}

/// Edges between records that agree on a rule: every pair inside each group (groups
/// are at most `max_key_group` records), each pair once, under the first rule it meets.
/// Returns (a, b, rule index) in rule order, then record order, and per-rule figures
/// (merges are counted later, by clustering).
pub fn edges(
    values: &HashMap<String, Vec<Option<String>>>,
    n: usize,
    rules: &[MatchRule],
    max_key_group: usize,
    max_holders: &HashMap<String, u32>,
) -> (Vec<(u32, u32, usize)>, Vec<RuleStats>) {
    // Values of a column held by more records than its limit identify no one.
    let crowded: HashMap<&str, HashSet<&str>> = max_holders
        .iter()
        .filter_map(|(column, &limit)| {
            let col = values.get(column)?;
            let mut counts: HashMap<&str, u32> = HashMap::new();
            for v in col.iter().flatten() {
                *counts.entry(v.as_str()).or_default() += 1;
            }
            let over = counts
                .into_iter()
                .filter(|&(_, c)| c > limit)
                .map(|(v, _)| v);
            Some((column.as_str(), over.collect()))
        })
        .collect();
    let mut edges = Vec::new();
    let mut seen: HashSet<(u32, u32)> = Default::default();
    let mut stats = Vec::new();
    for (r, rule) in rules.iter().enumerate() {
        let cols: Vec<(&Column, Option<&HashSet<&str>>)> = rule
            .columns
            .iter()
            .filter_map(|c| Some((values.get(c)?, crowded.get(c.as_str()))))
            .collect();
        let mut groups: HashMap<String, Vec<u32>> = HashMap::new();
        let mut keyed = 0u64;
        'records: for i in 0..n {
            let mut key = String::new();
            for (j, (col, crowded)) in cols.iter().enumerate() {
                let Some(v) = &col[i] else { continue 'records };
                if crowded.is_some_and(|c| c.contains(v.as_str())) {
                    continue 'records;
                }
                if j > 0 {
                    key.push('\u{1f}');
                }
                key.push_str(v);
            }
            keyed += 1;
            groups.entry(key).or_default().push(i as u32);
        }
        let mut s = RuleStats {
            rule: rule.name.clone(),
            keyed_records: keyed,
            pairs: 0,
            merges: 0,
            oversized_groups: 0,
        };
        // Sorted so edges come in the same order every run.
        let mut groups: Vec<Vec<u32>> = groups.into_values().filter(|g| g.len() > 1).collect();
        groups.sort_unstable_by_key(|g| g[0]);
        for g in groups {
            if g.len() > max_key_group {
                s.oversized_groups += 1;
                continue;
            }
            for (x, &a) in g.iter().enumerate() {
                for &b in &g[x + 1..] {
                    if seen.insert((a, b)) {
                        edges.push((a, b, r));
                        s.pairs += 1;
                    }
                }
            }
        }
        stats.push(s);
    }
    (edges, stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(v: &[Option<&str>]) -> Vec<Option<String>> {
        v.iter().map(|o| o.map(str::to_string)).collect()
    }

    #[test]
    fn compound_rules_need_every_column_and_big_groups_link_nothing() {
        let mut values = HashMap::new();
        values.insert(
            "email".into(),
            col(&[
                Some("a@x"),
                Some("a@x"),
                None,
                Some("z@x"),
                Some("z@x"),
                Some("z@x"),
            ]),
        );
        values.insert(
            "last".into(),
            col(&[Some("Lee"), None, Some("Lee"), None, None, None]),
        );
        values.insert(
            "dob".into(),
            col(&[Some("1990"), None, Some("1990"), None, None, None]),
        );
        let rules = vec![
            MatchRule {
                name: "email".into(),
                columns: vec!["email".into()],
            },
            MatchRule {
                name: "name_dob".into(),
                columns: vec!["last".into(), "dob".into()],
            },
        ];
        let (edges, stats) = edges(&values, 6, &rules, 2, &HashMap::new());
        assert_eq!(edges, vec![(0, 1, 0), (0, 2, 1)]);
        assert_eq!(stats[0].oversized_groups, 1);
        assert_eq!(stats[1].keyed_records, 2);
    }
}
