//! The four steps as the pipeline runs them: each reads what the previous step
//! published in the lake's state, calls the pure stage code, writes its outputs, and
//! publishes its [`StepRecord`] last. A step whose inputs have not changed since its
//! last success does nothing (unless forced), so re-running is always safe.

pub mod audience;
pub mod clean;
pub mod ingest;
pub mod load;
pub mod preflight;
pub mod resolve;
pub mod run;
pub mod sync;

use crate::clean::quality::QualityReport;
use crate::clean::CleanError;
use crate::config::Pipeline;
use crate::frame::FrameError;
use crate::identity::IdentityError;
use crate::lake::{Lake, LakeError};
use crate::progress::Printer;
use crate::sources::SourceError;
use crate::state::interval::Interval;
use crate::state::{self, IntervalRun, Step, StepRecord};
use crate::warehouse::WarehouseError;

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Lease(#[from] crate::state::lease::LeaseError),
    /// A load failed after other tables of the run had loaded: the warehouse holds a
    /// mix of this run's and the previous load's tables until a load succeeds.
    #[error("loading {table:?} failed; {} now hold this run's data, {} still hold the previous load's until a load succeeds", list_or_none(loaded), list_or_none(not_loaded))]
    PartialLoad {
        table: String,
        loaded: Vec<String>,
        not_loaded: Vec<String>,
        #[source]
        source: Box<WarehouseError>,
    },
    /// A backfill's interval failed; the error names it.
    #[error("interval {interval} (run {run_id}): {source}")]
    Interval {
        interval: Interval,
        run_id: String,
        source: Box<StepError>,
    },
    #[error("{step}: nothing to work on yet: {hint}")]
    MissingInput { step: &'static str, hint: String },
    #[error("quality gate closed: {} problem(s): {}; report: {report}", failed.len(), failed.join(", "))]
    QualityGate {
        failed: Vec<String>,
        report: String,
        /// The checks that closed the gate, for printing beside the error.
        checks: Box<QualityReport>,
    },
    /// An error-level size guard failed: no audience of the build was published.
    #[error("audience size guard failed: {}; nothing was published", failed.join("; "))]
    SizeGuard {
        failed: Vec<String>,
        report: Box<crate::audience::BuildReport>,
    },
    #[error(transparent)]
    Audience(#[from] crate::audience::AudienceError),
    #[error(transparent)]
    Truth(#[from] crate::identity::evaluate::TruthError),
    #[error(transparent)]
    Explain(#[from] crate::identity::explain::ExplainError),
    #[error(transparent)]
    Lookup(#[from] crate::identity::lookup::LookupError),
    #[error(transparent)]
    Stream(#[from] crate::stream::StreamError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Clean(#[from] CleanError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("no sync {name:?}; the pipeline's syncs: {known}")]
    UnknownSync { name: String, known: String },
    /// A sync failed; `done` are the syncs that finished before or after it.
    #[error("a sync failed{}", if done.is_empty() { String::new() } else { format!(" (the others finished: {})", done.join(", ")) })]
    Sync {
        #[source]
        source: Box<crate::sync::SyncError>,
        done: Vec<String>,
    },
}

/// What a step run needs: the pipeline, its lake, the run id, how to show progress.
pub struct Context {
    pub pipeline: Pipeline,
    /// The pipeline file's text, part of every step's input fingerprint.
    pub pipeline_text: String,
    pub lake: Lake,
    pub run_id: String,
    pub printer: Printer,
    /// Re-run steps even when their inputs have not changed.
    pub force: bool,
    /// The data interval this run is for (ingest takes only its window); `None`
    /// takes everything new.
    pub interval: Option<Interval>,
    /// How long to wait for a warehouse another process holds locked (`--wait`).
    pub wait: std::time::Duration,
    /// The sources ingest lands (`cdp watch`: those whose objects arrived); `None`
    /// lands every source. The later steps take whatever the lake then holds.
    pub only_sources: Option<Vec<String>>,
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It did work and published this record.
    Done(StepRecord),
    /// Its inputs were unchanged; the last record still stands.
    UpToDate(StepRecord),
}

impl Outcome {
    pub fn record(&self) -> &StepRecord {
        match self {
            Self::Done(r) | Self::UpToDate(r) => r,
        }
    }
}

fn list_or_none(tables: &[String]) -> String {
    if tables.is_empty() {
        "no tables".into()
    } else {
        tables.join(", ")
    }
}

impl StepError {
    /// The error behind a backfill's interval wrapper.
    pub fn innermost(&self) -> &StepError {
        match self {
            Self::Interval { source, .. } => source.innermost(),
            other => other,
        }
    }

    /// The warehouse error behind this one, if any.
    pub fn warehouse(&self) -> Option<&WarehouseError> {
        match self.innermost() {
            Self::Warehouse(e) => Some(e),
            Self::Audience(crate::audience::AudienceError::Warehouse(e)) => Some(e),
            Self::PartialLoad { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The whole message: this error and every cause, as `a: b: c` (a cause whose text
    /// the message already holds is not repeated).
    pub fn chain_text(&self) -> String {
        crate::error_text(self)
    }
}

impl Context {
    /// Runs one step's work; when it fails, records the failure (`cdp status` shows it
    /// beside the last success) before handing the error on.
    pub fn attempt<T>(
        &self,
        step: Step,
        work: impl FnOnce() -> Result<T, StepError>,
    ) -> Result<T, StepError> {
        work().inspect_err(|err| {
            let kind = match err.innermost() {
                StepError::QualityGate { .. } | StepError::SizeGuard { .. } => {
                    state::FailureKind::QualityGate
                }
                _ => state::FailureKind::Error,
            };
            let failure = state::FailedRun {
                step,
                run_id: self.run_id.clone(),
                failed_at: state::now_rfc3339(),
                kind,
                reason: err.chain_text(),
            };
            tracing::info!(run_id = %self.run_id, step = step.as_str(), kind = kind.as_str(), "step failed");
            if let Err(e) = state::write_failure(&self.lake, &failure) {
                tracing::warn!(step = step.as_str(), error = %e, "could not record the failed run");
            }
        })
    }

    /// Marks the end of a step in this run: one log event with the run id, step,
    /// interval and counts, and for a run with an interval, the interval index entry
    /// (`cdp status`, and how `cdp backfill` knows an interval is done).
    pub fn finished(&self, step: Step, outcome: &Outcome) -> Result<(), StepError> {
        let (r, what) = match outcome {
            Outcome::Done(r) => (r, "done"),
            Outcome::UpToDate(r) => (r, "up_to_date"),
        };
        tracing::info!(
            run_id = %self.run_id,
            step = step.as_str(),
            interval = self.interval.map(tracing::field::display),
            outcome = what,
            rows_in = r.rows_in,
            rows_out = r.rows_out,
            "step finished"
        );
        if let Some(interval) = &self.interval {
            let run = IntervalRun {
                run_id: self.run_id.clone(),
                finished_at: state::now_rfc3339(),
                outcome: what.into(),
                rows_in: r.rows_in,
                rows_out: r.rows_out,
                figures: r.figures.clone(),
            };
            state::record_interval(&self.lake, interval, step, run)?;
        }
        Ok(())
    }

    /// The input fingerprint of a step: its upstream inputs plus the pipeline file
    /// and the program version (a new normaliser must re-clean).
    fn fingerprint(&self, upstream: &[&str]) -> String {
        let mut parts = vec![env!("CARGO_PKG_VERSION"), self.pipeline_text.as_str()];
        parts.extend_from_slice(upstream);
        state::fingerprint(&parts)
    }

    /// The last record of `step` when its input fingerprint is `input` (and not forced).
    fn up_to_date(&self, step: Step, input: &str) -> Result<Option<StepRecord>, StepError> {
        if self.force {
            return Ok(None);
        }
        Ok(state::read_step(&self.lake, step)?.filter(|r| r.input == input))
    }

    fn upstream(&self, step: Step, hint: &str) -> Result<StepRecord, StepError> {
        state::read_step(&self.lake, step)?.ok_or_else(|| StepError::MissingInput {
            step: step.as_str(),
            hint: hint.into(),
        })
    }
}
