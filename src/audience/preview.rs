//! Looking before building: what each audience last built to ([`list`]), and what an
//! audience would hold now ([`preview`]): its size and share of all persons, a sample
//! of members, a breakdown by a column or trait, and its overlap with another
//! audience, all computed in the warehouse from the compiled query.

use chrono::NaiveDateTime;
use serde::Serialize;

use super::build::{
    definition_fingerprint, loads_fingerprint, AudienceError, BUILDS_TABLE, HOLDOUTS_TABLE,
    RUNS_TABLE,
};
use super::compile::{members_sql, trait_sql, Env};
use super::sql::timestamp_text;
use crate::config::{Pipeline, CUSTOMER_360_TABLE};
use crate::warehouse::{cell_count as number, cell_text as text, Warehouse};

/// One audience as `cdp audience list` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Listed {
    pub name: String,
    pub description: String,
    pub owner: String,
    /// From its last build; null when never built.
    pub last_size: Option<u64>,
    pub last_built: Option<String>,
    pub last_run: Option<String>,
}

/// Every audience of the pipeline with its last build (from `audience_runs`, when the
/// warehouse has it).
pub fn list(wh: &mut dyn Warehouse, p: &Pipeline) -> Result<Vec<Listed>, AudienceError> {
    let d = wh.dialect();
    // A warehouse never built has no runs table: every audience is then unbuilt.
    let last = wh
        .query(&format!(
            "SELECT audience, size, built_at, run FROM (SELECT audience, size, built_at, run, ROW_NUMBER() OVER (PARTITION BY audience ORDER BY run DESC) AS rn FROM {}) AS r WHERE rn = 1",
            d.ident(RUNS_TABLE)
        ))
        .map(|r| r.rows)
        .unwrap_or_default();
    Ok(p.audiences
        .iter()
        .map(|a| {
            let row = last
                .iter()
                .find(|r| r.first().and_then(text).as_deref() == Some(a.name.as_str()));
            Listed {
                name: a.name.clone(),
                description: a.description.clone(),
                owner: a.owner.clone(),
                last_size: row.and_then(|r| r.get(1)).and_then(number),
                last_built: row.and_then(|r| r.get(2)).and_then(text),
                last_run: row.and_then(|r| r.get(3)).and_then(text),
            }
        })
        .collect())
}

/// What to show besides the size.
#[derive(Debug, Clone, Default)]
pub struct PreviewOptions {
    pub sample: u64,
    /// A column of customer_360 or a trait.
    pub by: Option<String>,
    pub overlap: Option<String>,
    /// Evaluate the audience now even when a matching build can be read.
    pub fresh: bool,
}

/// One group of a breakdown.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Group {
    pub value: serde_json::Value,
    pub members: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Overlap {
    pub audience: String,
    pub size: u64,
    /// Persons in both.
    pub both: u64,
}

/// What an audience would hold now.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Preview {
    pub audience: String,
    pub as_of: String,
    pub size: u64,
    /// Every person in customer_360.
    pub persons: u64,
    pub sample_columns: Vec<String>,
    pub sample: Vec<Vec<serde_json::Value>>,
    pub by: Option<String>,
    pub groups: Vec<Group>,
    pub overlap: Option<Overlap>,
    /// The build whose table the figures were read from (null: evaluated now).
    pub built_by: Option<String>,
}

/// The members of an audience, ready to read several times: the table of its last
/// build when that build's definition, as-of and loads match the present ones (no
/// evaluation at all), else its query evaluated once into a temporary table.
struct Members {
    from: String,
    built_by: Option<String>,
    temp: Option<String>,
}

fn members_of(
    wh: &mut dyn Warehouse,
    p: &Pipeline,
    name: &str,
    sql: &str,
    env: Env,
    fresh: bool,
) -> Result<Members, AudienceError> {
    let d = wh.dialect();
    // Events arrive between loads: an audience that reads them is always evaluated.
    if !fresh && super::build::streams_read(p, name).is_empty() {
        let definition = definition_fingerprint(p, name, env).unwrap_or_default();
        let loads = loads_fingerprint(wh);
        // A warehouse never built has no builds table: nothing to read then.
        let built = wh
            .query(&format!(
                "SELECT run FROM {} WHERE audience = {} AND definition = {} AND loads = {}",
                d.ident(BUILDS_TABLE),
                d.text(name),
                d.text(&definition),
                d.text(&loads)
            ))
            .ok()
            .and_then(|r| r.rows.into_iter().next())
            .and_then(|row| row.first().and_then(text));
        if let Some(run) = built {
            let table = p
                .audiences
                .iter()
                .find(|a| a.name == name)
                .map(|a| a.table())
                .unwrap_or_default();
            return Ok(Members {
                from: format!(
                    "SELECT person_id FROM {} UNION ALL SELECT person_id FROM {} WHERE audience = {}",
                    d.ident(&table),
                    d.ident(HOLDOUTS_TABLE),
                    d.text(name)
                ),
                built_by: Some(run),
                temp: None,
            });
        }
    }
    let temp = format!("_cdp_preview_{}", name);
    wh.execute(&d.create_temp_table(&temp, sql))?;
    Ok(Members {
        from: format!("SELECT person_id FROM {}", d.ident(&temp)),
        built_by: None,
        temp: Some(temp),
    })
}

/// Previews one audience.
pub fn preview(
    wh: &mut dyn Warehouse,
    p: &Pipeline,
    name: &str,
    as_of: NaiveDateTime,
    options: &PreviewOptions,
) -> Result<Preview, AudienceError> {
    let d = wh.dialect();
    let env = Env { dialect: d, as_of };
    let known = || {
        p.audiences
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let members = |n: &str| {
        members_sql(p, n, env).ok_or_else(|| AudienceError::Unknown {
            name: n.to_string(),
            known: known(),
        })
    };
    let evaluated = members(name)?;
    for s in super::build::streams_read(p, name).into_iter().chain(
        options
            .overlap
            .iter()
            .flat_map(|o| super::build::streams_read(p, o)),
    ) {
        let view = d.ident(&crate::stream::link::view_of(&s));
        wh.query(&format!("SELECT 1 FROM {view} WHERE 1 = 0"))
            .map_err(|_| AudienceError::NoEvents(s.clone()))?;
    }
    let mut temps = Vec::new();
    let m = members_of(wh, p, name, &evaluated, env, options.fresh)?;
    temps.extend(m.temp.clone());
    let out = preview_members(wh, p, name, env, options, &m, &members, &mut temps);
    for t in temps {
        // Temporary tables end with the session anyway; a failed drop changes nothing.
        let _ = wh.execute(&format!("DROP TABLE IF EXISTS {}", d.ident(&t)));
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn preview_members(
    wh: &mut dyn Warehouse,
    p: &Pipeline,
    name: &str,
    env: Env,
    options: &PreviewOptions,
    m: &Members,
    members: &dyn Fn(&str) -> Result<String, AudienceError>,
    temps: &mut Vec<String>,
) -> Result<Preview, AudienceError> {
    let d = env.dialect;
    let as_of = env.as_of;
    let sql = m.from.clone();
    let c360 = d.ident(CUSTOMER_360_TABLE);
    let pid = d.ident("person_id");
    let sizes = wh.query(&format!(
        "SELECT (SELECT COUNT(*) FROM ({sql}) AS m) AS size, (SELECT COUNT(*) FROM {c360}) AS persons"
    ))?;
    let row = sizes.rows.first().cloned().unwrap_or_default();
    let size = row.first().and_then(number).unwrap_or(0);
    let persons = row.get(1).and_then(number).unwrap_or(0);
    let mut out = Preview {
        audience: name.to_string(),
        as_of: timestamp_text(as_of),
        size,
        persons,
        sample_columns: Vec::new(),
        sample: Vec::new(),
        by: options.by.clone(),
        groups: Vec::new(),
        overlap: None,
        built_by: m.built_by.clone(),
    };
    if options.sample > 0 {
        let mut columns = vec!["person_id".to_string()];
        if let Some(i) = &p.identity {
            columns.extend(i.attributes.iter().cloned());
        }
        let select: Vec<String> = columns
            .iter()
            .map(|c| format!("c.{} AS {}", d.ident(c), d.ident(c)))
            .collect();
        // The first members by id, then their profiles: no join of every member.
        let r = wh.query(&format!(
            "SELECT {} FROM {c360} AS c JOIN (SELECT person_id FROM ({sql}) AS m ORDER BY person_id LIMIT {}) AS s ON s.person_id = c.{pid} ORDER BY c.{pid}",
            select.join(", "),
            options.sample
        ))?;
        out.sample_columns = columns;
        out.sample = r.rows;
    }
    if let Some(by) = &options.by {
        let columns: Vec<&str> = ["person_id", "record_count", "first_seen_run"]
            .into_iter()
            .chain(
                p.identity
                    .iter()
                    .flat_map(|i| i.attributes.iter().map(String::as_str)),
            )
            .chain(p.traits.iter().map(|t| t.name.as_str()))
            .collect();
        if !columns.contains(&by.as_str()) {
            return Err(AudienceError::UnknownColumn {
                name: by.clone(),
                known: columns.join(", "),
            });
        }
        // One join of the members with the values (left: a member without one counts
        // under null).
        let (value, join) = if p.traits.iter().any(|t| t.name == *by) {
            let t = trait_sql(p, by, env).ok_or_else(|| AudienceError::Compile(by.clone()))?;
            (
                "t.value".to_string(),
                format!("LEFT JOIN ({t}) AS t ON t.person_id = m.person_id"),
            )
        } else {
            (
                format!("c.{}", d.ident(by)),
                format!("LEFT JOIN {c360} AS c ON c.{pid} = m.person_id"),
            )
        };
        let r = wh.query(&format!(
            "SELECT {value} AS value, COUNT(*) AS members FROM ({sql}) AS m {join} GROUP BY {value} ORDER BY members DESC, value LIMIT 50"
        ))?;
        out.groups = r
            .rows
            .iter()
            .map(|row| Group {
                value: row.first().cloned().unwrap_or_default(),
                members: row.get(1).and_then(number).unwrap_or(0),
            })
            .collect();
    }
    if let Some(other) = &options.overlap {
        let evaluated = members(other)?;
        let o = members_of(wh, p, other, &evaluated, env, options.fresh)?;
        temps.extend(o.temp.clone());
        let other_sql = o.from;
        let r = wh.query(&format!(
            "SELECT (SELECT COUNT(*) FROM ({other_sql}) AS o) AS size, (SELECT COUNT(*) FROM ({sql}) AS m WHERE m.person_id IN (SELECT person_id FROM ({other_sql}) AS o)) AS both_"
        ))?;
        let row = r.rows.first().cloned().unwrap_or_default();
        out.overlap = Some(Overlap {
            audience: other.clone(),
            size: row.first().and_then(number).unwrap_or(0),
            both: row.get(1).and_then(number).unwrap_or(0),
        });
    }
    Ok(out)
}
