//! Golden records: one row per person, each attribute chosen among the person's
//! records by its survivorship strategy (most frequent, most recent, source priority,
//! longest), ties broken by recency, then source priority, then record order, so the
//! same input always gives the same record.

use std::cmp::Ordering;
use std::collections::HashMap;

use polars::prelude::*;

use super::ids::RecordKey;
use super::text::{TextColumn, Values};
use crate::config::{Strategy, Survivorship};

/// What the chooser needs about each record, all as text.
pub struct Evidence<'a> {
    pub values: &'a Values,
    /// A column as the sources gave it, where matching filled in values it read
    /// elsewhere: golden records keep only what sources said.
    pub as_given: Option<(&'a str, &'a TextColumn)>,
    /// Each record's (source, record id).
    pub keys: &'a [RecordKey],
    /// Each record's rank in the recency column's order (0: no value).
    pub recency: Option<&'a [u32]>,
}

impl Evidence<'_> {
    fn priority(&self, survivorship: &Survivorship, row: u32) -> usize {
        let s = &self.keys[row as usize].0;
        survivorship
            .source_priority
            .iter()
            .position(|p| p == s)
            .unwrap_or(usize::MAX)
    }

    fn recency(&self, row: u32) -> u32 {
        self.recency.map_or(0, |r| r[row as usize])
    }
}

/// The row whose value of `column` survives in a cluster, if any row has one.
pub fn choose(
    column: &str,
    cluster: &[u32],
    evidence: &Evidence,
    survivorship: &Survivorship,
) -> Option<u32> {
    let values = match evidence.as_given {
        Some((name, as_given)) if name == column => as_given,
        _ => evidence.values.get(column)?,
    };
    // Value ids: equal ids are equal values, and 0 is none.
    let id = |r: u32| values.ids()[r as usize];
    if let [only] = cluster {
        return (id(*only) != 0).then_some(*only);
    }
    let present: Vec<u32> = cluster.iter().copied().filter(|&r| id(r) != 0).collect();
    if present.len() <= 1 {
        return present.first().copied();
    }
    let text = |r: u32| values.text(id(r));
    // Most persons have a few records: counting by scan beats building a map for
    // every person and column; a big cluster gets the map.
    let counts: Option<HashMap<u32, usize>> = (present.len() > 32).then(|| {
        let mut counts = HashMap::new();
        for &r in &present {
            *counts.entry(id(r)).or_default() += 1;
        }
        counts
    });
    let frequency = |r: u32| match &counts {
        Some(counts) => counts[&id(r)],
        None => present.iter().filter(|&&o| id(o) == id(r)).count(),
    };
    // Greater is better in every comparison below.
    let recency = |a: u32, b: u32| evidence.recency(a).cmp(&evidence.recency(b));
    let priority = |a: u32, b: u32| {
        evidence
            .priority(survivorship, b)
            .cmp(&evidence.priority(survivorship, a))
    };
    let primary = |a: u32, b: u32| -> Ordering {
        match survivorship.strategy_for(column) {
            Strategy::MostFrequent => frequency(a).cmp(&frequency(b)),
            Strategy::MostRecent => recency(a, b),
            Strategy::SourcePriority => priority(a, b),
            Strategy::Longest => text(a).chars().count().cmp(&text(b).chars().count()),
        }
    };
    present.iter().copied().max_by(|&a, &b| {
        primary(a, b)
            .then_with(|| recency(a, b))
            .then_with(|| priority(a, b))
            .then_with(|| b.cmp(&a))
    })
}

/// Gathers the winning rows of one attribute column into a person-level column,
/// keeping the column's type.
pub fn gather(column: &Column, winners: &[Option<u32>]) -> PolarsResult<Column> {
    let idx = IdxCa::from_iter_options(
        column.name().clone(),
        winners.iter().map(|w| w.map(|r| r as IdxSize)),
    );
    column.take(&idx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::text::TextColumn;

    fn survivorship(default: Strategy) -> Survivorship {
        Survivorship {
            default,
            order_by: Some("updated".into()),
            source_priority: vec!["crm".into()],
            columns: Vec::new(),
        }
    }

    #[test]
    fn each_strategy_picks_its_row_with_deterministic_ties() {
        let mut values = Values::new();
        values.insert(
            "email".to_string(),
            TextColumn::from_values([Some("a@x"), Some("b@xx"), Some("b@xx"), None]),
        );
        let keys: Vec<RecordKey> = ["shop", "shop", "support", "crm"]
            .iter()
            .enumerate()
            .map(|(i, s)| (s.to_string(), i.to_string()))
            .collect();
        let recency = [3, 1, 2, 4];
        let ev = Evidence {
            values: &values,
            as_given: None,
            keys: &keys,
            recency: Some(&recency),
        };
        let all = [0, 1, 2, 3];
        assert_eq!(
            choose("email", &all, &ev, &survivorship(Strategy::MostFrequent)),
            Some(2)
        );
        assert_eq!(
            choose("email", &all, &ev, &survivorship(Strategy::MostRecent)),
            Some(0)
        );
        assert_eq!(
            choose("email", &all, &ev, &survivorship(Strategy::Longest)),
            Some(2)
        );
        assert_eq!(
            choose("email", &[3], &ev, &survivorship(Strategy::MostRecent)),
            None
        );

        // Row 2's value was filled in by matching: as given, a@x and b@xx tie and the
        // more recent row wins.
        let as_given = TextColumn::from_values([Some("a@x"), Some("b@xx"), None, None]);
        let ev = Evidence {
            as_given: Some(("email", &as_given)),
            ..ev
        };
        assert_eq!(
            choose("email", &all, &ev, &survivorship(Strategy::MostFrequent)),
            Some(0)
        );
    }
}
