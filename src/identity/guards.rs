//! The guards clustering must respect whatever the evidence: a maximum person size, a
//! limit of records per source and of distinct values per identifier in one person,
//! identifiers two records of one person may never disagree on, a minimum mean
//! evidence (log2 Bayes factor, prior left out) across every pair of two clusters
//! before they merge (so a chain of shared-identifier links between people who differ
//! cannot fuse them), and corroboration: two persons of two or more records each
//! merge only when some pair of their records agrees on more than a name.

use super::blocking;
use super::ids::RecordKey;
use super::matcher::Matcher;
use super::text::Values;
use crate::config::Guards;

/// The guard behind a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Guard {
    MaxClusterSize,
    MaxPerSource,
    /// `link_only`: two records of one link-only source are never one person.
    LinkOnly,
    MaxDistinct,
    NeverDisagree,
    Corroborate,
    MinClusterWeight,
    /// A lone record that matches two persons who may not be one about equally well.
    Ambiguous,
}

impl Guard {
    /// The guard's name as the pipeline file spells it (and reports count it).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MaxClusterSize => "max_cluster_size",
            Self::MaxPerSource => "max_per_source",
            Self::LinkOnly => "link_only",
            Self::MaxDistinct => "max_distinct",
            Self::NeverDisagree => "never_disagree",
            Self::Corroborate => "corroborate",
            Self::MinClusterWeight => "min_cluster_weight",
            Self::Ambiguous => "ambiguous",
        }
    }
}

/// Why a guard refused a merge: the guard, what it applies to (a source or column,
/// for the guards keyed by one), and what it saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub guard: Guard,
    pub target: Option<String>,
    pub detail: String,
}

impl Refusal {
    pub fn new(guard: Guard, detail: impl Into<String>) -> Self {
        Self {
            guard,
            target: None,
            detail: detail.into(),
        }
    }

    pub fn on(guard: Guard, target: &str, detail: impl Into<String>) -> Self {
        Self {
            guard,
            target: Some(target.to_string()),
            detail: detail.into(),
        }
    }
}

/// `guard.target: detail`, as the decisions output and `--explain` show it.
impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.guard.as_str())?;
        if let Some(t) = &self.target {
            write!(f, ".{t}")?;
        }
        write!(f, ": {}", self.detail)
    }
}

enum Never {
    /// A comparison of the model: disagreeing means its "else" level.
    Comparison(usize, String),
    /// A plain column: disagreeing means two different values.
    Column(String, Vec<u32>),
}

pub struct GuardSet<'a> {
    max_cluster_size: usize,
    /// Per limited source: its name, the limit, and whether each record is from it.
    /// Per limited source: its limit, the guard that set it (`max_per_source` or
    /// `link_only`) and which records are its.
    per_source: Vec<(String, usize, Guard, Vec<bool>)>,
    distinct: Vec<(String, usize, Vec<u32>)>,
    never: Vec<Never>,
    min_weight: Option<f64>,
    /// Comparisons (by index) of which one must agree across two multi-record clusters.
    corroborate: Vec<usize>,
    matcher: Option<&'a Matcher>,
    keys: &'a [RecordKey],
}

impl<'a> GuardSet<'a> {
    pub fn new(
        config: &Guards,
        values: &Values,
        n: usize,
        matcher: Option<&'a Matcher>,
        keys: &'a [RecordKey],
    ) -> Self {
        let never = config
            .never_disagree
            .iter()
            .map(|name| match matcher.and_then(|m| m.comparison(name)) {
                Some(c) => Never::Comparison(c, name.clone()),
                None => Never::Column(name.clone(), blocking::ids(values, name, n)),
            })
            .collect();
        GuardSet {
            max_cluster_size: config.max_cluster_size,
            per_source: config
                .max_per_source
                .iter()
                .map(|(source, limit)| {
                    let from = keys.iter().map(|(s, _)| s == source).collect();
                    let guard = if config.link_only.contains(source) {
                        Guard::LinkOnly
                    } else {
                        Guard::MaxPerSource
                    };
                    (source.clone(), *limit, guard, from)
                })
                .collect(),
            distinct: config
                .max_distinct
                .iter()
                .map(|(c, limit)| (c.clone(), *limit, blocking::ids(values, c, n)))
                .collect(),
            never,
            min_weight: config.min_cluster_weight.filter(|_| matcher.is_some()),
            corroborate: config
                .corroborate
                .iter()
                .filter_map(|name| matcher?.comparison(name))
                .collect(),
            matcher,
            keys,
        }
    }

    fn key(&self, r: u32) -> String {
        let (s, id) = &self.keys[r as usize];
        format!("{s}:{id}")
    }

    /// The guards that say two clusters are different people (not merely that the
    /// evidence between them is thin).
    pub fn refuse_hard(&self, a: &[u32], b: &[u32]) -> Option<Refusal> {
        let size = a.len() + b.len();
        if size > self.max_cluster_size {
            return Some(Refusal::new(
                Guard::MaxClusterSize,
                format!("{size} records > {}", self.max_cluster_size),
            ));
        }
        for (source, limit, guard, from) in &self.per_source {
            let count = a.iter().chain(b).filter(|&&r| from[r as usize]).count();
            if count > *limit {
                return Some(Refusal::on(
                    *guard,
                    source,
                    format!("{count} records > {limit}"),
                ));
            }
        }
        for (column, limit, ids) in &self.distinct {
            let mut seen: Vec<u32> = a
                .iter()
                .chain(b)
                .map(|&r| ids[r as usize])
                .filter(|&id| id != 0)
                .collect();
            seen.sort_unstable();
            seen.dedup();
            if seen.len() > *limit {
                return Some(Refusal::on(
                    Guard::MaxDistinct,
                    column,
                    format!("{} values > {limit}", seen.len()),
                ));
            }
        }
        for &x in a {
            for &y in b {
                for never in &self.never {
                    let (name, disagree) = match never {
                        Never::Comparison(c, name) => {
                            (name, self.matcher.is_some_and(|m| m.disagrees(*c, x, y)))
                        }
                        Never::Column(name, ids) => {
                            let (i, j) = (ids[x as usize], ids[y as usize]);
                            (name, i != 0 && j != 0 && i != j)
                        }
                    };
                    if disagree {
                        return Some(Refusal::on(
                            Guard::NeverDisagree,
                            name,
                            format!("{} vs {}", self.key(x), self.key(y)),
                        ));
                    }
                }
            }
        }
        None
    }

    /// Whether the evidence between two clusters is too thin: two persons of two or
    /// more records each that no pair of records corroborates, or a mean evidence below
    /// `min_cluster_weight`.
    pub fn too_weak(&self, a: &[u32], b: &[u32]) -> Option<Refusal> {
        let established = a.len() >= 2 && b.len() >= 2;
        if let (Some(m), true) = (self.matcher, established && !self.corroborate.is_empty()) {
            let corroborated = a.iter().any(|&x| {
                b.iter()
                    .any(|&y| self.corroborate.iter().any(|&c| m.agrees(c, x, y)))
            });
            if !corroborated {
                let names: Vec<&str> = self.corroborate.iter().map(|&c| m.name(c)).collect();
                return Some(Refusal::new(
                    Guard::Corroborate,
                    format!(
                        "no pair of these {} and {} records agrees on {}",
                        a.len(),
                        b.len(),
                        names.join(", ")
                    ),
                ));
            }
        }
        if let (Some(min), Some(m)) = (self.min_weight, self.matcher) {
            let total: f64 = a
                .iter()
                .flat_map(|&x| b.iter().map(move |&y| m.evidence(x, y)))
                .sum();
            let mean = total / (a.len() * b.len()) as f64;
            if mean < min {
                return Some(Refusal::new(
                    Guard::MinClusterWeight,
                    format!(
                        "mean evidence {mean:.2} over {} pairs < {min}",
                        a.len() * b.len()
                    ),
                ));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_of_one_record_per_person_keeps_two_of_its_records_apart() {
        let keys: Vec<RecordKey> = [("vendor", "1"), ("vendor", "2"), ("crm", "3"), ("crm", "4")]
            .iter()
            .map(|(s, id)| (s.to_string(), id.to_string()))
            .collect();
        let config = Guards {
            max_cluster_size: 50,
            max_distinct: Vec::new(),
            max_per_source: vec![("vendor".into(), 1)],
            link_only: Vec::new(),
            never_disagree: Vec::new(),
            max_per_source_auto: false,
            min_cluster_weight: None,
            corroborate: Vec::new(),
            ambiguity_margin: None,
        };
        let guards = GuardSet::new(&config, &Values::new(), keys.len(), None, &keys);
        assert_eq!(
            guards.refuse_hard(&[0, 2], &[3]),
            None,
            "two CRM records may"
        );
        let refusal = guards.refuse_hard(&[0, 2], &[1]).expect("refused");
        assert_eq!(refusal.guard, Guard::MaxPerSource);
        assert_eq!(refusal.to_string(), "max_per_source.vendor: 2 records > 1");
    }
}
