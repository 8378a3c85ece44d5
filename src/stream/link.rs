//! link: stream events that matched no one when they were loaded get their person
//! once a resolve knows it, and every event finds its person's current id.
//!
//! In: the identity state of the resolve being loaded (its matching index and the ids
//! merges retired, followed to the live id), and the warehouse's `stream_<name>`
//! tables. Out, in the warehouse, in one transaction: a row of
//! [`LINKS_TABLE`] for each event that had a null person id, had no link yet and
//! matches a person now (with the rule or probability and the resolve run that
//! assigned it); [`RETIRED_TABLE`] rewritten with each retired person id and the id it
//! became; and per stream the view `stream_<name>_persons`, the events with the
//! current person id. The events tables themselves are never rewritten, and an event
//! is linked once: a second load of the same resolve (or a later one) adds nothing for
//! it, while events still unknown are tried again by each later resolve.

use std::collections::HashMap;

use serde::Serialize;

use super::{table_of, StreamError};
use crate::config::{Pipeline, Value};
use crate::identity::lookup::Index;
use crate::vocab::SOURCE_FILE;
use crate::warehouse::{self, Warehouse, WarehouseError};

/// The events a resolve after their load assigned to a person.
pub const LINKS_TABLE: &str = "stream_person_links";
/// Person ids merges retired, each with the live id it became.
pub const RETIRED_TABLE: &str = "person_id_retired";

/// Rows a statement inserts at most (a long VALUES list is slow to parse).
const INSERT_CHUNK: usize = 500;

/// The view of a stream's events with current person ids.
pub fn view_of(stream: &str) -> String {
    format!("{}_persons", table_of(stream))
}

/// What linking did for one stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LinkReport {
    pub stream: String,
    /// Events with no person (at load and in no earlier link) before this link.
    pub unknown: u64,
    /// Of those, the events this resolve's state matched to a person.
    pub linked: u64,
}

/// An event with no person: its `source_file` and its values (column -> text).
type UnknownEvent = (String, HashMap<String, String>);

/// One link found: the event (its `source_file`) and the person.
struct Link {
    event: String,
    person_id: String,
    rule: Option<String>,
    probability: Option<f64>,
}

/// Links the events of every declared stream whose table the warehouse has (see the
/// module's doc). `retired`: (retired id, live id) pairs; `run_id`: the resolve run
/// whose state `index` is.
pub fn link(
    p: &Pipeline,
    wh: &mut dyn Warehouse,
    index: &Index,
    retired: &[(&str, &str)],
    run_id: &str,
) -> Result<Vec<LinkReport>, StreamError> {
    let Some(identity) = &p.identity else {
        return Ok(Vec::new());
    };
    if p.streams.is_empty() {
        return Ok(Vec::new());
    }
    let mut present = Vec::new();
    for stream in &p.streams {
        if let Some(columns) = warehouse::columns_of(wh, &table_of(&stream.name))? {
            present.push((stream, columns));
        }
    }
    if present.is_empty() {
        return Ok(Vec::new());
    }
    ensure_tables(wh)?;
    let d = wh.dialect();
    let key = p
        .entity(&identity.entity)
        .map(|e| e.key.as_str())
        .unwrap_or_default();
    let match_columns: Vec<&str> = crate::identity::columns_read(identity, key);
    let mut reports = Vec::new();
    let mut statements = Vec::new();
    for (stream, columns) in &present {
        let mut report = LinkReport {
            stream: stream.name.clone(),
            ..LinkReport::default()
        };
        // Only events of the identity's entity can be matched; the view is made for
        // every stream all the same.
        if stream.entity == identity.entity {
            let read: Vec<&str> = match_columns
                .iter()
                .copied()
                .filter(|c| columns.iter().any(|have| have == &c.to_lowercase()))
                .collect();
            let links = unknown_events(wh, &stream.name, &read)?
                .into_iter()
                .inspect(|_| report.unknown += 1)
                .filter_map(|(event, record)| {
                    let answer = index.lookup(&record);
                    Some(Link {
                        event,
                        person_id: answer.person_id?,
                        rule: answer
                            .rule
                            .or_else(|| answer.probability.map(|_| "probabilistic".into())),
                        probability: answer.probability,
                    })
                })
                .collect::<Vec<_>>();
            report.linked = links.len() as u64;
            for chunk in links.chunks(INSERT_CHUNK) {
                let rows: Vec<String> = chunk
                    .iter()
                    .map(|l| {
                        let probability = l
                            .probability
                            .map_or_else(|| "NULL".into(), |x| d.literal(&Value::Float(x)));
                        format!(
                            "({}, {}, {}, {}, CAST({probability} AS DOUBLE), {})",
                            d.text(&stream.name),
                            d.text(&l.event),
                            d.text(&l.person_id),
                            l.rule
                                .as_deref()
                                .map_or_else(|| "NULL".into(), |r| d.text(r)),
                            d.text(run_id)
                        )
                    })
                    .collect();
                // Guarded again in the statement: a link is never written twice.
                statements.push(format!(
                    "INSERT INTO {links} (stream, {file}, person_id, match_rule, match_probability, assigned_run) \
                     SELECT * FROM (VALUES {rows}) AS v(stream, {file}, person_id, match_rule, match_probability, assigned_run) \
                     WHERE NOT EXISTS (SELECT 1 FROM {links} l WHERE l.stream = v.stream AND l.{file} = v.{file})",
                    links = d.ident(LINKS_TABLE),
                    file = d.ident(SOURCE_FILE),
                    rows = rows.join(", ")
                ));
            }
        }
        reports.push(report);
    }
    statements.push(format!("DELETE FROM {}", d.ident(RETIRED_TABLE)));
    for chunk in retired.chunks(INSERT_CHUNK) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|(old, now)| format!("({}, {})", d.text(old), d.text(now)))
            .collect();
        statements.push(format!(
            "INSERT INTO {} (retired_id, person_id) VALUES {}",
            d.ident(RETIRED_TABLE),
            rows.join(", ")
        ));
    }
    for (stream, _) in &present {
        statements.push(view_sql(d, &stream.name));
    }
    wh.execute_in_transaction(&statements)?;
    for r in &reports {
        tracing::info!(
            stream = %r.stream,
            unknown = r.unknown,
            linked = r.linked,
            "stream events linked to persons"
        );
    }
    Ok(reports)
}

fn ensure_tables(wh: &mut dyn Warehouse) -> Result<(), WarehouseError> {
    let d = wh.dialect();
    let text = d.text_type();
    wh.execute(&format!(
        "CREATE TABLE IF NOT EXISTS {} (stream {text}, {} {text}, person_id {text}, match_rule {text}, \
         match_probability DOUBLE, assigned_run {text})",
        d.ident(LINKS_TABLE),
        d.ident(SOURCE_FILE)
    ))?;
    wh.execute(&format!(
        "CREATE TABLE IF NOT EXISTS {} (retired_id {text}, person_id {text})",
        d.ident(RETIRED_TABLE)
    ))
}

/// The stream's events with no person and no link: each one's `source_file` and its
/// values of `columns` as text (absent when null).
fn unknown_events(
    wh: &mut dyn Warehouse,
    stream: &str,
    columns: &[&str],
) -> Result<Vec<UnknownEvent>, WarehouseError> {
    let d = wh.dialect();
    let file = d.ident(SOURCE_FILE);
    let mut select = vec![format!("e.{file}")];
    select.extend(
        columns
            .iter()
            .map(|c| d.cast_text(&format!("e.{}", d.ident(c)))),
    );
    let result = wh.query(&format!(
        "SELECT {} FROM {} e WHERE e.person_id IS NULL AND NOT EXISTS \
         (SELECT 1 FROM {} l WHERE l.stream = {} AND l.{file} = e.{file}) ORDER BY e.{file}",
        select.join(", "),
        d.ident(&table_of(stream)),
        d.ident(LINKS_TABLE),
        d.text(stream)
    ))?;
    Ok(result
        .rows
        .into_iter()
        .filter_map(|row| {
            let event = row.first()?.as_str()?.to_string();
            let record = columns
                .iter()
                .zip(row.iter().skip(1))
                .filter_map(|(c, v)| Some((c.to_string(), v.as_str()?.to_string())))
                .collect();
            Some((event, record))
        })
        .collect())
}

/// `stream_<name>_persons`: every event of the stream, its person id the current one
/// (the id it was matched to at load, else its link's; a retired id replaced by the
/// id it became), with the link's rule and probability for a linked event and
/// `person_assigned_run`, the resolve run that linked it (null when matched at load).
fn view_sql(d: warehouse::Dialect, stream: &str) -> String {
    let file = d.ident(SOURCE_FILE);
    format!(
        "CREATE OR REPLACE VIEW {view} AS SELECT e.* REPLACE (\
           coalesce(r.person_id, e.person_id, l.person_id) AS person_id, \
           coalesce(e.match_rule, l.match_rule) AS match_rule, \
           coalesce(e.match_probability, l.match_probability) AS match_probability), \
         l.assigned_run AS person_assigned_run \
         FROM {events} e \
         LEFT JOIN {links} l ON l.stream = {name} AND l.{file} = e.{file} \
         LEFT JOIN {retired} r ON r.retired_id = coalesce(e.person_id, l.person_id)",
        view = d.ident(&view_of(stream)),
        events = d.ident(&table_of(stream)),
        links = d.ident(LINKS_TABLE),
        retired = d.ident(RETIRED_TABLE),
        name = d.text(stream),
    )
}
