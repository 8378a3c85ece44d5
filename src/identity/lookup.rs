//! lookup: one record against the saved identity state, without re-running resolve.
//!
//! In: the known records (the columns resolution reads, one row each, as clean text),
//! each record's person id, the identity configuration and the trained model. The
//! [`Index`] built from them once answers a record at a time: the deterministic rules
//! first, in priority order (all of a rule's columns equal to a known record's), then
//! the blocking rules' candidates scored with the same [`Matcher`] and model the
//! resolver uses, with the known records' term frequencies. Out: an [`Answer`] (person
//! id, the rule or the probability, new or ambiguous). Writes nothing.
//!
//! A record that matches no one is new: its `person_id` is null (the next resolve mints
//! the id; a proposed id here could differ from the one minted then).

use std::collections::HashMap;

use serde::Serialize;

use super::compare::Field;
use super::email_names;
use super::matcher::Matcher;
use super::model::{self, Model};
use super::text::{TextColumn, Values};
use super::{columns_read, text_column, PreviousRun};
use crate::clean::read::SOURCE;
use crate::config::{IdentityConfig, MatchRule, Matching, NameFromEmail};

/// Problems building an index.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("identity state: column {0:?} of length {1}, expected {2} records")]
    ColumnLength(String, usize, usize),
    #[error(
        "identity state: record {0:?} of source {1:?} has no person id in the saved assignment"
    )]
    Unassigned(String, String),
    #[error(transparent)]
    Identity(#[from] super::IdentityError),
}

/// Why a text is not a record.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("a record is a JSON object of column -> value")]
    NotObject,
    #[error("column {0:?}: a value is text, a number, a boolean or null")]
    Value(String),
}

/// A record from a JSON object: column -> text; numbers and booleans as their text,
/// null (and "") as no value.
pub fn record_from_json(text: &str) -> Result<HashMap<String, String>, RecordError> {
    let serde_json::Value::Object(fields) = serde_json::from_str(text)? else {
        return Err(RecordError::NotObject);
    };
    let mut record = HashMap::new();
    for (column, v) in fields {
        let text = match v {
            serde_json::Value::Null => continue,
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => return Err(RecordError::Value(column)),
        };
        record.insert(column, text);
    }
    Ok(record)
}

/// A record's clean values by column, as a lookup reads them: a map of column ->
/// text (`cdp match`), or a row of a frame's text columns (`cdp stream`), so a batch
/// needs no map per row.
pub trait Record {
    /// The value of `column`; `None` when the record has none.
    fn value(&self, column: &str) -> Option<&str>;
}

impl Record for HashMap<String, String> {
    fn value(&self, column: &str) -> Option<&str> {
        self.get(column).map(String::as_str)
    }
}

/// What a lookup found for one record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    /// The person the record belongs to; null when it is new (or ambiguous: then
    /// `candidates` names the persons).
    pub person_id: Option<String>,
    /// The deterministic rule that matched, if one did.
    pub rule: Option<String>,
    /// The match probability with the person, when matched by scoring.
    pub probability: Option<f64>,
    /// No known person matches: the next resolve gives it a new person id.
    pub new: bool,
    /// More than one person matches (by one rule, or above the threshold).
    pub ambiguous: bool,
    /// With `ambiguous`: the persons matched, best first, with probabilities when scored.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Candidate>,
}

/// One person a record matched.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub person_id: String,
    pub probability: Option<f64>,
}

/// What of the identity configuration a lookup uses.
struct Parts {
    rules: Vec<MatchRule>,
    max_key_group: usize,
    matching: Option<Matching>,
    name_from_email: Option<NameFromEmail>,
}

/// A key index: the values of a rule's columns (value ids) -> rows holding them.
type Keyed = foldhash::HashMap<Vec<u32>, Vec<u32>>;

/// The saved identity state in memory, ready for lookups.
pub struct Index {
    rules: Vec<MatchRule>,
    max_key_group: usize,
    matching: Option<Matching>,
    name_from_email: Option<NameFromEmail>,
    model: Option<Model>,
    /// Known records' values, by column (after names read from emails are filled in).
    values: Values,
    /// Column -> text -> value id, for query values.
    dictionary: HashMap<String, foldhash::HashMap<Box<str>, u32>>,
    /// Per record: its person id.
    persons: Vec<String>,
    /// Per deterministic rule, then per blocking rule: key -> rows.
    rule_keys: Vec<Keyed>,
    block_keys: Vec<Keyed>,
    /// Per comparison: the known records' count of each value and records holding one.
    frequencies: Vec<(foldhash::HashMap<Box<str>, u32>, u64)>,
}

impl Index {
    /// `columns`: each column resolution reads, a value per known record (clean, as
    /// the resolver read it); `persons`: each record's person id.
    pub fn build(
        config: &IdentityConfig,
        model: Option<Model>,
        columns: HashMap<String, Vec<Option<String>>>,
        persons: Vec<String>,
    ) -> Result<Self, LookupError> {
        let parts = Parts {
            rules: config.rules.clone(),
            max_key_group: config.max_key_group,
            matching: config.matching.clone(),
            name_from_email: config.first_name_from_email.clone(),
        };
        Self::from_parts(parts, model, columns, persons)
    }

    /// The index over the records a resolve read (`records`, with the lineage source
    /// and `key_column`) and the state it saved (`previous`).
    pub fn from_frame(
        records: &polars::prelude::DataFrame,
        config: &IdentityConfig,
        key_column: &str,
        previous: PreviousRun,
    ) -> Result<Self, LookupError> {
        let entity = config.entity.as_str();
        let sources = text_column(records, SOURCE, entity)?;
        let keys = text_column(records, key_column, entity)?;
        let persons = sources
            .into_iter()
            .zip(keys)
            .map(|(source, id)| {
                let key = (source.unwrap_or_default(), id.unwrap_or_default());
                match previous.rows.get(&key) {
                    Some(&row) => Ok(previous.assigned[row as usize].person_id.clone()),
                    None => Err(LookupError::Unassigned(key.1, key.0)),
                }
            })
            .collect::<Result<Vec<String>, LookupError>>()?;
        let mut columns: HashMap<String, Vec<Option<String>>> = HashMap::new();
        for name in columns_read(config, key_column) {
            if name == SOURCE || name == key_column || columns.contains_key(name) {
                continue;
            }
            columns.insert(name.to_string(), text_column(records, name, entity)?);
        }
        let model = previous.model.map(|m| m.model);
        Self::build(config, model, columns, persons)
    }

    fn from_parts(
        config: Parts,
        model: Option<Model>,
        columns: HashMap<String, Vec<Option<String>>>,
        persons: Vec<String>,
    ) -> Result<Self, LookupError> {
        let n = persons.len();
        let mut values = Values::new();
        for (name, column) in &columns {
            if column.len() != n {
                return Err(LookupError::ColumnLength(name.clone(), column.len(), n));
            }
            values.insert(
                name.clone(),
                TextColumn::from_values(column.iter().map(|v| v.as_deref())),
            );
        }
        if let Some(f) = &config.name_from_email {
            email_names::fill(&mut values, f);
        }
        let dictionary: HashMap<String, foldhash::HashMap<Box<str>, u32>> = values
            .iter()
            .map(|(name, c)| {
                let texts = (1..c.id_count() as u32)
                    .map(|id| (Box::<str>::from(c.text(id)), id))
                    .collect();
                (name.clone(), texts)
            })
            .collect();
        let keyed = |rules: &[MatchRule]| -> Vec<Keyed> {
            rules
                .iter()
                .map(|rule| {
                    let mut keys = Keyed::default();
                    'rows: for row in 0..n {
                        let mut key = Vec::with_capacity(rule.columns.len());
                        for c in &rule.columns {
                            match values.get(c).map(|c| c.ids()[row]) {
                                Some(id) if id != 0 => key.push(id),
                                _ => continue 'rows,
                            }
                        }
                        keys.entry(key).or_default().push(row as u32);
                    }
                    keys
                })
                .collect()
        };
        let rule_keys = keyed(&config.rules);
        let (block_keys, frequencies) = match &config.matching {
            None => (Vec::new(), Vec::new()),
            Some(matching) => {
                let frequencies: Vec<(foldhash::HashMap<Box<str>, u32>, u64)> = matching
                    .comparisons
                    .iter()
                    .map(|c| {
                        let columns: Vec<&TextColumn> = c
                            .columns
                            .iter()
                            .filter_map(|name| values.get(name))
                            .collect();
                        let field = Field::new(c, &columns, n);
                        let counts = (1..field.value_count() as u32)
                            .map(|id| (Box::<str>::from(field.text(id)), field.count(id)))
                            .collect();
                        (counts, field.present)
                    })
                    .collect();
                (keyed(&matching.blocking), frequencies)
            }
        };
        Ok(Index {
            rule_keys,
            block_keys,
            rules: config.rules,
            max_key_group: config.max_key_group,
            matching: config.matching,
            name_from_email: config.name_from_email,
            model,
            values,
            dictionary,
            persons,
            frequencies,
        })
    }

    /// Known records.
    pub fn len(&self) -> usize {
        self.persons.len()
    }

    /// Each known record's person id (one per record, so repeated).
    pub fn person_ids(&self) -> impl Iterator<Item = &str> {
        self.persons.iter().map(String::as_str)
    }

    /// Whether no record is known.
    pub fn is_empty(&self) -> bool {
        self.persons.is_empty()
    }

    /// The rows sharing `record`'s values of `columns` (none when one is missing or
    /// unknown).
    fn rows<'a, R: Record + ?Sized>(
        &'a self,
        keys: &'a Keyed,
        columns: &[String],
        record: &R,
    ) -> &'a [u32] {
        let mut key = Vec::with_capacity(columns.len());
        for c in columns {
            let id = record
                .value(c)
                .filter(|v| !v.is_empty())
                .and_then(|v| self.dictionary.get(c)?.get(v));
            match id {
                Some(&id) => key.push(id),
                None => return &[],
            }
        }
        keys.get(&key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The person `record` (clean values by column) belongs to, and how.
    pub fn lookup<R: Record + ?Sized>(&self, record: &R) -> Answer {
        for (rule, keys) in self.rules.iter().zip(&self.rule_keys) {
            let rows = self.rows(keys, &rule.columns, record);
            // With the record, a group over the limit links nothing in resolve either.
            if rows.is_empty() || rows.len() >= self.max_key_group {
                continue;
            }
            let mut persons: Vec<&str> = rows
                .iter()
                .map(|&r| self.persons[r as usize].as_str())
                .collect();
            persons.sort_unstable();
            persons.dedup();
            if let [person] = persons[..] {
                return Answer {
                    person_id: Some(person.to_string()),
                    rule: Some(rule.name.clone()),
                    probability: None,
                    new: false,
                    ambiguous: false,
                    candidates: Vec::new(),
                };
            }
            return Answer {
                person_id: None,
                rule: Some(rule.name.clone()),
                probability: None,
                new: false,
                ambiguous: true,
                candidates: persons
                    .into_iter()
                    .map(|p| Candidate {
                        person_id: p.to_string(),
                        probability: None,
                    })
                    .collect(),
            };
        }
        self.score(record)
    }

    /// Blocking and scoring against the candidates' records with the saved model.
    fn score<R: Record + ?Sized>(&self, record: &R) -> Answer {
        let new = Answer {
            person_id: None,
            rule: None,
            probability: None,
            new: true,
            ambiguous: false,
            candidates: Vec::new(),
        };
        let (Some(matching), Some(model)) = (&self.matching, &self.model) else {
            return new;
        };
        let mut candidates: Vec<u32> = Vec::new();
        for (i, (rule, keys)) in matching.blocking.iter().zip(&self.block_keys).enumerate() {
            let rows = self.rows(keys, &rule.columns, record);
            let limit = matching.block_limits.get(i).copied().unwrap_or(usize::MAX);
            // The record itself joins the block in resolve: one more than the rows.
            if rows.len() < limit {
                candidates.extend_from_slice(rows);
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        if candidates.is_empty() {
            return new;
        }
        // The candidates and the record (last) as a few records of their own.
        let m = candidates.len() + 1;
        let mut values = Values::new();
        for (name, column) in &self.values {
            let texts = candidates
                .iter()
                .map(|&r| column.get(r as usize))
                .chain(std::iter::once(
                    record.value(name).filter(|v| !v.is_empty()),
                ));
            values.insert(name.clone(), TextColumn::from_values(texts));
        }
        if let Some(f) = &self.name_from_email {
            email_names::fill(&mut values, f);
        }
        let frequencies = &self.frequencies;
        let matcher = Matcher::with_frequencies(&values, m, matching, model.clone(), |c, text| {
            let (counts, present) = &frequencies[c];
            (counts.get(text).copied().unwrap_or(0), *present)
        });
        let prior = model.prior_weight();
        let query = (m - 1) as u32;
        let mut best: HashMap<&str, f64> = HashMap::new();
        for (i, &row) in candidates.iter().enumerate() {
            let p = model::probability(prior + matcher.evidence(query, i as u32));
            let person = self.persons[row as usize].as_str();
            let e = best.entry(person).or_insert(p);
            *e = e.max(p);
        }
        let mut above: Vec<(&str, f64)> = best
            .into_iter()
            .filter(|&(_, p)| p >= matching.threshold)
            .collect();
        above.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
        match above[..] {
            [] => new,
            [(person, p)] => Answer {
                person_id: Some(person.to_string()),
                rule: None,
                probability: Some(p),
                new: false,
                ambiguous: false,
                candidates: Vec::new(),
            },
            _ => Answer {
                person_id: None,
                rule: None,
                probability: Some(above[0].1),
                new: false,
                ambiguous: true,
                candidates: above
                    .iter()
                    .map(|&(p, probability)| Candidate {
                        person_id: p.to_string(),
                        probability: Some(probability),
                    })
                    .collect(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Comparison, Level};
    use crate::identity::model::{ComparisonModel, LevelModel};

    fn config() -> Parts {
        Parts {
            rules: vec![MatchRule {
                name: "email".into(),
                columns: vec!["email".into()],
            }],
            max_key_group: 10,
            name_from_email: None,
            matching: Some(Matching {
                threshold: 0.9,
                blocking: vec![MatchRule {
                    name: "last".into(),
                    columns: vec!["last_name".into()],
                }],
                block_limits: vec![100],
                comparisons: vec![Comparison {
                    name: "first".into(),
                    columns: vec!["first_name".into()],
                    levels: vec![Level::Exact],
                    term_frequency: false,
                    max_holders: None,
                    max_holders_auto: false,
                    m: None,
                    u: None,
                }],
                em_iterations: 1,
                u_sample_pairs: 10,
                prior: None,
                rule_recall: 0.7,
                train_on: vec![0],
            }),
        }
    }

    fn model() -> Model {
        let level = |label: &str, m: f64, u: f64| LevelModel {
            label: label.into(),
            m,
            u,
        };
        Model {
            prior: 0.01,
            comparisons: vec![ComparisonModel {
                name: "first".into(),
                levels: vec![level("exact", 0.99, 0.0001), level("else", 0.01, 0.9999)],
                term_frequency: false,
                sessions: 1,
                pooled: Vec::new(),
            }],
            em_rounds: 1,
            em_converged: true,
            em_final_change: 0.0,
            candidate_match_share: 0.5,
        }
    }

    fn index() -> Index {
        let column = |v: [&str; 3]| {
            v.iter()
                .map(|s| (!s.is_empty()).then(|| s.to_string()))
                .collect::<Vec<_>>()
        };
        let columns = HashMap::from([
            ("email".to_string(), column(["a@x.io", "", "c@x.io"])),
            ("last_name".to_string(), column(["Smith", "Jones", "Jones"])),
            ("first_name".to_string(), column(["Ann", "Bob", "Bob"])),
        ]);
        let persons = vec!["P1".into(), "P2".into(), "P3".into()];
        Index::from_parts(config(), Some(model()), columns, persons).unwrap()
    }

    fn record(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_exact_identifier_matches_by_its_rule() {
        let a = index().lookup(&record(&[("email", "a@x.io"), ("last_name", "Other")]));
        assert_eq!(a.person_id.as_deref(), Some("P1"));
        assert_eq!(a.rule.as_deref(), Some("email"));
        assert!(!a.new && !a.ambiguous);
    }

    #[test]
    fn a_scored_match_carries_its_probability() {
        let a = index().lookup(&record(&[("last_name", "Smith"), ("first_name", "Ann")]));
        assert_eq!(a.person_id.as_deref(), Some("P1"));
        assert!(a.rule.is_none());
        assert!(a.probability.unwrap() >= 0.9, "{a:?}");
    }

    #[test]
    fn two_persons_above_the_threshold_are_ambiguous() {
        let a = index().lookup(&record(&[("last_name", "Jones"), ("first_name", "Bob")]));
        assert!(a.ambiguous && a.person_id.is_none(), "{a:?}");
        let persons: Vec<&str> = a.candidates.iter().map(|c| c.person_id.as_str()).collect();
        assert_eq!(persons, ["P2", "P3"]);
    }

    #[test]
    fn no_one_above_the_threshold_is_new() {
        let a = index().lookup(&record(&[("last_name", "Smith"), ("first_name", "Zed")]));
        assert!(a.new && a.person_id.is_none(), "{a:?}");
        let a = index().lookup(&record(&[("last_name", "Nobody")]));
        assert!(a.new, "no candidates");
    }

    #[test]
    fn a_record_is_a_json_object_of_plain_values() {
        let r = record_from_json(r#"{"a":"x","n":12,"b":true,"z":null}"#).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(
            (r["a"].as_str(), r["n"].as_str(), r["b"].as_str()),
            ("x", "12", "true")
        );
        assert!(matches!(
            record_from_json("[1]"),
            Err(RecordError::NotObject)
        ));
        assert!(matches!(record_from_json("{"), Err(RecordError::Json(_))));
        let nested = record_from_json(r#"{"a":{"b":1}}"#);
        assert!(matches!(nested, Err(RecordError::Value(c)) if c == "a"));
    }

    #[test]
    fn a_column_of_the_wrong_length_is_named() {
        let columns = HashMap::from([("email".to_string(), vec![None])]);
        let err = Index::from_parts(config(), None, columns, vec!["P1".into(), "P2".into()]);
        assert!(matches!(err, Err(LookupError::ColumnLength(c, 1, 2)) if c == "email"));
    }
}
