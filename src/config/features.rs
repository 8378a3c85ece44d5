//! `[features]`: the per-person feature table `cdp features` writes for machine
//! learning. It names the orders entity (one that belongs to a person), its timestamp
//! and amount columns, the order columns whose value shares become features, and
//! optionally the profile's consent column and a label column to put first in the
//! SageMaker export. Validation checks every name against the declared entities.

use super::raw::RawFeatures;
use super::{EntityConfig, Validator};

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
}

impl Validator<'_> {
    pub(super) fn features(
        &mut self,
        raw: RawFeatures,
        entities: &[EntityConfig],
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
        FeaturesConfig {
            orders: raw.orders,
            at: raw.at,
            amount: raw.amount,
            shares: raw.shares,
            consent: raw.consent,
            label: raw.label,
        }
    }
}
