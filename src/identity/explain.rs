//! `--explain`: why records sit in one person. Given the identity graph and the
//! decisions of a resolve run, and a subject (a record as `source:record_id`, a record
//! id only one source uses, or a `person_id` as `customer_360` shows it), it returns
//! the person's members with the rule that linked each, the merges that built the
//! person and the merges guards refused. Pure: frames in, an [`Explanation`] out; the
//! caller reads the frames and may add each merge's comparisons ([`super::explain_pairs`]).

use polars::prelude::*;

use super::ids::RecordKey;
use super::{IdentityError, DECISION_COLUMNS, GRAPH_COLUMNS};

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("no record or person {0:?} in the identity graph (give source:record_id, a record id, or a person_id)")]
    NotFound(String),
    #[error("{subject:?} is ambiguous: {}", candidates.join(", "))]
    Ambiguous {
        subject: String,
        candidates: Vec<String>,
    },
    #[error(transparent)]
    Frame(#[from] IdentityError),
}

impl From<PolarsError> for ExplainError {
    fn from(e: PolarsError) -> Self {
        Self::Frame(e.into())
    }
}

/// What was asked about.
#[derive(Debug, Clone, PartialEq)]
pub enum Subject {
    /// One record, and the rule that linked it.
    Record { key: RecordKey, rule: String },
    /// A person, by id.
    Person,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    pub subject: Subject,
    pub person_id: String,
    /// Each member and the rule that linked it (`singleton` for a person of one).
    pub members: Vec<(RecordKey, String)>,
    /// Merges inside the person, and refusals between it and anyone.
    pub decisions: Vec<ExplainedDecision>,
    /// For a record that stayed alone: its nearest other records and why each fell
    /// short (filled by the caller, which has the records and the model).
    pub near: Vec<NearMiss>,
}

/// A record near one that stayed alone, and why the two were not merged.
#[derive(Debug, Clone, PartialEq)]
pub struct NearMiss {
    pub key: RecordKey,
    pub probability: f64,
    pub reason: String,
    pub comparisons: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExplainedDecision {
    pub merged: bool,
    pub left: RecordKey,
    pub right: RecordKey,
    pub link: String,
    pub probability: Option<f64>,
    /// Each comparison's level and weight, where the caller could recompute them.
    pub comparisons: Option<String>,
    pub guard: Option<String>,
}

impl ExplainedDecision {
    pub fn decision(&self) -> &'static str {
        if self.merged {
            "merged"
        } else {
            "refused"
        }
    }
}

/// A frame's text column by name, nulls as empty text.
fn text(df: &DataFrame, name: &str) -> Result<Vec<String>, ExplainError> {
    Ok(super::text_column(df, name, "identity")?
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect())
}

/// The identity graph's columns explain reads, by name.
struct Graph {
    sources: Vec<String>,
    records: Vec<String>,
    persons: Vec<String>,
    rules: Vec<String>,
}

impl Graph {
    fn read(df: &DataFrame) -> Result<Self, ExplainError> {
        let [source, record, person, rule, ..] = GRAPH_COLUMNS;
        Ok(Self {
            sources: text(df, source)?,
            records: text(df, record)?,
            persons: text(df, person)?,
            rules: text(df, rule)?,
        })
    }

    fn key(&self, i: usize) -> RecordKey {
        (self.sources[i].clone(), self.records[i].clone())
    }

    fn label(&self, i: usize) -> String {
        format!("{}:{}", self.sources[i], self.records[i])
    }
}

/// The decisions frame's columns, by name.
struct Decisions {
    left_source: Vec<String>,
    left_record: Vec<String>,
    right_source: Vec<String>,
    right_record: Vec<String>,
    decision: Vec<String>,
    link: Vec<String>,
    probability: Float64Chunked,
    guard: Vec<Option<String>>,
}

impl Decisions {
    fn read(df: &DataFrame) -> Result<Self, ExplainError> {
        let [ls, lr, rs, rr, decision, link, probability, guard] = DECISION_COLUMNS;
        Ok(Self {
            left_source: text(df, ls)?,
            left_record: text(df, lr)?,
            right_source: text(df, rs)?,
            right_record: text(df, rr)?,
            decision: text(df, decision)?,
            link: text(df, link)?,
            probability: df.column(probability)?.f64()?.clone(),
            guard: super::text_column(df, guard, "identity")?,
        })
    }
}

/// Explains `subject` from a run's identity graph and decisions.
pub fn explain(
    graph: &DataFrame,
    decisions: &DataFrame,
    subject: &str,
) -> Result<Explanation, ExplainError> {
    let g = Graph::read(graph)?;
    let n = graph.height();
    let records: Vec<usize> = (0..n)
        .filter(|&i| g.records[i] == subject || g.label(i) == subject)
        .collect();
    let (subject, person) = match records.as_slice() {
        [i] => (
            Subject::Record {
                key: g.key(*i),
                rule: g.rules[*i].clone(),
            },
            g.persons[*i].clone(),
        ),
        [] if g.persons.iter().any(|p| p == subject) => (Subject::Person, subject.to_string()),
        [] => return Err(ExplainError::NotFound(subject.to_string())),
        many => {
            return Err(ExplainError::Ambiguous {
                subject: subject.to_string(),
                candidates: many.iter().map(|&i| g.label(i)).collect(),
            })
        }
    };
    let members: Vec<(RecordKey, String)> = (0..n)
        .filter(|&j| g.persons[j] == person)
        .map(|j| (g.key(j), g.rules[j].clone()))
        .collect();
    let d = Decisions::read(decisions)?;
    let is_member = |s: &str, r: &str| members.iter().any(|((ms, mr), _)| ms == s && mr == r);
    let explained = (0..decisions.height())
        .filter_map(|i| {
            let left = is_member(&d.left_source[i], &d.left_record[i]);
            let right = is_member(&d.right_source[i], &d.right_record[i]);
            let merged = d.decision[i] == "merged";
            // Merges inside the person; refusals between it and anyone.
            let wanted = if merged { left && right } else { left || right };
            wanted.then(|| ExplainedDecision {
                merged,
                left: (d.left_source[i].clone(), d.left_record[i].clone()),
                right: (d.right_source[i].clone(), d.right_record[i].clone()),
                link: d.link[i].clone(),
                probability: d.probability.get(i),
                comparisons: None,
                guard: d.guard[i].clone(),
            })
        })
        .collect();
    Ok(Explanation {
        subject,
        person_id: person,
        members,
        decisions: explained,
        near: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames() -> (DataFrame, DataFrame) {
        let graph = df!(
            "source" => ["crm", "crm", "shop", "shop"],
            "record_id" => ["1", "2", "1", "9"],
            "person_id" => ["P-a", "P-a", "P-a", "P-b"],
            "rule" => ["email", "email", "probabilistic", "singleton"],
            "match_probability" => [None, None, Some(0.97), None],
            "resolved_run" => ["r", "r", "r", "r"],
        )
        .expect("graph");
        let decisions = df!(
            "left_source" => ["crm", "crm", "shop"],
            "left_record_id" => ["1", "2", "1"],
            "right_source" => ["crm", "shop", "shop"],
            "right_record_id" => ["2", "1", "9"],
            "decision" => ["merged", "merged", "refused"],
            "link" => ["rule email", "probabilistic", "probabilistic"],
            "match_probability" => [None, Some(0.97), Some(0.91)],
            "guard" => [None, None, Some("never_disagree.first_name: shop:1 vs shop:9")],
        )
        .expect("decisions");
        (graph, decisions)
    }

    #[test]
    fn a_person_id_is_explained_like_one_of_its_records() {
        let (graph, decisions) = frames();
        let by_person = explain(&graph, &decisions, "P-a").expect("person");
        assert_eq!(by_person.subject, Subject::Person);
        assert_eq!(by_person.members.len(), 3);
        let by_record = explain(&graph, &decisions, "crm:2").expect("record");
        assert_eq!(by_record.person_id, "P-a");
        assert_eq!(by_record.members, by_person.members);
        assert_eq!(by_record.decisions, by_person.decisions);
        // Two merges inside the person and the refusal towards shop:9.
        let kinds: Vec<&str> = by_person.decisions.iter().map(|d| d.decision()).collect();
        assert_eq!(kinds, ["merged", "merged", "refused"]);
        assert_eq!(
            by_person.decisions[2].guard.as_deref(),
            Some("never_disagree.first_name: shop:1 vs shop:9")
        );
    }

    #[test]
    fn an_id_two_sources_use_is_ambiguous_and_an_unknown_one_is_not_found() {
        let (graph, decisions) = frames();
        let err = explain(&graph, &decisions, "1").expect_err("ambiguous");
        assert!(
            matches!(&err, ExplainError::Ambiguous { candidates, .. } if candidates == &["crm:1", "shop:1"]),
            "{err}"
        );
        let err = explain(&graph, &decisions, "nobody").expect_err("unknown");
        assert!(matches!(err, ExplainError::NotFound(_)), "{err}");
    }
}
