//! Accuracy against a ground truth: pairwise precision, recall and F1 (a pair is two
//! records put in one person), computed from cluster overlaps without listing pairs,
//! and the share of true persons found exactly.

use rayon::prelude::*;
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
/// (predicted person, true person), both numbered from 0 (densely, for speed: the
/// numbers index counting arrays).
pub fn evaluate(records_in_both: impl IntoIterator<Item = (u32, u32)>) -> Accuracy {
    let mut both: Vec<(u32, u32)> = records_in_both.into_iter().collect();
    both.par_sort_unstable();
    let slots = |number: fn(&(u32, u32)) -> u32| {
        both.iter().map(number).max().map_or(0, |m| m as usize + 1)
    };
    let (mut pred, mut real) = (vec![0u64; slots(|r| r.0)], vec![0u64; slots(|r| r.1)]);
    for &(p, t) in &both {
        pred[p as usize] += 1;
        real[t as usize] += 1;
    }
    let (mut correct, mut exact_persons) = (0, 0);
    // Each run of one (predicted, true) pair is a cluster overlap.
    for run in both.chunk_by(|a, b| a == b) {
        let (n, (p, t)) = (run.len() as u64, run[0]);
        correct += pairs(n);
        // A person is found exactly when all its records share one predicted id that
        // no other person's record has.
        if real[t as usize] == n && pred[p as usize] == n {
            exact_persons += 1;
        }
    }
    let predicted_pairs: u64 = pred.iter().map(|&n| pairs(n)).sum();
    let true_pairs: u64 = real.iter().map(|&n| pairs(n)).sum();
    let ratio = |a: u64, b: u64| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    let precision = ratio(correct, predicted_pairs);
    let recall = ratio(correct, true_pairs);
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    let persons = |counts: &[u64]| counts.iter().filter(|&&n| n > 0).count() as u64;
    Accuracy {
        records: both.len() as u64,
        true_pairs,
        predicted_pairs,
        correct_pairs: correct,
        precision,
        recall,
        f1,
        true_persons: persons(&real),
        predicted_persons: persons(&pred),
        exact_persons,
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
