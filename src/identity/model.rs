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
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Model {
    /// Probability that two records drawn at random are one person.
    pub prior: f64,
    pub comparisons: Vec<ComparisonModel>,
    /// EM figures: rounds run, whether it converged, share of matches among candidates.
    pub em_rounds: usize,
    pub em_converged: bool,
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

/// EM over `patterns`: updates m of the comparisons in `learn` and the match share;
/// returns (rounds, converged).
fn em(
    patterns: &Patterns,
    m: &mut [Vec<f64>],
    u: &[Vec<f64>],
    share: &mut f64,
    learn: &[bool],
    max_rounds: usize,
) -> (usize, bool) {
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
            for (l, x) in next.iter().enumerate() {
                let value = (x / sum).clamp(FLOOR, 1.0);
                change = change.max((value - m[c][l]).abs());
                m[c][l] = value;
            }
        }
        let next_share = (matched / total.max(1.0)).clamp(FLOOR, 1.0 - FLOOR);
        change = change.max((next_share - *share).abs());
        *share = next_share;
        if change < 1e-6 {
            return (round, true);
        }
    }
    (max_rounds, max_rounds == 0)
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
    let (mut rounds, mut converged) = (0, true);
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
        let (r, c) = em(
            &found,
            &mut m,
            &u,
            &mut share,
            &learn,
            matching.em_iterations,
        );
        rounds += r;
        converged &= c;
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
            })
            .collect(),
        em_rounds: rounds,
        em_converged: converged,
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

    fn comparison(name: &str) -> Comparison {
        Comparison {
            name: name.into(),
            columns: vec![name.into()],
            levels: vec![Level::Exact],
            term_frequency: false,
            max_holders: None,
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
            blocking: vec![],
            comparisons: vec![comparison("a"), comparison("b")],
            block_limits: vec![],
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
    fn probability_and_weight_are_inverse() {
        for p in [0.01, 0.5, 0.9, 0.999] {
            assert!((probability(weight_of(p)) - p).abs() < 1e-9);
        }
        assert_eq!(probability(5000.0), 1.0);
    }
}
