//! The `weir` command. `main` only turns [`commands::run`] into an exit code.

mod commands;

use std::process::ExitCode;

fn main() -> ExitCode {
    match commands::run() {
        Ok(code) => code,
        Err(e) => {
            // A closed stdout (e.g. `weir replay ... | head`) is not an error worth reporting.
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::BrokenPipe {
                    return ExitCode::SUCCESS;
                }
            }
            eprintln!("weir: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
