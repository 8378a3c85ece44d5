//! Blocking: candidate pairs are the record pairs that agree exactly on every column
//! of at least one blocking rule, so matching scores a tiny share of all n^2/2 pairs.
//! A pair is generated once, by the first rule it satisfies whose block was small
//! enough to give pairs; a block larger than `max_block` (a common surname with
//! nothing else) gives no pairs and is counted.

use rayon::prelude::*;
use serde::Serialize;

use super::text::Values;
use crate::config::MatchRule;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BlockingStats {
    pub rule: String,
    pub blocks: u64,
    /// Pairs this rule generated that no earlier rule had.
    pub pairs: u64,
    pub oversized_blocks: u64,
}

/// The blocking columns of each rule as value ids per record (0: no value).
pub fn ids(values: &Values, column: &str, n: usize) -> Vec<u32> {
    values
        .get(column)
        .map_or_else(|| vec![0; n], |c| c.ids().to_vec())
}

/// Records grouped by their value ids in `columns` (a record missing one is left
/// out): how many records had them all, and the groups of two or more, ordered by
/// their first record so that the same input always gives the same order.
pub fn groups(columns: &[Vec<u32>], n: usize) -> (u64, Vec<Vec<u32>>) {
    let Some((first, rest)) = columns.split_first() else {
        return (0, Vec::new());
    };
    let mut ids = first[..n].to_vec();
    for column in rest {
        ids = combined(&ids, &column[..n]);
    }
    // Each id's records, in record order, without hashing.
    let id_count = ids.iter().max().map_or(1, |&m| m as usize + 1);
    let (starts, members) = by_key(
        id_count,
        ids.iter().enumerate().map(|(i, &id)| (id, i as u32)),
    );
    let keyed = n as u64 - u64::from(starts[1]);
    // Met in record order, a group is met at its first record.
    let mut groups = Vec::new();
    for (i, &id) in ids.iter().enumerate() {
        let (start, end) = (
            starts[id as usize] as usize,
            starts[id as usize + 1] as usize,
        );
        if id != 0 && end - start > 1 && members[start] == i as u32 {
            groups.push(members[start..end].to_vec());
        }
    }
    (keyed, groups)
}

/// The share of a rule's blocks (distinct keys, one record or more) a chosen
/// `max_block` is read at: blocks larger than twice this quantile's size hold many
/// people (a common name with nothing else), not one person's records.
const BLOCK_QUANTILE: f64 = 0.999;
/// The smallest `max_block` chosen from the data.
const MIN_AUTO_BLOCK: usize = 10;
/// Pairs a rule may give per record under a chosen `max_block`: the pairs stay linear
/// in the records however skewed the values.
const PAIRS_PER_RECORD: u64 = 10;

/// A `max_block` chosen from the data, and what decided it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockLimit {
    pub records: usize,
    /// The [`BLOCK_QUANTILE`] block size it was read from.
    pub quantile: usize,
    /// Pairs the rule's blocks up to the limit give, per record (rounded down to a
    /// hundredth).
    pub pairs_per_record: f64,
    /// The pair budget ([`PAIRS_PER_RECORD`]) lowered it.
    pub budget_bound: bool,
}

impl BlockLimit {
    /// Why, in words.
    pub fn why(&self) -> String {
        let from = if self.budget_bound {
            format!("the largest blocks within {PAIRS_PER_RECORD} pairs a record")
        } else if self.records == MIN_AUTO_BLOCK {
            format!(
                "at least {MIN_AUTO_BLOCK}; the 99.9th percentile block holds {}",
                self.quantile
            )
        } else {
            format!("twice the 99.9th percentile block, {}", self.quantile)
        };
        format!("{from}; {:.2} pairs a record", self.pairs_per_record)
    }
}

/// `max_block` for a rule on `columns`, from the sizes of its blocks in the data:
/// twice the [`BLOCK_QUANTILE`] block size, at least [`MIN_AUTO_BLOCK`], lowered
/// while the blocks it lets give more than [`PAIRS_PER_RECORD`] pairs a record.
pub fn max_block_from_data(values: &Values, columns: &[String], n: usize) -> BlockLimit {
    let mut sizes = block_sizes(values, columns, n);
    sizes.sort_unstable();
    let pairs = |s: usize| (s * s.saturating_sub(1) / 2) as u64;
    let quantile = if sizes.is_empty() {
        1
    } else {
        sizes[((sizes.len() - 1) as f64 * BLOCK_QUANTILE).round() as usize]
    };
    let mut records = (2 * quantile).max(MIN_AUTO_BLOCK);
    let budget = PAIRS_PER_RECORD * n as u64;
    let mut total = 0u64;
    let mut budget_bound = false;
    // Sizes in ascending runs: the blocks of one size all fit, or the limit is below.
    for run in sizes.chunk_by(|a, b| a == b) {
        let s = run[0];
        if s > records {
            break;
        }
        let more = pairs(s) * run.len() as u64;
        if total + more > budget {
            records = s - 1;
            budget_bound = true;
            break;
        }
        total += more;
    }
    BlockLimit {
        records,
        quantile,
        pairs_per_record: (total as f64 / n.max(1) as f64 * 100.0).floor() / 100.0,
        budget_bound,
    }
}

/// The number of records in each block of a rule on `columns` (records missing a
/// column left out), in no order. Counted without building the blocks: a count per
/// value id for one column, runs of sorted packed ids for more.
fn block_sizes(values: &Values, columns: &[String], n: usize) -> Vec<usize> {
    let Some((last, rest)) = columns.split_last() else {
        return Vec::new();
    };
    let last = ids(values, last, n);
    if rest.is_empty() {
        let mut counts = vec![0usize; last.iter().max().map_or(0, |&m| m as usize) + 1];
        for &id in &last {
            counts[id as usize] += 1;
        }
        return counts.into_iter().skip(1).filter(|&c| c > 0).collect();
    }
    let mut first = ids(values, &rest[0], n);
    for c in &rest[1..] {
        first = combined(&first, &ids(values, c, n));
    }
    let mut keys: Vec<u64> = first
        .iter()
        .zip(&last)
        .filter(|(&a, &b)| a != 0 && b != 0)
        .map(|(&a, &b)| (u64::from(a) << 32) | u64::from(b))
        .collect();
    keys.sort_unstable();
    keys.chunk_by(|a, b| a == b).map(<[u64]>::len).collect()
}

/// Items grouped by key (keys below `key_count`), each group in the items' order: a
/// counting sort. Returns where each key's group starts (`key_count + 1` offsets, the
/// last one the number of items) and the grouped items.
pub fn by_key<T: Copy + Default>(
    key_count: usize,
    items: impl Iterator<Item = (u32, T)> + Clone,
) -> (Vec<u32>, Vec<T>) {
    let mut starts = vec![0u32; key_count + 1];
    for (key, _) in items.clone() {
        starts[key as usize + 1] += 1;
    }
    for k in 1..=key_count {
        starts[k] += starts[k - 1];
    }
    let mut next = starts.clone();
    let mut grouped = vec![T::default(); starts[key_count] as usize];
    for (key, item) in items {
        grouped[next[key as usize] as usize] = item;
        next[key as usize] += 1;
    }
    (starts, grouped)
}

/// One id per distinct pair of ids in `a` and `b` (0 when either is 0), dense from 1.
fn combined(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut keyed: Vec<(u64, u32)> = a
        .iter()
        .zip(b)
        .enumerate()
        .filter(|(_, (&x, &y))| x != 0 && y != 0)
        .map(|(i, (&x, &y))| ((u64::from(x) << 32) | u64::from(y), i as u32))
        .collect();
    keyed.par_sort_unstable_by_key(|&(key, _)| key);
    let mut ids = vec![0u32; a.len()];
    let mut last = None;
    let mut id = 0;
    for (key, i) in keyed {
        if last != Some(key) {
            id += 1;
            last = Some(key);
        }
        ids[i as usize] = id;
    }
    ids
}

/// Candidate pairs (a < b), in a deterministic order, and per-rule figures. With
/// `dirty`, only pairs touching a dirty record are generated (an incremental run).
pub fn candidate_pairs(
    values: &Values,
    n: usize,
    rules: &[MatchRule],
    max_block: &[usize],
    dirty: Option<&[bool]>,
) -> (Vec<(u32, u32)>, Vec<BlockingStats>) {
    let wanted = |a: u32, b: u32| dirty.is_none_or(|d| d[a as usize] || d[b as usize]);
    let rule_ids: Vec<Vec<Vec<u32>>> = rules
        .par_iter()
        .map(|r| r.columns.iter().map(|c| ids(values, c, n)).collect())
        .collect();
    let blocks: Vec<Vec<Vec<u32>>> = rule_ids.par_iter().map(|c| groups(c, n).1).collect();
    // in_pairing_block[r][i]: record i's block under rule r was small enough to give
    // pairs, so a later rule leaves its pairs from that block alone.
    let in_pairing_block: Vec<Vec<bool>> = blocks
        .par_iter()
        .zip(max_block)
        .map(|(blocks, &limit)| {
            let mut pairing = vec![false; n];
            for block in blocks.iter().filter(|b| b.len() <= limit) {
                for &a in block {
                    pairing[a as usize] = true;
                }
            }
            pairing
        })
        .collect();
    let per_rule: Vec<(Vec<(u32, u32)>, BlockingStats)> = rules
        .par_iter()
        .enumerate()
        .map(|(r, rule)| {
            let earlier_paired = |a: u32, b: u32| {
                (0..r).any(|e| {
                    in_pairing_block[e][a as usize]
                        && rule_ids[e]
                            .iter()
                            .all(|col| col[a as usize] == col[b as usize])
                })
            };
            let pairs: Vec<(u32, u32)> = blocks[r]
                .par_iter()
                .filter(|block| block.len() <= max_block[r])
                .flat_map_iter(|block| {
                    block.iter().enumerate().flat_map(move |(x, &a)| {
                        block[x + 1..]
                            .iter()
                            .filter(move |&&b| wanted(a, b) && !earlier_paired(a, b))
                            .map(move |&b| (a, b))
                    })
                })
                .collect();
            let stats = BlockingStats {
                rule: rule.name.clone(),
                blocks: blocks[r].len() as u64,
                pairs: pairs.len() as u64,
                oversized_blocks: blocks[r].iter().filter(|b| b.len() > max_block[r]).count()
                    as u64,
            };
            (pairs, stats)
        })
        .collect();
    let mut pairs = Vec::with_capacity(per_rule.iter().map(|(p, _)| p.len()).sum());
    let mut stats = Vec::with_capacity(per_rule.len());
    for (rule_pairs, rule_stats) in per_rule {
        pairs.extend(rule_pairs);
        stats.push(rule_stats);
    }
    (pairs, stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(values: &[Option<String>]) -> super::super::text::TextColumn {
        super::super::text::TextColumn::from_values(values.iter().map(|v| v.as_deref()))
    }

    #[test]
    fn max_block_from_the_data_leaves_a_crowded_name_out_and_a_family_in() {
        // 3,000 surnames held by one to four records, and one held by 400.
        let mut last: Vec<Option<String>> = (0..3000)
            .flat_map(|i| std::iter::repeat_n(Some(format!("n{i}")), 1 + i % 4))
            .collect();
        last.extend(std::iter::repeat_n(Some("smith".to_string()), 400));
        last.push(None);
        let n = last.len();
        let mut values = Values::new();
        values.insert("last".into(), column(&last));
        let limit = max_block_from_data(&values, &["last".into()], n);
        assert_eq!(limit.quantile, 4);
        assert_eq!(limit.records, 10, "twice 4, raised to the least");
        assert!(!limit.budget_bound);
        assert!(limit.why().starts_with("at least 10;"), "{}", limit.why());
        // Two columns: blocks of records agreeing on both.
        let first: Vec<Option<String>> = (0..n).map(|i| Some(format!("f{}", i % 2))).collect();
        values.insert("first".into(), column(&first));
        let both = max_block_from_data(&values, &["last".into(), "first".into()], n);
        assert!(both.quantile <= 2, "{both:?}");
    }

    #[test]
    fn max_block_from_the_data_keeps_pairs_within_the_budget() {
        // Every value held by 60 records: the 99.9th percentile block is 60, and
        // blocks of 60 give 29.5 pairs a record, over the budget of 10.
        let v: Vec<Option<String>> = (0..6000).map(|i| Some(format!("v{}", i / 60))).collect();
        let mut values = Values::new();
        values.insert("v".into(), column(&v));
        let limit = max_block_from_data(&values, &["v".into()], v.len());
        assert!(limit.budget_bound, "{limit:?}");
        assert_eq!(
            limit.records, 59,
            "blocks of 60 do not fit: none of them gives pairs"
        );
        assert_eq!(limit.pairs_per_record, 0.0);
        assert!(limit.why().contains("within 10 pairs a record"));
    }

    #[test]
    fn groups_hold_records_agreeing_on_every_column_in_first_record_order() {
        let a = vec![1, 2, 1, 0, 2, 1, 3];
        let b = vec![5, 6, 5, 5, 7, 5, 6];
        let (keyed, g) = groups(&[a.clone(), b], 7);
        assert_eq!(keyed, 6);
        assert_eq!(g, vec![vec![0, 2, 5]]);
        let (keyed, g) = groups(&[a], 7);
        assert_eq!(keyed, 6);
        assert_eq!(g, vec![vec![0, 2, 5], vec![1, 4]]);
        assert_eq!(groups(&[], 7), (0, vec![]));
    }

    #[test]
    fn a_pair_comes_from_its_first_rule_only_and_big_blocks_give_none() {
        let col =
            |v: &[Option<&str>]| super::super::text::TextColumn::from_values(v.iter().copied());
        let mut values = Values::new();
        values.insert(
            "email".to_string(),
            col(&[Some("a"), Some("a"), None, Some("b")]),
        );
        values.insert(
            "zip".to_string(),
            col(&[Some("1"), Some("1"), Some("1"), Some("2")]),
        );
        let rules = vec![
            MatchRule {
                name: "email".into(),
                columns: vec!["email".into()],
            },
            MatchRule {
                name: "zip".into(),
                columns: vec!["zip".into()],
            },
        ];
        let (pairs, stats) = candidate_pairs(&values, 4, &rules, &[10, 10], None);
        assert_eq!(pairs, vec![(0, 1), (0, 2), (1, 2)]);
        assert_eq!((stats[0].pairs, stats[1].pairs), (1, 2));
        let (pairs, stats) = candidate_pairs(&values, 4, &rules, &[10, 2], None);
        assert_eq!(pairs, vec![(0, 1)]);
        assert_eq!(stats[1].oversized_blocks, 1);
        // The email block is too big, so the zip rule gives (0, 1) after all.
        let (pairs, stats) = candidate_pairs(&values, 4, &rules, &[1, 10], None);
        assert_eq!(pairs, vec![(0, 1), (0, 2), (1, 2)]);
        assert_eq!((stats[0].oversized_blocks, stats[1].pairs), (1, 3));
        let dirty = [false, false, true, false];
        let (pairs, _) = candidate_pairs(&values, 4, &rules, &[10, 10], Some(&dirty));
        assert_eq!(pairs, vec![(0, 2), (1, 2)]);
    }
}
