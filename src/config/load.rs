//! `[load]`: which tables go to the warehouse; every entity, and with `[identity]` the
//! identity graph and customer 360 tables, when absent.

use super::raw::RawLoad;
use super::Validator;

/// Table names the load step knows besides the entities.
pub const IDENTITY_GRAPH_TABLE: &str = "identity_graph";
pub const CUSTOMER_360_TABLE: &str = "customer_360";

impl Validator<'_> {
    /// The tables to load, given the tables the pipeline makes.
    pub(super) fn load(&mut self, raw: Option<RawLoad>, known: Vec<String>) -> Vec<String> {
        let Some(load) = raw else { return known };
        for (i, t) in load.tables.iter().enumerate() {
            if !known.contains(t) {
                self.problem(
                    format!("load.tables[{i}]"),
                    format!("unknown table {t:?}; known: {}", known.join(", ")),
                );
            }
        }
        load.tables
    }
}
