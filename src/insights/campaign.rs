//! A campaign's outcome per member, from the audience's members (with their holdout
//! flag) and the orders that belong to persons: who ordered in the window
//! `[start, start + days)` and for how much, then the lift of treatment over holdout
//! (see [`super::lift`]). Members without an order in the window count as 0.

use std::collections::HashMap;

use chrono::{NaiveDateTime, TimeDelta};

use super::lift::{conversion_lift, mean_lift, Lift, Moments};
use crate::config::{CampaignConfig, CampaignOutcome};

/// One audience member: the person and whether the holdout drew them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub person_id: u64,
    pub holdout: bool,
}

/// One order of a person: when it was placed and its value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Order {
    pub person_id: u64,
    pub at: NaiveDateTime,
    pub amount: f64,
}

/// The campaign's lift over its members. Orders of persons who are not members, and
/// orders outside the window, are ignored; a member listed twice counts once.
pub fn measure(
    campaign: &CampaignConfig,
    members: impl IntoIterator<Item = Member>,
    orders: impl IntoIterator<Item = Order>,
) -> Lift {
    let start = campaign.start.and_hms_opt(0, 0, 0).unwrap_or_default();
    let end = start + TimeDelta::days(i64::from(campaign.days));
    // Per member: holdout flag, orders in the window, their value.
    let mut outcome: HashMap<u64, (bool, u64, f64)> = HashMap::new();
    for m in members {
        outcome.entry(m.person_id).or_insert((m.holdout, 0, 0.0));
    }
    for o in orders {
        if o.at < start || o.at >= end {
            continue;
        }
        if let Some(entry) = outcome.get_mut(&o.person_id) {
            entry.1 += 1;
            entry.2 += o.amount;
        }
    }
    match campaign.outcome {
        CampaignOutcome::Conversion => {
            let (mut t, mut tx, mut h, mut hx) = (0, 0, 0, 0);
            for &(holdout, count, _) in outcome.values() {
                let (n, x) = if holdout {
                    (&mut h, &mut hx)
                } else {
                    (&mut t, &mut tx)
                };
                *n += 1;
                *x += u64::from(count > 0);
            }
            conversion_lift(tx, t, hx, h)
        }
        CampaignOutcome::Revenue { .. } => {
            let (mut t, mut h) = (Vec::new(), Vec::new());
            for &(holdout, _, value) in outcome.values() {
                if holdout {
                    h.push(value)
                } else {
                    t.push(value)
                }
            }
            mean_lift(Moments::of(&t), Moments::of(&h))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn campaign(outcome: CampaignOutcome) -> CampaignConfig {
        CampaignConfig {
            name: "spring".into(),
            audience: "buyers".into(),
            start: NaiveDate::from_ymd_opt(2026, 3, 1).expect("date"),
            outcome,
            days: 10,
            orders: "orders".into(),
            at: "ordered_at".into(),
        }
    }

    fn at(day: u32, hour: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 3, day)
            .and_then(|d| d.and_hms_opt(hour, 0, 0))
            .expect("time")
    }

    fn members() -> Vec<Member> {
        (1..=6)
            .map(|person_id| Member {
                person_id,
                holdout: person_id > 4,
            })
            .collect()
    }

    fn orders() -> Vec<Order> {
        let o = |person_id, at, amount| Order {
            person_id,
            at,
            amount,
        };
        vec![
            o(1, at(1, 0), 10.0),  // first instant of the window
            o(1, at(5, 12), 5.0),  // a second order, same member
            o(2, at(10, 23), 7.0), // last day of the window
            o(3, at(11, 0), 99.0), // the day after: outside
            o(5, at(2, 9), 4.0),   // holdout member
            o(9, at(2, 9), 50.0),  // not a member
        ]
    }

    #[test]
    fn conversion_counts_members_with_an_order_in_the_window() {
        let lift = measure(&campaign(CampaignOutcome::Conversion), members(), orders());
        assert_eq!((lift.treatment_n, lift.holdout_n), (4, 2));
        assert!((lift.treatment - 0.5).abs() < 1e-12, "{lift:?}");
        assert!((lift.holdout - 0.5).abs() < 1e-12, "{lift:?}");
    }

    #[test]
    fn revenue_sums_order_values_in_the_window_per_member() {
        let c = campaign(CampaignOutcome::Revenue {
            amount: "total".into(),
        });
        let lift = measure(&c, members(), orders());
        // Treatment: 15, 7, 0, 0; holdout: 4, 0.
        assert!((lift.treatment - 5.5).abs() < 1e-12, "{lift:?}");
        assert!((lift.holdout - 2.0).abs() < 1e-12, "{lift:?}");
        assert!((lift.absolute - 3.5).abs() < 1e-12, "{lift:?}");
    }
}
