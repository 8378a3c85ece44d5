//! Insights: figures computed from what the pipeline already wrote, for people and
//! for models. [`lift`] turns a campaign's treatment and holdout outcomes into
//! absolute and relative lift with 95% confidence intervals and a plain-language
//! verdict; it is pure arithmetic over counts and sample moments, with no I/O.

pub mod campaign;
pub mod features;
pub mod lift;
pub mod report;
