//! A real OpenSSH sshd for tests: host and user keys generated in a temp
//! dir, its own known_hosts, a free port on 127.0.0.1, killed on drop.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running sshd and the client-side files that reach it.
pub struct Sshd {
    child: Child,
    config: PathBuf,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// The user's private key.
    pub identity: PathBuf,
    /// A known_hosts file that trusts this sshd.
    pub known_hosts: PathBuf,
    /// The remote user's $HOME (set with SetEnv, so deploys land here).
    pub home: PathBuf,
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "deltasync-test",
            "-f",
        ])
        .arg(path)
        .output()
        .expect("ssh-keygen runs");
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn spawn(config: &Path) -> Child {
    Command::new("/usr/sbin/sshd")
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("sshd starts (the test script installs openssh-server)")
}

/// The processes whose parent is `pid` (from /proc).
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces, so split after ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let ppid: Option<u32> = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        if ppid == Some(pid) {
            if let Some(child) = e.file_name().to_str().and_then(|n| n.parse().ok()) {
                out.push(child);
            }
        }
    }
    out
}

fn wait_listening(port: u16) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "sshd did not start listening"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Sshd {
    /// Kills the server and each session it serves (its child processes,
    /// by pid), as a crash or a cut link would: every connection drops.
    pub fn kill(&mut self) {
        let sessions = children_of(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in sessions {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
        }
    }

    /// Starts the server again, on the same port with the same keys.
    pub fn restart(&mut self) {
        self.child = spawn(&self.config);
        wait_listening(self.port);
    }

    /// Starts sshd; `extra` lines go into its config.
    pub fn start(extra: &str) -> Sshd {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let host_key = d.join("host_ed25519");
        let identity = d.join("id_ed25519");
        keygen(&host_key);
        keygen(&identity);
        let home = d.join("home");
        std::fs::create_dir_all(&home).expect("home");
        let authorized = d.join("authorized_keys");
        std::fs::copy(identity.with_extension("pub"), &authorized).expect("authorized_keys");
        // sshd insists on its privilege-separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = free_port();
        let config = d.join("sshd_config");
        let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPidFile {}\n\
                 StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nAllowUsers {user}\n\
                 Subsystem sftp internal-sftp\nSetEnv HOME={} PATH=/usr/bin:/bin\nLogLevel QUIET\n{extra}\n",
                host_key.display(),
                authorized.display(),
                d.join("sshd.pid").display(),
                home.display(),
            ),
        )
        .expect("config");
        let child = spawn(&config);
        let known_hosts = d.join("known_hosts");
        let pubkey = std::fs::read_to_string(host_key.with_extension("pub")).expect("host pub");
        let mut parts = pubkey.split_whitespace();
        let (kind, key) = (parts.next().expect("type"), parts.next().expect("key"));
        std::fs::File::create(&known_hosts)
            .and_then(|mut f| writeln!(f, "[127.0.0.1]:{port} {kind} {key}"))
            .expect("known_hosts");
        wait_listening(port);
        Sshd {
            child,
            config,
            port,
            dir,
            identity,
            known_hosts,
            home,
        }
    }

    /// A known_hosts file that trusts this server's key on another port
    /// (for connections through a proxy).
    pub fn known_hosts_for(&self, port: u16) -> PathBuf {
        let text = std::fs::read_to_string(&self.known_hosts).expect("known_hosts");
        let line = text.replace(
            &format!("[127.0.0.1]:{}", self.port),
            &format!("[127.0.0.1]:{port}"),
        );
        let p = self.dir.path().join(format!("known_hosts_{port}"));
        std::fs::write(&p, line).expect("write");
        p
    }

    /// The SSH flags every deltasync remote command needs here.
    pub fn flags(&self) -> Vec<String> {
        vec![
            "--identity".into(),
            self.identity.display().to_string(),
            "--known-hosts".into(),
            self.known_hosts.display().to_string(),
        ]
    }

    /// `--remote-bin` for the test binary itself.
    pub fn remote_bin(&self) -> Vec<String> {
        vec![
            "--remote-bin".into(),
            env!("CARGO_BIN_EXE_deltasync").into(),
        ]
    }

    /// `ssh://127.0.0.1:PORT/abs/path`.
    pub fn url(&self, path: &Path) -> String {
        format!("ssh://127.0.0.1:{}{}", self.port, path.display())
    }

    /// An `-e` command for OpenSSH's client with this server's keys.
    pub fn rsh(&self) -> String {
        format!(
            "ssh -p {} -i {} -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -o BatchMode=yes",
            self.port,
            self.identity.display(),
            self.known_hosts.display()
        )
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
