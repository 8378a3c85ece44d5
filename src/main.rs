//! The `cdp` binary: parse arguments, set up logging, run one command, map its error to
//! an exit code. All behaviour lives in the library and in `cli/`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

// Cleaning and resolving allocate millions of short strings across threads; mimalloc
// keeps that off the system allocator's locks and page-fault churn.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its option enum, v3 as locked): how long freed
/// memory waits before going back to the OS. Returning it at once made the kernel
/// zero the same pages again and again (a sixth of resolve's time at a million
/// records).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

unsafe extern "C" {
    /// Part of the mimalloc library the `mimalloc` crate links.
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

fn main() -> ExitCode {
    // SAFETY: sets a process-wide allocator option; no allocation is in flight here.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    let args = cli::Cli::parse();
    cli::init_logging(&args.global);
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if cli::is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            let code = cli::exit_code(&err);
            eprintln!("error: {err:#}");
            if let Some(hint) = cli::hint(&err) {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(code)
        }
    }
}
