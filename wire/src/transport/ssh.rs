//! SSH transport on the ssh2 crate (libssh2): connect with a timeout, check
//! the host key against known_hosts, authenticate, and open exec channels.
//!
//! Host keys: the plain, `[host]:port` and hashed (`|1|…`) known_hosts forms
//! are all read (libssh2 understands them). An unknown host is refused with
//! its SHA256 fingerprint and the `--accept-new-host-key` hint; with that
//! flag the key is appended to the file. A changed key is always refused.
//!
//! Authentication is tried in this order: ssh-agent, the identity files
//! (`--identity`, then `~/.ssh/config`'s, then the default names), then a
//! password if one was supplied. The error lists what was tried.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine;
use ssh2::{CheckResult, HashType, HostKeyType, KnownHostFileKind, Session};

use super::{End, Transport};

/// How to reach and log in to an SSH server.
#[derive(Clone, Debug)]
pub struct SshOptions {
    /// Host name or address to connect to.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Login name.
    pub user: String,
    /// Identity files to try, in order (after the agent).
    pub identities: Vec<PathBuf>,
    /// The known_hosts file.
    pub known_hosts: PathBuf,
    /// Record an unknown host's key instead of refusing it.
    pub accept_new_host_key: bool,
    /// A password, tried last.
    pub password: Option<String>,
    /// Give up connecting after this long.
    pub connect_timeout: Duration,
    /// Error out when no byte arrives for this long once connected.
    pub io_timeout: Option<Duration>,
}

/// Why an SSH connection failed.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// TCP connect failed or timed out.
    #[error("cannot connect to {host}:{port}: {source}")]
    Connect {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// Cause.
        source: io::Error,
    },
    /// The host is not in known_hosts.
    #[error(
        "host key for {host} is not known ({fingerprint}); check it, then rerun with \
         --accept-new-host-key to record it in {}",
        known_hosts.display()
    )]
    UnknownHost {
        /// `host` or `[host]:port`.
        host: String,
        /// `SHA256:…` of the presented key.
        fingerprint: String,
        /// The file consulted.
        known_hosts: PathBuf,
    },
    /// The host presents a different key than recorded.
    #[error(
        "HOST KEY FOR {host} HAS CHANGED (now {fingerprint}); someone may be intercepting the \
         connection. Refusing. If the change is expected, remove the old key from {}",
        known_hosts.display()
    )]
    ChangedHostKey {
        /// `host` or `[host]:port`.
        host: String,
        /// `SHA256:…` of the presented key.
        fingerprint: String,
        /// The file consulted.
        known_hosts: PathBuf,
    },
    /// No method logged us in.
    #[error("authentication failed for {user}@{host}; tried: {tried}")]
    Auth {
        /// Login name.
        user: String,
        /// Host.
        host: String,
        /// What was tried.
        tried: String,
    },
    /// A libssh2 error.
    #[error("ssh {what}: {source}")]
    Ssh {
        /// The step that failed.
        what: &'static str,
        /// libssh2's message.
        source: ssh2::Error,
    },
    /// The session is carrying a transport; use another.
    #[error("ssh: the session to {0} is busy with another channel")]
    Busy(String),
    /// Local I/O (reading known_hosts, the binary to deploy, …).
    #[error("ssh: {0}")]
    Io(#[from] io::Error),
}

impl SshError {
    /// True for failures to reach or log in to the host (rsync's exit 5),
    /// as opposed to I/O on an established connection (exit 10).
    pub fn is_startup(&self) -> bool {
        !matches!(self, SshError::Io(_))
    }
}

fn step(what: &'static str) -> impl Fn(ssh2::Error) -> SshError {
    move |source| SshError::Ssh { what, source }
}

/// A logged-in SSH session. It runs one thing at a time: a probe
/// ([`run`](Self::run)), an upload, or one transport ([`exec`](Self::exec)),
/// whose pump thread owns the session until its channel closes;
/// [`is_busy`](Self::is_busy) tells. A session that is not busy can be
/// used again, so a client may keep it for its next command.
pub struct SshSession {
    session: Session,
    socket: TcpStream,
    options: SshOptions,
    busy: Arc<AtomicBool>,
}

impl std::fmt::Debug for SshSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshSession")
            .field("host", &self.options.host)
            .finish()
    }
}

/// Connects, checks the host key, and logs in.
pub fn connect(options: &SshOptions) -> Result<SshSession, SshError> {
    let connect_err = |source| SshError::Connect {
        host: options.host.clone(),
        port: options.port,
        source,
    };
    let addr = (options.host.as_str(), options.port)
        .to_socket_addrs()
        .map_err(connect_err)?
        .next()
        .ok_or_else(|| connect_err(io::Error::new(io::ErrorKind::NotFound, "no address")))?;
    let tcp = TcpStream::connect_timeout(&addr, options.connect_timeout).map_err(connect_err)?;
    let _ = tcp.set_nodelay(true);
    let socket = tcp.try_clone()?;
    let mut session = Session::new().map_err(step("session"))?;
    session.set_tcp_stream(tcp);
    session.set_timeout(
        options
            .connect_timeout
            .as_millis()
            .min(u128::from(u32::MAX)) as u32,
    );
    session.handshake().map_err(step("handshake"))?;
    check_host_key(&session, options)?;
    authenticate(&session, options)?;
    session.set_timeout(0);
    // Keepalives every 15 s let a dead peer show up as a timeout.
    session.set_keepalive(false, 15);
    Ok(SshSession {
        session,
        socket,
        options: options.clone(),
        busy: Arc::new(AtomicBool::new(false)),
    })
}

fn host_label(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// `SHA256:<base64>` as OpenSSH prints fingerprints.
fn fingerprint(session: &Session) -> String {
    let hash = session.host_key_hash(HashType::Sha256).unwrap_or(&[]);
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(hash)
    )
}

fn key_type_name(t: HostKeyType) -> &'static str {
    match t {
        HostKeyType::Rsa => "ssh-rsa",
        HostKeyType::Dss => "ssh-dss",
        HostKeyType::Ecdsa256 => "ecdsa-sha2-nistp256",
        HostKeyType::Ecdsa384 => "ecdsa-sha2-nistp384",
        HostKeyType::Ecdsa521 => "ecdsa-sha2-nistp521",
        HostKeyType::Ed25519 => "ssh-ed25519",
        HostKeyType::Unknown => "unknown",
    }
}

fn check_host_key(session: &Session, o: &SshOptions) -> Result<(), SshError> {
    let (key, key_type) = session
        .host_key()
        .ok_or_else(|| SshError::Io(io::Error::other("server sent no host key")))?;
    let mut known = session.known_hosts().map_err(step("known_hosts"))?;
    if o.known_hosts.exists() {
        known
            .read_file(&o.known_hosts, KnownHostFileKind::OpenSSH)
            .map_err(step("reading known_hosts"))?;
    }
    let label = host_label(&o.host, o.port);
    match known.check_port(&o.host, o.port, key) {
        CheckResult::Match => Ok(()),
        CheckResult::Mismatch => Err(SshError::ChangedHostKey {
            host: label,
            fingerprint: fingerprint(session),
            known_hosts: o.known_hosts.clone(),
        }),
        CheckResult::NotFound | CheckResult::Failure if o.accept_new_host_key => {
            // Append one line, leaving the rest of the user's file as it is.
            if let Some(dir) = o.known_hosts.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let line = format!(
                "{label} {} {}\n",
                key_type_name(key_type),
                base64::engine::general_purpose::STANDARD.encode(key)
            );
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&o.known_hosts)?;
            f.write_all(line.as_bytes())?;
            eprintln!(
                "deltasync: recorded host key {} for {label} in {}",
                fingerprint(session),
                o.known_hosts.display()
            );
            Ok(())
        }
        CheckResult::NotFound | CheckResult::Failure => Err(SshError::UnknownHost {
            host: label,
            fingerprint: fingerprint(session),
            known_hosts: o.known_hosts.clone(),
        }),
    }
}

fn authenticate(session: &Session, o: &SshOptions) -> Result<(), SshError> {
    let mut tried = Vec::new();
    if std::env::var_os("SSH_AUTH_SOCK").is_some() {
        tried.push("ssh-agent".to_string());
        if session.userauth_agent(&o.user).is_ok() && session.authenticated() {
            return Ok(());
        }
    }
    for id in &o.identities {
        if !id.exists() {
            continue;
        }
        tried.push(format!("key {}", id.display()));
        if session
            .userauth_pubkey_file(&o.user, None, id, None)
            .is_ok()
            && session.authenticated()
        {
            return Ok(());
        }
    }
    if let Some(pw) = &o.password {
        tried.push("password".to_string());
        if session.userauth_password(&o.user, pw).is_ok() && session.authenticated() {
            return Ok(());
        }
    }
    if tried.is_empty() {
        tried.push("nothing (no agent, no key files, no password)".into());
    }
    Err(SshError::Auth {
        user: o.user.clone(),
        host: o.host.clone(),
        tried: tried.join(", "),
    })
}

impl SshSession {
    /// True while a transport's pump thread drives this session.
    pub fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }

    /// True if this session logged in where `o` would.
    pub fn reaches(&self, o: &SshOptions) -> bool {
        let s = &self.options;
        (s.host.as_str(), s.port, s.user.as_str()) == (o.host.as_str(), o.port, o.user.as_str())
    }

    fn check_idle(&self) -> Result<(), SshError> {
        match self.is_busy() {
            true => Err(SshError::Busy(self.options.host.clone())),
            false => Ok(()),
        }
    }

    /// Runs `command` and returns its exit status and standard output
    /// (for short probes such as `uname -sm`).
    pub fn run(&self, command: &str) -> Result<(i32, Vec<u8>), SshError> {
        self.check_idle()?;
        self.session.set_blocking(true);
        let mut ch = self.session.channel_session().map_err(step("channel"))?;
        ch.exec(command).map_err(step("exec"))?;
        let mut out = Vec::new();
        ch.read_to_end(&mut out)?;
        let mut err = Vec::new();
        let _ = ch.stderr().read_to_end(&mut err);
        ch.wait_close().map_err(step("close"))?;
        Ok((ch.exit_status().map_err(step("exit status"))?, out))
    }

    /// Uploads `local` to the absolute path `remote`, executable, by
    /// streaming it through an exec channel into `cat` (SFTP writes wait
    /// for each 32 KiB request's answer, which crawls at a high RTT). The
    /// remote writes a temporary name, checks its size, and only then
    /// moves it into place, so a cut link never leaves a torn file there.
    pub fn upload(&self, local: &Path, remote: &str) -> Result<(), SshError> {
        self.check_idle()?;
        let size = std::fs::metadata(local)?.len();
        let dir = Path::new(remote)
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| ".".into());
        let q = |p: &str| shell_words::quote(p).into_owned();
        let tmp = format!("{remote}.tmp{}", std::process::id());
        let script = format!(
            "mkdir -p {dir} && cat > {tmp} && [ \"$(wc -c < {tmp})\" -eq {size} ] && chmod 755 {tmp} && mv -f {tmp} {target} || {{ rm -f {tmp}; exit 1; }}",
            dir = q(&dir),
            tmp = q(&tmp),
            target = q(remote),
        );
        self.session.set_blocking(true);
        let mut ch = self.session.channel_session().map_err(step("channel"))?;
        ch.exec(&format!("sh -c {}", q(&script)))
            .map_err(step("exec"))?;
        let mut src = std::fs::File::open(local)?;
        io::copy(&mut src, &mut ch)?;
        ch.send_eof().map_err(step("eof"))?;
        let mut err = Vec::new();
        let _ = ch.stderr().read_to_end(&mut err);
        let mut out = Vec::new();
        let _ = ch.read_to_end(&mut out);
        ch.wait_close().map_err(step("close"))?;
        match ch.exit_status().map_err(step("exit status"))? {
            0 => Ok(()),
            n => Err(SshError::Io(io::Error::other(format!(
                "uploading to {remote} failed (exit status {n}): {}",
                String::from_utf8_lossy(&err).trim()
            )))),
        }
    }

    /// Starts `command` on an exec channel and hands it over as a transport.
    /// A pump thread drives the session from then on. The remote's stderr
    /// is held back in the transport's [`StderrTap`](super::StderrTap)
    /// until the client releases it. The session is busy until the pump
    /// ends.
    pub fn exec(&self, command: &str) -> Result<Transport, SshError> {
        if self.busy.swap(true, Ordering::AcqRel) {
            return Err(SshError::Busy(self.options.host.clone()));
        }
        let started = self.start(command);
        if started.is_err() {
            self.busy.store(false, Ordering::Release);
        }
        started
    }

    fn start(&self, command: &str) -> Result<Transport, SshError> {
        self.session.set_blocking(true);
        let mut ch = self.session.channel_session().map_err(step("channel"))?;
        ch.exec(command).map_err(step("exec"))?;
        let description = format!(
            "ssh {}@{}:{} {command}",
            self.options.user, self.options.host, self.options.port
        );
        let socket = self.socket.try_clone()?;
        let tap = super::StderrTap::holding();
        let (reader, writer, end) = super::ssh_pump::start(
            self.session.clone(),
            ch,
            socket,
            self.options.io_timeout,
            tap.clone(),
            self.busy.clone(),
        )?;

        Ok(Transport {
            reader: Box::new(reader),
            writer: Box::new(writer),
            description,
            stderr: Some(tap),
            end: End::Ssh(end),
        })
    }
}

/// The far end of an SSH transport: the pump thread and the exit status it reports.
#[derive(Debug)]
pub struct SshEnd {
    pub(super) join: Option<std::thread::JoinHandle<io::Result<Option<i32>>>>,
    pub(super) stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The pump's wake socket, poked so a stop is seen at once.
    pub(super) poke: std::os::unix::net::UnixStream,
}

impl SshEnd {
    pub(super) fn wait(mut self) -> io::Result<Option<i32>> {
        match self.join.take().map(|j| j.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other("ssh pump thread panicked")),
            None => Ok(None),
        }
    }

    pub(super) fn kill(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = (&self.poke).write(&[1]);
        let _ = self.wait();
    }
}

/// The identity files to try: `--identity`, the config's, then OpenSSH's defaults.
pub fn default_identities(explicit: Option<&Path>, from_config: &[PathBuf]) -> Vec<PathBuf> {
    let mut ids: Vec<PathBuf> = explicit.into_iter().map(Path::to_path_buf).collect();
    ids.extend(from_config.iter().cloned());
    if let Some(home) = std::env::var_os("HOME") {
        for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
            ids.push(Path::new(&home).join(".ssh").join(name));
        }
    }
    ids
}
