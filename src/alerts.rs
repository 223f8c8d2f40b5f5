//! `--on-failure`, `--on-recovery` and `--mail-to`: a message when a pair
//! starts failing and one when it recovers, never one per failed run
//! (fetchmail's habit, and syncmaildir's mail-on-failure).
//!
//! The last outcome is kept beside the pair's state database
//! (`PAIR.sqlite` → `PAIR.outcome.json`). When that folder does not exist
//! (a replica that is not mounted), it goes to
//! `~/.local/state/deltasync/` instead, so a missing disk is never
//! created by an alert.

use std::path::{Path, PathBuf};

use crate::hooks::{self, HookEnv};
use crate::pair::{PairDone, PairSpec};

/// The outcome kept from the last run.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Outcome {
    ok: bool,
    code: i32,
    error: Option<String>,
    time: String,
}

/// After a pair's last attempt: fires the alert its change of health
/// calls for, if any, and records the outcome. Dry runs change nothing.
pub fn settle(spec: &PairSpec, done: &PairDone) {
    let Some(state) = &done.state_path else {
        return;
    };
    if spec.opts.dry_run {
        return;
    }
    let ok = is_ok(done.code);
    let was_ok = last(state).is_none_or(|o| o.ok);
    let u = &spec.opts.unattended;
    let mut env = spec.env();
    env.set("DELTASYNC_EXIT", &done.code.to_string());
    env.set(
        "DELTASYNC_SUMMARY",
        &crate::sync::one_line(&done.summary, done.error.as_deref()),
    );
    let error = done.error.clone().unwrap_or_default();
    let name = if spec.name.is_empty() {
        format!("{} <-> {}", spec.a, spec.b)
    } else {
        spec.name.clone()
    };
    let (cmd, subject, body) = match (was_ok, ok) {
        (true, false) => (
            &u.on_failure,
            format!("deltasync: {name} is failing"),
            format!("{error}\n"),
        ),
        (false, true) => (
            &u.on_recovery,
            format!("deltasync: {name} has recovered"),
            "The last run succeeded.\n".to_string(),
        ),
        _ => {
            record(state, done);
            return;
        }
    };
    let timeout = spec.hook_timeout();
    if let Some(cmd) = cmd {
        if let Err(e) = hooks::run(cmd, &env, Some(&body), timeout) {
            eprintln!("deltasync: alert {cmd:?} {e}");
        }
    }
    if let Some(to) = &u.mail_to {
        mail(to, &subject, &body, &env, timeout);
    }
    record(state, done);
}

/// Exit codes that are not a failure to alert on: success, and a time
/// budget reached (the next run resumes).
fn is_ok(code: i32) -> bool {
    code == 0 || code == deltasync_driver::EXIT_TIME_BUDGET
}

/// Sends a mail with the system's sendmail.
fn mail(to: &str, subject: &str, body: &str, env: &HookEnv, timeout: std::time::Duration) {
    let sendmail = ["/usr/sbin/sendmail", "/usr/lib/sendmail"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("sendmail");
    let message = format!("To: {to}\nSubject: {subject}\n\n{body}");
    if let Err(e) = hooks::run(&format!("{sendmail} -t -i"), env, Some(&message), timeout) {
        eprintln!("deltasync: mail to {to} with {sendmail}: {e}");
    }
}

/// The two places the outcome of the pair whose state is at `state` may
/// be: beside the state, and the fallback in the home directory.
fn outcome_paths(state: &Path) -> [PathBuf; 2] {
    let name = state.with_extension("outcome.json");
    let file = name.file_name().map(PathBuf::from).unwrap_or_default();
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
        .join(".local/state/deltasync")
        .join(file);
    [name, home]
}

/// Where to write it now.
fn outcome_path(state: &Path) -> PathBuf {
    let [beside, home] = outcome_paths(state);
    match state.parent() {
        Some(dir) if dir.is_dir() => beside,
        _ => home,
    }
}

/// The newer of the two outcomes kept.
fn last(state: &Path) -> Option<Outcome> {
    outcome_paths(state)
        .iter()
        .filter_map(|p| serde_json::from_str::<Outcome>(&std::fs::read_to_string(p).ok()?).ok())
        .max_by(|x, y| x.time.cmp(&y.time))
}

fn record(state: &Path, done: &PairDone) {
    let path = outcome_path(state);
    let o = Outcome {
        ok: is_ok(done.code),
        code: done.code,
        error: done.error.clone(),
        time: chrono::Utc::now().to_rfc3339(),
    };
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&o)?)?;
        std::fs::rename(&tmp, &path)
    };
    if let Err(e) = write() {
        eprintln!(
            "deltasync: cannot record the outcome in {}: {e}",
            path.display()
        );
    }
}
