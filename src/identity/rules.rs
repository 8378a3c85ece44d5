//! Deterministic matching: records that agree exactly on all columns of a rule are
//! linked, rules in priority order. A value shared by too many records (a placeholder
//! email, a call-centre phone) is not identifying and links nothing.

use std::collections::HashMap;

use rayon::prelude::*;
use serde::Serialize;

use super::blocking::{groups, ids};
use super::text::Values;
use crate::config::MatchRule;

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
    values: &Values,
    n: usize,
    rules: &[MatchRule],
    max_key_group: usize,
    max_holders: &HashMap<String, u32>,
) -> (Vec<(u32, u32, usize)>, Vec<RuleStats>) {
    let mut edges = Vec::new();
    let mut seen: foldhash::HashSet<(u32, u32)> = Default::default();
    let mut stats = Vec::new();
    // Each rule's groups side by side; their pairs are then taken in priority order.
    let grouped: Vec<(u64, Vec<Vec<u32>>)> = rules
        .par_iter()
        .map(|rule| {
            let columns: Vec<Vec<u32>> = rule
                .columns
                .iter()
                .map(|c| without_crowded(ids(values, c, n), max_holders.get(c)))
                .collect();
            groups(&columns, n)
        })
        .collect();
    for (r, (rule, (keyed, groups))) in rules.iter().zip(grouped).enumerate() {
        let mut s = RuleStats {
            rule: rule.name.clone(),
            keyed_records: keyed,
            pairs: 0,
            merges: 0,
            oversized_groups: 0,
        };
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

/// Value ids with the values more records hold than `limit` blanked: they identify
/// no one.
fn without_crowded(mut ids: Vec<u32>, limit: Option<&u32>) -> Vec<u32> {
    let Some(&limit) = limit else { return ids };
    // Ids are dense: 1 up to the number of distinct values.
    let mut counts = vec![0u32; ids.iter().max().map_or(0, |&m| m as usize + 1)];
    for &id in &ids {
        counts[id as usize] += 1;
    }
    for id in &mut ids {
        if *id != 0 && counts[*id as usize] > limit {
            *id = 0;
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(v: &[Option<&str>]) -> super::super::text::TextColumn {
        super::super::text::TextColumn::from_values(v.iter().copied())
    }

    #[test]
    fn compound_rules_need_every_column_and_big_groups_link_nothing() {
        let mut values = Values::new();
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
