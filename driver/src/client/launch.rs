//! Starting an agent over the built-in SSH, in one round trip when it can.
//!
//! One exec runs a small `sh` script on the remote: it runs our cached
//! copy (`~/.cache/deltasync/<build id>/deltasync`) if it is there, else
//! the `deltasync` on the PATH, else it says on stderr what the remote
//! runs (`uname -sm`) and where its home is, so a deploy needs no more
//! questions. The cache is keyed by a build id (the version and a hash of
//! the binary), so a rebuilt binary never runs a stale copy.
//!
//! A deploy streams the binary through an exec channel (`cat`), not SFTP,
//! whose one-request-at-a-time writes crawl at a high RTT; the remote
//! checks the size before it moves the file into place, so a cut link
//! never leaves a torn binary to be run. A forced command in
//! `authorized_keys` that refuses the script (an older deltasync) is asked
//! again with the plain `deltasync serve` command.

use std::sync::OnceLock;

use deltasync_wire::WireError;
use deltasync_wire::transport::ssh;

use super::{Agent, AgentSpec, ConnectOptions, Refusal, greet, local_uname, serve_command_remote};
use crate::error::DriverError;
use crate::location::Remote;

/// The line the launch script prints when it found no deltasync to run.
const DEPLOY_MARK: &str = "deltasync-deploy:";

/// This build: the version and 12 hex digits of the binary's BLAKE3.
pub(super) fn build_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let hash = std::env::current_exe()
            .and_then(std::fs::read)
            .map(|bytes| blake3::hash(&bytes).to_hex().to_string())
            .unwrap_or_default();
        format!(
            "{}-{}",
            env!("CARGO_PKG_VERSION"),
            &hash[..hash.len().min(12)]
        )
    })
}

/// Where our copy lives under the remote home.
fn cached(home: &str) -> String {
    format!("{home}/.cache/deltasync/{}/deltasync", build_id())
}

/// The one-exec launch: cached copy, else PATH, else what a deploy needs.
pub(super) fn launch_script(spec: &AgentSpec) -> String {
    let run = |bin: &str| serve_command_remote(bin, spec);
    let script = format!(
        "b=\"$HOME\"/.cache/deltasync/{id}/deltasync; \
         if [ -x \"$b\" ]; then exec {cached} ; fi; \
         if command -v deltasync >/dev/null 2>&1; then exec {path} ; fi; \
         echo \"{DEPLOY_MARK} $(uname -sm)|$HOME\" >&2; exit 127",
        id = build_id(),
        cached = run("$b"),
        path = run("deltasync"),
    );
    format!("sh -c {}", shell_words::quote(&script))
}

/// What the launch script said a deploy needs: (uname, home).
fn deploy_facts(stderr: &str) -> Option<(String, String)> {
    let line = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix(DEPLOY_MARK))?;
    let (uname, home) = line.trim().split_once('|')?;
    Some((uname.trim().to_string(), home.trim().to_string()))
}

/// The text of a forced command's refusal, if that is what `r` is.
fn forced_refusal(r: &Refusal) -> Option<String> {
    r.stderr
        .lines()
        .find(|l| l.contains("refused by the forced command"))
        .map(|l| l.trim_start_matches("deltasync: error: ").to_string())
}

/// Starts an agent on `session` for `spec` (no `--remote-bin`).
pub(super) fn agent_on(
    session: &ssh::SshSession,
    r: &Remote,
    spec: &AgentSpec,
    options: &ConnectOptions,
    bounded_incoming: bool,
) -> Result<Agent, DriverError> {
    let start = |command: &str| -> Result<Result<Agent, Refusal>, DriverError> {
        Ok(greet(
            session.exec(command)?,
            true,
            options,
            bounded_incoming,
        ))
    };
    let mut first = start(&launch_script(spec))?;
    // An older forced command takes only `deltasync serve …`: ask plainly.
    if matches!(&first, Err(refusal) if forced_refusal(refusal).is_some()) {
        first = start(&serve_command_remote("deltasync", spec))?;
    }
    let facts = match first {
        Ok(agent)
            if agent.settings.peer_program == crate::program_version() || options.no_deploy =>
        {
            return Ok(agent);
        }
        Ok(agent) => {
            agent.kill(); // another version on the PATH: replace it with ours
            None
        }
        // A forced command ran our deltasync, which refused the request:
        // deploying another copy would not help.
        Err(refusal) if forced_refusal(&refusal).is_some() => {
            let said = forced_refusal(&refusal).unwrap_or_default();
            return Err(DriverError::Refused(format!("{}: {said}", r.host)));
        }
        Err(refusal) if deploy_facts(&refusal.stderr).is_some() && options.no_deploy => {
            return Err(DriverError::Startup(format!(
                "{}: no deltasync there; install deltasync {} there, or drop --no-deploy",
                r.host,
                env!("CARGO_PKG_VERSION")
            )));
        }
        Err(refusal) if deploy_facts(&refusal.stderr).is_some() => deploy_facts(&refusal.stderr),
        Err(Refusal {
            error: DriverError::Wire(WireError::Mismatch(why)),
            ..
        }) if options.no_deploy => {
            return Err(DriverError::Startup(format!(
                "{}: {why}; install deltasync {} there, or drop --no-deploy",
                r.host,
                env!("CARGO_PKG_VERSION")
            )));
        }
        Err(Refusal {
            error: DriverError::Wire(WireError::Mismatch(_)),
            ..
        }) => None,
        Err(refusal) => return Err(refusal.into()),
    };
    let (uname, home) = match facts {
        Some(f) => f,
        None => ask_facts(session)?,
    };
    if uname != local_uname() {
        return Err(DriverError::Startup(format!(
            "{}: no usable deltasync there, and it runs {uname:?}, not {:?}, so ours cannot be deployed",
            r.host,
            local_uname()
        )));
    }
    if !home.starts_with('/') {
        return Err(DriverError::Startup(format!(
            "{}: cannot find the remote home directory",
            r.host
        )));
    }
    let target = cached(&home);
    let exe = std::env::current_exe()
        .map_err(|e| DriverError::Startup(format!("cannot find our own binary: {e}")))?;
    eprintln!(
        "deltasync: deploying {} to {}:{target}",
        crate::program_version(),
        r.host
    );
    session.upload(&exe, &target)?;
    let t = session.exec(&serve_command_remote(&target, spec))?;
    Ok(greet(t, true, options, bounded_incoming)?)
}

/// `uname -sm` and `$HOME`, in one exec.
fn ask_facts(session: &ssh::SshSession) -> Result<(String, String), DriverError> {
    let (_, out) = session.run("uname -sm; printf %s \"$HOME\"")?;
    let text = String::from_utf8_lossy(&out);
    let mut lines = text.lines();
    let uname = lines.next().unwrap_or_default().trim().to_string();
    let home = lines.next().unwrap_or_default().trim_end().to_string();
    Ok((uname, home))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_launch_script_tries_the_cache_then_the_path_then_asks_for_a_deploy() {
        let spec = AgentSpec {
            root: "my dir".into(),
            read_only: false,
            mkdir: true,
        };
        let line = launch_script(&spec);
        let words = shell_words::split(&line).unwrap();
        assert_eq!(&words[..2], ["sh", "-c"]);
        let script = &words[2];
        assert!(script.contains(&format!(".cache/deltasync/{}/deltasync", build_id())));
        assert!(
            script.contains("exec \"$b\" serve --root 'my dir' --mkdir ;"),
            "{script}"
        );
        assert!(
            script.contains("exec deltasync serve --root 'my dir' --mkdir ;"),
            "{script}"
        );
        // Run it: no cache, no deltasync on the PATH, so it asks for a deploy.
        let out = std::process::Command::new("sh")
            .args(["-c", script])
            .env("HOME", "/nonexistent-home")
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(127));
        let (uname, home) = deploy_facts(&String::from_utf8_lossy(&out.stderr)).unwrap();
        assert_eq!(uname, local_uname());
        assert_eq!(home, "/nonexistent-home");
    }

    #[test]
    fn the_build_id_is_the_version_and_a_hash() {
        let id = build_id();
        let (version, hash) = id.rsplit_once('-').unwrap();
        assert_eq!(version, env!("CARGO_PKG_VERSION"));
        assert_eq!(hash.len(), 12);
        assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
