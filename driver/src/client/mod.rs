//! The client's side of a connection: start an agent for a location, greet
//! it, and hand back a message queue each way.
//!
//! A local path gets `deltasync serve` as a child process over pipes: the
//! same protocol as remote, with no shortcuts. A remote path gets an SSH
//! exec channel (ssh2), or the `--rsh` command when one is given. Over the
//! built-in SSH, one exec starts our cached copy, the remote's own
//! deltasync, or says what a deploy needs ([`launch`]); if the remote has
//! no deltasync, or another version, and runs the same OS and
//! architecture, the client uploads its own binary to
//! `~/.cache/deltasync/<version>-<hash>/deltasync` and runs that (unless
//! `--no-deploy`). With [`ConnectOptions::in_process`], a local path is
//! served by a thread of this process over two pipes instead: the
//! in-memory harness the driver's own tests use.
//!
//! The conversation itself (ids, calls, streams) is [`session`].

mod launch;
mod session;

use session::Routes;
pub use session::{Agent, ReplyStream, Subscriber};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam::channel::{bounded, unbounded};
use deltasync_wire::bwlimit::{BwLimit, Throttled};
use deltasync_wire::transport::{self, Transport, ssh, ssh_config};
use deltasync_wire::{Connection, WireError};

use crate::error::DriverError;
use crate::link::Outbox;
use crate::location::{Location, Remote};

/// How to reach and talk to agents.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// `-e/--rsh`: a command that gives a byte pipe to the remote host.
    pub rsh: Option<String>,
    /// `--identity FILE`.
    pub identity: Option<PathBuf>,
    /// `--known-hosts FILE` (default `~/.ssh/known_hosts`).
    pub known_hosts: Option<PathBuf>,
    /// `--accept-new-host-key`.
    pub accept_new_host_key: bool,
    /// A password (from `--password-cmd` or `DELTASYNC_SSH_PASSWORD`).
    pub password: Option<String>,
    /// `--remote-bin PATH`.
    pub remote_bin: Option<String>,
    /// `--no-deploy`.
    pub no_deploy: bool,
    /// `--timeout SECS`: no data for this long is an error (exit 30).
    pub timeout: Option<Duration>,
    /// How long to wait for a TCP connection.
    pub connect_timeout: Duration,
    /// Compression: `None` picks the default (on for remote, off for local).
    pub compress: Option<bool>,
    /// zstd level when compressing.
    pub compress_level: i32,
    /// `--bwlimit`.
    pub bwlimit: BwLimit,
    /// The ssh config file (default `~/.ssh/config`).
    pub ssh_config: Option<PathBuf>,
    /// The binary a local side runs as `serve` (default: this process's
    /// own executable; a program that links the driver sets it).
    pub local_bin: Option<PathBuf>,
    /// Serve local sides on a thread of this process over pipes, not in a
    /// child process: the same protocol, for tests of the driver itself.
    pub in_process: bool,
    /// Logged-in SSH sessions to keep and use again, so a pair's remote
    /// hooks and its agent go through one login. `None`: a fresh login for
    /// every agent.
    pub sessions: Option<SessionCache>,
}

/// SSH sessions kept across calls, by user, host and port. A session is
/// lent out only while it is idle (see [`ssh::SshSession::is_busy`]), so
/// two agents on one host still get a login each.
#[derive(Clone, Debug, Default)]
pub struct SessionCache(Arc<Mutex<Vec<Arc<ssh::SshSession>>>>);

impl SessionCache {
    fn idle(&self, o: &ssh::SshOptions) -> Option<Arc<ssh::SshSession>> {
        let kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        kept.iter().find(|s| !s.is_busy() && s.reaches(o)).cloned()
    }

    fn keep(&self, s: &Arc<ssh::SshSession>) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(s.clone());
    }

    fn forget(&self, s: &Arc<ssh::SshSession>) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k| !Arc::ptr_eq(k, s));
    }
}

/// Runs `work` on an SSH session to `r`: an idle kept one when there is
/// one (and, if that one has died meanwhile, a fresh login), else a fresh
/// login, kept for next time when `options` keeps sessions.
fn with_session<T>(
    r: &Remote,
    options: &ConnectOptions,
    work: impl Fn(&ssh::SshSession) -> Result<T, DriverError>,
) -> Result<T, DriverError> {
    let o = ssh_options(r, options);
    if let Some(cache) = &options.sessions
        && let Some(kept) = cache.idle(&o)
    {
        match work(&kept) {
            Err(DriverError::Ssh(_)) => cache.forget(&kept), // gone stale: log in again
            done => return done,
        }
    }
    let fresh = Arc::new(ssh::connect(&o)?);
    if let Some(cache) = &options.sessions {
        cache.keep(&fresh);
    }
    work(&fresh)
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            rsh: None,
            identity: None,
            known_hosts: None,
            accept_new_host_key: false,
            password: None,
            remote_bin: None,
            no_deploy: false,
            timeout: None,
            connect_timeout: Duration::from_secs(30),
            compress: None,
            compress_level: 3,
            bwlimit: BwLimit::off(),
            ssh_config: None,
            local_bin: None,
            in_process: false,
            sessions: None,
        }
    }
}

/// What an agent is asked to serve.
#[derive(Clone, Debug)]
pub struct AgentSpec {
    /// The root, as a local path or as the remote's path text.
    pub root: String,
    /// Refuse changes.
    pub read_only: bool,
    /// Create the root (one level) if it is missing.
    pub mkdir: bool,
}

/// Starts and greets an agent for `location`, serving `spec`.
/// `bounded_incoming` limits how far the agent may run ahead of us.
pub fn open(
    location: &Location,
    spec: &AgentSpec,
    options: &ConnectOptions,
    bounded_incoming: bool,
) -> Result<Agent, DriverError> {
    match location {
        Location::Local(root) if options.in_process => {
            in_memory(root, spec, options, bounded_incoming)
        }
        Location::Local(_) => {
            let exe = match &options.local_bin {
                Some(bin) => bin.clone(),
                None => std::env::current_exe().map_err(|e| {
                    DriverError::Startup(format!("cannot find our own binary: {e}"))
                })?,
            };
            let cmd = serve_command_local(&exe, spec);
            let t = transport::spawn(cmd, options.timeout)
                .map_err(|e| DriverError::Startup(e.to_string()))?;
            Ok(greet(t, false, options, bounded_incoming)?)
        }
        Location::Remote(r) => match &options.rsh {
            Some(rsh) => {
                let bin = options
                    .remote_bin
                    .clone()
                    .unwrap_or_else(|| "deltasync".into());
                let cmd = transport::rsh_command(
                    rsh,
                    r.user.as_deref(),
                    &r.host,
                    r.port,
                    &serve_command_remote(&bin, spec),
                )
                .map_err(|e| DriverError::Usage(e.to_string()))?;
                let t = transport::spawn(cmd, options.timeout)
                    .map_err(|e| DriverError::Startup(e.to_string()))?;
                Ok(greet(t, true, options, bounded_incoming)?)
            }
            None => open_ssh(r, spec, options, bounded_incoming),
        },
    }
}

fn serve_command_local(exe: &Path, spec: &AgentSpec) -> Command {
    let mut cmd = Command::new(exe);
    cmd.arg("serve").arg("--root").arg(&spec.root);
    if spec.read_only {
        cmd.arg("--read-only");
    }
    if spec.mkdir {
        cmd.arg("--mkdir");
    }
    // Its own process group: a Ctrl-C at the terminal is for us (a watch
    // finishes its pass, then says goodbye), not for the agent mid-file.
    // It still ends when we do: its input closes.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd
}

/// The remote command line, quoted for the remote shell. `bin` may start
/// with `$HOME/`, which is left for the shell to expand.
fn serve_command_remote(bin: &str, spec: &AgentSpec) -> String {
    // `--remote-bin` takes words: "sudo -n deltasync" runs deltasync
    // through sudo (osync's SUDO_EXEC). Each word is quoted again.
    let words = shell_words::split(bin).unwrap_or_else(|_| vec![bin.to_string()]);
    let bin = words
        .iter()
        .map(|w| match w.strip_prefix("$HOME/") {
            Some(rest) => format!("\"$HOME\"/{}", shell_words::quote(rest)),
            // A shell variable (the launch script's `$b`) is expanded.
            None if is_variable(w) => format!("\"{w}\""),
            None => shell_words::quote(w).into_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ");
    let root = if spec.root.is_empty() {
        "."
    } else {
        &spec.root
    };
    let mut s = format!("{bin} serve --root {}", shell_words::quote(root));
    if spec.read_only {
        s.push_str(" --read-only");
    }
    if spec.mkdir {
        s.push_str(" --mkdir");
    }
    s
}

/// True for `$NAME`.
fn is_variable(w: &str) -> bool {
    w.strip_prefix('$')
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

/// A greeting that failed, with what the far side said on stderr.
#[derive(Debug)]
struct Refusal {
    error: DriverError,
    stderr: String,
}

impl From<Refusal> for DriverError {
    fn from(r: Refusal) -> DriverError {
        if r.stderr.is_empty() {
            return r.error;
        }
        DriverError::Startup(format!("{}; the remote said: {}", r.error, r.stderr))
    }
}

impl From<DriverError> for Refusal {
    fn from(error: DriverError) -> Refusal {
        Refusal {
            error,
            stderr: String::new(),
        }
    }
}

/// An agent in a thread of this process, over two pipes (see
/// [`ConnectOptions::in_process`]).
fn in_memory(
    root: &Path,
    spec: &AgentSpec,
    options: &ConnectOptions,
    bounded_incoming: bool,
) -> Result<Agent, DriverError> {
    let pipes = || std::io::pipe().map_err(|e| DriverError::Startup(format!("pipe: {e}")));
    let (client_in, agent_out) = pipes()?;
    let (agent_in, client_out) = pipes()?;
    let serve = crate::agent::ServeOptions {
        root: if spec.root.is_empty() {
            root.to_path_buf()
        } else {
            PathBuf::from(&spec.root)
        },
        jail: None,
        read_only: spec.read_only,
        mkdir: spec.mkdir,
    };
    let description = format!("in-process agent for {}", serve.root.display());
    std::thread::spawn(move || {
        let _ = crate::agent::serve(&serve, agent_in, agent_out);
    });
    let t = Transport::pipes(Box::new(client_in), Box::new(client_out), description);
    Ok(greet(t, false, options, bounded_incoming)?)
}

fn greet(
    t: Transport,
    remote: bool,
    options: &ConnectOptions,
    bounded_incoming: bool,
) -> Result<Agent, Refusal> {
    let tap = t.stderr.clone();
    let held = || tap.as_ref().map(|t| t.held_text()).unwrap_or_default();
    let (reader, writer, end) = t.split();
    let description = end.description.clone();
    let writer: Box<dyn std::io::Write + Send> = if options.bwlimit.is_off() {
        writer
    } else {
        Box::new(Throttled::new(writer, options.bwlimit.clone()))
    };
    let mut conn = Connection::new(reader, writer);
    if let Some(t) = options.timeout {
        conn.reader.set_timeout_secs(t.as_secs());
    }
    let level = if options.compress.unwrap_or(remote) {
        options.compress_level.max(1)
    } else {
        0
    };
    let settings = match conn.client_handshake(&crate::program_version(), level) {
        Ok(s) => s,
        Err(e) => {
            end.kill();
            return Err(Refusal {
                error: e.into(),
                stderr: held(),
            });
        }
    };
    if let Some(t) = &tap {
        t.release();
    }
    let Connection {
        mut reader,
        writer,
        stats,
    } = conn;
    // Shallow: which file's message goes next is chosen by the caller as late
    // as possible (see exec/), not fixed in a deep queue. Under a cap,
    // shallower still: the caller counts progress as it hands a chunk over,
    // so whatever waits here for the limiter would show as sent already
    // (8 chunks are 2 s at 2 Mbit/s), and the rate and ETA would run ahead.
    let depth = if options.bwlimit.is_off() { 8 } else { 1 };
    let outbox = Outbox::spawn(writer, depth);
    let (tx, incoming) = if bounded_incoming {
        bounded(64)
    } else {
        unbounded()
    };
    let routes = Routes::default();
    let routed = routes.clone();
    let reader = crate::link::spawn("client-reader", move || {
        let ended = loop {
            match reader.recv() {
                Ok(Some(m)) => {
                    let Some(m) = routed.deliver(m) else { continue };
                    if tx.send(Ok(m)).is_err() {
                        return;
                    }
                }
                Ok(None) => {
                    break WireError::Truncated {
                        what: "conversation (the agent hung up)",
                    };
                }
                Err(e) => break e,
            }
        };
        routed.hang_up(&ended);
        let _ = tx.send(Err(ended));
    });
    Ok(Agent {
        routes,
        out: outbox.sender(),
        incoming,
        ids: std::sync::atomic::AtomicU64::new(1),
        stats,
        settings,
        remote,
        description,
        outbox,
        reader,
        end,
        stderr: tap,
    })
}

/// The local OS and architecture as `uname -sm` prints them.
fn local_uname() -> String {
    let os = match std::env::consts::OS {
        "linux" => "Linux",
        "macos" => "Darwin",
        "freebsd" => "FreeBSD",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "aarch64" if os == "Darwin" => "arm64",
        a => a,
    };
    format!("{os} {arch}")
}

/// The SSH settings for `r`: our options over its `~/.ssh/config` entry.
fn ssh_options(r: &Remote, options: &ConnectOptions) -> ssh::SshOptions {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let config_path = options
        .ssh_config
        .clone()
        .unwrap_or_else(|| home.join(".ssh/config"));
    let cfg = ssh_config::lookup(&config_path, &r.host);
    let user = r
        .user
        .clone()
        .or(cfg.user.clone())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "root".into());
    ssh::SshOptions {
        host: cfg.hostname.clone().unwrap_or_else(|| r.host.clone()),
        port: r.port.or(cfg.port).unwrap_or(22),
        user,
        identities: ssh::default_identities(options.identity.as_deref(), &cfg.identity_files),
        known_hosts: options
            .known_hosts
            .clone()
            .or(cfg.known_hosts.clone())
            .unwrap_or_else(|| home.join(".ssh/known_hosts")),
        accept_new_host_key: options.accept_new_host_key,
        password: options.password.clone(),
        connect_timeout: options.connect_timeout,
        io_timeout: options.timeout,
    }
}

/// Runs a shell command on `r` (a remote hook), by the same way in as an
/// agent (`-e` or the built-in SSH): its exit status and its output.
pub fn run_remote(
    r: &Remote,
    options: &ConnectOptions,
    command: &str,
) -> Result<(i32, Vec<u8>), DriverError> {
    match &options.rsh {
        Some(rsh) => {
            let mut cmd = transport::rsh_command(rsh, r.user.as_deref(), &r.host, r.port, command)
                .map_err(|e| DriverError::Usage(e.to_string()))?;
            let out = cmd
                .stdin(std::process::Stdio::null())
                .output()
                .map_err(|e| DriverError::Startup(format!("{rsh}: {e}")))?;
            Ok((out.status.code().unwrap_or(-1), out.stdout))
        }
        None => with_session(r, options, |s| Ok(s.run(command)?)),
    }
}

fn open_ssh(
    r: &Remote,
    spec: &AgentSpec,
    options: &ConnectOptions,
    bounded_incoming: bool,
) -> Result<Agent, DriverError> {
    with_session(r, options, |s| {
        if let Some(bin) = &options.remote_bin {
            let t = s.exec(&serve_command_remote(bin, spec))?;
            return Ok(greet(t, true, options, bounded_incoming)?);
        }
        launch::agent_on(s, r, spec, options, bounded_incoming)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_command_quotes_paths() {
        let spec = AgentSpec {
            root: "my dir/x'y".into(),
            read_only: true,
            mkdir: false,
        };
        assert_eq!(
            serve_command_remote("deltasync", &spec),
            "deltasync serve --root 'my dir/x'\\''y' --read-only"
        );
        let spec = AgentSpec {
            root: String::new(),
            read_only: false,
            mkdir: true,
        };
        assert_eq!(
            serve_command_remote("$HOME/.cache/deltasync/1/deltasync", &spec),
            "\"$HOME\"/.cache/deltasync/1/deltasync serve --root . --mkdir"
        );
        assert_eq!(
            serve_command_remote("sudo -n '/opt/my tools/deltasync'", &spec),
            "sudo -n '/opt/my tools/deltasync' serve --root . --mkdir"
        );
    }
}
