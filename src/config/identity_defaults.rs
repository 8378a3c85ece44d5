//! Defaults of `[identity]` from the entity's column kinds: what a resolver needs
//! (deterministic rules, blocking rules, comparisons with levels and term
//! frequencies, guards against households and namesakes, the households pass, first
//! names read from mailboxes), filled into every part the pipeline file leaves out.
//! A part the file writes is kept as written; the others come from the kinds. Each
//! part's origin is kept so that `cdp validate --plan` can say where it came from.
//!
//! Roles are read from kinds: `email`, `phone`, `street`, `postcode` by kind; the
//! first and last name from a `full_name` column's `first` and `last`, else from
//! `person_name` columns named like a given or family name; the birth date from a
//! `date` column named like one (or the only date column). Matching reads a column's
//! `match_column` where it has one.

use indexmap::IndexMap;

use super::identity::DEFAULT_MAX_BLOCK;
use super::raw::{
    RawBlocking, RawComparison, RawGuards, RawIdentity, RawMatchRule, RawMatching, RawOrAuto,
};
use super::{ColumnKind, EntityConfig};

/// Where one part of the effective `[identity]` came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Written in the pipeline file.
    File,
    /// Filled from the entity's column kinds.
    Kinds,
}

impl Origin {
    pub fn describe(self) -> &'static str {
        match self {
            Origin::File => "from your file",
            Origin::Kinds => "default from the column kinds",
        }
    }
}

/// The entity's columns by the part they play in matching (matching forms where a
/// column has one).
#[derive(Debug, Default, Clone)]
pub struct Roles {
    pub email: Option<String>,
    pub phones: Vec<String>,
    /// The first name as matching reads it (its formal form when it has one).
    pub first: Option<String>,
    /// Whether `first` is a matching form (a `match_column`) rather than the name itself.
    pub first_is_helper: bool,
    pub last: Option<String>,
    pub birth_date: Option<String>,
    pub street: Option<String>,
    pub postcode: Option<String>,
}

fn named_like(name: &str, words: &[&str]) -> bool {
    let name = name.to_lowercase();
    words.iter().any(|w| name.contains(w))
}

/// The roles of an entity's columns, from their kinds (and names where a kind alone
/// cannot tell, such as a given name from a family name).
pub fn roles(entity: &EntityConfig) -> Roles {
    let cleaned = || entity.columns.iter().filter(|c| !c.derived);
    let matched = |c: &super::ColumnRule| c.match_column.clone().unwrap_or_else(|| c.name.clone());
    let of_kind = |k: ColumnKind| cleaned().filter(move |c| c.kind == k);
    let mut roles = Roles {
        email: of_kind(ColumnKind::Email).next().map(matched),
        phones: of_kind(ColumnKind::Phone).map(matched).collect(),
        street: of_kind(ColumnKind::Street).next().map(|c| c.name.clone()),
        postcode: of_kind(ColumnKind::Postcode).next().map(|c| c.name.clone()),
        ..Roles::default()
    };
    // A person's own number first: a mobile before a home or work landline, which a
    // household or an office shares.
    roles.phones.sort_by_key(|p| {
        let rank = if named_like(p, &["home", "work", "office", "land", "fax"]) {
            2
        } else if p == "phone" || named_like(p, &["mobile", "cell"]) {
            0
        } else {
            1
        };
        (rank, p.clone())
    });
    let names: Vec<&super::ColumnRule> = entity
        .columns
        .iter()
        .filter(|c| c.kind == ColumnKind::PersonName)
        .collect();
    let split = cleaned().find_map(|c| c.split.clone());
    let (first, last) = match split {
        Some((first, last)) => (
            names.iter().find(|c| c.name == first).copied(),
            names.iter().find(|c| c.name == last).copied(),
        ),
        None => (
            names
                .iter()
                .find(|c| named_like(&c.name, &["first", "given", "fore", "fname"]))
                .copied(),
            names
                .iter()
                .find(|c| named_like(&c.name, &["last", "family", "sur", "lname"]))
                .copied(),
        ),
    };
    if let Some(f) = first {
        roles.first = Some(matched(f));
        roles.first_is_helper = f.match_column.is_some();
    }
    roles.last = last.map(|c| c.name.clone());
    let dates: Vec<&str> = of_kind(ColumnKind::Date).map(|c| c.name.as_str()).collect();
    roles.birth_date = dates
        .iter()
        .find(|d| named_like(d, &["birth", "dob", "born"]))
        .or(match dates.as_slice() {
            [only] => Some(only),
            _ => None,
        })
        .map(|d| d.to_string());
    roles
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn comparison(name: &str, columns: Vec<String>, levels: &[&str], tf: bool) -> RawComparison {
    RawComparison {
        name: Some(name.to_string()),
        columns,
        levels: strings(levels),
        term_frequency: tf,
        max_holders: None,
        m: None,
        u: None,
    }
}

/// Fills the parts of `raw` the file leaves out from `entity`'s column kinds; returns
/// each part present afterwards (by its key under `identity.`) with its origin.
pub fn fill(raw: &mut RawIdentity, entity: &EntityConfig) -> Vec<(String, Origin)> {
    let mut origins: Vec<(String, Origin)> = Vec::new();
    let defaults = raw.defaults.unwrap_or(true);
    let r = roles(entity);
    let mut note = |key: &str, was_written: bool, present: bool| {
        if was_written {
            origins.push((key.to_string(), Origin::File));
        } else if present {
            origins.push((key.to_string(), Origin::Kinds));
        }
    };

    // Deterministic rules: an identifier with the first name (a family shares a
    // mailbox or a landline, rarely with one first name).
    let written = raw.rules.is_some();
    if !written && defaults {
        let mut rules = Vec::new();
        if let Some(first) = &r.first {
            if let Some(email) = &r.email {
                rules.push(RawMatchRule {
                    name: "email_name".into(),
                    columns: vec![email.clone(), first.clone()],
                });
            }
            if let Some(phone) = r.phones.first() {
                rules.push(RawMatchRule {
                    name: "phone_name".into(),
                    columns: vec![phone.clone(), first.clone()],
                });
            }
        }
        raw.rules = (!rules.is_empty()).then_some(rules);
    }
    note("rules", written, raw.rules.is_some());

    // First names read from mailboxes, into the matching form only.
    let written = raw.first_name_from_email.is_some();
    if !written && defaults && r.first_is_helper {
        if let (Some(first), Some(last), Some(email)) = (&r.first, &r.last, &r.email) {
            raw.first_name_from_email = Some(super::raw::RawNameFromEmail {
                first_name: first.clone(),
                last_name: last.clone(),
                email: email.clone(),
            });
        }
    }
    note(
        "first_name_from_email",
        written,
        raw.first_name_from_email.is_some(),
    );

    // Matching: each key the file leaves out.
    let matching_written = raw.matching.is_some();
    if defaults {
        let m = raw.matching.get_or_insert_with(RawMatching::default);
        let blocking_written = m.blocking.is_some();
        let mut trainers: Vec<&str> = Vec::new();
        if !blocking_written {
            let mut blocking = Vec::new();
            let mut rule = |name: &str, on: &[&Option<String>]| {
                if on.iter().all(|c| c.is_some()) {
                    blocking.push(RawBlocking {
                        name: name.into(),
                        on: on.iter().filter_map(|c| (*c).clone()).collect(),
                        max_block: None,
                    });
                    true
                } else {
                    false
                }
            };
            let phone = r.phones.first().cloned();
            // Person-level keys train m; household-level ones (surname and street,
            // a shared postcode) would teach EM that relatives match.
            if rule("email", &[&r.email]) {
                trainers.push("email");
            }
            rule("phone", &[&phone]);
            if rule("first_dob", &[&r.first, &r.birth_date]) {
                trainers.push("first_dob");
            }
            if rule("last_dob", &[&r.last, &r.birth_date]) {
                trainers.push("last_dob");
            }
            rule("dob_postcode", &[&r.birth_date, &r.postcode]);
            rule("first_postcode", &[&r.first, &r.postcode]);
            rule("first_last", &[&r.first, &r.last]);
            rule("last_street", &[&r.last, &r.street]);
            m.blocking = (!blocking.is_empty()).then_some(blocking);
        }
        let comparisons_written = m.comparisons.is_some();
        if !comparisons_written {
            let mut comparisons = Vec::new();
            if let Some(first) = &r.first {
                comparisons.push(comparison(
                    "first_name",
                    vec![first.clone()],
                    &["exact", "nickname", "one slip", "jaro_winkler >= 0.88"],
                    true,
                ));
            }
            if let Some(last) = &r.last {
                comparisons.push(comparison(
                    "last_name",
                    vec![last.clone()],
                    &["exact", "jaro_winkler >= 0.92", "jaro_winkler >= 0.8"],
                    true,
                ));
            }
            if let Some(dob) = &r.birth_date {
                comparisons.push(comparison(
                    "birth_date",
                    vec![dob.clone()],
                    // A slip of one digit ("1987" typed "1997", or two swapped) is a
                    // near agreement, not a different birth date.
                    &["exact", "one slip", "days <= 31", "days <= 366"],
                    false,
                ));
            }
            if let Some(email) = &r.email {
                let mut c = comparison("email", vec![email.clone()], &["exact", "one slip"], true);
                c.max_holders = Some(RawOrAuto::auto());
                comparisons.push(c);
            }
            if !r.phones.is_empty() {
                let mut c = comparison("phone", r.phones.clone(), &["exact"], true);
                c.max_holders = Some(RawOrAuto::auto());
                comparisons.push(c);
            }
            if let Some(street) = &r.street {
                comparisons.push(comparison(
                    "street",
                    vec![street.clone()],
                    &["exact", "jaro_winkler >= 0.9"],
                    false,
                ));
            }
            if let Some(postcode) = &r.postcode {
                comparisons.push(comparison(
                    "postcode",
                    vec![postcode.clone()],
                    &["exact"],
                    true,
                ));
            }
            m.comparisons = (!comparisons.is_empty()).then_some(comparisons);
        }
        if m.blocking.is_none() || m.comparisons.is_none() {
            if !matching_written {
                raw.matching = None;
            }
        } else {
            let train_written = m.train_on.is_some();
            if !train_written && !blocking_written && !trainers.is_empty() {
                m.train_on = Some(strings(&trainers));
            }
            note("matching.train_on", train_written, m.train_on.is_some());
            let threshold_written = m.threshold.is_some();
            if !threshold_written {
                m.threshold = Some(RawOrAuto::auto());
            }
            note("matching.threshold", threshold_written, true);
            // With the default blocking rules only: a file's own rules keep their limit.
            let max_block_written = m.max_block.is_some();
            if !max_block_written && !blocking_written {
                m.max_block = Some(RawOrAuto::auto());
            }
            note(
                "matching.max_block",
                max_block_written,
                m.max_block.is_some(),
            );
            note("matching.blocking", blocking_written, true);
            note("matching.comparisons", comparisons_written, true);
        }
    }
    if !defaults && matching_written {
        for key in [
            "matching.threshold",
            "matching.blocking",
            "matching.comparisons",
        ] {
            note(key, true, true);
        }
    }

    // Guards against households and namesakes.
    let comparison_names: Vec<String> = raw
        .matching
        .as_ref()
        .and_then(|m| m.comparisons.as_ref())
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.name.clone().or_else(|| c.columns.first().cloned()))
                .collect()
        })
        .unwrap_or_default();
    let has_comparison = |n: &str| comparison_names.iter().any(|c| c == n);
    let guards_written = raw.guards.is_some();
    if defaults || guards_written {
        let g = raw.guards.get_or_insert_with(RawGuards::default);
        let written = g.max_distinct.is_some();
        if !written && defaults {
            if let Some(email) = &r.email {
                g.max_distinct = Some(IndexMap::from([(email.clone(), 4)]));
            }
        }
        note("guards.max_distinct", written, g.max_distinct.is_some());
        let written = g.never_disagree.is_some();
        if !written && defaults {
            let never: Vec<String> = ["first_name", "birth_date"]
                .into_iter()
                .filter(|c| has_comparison(c))
                .map(String::from)
                .collect();
            g.never_disagree = (!never.is_empty()).then_some(never);
        }
        note("guards.never_disagree", written, g.never_disagree.is_some());
        let written = g.corroborate.is_some();
        if !written && defaults {
            let corroborate: Vec<String> = ["birth_date", "email", "phone", "street", "postcode"]
                .into_iter()
                .filter(|c| has_comparison(c))
                .map(String::from)
                .collect();
            g.corroborate = (!corroborate.is_empty()).then_some(corroborate);
        }
        note("guards.corroborate", written, g.corroborate.is_some());
        let written = g.ambiguity_margin.is_some();
        if !written && defaults && !comparison_names.is_empty() {
            g.ambiguity_margin = Some(0.0);
        }
        note(
            "guards.ambiguity_margin",
            written,
            g.ambiguity_margin.is_some(),
        );
        note("guards.max_per_source", g.max_per_source.is_some(), false);
        note(
            "guards.max_cluster_size",
            g.max_cluster_size.is_some(),
            false,
        );
        note(
            "guards.min_cluster_weight",
            g.min_cluster_weight.is_some(),
            false,
        );
    }

    // The households pass: a lone record with a family's identifier joins the member
    // it names.
    let written = raw.households.is_some();
    if !written && defaults && raw.matching.is_some() {
        let identifiers: Vec<String> = r.email.iter().chain(&r.phones).cloned().collect();
        if let (false, Some(street), Some(postcode), Some(first), Some(last)) = (
            identifiers.is_empty(),
            &r.street,
            &r.postcode,
            &r.first,
            &r.last,
        ) {
            raw.households = Some(super::raw::RawHouseholds {
                identifiers,
                address: vec![street.clone(), postcode.clone()],
                name: vec![first.clone(), last.clone()],
            });
        }
    }
    note("households", written, raw.households.is_some());
    origins
}

/// The effective `[identity]` as TOML one can paste into a pipeline file, each part
/// with a comment saying whether it came from the file or from the column kinds.
pub fn plan_toml(identity: &super::IdentityConfig) -> String {
    use std::fmt::Write;
    let origin = |key: &str| {
        identity
            .origins
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, o)| o.describe())
    };
    let list = |items: &[String]| {
        let quoted: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
        format!("[{}]", quoted.join(", "))
    };
    let comment = |key: &str| match origin(key) {
        "" => String::new(),
        o => format!("   # {o}"),
    };
    let mut out = String::new();
    let _ = writeln!(out, "[identity]");
    let _ = writeln!(out, "entity = {:?}", identity.entity);
    let rules: Vec<String> = identity
        .rules
        .iter()
        .map(|r| format!("  {{ name = {:?}, match = {} }},", r.name, list(&r.columns)))
        .collect();
    let _ = writeln!(
        out,
        "rules = [{}\n{}\n]",
        comment("rules"),
        rules.join("\n")
    );
    let _ = writeln!(out, "max_key_group = {}", identity.max_key_group);
    let _ = writeln!(out, "attributes = {}", list(&identity.attributes));
    let s = &identity.survivorship;
    let _ = writeln!(out, "[identity.survivorship]");
    let strategy = |s: super::Strategy| match s {
        super::Strategy::MostFrequent => "most_frequent",
        super::Strategy::MostRecent => "most_recent",
        super::Strategy::SourcePriority => "source_priority",
        super::Strategy::Longest => "longest",
    };
    let _ = writeln!(out, "default = {:?}", strategy(s.default));
    if let Some(o) = &s.order_by {
        let _ = writeln!(out, "order_by = {o:?}");
    }
    if !s.source_priority.is_empty() {
        let _ = writeln!(out, "source_priority = {}", list(&s.source_priority));
    }
    if !s.columns.is_empty() {
        let columns: Vec<String> = s
            .columns
            .iter()
            .map(|(c, st)| format!("{c} = {:?}", strategy(*st)))
            .collect();
        let _ = writeln!(out, "columns = {{ {} }}", columns.join(", "));
    }
    if let Some(f) = &identity.first_name_from_email {
        let _ = writeln!(
            out,
            "[identity.first_name_from_email]{}\nfirst_name = {:?}\nlast_name = {:?}\nemail = {:?}",
            comment("first_name_from_email"),
            f.first_name,
            f.last_name,
            f.email
        );
    }
    if let Some(m) = &identity.matching {
        let _ = writeln!(out, "[identity.matching]");
        let threshold = if m.threshold_auto {
            "\"auto\"".to_string()
        } else {
            m.threshold.to_string()
        };
        let _ = writeln!(
            out,
            "threshold = {threshold}{}",
            comment("matching.threshold")
        );
        let trainers: Vec<String> = m
            .train_on
            .iter()
            .map(|&i| m.blocking[i].name.clone())
            .collect();
        let _ = writeln!(
            out,
            "train_on = {}{}",
            list(&trainers),
            comment("matching.train_on")
        );
        // The most common per-rule limit stands as max_block; the others are per rule.
        let limit_text = |i: usize| {
            if m.block_limits_auto[i] {
                "\"auto\"".to_string()
            } else {
                m.block_limits[i].to_string()
            }
        };
        let mut limits: Vec<String> = (0..m.blocking.len()).map(limit_text).collect();
        limits.sort_unstable();
        let common = limits
            .chunk_by(|a, b| a == b)
            .max_by_key(|run| run.len())
            .map_or_else(|| DEFAULT_MAX_BLOCK.to_string(), |run| run[0].clone());
        let _ = writeln!(out, "max_block = {common}{}", comment("matching.max_block"));
        let blocking: Vec<String> = m
            .blocking
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let limit = limit_text(i);
                let own = if limit == common {
                    String::new()
                } else {
                    format!(", max_block = {limit}")
                };
                format!(
                    "  {{ name = {:?}, on = {}{own} }},",
                    b.name,
                    list(&b.columns)
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "blocking = [{}\n{}\n]",
            comment("matching.blocking"),
            blocking.join("\n")
        );
        let comparisons: Vec<String> = m
            .comparisons
            .iter()
            .map(|c| {
                let levels: Vec<String> = c.levels.iter().map(|l| l.to_string()).collect();
                let mut line = format!(
                    "  {{ name = {:?}, columns = {}, levels = {}",
                    c.name,
                    list(&c.columns),
                    list(&levels)
                );
                if c.term_frequency {
                    line.push_str(", term_frequency = true");
                }
                if c.max_holders_auto {
                    line.push_str(", max_holders = \"auto\"");
                } else if let Some(h) = c.max_holders {
                    let _ = write!(line, ", max_holders = {h}");
                }
                for (name, probs) in [("m", &c.m), ("u", &c.u)] {
                    if let Some(p) = probs {
                        let p: Vec<String> = p.iter().map(f64::to_string).collect();
                        let _ = write!(line, ", {name} = [{}]", p.join(", "));
                    }
                }
                line.push_str(" },");
                line
            })
            .collect();
        let _ = writeln!(
            out,
            "comparisons = [{}\n{}\n]",
            comment("matching.comparisons"),
            comparisons.join("\n")
        );
    }
    let g = &identity.guards;
    let _ = writeln!(out, "[identity.guards]");
    let _ = writeln!(out, "max_cluster_size = {}", g.max_cluster_size);
    let map = |items: &[(String, usize)]| {
        let items: Vec<String> = items.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        format!("{{ {} }}", items.join(", "))
    };
    if !g.max_distinct.is_empty() {
        let _ = writeln!(
            out,
            "max_distinct = {}{}",
            map(&g.max_distinct),
            comment("guards.max_distinct")
        );
    }
    if !g.max_per_source.is_empty() {
        let _ = writeln!(
            out,
            "max_per_source = {}{}",
            map(&g.max_per_source),
            comment("guards.max_per_source")
        );
    }
    if g.max_per_source_auto {
        let _ = writeln!(
            out,
            "# max_per_source: chosen from the data at resolve time (default from the column kinds):\n# a source none of whose records share a rule's key holds one record a person"
        );
    }
    if !g.never_disagree.is_empty() {
        let _ = writeln!(
            out,
            "never_disagree = {}{}",
            list(&g.never_disagree),
            comment("guards.never_disagree")
        );
    }
    if let Some(w) = g.min_cluster_weight {
        let _ = writeln!(out, "min_cluster_weight = {w}");
    }
    if !g.corroborate.is_empty() {
        let _ = writeln!(
            out,
            "corroborate = {}{}",
            list(&g.corroborate),
            comment("guards.corroborate")
        );
    }
    if let Some(a) = g.ambiguity_margin {
        let _ = writeln!(
            out,
            "ambiguity_margin = {a:?}{}",
            comment("guards.ambiguity_margin")
        );
    }
    if let Some(h) = &identity.households {
        let _ = writeln!(
            out,
            "[identity.households]{}\nidentifiers = {}\naddress = {}\nname = {}",
            comment("households"),
            list(&h.identifiers),
            list(&h.address),
            list(&h.name)
        );
    }
    out
}
