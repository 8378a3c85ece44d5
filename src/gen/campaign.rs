//! A campaign effect planted in the shop's orders, so that `cdp report`'s lift can be
//! checked against a known truth (`cdp gen --campaign-lift`).
//!
//! The report compares an audience's members with its holdout, and the holdout is
//! drawn in the warehouse from a hash of each member's person id and the audience's
//! salt. Person ids do not exist yet when data is generated, but they are not random
//! either: a first resolve gives a new person the id derived from the smallest key
//! (source, record id) of its records ([`crate::identity::ids::minted_id`]). The
//! generator writes every record of a true person, so it derives the id a correct
//! resolve will give that person and draws the holdout by the audience's own rule
//! ([`crate::audience::sql::bucket`]). It then owns the campaign window: an ordinary
//! order drawn inside it is moved out, and each person with a shop account orders in
//! the window with probability `base`, plus `lift` when the holdout does not draw
//! them. The true conversion lift is `lift` exactly; the true revenue lift per member
//! is `lift` times the mean order value ([`MEAN_ORDER_CENTS`]). A person the resolve
//! splits or merges differently gets another id, and so maybe another group: that
//! only dilutes the measured lift by the share of such persons.

use std::collections::HashMap;

use super::rng::Rng;
use crate::identity::ids::{minted_id, RecordKey};

/// The mean of an order's value in cents: 500 plus two uniform draws below 20,000.
pub const MEAN_ORDER_CENTS: f64 = 500.0 + 2.0 * 19_999.0 / 2.0;

/// What to plant, as `cdp gen` takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlantedCampaign {
    /// The salt of the audience's hash: its `salt`, or its name when it sets none.
    pub salt: String,
    /// The audience's holdout in basis points (`holdout = "10%"` is 1000).
    pub holdout_bps: u32,
    /// The first day of the window, as days since 1970-01-01.
    pub start_day: i64,
    /// The window's length in days.
    pub days: u32,
    /// The chance that a person with a shop account orders in the window untreated.
    pub base: f64,
    /// Added to that chance for the treated (members the holdout does not draw).
    pub lift: f64,
}

impl PlantedCampaign {
    /// Problems with the values, each a sentence; empty when they make sense.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(0.0..=1.0).contains(&self.base) {
            out.push(format!(
                "the base rate must be within 0 to 1, not {}",
                self.base
            ));
        }
        if !(0.0..=1.0).contains(&(self.base + self.lift)) {
            out.push(format!(
                "base {} plus lift {} must be within 0 to 1",
                self.base, self.lift
            ));
        }
        if self.holdout_bps == 0 || self.holdout_bps >= 10_000 {
            out.push("the holdout must be above 0% and below 100%".into());
        }
        if self.days == 0 {
            out.push("the window needs at least one day".into());
        }
        out
    }

    /// The window as `[from, to)` in seconds since the epoch.
    fn window(&self) -> (i64, i64) {
        let from = self.start_day * 86_400;
        (from, from + i64::from(self.days) * 86_400)
    }
}

/// What the generator knows of a true person while their records are written.
#[derive(Default)]
struct Seen {
    keys: Vec<RecordKey>,
    /// Shop account ids, in the order they were written.
    accounts: Vec<String>,
}

/// One planted order: the account, when (seconds since the epoch), the value in cents.
pub struct PlantedOrder {
    pub account: String,
    pub at: i64,
    pub cents: u64,
}

/// The plan at work: the window, a generator of its own (so the rest of the data is
/// drawn exactly as without a campaign), and the records of persons not yet complete.
pub struct Planter {
    plan: PlantedCampaign,
    from: i64,
    to: i64,
    rng: Rng,
    seen: HashMap<u64, Seen>,
}

impl Planter {
    pub fn new(plan: PlantedCampaign, seed: u64) -> Self {
        let (from, to) = plan.window();
        Self {
            plan,
            from,
            to,
            rng: Rng::new(seed ^ 0x6361_6d70_6169_676e),
            seen: HashMap::new(),
        }
    }

    /// An ordinary order's time, moved out of the window when it falls inside: to the
    /// same distance past its end, or before its start when that would pass `end`.
    pub fn outside(&self, at: i64, end: i64) -> i64 {
        if at < self.from || at >= self.to {
            return at;
        }
        let after = at + (self.to - self.from);
        if after <= end {
            after
        } else {
            at - (self.to - self.from)
        }
    }

    /// Notes a record of the true person `person`.
    pub fn record(&mut self, person: u64, source: &str, record_id: &str) {
        let seen = self.seen.entry(person).or_default();
        seen.keys.push((source.to_string(), record_id.to_string()));
        if source == "shop_customers" {
            seen.accounts.push(record_id.to_string());
        }
    }

    /// Whether the audience's holdout draws the person these records make.
    fn held_out(&self, keys: &[RecordKey]) -> bool {
        minted_id(keys).is_some_and(|id| {
            crate::audience::sql::bucket(&id, &self.plan.salt) < self.plan.holdout_bps
        })
    }

    /// The planted order of a person whose every record is written (none if they have
    /// no shop account or do not order); forgets the person.
    pub fn complete(&mut self, person: u64) -> Option<PlantedOrder> {
        let seen = self.seen.remove(&person)?;
        let account = seen.accounts.first()?.clone();
        let chance = if self.held_out(&seen.keys) {
            self.plan.base
        } else {
            self.plan.base + self.plan.lift
        };
        let orders = self.rng.chance(chance);
        // Drawn either way, so one person's group never shifts another's draws.
        let at = self.rng.range(self.from, self.to - 1);
        let cents = 500 + self.rng.below(20_000) + self.rng.below(20_000);
        orders.then_some(PlantedOrder { account, at, cents })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(lift: f64) -> PlantedCampaign {
        PlantedCampaign {
            salt: "campaign".into(),
            holdout_bps: 5000,
            start_day: super::super::text::days(2026, 3, 1),
            days: 30,
            base: 0.2,
            lift,
        }
    }

    #[test]
    fn ordinary_orders_leave_the_window() {
        let p = Planter::new(plan(0.1), 1);
        let (from, to) = (p.from, p.to);
        assert_eq!(p.outside(from - 1, i64::MAX), from - 1);
        assert_eq!(p.outside(from, i64::MAX), to);
        assert_eq!(p.outside(to - 1, i64::MAX), 2 * to - from - 1);
        assert_eq!(p.outside(from + 5, to), from + 5 - (to - from));
        assert_eq!(p.outside(to, i64::MAX), to);
    }

    #[test]
    fn treated_persons_order_at_base_plus_lift_and_held_out_ones_at_base() {
        let mut p = Planter::new(plan(0.3), 7);
        let (mut n, mut x) = ([0u32; 2], [0u32; 2]);
        for person in 0..20_000u64 {
            p.record(person, "crm_contacts", &format!("c{person}"));
            p.record(person, "shop_customers", &(100_000 + person).to_string());
            let keys = p.seen[&person].keys.clone();
            let held = usize::from(p.held_out(&keys));
            let order = p.complete(person);
            if let Some(o) = &order {
                assert!(o.at >= p.from && o.at < p.to);
                assert_eq!(o.account, (100_000 + person).to_string());
            }
            n[held] += 1;
            x[held] += u32::from(order.is_some());
        }
        let rate = |i: usize| f64::from(x[i]) / f64::from(n[i]);
        // About half held out; rates within 4 standard errors of 0.5 and 0.2.
        assert!((n[1] as f64 / 20_000.0 - 0.5).abs() < 0.02, "{n:?}");
        assert!((rate(0) - 0.5).abs() < 4.0 * (0.25f64 / 10_000.0).sqrt());
        assert!((rate(1) - 0.2).abs() < 4.0 * (0.16f64 / 10_000.0).sqrt());
        // No shop account: nothing planted.
        p.record(1, "crm_contacts", "x");
        assert!(p.complete(1).is_none());
    }

    #[test]
    fn values_out_of_range_are_reported() {
        assert!(plan(0.1).problems().is_empty());
        assert_eq!(plan(0.9).problems().len(), 1);
        let mut p = plan(0.0);
        p.holdout_bps = 0;
        p.days = 0;
        assert_eq!(p.problems().len(), 2);
    }
}
