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
use super::guards::GuardSet;
use super::ids::RecordKey;
use super::matcher::Matcher;
use super::model::{self, Model};
use super::text::{TextColumn, Values};
use super::{columns_read, text_column, PreviousRun};
use crate::clean::read::SOURCE;
use crate::config::{Guards, IdentityConfig, MatchRule, Matching, NameFromEmail};

/// Problems building an index.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("identity state: column {0:?} of length {1}, expected {2} records")]
    ColumnLength(String, usize, usize),
    #[error(
        "identity state: record {0:?} of source {1:?} has no person id in the saved assignment"
    )]
    Unassigned(String, String),
    #[error("identity state: more than {0} distinct sources or persons")]
    TooMany(usize),
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
    guards: Guards,
}

/// A key index: the values of a rule's columns (value ids) -> rows holding them.
type Keyed = foldhash::HashMap<Vec<u32>, Vec<u32>>;

/// The saved identity state in memory, ready for lookups.
pub struct Index {
    rules: Vec<MatchRule>,
    max_key_group: usize,
    /// The matching settings, with the limits left to the data chosen from the known
    /// records (as resolve chooses them from its records).
    matching: Option<Matching>,
    name_from_email: Option<NameFromEmail>,
    /// The guards resolve applies to a record joining a person, limits left to the
    /// data chosen as for `matching`.
    guards: Guards,
    model: Option<Model>,
    /// Known records' values, by column (after names read from emails are filled in).
    values: Values,
    /// Column -> text -> value id, for query values.
    dictionary: HashMap<String, foldhash::HashMap<Box<str>, u32>>,
    /// Per record: its person, an index into `person_ids`.
    person_of: Vec<u32>,
    /// Each person's id, once.
    person_ids: Vec<String>,
    /// Each person's records: `members[member_starts[p]..member_starts[p + 1]]`.
    member_starts: Vec<u32>,
    members: Vec<u32>,
    /// Per record: its source, an index into `sources`.
    source_of: Vec<u16>,
    sources: Vec<String>,
    /// Per deterministic rule, then per blocking rule: key -> rows.
    rule_keys: Vec<Keyed>,
    block_keys: Vec<Keyed>,
    /// Per comparison: the known records' count of each value and records holding one.
    frequencies: Vec<(foldhash::HashMap<Box<str>, u32>, u64)>,
}

impl Index {
    /// `columns`: each column resolution reads, a value per known record (clean, as
    /// the resolver read it); `sources` and `persons`: each record's source and
    /// person id.
    pub fn build(
        config: &IdentityConfig,
        model: Option<Model>,
        columns: HashMap<String, Vec<Option<String>>>,
        sources: Vec<String>,
        persons: Vec<String>,
    ) -> Result<Self, LookupError> {
        let parts = Parts {
            rules: config.rules.clone(),
            max_key_group: config.max_key_group,
            matching: config.matching.clone(),
            name_from_email: config.first_name_from_email.clone(),
            guards: config.guards.clone(),
        };
        Self::from_parts(parts, model, columns, sources, persons)
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
        let sources: Vec<String> = text_column(records, SOURCE, entity)?
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect();
        let keys = text_column(records, key_column, entity)?;
        let mut persons = Vec::with_capacity(sources.len());
        for (source, id) in sources.iter().zip(keys) {
            let key = (source.clone(), id.unwrap_or_default());
            match previous.rows.get(&key) {
                Some(&row) => persons.push(previous.assigned[row as usize].person_id.clone()),
                None => return Err(LookupError::Unassigned(key.1, key.0)),
            }
        }
        let mut columns: HashMap<String, Vec<Option<String>>> = HashMap::new();
        for name in columns_read(config, key_column) {
            if name == SOURCE || name == key_column || columns.contains_key(name) {
                continue;
            }
            columns.insert(name.to_string(), text_column(records, name, entity)?);
        }
        let mut config = config.clone();
        if let (Some(saved), Some(m)) = (&previous.model, config.matching.as_mut()) {
            saved.applied_to(m);
        }
        let model = previous.model.map(|m| m.model);
        Self::build(&config, model, columns, sources, persons)
    }

    fn from_parts(
        mut config: Parts,
        model: Option<Model>,
        columns: HashMap<String, Vec<Option<String>>>,
        sources: Vec<String>,
        persons: Vec<String>,
    ) -> Result<Self, LookupError> {
        let n = persons.len();
        if sources.len() != n {
            return Err(LookupError::ColumnLength(SOURCE.into(), sources.len(), n));
        }
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
        drop(columns);
        if let Some(f) = &config.name_from_email {
            email_names::fill(&mut values, f);
        }
        let (source_of, sources) = intern(sources)?;
        {
            let each: Vec<&str> = source_of
                .iter()
                .map(|&s| sources[s as usize].as_str())
                .collect();
            let chosen = super::choose_limits(
                &mut config.guards,
                config.matching.as_mut(),
                &config.rules,
                &values,
                n,
                &each,
            );
            for said in chosen {
                tracing::debug!(chosen = said, "match index");
            }
        }
        let (person_of, person_ids) = intern(persons)?;
        let (member_starts, members) = super::blocking::by_key(
            person_ids.len(),
            person_of.iter().enumerate().map(|(r, &p)| (p, r as u32)),
        );
        let dictionary: HashMap<String, foldhash::HashMap<Box<str>, u32>> = values
            .iter()
            .map(|(name, c)| {
                let texts = (1..c.id_count() as u32)
                    .map(|id| (Box::<str>::from(c.text(id)), id))
                    .collect();
                (name.clone(), texts)
            })
            .collect();
        // A comparison's `max_holders` keeps its columns' crowded values out of rules
        // in resolve: a value the known records hold that often is crowded once the
        // record joins them.
        let max_holders: HashMap<&str, u32> = config
            .matching
            .iter()
            .flat_map(|m| &m.comparisons)
            .filter_map(|c| Some((c, c.max_holders?)))
            .flat_map(|(c, limit)| c.columns.iter().map(move |col| (col.as_str(), limit)))
            .collect();
        let crowded: HashMap<&str, Vec<bool>> = max_holders
            .iter()
            .filter_map(|(&name, &limit)| {
                let column = values.get(name)?;
                let mut counts = vec![0u32; column.id_count()];
                for &id in column.ids() {
                    counts[id as usize] += 1;
                }
                Some((name, counts.into_iter().map(|c| c >= limit).collect()))
            })
            .collect();
        let keyed = |rules: &[MatchRule], crowded: &HashMap<&str, Vec<bool>>| -> Vec<Keyed> {
            rules
                .iter()
                .map(|rule| {
                    let mut keys = Keyed::default();
                    'rows: for row in 0..n {
                        let mut key = Vec::with_capacity(rule.columns.len());
                        for c in &rule.columns {
                            let id = values.get(c).map(|c| c.ids()[row]);
                            let crowd = crowded.get(c.as_str());
                            match id {
                                Some(id) if id != 0 && !crowd.is_some_and(|x| x[id as usize]) => {
                                    key.push(id)
                                }
                                _ => continue 'rows,
                            }
                        }
                        keys.entry(key).or_default().push(row as u32);
                    }
                    keys
                })
                .collect()
        };
        let rule_keys = keyed(&config.rules, &crowded);
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
                (keyed(&matching.blocking, &HashMap::new()), frequencies)
            }
        };
        drop(crowded);
        Ok(Index {
            rule_keys,
            block_keys,
            rules: config.rules,
            max_key_group: config.max_key_group,
            matching: config.matching,
            name_from_email: config.name_from_email,
            guards: config.guards,
            model,
            values,
            dictionary,
            person_of,
            person_ids,
            member_starts,
            members,
            source_of,
            sources,
            frequencies,
        })
    }

    /// Known records.
    pub fn len(&self) -> usize {
        self.person_of.len()
    }

    /// Each known record's person id (one per record, so repeated).
    pub fn person_ids(&self) -> impl Iterator<Item = &str> {
        self.person_of
            .iter()
            .map(|&p| self.person_ids[p as usize].as_str())
    }

    /// Whether no record is known.
    pub fn is_empty(&self) -> bool {
        self.person_of.is_empty()
    }

    /// Person `p`'s records.
    fn members_of(&self, p: u32) -> &[u32] {
        let p = p as usize;
        &self.members[self.member_starts[p] as usize..self.member_starts[p + 1] as usize]
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

    /// `rows` of the known records and `record` (last) as a few records of their own.
    fn local_values<R: Record + ?Sized>(&self, rows: &[u32], record: &R) -> Values {
        let mut values = Values::new();
        for (name, column) in &self.values {
            values.insert(name.clone(), column.gather(rows, record.value(name)));
        }
        if let Some(f) = &self.name_from_email {
            email_names::fill(&mut values, f);
        }
        values
    }

    /// The matcher over `m` local records, with the saved model and the known
    /// records' term frequencies; none without matching settings and a model.
    fn local_matcher(&self, values: &Values, m: usize) -> Option<Matcher> {
        let (Some(matching), Some(model)) = (&self.matching, &self.model) else {
            return None;
        };
        let frequencies = &self.frequencies;
        Some(Matcher::with_frequencies(
            values,
            m,
            matching,
            model.clone(),
            |c, text| {
                let (counts, present) = &frequencies[c];
                (counts.get(text).copied().unwrap_or(0), *present)
            },
        ))
    }

    /// The records of `persons` and `record` (last) as a few records of their own:
    /// their values, the matcher over them and their keys, built once for both the
    /// scoring and the guards.
    fn local<R: Record + ?Sized>(&self, persons: &[u32], record: &R) -> Local {
        let mut rows: Vec<u32> = Vec::new();
        let mut spans = Vec::with_capacity(persons.len());
        for &p in persons {
            let start = rows.len() as u32;
            rows.extend_from_slice(self.members_of(p));
            spans.push((p, start..rows.len() as u32));
        }
        let m = rows.len() + 1;
        let values = self.local_values(&rows, record);
        let matcher = self.local_matcher(&values, m);
        let keys: Vec<RecordKey> = rows
            .iter()
            .map(|&r| {
                let source = &self.sources[self.source_of[r as usize] as usize];
                (source.clone(), r.to_string())
            })
            .chain(std::iter::once((
                record.value(SOURCE).unwrap_or_default().to_string(),
                String::new(),
            )))
            .collect();
        Local {
            rows,
            spans,
            values,
            matcher,
            keys,
        }
    }

    /// Which of `persons` (with the weight of the record's best link to each, best
    /// first; each one of `local`'s) resolve would put the record with, judged by its
    /// guards against every record of each person: the first one the hard guards and
    /// the evidence guard let it join; none when they refuse them all. Ambiguous, as
    /// in resolve, when another person about as strong (within `ambiguity_margin`) may
    /// not be one with it, or when a weaker person the record may join could then
    /// merge with it (the record ties them together). When they refuse every person a
    /// rule linked the record to (`matched`: the rows the rules reached), ambiguous
    /// between those whose rule-matched records alone the guards would let it join.
    fn pick(&self, local: &Local, persons: &[(u32, f64)], matched: &[u32]) -> Pick {
        // Resolve's guards over the local records and the looked-up one (the last).
        let query = local.rows.len() as u32;
        let guards = GuardSet::new(
            &self.guards,
            &local.values,
            local.rows.len() + 1,
            local.matcher.as_ref(),
            &local.keys,
        );
        // Each person's records, as local rows.
        let local_rows: Vec<Vec<u32>> = persons
            .iter()
            .map(|&(p, _)| local.span(p).collect())
            .collect();
        let joins = |a: &[u32], b: &[u32]| {
            guards.refuse_hard(a, b).is_none() && guards.too_weak(a, b).is_none()
        };
        let Some(first) = local_rows
            .iter()
            .zip(persons)
            .position(|(person, &(_, w))| {
                joins(person, &[query]) && !self.lone_keeps_apart(local, &guards, person, w)
            })
        else {
            return self.split_by_rule(local, &guards, &local_rows, matched);
        };
        // A stronger person the guards keep the record from as a whole, whose record
        // it links to would take it alone: resolve, taking the strongest link first,
        // would pull that record out of its person.
        let split: Vec<usize> = (0..first)
            .filter(|&i| self.would_split(local, &guards, &local_rows[i], persons[i].1))
            .collect();
        if !split.is_empty() {
            return Pick::Ambiguous(split.into_iter().chain([first]).collect());
        }
        let weight = persons[first].1;
        let mut tied = vec![first];
        if let Some(margin) = self.guards.ambiguity_margin {
            tied.extend((0..persons.len()).filter(|&i| {
                let w = persons[i].1;
                i != first
                    && w <= weight
                    && w >= weight - margin
                    && guards
                        .refuse_hard(&local_rows[first], &local_rows[i])
                        .is_some()
            }));
        }
        if tied.len() > 1 {
            return Pick::Ambiguous(tied);
        }
        let mut joined = local_rows[first].clone();
        joined.push(query);
        let merged: Vec<usize> = (first + 1..persons.len())
            .filter(|&i| joins(&local_rows[i], &[query]) && joins(&joined, &local_rows[i]))
            .collect();
        if !merged.is_empty() {
            Pick::Ambiguous(tied.into_iter().chain(merged).collect())
        } else if self.splits_on_joining(
            local,
            &guards,
            &local_rows[first],
            persons[first].1,
            matched,
        ) {
            Pick::Ambiguous(vec![first])
        } else {
            Pick::One(first)
        }
    }

    /// Whether resolve, meeting a rule's link of the record to the rows of `matched`
    /// of `person` (local rows; `w` is infinite for a rule's link) before the scored
    /// links that hold the person together, would let the rest of the person join
    /// them afterwards. The records the link reaches first take the looked-up record; the
    /// rest of the person then has to join that group past the guards (a group of two
    /// is established: the `corroborate` and `min_weight` guards apply). When it may
    /// not, the person splits, and which part keeps the id is not a lookup's to say.
    fn splits_on_joining(
        &self,
        local: &Local,
        guards: &GuardSet,
        person: &[u32],
        w: f64,
        matched: &[u32],
    ) -> bool {
        if person.len() < 2 {
            return false;
        }
        let query = local.rows.len() as u32;
        // Scored links are left alone: measured on held-out records, splitting on
        // them turned more right answers ambiguous than wrong ones right.
        if w.is_finite() {
            return false;
        }
        let core = local.matched(person, matched);
        if core.is_empty() || core.len() == person.len() {
            return false;
        }
        let rest: Vec<u32> = person
            .iter()
            .copied()
            .filter(|i| !core.contains(i))
            .collect();
        let mut group = core;
        group.push(query);
        guards.refuse_hard(&group, &rest).is_some() || guards.too_weak(&group, &rest).is_some()
    }

    /// Whether resolve would keep a person of one record (`person`, local rows) from
    /// the looked-up record it links to with weight `w`, as its ambiguity guard does:
    /// a lone record that matches people who may not be one stays alone. Judged by the
    /// lone record's links to the other local records above the threshold: one about
    /// as strong as `w` (within the margin) to a person who may not be one with the
    /// looked-up record, or, stronger than `w`, one the guards let it join and one
    /// about as strong to a person who may not be one with that (resolve then found
    /// it ambiguous before this link came up).
    fn lone_keeps_apart(&self, local: &Local, guards: &GuardSet, person: &[u32], w: f64) -> bool {
        let ([lone], Some(margin), Some(matcher), Some(model), Some(matching)) = (
            person,
            self.guards.ambiguity_margin,
            local.matcher.as_ref(),
            &self.model,
            &self.matching,
        ) else {
            return false;
        };
        if !w.is_finite() {
            return false;
        }
        let (prior, cut) = (model.prior_weight(), model::weight_of(matching.threshold));
        let query = local.rows.len() as u32;
        // The lone record's links above the threshold: (the other person's rows, weight).
        let mut links: Vec<(Vec<u32>, f64)> = Vec::new();
        for (_, span) in &local.spans {
            if span.contains(lone) {
                continue;
            }
            let best = span
                .clone()
                .map(|i| prior + matcher.evidence(*lone, i))
                .fold(f64::NEG_INFINITY, f64::max);
            if best >= cut {
                links.push((span.clone().collect(), best));
            }
        }
        let about = |a: f64, b: f64| a <= b && a >= b - margin;
        if links
            .iter()
            .any(|(rows, wc)| about(*wc, w) && guards.refuse_hard(rows, &[query]).is_some())
        {
            return true;
        }
        links.iter().any(|(a, wa)| {
            *wa > w
                && guards.refuse_hard(a, person).is_none()
                && guards.too_weak(a, person).is_none()
                && links.iter().any(|(b, wb)| {
                    !std::ptr::eq(a, b) && about(*wb, *wa) && guards.refuse_hard(a, b).is_some()
                })
        })
    }

    /// Whether resolve would split `person` (local rows), which the guards keep from
    /// the looked-up record as a whole, over the record's link of weight `w` to it:
    /// the record it links to best takes the looked-up one alone, and holds on to the
    /// rest of its person by weaker links only, so resolve meets this link first.
    fn would_split(&self, local: &Local, guards: &GuardSet, person: &[u32], w: f64) -> bool {
        let (Some(matcher), Some(model)) = (local.matcher.as_ref(), &self.model) else {
            return false;
        };
        if !w.is_finite() || person.len() < 2 {
            return false;
        }
        let prior = model.prior_weight();
        let query = local.rows.len() as u32;
        let Some(&best) = person.iter().max_by(|&&a, &&b| {
            matcher
                .evidence(query, a)
                .total_cmp(&matcher.evidence(query, b))
        }) else {
            return false;
        };
        if guards.refuse_hard(&[best], &[query]).is_some() {
            return false;
        }
        person
            .iter()
            .filter(|&&o| o != best)
            .all(|&o| prior + matcher.evidence(best, o) < w)
    }

    /// A rule's link that the guards refuse for the whole person, but not for the
    /// records the rule matched: resolve takes rule links first, so it would pull
    /// those records out of their person to the looked-up record, and which person
    /// keeps the id is not for a lookup to say. Ambiguous between the persons (each
    /// one's local rows in `persons`) this would split; new when none (and always
    /// without rule links).
    fn split_by_rule(
        &self,
        local: &Local,
        guards: &GuardSet,
        persons: &[Vec<u32>],
        matched: &[u32],
    ) -> Pick {
        if matched.is_empty() {
            return Pick::New;
        }
        let query = local.rows.len() as u32;
        let split: Vec<usize> = persons
            .iter()
            .enumerate()
            .filter(|(_, person)| {
                let by_rule = local.matched(person, matched);
                by_rule.len() < person.len()
                    && guards.refuse_hard(&by_rule, &[query]).is_none()
                    && guards.too_weak(&by_rule, &[query]).is_none()
            })
            .map(|(i, _)| i)
            .collect();
        if split.is_empty() {
            Pick::New
        } else {
            Pick::Ambiguous(split)
        }
    }

    /// The person `record` (clean values by column) belongs to, and how.
    pub fn lookup<R: Record + ?Sized>(&self, record: &R) -> Answer {
        // Every rule's links at once: rule links are as strong as each other, and
        // resolve takes them all before any scored link, so a record two rules link to
        // two persons ties those persons together.
        let mut matched: Vec<u32> = Vec::new();
        let mut rule_of: Vec<(u32, usize)> = Vec::new();
        for (r, (rule, keys)) in self.rules.iter().zip(&self.rule_keys).enumerate() {
            let rows = self.rows(keys, &rule.columns, record);
            // With the record, a group over the limit links nothing in resolve either.
            if rows.is_empty() || rows.len() >= self.max_key_group {
                continue;
            }
            matched.extend_from_slice(rows);
            for &row in rows {
                let p = self.person_of[row as usize];
                if !rule_of.iter().any(|&(q, _)| q == p) {
                    rule_of.push((p, r));
                }
            }
        }
        if rule_of.is_empty() {
            return self.score(record);
        }
        let mut persons: Vec<u32> = rule_of.iter().map(|&(p, _)| p).collect();
        persons.sort_unstable_by(|&a, &b| self.person_id(a).cmp(self.person_id(b)));
        let rule_name = |p: u32| {
            rule_of
                .iter()
                .find(|&&(q, _)| q == p)
                .map(|&(_, r)| self.rules[r].name.clone())
        };
        // The guards have the last word on a rule's link too: a person they keep the
        // record from is left to scoring.
        let local = self.local(&persons, record);
        let persons: Vec<(u32, f64)> = persons.into_iter().map(|p| (p, f64::INFINITY)).collect();
        let ambiguous = |chosen: Vec<usize>| Answer {
            person_id: None,
            rule: rule_name(persons[chosen[0]].0),
            probability: None,
            new: false,
            ambiguous: true,
            candidates: chosen
                .into_iter()
                .map(|i| Candidate {
                    person_id: self.person_id(persons[i].0).to_string(),
                    probability: None,
                })
                .collect(),
        };
        match self.pick(&local, &persons, &matched) {
            Pick::New => self.score(record),
            Pick::One(i) => Answer {
                person_id: Some(self.person_id(persons[i].0).to_string()),
                rule: rule_name(persons[i].0),
                probability: None,
                new: false,
                ambiguous: false,
                candidates: Vec::new(),
            },
            Pick::Ambiguous(tied) => ambiguous(tied),
        }
    }

    fn person_id(&self, p: u32) -> &str {
        &self.person_ids[p as usize]
    }

    /// The persons the record's scored links reach above the threshold (the weight of
    /// its best link to each, best first), and the local records they were scored
    /// among; none without a model, candidates or a link above the threshold.
    fn scored<R: Record + ?Sized>(&self, record: &R) -> Option<(Local, Vec<(u32, f64)>)> {
        let Some(matching) = &self.matching else {
            return None;
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
            return None;
        }
        // The candidates' persons, all their records and the record (last) as a few
        // records of their own: scored against the candidates, then guarded.
        let mut persons: Vec<u32> = candidates
            .iter()
            .map(|&r| self.person_of[r as usize])
            .collect();
        persons.sort_unstable();
        persons.dedup();
        let local = self.local(&persons, record);
        let (Some(matcher), Some(model)) = (&local.matcher, &self.model) else {
            return None;
        };
        let prior = model.prior_weight();
        let query = local.rows.len() as u32;
        // Per person: the weight of the record's best link to one of its candidate
        // records (only the candidates are compared, as in resolve).
        let mut best: foldhash::HashMap<u32, f64> = Default::default();
        for (p, span) in &local.spans {
            for i in span.clone() {
                if candidates.binary_search(&local.rows[i as usize]).is_err() {
                    continue;
                }
                let w = prior + matcher.evidence(query, i);
                let e = best.entry(*p).or_insert(w);
                *e = e.max(w);
            }
        }
        let cut = model::weight_of(matching.threshold);
        let mut above: Vec<(u32, f64)> = best.into_iter().filter(|&(_, w)| w >= cut).collect();
        above.sort_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then_with(|| self.person_id(a.0).cmp(self.person_id(b.0)))
        });
        if above.is_empty() {
            return None;
        }
        Some((local, above))
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
        let Some((local, above)) = self.scored(record) else {
            return new;
        };
        // Resolve's guards keep the record from some of them: it goes to the best of
        // the others.
        match self.pick(&local, &above, &[]) {
            Pick::New => new,
            Pick::One(i) => Answer {
                person_id: Some(self.person_id(above[i].0).to_string()),
                rule: None,
                probability: Some(model::probability(above[i].1)),
                new: false,
                ambiguous: false,
                candidates: Vec::new(),
            },
            Pick::Ambiguous(tied) => Answer {
                person_id: None,
                rule: None,
                probability: Some(model::probability(above[tied[0]].1)),
                new: false,
                ambiguous: true,
                candidates: tied
                    .iter()
                    .map(|&i| Candidate {
                        person_id: self.person_id(above[i].0).to_string(),
                        probability: Some(model::probability(above[i].1)),
                    })
                    .collect(),
            },
        }
    }
}

/// Some persons' records (local rows in person order) and the looked-up record
/// (local row `rows.len()`), as records of their own.
struct Local {
    /// Each local row's row in the index.
    rows: Vec<u32>,
    /// Each person's local rows.
    spans: Vec<(u32, std::ops::Range<u32>)>,
    values: Values,
    matcher: Option<Matcher>,
    keys: Vec<RecordKey>,
}

impl Local {
    /// Those of `rows` (local rows) whose records are among `matched` (index rows: the
    /// records a rule linked the looked-up record to).
    fn matched(&self, rows: &[u32], matched: &[u32]) -> Vec<u32> {
        rows.iter()
            .copied()
            .filter(|&i| matched.contains(&self.rows[i as usize]))
            .collect()
    }

    fn span(&self, person: u32) -> std::ops::Range<u32> {
        self.spans
            .iter()
            .find(|(p, _)| *p == person)
            .map(|(_, span)| span.clone())
            .unwrap_or(0..0)
    }
}

/// Whom a record joins among some persons, by index.
enum Pick {
    New,
    One(usize),
    Ambiguous(Vec<usize>),
}

/// Each value's position among the distinct values (in order of first sight), and
/// the distinct values.
fn intern<T: TryFrom<usize> + Copy>(
    texts: Vec<String>,
) -> Result<(Vec<T>, Vec<String>), LookupError> {
    let mut index: HashMap<String, T> = HashMap::new();
    let mut distinct = Vec::new();
    let mut of = Vec::with_capacity(texts.len());
    for text in texts {
        let at = match index.get(&text) {
            Some(&at) => at,
            None => {
                let at = T::try_from(distinct.len())
                    .map_err(|_| LookupError::TooMany(distinct.len()))?;
                distinct.push(text.clone());
                index.insert(text, at);
                at
            }
        };
        of.push(at);
    }
    Ok((of, distinct))
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
            guards: Guards {
                max_cluster_size: 50,
                max_distinct: Vec::new(),
                max_per_source: Vec::new(),
                link_only: Vec::new(),
                never_disagree: Vec::new(),
                max_per_source_auto: false,
                min_cluster_weight: None,
                corroborate: Vec::new(),
                ambiguity_margin: None,
            },
            matching: Some(Matching {
                threshold: 0.9,
                threshold_auto: false,
                blocking: vec![MatchRule {
                    name: "last".into(),
                    columns: vec!["last_name".into()],
                }],
                block_limits: vec![100],
                block_limits_auto: vec![false],
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
        let sources = vec!["crm".into(), "crm".into(), "shop".into()];
        let persons = vec!["P1".into(), "P2".into(), "P3".into()];
        Index::from_parts(config(), Some(model()), columns, sources, persons).unwrap()
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
    fn a_record_two_rules_link_to_two_persons_ties_them_and_is_ambiguous() {
        let mut parts = config();
        parts.rules.push(MatchRule {
            name: "name".into(),
            columns: vec!["last_name".into(), "first_name".into()],
        });
        let column = |v: [&str; 2]| {
            v.iter()
                .map(|s| (!s.is_empty()).then(|| s.to_string()))
                .collect::<Vec<_>>()
        };
        let columns = HashMap::from([
            ("email".to_string(), column(["a@x.io", "b@x.io"])),
            ("last_name".to_string(), column(["Smith", "Jones"])),
            ("first_name".to_string(), column(["Ann", "Bob"])),
        ]);
        let index = Index::from_parts(
            parts,
            Some(model()),
            columns,
            vec!["crm".into(), "shop".into()],
            vec!["P1".into(), "P2".into()],
        )
        .unwrap();
        // Only the email rule: P1, as before.
        let one = index.lookup(&record(&[("email", "a@x.io")]));
        assert_eq!(one.person_id.as_deref(), Some("P1"), "{one:?}");
        // The email rule reaches P1 and the name rule P2: resolve would merge them.
        let both = index.lookup(&record(&[
            ("email", "a@x.io"),
            ("last_name", "Jones"),
            ("first_name", "Bob"),
        ]));
        assert!(both.ambiguous && both.person_id.is_none(), "{both:?}");
        let named: Vec<&str> = both
            .candidates
            .iter()
            .map(|c| c.person_id.as_str())
            .collect();
        assert_eq!(named, ["P1", "P2"]);
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
    fn a_person_resolve_guards_keep_the_record_from_is_passed_over() {
        // P3's record is the shop's, and the shop holds one record a person: a second
        // shop record cannot join P3, so it goes to the other Bob Jones.
        let mut parts = config();
        parts.guards.max_per_source = vec![("shop".into(), 1)];
        let column = |v: [&str; 3]| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
        let columns = HashMap::from([
            ("email".to_string(), column(["a@x.io", "b@x.io", "c@x.io"])),
            ("last_name".to_string(), column(["Smith", "Jones", "Jones"])),
            ("first_name".to_string(), column(["Ann", "Bob", "Bob"])),
        ]);
        let sources = vec!["crm".into(), "crm".into(), "shop".into()];
        let persons = vec!["P1".into(), "P2".into(), "P3".into()];
        let index = Index::from_parts(parts, Some(model()), columns, sources, persons).unwrap();
        let bob = [("last_name", "Jones"), ("first_name", "Bob")];
        let a = index.lookup(&record(&[bob[0], bob[1], ("source", "shop")]));
        assert_eq!(a.person_id.as_deref(), Some("P2"), "{a:?}");
        // By its rule too: c@x.io is P3's, whom the guard keeps it from.
        let a = index.lookup(&record(&[
            ("email", "c@x.io"),
            ("last_name", "Smith"),
            ("first_name", "Ann"),
            ("source", "shop"),
        ]));
        assert_eq!(
            (a.person_id.as_deref(), a.rule.as_deref()),
            (Some("P1"), None),
            "{a:?}"
        );
        // A CRM record is not limited: both Bob Joneses still match.
        let a = index.lookup(&record(&[bob[0], bob[1], ("source", "crm")]));
        assert!(a.ambiguous, "{a:?}");
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
        let sources = vec!["crm".into(), "crm".into()];
        let err = Index::from_parts(
            config(),
            None,
            columns,
            sources,
            vec!["P1".into(), "P2".into()],
        );
        assert!(matches!(err, Err(LookupError::ColumnLength(c, 1, 2)) if c == "email"));
    }
}
