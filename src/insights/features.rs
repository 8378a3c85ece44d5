//! `cdp features`: one row per person of `customer_360`, computed in the warehouse
//! from data before a cut-off (`as_of`) so that a model trained on it never sees the
//! future: recency, frequency and monetary value with quantile scores (1 to 5, 5 the
//! best), tenure, order counts and values over 30, 90 and 365 days, value shares of
//! chosen order columns, sources seen, whether the profile has an email, phone and
//! address, consent, audience memberships as of the cut-off (from
//! `audience_membership`), and every `[[traits]]` entry as it stood at the cut-off
//! (`trait_<name>`: the audience compiler's own query of the trait, over the records
//! before the cut-off by the entity's column in `[features] times`; a plain count,
//! sum, min, max or average of the orders themselves is a column of the orders' one
//! pass instead, with the same value). The table is `person_features` in the
//! warehouse; the same
//! rows go to the lake as Parquet beside a schema file naming each column's type and
//! meaning, and, with a label, as the CSV SageMaker's built-in algorithms read (no
//! header, label first).
//!
//! Orders are linked to persons exactly as audiences link them (the identity graph,
//! through the entity's `belongs_to`): see [`crate::audience::related_from`].

use chrono::{NaiveDateTime, TimeDelta};
use polars::prelude::{CsvWriter, ParquetWriter, PolarsError, SerWriter};
use serde::Serialize;

use crate::audience::build::MEMBERSHIP_TABLE;
use crate::audience::sql::timestamp_text;
use crate::audience::{grouped_aggregate, or_none_value, related_from, trait_sql_before, Env};
use crate::config::{
    ColumnKind, FeaturesConfig, Pipeline, TraitConfig, Value, ValueType, CUSTOMER_360_TABLE,
    IDENTITY_GRAPH_TABLE, MAX_SHARE_VALUES,
};
use crate::frame::FrameError;
use crate::lake::{Lake, LakeError};
use crate::warehouse::Dialect;
use crate::warehouse::{columns_of, ExportFormat, Warehouse, WarehouseError};

/// The warehouse table the features are written to.
pub const FEATURES_TABLE: &str = "person_features";

/// The windows of the windowed order features, in days.
const WINDOWS: [i64; 3] = [30, 90, 365];

#[derive(Debug, thiserror::Error)]
pub enum FeaturesError {
    #[error(
        "the pipeline has no [features] section; name the orders entity and its columns there"
    )]
    NotConfigured,
    #[error("the warehouse has no {0} table yet; run `cdp load` first")]
    Missing(String),
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("{key}: {source}")]
    Polars {
        key: String,
        #[source]
        source: PolarsError,
    },
}

/// One column of the feature table, as the schema file describes it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FeatureColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub meaning: String,
}

/// What a run of `cdp features` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct FeaturesReport {
    pub as_of: String,
    pub persons: u64,
    pub table: String,
    pub columns: Vec<FeatureColumn>,
    /// Lake keys written: the Parquet object, the schema and, with a label, the CSV.
    pub objects: Vec<String>,
    pub seconds: f64,
}

/// The lake folder of the features cut at `as_of` (one per cut-off: a re-run
/// replaces its objects).
pub fn lake_prefix(as_of: NaiveDateTime) -> String {
    format!("features/as_of={}", as_of.format("%Y-%m-%dT%H%M%S"))
}

/// The distinct values (the most frequent [`MAX_SHARE_VALUES`]) of each share column
/// among orders before `as_of`.
fn share_values(
    wh: &mut dyn Warehouse,
    f: &FeaturesConfig,
    as_of: NaiveDateTime,
) -> Result<Vec<(String, Vec<String>)>, FeaturesError> {
    let d = wh.dialect();
    let mut out = Vec::new();
    for col in &f.shares {
        // The values of every order before the cut-off name the columns; a value only
        // orders of no known person have gives a column of zeros.
        let c = format!("r.{}", d.ident(col));
        let sql = format!(
            "SELECT {v} AS v, COUNT(*) AS n FROM {orders} AS r WHERE r.{at} < {cut} AND {c} IS NOT NULL \
             GROUP BY {v} ORDER BY n DESC, v LIMIT {MAX_SHARE_VALUES}",
            v = d.cast_text(&c),
            orders = d.ident(&f.orders),
            at = d.ident(&f.at),
            cut = d.literal(&Value::Timestamp(as_of)),
        );
        let r = wh.query(&sql)?;
        let mut values: Vec<String> = r
            .rows
            .iter()
            .filter_map(|row| row.first().and_then(|v| v.as_str()).map(str::to_string))
            .collect();
        values.sort();
        out.push((col.clone(), values));
    }
    Ok(out)
}

/// A column name from a value: lower-case letters, digits and `_`.
fn slug(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// What the warehouse holds that the feature query reads.
pub struct Present<'a> {
    /// The columns of `customer_360`.
    pub profile: &'a [String],
    /// Each share column with its values (see [`share_values`]).
    pub shares: &'a [(String, Vec<String>)],
    /// The audiences with membership rows.
    pub audiences: &'a [String],
    /// The traits whose records the warehouse has (their entity's table, or their
    /// stream's view).
    pub traits: &'a [String],
}

/// The feature query and the columns it yields.
pub fn features_sql(
    p: &Pipeline,
    f: &FeaturesConfig,
    d: Dialect,
    as_of: NaiveDateTime,
    present: &Present<'_>,
) -> (String, Vec<FeatureColumn>) {
    let Present {
        profile,
        shares,
        audiences,
        traits,
    } = *present;
    let id = |c: &str| d.ident(c);
    let cut = d.literal(&Value::Timestamp(as_of));
    let mut cols: Vec<FeatureColumn> = Vec::new();
    let mut col = |name: &str, ty: &str, meaning: String| {
        cols.push(FeatureColumn {
            name: name.into(),
            ty: ty.into(),
            meaning,
        })
    };
    let days = |expr: &str| format!("DATEDIFF('day', {expr}, {cut})");
    let mut select = vec![format!("c.{} AS person_id", id("person_id"))];
    col(
        "person_id",
        "text",
        "the person (customer_360.person_id)".into(),
    );

    // Orders before the cut-off, per person.
    let from = related_from(p, &f.orders, d).unwrap_or_default();
    let at = format!("r.{}", id(&f.at));
    let amount = f.amount.as_ref().map(|a| format!("r.{}", id(a)));
    let mut agg = vec![
        format!("g.{} AS person_id", id("person_id")),
        "COUNT(*) AS order_count".to_string(),
        format!("MIN({at}) AS first_at"),
        format!("MAX({at}) AS last_at"),
    ];
    if let Some(a) = &amount {
        agg.push(format!("SUM({a}) AS monetary"));
    }
    for w in WINDOWS {
        let since = d.literal(&Value::Timestamp(as_of - TimeDelta::days(w)));
        agg.push(format!(
            "COUNT(CASE WHEN {at} >= {since} THEN 1 END) AS orders_{w}d"
        ));
        if let Some(a) = &amount {
            agg.push(format!(
                "COALESCE(SUM(CASE WHEN {at} >= {since} THEN {a} END), 0) AS value_{w}d"
            ));
        }
    }
    let mut share_cols: Vec<(String, &str, &str)> = Vec::new();
    for (c, values) in shares {
        for v in values {
            let name = format!("share_{}_{}", slug(c), slug(v));
            if share_cols.iter().any(|s| s.0 == name) {
                continue;
            }
            agg.push(format!(
                "AVG(CASE WHEN {} = {} THEN 1.0 ELSE 0.0 END) AS {}",
                d.cast_text(&format!("r.{}", id(c))),
                d.text(v),
                id(&name)
            ));
            share_cols.push((name, c, v));
        }
    }
    // Traits that aggregate the orders themselves, unfiltered and cut off by the same
    // column, are columns of this one pass over the orders rather than passes of their
    // own: trait name -> its value for a person (left-joined).
    let mut folded: Vec<(&str, String)> = Vec::new();
    for (i, t) in p.traits.iter().enumerate() {
        let same_records = t.agg.entity == f.orders
            && t.agg.stream.is_none()
            && t.agg.filter.is_none()
            && f.time_of(&t.agg.entity) == Some(f.at.as_str());
        if !traits.contains(&t.name) || !same_records {
            continue;
        }
        if let Some(value) = grouped_aggregate(&t.agg, d) {
            agg.push(format!("{value} AS trait_{i}"));
            folded.push((&t.name, or_none_value(&t.agg, &format!("o.trait_{i}"))));
        }
    }
    let orders_cte = format!(
        "SELECT {} {from} WHERE {at} < {cut} GROUP BY g.{}",
        agg.join(", "),
        id("person_id")
    );

    // Recency, frequency, monetary and their quantile scores among persons with orders:
    // scored over the persons' order aggregates, before they meet the profiles (a
    // window over just those rows sorts fewer, and narrower, rows than one over the
    // joined table would).
    let mut scores = vec![
        "NTILE(5) OVER (ORDER BY last_at ASC) AS r_score".to_string(),
        "NTILE(5) OVER (ORDER BY order_count ASC) AS f_score".to_string(),
    ];
    if amount.is_some() {
        scores.push("NTILE(5) OVER (ORDER BY monetary ASC) AS m_score".into());
    }
    let orders_cte = format!("SELECT a.*, {} FROM ({orders_cte}) AS a", scores.join(", "));
    select.push(format!("{} AS recency_days", days("o.last_at")));
    col(
        "recency_days",
        "integer",
        format!(
            "days from the last {} before the cut-off to the cut-off; empty without one",
            f.orders
        ),
    );
    select.push("COALESCE(o.order_count, 0) AS frequency".into());
    col(
        "frequency",
        "integer",
        format!("{} before the cut-off", f.orders),
    );
    if amount.is_some() {
        select.push("COALESCE(o.monetary, 0) AS monetary".into());
        col(
            "monetary",
            "number",
            format!(
                "total {} of {} before the cut-off",
                f.amount.as_deref().unwrap_or(""),
                f.orders
            ),
        );
    }
    select.push("o.r_score AS r_score".into());
    col(
        "r_score",
        "integer",
        "recency quintile, 5 the most recent; empty without orders".into(),
    );
    select.push("o.f_score AS f_score".into());
    col(
        "f_score",
        "integer",
        "frequency quintile, 5 the most orders; empty without orders".into(),
    );
    if amount.is_some() {
        select.push("o.m_score AS m_score".into());
        col(
            "m_score",
            "integer",
            "monetary quintile, 5 the highest value; empty without orders".into(),
        );
    }
    select.push(format!("{} AS tenure_days", days("o.first_at")));
    col(
        "tenure_days",
        "integer",
        "days from the first order to the cut-off; empty without orders".into(),
    );
    for w in WINDOWS {
        select.push(format!("COALESCE(o.orders_{w}d, 0) AS orders_{w}d"));
        col(
            &format!("orders_{w}d"),
            "integer",
            format!("orders in the {w} days before the cut-off"),
        );
        if amount.is_some() {
            select.push(format!("COALESCE(o.value_{w}d, 0) AS value_{w}d"));
            col(
                &format!("value_{w}d"),
                "number",
                format!("order value in the {w} days before the cut-off"),
            );
        }
    }
    for (name, c, v) in &share_cols {
        select.push(format!("o.{} AS {}", id(name), id(name)));
        col(
            name,
            "number",
            format!("share of the person's orders with {c} = {v:?}; empty without orders"),
        );
    }

    // The profile: sources seen, contact points, consent.
    select.push("COALESCE(s.sources_seen, 0) AS sources_seen".into());
    col(
        "sources_seen",
        "integer",
        "distinct sources with a record of the person".into(),
    );
    let person = p.entity("person");
    let kind_col = |kinds: &[ColumnKind]| {
        person.and_then(|e| {
            profile
                .iter()
                .find(|c| e.column(c).is_some_and(|r| kinds.contains(&r.kind)))
                .cloned()
        })
    };
    for (name, kinds) in [
        ("has_email", &[ColumnKind::Email][..]),
        ("has_phone", &[ColumnKind::Phone][..]),
        ("has_address", &[ColumnKind::Street][..]),
    ] {
        if let Some(c) = kind_col(kinds) {
            select.push(format!("c.{} IS NOT NULL AS {name}", id(&c)));
            col(name, "boolean", format!("the profile has a {c}"));
        }
    }
    if let Some(c) = &f.consent {
        select.push(format!(
            "COALESCE(CAST(c.{} AS BOOLEAN), FALSE) AS consent",
            id(c)
        ));
        col("consent", "boolean", format!("the profile's {c}"));
    }
    if let Some(c) = &f.label {
        select.push(format!("c.{} AS label", id(c)));
        col(
            "label",
            "as in customer_360",
            format!("the label for training: customer_360.{c}"),
        );
    }

    // Audience memberships as of the cut-off: a stay is its entry row and, once the
    // person left, an exit row with the same `entered_at`.
    let mut mem = Vec::new();
    for a in audiences {
        let name = format!("in_{}", slug(a));
        mem.push(format!(
            "MAX(CASE WHEN audience = {} THEN 1 ELSE 0 END) AS {}",
            d.text(a),
            id(&name)
        ));
        select.push(format!("COALESCE(m.{n}, 0) = 1 AS {n}", n = id(&name)));
        col(
            &name,
            "boolean",
            format!("a member of audience {a} at the cut-off"),
        );
    }

    // Traits at the cut-off: each the audience compiler's query of it (one row per
    // person of customer_360), over the records before the cut-off.
    let env = Env { dialect: d, as_of };
    let mut trait_ctes = Vec::new();
    for (i, t) in p.traits.iter().enumerate() {
        if !traits.contains(&t.name) {
            continue;
        }
        let name = format!("trait_{}", slug(&t.name));
        if let Some((_, value)) = folded.iter().find(|(n, _)| *n == t.name) {
            select.push(format!("{value} AS {}", id(&name)));
            col(&name, trait_type(t.agg.ty), trait_meaning(t));
            continue;
        }
        let Some(sql) = f
            .time_of(&t.agg.entity)
            .and_then(|at| trait_sql_before(p, &t.name, env, at))
        else {
            continue;
        };
        let cte = format!("t{i}");
        select.push(format!("{cte}.value AS {}", id(&name)));
        col(&name, trait_type(t.agg.ty), trait_meaning(t));
        trait_ctes.push((cte, sql));
    }

    let pid = d.cast_text(&format!("c.{}", id("person_id")));
    let mut with = vec![
        format!("o AS ({orders_cte})"),
        format!(
            "s AS (SELECT {p} AS person_id, COUNT(DISTINCT {src}) AS sources_seen FROM {g} GROUP BY {p})",
            p = id("person_id"),
            src = id("source"),
            g = id(IDENTITY_GRAPH_TABLE)
        ),
    ];
    let mut joins = format!(
        " LEFT JOIN o ON {pid} = {} LEFT JOIN s ON {pid} = {}",
        d.cast_text("o.person_id"),
        d.cast_text("s.person_id")
    );
    if !mem.is_empty() {
        with.push(format!(
            "m AS (SELECT person_id, {} FROM (SELECT person_id, audience, entered_at, MAX(exited_at) AS exited_at FROM {} GROUP BY person_id, audience, entered_at) AS stay WHERE entered_at <= {cut} AND (exited_at IS NULL OR exited_at > {cut}) GROUP BY person_id)",
            mem.join(", "),
            id(MEMBERSHIP_TABLE)
        ));
        joins.push_str(&format!(" LEFT JOIN m ON {pid} = m.person_id"));
    }
    for (cte, sql) in trait_ctes {
        with.push(format!("{cte} AS ({sql})"));
        joins.push_str(&format!(
            " LEFT JOIN {cte} ON {pid} = {}",
            d.cast_text(&format!("{cte}.person_id"))
        ));
    }
    let sql = format!(
        "WITH {} SELECT {} FROM {} AS c{joins}",
        with.join(", "),
        select.join(", "),
        id(CUSTOMER_360_TABLE)
    );
    (sql, cols)
}

/// The schema file's type of a trait's value.
fn trait_type(ty: ValueType) -> &'static str {
    match ty {
        ValueType::Text | ValueType::List => "text",
        ValueType::Integer => "integer",
        ValueType::Float => "number",
        ValueType::Boolean => "boolean",
        ValueType::Date => "date",
        ValueType::Timestamp => "timestamp",
    }
}

/// The schema file's meaning of a trait: its description (else what it aggregates),
/// as of the cut-off.
fn trait_meaning(t: &TraitConfig) -> String {
    let what = if t.description.trim().is_empty() {
        let of = t.agg.of_clause();
        format!(
            "{:?}{of} over the person's {} records",
            t.agg.aggregate, t.agg.entity
        )
        .to_lowercase()
    } else {
        t.description.trim().trim_end_matches('.').to_string()
    };
    format!(
        "trait {}: {what}, from the records before the cut-off",
        t.name
    )
}

/// Computes the features at `as_of`, replaces `person_features`, and writes the lake
/// objects (a re-run at the same cut-off replaces them: each write is atomic).
pub fn run(
    p: &Pipeline,
    lake: &Lake,
    wh: &mut dyn Warehouse,
    as_of: NaiveDateTime,
) -> Result<FeaturesReport, FeaturesError> {
    let started = std::time::Instant::now();
    let f = p.features.as_ref().ok_or(FeaturesError::NotConfigured)?;
    let d = wh.dialect();
    let profile = columns_of(wh, CUSTOMER_360_TABLE)?
        .ok_or_else(|| FeaturesError::Missing(CUSTOMER_360_TABLE.into()))?;
    for t in [IDENTITY_GRAPH_TABLE, f.orders.as_str()] {
        if columns_of(wh, t)?.is_none() {
            return Err(FeaturesError::Missing(t.into()));
        }
    }
    let audiences: Vec<String> = if columns_of(wh, MEMBERSHIP_TABLE)?.is_some() {
        p.audiences.iter().map(|a| a.name.clone()).collect()
    } else {
        Vec::new()
    };
    let mut traits = Vec::new();
    for t in &p.traits {
        let table = match &t.agg.stream {
            Some(stream) => crate::stream::link::view_of(stream),
            None => t.agg.entity.clone(),
        };
        if columns_of(wh, &table)?.is_some() {
            traits.push(t.name.clone());
        }
    }
    let shares = share_values(wh, f, as_of)?;
    let (sql, columns) = features_sql(
        p,
        f,
        d,
        as_of,
        &Present {
            profile: &profile,
            shares: &shares,
            audiences: &audiences,
            traits: &traits,
        },
    );
    wh.execute(&format!(
        "CREATE OR REPLACE TABLE {} AS {sql} ORDER BY person_id",
        d.ident(FEATURES_TABLE)
    ))?;
    let table = d.ident(FEATURES_TABLE);
    let persons = wh
        .query(&format!("SELECT COUNT(*) FROM {table}"))?
        .rows
        .first()
        .and_then(|r| r.first())
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    let prefix = lake_prefix(as_of);
    let mut objects = Vec::new();
    let data_key = format!("{prefix}/person_features.parquet");
    // DuckDB scans a table in the order its rows went in, which the CREATE above
    // sorted: sorting 10M rows again would cost seconds. Elsewhere, ask for it.
    let order = match d {
        crate::warehouse::Dialect::DuckDb => "",
        crate::warehouse::Dialect::Snowflake => " ORDER BY person_id",
    };
    export(
        lake,
        wh,
        &format!("SELECT * FROM {table}{order}"),
        &data_key,
        ExportFormat::Parquet,
    )?;
    objects.push(data_key);
    let schema_key = format!("{prefix}/schema.json");
    lake.put_json(&schema_key, &serde_json::json!({ "as_of": timestamp_text(as_of), "table": FEATURES_TABLE, "columns": columns }))?;
    objects.push(schema_key);
    if f.label.is_some() {
        // SageMaker's built-in algorithms read CSV without a header, the label first,
        // numbers only: every feature but the person id, booleans as 0/1. Rows without
        // a label cannot train and are left out.
        let mut select = vec!["label".to_string()];
        // Numbers only: a text, date or timestamp trait stays in the table and the
        // Parquet, not here.
        for c in columns.iter().filter(|c| {
            c.name != "person_id"
                && c.name != "label"
                && matches!(c.ty.as_str(), "integer" | "number" | "boolean")
        }) {
            let col = d.ident(&c.name);
            select.push(if c.ty == "boolean" {
                format!("CAST({col} AS INTEGER) AS {col}")
            } else {
                col
            });
        }
        let key = format!("{prefix}/sagemaker.csv");
        export(
            lake,
            wh,
            &format!(
                "SELECT {} FROM {table} WHERE label IS NOT NULL",
                select.join(", ")
            ),
            &key,
            ExportFormat::CsvNoHeader,
        )?;
        objects.push(key);
    }
    Ok(FeaturesReport {
        as_of: timestamp_text(as_of),
        persons,
        table: FEATURES_TABLE.into(),
        columns,
        objects,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Writes a query's rows to the lake object `key`: the warehouse writes the file
/// itself when it can (DuckDB), else the rows come back as a frame and are written
/// here. Either way the object appears whole or not at all.
fn export(
    lake: &Lake,
    wh: &mut dyn Warehouse,
    sql: &str,
    key: &str,
    format: ExportFormat,
) -> Result<(), FeaturesError> {
    let mut file = lake.create(key)?;
    let Some(handle) = file.take_file() else {
        return Ok(());
    };
    drop(handle);
    if !wh.export_file(sql, file.temp_path(), format)? {
        let mut df = wh.query_frame(sql)?;
        let polars = |source| FeaturesError::Polars {
            key: key.into(),
            source,
        };
        let io = |source| LakeError::Io {
            key: key.into(),
            source,
        };
        let mut w = std::io::BufWriter::new(std::fs::File::create(file.temp_path()).map_err(io)?);
        match format {
            ExportFormat::Parquet => {
                ParquetWriter::new(&mut w).finish(&mut df).map_err(polars)?;
            }
            ExportFormat::CsvNoHeader => {
                CsvWriter::new(&mut w)
                    .include_header(false)
                    .finish(&mut df)
                    .map_err(polars)?;
            }
        }
        std::io::Write::flush(&mut w).map_err(io)?;
    }
    file.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_slugs_make_column_names() {
        assert_eq!(slug("USD"), "usd");
        assert_eq!(slug("web shop"), "web_shop");
        assert_eq!(slug(""), "_");
    }
}
