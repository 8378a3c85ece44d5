//! Accuracy against a ground truth: pairwise precision, recall and F1 (a pair is two
//! records put in one person), computed from cluster overlaps without listing pairs,
//! and the share of true persons found exactly.

use foldhash::HashMap;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Accuracy {
    /// Records present both in the resolution and in the truth.
    pub records: u64,
    pub true_pairs: u64,
    pub predicted_pairs: u64,
    pub correct_pairs: u64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub true_persons: u64,
    pub predicted_persons: u64,
    /// Cluster level: true persons whose records form exactly one predicted person,
    /// nothing missing and nothing extra.
    pub exact_persons: u64,
}

fn pairs(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

/// Scores a resolution from each record found both in it and in the truth, as
/// (predicted person, true person), both numbered.
pub fn evaluate(records_in_both: impl IntoIterator<Item = (u32, u32)>) -> Accuracy {
    let mut both: HashMap<(u32, u32), u64> = HashMap::default();
    let mut pred: HashMap<u32, u64> = HashMap::default();
    let mut real: HashMap<u32, u64> = HashMap::default();
    let mut records = 0;
    for (p, t) in records_in_both {
        records += 1;
        *both.entry((p, t)).or_default() += 1;
        *pred.entry(p).or_default() += 1;
        *real.entry(t).or_default() += 1;
    }
    let correct: u64 = both.values().map(|&n| pairs(n)).sum();
    let predicted_pairs: u64 = pred.values().map(|&n| pairs(n)).sum();
    let true_pairs: u64 = real.values().map(|&n| pairs(n)).sum();
    let ratio = |a: u64, b: u64| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    let precision = ratio(correct, predicted_pairs);
    let recall = ratio(correct, true_pairs);
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    Accuracy {
        records,
        true_pairs,
        predicted_pairs,
        correct_pairs: correct,
        precision,
        recall,
        f1,
        true_persons: real.len() as u64,
        predicted_persons: pred.len() as u64,
        // A person is found exactly when all its records share one predicted id that
        // no other person's record has.
        exact_persons: both
            .iter()
            .filter(|((p, t), n)| real[t] == **n && pred[p] == **n)
            .count() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_scores_count_pairs_not_records() {
        // truth: {a,b,c} {d}; predicted: {a,b} {c,d}
        let truth = [1, 1, 1, 2];
        let pred = [7, 7, 8, 8];
        let acc = evaluate(pred.into_iter().zip(truth));
        assert_eq!(
            (acc.true_pairs, acc.predicted_pairs, acc.correct_pairs),
            (3, 2, 1)
        );
        assert!((acc.precision - 0.5).abs() < 1e-9);
        assert!((acc.recall - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(acc.exact_persons, 0);
        let acc = evaluate(truth.into_iter().zip(truth));
        assert_eq!((acc.exact_persons, acc.true_persons), (2, 2));
    }
}
