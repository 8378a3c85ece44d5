//! `[features]`: the per-person feature table `cdp features` writes for machine
//! learning. It names the orders entity (one that belongs to a person), its timestamp
//! and amount columns, the order columns whose value shares become features, and
//! optionally the profile's consent column and a label column to put first in the
//! SageMaker export. Every trait becomes a feature too, read from its records before
//! the cut-off: `times` names, per entity, the column of when a record happened (the
//! orders entity's is `at`). Validation checks every name against the declared
//! entities, and that every trait's entity has such a column.

use super::raw::RawFeatures;
use super::{EntityConfig, TraitConfig, Validator, ValueType};

/// Share columns with more distinct values than this keep the most frequent ones.
pub const MAX_SHARE_VALUES: usize = 20;

/// `[features]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct FeaturesConfig {
    /// The entity whose records are orders; it belongs to a person.
    pub orders: String,
    /// The orders' column of when an order was placed (a date or timestamp).
    pub at: String,
    /// The orders' column of an order's value, when there is one.
    pub amount: Option<String>,
    /// Order columns whose value shares per person become features (currency, channel).
    pub shares: Vec<String>,
    /// A boolean column of `customer_360` saying the person accepts marketing.
    pub consent: Option<String>,
    /// A column of `customer_360` to export first, as the label, for SageMaker.
    pub label: Option<String>,
    /// Per entity, the date or timestamp column of when each of its records happened:
    /// a trait reads only its records before the cut-off. Holds the orders entity
    /// (with `at`) and every entity `times` names.
    pub times: Vec<(String, String)>,
}

impl FeaturesConfig {
    /// The column of when a record of `entity` happened, if one is known.
    pub fn time_of(&self, entity: &str) -> Option<&str> {
        self.times
            .iter()
            .find(|(e, _)| e == entity)
            .map(|(_, c)| c.as_str())
    }
}

impl Validator<'_> {
    pub(super) fn features(
        &mut self,
        raw: RawFeatures,
        entities: &[EntityConfig],
        traits: &[TraitConfig],
    ) -> FeaturesConfig {
        let key = "features";
        let mut columns = vec![(format!("{key}.at"), raw.at.as_str())];
        if let Some(a) = &raw.amount {
            columns.push((format!("{key}.amount"), a.as_str()));
        }
        for (i, s) in raw.shares.iter().enumerate() {
            columns.push((format!("{key}.shares[{i}]"), s.as_str()));
        }
        self.orders_entity(&format!("{key}.orders"), &raw.orders, entities, &columns);
        let person = entities.iter().find(|e| e.name == "person");
        for (field, col) in [("consent", &raw.consent), ("label", &raw.label)] {
            if let (Some(col), Some(p)) = (col, person) {
                if p.column(col).is_none() {
                    self.problem(
                        format!("{key}.{field}"),
                        format!("unknown column of person: {col:?}"),
                    );
                }
            }
        }
        let mut times = vec![(raw.orders.clone(), raw.at.clone())];
        for (entity, column) in &raw.times {
            let field = format!("{key}.times.{entity}");
            let Some(e) = entities.iter().find(|e| e.name == *entity) else {
                let names: Vec<&str> = entities.iter().map(|e| e.name.as_str()).collect();
                self.problem(
                    field,
                    format!(
                        "unknown entity {entity:?}; the pipeline declares {}",
                        names.join(", ")
                    ),
                );
                continue;
            };
            match e.column(column).map(|c| ValueType::of_kind(c.kind)) {
                None => self.problem(field, format!("unknown column of {entity}: {column:?}")),
                Some(ValueType::Date | ValueType::Timestamp) => {
                    times.retain(|(known, _)| known != entity);
                    times.push((entity.clone(), column.clone()));
                }
                Some(_) => self.problem(
                    field,
                    format!("{column:?} is not a date or timestamp column of {entity}"),
                ),
            }
        }
        for t in traits {
            let entity = &t.agg.entity;
            if !times.iter().any(|(e, _)| e == entity) && entities.iter().any(|e| e.name == *entity)
            {
                self.problem(
                    format!("{key}.times"),
                    format!(
                        "trait {:?} reads {entity} records, and the feature table counts only \
                         those before the cut-off: name the column of when each happened \
                         (`times = {{ {entity} = \"<date or timestamp column>\" }}`)",
                        t.name
                    ),
                );
            }
        }
        FeaturesConfig {
            orders: raw.orders,
            at: raw.at,
            amount: raw.amount,
            shares: raw.shares,
            consent: raw.consent,
            label: raw.label,
            times,
        }
    }
}
