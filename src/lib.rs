//! cdp: the batch side of a composable Customer Data Platform.
//!
//! A pipeline file (see [`config`]) drives four steps, each reading only what the
//! previous one wrote to the lake: [`sources`] land raw files, [`clean`] normalises and
//! checks them, [`identity`] resolves records into persons and golden records, and
//! [`warehouse`] loads the results; [`sync`] then sends what changed to the tools that
//! act on it. [`state`] keeps run records, cursors and the lease.

pub mod audience;
pub mod clean;
pub mod config;
pub mod frame;
pub mod gen;
pub mod identity;
pub mod insights;
pub mod lake;
pub mod progress;
pub mod serve;
pub mod sources;
pub mod state;
pub mod steps;
pub mod stream;
pub mod sync;
pub mod vocab;
pub mod warehouse;
pub mod watch;

/// An error and every cause, as `a: b: c` (a cause whose text the message already
/// holds is not repeated): the one way errors become a line of text.
pub fn error_text(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}
