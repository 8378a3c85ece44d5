//! What a sync would send now: the rows of its audience, table or query, read from
//! the warehouse, with consent and suppression lists applied, mapped to the
//! destination's fields (transforms applied) and hashed.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::diff::{hash, Row};
use super::SyncError;
use crate::config::{FieldMap, FieldValue, SyncConfig, SyncFrom, Transform};
use crate::warehouse::{Dialect, Warehouse};

/// The column that marks a suppressed row in the query cdp builds.
const SUPPRESSED: &str = "__cdp_suppressed";

/// What reading the rows found besides them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Filtered {
    /// Rows without consent (false or unknown).
    pub no_consent: u64,
    /// Rows on a suppression list.
    pub suppressed: u64,
}

/// The SQL that reads a sync's rows, with a 0/1 column for suppressed rows.
pub fn query(sync: &SyncConfig, dialect: Dialect) -> String {
    let base = match &sync.from {
        SyncFrom::Table { table, .. } => {
            format!("SELECT * FROM {}", qualified(table, dialect))
        }
        SyncFrom::Query { sql, .. } => {
            format!("SELECT * FROM ({}) AS q", sql.trim().trim_end_matches(';'))
        }
        SyncFrom::Audience(name) => crate::sync::audience_query(name, dialect),
    };
    let suppressed = if sync.suppress.is_empty() {
        "0".to_string()
    } else {
        let any: Vec<String> = sync
            .suppress
            .iter()
            .map(|s| {
                format!(
                    "EXISTS (SELECT 1 FROM {} AS l WHERE lower(CAST(l.{} AS VARCHAR)) = lower(CAST(s.{} AS VARCHAR)))",
                    qualified(&s.table, dialect),
                    dialect.ident(&s.list_column),
                    dialect.ident(&s.column)
                )
            })
            .collect();
        format!("CASE WHEN {} THEN 1 ELSE 0 END", any.join(" OR "))
    };
    format!("SELECT s.*, {suppressed} AS {SUPPRESSED} FROM ({base}) AS s")
}

/// `db.schema.table` quoted part by part, as the dialect spells the names cdp creates.
fn qualified(name: &str, dialect: Dialect) -> String {
    name.split('.')
        .map(|part| dialect.ident(part))
        .collect::<Vec<_>>()
        .join(".")
}

/// Reads and maps the rows: the destination's field names and the rows.
pub fn read(
    warehouse: &mut dyn Warehouse,
    sync: &SyncConfig,
) -> Result<(Vec<String>, Vec<Row>, Filtered), SyncError> {
    let result = warehouse
        .query(&query(sync, warehouse.dialect()))
        .map_err(|source| SyncError::Read {
            sync: sync.name.clone(),
            source: Box::new(source),
        })?;
    let columns: Vec<String> = result.columns.iter().map(|c| c.to_lowercase()).collect();
    let position = |column: &str| -> Result<usize, SyncError> {
        columns
            .iter()
            .position(|c| c == &column.to_lowercase())
            .ok_or_else(|| SyncError::UnknownColumn {
                sync: sync.name.clone(),
                column: column.into(),
                available: columns
                    .iter()
                    .filter(|c| *c != SUPPRESSED)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    };
    let key_at = position(sync.from.key())?;
    let consent_at = sync.consent.as_deref().map(position).transpose()?;
    let suppressed_at = position(SUPPRESSED)?;
    // The fields to send: as mapped, or every column under its own name.
    let fields: Vec<FieldMap> = if sync.fields.is_empty() {
        result
            .columns
            .iter()
            .filter(|c| c.to_lowercase() != SUPPRESSED)
            .map(|c| FieldMap {
                name: c.to_lowercase(),
                value: FieldValue::Column {
                    column: c.clone(),
                    transforms: Vec::new(),
                },
            })
            .collect()
    } else {
        sync.fields.clone()
    };
    enum Source {
        At(usize, Vec<Transform>),
        Constant(Value),
    }
    let sources: Vec<Source> = fields
        .iter()
        .map(|f| match &f.value {
            FieldValue::Column { column, transforms } => {
                Ok(Source::At(position(column)?, transforms.clone()))
            }
            FieldValue::Constant(c) => Ok(Source::Constant(Value::String(c.clone()))),
        })
        .collect::<Result<_, SyncError>>()?;
    let mut filtered = Filtered::default();
    let mut rows = Vec::with_capacity(result.rows.len());
    let mut null_keys = 0;
    for row in &result.rows {
        if row[suppressed_at]
            .as_i64()
            .unwrap_or_else(|| text(&row[suppressed_at]).parse().unwrap_or(0))
            != 0
        {
            filtered.suppressed += 1;
            continue;
        }
        if let Some(c) = consent_at {
            if !is_true(&row[c]) {
                filtered.no_consent += 1;
                continue;
            }
        }
        let key = match &row[key_at] {
            Value::Null => {
                null_keys += 1;
                continue;
            }
            v => text(v),
        };
        let values: Vec<Value> = sources
            .iter()
            .map(|s| match s {
                Source::At(i, transforms) => apply(&row[*i], transforms),
                Source::Constant(v) => v.clone(),
            })
            .collect();
        let values = Value::Array(values).to_string();
        rows.push(Row {
            key,
            hash: hash(&values),
            values,
        });
    }
    if null_keys > 0 {
        return Err(SyncError::NullKey {
            sync: sync.name.clone(),
            column: sync.from.key().into(),
            rows: null_keys,
        });
    }
    Ok((fields.into_iter().map(|f| f.name).collect(), rows, filtered))
}

/// A value as text: strings as they are, anything else as JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn is_true(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_i64() == Some(1),
        Value::String(s) => matches!(s.to_ascii_lowercase().as_str(), "true" | "t" | "1" | "yes"),
        _ => false,
    }
}

/// Applies transforms in order; null stays null, and a phone that is not one is null.
pub fn apply(v: &Value, transforms: &[Transform]) -> Value {
    if transforms.is_empty() || v.is_null() {
        return v.clone();
    }
    let mut t = text(v);
    for tr in transforms {
        t = match tr {
            Transform::Trim => t.trim().to_string(),
            Transform::Lower => t.to_lowercase(),
            Transform::Upper => t.to_uppercase(),
            Transform::Sha256 => sha256_hex(&t),
            Transform::Digits => t.chars().filter(char::is_ascii_digit).collect(),
            Transform::E164 => match crate::clean::normalize::phone::phone(&t, "US") {
                Ok(Some(p)) => p,
                _ => return Value::Null,
            },
        };
    }
    Value::String(t)
}

pub fn sha256_hex(text: &str) -> String {
    sha256_hex_bytes(text.as_bytes())
}

pub fn sha256_hex_bytes(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn transforms_apply_in_order_and_keep_nulls() {
        let v = json!("  Ada@Example.COM ");
        assert_eq!(
            apply(&v, &[Transform::Trim, Transform::Lower]),
            json!("ada@example.com")
        );
        assert_eq!(
            apply(&v, &[Transform::Trim, Transform::Lower, Transform::Sha256]),
            json!(sha256_hex("ada@example.com"))
        );
        assert_eq!(apply(&Value::Null, &[Transform::Sha256]), Value::Null);
        assert_eq!(
            apply(&json!("(415) 555-2671"), &[Transform::E164]),
            json!("+14155552671")
        );
        assert_eq!(apply(&json!("12"), &[Transform::E164]), Value::Null);
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
