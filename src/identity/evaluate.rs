//! Accuracy against a ground truth: pairwise precision, recall and F1 (a pair is two
//! records put in one person), computed from cluster overlaps without listing pairs,
//! and the share of true persons found exactly.
//!
//! A truth file is CSV with `source,record_id,person_id`. Every truth record counts:
//! one that never reached the identity graph (quarantined upstream, never landed) is
//! scored as a person of its own, so its true pairs are misses, and [`Scored`] says how
//! many there were. A truth file that shares no record with the graph is an error, not
//! a perfect score.

use std::path::{Path, PathBuf};

use polars::prelude::StringChunked;
use rayon::prelude::*;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum TruthError {
    #[error("truth file {}: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("truth file {}: {message}", file.display())]
    Format { file: PathBuf, message: String },
    #[error("truth file {}: none of its {records} records is in the identity graph (is it the truth of another data set, or are its sources named differently?)", file.display())]
    NoOverlap { file: PathBuf, records: u64 },
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Accuracy {
    /// Records present both in the resolution and in the truth.
    pub records: u64,
    /// Truth records absent from the resolution, each scored as a person of its own.
    pub absent: u64,
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
        absent: 0,
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

/// A truth file: each row's source and record id as ranges of one buffer, and its
/// true person, numbered; rows in key-hash order.
pub struct Truth {
    file: PathBuf,
    text: Vec<u8>,
    rows: Vec<TruthRow>,
}

struct TruthRow {
    source: std::ops::Range<usize>,
    record: std::ops::Range<usize>,
    person: u32,
    /// [`key_hash`] of source and record id.
    hash: u64,
}

impl Truth {
    pub fn read(path: &Path) -> Result<Self, TruthError> {
        let bad = |message: String| TruthError::Format {
            file: path.to_path_buf(),
            message,
        };
        let file = std::fs::read(path).map_err(|source| TruthError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        let mut reader = csv::Reader::from_reader(file.as_slice());
        let headers = reader
            .byte_headers()
            .map_err(|e| bad(e.to_string()))?
            .clone();
        let pos = |name: &str| {
            headers
                .iter()
                .position(|h| h == name.as_bytes())
                .ok_or_else(|| {
                    bad(format!(
                        "no column {name:?}; a truth file has source,record_id,person_id"
                    ))
                })
        };
        let (s, r, p) = (pos("source")?, pos("record_id")?, pos("person_id")?);
        let mut truth = Truth {
            file: path.to_path_buf(),
            text: Vec::with_capacity(file.len()),
            rows: Vec::new(),
        };
        let mut true_person: foldhash::HashMap<Vec<u8>, u32> = Default::default();
        let mut row = csv::ByteRecord::new();
        let mut line = 1;
        loop {
            line += 1;
            match reader.read_byte_record(&mut row) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => return Err(bad(format!("row {line}: {e}"))),
            }
            let field = |i: usize| row.get(i).unwrap_or_default();
            let next = true_person.len() as u32;
            let person = match true_person.get(field(p)) {
                Some(&t) => t,
                None => *true_person.entry(field(p).to_vec()).or_insert(next),
            };
            let mut keep = |bytes: &[u8]| {
                let start = truth.text.len();
                truth.text.extend_from_slice(bytes);
                start..truth.text.len()
            };
            let (source, record) = (keep(field(s)), keep(field(r)));
            truth.rows.push(TruthRow {
                source,
                record,
                person,
                hash: key_hash(&[field(s), field(r)]),
            });
        }
        // In hash order, for the merge with the identity graph in [`score`].
        truth.rows.sort_unstable_by_key(|row| row.hash);
        Ok(truth)
    }

    /// How many records the file names.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// A row's (source, record id).
    fn key(&self, row: &TruthRow) -> (&[u8], &[u8]) {
        (
            &self.text[row.source.clone()],
            &self.text[row.record.clone()],
        )
    }
}

/// The score of a resolution against a truth, and the truth records it never saw.
#[derive(Debug, Clone)]
pub struct Scored {
    pub accuracy: Accuracy,
    /// (source, record id) of each truth record absent from the resolution.
    pub absent: Vec<(String, String)>,
}

/// Scores an identity graph, given as its source, record id and person id columns,
/// against `truth`. Every truth record counts (see the module docs).
pub fn score(
    sources: &StringChunked,
    records: &StringChunked,
    persons: &StringChunked,
    truth: &Truth,
) -> Result<Scored, TruthError> {
    let (sources, records, persons) = (bytes_of(sources), bytes_of(records), bytes_of(persons));
    let n = sources.len();
    // Predicted persons numbered by sorting their ids' hashes (ids compared only
    // where hashes tie, so a collision cannot join two persons).
    let mut by_person: Vec<(u64, u32)> = (0..n as u32)
        .into_par_iter()
        .map(|i| (key_hash(&[persons[i as usize]]), i))
        .collect();
    by_person.par_sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| persons[a.1 as usize].cmp(persons[b.1 as usize]))
    });
    let mut predicted = vec![0u32; n];
    let same_person =
        |a: &(u64, u32), b: &(u64, u32)| persons[a.1 as usize] == persons[b.1 as usize];
    let mut next_person = 0u32;
    for rows in by_person.chunk_by(same_person) {
        for &(_, row) in rows {
            predicted[row as usize] = next_person;
        }
        next_person += 1;
    }
    // The graph's records by key hash, merged with the truth's rows (in hash order).
    let key = |i: u32| (sources[i as usize], records[i as usize]);
    let mut graph_rows: Vec<(u64, u32)> = (0..n as u32)
        .into_par_iter()
        .map(|i| (key_hash(&[sources[i as usize], records[i as usize]]), i))
        .collect();
    graph_rows.par_sort_unstable();
    // Per truth row: its predicted person, or None when the graph lacks it. Slices of
    // the truth side by side, each from its first hash on.
    let found: Vec<Option<u32>> = truth
        .rows
        .par_chunks(1 << 16)
        .flat_map_iter(|rows| {
            let mut g = graph_rows.partition_point(|(h, _)| *h < rows[0].hash);
            let mut found = Vec::with_capacity(rows.len());
            for row in rows {
                while g < n && graph_rows[g].0 < row.hash {
                    g += 1;
                }
                let wanted = truth.key(row);
                // Among the graph's records with this hash (one, unless hashes collide).
                let mut same_hash = graph_rows[g..].iter().take_while(|(h, _)| *h == row.hash);
                found.push(
                    same_hash
                        .find(|&&(_, i)| key(i) == wanted)
                        .map(|&(_, i)| predicted[i as usize]),
                );
            }
            found
        })
        .collect();
    let in_graph = found.iter().flatten().count() as u64;
    if in_graph == 0 && !truth.is_empty() {
        return Err(TruthError::NoOverlap {
            file: truth.file.clone(),
            records: truth.len() as u64,
        });
    }
    let mut absent = Vec::new();
    let mut pairs = Vec::with_capacity(found.len());
    for (row, found) in truth.rows.iter().zip(found) {
        match found {
            Some(p) => pairs.push((p, row.person)),
            None => {
                // A person of its own: its true pairs become misses.
                pairs.push((next_person, row.person));
                next_person += 1;
                let (s, r) = truth.key(row);
                absent.push((
                    String::from_utf8_lossy(s).into_owned(),
                    String::from_utf8_lossy(r).into_owned(),
                ));
            }
        }
    }
    let mut accuracy = evaluate(pairs);
    accuracy.absent = absent.len() as u64;
    accuracy.records -= accuracy.absent;
    absent.sort_unstable();
    Ok(Scored { accuracy, absent })
}

/// A hash of byte strings, each length-prefixed so that parts cannot run together.
fn key_hash(parts: &[&[u8]]) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = foldhash::fast::FixedState::with_seed(0x7472_7574).build_hasher();
    for part in parts {
        hasher.write_usize(part.len());
        hasher.write(part);
    }
    hasher.finish()
}

/// A text column's values as bytes (a null as empty), for indexing and sorting.
fn bytes_of(column: &StringChunked) -> Vec<&[u8]> {
    column
        .iter()
        .map(|v| v.unwrap_or_default().as_bytes())
        .collect()
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

    #[test]
    fn key_parts_cannot_run_together() {
        let h = |parts: &[&str]| key_hash(&parts.iter().map(|p| p.as_bytes()).collect::<Vec<_>>());
        assert_ne!(h(&["crm", "12"]), h(&["crm1", "2"]));
        assert_ne!(h(&["crm", ""]), h(&["", "crm"]));
        assert_eq!(h(&["crm", "12"]), h(&["crm", "12"]));
    }

    fn truth_file(text: &str) -> (tempfile::TempDir, Truth) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("truth.csv");
        std::fs::write(&path, text).expect("write truth");
        let truth = Truth::read(&path).expect("read truth");
        (dir, truth)
    }

    fn graph(rows: &[(&str, &str, &str)]) -> [StringChunked; 3] {
        let col = |values: Vec<&str>| {
            use polars::prelude::NewChunkedArray;
            StringChunked::from_slice("c".into(), &values)
        };
        [
            col(rows.iter().map(|r| r.0).collect()),
            col(rows.iter().map(|r| r.1).collect()),
            col(rows.iter().map(|r| r.2).collect()),
        ]
    }

    #[test]
    fn a_truth_record_missing_from_the_graph_is_a_miss_not_ignored() {
        // Truth: a, b, c are one person. The graph has a and b together; c was
        // quarantined upstream. Scoring only a and b would give a perfect 1.0.
        let (_dir, truth) =
            truth_file("source,record_id,person_id\ncrm,a,P1\ncrm,b,P1\ncrm,c,P1\n");
        let [s, r, p] = graph(&[("crm", "a", "X"), ("crm", "b", "X")]);
        let scored = score(&s, &r, &p, &truth).expect("scores");
        let acc = &scored.accuracy;
        assert_eq!((acc.records, acc.absent), (2, 1));
        assert_eq!((acc.true_pairs, acc.correct_pairs), (3, 1));
        assert!((acc.precision - 1.0).abs() < 1e-9);
        assert!((acc.recall - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(scored.absent, vec![("crm".to_string(), "c".to_string())]);
    }

    #[test]
    fn a_truth_file_that_matches_nothing_is_refused() {
        let (_dir, truth) = truth_file("source,record_id,person_id\nshop,1,P1\nshop,2,P1\n");
        let [s, r, p] = graph(&[("crm", "a", "X"), ("crm", "b", "X")]);
        let err = score(&s, &r, &p, &truth).expect_err("no overlap");
        assert!(
            matches!(err, TruthError::NoOverlap { records: 2, .. }),
            "{err}"
        );
    }
}
