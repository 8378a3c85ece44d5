//! The frames resolution writes and reads back: the identity graph, the decisions,
//! the golden records, the id assignment kept as state between runs and the strong
//! scored pairs reused by the next run. Conversion only; [`super::resolve`] decides.

use std::borrow::Cow;

use polars::prelude::*;

use super::cluster::Decision;
use super::ids::{Assigned, RecordKey};
use super::{
    model, IdentityError, Link, PreviousRun, DECISION_COLUMNS, GRAPH_COLUMNS, HOUSEHOLD,
    PROBABILISTIC, SINGLETON,
};
use crate::config::IdentityConfig;

/// One part of every record's key (its source or its id).
pub(super) fn key_part(keys: &[RecordKey], part: fn(&RecordKey) -> &String) -> Vec<&str> {
    keys.iter().map(|k| part(k).as_str()).collect()
}

/// The identity graph: each record's person, and the rule or match probability of
/// the merge that took it in.
pub(super) fn graph_frame(
    clusters: &[Vec<u32>],
    assigned: &[Assigned],
    linked_by: &[Option<Link>],
    keys: &[RecordKey],
    config: &IdentityConfig,
    run_id: &str,
) -> Result<DataFrame, IdentityError> {
    let n = linked_by.len();
    let mut person_of: Vec<&str> = vec![""; n];
    for (members, a) in clusters.iter().zip(assigned) {
        for &m in members {
            person_of[m as usize] = &a.person_id;
        }
    }
    let rule_of: Vec<&str> = linked_by
        .iter()
        .map(|l| match l {
            None => SINGLETON,
            Some(Link::Rule(r)) => config.rules[*r].name.as_str(),
            Some(Link::Scored(_)) => PROBABILISTIC,
            Some(Link::Household { .. }) => HOUSEHOLD,
        })
        .collect();
    let probability_of: Vec<Option<f64>> = linked_by
        .iter()
        .map(|l| match l {
            Some(Link::Scored(w)) => Some(model::probability(*w)),
            _ => None,
        })
        .collect();
    let [g_source, g_record, g_person, g_rule, g_probability, g_run] = GRAPH_COLUMNS;
    Ok(DataFrame::new(
        n,
        vec![
            Column::new(g_source.into(), key_part(keys, |k| &k.0)),
            Column::new(g_record.into(), key_part(keys, |k| &k.1)),
            Column::new(g_person.into(), &person_of),
            Column::new(g_rule.into(), &rule_of),
            Column::new(g_probability.into(), &probability_of),
            Column::new(g_run.into(), vec![run_id; n]),
        ],
    )?)
}

pub(super) fn decision_frame(
    decisions: &[(usize, Decision)],
    edges: &[(u32, u32, Link)],
    keys: &[RecordKey],
    config: &IdentityConfig,
) -> Result<DataFrame, IdentityError> {
    let n = decisions.len();
    let side = |pick: fn(&(u32, u32, Link)) -> u32, part: fn(&RecordKey) -> &str| -> Vec<&str> {
        decisions
            .iter()
            .map(|(e, _)| part(&keys[pick(&edges[*e]) as usize]))
            .collect()
    };
    let decision: Vec<&str> = decisions
        .iter()
        .map(|(_, d)| match d {
            Decision::Merged => "merged",
            Decision::Refused(_) => "refused",
        })
        .collect();
    let rule_links: Vec<String> = config
        .rules
        .iter()
        .map(|r| format!("rule {}", r.name))
        .collect();
    let link: Vec<Cow<str>> = decisions
        .iter()
        .map(|(e, _)| match edges[*e].2 {
            Link::Rule(r) => Cow::from(rule_links[r].as_str()),
            Link::Scored(_) => Cow::from(PROBABILISTIC),
            Link::Household { via } => {
                let (source, id) = &keys[via as usize];
                Cow::from(format!(
                    "{HOUSEHOLD} (its identifier is held by {source}:{id}, of a person at this person's address)"
                ))
            }
        })
        .collect();
    let link: Vec<&str> = link.iter().map(|l| l.as_ref()).collect();
    let probability: Vec<Option<f64>> = decisions
        .iter()
        .map(|(e, _)| match edges[*e].2 {
            Link::Scored(w) => Some(model::probability(w)),
            Link::Rule(_) | Link::Household { .. } => None,
        })
        .collect();
    let guard: Vec<Option<String>> = decisions
        .iter()
        .map(|(_, d)| match d {
            Decision::Merged => None,
            Decision::Refused(reason) => Some(reason.to_string()),
        })
        .collect();
    let [l_source, l_record, r_source, r_record, c_decision, c_link, c_probability, c_guard] =
        DECISION_COLUMNS;
    Ok(DataFrame::new(
        n,
        vec![
            Column::new(l_source.into(), side(|e| e.0, |k| k.0.as_str())),
            Column::new(l_record.into(), side(|e| e.0, |k| k.1.as_str())),
            Column::new(r_source.into(), side(|e| e.1, |k| k.0.as_str())),
            Column::new(r_record.into(), side(|e| e.1, |k| k.1.as_str())),
            Column::new(c_decision.into(), decision),
            Column::new(c_link.into(), link),
            Column::new(c_probability.into(), probability),
            Column::new(c_guard.into(), guard),
        ],
    )?)
}

/// One golden record per person: its id, its `golden` columns, and the run that first
/// saw the id.
pub(super) fn profiles(
    assigned: &[Assigned],
    golden: Vec<Column>,
) -> Result<DataFrame, IdentityError> {
    let column = |name: &str, part: fn(&Assigned) -> &str| {
        Column::new(name.into(), assigned.iter().map(part).collect::<Vec<_>>())
    };
    let mut columns = vec![column("person_id", |a| &a.person_id)];
    columns.extend(golden);
    columns.push(column("first_seen_run", |a| &a.first_seen));
    Ok(DataFrame::new(assigned.len(), columns)?)
}

/// Per person: how many records, from which sources, and their `source:id` keys (the
/// two lists built side by side).
pub(super) fn record_lists(clusters: &[Vec<u32>], keys: &[RecordKey]) -> [Column; 3] {
    let records_in_all = clusters.iter().map(Vec::len).sum();
    let (source_lists, id_lists) = rayon::join(
        || {
            let mut lists =
                ListStringChunkedBuilder::new("sources".into(), clusters.len(), records_in_all);
            // A buffer reused across persons: no allocation per record.
            let mut sources: Vec<&str> = Vec::new();
            for c in clusters {
                sources.clear();
                sources.extend(c.iter().map(|&m| keys[m as usize].0.as_str()));
                sources.sort_unstable();
                sources.dedup();
                lists.append_values_iter(sources.iter().copied());
            }
            lists.finish().into_column()
        },
        || {
            let mut lists =
                ListStringChunkedBuilder::new("record_ids".into(), clusters.len(), records_in_all);
            let (mut ids, mut ends): (String, Vec<usize>) = Default::default();
            for c in clusters {
                ids.clear();
                ends.clear();
                for &m in c {
                    let (source, id) = &keys[m as usize];
                    ids.extend([source.as_str(), ":", id.as_str()]);
                    ends.push(ids.len());
                }
                let starts = std::iter::once(0).chain(ends.iter().copied());
                lists.append_values_iter(starts.zip(&ends).map(|(start, &end)| &ids[start..end]));
            }
            lists.finish().into_column()
        },
    );
    [
        Column::new(
            "record_count".into(),
            clusters.iter().map(|c| c.len() as u32).collect::<Vec<_>>(),
        ),
        source_lists,
        id_lists,
    ]
}

/// The assignment to save, a row per record, person by person: source, record_id,
/// person_id, first_seen_run, fingerprint. Also each record's row.
pub(super) fn assignment_frame(
    clusters: &[Vec<u32>],
    assigned: &[Assigned],
    keys: &[RecordKey],
    fingerprints: &[u64],
) -> PolarsResult<(DataFrame, Vec<u32>)> {
    let n = keys.len();
    let mut row_of = vec![0u32; n];
    let mut order: Vec<(u32, &Assigned)> = Vec::with_capacity(n);
    for (members, a) in clusters.iter().zip(assigned) {
        for &m in members {
            row_of[m as usize] = order.len() as u32;
            order.push((m, a));
        }
    }
    let key = |part: fn(&RecordKey) -> &str| -> Vec<&str> {
        order
            .iter()
            .map(|&(m, _)| part(&keys[m as usize]))
            .collect()
    };
    let person = |part: fn(&Assigned) -> &str| -> Vec<&str> {
        order.iter().map(|&(_, a)| part(a)).collect()
    };
    let frame = DataFrame::new(
        n,
        vec![
            Column::new("source".into(), key(|k| &k.0)),
            Column::new("record_id".into(), key(|k| &k.1)),
            Column::new("person_id".into(), person(|a| &a.person_id)),
            Column::new("first_seen_run".into(), person(|a| &a.first_seen)),
            Column::new(
                "fingerprint".into(),
                order
                    .iter()
                    .map(|&(m, _)| fingerprints[m as usize])
                    .collect::<Vec<u64>>(),
            ),
        ],
    )?;
    Ok((frame, row_of))
}

/// Reads an assignment frame back into `previous`: each key's row, its person and
/// each row's fingerprint.
pub fn assignment_from_frame(df: &DataFrame, previous: &mut PreviousRun) -> PolarsResult<()> {
    let s = df.column("source")?.str()?;
    let r = df.column("record_id")?.str()?;
    let p = df.column("person_id")?.str()?;
    let f = df.column("first_seen_run")?.str()?;
    previous.fingerprints = match df.column("fingerprint").ok().map(|c| c.u64()) {
        Some(fp) => fp?.iter().map(Option::unwrap_or_default).collect(),
        None => Vec::new(),
    };
    let text = |v: Option<&str>| v.unwrap_or_default().to_string();
    (previous.rows, previous.assigned) = rayon::join(
        || {
            let mut rows = foldhash::HashMap::default();
            rows.reserve(df.height());
            for (i, (s, r)) in s.iter().zip(r.iter()).enumerate() {
                rows.insert((text(s), text(r)), i as u32);
            }
            rows
        },
        || {
            p.iter()
                .zip(f.iter())
                .map(|(p, f)| Assigned {
                    person_id: text(p),
                    first_seen: text(f),
                })
                .collect()
        },
    );
    Ok(())
}

/// A hash of an assignment frame's rows (record key and fingerprint, in row order):
/// what the saved model and pairs were written beside.
pub fn assignment_digest(df: &DataFrame) -> PolarsResult<u64> {
    let s = df.column("source")?.str()?;
    let r = df.column("record_id")?.str()?;
    let f = df.column("fingerprint")?.u64()?;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for ((s, r), f) in s.iter().zip(r.iter()).zip(f.iter()) {
        eat(s.unwrap_or_default().as_bytes());
        eat(&[0xfe]);
        eat(r.unwrap_or_default().as_bytes());
        eat(&[0xfe]);
        eat(&f.unwrap_or_default().to_le_bytes());
    }
    eat(&(df.height() as u64).to_le_bytes());
    Ok(h)
}

/// The strong scored pairs (assignment rows and weight) as a frame, and back.
pub fn edges_frame(edges: &[(u32, u32, f64)]) -> PolarsResult<DataFrame> {
    DataFrame::new(
        edges.len(),
        vec![
            Column::new(
                "left_row".into(),
                edges.iter().map(|e| e.0).collect::<Vec<u32>>(),
            ),
            Column::new(
                "right_row".into(),
                edges.iter().map(|e| e.1).collect::<Vec<u32>>(),
            ),
            Column::new(
                "weight".into(),
                edges.iter().map(|e| e.2).collect::<Vec<f64>>(),
            ),
        ],
    )
}

pub fn edges_from_frame(df: &DataFrame) -> PolarsResult<Vec<(u32, u32, f64)>> {
    let (l, r, w) = (
        df.column("left_row")?.u32()?,
        df.column("right_row")?.u32()?,
        df.column("weight")?.f64()?,
    );
    Ok((0..df.height())
        .filter_map(|i| Some((l.get(i)?, r.get(i)?, w.get(i)?)))
        .collect())
}
