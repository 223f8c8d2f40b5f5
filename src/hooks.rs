//! Hooks and alert commands: `sh -c CMD` in a process group of its own,
//! with the pair's variables in its environment, killed (the whole group)
//! when it runs past `--hook-timeout`. Its output goes to our stderr, so
//! `--json` keeps stdout clean.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};

/// The variables every hook and alert gets.
#[derive(Clone, Debug, Default)]
pub struct HookEnv {
    pub vars: Vec<(String, String)>,
}

impl HookEnv {
    /// DELTASYNC_PAIR, DELTASYNC_A, DELTASYNC_B and DELTASYNC_DRY_RUN.
    pub fn new(pair: &str, a: &str, b: &str, dry_run: bool) -> HookEnv {
        let mut e = HookEnv::default();
        e.set("DELTASYNC_PAIR", pair);
        e.set("DELTASYNC_A", a);
        e.set("DELTASYNC_B", b);
        e.set("DELTASYNC_DRY_RUN", if dry_run { "1" } else { "0" });
        e
    }

    /// Adds or replaces a variable.
    pub fn set(&mut self, name: &str, value: &str) {
        self.vars.retain(|(n, _)| n != name);
        self.vars.push((name.to_string(), value.to_string()));
    }
}

/// How long a hook waited for, when it was stopped.
#[derive(Debug)]
pub enum HookError {
    /// It could not be started.
    Spawn(std::io::Error),
    /// It exited with this status.
    Failed(std::process::ExitStatus),
    /// It ran past the timeout; its process group was killed.
    TimedOut(Duration),
}

impl std::fmt::Display for HookError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HookError::Spawn(e) => write!(f, "could not start: {e}"),
            HookError::Failed(s) => write!(f, "failed with {s}"),
            HookError::TimedOut(t) => write!(
                f,
                "ran past --hook-timeout ({}s) and was killed with its process group",
                t.as_secs()
            ),
        }
    }
}

/// Runs `cmd` with `env`, `stdin` on its standard input, for at most
/// `timeout`.
pub fn run(
    cmd: &str,
    env: &HookEnv,
    stdin: Option<&str>,
    timeout: Duration,
) -> Result<(), HookError> {
    let mut c = Command::new("sh");
    c.arg("-c").arg(cmd).process_group(0);
    c.envs(env.vars.iter().map(|(k, v)| (k, v)));
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    if let Ok(err) = std::io::stderr().as_fd().try_clone_to_owned() {
        c.stdout(Stdio::from(err));
    }
    let mut child = c.spawn().map_err(HookError::Spawn)?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A hook that never reads its input must not block us: the text is
        // short, and a closed pipe is fine.
        let _ = pipe.write_all(text.as_bytes());
    }
    wait(&mut child, timeout)
}

fn wait(child: &mut Child, timeout: Duration) -> Result<(), HookError> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(HookError::Failed(status)),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) | Err(_) => break,
        }
    }
    // Past the timeout: TERM the group, then KILL whatever is left.
    let group = Pid::from_child(child);
    let _ = kill_process_group(group, Signal::TERM);
    let grace = Instant::now() + Duration::from_secs(2);
    while Instant::now() < grace {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = kill_process_group(group, Signal::KILL);
    let _ = child.wait();
    Err(HookError::TimedOut(timeout))
}
