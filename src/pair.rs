//! One pair, run unattended: pre hooks, the sync, post hooks. The same
//! path serves `deltasync sync A B` (a pair with no name) and each pair of
//! `deltasync run`; alerts are settled by the caller once retries are
//! over ([`crate::alerts`]).

use std::time::Duration;

use deltasync_driver::client::{SessionCache, run_remote};
use deltasync_driver::location::Location;
use deltasync_driver::sync::{SyncJob, SyncSummary};
use deltasync_driver::{DriverError, EXIT_HOOK};

use crate::cli::SyncOpts;
use crate::hooks::{self, HookEnv};
use crate::sync::Output;

/// A pair to run: its name (empty for a plain `sync`), replicas and options.
#[derive(Clone, Debug)]
pub struct PairSpec {
    pub name: String,
    pub a: String,
    pub b: String,
    pub opts: SyncOpts,
}

impl PairSpec {
    /// The variables hooks and alerts get.
    pub fn env(&self) -> HookEnv {
        HookEnv::new(&self.name, &self.a, &self.b, self.opts.dry_run)
    }

    /// `--hook-timeout`, checked when the options were.
    pub fn hook_timeout(&self) -> Duration {
        crate::sync::duration("--hook-timeout", &self.opts.unattended.hook_timeout)
            .unwrap_or(Duration::from_secs(300))
    }
}

/// How one attempt at a pair ended.
#[derive(Debug, Default)]
pub struct PairDone {
    /// The exit code (0: fine).
    pub code: i32,
    /// The error, as printed.
    pub error: Option<String>,
    /// The error itself, for `sync`'s own exit.
    pub failure: Option<anyhow::Error>,
    pub summary: SyncSummary,
    /// Where the pair's state (and its last outcome) lives, once known.
    pub state_path: Option<std::path::PathBuf>,
}

impl PairDone {
    fn failed(e: anyhow::Error) -> PairDone {
        PairDone {
            code: crate::exit_code(&e),
            error: Some(e.to_string()),
            failure: Some(e),
            ..PairDone::default()
        }
    }
}

/// Runs `spec` once; `budget` caps its `--max-time` (a batch's remainder).
/// With `--log-file`, everything the run prints goes there too.
pub fn run_pair(spec: &PairSpec, out: &mut Output, budget: Option<Duration>) -> PairDone {
    let u = &spec.opts.unattended;
    if let Some(every) = u.keep_logging.as_deref() {
        if let Ok(d) = crate::sync::duration("--keep-logging", every) {
            out.console.keep_logging(d);
        }
    }
    let mut logged = || {
        let name = if spec.name.is_empty() {
            "-"
        } else {
            &spec.name
        };
        tracing::info!("pair {name}: start, {} <-> {}", spec.a, spec.b);
        let done = attempt(spec, out, budget);
        let line = crate::sync::one_line(&done.summary, done.error.as_deref());
        match done.code {
            0 => tracing::info!("pair {name}: {line}"),
            code => tracing::error!("pair {name}: exit {code}: {line}"),
        }
        done
    };
    match crate::logs::dispatch(u) {
        Some(d) => tracing::dispatcher::with_default(&d, logged),
        None => logged(),
    }
}

fn attempt(spec: &PairSpec, out: &mut Output, budget: Option<Duration>) -> PairDone {
    let mut job = match crate::sync::job(&spec.opts, &spec.a, &spec.b) {
        Ok(job) => job,
        Err(e) => return PairDone::failed(e),
    };
    // One SSH login per host for the whole attempt: remote pre hooks, the
    // agent, then remote post hooks, one after another on one session.
    job.connect.sessions = Some(SessionCache::default());
    if let Some(b) = budget {
        job.run.max_time = Some(job.run.max_time.map_or(b, |m| m.min(b)));
    }
    let state_path =
        deltasync_driver::sync::state_path(&job.a, &job.b, job.run.state_dir.as_deref());
    let mut env = spec.env();
    let u = &spec.opts.unattended;
    let timeout = spec.hook_timeout();
    for (label, cmd, remote) in [
        ("pre-cmd", &u.pre_cmd, false),
        ("remote-pre-cmd", &u.remote_pre_cmd, true),
    ] {
        let Some(cmd) = cmd else { continue };
        if let Err(why) = hook(&job, cmd, remote, &env, timeout) {
            let text = format!("{label} {cmd:?} {why}");
            if u.stop_on_hook_error {
                let e = anyhow::Error::new(DriverError::Startup(format!(
                    "{text}; the sync was skipped"
                )));
                return PairDone {
                    code: EXIT_HOOK,
                    state_path: Some(state_path),
                    ..PairDone::failed(e)
                };
            }
            out.console
                .warn(&format!("{text}; going on (--stop-on-hook-error false)"));
        }
    }
    let (summary, result) = deltasync_driver::sync::sync(&job, out);
    let mut done = match result {
        Ok(()) => PairDone::default(),
        Err(e) => PairDone::failed(e.into()),
    };
    done.summary = summary;
    done.state_path = Some(state_path);
    env.set("DELTASYNC_EXIT", &done.code.to_string());
    env.set(
        "DELTASYNC_SUMMARY",
        &crate::sync::one_line(&done.summary, done.error.as_deref()),
    );
    for (label, cmd, remote) in [
        ("post-cmd", &u.post_cmd, false),
        ("remote-post-cmd", &u.remote_post_cmd, true),
    ] {
        let Some(cmd) = cmd else { continue };
        if let Err(why) = hook(&job, cmd, remote, &env, timeout) {
            out.console.warn(&format!("{label} {cmd:?} {why}"));
        }
    }
    done
}

/// Runs one hook, here or on each remote side.
fn hook(
    job: &SyncJob,
    cmd: &str,
    remote: bool,
    env: &HookEnv,
    timeout: Duration,
) -> Result<(), String> {
    if !remote {
        return hooks::run(cmd, env, None, timeout).map_err(|e| e.to_string());
    }
    let remotes: Vec<_> = [&job.a, &job.b]
        .into_iter()
        .filter_map(|l| match l {
            Location::Remote(r) => Some(r),
            Location::Local(_) => None,
        })
        .collect();
    if remotes.is_empty() {
        return Err("needs a remote replica (host:path); both are local".into());
    }
    let line = remote_line(cmd, env, timeout);
    for r in remotes {
        let (status, output) = run_remote(r, &job.connect, &line).map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&output);
        for l in text.lines() {
            eprintln!("{}: {l}", r.host);
        }
        match status {
            0 => {}
            124 | 137 => {
                return Err(format!(
                    "on {} ran past --hook-timeout ({}s) and was killed",
                    r.host,
                    timeout.as_secs()
                ));
            }
            n => return Err(format!("on {} failed with exit status {n}", r.host)),
        }
    }
    Ok(())
}

/// The remote shell line for a hook: its variables, a timeout that kills
/// the hook's process group (coreutils `timeout`), stderr with stdout.
fn remote_line(cmd: &str, env: &HookEnv, timeout: Duration) -> String {
    let vars: Vec<String> = env
        .vars
        .iter()
        .map(|(k, v)| format!("{k}={}", shell_words::quote(v)))
        .collect();
    format!(
        "env {} timeout -k 2 {} sh -c {} 2>&1",
        vars.join(" "),
        timeout.as_secs().max(1),
        shell_words::quote(cmd)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_hook_line_quotes_its_command_and_variables() {
        let env = HookEnv::new("office", "/srv/a b", "host:/x", false);
        let line = remote_line("echo 'hi' > /tmp/x", &env, Duration::from_secs(300));
        assert_eq!(
            line,
            "env DELTASYNC_PAIR=office DELTASYNC_A='/srv/a b' DELTASYNC_B=host:/x \
             DELTASYNC_DRY_RUN=0 timeout -k 2 300 sh -c 'echo '\\''hi'\\'' > /tmp/x' 2>&1"
        );
    }
}
