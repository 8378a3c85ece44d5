//! Audiences: segments of persons over `customer_360`, declared in the pipeline file
//! ([`crate::config::AudienceConfig`]), compiled to the warehouse's SQL ([`compile`],
//! through the one builder in [`sql`]) and built there ([`build`]): one table per
//! audience, the membership history, holdouts, and a size guard.

pub mod compile;
pub mod sql;

pub use compile::{
    assignment_sql, grouped_aggregate, members_sql, or_none_value, related_from, trait_sql,
    trait_sql_before, Env,
};
pub mod build;
pub mod preview;

pub use build::{build, AudienceError, BuildOptions, BuildReport, Built};
