//! The `deltasync` binary: parse the command line, run one command, map the
//! outcome to an rsync-style exit code. clap and anyhow stop here.

mod cli;
mod connect;
mod console;
mod copy;
mod rdiff;
mod serve;
mod sync;

use std::process::ExitCode;

use clap::Parser;
use deltasync_driver::{DriverError, EXIT_USAGE};

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version are not errors; a bad command line is rsync's exit 1.
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code as u8);
        }
    };
    let result = match &cli.command {
        cli::Command::Signature(args) => rdiff::signature(args),
        cli::Command::Delta(args) => rdiff::delta(args),
        cli::Command::Patch(args) => rdiff::patch(args),
        cli::Command::Copy(args) => copy::copy(args),
        cli::Command::Sync(args) => sync::sync(args),
        cli::Command::Reset(args) => sync::reset(args),
        cli::Command::Serve(args) => serve::serve(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("deltasync: error: {e}");
            ExitCode::from(exit_code(&e) as u8)
        }
    }
}

/// The exit code for an error: the driver's own mapping where it has one.
fn exit_code(e: &anyhow::Error) -> i32 {
    match e.downcast_ref::<DriverError>() {
        Some(d) => d.exit_code(),
        None => deltasync_driver::EXIT_FILE_IO,
    }
}
