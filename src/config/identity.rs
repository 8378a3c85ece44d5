//! `[identity]`: how the records of one entity are resolved into persons:
//! deterministic rules, Fellegi-Sunter matching, guards, survivorship of the golden
//! record, and the household and name-from-email passes. Every column and source named
//! here must exist.

use std::fmt;

use serde::Deserialize;

use super::identity_defaults::Origin;
use super::raw::{RawGuards, RawIdentity, RawLinkOnly, RawMatching, RawOrAuto};
use super::{EntityConfig, SourceConfig, Validator};

/// `[identity]`, validated.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    pub entity: String,
    pub rules: Vec<MatchRule>,
    pub max_key_group: usize,
    pub attributes: Vec<String>,
    pub survivorship: Survivorship,
    pub matching: Option<Matching>,
    pub guards: Guards,
    pub first_name_from_email: Option<NameFromEmail>,
    pub households: Option<Households>,
    /// Each part present (its key under `identity.`) and where it came from: the file,
    /// or the defaults of the entity's column kinds.
    pub origins: Vec<(String, Origin)>,
}

/// A lone record that shares an identifier (a family mailbox, a landline) with one
/// person and holds exactly the name of another person at that person's address
/// joins that other person.
#[derive(Debug, Clone)]
pub struct Households {
    pub identifiers: Vec<String>,
    pub address: Vec<String>,
    pub name: Vec<String>,
}

impl Households {
    /// Every column the pass reads.
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.identifiers
            .iter()
            .chain(&self.address)
            .chain(&self.name)
            .map(String::as_str)
    }
}

/// Where a record without a first name gets one for matching: its email address, when
/// that spells a first name known in the data beside the record's last name.
#[derive(Debug, Clone)]
pub struct NameFromEmail {
    pub first_name: String,
    pub last_name: String,
    pub email: String,
}

impl NameFromEmail {
    /// The columns filling reads: first name, last name, email.
    pub fn columns(&self) -> [&str; 3] {
        [&self.first_name, &self.last_name, &self.email]
    }
}

/// Fellegi-Sunter matching: blocking rules give candidate pairs, comparisons score them.
#[derive(Debug, Clone)]
pub struct Matching {
    /// With `threshold_auto`, the threshold used when the run's scores show no clear
    /// valley ([`DEFAULT_THRESHOLD`]) until the run chooses one.
    pub threshold: f64,
    /// `threshold = "auto"`: chosen from the run's scored pairs.
    pub threshold_auto: bool,
    pub blocking: Vec<MatchRule>,
    /// Per blocking rule, the largest block that still gives pairs.
    pub block_limits: Vec<usize>,
    /// Per blocking rule, `max_block = "auto"`: chosen from the run's data (the limit in
    /// `block_limits` is then a placeholder until chosen).
    pub block_limits_auto: Vec<bool>,
    pub comparisons: Vec<Comparison>,
    pub em_iterations: usize,
    pub u_sample_pairs: usize,
    pub prior: Option<f64>,
    pub rule_recall: f64,
    /// Indices of the blocking rules that train m.
    pub train_on: Vec<usize>,
}

/// The threshold of `threshold = "auto"` when the run's scores show no clear valley
/// between non-matches and matches: below an even chance, as the guards turn away most
/// wrong edges a low threshold lets in.
pub const DEFAULT_THRESHOLD: f64 = 0.3;

/// `max_block` when neither the file nor the defaults give one.
pub const DEFAULT_MAX_BLOCK: usize = 500;

#[derive(Debug, Clone)]
pub struct Comparison {
    pub name: String,
    pub columns: Vec<String>,
    /// Most alike first; a pair that reaches none is in the implicit "else" level.
    pub levels: Vec<Level>,
    pub term_frequency: bool,
    pub max_holders: Option<u32>,
    /// `max_holders = "auto"`: chosen from the run's data at resolve time.
    pub max_holders_auto: bool,
    pub m: Option<Vec<f64>>,
    pub u: Option<Vec<f64>>,
}

/// One level of a comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Level {
    Exact,
    /// First names one may use for the other (a nickname, or one formal name behind
    /// both), from the nickname table, reading a rare spelling one slip from a name the
    /// table knows as that name.
    Nickname,
    JaroWinkler(f64),
    Levenshtein(usize),
    /// One typing slip apart: a character added, dropped or changed, or two
    /// neighbouring characters swapped (a swap is two Levenshtein edits).
    Slip,
    /// Both values are dates at most this many days apart.
    Days(i64),
    /// Both values are numbers at most this far apart.
    Abs(f64),
}

impl std::str::FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let words: Vec<&str> = s.split_whitespace().collect();
        let bad = || {
            format!(
                "unknown level {s:?}; expected \"exact\", \"nickname\", \"jaro_winkler >= 0.9\", \"levenshtein <= 2\", \"one slip\", \"days <= 31\" or \"abs <= 5\""
            )
        };
        match words.as_slice() {
            ["exact"] => Ok(Level::Exact),
            ["nickname"] => Ok(Level::Nickname),
            ["jaro_winkler", ">=", x] => match x.parse::<f64>() {
                Ok(t) if (0.0..=1.0).contains(&t) => Ok(Level::JaroWinkler(t)),
                _ => Err(format!("{s:?}: the similarity must be between 0 and 1")),
            },
            ["levenshtein", "<=", x] => x.parse().map(Level::Levenshtein).map_err(|_| bad()),
            ["one", "slip"] => Ok(Level::Slip),
            ["days", "<=", x] => x.parse().map(Level::Days).map_err(|_| bad()),
            ["abs", "<=", x] => x.parse().map(Level::Abs).map_err(|_| bad()),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Level::Exact => write!(f, "exact"),
            Level::Nickname => write!(f, "nickname"),
            Level::JaroWinkler(t) => write!(f, "jaro_winkler >= {t}"),
            Level::Levenshtein(k) => write!(f, "levenshtein <= {k}"),
            Level::Slip => write!(f, "one slip"),
            Level::Days(d) => write!(f, "days <= {d}"),
            Level::Abs(x) => write!(f, "abs <= {x}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Guards {
    pub max_cluster_size: usize,
    pub max_distinct: Vec<(String, usize)>,
    pub max_per_source: Vec<(String, usize)>,
    /// The sources `link_only` names (each also in `max_per_source` with a limit of 1
    /// unless the file gives its own): their refusals are reported as `link_only`.
    pub link_only: Vec<String>,
    pub never_disagree: Vec<String>,
    /// `max_per_source` left to the data (the default when neither it nor `link_only`
    /// is written): a source none of whose records share a deterministic rule's key
    /// holds one record a person, and gets a limit of 1 at resolve time.
    pub max_per_source_auto: bool,
    pub min_cluster_weight: Option<f64>,
    pub corroborate: Vec<String>,
    pub ambiguity_margin: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct MatchRule {
    pub name: String,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Survivorship {
    pub default: Strategy,
    pub order_by: Option<String>,
    pub source_priority: Vec<String>,
    pub columns: Vec<(String, Strategy)>,
}

impl Survivorship {
    pub fn strategy_for(&self, column: &str) -> Strategy {
        self.columns
            .iter()
            .find(|(c, _)| c == column)
            .map_or(self.default, |(_, s)| *s)
    }
}

/// How a golden record picks one value among a person's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    MostFrequent,
    MostRecent,
    SourcePriority,
    Longest,
}

/// The golden record's columns when `attributes` is not given: the profile, not the
/// resolver's scratch work. Left out: the key, the matching forms (`match_column`s
/// such as an email key or a formal first name) and a full name split into first and
/// last name columns (those two carry it).
pub fn default_attributes(entity: &EntityConfig) -> Vec<String> {
    let helpers: Vec<&str> = entity
        .columns
        .iter()
        .flat_map(|c| {
            c.match_column
                .as_deref()
                .into_iter()
                .chain(c.split.is_some().then_some(c.name.as_str()))
        })
        .collect();
    entity
        .columns
        .iter()
        .filter(|c| c.name != entity.key && !helpers.contains(&c.name.as_str()))
        .map(|c| c.name.clone())
        .collect()
}

/// A fuzzy comparison on a first name's formal form (the `match_column` of a
/// `person_name` column) also reads the name as written: the formal form settles
/// exact and nickname agreement ("Jerry" is "Gerald"), the written form catches a typo
/// the formal mapping would hide ("Jerr" is one slip from "Jerry", nothing like
/// "Gerald"). Any pair of the two columns' values may reach a level.
fn compare_names_as_written(comparisons: &mut [Comparison], entity: &EntityConfig) {
    for c in comparisons {
        let fuzzy = c.levels.iter().any(|l| {
            matches!(
                l,
                Level::JaroWinkler(_) | Level::Levenshtein(_) | Level::Slip
            )
        });
        if !fuzzy {
            continue;
        }
        let written: Vec<String> = c
            .columns
            .iter()
            .filter_map(|col| {
                entity.columns.iter().find(|r| {
                    r.kind == super::ColumnKind::PersonName
                        && r.match_column.as_deref() == Some(col.as_str())
                })
            })
            .map(|r| r.name.clone())
            .filter(|w| !c.columns.contains(w))
            .collect();
        for w in written {
            if !c.columns.contains(&w) {
                c.columns.push(w);
            }
        }
    }
}

impl Validator<'_> {
    pub(super) fn identity(
        &mut self,
        mut raw: RawIdentity,
        entities: &[EntityConfig],
        sources: &[SourceConfig],
    ) -> Option<IdentityConfig> {
        let Some(entity) = entities.iter().find(|e| e.name == raw.entity) else {
            self.problem(
                "identity.entity",
                format!("unknown entity {:?}", raw.entity),
            );
            return None;
        };
        let has = |c: &str| entity.column(c).is_some();
        let origins = super::identity_defaults::fill(&mut raw, entity);
        let max_per_source_auto = raw.defaults.unwrap_or(true)
            && raw.link_only.is_none()
            && raw
                .guards
                .as_ref()
                .is_none_or(|g| g.max_per_source.is_none());
        let raw_rules = raw.rules.take().unwrap_or_default();
        if raw_rules.is_empty() && raw.matching.is_none() {
            self.problem(
                "identity.rules",
                "at least one rule (or an [identity.matching] section) is needed; the entity's column kinds gave no default (no email, phone or first name)",
            );
        }
        for (i, rule) in raw_rules.iter().enumerate() {
            if rule.columns.is_empty() {
                self.problem(format!("identity.rules[{i}].match"), "empty");
            }
            let key = format!("identity.rules[{i}].match");
            self.columns_exist(&key, &rule.columns, &has, &entity.name);
        }
        let attributes = raw.attributes.unwrap_or_else(|| default_attributes(entity));
        self.columns_exist("identity.attributes", &attributes, &has, &entity.name);
        let s = raw.survivorship;
        let survivorship = match s {
            None => Survivorship {
                default: Strategy::MostFrequent,
                order_by: None,
                source_priority: Vec::new(),
                columns: Vec::new(),
            },
            Some(s) => {
                if let Some(o) = s.order_by.as_deref().filter(|o| !has(o)) {
                    self.problem(
                        "identity.survivorship.order_by",
                        format!("entity {:?} has no column {o:?}", entity.name),
                    );
                }
                for p in &s.source_priority {
                    if !sources.iter().any(|src| &src.name == p) {
                        self.problem(
                            "identity.survivorship.source_priority",
                            format!("unknown source {p:?}"),
                        );
                    }
                }
                for c in s.columns.keys().filter(|c| !attributes.contains(c)) {
                    self.problem(
                        format!("identity.survivorship.columns.{c}"),
                        "not an attribute of the golden record",
                    );
                }
                Survivorship {
                    default: s.default.unwrap_or(Strategy::MostFrequent),
                    order_by: s.order_by,
                    source_priority: s.source_priority,
                    columns: s.columns.into_iter().collect(),
                }
            }
        };
        let mut matching = raw.matching.map(|m| self.matching(m, &has, &entity.name));
        if let Some(m) = &mut matching {
            compare_names_as_written(&mut m.comparisons, entity);
        }
        let is_source = |name: &str| {
            sources
                .iter()
                .any(|s| s.name == name && s.entity == entity.name)
        };
        let mut guards = self.guards(
            raw.guards,
            &has,
            &is_source,
            matching.as_ref(),
            &entity.name,
        );
        guards.max_per_source_auto = max_per_source_auto;
        // Link-only sources hold one record a person: at most one per person.
        let link_only: Vec<String> = match raw.link_only {
            None | Some(RawLinkOnly::All(false)) => Vec::new(),
            Some(RawLinkOnly::All(true)) => sources
                .iter()
                .filter(|s| s.entity == entity.name)
                .map(|s| s.name.clone())
                .collect(),
            Some(RawLinkOnly::Sources(names)) => {
                for name in names.iter().filter(|n| !is_source(n)) {
                    self.problem(
                        "identity.link_only",
                        format!("no source of entity {:?} is called {name:?}", entity.name),
                    );
                }
                names
            }
        };
        for source in link_only {
            if !guards.max_per_source.iter().any(|(s, _)| *s == source) {
                guards.max_per_source.push((source.clone(), 1));
                guards.link_only.push(source);
            }
        }
        let first_name_from_email = raw.first_name_from_email.map(|f| {
            for (field, column) in [
                ("first_name", &f.first_name),
                ("last_name", &f.last_name),
                ("email", &f.email),
            ] {
                let key = format!("identity.first_name_from_email.{field}");
                self.columns_exist(&key, [column], &has, &entity.name);
            }
            NameFromEmail {
                first_name: f.first_name,
                last_name: f.last_name,
                email: f.email,
            }
        });
        let households = raw.households.map(|h| {
            if h.identifiers.is_empty() {
                self.problem("identity.households.identifiers", "at least one column");
            }
            for (what, list) in [("address", &h.address), ("name", &h.name)] {
                // Their value ids are packed in one 128-bit key.
                if list.is_empty() || list.len() > 4 {
                    self.problem(format!("identity.households.{what}"), "one to four columns");
                }
            }
            for (field, columns) in [
                ("identifiers", &h.identifiers),
                ("address", &h.address),
                ("name", &h.name),
            ] {
                let key = format!("identity.households.{field}");
                self.columns_exist(&key, columns, &has, &entity.name);
            }
            Households {
                identifiers: h.identifiers,
                address: h.address,
                name: h.name,
            }
        });
        Some(IdentityConfig {
            entity: raw.entity,
            origins,
            rules: raw_rules
                .into_iter()
                .map(|r| MatchRule {
                    name: r.name,
                    columns: r.columns,
                })
                .collect(),
            max_key_group: raw.max_key_group.unwrap_or(20),
            attributes,
            survivorship,
            matching,
            guards,
            first_name_from_email,
            households,
        })
    }

    /// A setting's word must be `"auto"`; `value` says what else it may be.
    fn auto_word(&mut self, key: &str, word: &str, value: &str) {
        if word != "auto" {
            self.problem(key, format!("{word:?}: {value}, or \"auto\""));
        }
    }

    fn matching(&mut self, raw: RawMatching, has: &dyn Fn(&str) -> bool, entity: &str) -> Matching {
        let blocking = raw.blocking.unwrap_or_default();
        let raw_comparisons = raw.comparisons.unwrap_or_default();
        let (threshold, threshold_auto) = match &raw.threshold {
            None => {
                self.problem("identity.matching.threshold", "missing");
                (f64::NAN, false)
            }
            Some(RawOrAuto::Value(t)) => {
                if !(*t > 0.0 && *t < 1.0) {
                    self.problem(
                        "identity.matching.threshold",
                        "a match probability strictly between 0 and 1, or \"auto\"",
                    );
                }
                (*t, false)
            }
            Some(RawOrAuto::Auto(word)) => {
                self.auto_word("identity.matching.threshold", word, "a match probability");
                (DEFAULT_THRESHOLD, true)
            }
        };
        let mut block_limit = |key: String, raw: Option<&RawOrAuto<usize>>| match raw {
            None => None,
            Some(RawOrAuto::Value(0)) => {
                self.problem(key, "a number of records above 0, or \"auto\"");
                None
            }
            Some(RawOrAuto::Value(n)) => Some((*n, false)),
            Some(RawOrAuto::Auto(word)) => {
                self.auto_word(&key, word, "a number of records");
                Some((DEFAULT_MAX_BLOCK, true))
            }
        };
        let common_limit =
            block_limit("identity.matching.max_block".into(), raw.max_block.as_ref());
        let limits: Vec<(usize, bool)> = blocking
            .iter()
            .enumerate()
            .map(|(i, b)| {
                block_limit(
                    format!("identity.matching.blocking[{i}].max_block"),
                    b.max_block.as_ref(),
                )
                .or(common_limit)
                .unwrap_or((DEFAULT_MAX_BLOCK, false))
            })
            .collect();
        if let Some(p) = raw.prior.filter(|p| !(*p > 0.0 && *p < 1.0)) {
            self.problem(
                "identity.matching.prior",
                format!("{p} is not a probability strictly between 0 and 1"),
            );
        }
        if blocking.is_empty() {
            self.problem(
                "identity.matching.blocking",
                "at least one blocking rule is needed",
            );
        }
        for (i, b) in blocking.iter().enumerate() {
            if b.on.is_empty() {
                self.problem(format!("identity.matching.blocking[{i}].on"), "empty");
            }
            let key = format!("identity.matching.blocking[{i}].on");
            self.columns_exist(&key, &b.on, has, entity);
        }
        if raw_comparisons.is_empty() {
            self.problem(
                "identity.matching.comparisons",
                "at least one comparison is needed",
            );
        }
        let mut comparisons = Vec::new();
        for (i, c) in raw_comparisons.into_iter().enumerate() {
            let key = format!("identity.matching.comparisons[{i}]");
            if c.columns.is_empty() {
                self.problem(format!("{key}.columns"), "empty");
            }
            self.columns_exist(&format!("{key}.columns"), &c.columns, has, entity);
            let mut levels = Vec::new();
            for l in &c.levels {
                match l.parse::<Level>() {
                    Ok(level) => levels.push(level),
                    Err(m) => self.problem(format!("{key}.levels"), m),
                }
            }
            if c.levels.is_empty() {
                self.problem(format!("{key}.levels"), "at least one level is needed");
            }
            for (name, probs) in [("m", &c.m), ("u", &c.u)] {
                let Some(probs) = probs else { continue };
                if probs.len() != c.levels.len() + 1 {
                    self.problem(
                        format!("{key}.{name}"),
                        format!(
                            "{} values given; one per level plus one for \"else\" is {}",
                            probs.len(),
                            c.levels.len() + 1
                        ),
                    );
                } else if probs.iter().any(|p| !(*p > 0.0 && *p <= 1.0)) {
                    self.problem(format!("{key}.{name}"), "probabilities in (0, 1]");
                }
            }
            if let Some(RawOrAuto::Auto(word)) = &c.max_holders {
                self.auto_word(&format!("{key}.max_holders"), word, "a count of records");
            }
            comparisons.push(Comparison {
                name: c
                    .name
                    .unwrap_or_else(|| c.columns.first().cloned().unwrap_or_default()),
                columns: c.columns,
                levels,
                term_frequency: c.term_frequency,
                max_holders: match &c.max_holders {
                    Some(RawOrAuto::Value(n)) => Some(*n),
                    _ => None,
                },
                max_holders_auto: matches!(&c.max_holders, Some(RawOrAuto::Auto(_))),
                m: c.m,
                u: c.u,
            });
        }
        let train_on = match &raw.train_on {
            None => (0..blocking.len()).collect(),
            Some(names) => names
                .iter()
                .filter_map(|name| {
                    let found = blocking.iter().position(|b| &b.name == name);
                    if found.is_none() {
                        self.problem(
                            "identity.matching.train_on",
                            format!("no blocking rule is called {name:?}"),
                        );
                    }
                    found
                })
                .collect(),
        };
        let rule_recall = raw.rule_recall.unwrap_or(0.7);
        if !(rule_recall > 0.0 && rule_recall <= 1.0) {
            self.problem("identity.matching.rule_recall", "a share in (0, 1]");
        }
        Matching {
            threshold,
            threshold_auto,
            rule_recall,
            train_on,
            block_limits: limits.iter().map(|l| l.0).collect(),
            block_limits_auto: limits.iter().map(|l| l.1).collect(),
            blocking: blocking
                .into_iter()
                .map(|b| MatchRule {
                    name: b.name,
                    columns: b.on,
                })
                .collect(),
            comparisons,
            em_iterations: raw.em_iterations.unwrap_or(50),
            u_sample_pairs: raw.u_sample_pairs.unwrap_or(1_000_000),
            prior: raw.prior,
        }
    }

    /// A problem under `key` for each of `columns` the entity lacks.
    fn columns_exist<'c>(
        &mut self,
        key: &str,
        columns: impl IntoIterator<Item = &'c String>,
        has: &dyn Fn(&str) -> bool,
        entity: &str,
    ) {
        for c in columns.into_iter().filter(|c| !has(c)) {
            self.problem(key, format!("entity {entity:?} has no column {c:?}"));
        }
    }

    fn guards(
        &mut self,
        raw: Option<RawGuards>,
        has: &dyn Fn(&str) -> bool,
        is_source: &dyn Fn(&str) -> bool,
        matching: Option<&Matching>,
        entity: &str,
    ) -> Guards {
        let raw = raw.unwrap_or_default();
        let max_distinct = raw.max_distinct.unwrap_or_default();
        let max_per_source = raw.max_per_source.unwrap_or_default();
        let never_disagree = raw.never_disagree.unwrap_or_default();
        let corroborate = raw.corroborate.unwrap_or_default();
        for c in max_distinct.keys() {
            let key = format!("identity.guards.max_distinct.{c}");
            self.columns_exist(&key, [c], has, entity);
        }
        for (source, limit) in &max_per_source {
            if !is_source(source) {
                self.problem(
                    format!("identity.guards.max_per_source.{source}"),
                    format!("no source of entity {entity:?} is called {source:?}"),
                );
            }
            if *limit == 0 {
                self.problem(
                    format!("identity.guards.max_per_source.{source}"),
                    "at least 1",
                );
            }
        }
        let is_comparison =
            |n: &str| matching.is_some_and(|m| m.comparisons.iter().any(|c| c.name == n));
        for c in never_disagree
            .iter()
            .filter(|c| !is_comparison(c) && !has(c))
        {
            self.problem(
                "identity.guards.never_disagree",
                format!("{c:?} is neither a comparison nor a column of entity {entity:?}"),
            );
        }
        for c in corroborate.iter().filter(|c| !is_comparison(c)) {
            self.problem(
                "identity.guards.corroborate",
                format!("{c:?} is not a comparison of [identity.matching]"),
            );
        }
        if raw.min_cluster_weight.is_some() && matching.is_none() {
            self.problem(
                "identity.guards.min_cluster_weight",
                "needs [identity.matching] to weigh pairs",
            );
        }
        let max_cluster_size = raw.max_cluster_size.unwrap_or(50);
        if max_cluster_size < 2 {
            self.problem("identity.guards.max_cluster_size", "at least 2");
        }
        Guards {
            max_cluster_size,
            max_distinct: max_distinct.into_iter().collect(),
            max_per_source: max_per_source.into_iter().collect(),
            link_only: Vec::new(),
            never_disagree,
            max_per_source_auto: false,
            min_cluster_weight: raw.min_cluster_weight,
            corroborate,
            ambiguity_margin: raw.ambiguity_margin,
        }
    }
}
