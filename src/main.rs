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

/// Opts this process out of transparent huge pages. The allocator's arenas are
/// eligible for them, and the kernel then zeroes a whole 2 MiB page on the first touch
/// of any byte in it: a third of resolve's CPU at a million records, and 3-4 s of its
/// wall time. Plain pages cost 13.2 s against 16.4-17.3 s there.
#[cfg(target_os = "linux")]
fn no_transparent_huge_pages() {
    /// `PR_SET_THP_DISABLE` from <linux/prctl.h>.
    const PR_SET_THP_DISABLE: std::ffi::c_int = 41;
    unsafe extern "C" {
        fn prctl(option: std::ffi::c_int, ...) -> std::ffi::c_int;
    }
    let zero: std::ffi::c_ulong = 0;
    // SAFETY: prctl with this option only sets a flag on the calling process; a
    // failure (an old kernel) leaves the default, which is merely slower.
    unsafe { prctl(PR_SET_THP_DISABLE, 1 as std::ffi::c_ulong, zero, zero, zero) };
}

#[cfg(not(target_os = "linux"))]
fn no_transparent_huge_pages() {}

fn main() -> ExitCode {
    // SAFETY: sets a process-wide allocator option; no allocation is in flight here.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    no_transparent_huge_pages();
    let started = std::time::Instant::now();
    let args = cli::Cli::parse();
    cli::init_logging(&args.global);
    let global = args.global.clone();
    let command = args.command.name();
    let result = cli::run(args);
    let (code, error) = match &result {
        Ok(()) => (0, None),
        // A closed stdout (`cdp ... | head -1`) is the reader being done, not a failure.
        Err(err) if cli::is_broken_pipe(err) => (0, None),
        Err(err) => (
            cli::exit_code(err),
            Some((format!("{err:#}"), cli::hint(err), cli::failed_checks(err))),
        ),
    };
    cli::report_end(
        &global,
        &cli::End {
            command,
            run_id: cli::run_id(),
            exit_code: code,
            elapsed: started.elapsed(),
            error,
        },
    );
    ExitCode::from(code)
}
