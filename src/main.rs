//! The `cdp` binary: parse arguments, set up logging, run one command, map its error to
//! an exit code. All behaviour lives in the library and in `cli/`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

// Cleaning and resolving allocate millions of short strings across threads; mimalloc
// keeps that off the system allocator's locks and page-fault churn.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
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
