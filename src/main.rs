//! The `deltasync` binary: parse the command line, run one command, map the
//! outcome to an rsync-style exit code. clap and anyhow stop here.
//!
//! `sync` and `run` read their options from layers (the command line over
//! the environment over a config file's pair over its `[defaults]`, see
//! [`config`]); `run` adds hooks, alerts and retries around each pair
//! ([`pair`], [`hooks`], [`alerts`], [`run`]).

mod alerts;
mod cli;
mod config;
mod config_cmd;
mod connect;
mod console;
mod copy;
mod filters;
mod hooks;
mod logs;
mod pair;
mod rdiff;
mod run;
mod serve;
mod status;
mod sync;
mod watch;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use deltasync_driver::{DriverError, EXIT_USAGE};

fn main() -> ExitCode {
    let parsed = cli::Cli::command()
        .try_get_matches()
        .and_then(|m| cli::Cli::from_arg_matches(&m).map(|c| (c, m)));
    let (cli, matches) = match parsed {
        Ok(both) => both,
        Err(e) => {
            // Help and version are not errors; a bad command line is rsync's exit 1.
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code as u8);
        }
    };
    let sub = matches
        .subcommand()
        .map(|(_, m)| m.clone())
        .unwrap_or_default();
    let result = match &cli.command {
        cli::Command::Signature(args) => rdiff::signature(args),
        cli::Command::Delta(args) => rdiff::delta(args),
        cli::Command::Patch(args) => rdiff::patch(args),
        cli::Command::Copy(args) => copy::copy(args, &sub),
        cli::Command::Sync(args) => sync::sync(args, &sub),
        cli::Command::Run(args) => run::run(args, &sub),
        cli::Command::Watch(args) => watch::watch(args, &sub),
        cli::Command::Status(args) => status::status(args),
        cli::Command::Config(args) => config_cmd::config(args),
        cli::Command::Reset(args) => sync::reset(args),
        cli::Command::Serve(args) => serve::serve(args),
        cli::Command::Completions(args) => {
            let mut cmd = cli::Cli::command();
            clap_complete::generate(args.shell, &mut cmd, "deltasync", &mut std::io::stdout());
            Ok(())
        }
        cli::Command::Man => clap_mangen::Man::new(cli::Cli::command())
            .render(&mut std::io::stdout())
            .map_err(anyhow::Error::from),
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
pub fn exit_code(e: &anyhow::Error) -> i32 {
    if let Some(b) = e.downcast_ref::<run::BatchFailed>() {
        return b.code;
    }
    match e.downcast_ref::<DriverError>() {
        Some(d) => d.exit_code(),
        None => deltasync_driver::EXIT_FILE_IO,
    }
}
