//! `[[campaigns]]`: campaigns sent to an audience with a holdout, each with the outcome
//! that measures it. Validation checks what the file alone can tell: the name, an
//! audience the pipeline declares that holds members out, a real start date, a window
//! length, and an orders entity that belongs to a person with the columns named.

use chrono::NaiveDate;

use super::audiences::date_value;
use super::raw::{CampaignOutcomeName, RawCampaign};
use super::{is_identifier, AudienceConfig, EntityConfig, Validator};

/// The longest outcome window, in days.
const MAX_DAYS: i64 = 3650;

/// One campaign, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignConfig {
    pub name: String,
    /// The audience it went to; its holdout is the comparison group.
    pub audience: String,
    /// The first day of the campaign; outcomes count from its midnight.
    pub start: NaiveDate,
    pub outcome: CampaignOutcome,
    /// The outcome window in days from `start`.
    pub days: u32,
    /// The entity whose records are orders.
    pub orders: String,
    /// The orders' column of when an order was placed.
    pub at: String,
}

/// What a campaign's outcome is, per member.
#[derive(Debug, Clone, PartialEq)]
pub enum CampaignOutcome {
    /// Whether the member placed an order in the window (compared as proportions).
    Conversion,
    /// The member's order value in the window, summing this column (compared as means).
    Revenue { amount: String },
}

impl Validator<'_> {
    pub(super) fn campaigns(
        &mut self,
        raw: Vec<RawCampaign>,
        audiences: &[AudienceConfig],
        entities: &[EntityConfig],
    ) -> Vec<CampaignConfig> {
        let mut out: Vec<CampaignConfig> = Vec::new();
        for (i, c) in raw.into_iter().enumerate() {
            let key = format!("campaigns[{i}]");
            out.push(self.campaign(&key, c, audiences, entities, &out));
        }
        out
    }

    fn campaign(
        &mut self,
        key: &str,
        c: RawCampaign,
        audiences: &[AudienceConfig],
        entities: &[EntityConfig],
        earlier: &[CampaignConfig],
    ) -> CampaignConfig {
        if !is_identifier(&c.name) {
            self.problem(
                format!("{key}.name"),
                "use lower-case letters, digits and '_'",
            );
        } else if earlier.iter().any(|e| e.name == c.name) {
            self.problem(
                format!("{key}.name"),
                format!("campaign {:?} is declared twice", c.name),
            );
        }
        match audiences.iter().find(|a| a.name == c.audience) {
            None => {
                let names: Vec<&str> = audiences.iter().map(|a| a.name.as_str()).collect();
                let hint = super::parse::did_you_mean(&c.audience, &names)
                    .map(|b| format!("; did you mean {b:?}?"))
                    .unwrap_or_default();
                self.problem(
                    format!("{key}.audience"),
                    format!(
                        "no audience {:?}; the pipeline declares {}{hint}",
                        c.audience,
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    ),
                );
            }
            Some(a) if a.holdout_bps == 0 => self.problem(
                format!("{key}.audience"),
                format!(
                    "audience {:?} has no holdout, so there is nothing to compare the \
                     campaign with; give it one (`holdout = \"10%\"`)",
                    a.name
                ),
            ),
            Some(_) => {}
        }
        let start = date_value(&c.start).unwrap_or_else(|| {
            self.problem(
                format!("{key}.start"),
                format!("expected a date like 2026-03-01, not {}", c.start),
            );
            NaiveDate::MIN
        });
        if !(1..=MAX_DAYS).contains(&c.days) {
            self.problem(
                format!("{key}.days"),
                format!("expected 1 to {MAX_DAYS} days, not {}", c.days),
            );
        }
        let outcome = match (c.outcome, c.amount) {
            (CampaignOutcomeName::Conversion, None) => CampaignOutcome::Conversion,
            (CampaignOutcomeName::Conversion, Some(_)) => {
                self.problem(
                    format!("{key}.amount"),
                    "`amount` applies only to outcome revenue",
                );
                CampaignOutcome::Conversion
            }
            (CampaignOutcomeName::Revenue, Some(amount)) => CampaignOutcome::Revenue { amount },
            (CampaignOutcomeName::Revenue, None) => {
                self.problem(
                    format!("{key}.amount"),
                    "missing; a revenue outcome needs the orders' amount column",
                );
                CampaignOutcome::Revenue {
                    amount: String::new(),
                }
            }
        };
        let mut columns = vec![(format!("{key}.at"), c.at.as_str())];
        if let CampaignOutcome::Revenue { amount } = &outcome {
            columns.push((format!("{key}.amount"), amount.as_str()));
        }
        self.orders_entity(&format!("{key}.orders"), &c.orders, entities, &columns);
        CampaignConfig {
            name: c.name,
            audience: c.audience,
            start,
            outcome,
            days: u32::try_from(c.days.clamp(1, MAX_DAYS)).unwrap_or(1),
            orders: c.orders,
            at: c.at,
        }
    }
}

impl Validator<'_> {
    /// Checks an entity named at `key` as a person's orders: it exists, it belongs to a
    /// person (`belongs_to`), and it has each of `columns` (the key naming each, and
    /// the column; an empty name was reported already).
    pub(super) fn orders_entity(
        &mut self,
        key: &str,
        name: &str,
        entities: &[EntityConfig],
        columns: &[(String, &str)],
    ) {
        let Some(e) = entities.iter().find(|e| e.name == name) else {
            let names: Vec<&str> = entities.iter().map(|e| e.name.as_str()).collect();
            self.problem(
                key.to_string(),
                format!(
                    "unknown entity {name:?}; the pipeline declares {}",
                    names.join(", ")
                ),
            );
            return;
        };
        if e.belongs_to.is_none() {
            self.problem(
                key.to_string(),
                format!(
                    "entity {name:?} does not belong to a person (`belongs_to`), so its \
                     orders cannot be counted per person"
                ),
            );
        }
        for (field, column) in columns {
            if !column.is_empty() && e.column(column).is_none() {
                self.problem(
                    field.clone(),
                    format!("unknown column of {name}: {column:?}"),
                );
            }
        }
    }
}
