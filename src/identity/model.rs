//! The Fellegi-Sunter model: for each comparison level, m (the chance a matching pair
//! lands there) and u (the chance a non-matching pair does). u comes from the data
//! without labels: exact agreement by chance from value frequencies, the fuzzy levels
//! from randomly sampled record pairs. m and the share of matches among candidate
//! pairs come from expectation-maximisation over the candidates' comparison patterns.
//! A pair's match weight is the log2 prior odds plus, per comparison, log2(m/u) of its
//! level; exact agreement on a rare value weighs more than on a common one when the
//! comparison asks for term-frequency adjustment.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::compare::{visit_prefetched, Compared, Field, NULL};
use crate::config::{Comparison, Matching};

/// Smallest probability any level gets, so that no single level is infinitely
/// strong evidence either way.
const FLOOR: f64 = 1e-6;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LevelModel {
    pub label: String,
    pub m: f64,
    pub u: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ComparisonModel {
    pub name: String,
    /// The levels in order, "else" last.
    pub levels: Vec<LevelModel>,
    pub term_frequency: bool,
    /// EM sessions that estimated m (0: m is fixed in the file, or nothing taught it).
    pub sessions: usize,
    /// Runs of neighbouring levels (labels) whose weights EM had falling as agreement
    /// rose, pooled into one weight so that closer agreement never counts less.
    #[serde(default)]
    pub pooled: Vec<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Model {
    /// Probability that two records drawn at random are one person.
    pub prior: f64,
    pub comparisons: Vec<ComparisonModel>,
    /// EM figures: rounds run, whether it converged, share of matches among candidates.
    pub em_rounds: usize,
    pub em_converged: bool,
    /// The largest change of any m or of the match share in EM's last round, over the
    /// sessions.
    #[serde(default)]
    pub em_final_change: f64,
    pub candidate_match_share: f64,
}

impl Model {
    /// log2 Bayes factor of one comparison outcome.
    pub fn partial_weight(&self, c: usize, outcome: Compared, field: &Field) -> f64 {
        if outcome.level == NULL {
            return 0.0;
        }
        let model = &self.comparisons[c];
        let level = &model.levels[outcome.level as usize];
        let u = if model.term_frequency && outcome.level == 0 && outcome.value != 0 {
            field.frequency(outcome.value).max(FLOOR)
        } else {
            level.u
        };
        (level.m / u).log2()
    }

    pub fn prior_weight(&self) -> f64 {
        (self.prior / (1.0 - self.prior)).log2()
    }
}

/// Probability from a match weight (log2 odds).
pub fn probability(weight: f64) -> f64 {
    let odds = weight.exp2();
    if odds.is_infinite() {
        1.0
    } else {
        odds / (1.0 + odds)
    }
}

/// Weight (log2 odds) from a probability.
pub fn weight_of(probability: f64) -> f64 {
    (probability / (1.0 - probability)).log2()
}

/// Match weights are binned this wide (log2 odds) to find the valley between the
/// non-matches and the matches.
const VALLEY_BIN: f64 = 0.5;
/// The histogram spans these match probabilities; the valley is looked for between
/// the inner pair, so that a threshold chosen is never extreme.
const VALLEY_SPAN: (f64, f64) = (0.02, 0.98);
const VALLEY_SEARCH: (f64, f64) = (0.1, 0.9);
/// A valley is clear when it holds at most this share of the highest bin on each side.
const VALLEY_DEPTH: f64 = 0.5;
/// Fewest scored pairs in the span for a valley to be read at all.
const VALLEY_MIN_PAIRS: u64 = 200;

/// A threshold chosen from a run's scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThresholdChoice {
    pub probability: f64,
    /// Pairs a bin at the valley (smoothed), and the highest bins either side.
    pub valley: f64,
    pub sides: (f64, f64),
    /// Whether the scores had a clear valley; else the fallback stood.
    pub clear: bool,
}

impl ThresholdChoice {
    pub fn why(&self) -> String {
        if self.clear {
            format!(
                "the least crowded match weight between non-matches and matches: {:.0} pairs a bin against {:.0} below and {:.0} above",
                self.valley, self.sides.0, self.sides.1
            )
        } else {
            "no clear valley between non-matches and matches in the scores; the default stands"
                .to_string()
        }
    }
}

/// `threshold = "auto"`: the match probability at the valley of the scored pairs'
/// weights, where the non-matches thin out before the matches gather. The weights are
/// binned [`VALLEY_BIN`] wide over [`VALLEY_SPAN`] and smoothed over three bins; the
/// least crowded bin within [`VALLEY_SEARCH`] is the valley when the highest bin on each
/// side of it holds at least twice as many pairs ([`VALLEY_DEPTH`]), else `fallback`
/// stands (scores that only fall or only rise have no valley to read).
pub fn threshold_from_scores(weights: &[f64], fallback: f64) -> ThresholdChoice {
    let (lo, hi) = (weight_of(VALLEY_SPAN.0), weight_of(VALLEY_SPAN.1));
    let bins = ((hi - lo) / VALLEY_BIN).ceil() as usize;
    let mut counts = vec![0u64; bins];
    for &w in weights {
        if w >= lo && w < hi {
            counts[(((w - lo) / VALLEY_BIN) as usize).min(bins - 1)] += 1;
        }
    }
    let smooth: Vec<f64> = (0..bins)
        .map(|i| {
            let (a, b) = (i.saturating_sub(1), (i + 1).min(bins - 1));
            counts[a..=b].iter().sum::<u64>() as f64 / (b - a + 1) as f64
        })
        .collect();
    let centre = |i: usize| lo + (i as f64 + 0.5) * VALLEY_BIN;
    let (a, b) = (weight_of(VALLEY_SEARCH.0), weight_of(VALLEY_SEARCH.1));
    // The least crowded bin; of equals, the one nearest an even chance.
    let valley = (0..bins)
        .filter(|&i| centre(i) >= a && centre(i) <= b)
        .min_by(|&x, &y| {
            smooth[x]
                .total_cmp(&smooth[y])
                .then(centre(x).abs().total_cmp(&centre(y).abs()))
        });
    let fallback_choice = ThresholdChoice {
        probability: fallback,
        valley: 0.0,
        sides: (0.0, 0.0),
        clear: false,
    };
    let Some(v) = valley else {
        return fallback_choice;
    };
    let highest = |s: &[f64]| s.iter().copied().fold(0.0, f64::max);
    let sides = (highest(&smooth[..v]), highest(&smooth[v + 1..]));
    let clear = counts.iter().sum::<u64>() >= VALLEY_MIN_PAIRS
        && smooth[v] <= VALLEY_DEPTH * sides.0.min(sides.1);
    if !clear {
        return ThresholdChoice {
            valley: smooth[v],
            sides,
            ..fallback_choice
        };
    }
    ThresholdChoice {
        probability: probability(centre(v)),
        valley: smooth[v],
        sides,
        clear: true,
    }
}

/// u for each level of each comparison, estimated without labels.
pub fn estimate_u(
    fields: &[Field],
    comparisons: &[Comparison],
    n: usize,
    samples: usize,
) -> Vec<Vec<f64>> {
    // Fuzzy levels: the level distribution among random pairs that are not exact.
    let chunks = 64usize;
    // Past a hundred pairs per record, more samples change u by little.
    let per_chunk = samples.min(100 * n).div_ceil(chunks);
    // A comparison with no level but exact needs no sample: its u is exact below.
    let sampled: Vec<usize> = (0..fields.len())
        .filter(|&f| {
            comparisons[f]
                .levels
                .iter()
                .any(|l| *l != crate::config::Level::Exact)
        })
        .collect();
    let counts: Vec<Vec<Vec<u64>>> = (0..chunks)
        .into_par_iter()
        .map(|chunk| {
            let mut rng = SplitMix(0x5eed_0000 + chunk as u64);
            let mut counts: Vec<Vec<u64>> = comparisons
                .iter()
                .map(|c| vec![0; c.levels.len() + 1])
                .collect();
            if n < 2 {
                return counts;
            }
            // The left records in order: the same random pairs, fewer cache misses.
            let mut left: Vec<u32> = (0..per_chunk).map(|_| rng.below(n as u64) as u32).collect();
            left.sort_unstable();
            let pairs: Vec<(u32, u32)> = left
                .into_iter()
                .map(|a| (a, rng.below(n as u64) as u32))
                .filter(|(a, b)| a != b)
                .collect();
            let sampled_fields: Vec<&Field> = sampled.iter().map(|&f| &fields[f]).collect();
            visit_prefetched(&sampled_fields, &pairs, |a, b| {
                for &f in &sampled {
                    let c = fields[f].compare(a, b);
                    if c.level != NULL {
                        counts[f][c.level as usize] += 1;
                    }
                }
            });
            counts
        })
        .collect();
    comparisons
        .iter()
        .enumerate()
        .map(|(f, comparison)| {
            let levels = comparison.levels.len() + 1;
            let mut total = vec![0u64; levels];
            for chunk in &counts {
                for (t, c) in total.iter_mut().zip(&chunk[f]) {
                    *t += c;
                }
            }
            let exact_share = if comparison.levels.first() == Some(&crate::config::Level::Exact) {
                Some(fields[f].exact_agreement_by_chance())
            } else {
                None
            };
            if !sampled.contains(&f) {
                // Exact or not: nothing else to estimate.
                let exact = exact_share.unwrap_or(0.0).clamp(FLOOR, 1.0);
                return vec![exact, (1.0 - exact).clamp(FLOOR, 1.0)];
            }
            // Sampled exact agreements are replaced by the exact figure.
            let skip = usize::from(exact_share.is_some());
            let rest: u64 = total[skip..].iter().sum();
            let rest_share = 1.0 - exact_share.unwrap_or(0.0);
            let floor = 0.5 / rest.max(1) as f64;
            let mut u: Vec<f64> = (0..levels)
                .map(|l| {
                    if l < skip {
                        exact_share.unwrap_or(0.0)
                    } else {
                        rest_share * (total[l] as f64 / rest.max(1) as f64).max(floor)
                    }
                })
                .collect();
            for x in &mut u {
                *x = x.clamp(FLOOR, 1.0);
            }
            u
        })
        .collect()
}

/// One EM training session: the candidate pairs of one blocking rule, and the
/// comparisons it cannot teach (those on the rule's own columns always agree there).
pub struct Session {
    pub pairs: Vec<usize>,
    pub held_out: Vec<usize>,
}

type Patterns<'a> = Vec<(&'a [u8], f64)>;

/// Distinct comparison patterns of the given pairs and how often each occurs.
fn patterns<'a>(
    levels: &'a [u8],
    k: usize,
    pairs: impl ParallelIterator<Item = usize>,
) -> Patterns<'a> {
    // Counted in parallel parts, then added up: millions of pairs, a few hundred patterns.
    type Counts<'a> = foldhash::HashMap<&'a [u8], u64>;
    let counts = pairs
        .fold(Counts::default, |mut counts, p| {
            *counts.entry(&levels[p * k..(p + 1) * k]).or_default() += 1;
            counts
        })
        .reduce(Counts::default, |mut all, part| {
            for (pattern, count) in part {
                *all.entry(pattern).or_default() += count;
            }
            all
        });
    let mut v: Vec<_> = counts.into_iter().map(|(p, c)| (p, c as f64)).collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

/// Posterior match probability of a pattern.
fn posterior(pattern: &[u8], share: f64, m: &[Vec<f64>], u: &[Vec<f64>]) -> f64 {
    let (mut pm, mut pu) = (share, 1.0 - share);
    for (c, &level) in pattern.iter().enumerate() {
        if level != NULL {
            pm *= m[c][level as usize];
            pu *= u[c][level as usize];
        }
    }
    pm / (pm + pu)
}

/// Pools neighbouring levels whose weights log(m/u) rise as agreement falls (levels
/// are ordered most alike first, "else" last): the pooled levels share the ratio
/// sum(m)/sum(u), each keeping m in proportion to its u (pool-adjacent-violators,
/// weighted by u; the total of m is unchanged). Returns the runs of levels pooled.
pub fn pool_adjacent_violators(m: &mut [f64], u: &[f64]) -> Vec<std::ops::Range<usize>> {
    // Blocks of levels: (start, end, sum m, sum u); ratios must not rise.
    let mut blocks: Vec<(usize, usize, f64, f64)> = Vec::with_capacity(m.len());
    for l in 0..m.len() {
        blocks.push((l, l + 1, m[l], u[l]));
        while blocks.len() > 1 {
            let (b, a) = (blocks[blocks.len() - 1], blocks[blocks.len() - 2]);
            // a.m / a.u < b.m / b.u, without dividing.
            if a.2 * b.3 < b.2 * a.3 * (1.0 - 1e-12) {
                blocks.pop();
                let last = blocks.len() - 1;
                blocks[last] = (a.0, b.1, a.2 + b.2, a.3 + b.3);
            } else {
                break;
            }
        }
    }
    let mut pooled = Vec::new();
    for (start, end, sm, su) in blocks {
        if end - start > 1 {
            for l in start..end {
                m[l] = (sm * u[l] / su).clamp(FLOOR, 1.0);
            }
            pooled.push(start..end);
        }
    }
    pooled
}

/// Runs of two or more neighbouring levels of one weight: only pooling makes two
/// estimated weights equal.
fn equal_weight_runs(m: &[f64], u: &[f64]) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    for l in 1..=m.len() {
        let same = l < m.len() && {
            let (a, b) = (m[l - 1] / u[l - 1], m[l] / u[l]);
            (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
        };
        if !same {
            if l - start > 1 {
                runs.push(start..l);
            }
            start = l;
        }
    }
    runs
}

/// EM over `patterns`: updates m of the comparisons in `learn` (weights kept monotone
/// in agreement, [`pool_adjacent_violators`]) and the match share; returns (rounds,
/// converged, the last round's largest change).
fn em(
    patterns: &Patterns,
    m: &mut [Vec<f64>],
    u: &[Vec<f64>],
    share: &mut f64,
    learn: &[bool],
    max_rounds: usize,
) -> (usize, bool, f64) {
    let mut last_change = 0.0;
    for round in 1..=max_rounds {
        let mut m_next: Vec<Vec<f64>> = m.iter().map(|l| vec![0.0; l.len()]).collect();
        let (mut matched, mut total) = (0.0, 0.0);
        for (pattern, count) in patterns {
            let p = posterior(pattern, *share, m, u);
            matched += p * count;
            total += count;
            for (c, &level) in pattern.iter().enumerate() {
                if level != NULL {
                    m_next[c][level as usize] += p * count;
                }
            }
        }
        let mut change: f64 = 0.0;
        for (c, next) in m_next.iter().enumerate() {
            let sum: f64 = next.iter().sum();
            if !learn[c] || sum <= 0.0 {
                continue;
            }
            let mut values: Vec<f64> = next.iter().map(|x| (x / sum).clamp(FLOOR, 1.0)).collect();
            pool_adjacent_violators(&mut values, &u[c]);
            for (l, value) in values.into_iter().enumerate() {
                change = change.max((value - m[c][l]).abs());
                m[c][l] = value;
            }
        }
        let next_share = (matched / total.max(1.0)).clamp(FLOOR, 1.0 - FLOOR);
        change = change.max((next_share - *share).abs());
        *share = next_share;
        last_change = change;
        if change < 1e-6 {
            return (round, true, change);
        }
    }
    (max_rounds, max_rounds == 0, last_change)
}

/// Fits m by EM, one session per training blocking rule (m of a comparison is the
/// mean over the sessions that could learn it), u held fixed; then the share of
/// matches among all candidates, and from it the prior. `levels[p * k + c]` is
/// candidate pair p's level on comparison c.
pub fn fit(
    matching: &Matching,
    u: Vec<Vec<f64>>,
    levels: &[u8],
    candidates: usize,
    n: usize,
    sessions: &[Session],
    rule_pairs: Option<u64>,
) -> Model {
    let k = matching.comparisons.len();
    let start: Vec<Vec<f64>> = matching
        .comparisons
        .iter()
        .map(|c| {
            c.m.clone()
                .unwrap_or_else(|| starting_m(c.levels.len() + 1))
        })
        .collect();
    let u: Vec<Vec<f64>> = matching
        .comparisons
        .iter()
        .zip(u)
        .map(|(c, estimated)| c.u.clone().unwrap_or(estimated))
        .collect();
    let mut sums: Vec<Vec<f64>> = start.iter().map(|l| vec![0.0; l.len()]).collect();
    let mut learned = vec![0usize; k];
    let (mut rounds, mut converged, mut final_change) = (0, true, 0.0f64);
    for session in sessions {
        let learn: Vec<bool> = (0..k)
            .map(|c| matching.comparisons[c].m.is_none() && !session.held_out.contains(&c))
            .collect();
        let mut m = start.clone();
        let mut share = 0.5;
        let found = patterns(levels, k, session.pairs.par_iter().copied());
        if found.is_empty() {
            continue;
        }
        let (r, c, change) = em(
            &found,
            &mut m,
            &u,
            &mut share,
            &learn,
            matching.em_iterations,
        );
        rounds += r;
        converged &= c;
        final_change = final_change.max(change);
        for c in (0..k).filter(|&c| learn[c]) {
            learned[c] += 1;
            for (s, x) in sums[c].iter_mut().zip(&m[c]) {
                *s += x;
            }
        }
    }
    let m: Vec<Vec<f64>> = (0..k)
        .map(|c| {
            if learned[c] == 0 {
                start[c].clone()
            } else {
                sums[c].iter().map(|s| s / learned[c] as f64).collect()
            }
        })
        .collect();
    // The mean of monotone sessions is monotone; pooling again only names the runs
    // (and settles m given in the file for none of its levels).
    let labels = |c: usize| -> Vec<String> {
        matching.comparisons[c]
            .levels
            .iter()
            .map(|l| l.to_string())
            .chain(["else".to_string()])
            .collect()
    };
    let mut m = m;
    let pooled: Vec<Vec<Vec<String>>> = (0..k)
        .map(|c| {
            // m given in the file stands as written; an m no session could learn (its
            // comparison is on every training rule's columns) is pooled like the rest.
            if matching.comparisons[c].m.is_some() {
                return Vec::new();
            }
            let names = labels(c);
            pool_adjacent_violators(&mut m[c], &u[c]);
            equal_weight_runs(&m[c], &u[c])
                .into_iter()
                .map(|run| names[run].to_vec())
                .collect()
        })
        .collect();
    // The share of matches among all candidates, m and u fixed.
    let mut share = 0.1;
    let mut fixed = m.clone();
    let all = patterns(levels, k, (0..candidates).into_par_iter());
    em(
        &all,
        &mut fixed,
        &u,
        &mut share,
        &vec![false; k],
        matching.em_iterations,
    );
    // The prior: fixed in the file; else the pairs the deterministic rules link, over
    // their assumed recall (look-alikes such as relatives make EM's share of matches
    // among candidates too high); else that share, spread over all pairs.
    let all_pairs = ((n as f64) * (n as f64 - 1.0) / 2.0).max(1.0);
    let expected_matches = match rule_pairs {
        Some(pairs) if pairs > 0 => pairs as f64 / matching.rule_recall,
        _ => share * candidates as f64,
    };
    let prior = matching
        .prior
        .unwrap_or_else(|| (expected_matches / all_pairs).clamp(1e-12, 0.5));
    Model {
        prior,
        comparisons: matching
            .comparisons
            .iter()
            .enumerate()
            .map(|(c, comparison)| ComparisonModel {
                name: comparison.name.clone(),
                levels: comparison
                    .levels
                    .iter()
                    .map(|l| l.to_string())
                    .chain(["else".to_string()])
                    .enumerate()
                    .map(|(l, label)| LevelModel {
                        label,
                        m: m[c][l],
                        u: u[c][l],
                    })
                    .collect(),
                term_frequency: comparison.term_frequency,
                sessions: learned[c],
                pooled: pooled[c].clone(),
            })
            .collect(),
        em_rounds: rounds,
        em_converged: converged,
        em_final_change: final_change,
        candidate_match_share: share,
    }
}

/// m to start EM from: most matches agree exactly, a few land lower.
fn starting_m(levels: usize) -> Vec<f64> {
    if levels == 1 {
        return vec![1.0];
    }
    let rest = 0.1 / (levels - 1) as f64;
    (0..levels)
        .map(|l| if l == 0 { 0.9 } else { rest })
        .collect()
}

/// A small, fixed-seed generator: the same data always samples the same pairs.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        ((self.next() as u128 * n as u128) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Level;

    /// `count` weights spread evenly over [from, to).
    fn spread(from: f64, to: f64, count: usize) -> impl Iterator<Item = f64> {
        (0..count).map(move |i| from + (to - from) * i as f64 / count as f64)
    }

    #[test]
    fn a_threshold_from_scores_sits_in_the_valley_between_non_matches_and_matches() {
        // Non-matches thinning out up to weight -1, few pairs in (-1, 2), matches
        // gathering above 2.
        let mut weights: Vec<f64> = spread(-20.0, -4.0, 5000).collect();
        weights.extend(spread(-4.0, -1.0, 600));
        weights.extend(spread(-1.0, 2.0, 20));
        weights.extend(spread(2.0, 6.0, 800));
        weights.extend(spread(6.0, 30.0, 4000));
        let chosen = threshold_from_scores(&weights, 0.3);
        assert!(chosen.clear, "{chosen:?}");
        let w = weight_of(chosen.probability);
        assert!((-1.0..=2.0).contains(&w), "weight {w} outside the valley");
        assert!(chosen.valley * 2.0 <= chosen.sides.0.min(chosen.sides.1));
        assert!(chosen.why().contains("least crowded"));
    }

    #[test]
    fn scores_without_a_valley_keep_the_fallback_threshold() {
        // Only falling: the least crowded bin is at the edge of the search, with
        // nothing higher beyond it.
        let falling: Vec<f64> = (0..40)
            .flat_map(|b| spread(-6.0 + 0.3 * b as f64, -5.7 + 0.3 * b as f64, 200 - 4 * b))
            .collect();
        let chosen = threshold_from_scores(&falling, 0.3);
        assert!(!chosen.clear, "{chosen:?}");
        assert_eq!(chosen.probability, 0.3);
        assert!(chosen.why().contains("no clear valley"));
        // Too few pairs to read a valley from.
        let few: Vec<f64> = [-4.0, -3.9, 3.9, 4.0].to_vec();
        assert_eq!(threshold_from_scores(&few, 0.4).probability, 0.4);
        assert_eq!(threshold_from_scores(&[], 0.4).probability, 0.4);
    }

    fn comparison(name: &str) -> Comparison {
        Comparison {
            name: name.into(),
            columns: vec![name.into()],
            levels: vec![Level::Exact],
            term_frequency: false,
            max_holders: None,
            max_holders_auto: false,
            m: None,
            u: None,
        }
    }

    #[test]
    fn em_separates_matches_from_chance_agreement() {
        // Two comparisons, levels 0 = agree, 1 = disagree. 100 candidate pairs agree on
        // both (matches), 900 agree on neither; u says agreement by chance is rare.
        let matching = Matching {
            threshold: 0.9,
            threshold_auto: false,
            blocking: vec![],
            comparisons: vec![comparison("a"), comparison("b")],
            block_limits: vec![],
            block_limits_auto: vec![],
            em_iterations: 100,
            u_sample_pairs: 0,
            prior: None,
            train_on: vec![0],
            rule_recall: 0.7,
        };
        let mut levels = Vec::new();
        for p in 0..1000 {
            let l = if p < 100 { 0 } else { 1 };
            levels.extend([l, l]);
        }
        let u = vec![vec![0.01, 0.99], vec![0.02, 0.98]];
        let session = Session {
            pairs: (0..1000).collect(),
            held_out: vec![],
        };
        let model = fit(&matching, u, &levels, 1000, 10_000, &[session], None);
        assert!(
            (model.candidate_match_share - 0.1).abs() < 0.01,
            "{model:?}"
        );
        assert!(model.comparisons[0].levels[0].m > 0.95);
        assert!(model.em_converged);
        assert!((model.prior - 0.1 * 1000.0 / (10_000.0 * 9_999.0 / 2.0)).abs() < 1e-7);
    }

    #[test]
    fn patterns_are_counted_once_each_in_order_over_the_chosen_pairs() {
        // Two comparisons per pair; 10,000 pairs, so rayon splits the count into parts.
        let levels: Vec<u8> = (0..10_000u32)
            .flat_map(|p| [(p % 3) as u8, if p % 5 == 0 { NULL } else { 1 }])
            .collect();
        let all = patterns(&levels, 2, (0..10_000).into_par_iter());
        let total: f64 = all.iter().map(|(_, c)| c).sum();
        assert_eq!(total, 10_000.0);
        assert_eq!(all.len(), 6);
        assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
        // Pair 0 is (0, NULL); (0, NULL) holds every 15th pair.
        assert_eq!(all.iter().find(|(p, _)| *p == [0, NULL]).unwrap().1, 667.0);
        let some = patterns(&levels, 2, [0usize, 3, 6].into_par_iter());
        assert_eq!(some, vec![(&[0u8, 1u8][..], 2.0), (&[0u8, NULL][..], 1.0)]);
    }

    #[test]
    fn pooling_keeps_weights_from_falling_as_agreement_rises() {
        // exact, near, "else": near weighs less than "else" (as first_name's
        // Jaro-Winkler level did on the sample).
        let u = [0.01, 0.01, 0.98];
        let mut m = [0.9, 0.0001, 0.0999];
        let runs = pool_adjacent_violators(&mut m, &u);
        assert_eq!(runs, vec![1..3]);
        let w: Vec<f64> = m.iter().zip(&u).map(|(m, u)| (m / u).log2()).collect();
        assert!(w.windows(2).all(|p| p[0] >= p[1] - 1e-9), "{w:?}");
        assert!(
            (m.iter().sum::<f64>() - 1.0).abs() < 1e-9,
            "m still sums to one"
        );
        assert_eq!(equal_weight_runs(&m, &u), vec![1..3]);
        // Already monotone: untouched.
        let mut fine = [0.9, 0.05, 0.05];
        assert!(pool_adjacent_violators(&mut fine, &u).is_empty());
        assert_eq!(fine, [0.9, 0.05, 0.05]);
    }

    #[test]
    fn em_weights_are_monotone_and_the_pooled_levels_are_named() {
        // One comparison: exact, near, else. Matches agree exactly or disagree; near
        // agreement only happens between non-matches, so unconstrained EM would give
        // "near" a weight below "else".
        let mut c = comparison("a");
        c.levels = vec![Level::Exact, Level::Days(31)];
        let mut b = comparison("b");
        b.levels = vec![Level::Exact];
        let matching = Matching {
            threshold: 0.9,
            threshold_auto: false,
            blocking: vec![],
            comparisons: vec![c, b],
            block_limits: vec![],
            block_limits_auto: vec![],
            em_iterations: 200,
            u_sample_pairs: 0,
            prior: None,
            train_on: vec![0],
            rule_recall: 0.7,
        };
        let mut levels = Vec::new();
        for p in 0..2000 {
            levels.extend(match p {
                0..=179 => [0, 0],
                180..=199 => [2, 0],
                200..=599 => [1, 1],
                _ => [2, 1],
            });
        }
        let u = vec![vec![0.001, 0.05, 0.949], vec![0.01, 0.99]];
        let session = Session {
            pairs: (0..2000).collect(),
            held_out: vec![],
        };
        let model = fit(&matching, u, &levels, 2000, 100_000, &[session], None);
        let w: Vec<f64> = model.comparisons[0]
            .levels
            .iter()
            .map(|l| (l.m / l.u).log2())
            .collect();
        assert!(w.windows(2).all(|p| p[0] >= p[1] - 1e-9), "{w:?}");
        assert_eq!(
            model.comparisons[0].pooled,
            vec![vec!["days <= 31".to_string(), "else".to_string()]]
        );
        assert!(
            model.em_converged && model.em_final_change < 1e-6,
            "{model:?}"
        );
    }

    #[test]
    fn probability_and_weight_are_inverse() {
        for p in [0.01, 0.5, 0.9, 0.999] {
            assert!((probability(weight_of(p)) - p).abs() < 1e-9);
        }
        assert_eq!(probability(5000.0), 1.0);
    }
}
