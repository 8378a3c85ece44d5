//! Probabilistic matching end to end: candidate pairs from blocking, their comparison
//! levels, u from random pairs, m by EM, and a match weight per candidate.

use rayon::prelude::*;

use super::blocking::{self, BlockingStats};
use super::compare::{visit_prefetched, Compared, Field, NULL};
use super::model::{self, Model, Session};
use super::text::{TextColumn, Values};
use crate::config::Matching;

/// A trained model with the fields it compares: scores any pair of records.
pub struct Matcher {
    pub fields: Vec<Field>,
    pub model: Model,
    /// Per comparison, the model's weight of each level and, with term frequencies,
    /// of exact agreement on each value: worked out once, not per pair.
    weights: Vec<(Vec<f64>, Option<Vec<f64>>)>,
}

impl Matcher {
    /// A matcher over these records under a known model.
    pub fn new(values: &Values, n: usize, matching: &Matching, model: Model) -> Self {
        Self::with(fields(values, n, matching), model)
    }

    /// A matcher over a few records whose term frequencies are those of a larger set:
    /// `counts(c, text)` gives comparison `c`'s count of a value there and the records
    /// holding one ([`Field::count_as`]).
    pub fn with_frequencies(
        values: &Values,
        n: usize,
        matching: &Matching,
        model: Model,
        counts: impl Fn(usize, &str) -> (u32, u64),
    ) -> Self {
        let mut fields = fields(values, n, matching);
        for (c, field) in fields.iter_mut().enumerate() {
            let present = counts(c, "").1;
            field.count_as(|text| counts(c, text).0, present);
        }
        Self::with(fields, model)
    }

    fn with(fields: Vec<Field>, model: Model) -> Self {
        let weights = fields
            .iter()
            .enumerate()
            .map(|(c, field)| {
                let comparison = &model.comparisons[c];
                let weight = |level: u8, value: u32| {
                    model.partial_weight(c, Compared { level, value }, field)
                };
                let levels = (0..comparison.levels.len() as u8)
                    .map(|l| weight(l, 0))
                    .collect();
                let by_value = comparison.term_frequency.then(|| {
                    (0..field.value_count() as u32)
                        .map(|v| weight(0, v))
                        .collect()
                });
                (levels, by_value)
            })
            .collect();
        Matcher {
            fields,
            model,
            weights,
        }
    }

    pub fn compare(&self, a: u32, b: u32) -> Vec<Compared> {
        self.fields.iter().map(|f| f.compare(a, b)).collect()
    }

    /// [`Model::partial_weight`] of comparison `c`'s outcome, from the tables.
    fn partial_weight(&self, c: usize, outcome: Compared) -> f64 {
        let (levels, by_value) = &self.weights[c];
        match (outcome.level, by_value) {
            (NULL, _) => 0.0,
            (0, Some(by_value)) if outcome.value != 0 => by_value[outcome.value as usize],
            (level, _) => levels[level as usize],
        }
    }

    /// The evidence between `a` and `b` alone (log2 Bayes factor, no prior).
    pub fn evidence(&self, a: u32, b: u32) -> f64 {
        self.fields
            .iter()
            .enumerate()
            .map(|(c, f)| self.partial_weight(c, f.compare(a, b)))
            .sum()
    }

    /// Index of the comparison called `name`.
    pub fn comparison(&self, name: &str) -> Option<usize> {
        self.model.comparisons.iter().position(|c| c.name == name)
    }

    /// The name of comparison `c`.
    pub fn name(&self, c: usize) -> &str {
        &self.model.comparisons[c].name
    }

    /// Whether the pair disagrees on comparison `c`: both present, level "else".
    pub fn disagrees(&self, c: usize, a: u32, b: u32) -> bool {
        let level = self.fields[c].compare(a, b).level;
        level != NULL && level as usize == self.model.comparisons[c].levels.len() - 1
    }

    /// Whether comparison `c` of two records is at its first (most alike) level.
    pub fn agrees(&self, c: usize, a: u32, b: u32) -> bool {
        self.fields[c].compare(a, b).level == 0
    }

    /// Each comparison's level and weight, for people: `first_name: exact (+6.21)`.
    pub fn explain(&self, a: u32, b: u32) -> String {
        let outcomes = self.compare(a, b);
        let parts: Vec<String> = outcomes
            .iter()
            .enumerate()
            .map(|(c, &o)| {
                let model = &self.model.comparisons[c];
                if o.level == NULL {
                    return format!("{}: null (0)", model.name);
                }
                let w = self.model.partial_weight(c, o, &self.fields[c]);
                let tf = if model.term_frequency && o.value != 0 {
                    format!(
                        " [{:?} in {:.3}%]",
                        self.fields[c].text(o.value),
                        100.0 * self.fields[c].frequency(o.value)
                    )
                } else {
                    String::new()
                };
                format!(
                    "{}: {}{tf} ({w:+.2})",
                    model.name, model.levels[o.level as usize].label
                )
            })
            .collect();
        format!(
            "prior ({:+.2}); {}",
            self.model.prior_weight(),
            parts.join("; ")
        )
    }
}

/// The outcome of probabilistic matching over one set of records.
pub struct Scored {
    pub matcher: Matcher,
    /// Candidate pairs and their match weights, same order.
    pub pairs: Vec<(u32, u32)>,
    pub weights: Vec<f64>,
    pub blocking: Vec<BlockingStats>,
}

/// A model kept from an earlier run, and which records changed since: only pairs
/// touching a changed record are compared, and nothing is re-estimated.
pub struct Reuse {
    pub model: Model,
    pub dirty: Vec<bool>,
}

/// `rule_pairs`: how many pairs the deterministic rules link, for the prior.
pub fn score(
    values: &Values,
    n: usize,
    matching: &Matching,
    rule_pairs: Option<u64>,
    reuse: Option<Reuse>,
) -> Scored {
    let started = std::time::Instant::now();
    let lap =
        |stage: &str| tracing::debug!(stage, seconds = started.elapsed().as_secs_f64(), "matching");
    let fields = fields(values, n, matching);
    lap("fields");
    let dirty = reuse.as_ref().map(|r| r.dirty.as_slice());
    let k = fields.len();
    // u comes from random pairs, not from the candidates: it is sampled meanwhile.
    let ((pairs, blocking, levels), u) = rayon::join(
        || {
            let (pairs, blocking) = blocking::candidate_pairs(
                values,
                n,
                &matching.blocking,
                &matching.block_limits,
                dirty,
            );
            lap("blocked");
            let all: Vec<&Field> = fields.iter().collect();
            let levels: Vec<u8> = pairs
                .par_chunks(4096)
                .flat_map_iter(|chunk| {
                    let mut levels = Vec::with_capacity(chunk.len() * k);
                    visit_prefetched(&all, chunk, |a, b| {
                        levels.extend(fields.iter().map(|f| f.compare(a, b).level));
                    });
                    levels
                })
                .collect();
            tracing::info!(pairs = pairs.len(), "candidate pairs compared");
            (pairs, blocking, levels)
        },
        || {
            reuse.is_none().then(|| {
                model::estimate_u(&fields, &matching.comparisons, n, matching.u_sample_pairs)
            })
        },
    );
    let model = match (reuse, u) {
        (Some(r), _) => r.model,
        (None, u) => {
            let u = u.expect("u is sampled when training");
            train(values, n, matching, u, &pairs, &levels, rule_pairs)
        }
    };
    lap("trained");
    let matcher = Matcher::with(fields, model);
    // From the stored levels; only exact agreement with term frequencies needs the value.
    let weights = pairs
        .par_iter()
        .zip(levels.par_chunks(k.max(1)))
        .map(|(&(a, b), levels)| {
            let evidence: f64 = levels
                .iter()
                .enumerate()
                .map(|(c, &level)| {
                    let value = if level == 0 && matcher.model.comparisons[c].term_frequency {
                        matcher.fields[c].compare(a, b).value
                    } else {
                        0
                    };
                    matcher.partial_weight(c, Compared { level, value })
                })
                .sum();
            matcher.model.prior_weight() + evidence
        })
        .collect();
    lap("weighed");
    Scored {
        matcher,
        pairs,
        weights,
        blocking,
    }
}

fn fields(values: &Values, n: usize, matching: &Matching) -> Vec<Field> {
    super::map_maybe_parallel(&matching.comparisons, n >= super::PARALLEL_FROM, |_, c| {
        let columns: Vec<&TextColumn> = c
            .columns
            .iter()
            .filter_map(|name| values.get(name))
            .collect();
        Field::new(c, &columns, n)
    })
}

/// m by EM (u given, from random pairs), one session per training blocking rule.
fn train(
    values: &Values,
    n: usize,
    matching: &Matching,
    u: Vec<Vec<f64>>,
    pairs: &[(u32, u32)],
    levels: &[u8],
    rule_pairs: Option<u64>,
) -> Model {
    let sessions: Vec<Session> = matching
        .train_on
        .iter()
        .map(|&r| {
            let rule = &matching.blocking[r];
            let ids: Vec<Vec<u32>> = rule
                .columns
                .iter()
                .map(|c| blocking::ids(values, c, n))
                .collect();
            let agrees = |a: u32, b: u32| {
                ids.iter()
                    .all(|col| col[a as usize] != 0 && col[a as usize] == col[b as usize])
            };
            Session {
                pairs: (0..pairs.len())
                    .filter(|&p| agrees(pairs[p].0, pairs[p].1))
                    .collect(),
                held_out: matching
                    .comparisons
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.columns.iter().any(|col| rule.columns.contains(col)))
                    .map(|(i, _)| i)
                    .collect(),
            }
        })
        .collect();
    model::fit(matching, u, levels, pairs.len(), n, &sessions, rule_pairs)
}
