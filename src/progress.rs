//! One printer for progress: bars and spinners on a terminal, nothing otherwise (cron,
//! Airflow, pipes), nothing under `--quiet`, `NO_COLOR` or `CDP_NO_PROGRESS`.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone, Copy)]
pub struct Printer {
    enabled: bool,
}

impl Printer {
    pub fn new(quiet: bool) -> Self {
        let off = |var| std::env::var_os(var).is_some_and(|v| !v.is_empty());
        Self {
            enabled: !quiet
                && std::io::stderr().is_terminal()
                && !off("NO_COLOR")
                && !off("CDP_NO_PROGRESS"),
        }
    }

    /// A bar over `len` units of work.
    pub fn bar(&self, len: u64, message: &str) -> ProgressBar {
        if !self.enabled {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
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
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }
}
