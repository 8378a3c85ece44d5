//! One printer for progress: bars and spinners on a terminal, nothing otherwise (cron,
//! Airflow, pipes), nothing under `--quiet`, `NO_COLOR` or `CDP_NO_PROGRESS`.
//!
//! Every bar of the process belongs to one [`MultiProgress`], and log lines go through
//! [`suspend`], which lifts the bars off the screen while a line is written and draws
//! them again below it, so a log line never lands in the middle of a bar.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bars on screen; created with the first bar.
static BARS: OnceLock<MultiProgress> = OnceLock::new();

fn bars() -> &'static MultiProgress {
    BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// Runs `write` (which writes to stderr) with the progress bars hidden, redrawing them
/// afterwards; with no bars it just runs it.
pub fn suspend<R>(write: impl FnOnce() -> R) -> R {
    match BARS.get() {
        Some(bars) => bars.suspend(write),
        None => write(),
    }
}

/// True when an environment variable is set to something.
fn set(var: &str) -> bool {
    std::env::var_os(var).is_some_and(|v| !v.is_empty())
}

/// Whether stderr takes colour: a terminal, and `NO_COLOR` unset.
pub fn stderr_colour() -> bool {
    std::io::stderr().is_terminal() && !set("NO_COLOR")
}

#[derive(Debug, Clone, Copy)]
pub struct Printer {
    enabled: bool,
}

impl Printer {
    pub fn new(quiet: bool) -> Self {
        Self {
            enabled: !quiet && stderr_colour() && !set("CDP_NO_PROGRESS"),
        }
    }

    /// A bar over `len` units of work.
    pub fn bar(&self, len: u64, message: &str) -> ProgressBar {
        if !self.enabled {
            return ProgressBar::hidden();
        }
        let bar = bars().add(ProgressBar::new(len));
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg:24} [{bar:30}] {pos}/{len} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(message.to_string());
        bar
    }

    /// A spinner for work of unknown length.
    pub fn spinner(&self, message: &str) -> ProgressBar {
        if !self.enabled {
            return ProgressBar::hidden();
        }
        let bar = bars().add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }
}
