//! `headroom`: can this machine hold this model, and how fast will it run?
//!
//! The binary is argument parsing plus glue; the math lives in `headroom-core` and the kernels in
//! the `headroom-probe` library. Every error a user can cause ends as one line on stderr and exit
//! code 2.

/// `eprintln!` through [`printable::printable`]: every line for the user's terminal on stderr
/// has its control characters escaped (names and paths in it come from files and arguments).
macro_rules! say {
    ($($arg:tt)*) => {
        eprintln!("{}", $crate::printable::printable(&format!($($arg)*)))
    };
}

mod devices_cmd;
mod fit;
mod hub;
mod machine;
mod models_cmd;
mod printable;
mod probe_cmd;
mod show_cmd;
mod user_file;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for every error a user can act on (bad input, no GPU, network failure).
const EXIT_USER_ERROR: u8 = 2;

#[derive(Parser)]
#[command(
    name = "headroom",
    version,
    about = "Can this machine hold this model, and how fast will it run?"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Will MODEL fit on this machine (or --device), and how fast will it run? With
    /// --devices-that-fit: which catalog devices hold it.
    // Boxed: `fit` has far more options than the other commands.
    Fit(Box<fit::FitArgs>),
    /// List the bundled model catalog; with --fits [DEVICE]: every model that fits, ranked.
    Models(models_cmd::ModelsArgs),
    /// List the bundled device catalog; with --limits: the largest model each device runs.
    Devices(devices_cmd::DevicesArgs),
    /// Measure this machine's GPU and write a JSON report.
    Probe(probe_cmd::ProbeArgs),
    /// Summarize a saved probe report.
    Show(show_cmd::ShowArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version go to stdout as clap draws them; a usage error echoes what was
        // typed, so it goes through `printable` like every other message.
        Err(err) if !err.use_stderr() => {
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprint!("{}", printable::printable(&err.render().to_string()));
            return ExitCode::from(EXIT_USER_ERROR);
        }
    };
    let result = match cli.command {
        Command::Fit(args) => fit::run(*args),
        Command::Models(args) => models_cmd::run(args),
        Command::Devices(args) => devices_cmd::run(args),
        Command::Probe(args) => probe_cmd::run(args),
        Command::Show(args) => show_cmd::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            say!("error: {err:#}");
            ExitCode::from(EXIT_USER_ERROR)
        }
    }
}

/// `headroom models | head` closes stdout early; that is not an error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
