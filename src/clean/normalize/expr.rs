//! Lifts the normalisers into Polars expressions, so a pipeline file's column rules
//! become one lazy plan. Each rule gives two expressions over the raw text column:
//! the clean value (typed; null where the normaliser refused) and the reason it
//! refused (null where it did not).

use std::collections::HashMap;
use std::sync::Arc;

use polars::prelude::*;

use super::{date, email, name, phone, text};
use crate::config::{ColumnKind, ColumnRule};

/// One cleaned value, before it becomes a typed column.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Date(i32),
    Timestamp(i64),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// The column type a kind produces.
pub fn dtype(kind: ColumnKind) -> DataType {
    match kind {
        ColumnKind::Date => DataType::Date,
        ColumnKind::Timestamp => DataType::Datetime(TimeUnit::Milliseconds, None),
        ColumnKind::Integer => DataType::Int64,
        ColumnKind::Float => DataType::Float64,
        ColumnKind::Boolean => DataType::Boolean,
        _ => DataType::String,
    }
}

/// Normalises one raw value according to a column rule; `region` is the source's
/// default phone region.
pub fn normalize(rule: &ColumnRule, raw: &str, region: &str) -> Result<Option<Value>, String> {
    let t = |r: super::Normalized<String>| r.map(|o| o.map(Value::Text));
    match rule.kind {
        ColumnKind::Text => t(text::text(raw)),
        ColumnKind::Title => t(text::title(raw)),
        ColumnKind::Email => t(email::email(raw)),
        ColumnKind::Phone => t(phone::phone(raw, region)),
        ColumnKind::PersonName | ColumnKind::FullName => t(name::person_name(raw)),
        ColumnKind::Postcode => t(text::postcode(raw)),
        ColumnKind::Code => t(text::code(raw)),
        ColumnKind::Date => date::date(raw, &rule.formats).map(|o| o.map(Value::Date)),
        ColumnKind::Timestamp => {
            date::timestamp(raw, &rule.formats).map(|o| o.map(Value::Timestamp))
        }
        ColumnKind::Integer => text::integer(raw).map(|o| o.map(Value::Int)),
        ColumnKind::Float => text::float(raw).map(|o| o.map(Value::Float)),
        ColumnKind::Boolean => text::boolean(raw).map(|o| o.map(Value::Bool)),
    }
}

/// Builds a typed column from cleaned values.
fn typed_column(name: PlSmallStr, kind: ColumnKind, values: Vec<Option<Value>>) -> Column {
    let it = values.into_iter();
    let series = match kind {
        ColumnKind::Date => Int32Chunked::from_iter_options(
            name,
            it.map(|v| match v {
                Some(Value::Date(d)) => Some(d),
                _ => None,
            }),
        )
        .into_series()
        .into_date(),
        ColumnKind::Timestamp => Int64Chunked::from_iter_options(
            name,
            it.map(|v| match v {
                Some(Value::Timestamp(t)) => Some(t),
                _ => None,
            }),
        )
        .into_series()
        .into_datetime(TimeUnit::Milliseconds, None),
        ColumnKind::Integer => Int64Chunked::from_iter_options(
            name,
            it.map(|v| match v {
                Some(Value::Int(i)) => Some(i),
                _ => None,
            }),
        )
        .into_series(),
        ColumnKind::Float => Float64Chunked::from_iter_options(
            name,
            it.map(|v| match v {
                Some(Value::Float(f)) => Some(f),
                _ => None,
            }),
        )
        .into_series(),
        ColumnKind::Boolean => BooleanChunked::from_iter_options(
            name,
            it.map(|v| match v {
                Some(Value::Bool(b)) => Some(b),
                _ => None,
            }),
        )
        .into_series(),
        _ => StringChunked::from_iter_options(
            name,
            it.map(|v| match v {
                Some(Value::Text(s)) => Some(s),
                _ => None,
            }),
        )
        .into_series(),
    };
    series.into_column()
}

/// Source name -> default phone region, shared by the expressions of one plan.
pub type Regions = Arc<HashMap<String, String>>;

/// Runs `f` over each (raw value, region) pair of a text column and the `source` column.
fn per_row<T>(
    cols: &[Column],
    regions: &Regions,
    mut f: impl FnMut(&str, &str) -> Option<T>,
) -> PolarsResult<Vec<Option<T>>> {
    let raw = cols[0].str()?;
    let source = cols[1].str()?;
    Ok(raw
        .iter()
        .zip(source.iter())
        .map(|(value, src)| {
            let region = src
                .and_then(|s| regions.get(s))
                .map_or("US", String::as_str);
            value.and_then(|v| f(v, region))
        })
        .collect())
}

/// The clean value of `rule`'s column.
pub fn value_expr(rule: &ColumnRule, source_col: &str, regions: Regions) -> Expr {
    let rule = Arc::new(rule.clone());
    let kind = rule.kind;
    col(rule.name.as_str()).map_many(
        move |cols: &mut [Column]| {
            let values = per_row(cols, &regions, |v, region| {
                normalize(&rule, v, region).ok().flatten()
            })?;
            Ok(typed_column(cols[0].name().clone(), kind, values))
        },
        &[col(source_col)],
        move |_, fields: &[Field]| Ok(Field::new(fields[0].name().clone(), dtype(kind))),
    )
}

/// Why `rule` refused a value, as text naming the column; null where it did not.
pub fn error_expr(rule: &ColumnRule, source_col: &str, regions: Regions) -> Expr {
    let rule = Arc::new(rule.clone());
    col(rule.name.as_str()).map_many(
        move |cols: &mut [Column]| {
            let reasons = per_row(cols, &regions, |v, region| {
                normalize(&rule, v, region).err()
            })?;
            Ok(
                StringChunked::from_iter_options(cols[0].name().clone(), reasons.into_iter())
                    .into_column(),
            )
        },
        &[col(source_col)],
        move |_, fields: &[Field]| Ok(Field::new(fields[0].name().clone(), DataType::String)),
    )
}

/// First or last name split out of a full-name column.
pub fn split_name_expr(full_name: &str, want_first: bool) -> Expr {
    col(full_name).map(
        move |c: Column| {
            let parts = c.str()?.iter().map(|v| {
                v.and_then(|s| {
                    let (first, last) = name::split_full_name(s);
                    if want_first {
                        first
                    } else {
                        last
                    }
                })
            });
            Ok(StringChunked::from_iter_options(c.name().clone(), parts).into_column())
        },
        |_, f: &Field| Ok(Field::new(f.name().clone(), DataType::String)),
    )
}
