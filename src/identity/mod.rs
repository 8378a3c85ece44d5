//! Identity resolution, pure computation: a clean entity frame and the previous id
//! assignment in; the identity graph (record -> person, and the rule that linked it),
//! the golden records (`customer_360`) and the new id assignment out. The caller reads
//! and writes the state; nothing here touches the lake.
//!
//! This first cut links by the deterministic rules of the pipeline file ([`rules`]),
//! clusters with union-find ([`cluster`]), keeps ids stable ([`ids`]) and picks golden
//! values by survivorship ([`golden`]). Probabilistic matching arrives with issue 4.

pub mod cluster;
pub mod evaluate;
pub mod golden;
pub mod ids;
pub mod rules;

use std::collections::HashMap;

use polars::prelude::*;
use serde::Serialize;

use crate::clean::read::SOURCE;
use crate::config::IdentityConfig;
use ids::{Assigned, IdChanges, RecordKey};
use rules::RuleStats;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("identity: column {0:?} is missing from the clean {1} data")]
    MissingColumn(String, String),
    #[error(transparent)]
    Polars(#[from] PolarsError),
}

/// Columns of the identity graph, in order.
pub const GRAPH_COLUMNS: [&str; 5] = ["source", "record_id", "person_id", "rule", "resolved_run"];

/// The rule value of a record that no rule linked to another.
pub const SINGLETON: &str = "singleton";

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ResolveReport {
    pub records: u64,
    pub persons: u64,
    pub rules: Vec<RuleStats>,
    pub ids: IdChanges,
}

pub struct Resolution {
    pub graph: DataFrame,
    pub profiles: DataFrame,
    /// The new assignment, to be saved as state for the next run.
    pub assignment: Vec<(RecordKey, Assigned)>,
    pub report: ResolveReport,
}

/// A column as text, one value per row.
fn text_column(
    df: &DataFrame,
    name: &str,
    entity: &str,
) -> Result<Vec<Option<String>>, IdentityError> {
    let column = df
        .column(name)
        .map_err(|_| IdentityError::MissingColumn(name.into(), entity.into()))?
        .cast(&DataType::String)?;
    Ok(column
        .str()?
        .iter()
        .map(|v| v.map(str::to_string))
        .collect())
}

pub fn resolve(
    records: &DataFrame,
    config: &IdentityConfig,
    key_column: &str,
    previous: &HashMap<RecordKey, Assigned>,
    run_id: &str,
) -> Result<Resolution, IdentityError> {
    let n = records.height();
    let entity = config.entity.as_str();
    let sources: Vec<String> = text_column(records, SOURCE, entity)?
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect();
    let record_ids: Vec<String> = text_column(records, key_column, entity)?
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect();
    let keys: Vec<RecordKey> = sources
        .iter()
        .cloned()
        .zip(record_ids.iter().cloned())
        .collect();

    let mut wanted: Vec<&str> = config
        .rules
        .iter()
        .flat_map(|r| r.columns.iter().map(String::as_str))
        .collect();
    wanted.extend(config.attributes.iter().map(String::as_str));
    wanted.extend(config.survivorship.order_by.as_deref());
    let mut values: HashMap<String, Vec<Option<String>>> = HashMap::new();
    for c in wanted {
        if !values.contains_key(c) {
            values.insert(c.to_string(), text_column(records, c, entity)?);
        }
    }

    let mut uf = cluster::UnionFind::new(n);
    let (linked_by, rule_stats) =
        rules::link(&values, n, &config.rules, config.max_key_group, &mut uf);
    let clusters = uf.clusters();
    let (assigned, changes) = ids::assign(&clusters, &keys, previous, run_id);

    let mut person_of: Vec<&str> = vec![""; n];
    for (members, a) in clusters.iter().zip(&assigned) {
        for &m in members {
            person_of[m as usize] = &a.person_id;
        }
    }
    let rule_of: Vec<&str> = linked_by
        .iter()
        .map(|r| r.map_or(SINGLETON, |i| config.rules[i].name.as_str()))
        .collect();
    let [g_source, g_record, g_person, g_rule, g_run] = GRAPH_COLUMNS;
    let graph = DataFrame::new(
        n,
        vec![
            Column::new(g_source.into(), &sources),
            Column::new(g_record.into(), &record_ids),
            Column::new(g_person.into(), &person_of),
            Column::new(g_rule.into(), &rule_of),
            Column::new(g_run.into(), vec![run_id; n]),
        ],
    )?;

    let profiles = profiles(
        records, config, &clusters, &assigned, &values, &sources, &keys,
    )?;
    let assignment = clusters
        .iter()
        .zip(&assigned)
        .flat_map(|(members, a)| {
            members
                .iter()
                .map(|&m| (keys[m as usize].clone(), a.clone()))
        })
        .collect();
    Ok(Resolution {
        graph,
        profiles,
        assignment,
        report: ResolveReport {
            records: n as u64,
            persons: clusters.len() as u64,
            rules: rule_stats,
            ids: changes,
        },
    })
}

/// One golden record per person: its id, each attribute, and where it came from.
fn profiles(
    records: &DataFrame,
    config: &IdentityConfig,
    clusters: &[Vec<u32>],
    assigned: &[Assigned],
    values: &HashMap<String, Vec<Option<String>>>,
    sources: &[String],
    keys: &[RecordKey],
) -> Result<DataFrame, IdentityError> {
    let evidence = golden::Evidence {
        values,
        sources,
        recency: config
            .survivorship
            .order_by
            .as_ref()
            .and_then(|o| values.get(o)),
    };
    let mut columns = vec![Column::new(
        "person_id".into(),
        assigned
            .iter()
            .map(|a| a.person_id.as_str())
            .collect::<Vec<_>>(),
    )];
    for attribute in &config.attributes {
        let winners: Vec<Option<u32>> = clusters
            .iter()
            .map(|c| golden::choose(attribute, c, &evidence, &config.survivorship))
            .collect();
        let column = records
            .column(attribute)
            .map_err(|_| IdentityError::MissingColumn(attribute.clone(), config.entity.clone()))?;
        columns.push(golden::gather(column, &winners)?);
    }
    columns.push(Column::new(
        "record_count".into(),
        clusters.iter().map(|c| c.len() as u32).collect::<Vec<_>>(),
    ));
    let list = |name: &str, rows: Vec<Vec<String>>| -> Column {
        let mut ca: ListChunked = rows
            .into_iter()
            .map(|v| Some(Series::new(PlSmallStr::EMPTY, v)))
            .collect();
        ca.rename(name.into());
        ca.into_column()
    };
    let source_lists = clusters
        .iter()
        .map(|c| {
            let mut s: Vec<String> = c.iter().map(|&m| sources[m as usize].clone()).collect();
            s.sort();
            s.dedup();
            s
        })
        .collect();
    columns.push(list("sources", source_lists));
    let id_lists = clusters
        .iter()
        .map(|c| {
            c.iter()
                .map(|&m| format!("{}:{}", keys[m as usize].0, keys[m as usize].1))
                .collect()
        })
        .collect();
    columns.push(list("record_ids", id_lists));
    columns.push(Column::new(
        "first_seen_run".into(),
        assigned
            .iter()
            .map(|a| a.first_seen.as_str())
            .collect::<Vec<_>>(),
    ));
    Ok(DataFrame::new(clusters.len(), columns)?)
}

/// The saved assignment as a frame: source, record_id, person_id, first_seen_run.
pub fn assignment_frame(assignment: &[(RecordKey, Assigned)]) -> PolarsResult<DataFrame> {
    let n = assignment.len();
    DataFrame::new(
        n,
        vec![
            Column::new(
                "source".into(),
                assignment
                    .iter()
                    .map(|(k, _)| k.0.as_str())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "record_id".into(),
                assignment
                    .iter()
                    .map(|(k, _)| k.1.as_str())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "person_id".into(),
                assignment
                    .iter()
                    .map(|(_, a)| a.person_id.as_str())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "first_seen_run".into(),
                assignment
                    .iter()
                    .map(|(_, a)| a.first_seen.as_str())
                    .collect::<Vec<_>>(),
            ),
        ],
    )
}

/// Reads an assignment frame back.
pub fn assignment_from_frame(df: &DataFrame) -> PolarsResult<HashMap<RecordKey, Assigned>> {
    let s = df.column("source")?.str()?;
    let r = df.column("record_id")?.str()?;
    let p = df.column("person_id")?.str()?;
    let f = df.column("first_seen_run")?.str()?;
    Ok((0..df.height())
        .filter_map(|i| {
            Some((
                (s.get(i)?.to_string(), r.get(i)?.to_string()),
                Assigned {
                    person_id: p.get(i)?.to_string(),
                    first_seen: f.get(i)?.to_string(),
                },
            ))
        })
        .collect())
}
