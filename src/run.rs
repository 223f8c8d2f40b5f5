//! `deltasync run NAME… | --all`: the pairs of a config file, in order,
//! as a batch. `--max-time` is the whole batch's budget; a failed pair is
//! run again at the end (`--retries`, as osync's batch runner does); a
//! line (or, with `--json`, an object) per pair; the exit code is the
//! worst pair's.

use std::time::{Duration, Instant};

use anyhow::Result;
use clap::ArgMatches;
use deltasync_driver::{DriverError, EXIT_TIME_BUDGET, EXIT_USAGE};

use crate::cli::RunArgs;
use crate::config::{self, Resolved};
use crate::console::{Console, out};
use crate::pair::{PairDone, PairSpec, run_pair};
use crate::sync::Output;

/// The exit code a batch ends with, and why.
#[derive(Debug)]
pub struct BatchFailed {
    pub code: i32,
    pub text: String,
}

impl std::fmt::Display for BatchFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for BatchFailed {}

pub fn run(args: &RunArgs, m: &ArgMatches) -> Result<()> {
    let file = config::load(args.config.config.as_deref()).map_err(DriverError::Usage)?;
    let names: Vec<String> = if args.all {
        file.pairs.iter().map(|p| p.name.clone()).collect()
    } else {
        args.names.clone()
    };
    if names.is_empty() {
        return Err(DriverError::Usage(format!("{}: no pairs to run", file.path.display())).into());
    }
    // Every pair resolves before any runs: a typo fails the batch at once.
    let mut specs = Vec::new();
    for name in &names {
        let (pair, resolved) =
            config::resolve_pair(&file, name, Some(m)).map_err(DriverError::Usage)?;
        let opts = resolved
            .opts()
            .map_err(|e| DriverError::Usage(format!("pair {name}: {e}")))?;
        specs.push(PairSpec {
            name: pair.name,
            a: pair.a,
            b: pair.b,
            opts,
        });
    }
    let budget = batch_budget(m)?;
    let started = Instant::now();
    let remaining = || budget.map(|b| b.saturating_sub(started.elapsed()));
    let json = args.opts.json;
    let mut results: Vec<(PairDone, u32)> = Vec::new();
    for spec in &specs {
        let done = attempt(spec, remaining(), json, 0);
        results.push((done, 1));
    }
    for round in 1..=args.retries {
        for (spec, (done, tries)) in specs.iter().zip(results.iter_mut()) {
            if !retry_worth(done.code) {
                continue;
            }
            *done = attempt(spec, remaining(), json, round);
            *tries += 1;
        }
    }
    let mut worst = 0;
    let mut failed = Vec::new();
    for (spec, (done, tries)) in specs.iter().zip(&results) {
        crate::alerts::settle(spec, done);
        if json {
            let mut v = crate::sync::json(&done.summary, done.error.as_deref());
            v["pair"] = spec.name.clone().into();
            v["exit"] = done.code.into();
            v["attempts"] = (*tries).into();
            out!("{v}");
        }
        if done.code != 0 {
            failed.push(spec.name.clone());
        }
        worst = worst.max(done.code);
    }
    if worst == 0 {
        return Ok(());
    }
    Err(BatchFailed {
        code: worst,
        text: format!(
            "{} of {} pairs did not finish cleanly: {}",
            failed.len(),
            specs.len(),
            failed.join(", ")
        ),
    }
    .into())
}

/// One attempt at a pair, with its line on stdout (unless `--json`).
fn attempt(spec: &PairSpec, budget: Option<Duration>, json: bool, round: u32) -> PairDone {
    let o = &spec.opts;
    let label = if round == 0 {
        spec.name.clone()
    } else {
        format!("{} (retry {round})", spec.name)
    };
    let done = match budget {
        Some(left) if left < Duration::from_secs(1) => PairDone {
            code: EXIT_TIME_BUDGET,
            error: Some("the batch's --max-time was spent before this pair started".into()),
            ..PairDone::default()
        },
        _ => {
            // Per-change lines only with -v: a batch prints a line per pair.
            let mut out = Output {
                console: Console::new(o.quiet || !o.verbose || json, false, o.progress && !json),
            };
            let done = run_pair(spec, &mut out, budget);
            out.console.finish();
            done
        }
    };
    if !json {
        let line = crate::sync::one_line(&done.summary, done.error.as_deref());
        if done.code == 0 || o.quiet {
            if !o.quiet {
                out!("{label}: {line}");
            }
        } else {
            out!("{label}: exit {}: {line}", done.code);
        }
    }
    done
}

/// A failure worth another try at the end of the batch: not a usage
/// error, and not a spent time budget.
fn retry_worth(code: i32) -> bool {
    code != 0 && code != EXIT_USAGE && code != EXIT_TIME_BUDGET
}

/// `--max-time` from the command line or the environment: the batch's.
fn batch_budget(m: &ArgMatches) -> Result<Option<Duration>> {
    let keys = config::keys::all();
    let mut r = Resolved::default();
    r.layer(config::env_layer(&keys).map_err(DriverError::Usage)?);
    r.layer(config::cli_layer(&keys, m));
    Ok(match r.settings.get("max-time").map(|s| &s.value) {
        Some(config::Value::One(t)) => Some(crate::sync::duration("--max-time", t)?),
        _ => None,
    })
}
