//! `deltasync copy` over a real OpenSSH sshd on 127.0.0.1: push and pull
//! over ssh2 and over `-e ssh`, host-key checks, log-in failures, deploy,
//! a stalled link, resume after a kill, and serve confinement.

mod common;

use common::sshd::Sshd;
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn remote_copy(server: &Sshd, src: &str, dst: &str, extra: &[&str]) -> std::process::Output {
    deltasync()
        .arg("copy")
        .args(extra)
        .args(server.flags())
        .args(server.remote_bin())
        .arg(src)
        .arg(dst)
        .output()
        .expect("runs")
}

fn slash(p: &Path) -> String {
    format!("{}/", p.display())
}

#[test]
fn push_and_pull_over_ssh2() {
    let server = Sshd::start("");
    let d = tmp();
    let src = d.path().join("src");
    sample_tree(&src);
    let remote = d.path().join("remote");
    let out = remote_copy(&server, &slash(&src), &server.url(&remote), &["-i"]);
    assert!(
        out.status.success(),
        "push: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("<f+++++++++ big.bin"),
        "pushes itemize with <"
    );
    assert_same_tree(&src, &remote);

    // Edit remotely, pull back into a fresh copy and into the original.
    write(&remote, "a.txt", b"changed on the far side\n");
    let back = d.path().join("back");
    let out = remote_copy(
        &server,
        &format!("{}/", server.url(&remote)),
        &back.display().to_string(),
        &["-i"],
    );
    assert!(
        out.status.success(),
        "pull: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(">f+++++++++ a.txt"));
    assert_same_tree(&remote, &back);
}

#[test]
fn push_over_rsh_command() {
    let server = Sshd::start("");
    let d = tmp();
    let src = d.path().join("src");
    sample_tree(&src);
    let remote = d.path().join("remote");
    let out = deltasync()
        .args(["copy", "-e", &server.rsh()])
        .args(server.remote_bin())
        .arg(slash(&src))
        .arg(format!("127.0.0.1:{}", remote.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same_tree(&src, &remote);
}

#[test]
fn host_keys_unknown_hashed_and_changed() {
    let server = Sshd::start("");
    let d = tmp();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    write(&src, "f", b"x");
    let url = server.url(&d.path().join("remote"));
    let run = |known: &Path, extra: &[&str]| {
        deltasync()
            .arg("copy")
            .args([
                "--identity",
                &server.identity.display().to_string(),
                "--known-hosts",
                &known.display().to_string(),
            ])
            .args(extra)
            .args(server.remote_bin())
            .arg(slash(&src))
            .arg(&url)
            .output()
            .unwrap()
    };
    // Unknown: refused, with the fingerprint and the hint.
    let empty = d.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let out = run(&empty, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        err.contains("SHA256:") && err.contains("--accept-new-host-key"),
        "{err}"
    );
    // Accepted on request, and recorded.
    let out = run(&empty, &["--accept-new-host-key"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read_to_string(&empty)
            .unwrap()
            .contains(&format!("[127.0.0.1]:{}", server.port))
    );
    assert!(run(&empty, &[]).status.success(), "known now");
    // Hashed entries are understood.
    let hashed = d.path().join("hashed");
    std::fs::copy(&server.known_hosts, &hashed).unwrap();
    let h = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&hashed)
        .output()
        .unwrap();
    assert!(h.status.success());
    assert!(std::fs::read_to_string(&hashed).unwrap().starts_with("|1|"));
    assert!(
        run(&hashed, &[]).status.success(),
        "hashed known_hosts entry"
    );
    // Changed: refused, even with --accept-new-host-key.
    let other = d.path().join("other_key");
    let k = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .output()
        .unwrap();
    assert!(k.status.success());
    let pubkey = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let key: Vec<&str> = pubkey.split_whitespace().take(2).collect();
    let changed = d.path().join("changed");
    std::fs::write(
        &changed,
        format!("[127.0.0.1]:{} {} {}\n", server.port, key[0], key[1]),
    )
    .unwrap();
    for extra in [&[][..], &["--accept-new-host-key"][..]] {
        let out = run(&changed, extra);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "{err}");
        assert!(err.contains("HAS CHANGED"), "{err}");
    }
}

#[test]
fn a_key_the_server_does_not_know_fails_to_log_in() {
    let server = Sshd::start("");
    let d = tmp();
    let stranger = d.path().join("stranger");
    let k = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .output()
        .unwrap();
    assert!(k.status.success());
    std::fs::create_dir(d.path().join("src")).unwrap();
    let out = deltasync()
        .env_remove("SSH_AUTH_SOCK")
        .env("HOME", d.path()) // no default keys to fall back on
        .args([
            "copy",
            "--identity",
            &stranger.display().to_string(),
            "--known-hosts",
            &server.known_hosts.display().to_string(),
        ])
        .args(server.remote_bin())
        .arg(slash(&d.path().join("src")))
        .arg(server.url(&d.path().join("dst")))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        err.contains("authentication failed") && err.contains("stranger"),
        "{err}"
    );
}

#[test]
fn deploys_itself_when_the_remote_has_no_deltasync() {
    let server = Sshd::start("");
    let d = tmp();
    let src = d.path().join("src");
    sample_tree(&src);
    let remote = d.path().join("remote");
    let base = || {
        let mut c = deltasync();
        c.arg("copy")
            .args(server.flags())
            .arg(slash(&src))
            .arg(server.url(&remote));
        c
    };
    let out = base().arg("--no-deploy").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(5),
        "no deltasync there and --no-deploy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = base().output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("not found"),
        "probe noise: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Keyed by the version and a hash of the binary: a rebuilt binary
    // never runs a stale copy.
    let dirs: Vec<_> = std::fs::read_dir(server.home.join(".cache/deltasync"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    assert!(
        dirs[0].starts_with(&format!("{}-", env!("CARGO_PKG_VERSION"))),
        "{dirs:?}"
    );
    let deployed = server
        .home
        .join(".cache/deltasync")
        .join(&dirs[0])
        .join("deltasync");
    assert!(
        deployed.is_file(),
        "binary deployed to {}",
        deployed.display()
    );
    assert_same_tree(&src, &remote);
    // Later runs find the deployed copy: the probe's "not found" from the
    // remote shell is never shown.
    let out = base().output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("not found"), "probe noise: {stderr}");
}

#[test]
fn a_stalled_link_times_out_with_exit_30() {
    let server = Sshd::start("");
    let proxy = proxy::Proxy::start(server.port, Duration::ZERO);
    let d = tmp();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    write(&src, "big", &random_bytes(9, 16 << 20));
    let known = server.known_hosts_for(proxy.port);
    let mut child = deltasync()
        .args([
            "copy",
            "--timeout",
            "3",
            "--bwlimit",
            "2M",
            "--identity",
            &server.identity.display().to_string(),
        ])
        .args(["--known-hosts", &known.display().to_string()])
        .args(server.remote_bin())
        .arg(slash(&src))
        .arg(format!(
            "ssh://127.0.0.1:{}{}",
            proxy.port,
            d.path().join("dst").display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    proxy.stall();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no timeout after 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(30), "{err}");
    assert!(err.contains("--timeout"), "{err}");
}

/// Size of the kept prefix in `root`'s partial directory.
fn partial_bytes(root: &Path) -> u64 {
    std::fs::read_dir(root.join(".deltasync/partial"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Starts a push of a new 24 MiB file, waits until about half is kept on
/// the far side, kills `victim`, then resumes and checks what moved.
fn kill_and_resume(kill_server: bool) {
    let server = Sshd::start("");
    let d = tmp();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let data = random_bytes(24, 24 << 20);
    write(&src, "big", &data);
    let remote = d.path().join("remote");
    let mut child = deltasync()
        .args(["copy", "--bwlimit", "6M"])
        .args(server.flags())
        .args(server.remote_bin())
        .arg(slash(&src))
        .arg(server.url(&remote))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while partial_bytes(&remote) < 11 << 20 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "transfer did not progress"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the kill"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    if kill_server {
        // The remote agent is ours: started by this test through sshd. Find it by its unique root.
        let out = Command::new("pgrep")
            .args(["-f", &format!("serve --root {}", remote.display())])
            .output()
            .unwrap();
        let pids = String::from_utf8_lossy(&out.stdout);
        assert!(!pids.trim().is_empty(), "the remote agent is running");
        for pid in pids.split_whitespace() {
            Command::new("kill").args(["-9", pid]).status().unwrap();
        }
        let status = child.wait().unwrap();
        assert!(!status.success(), "the client notices the dead agent");
    } else {
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !remote.join("big").exists(),
        "a half-sent file never appears at its live path"
    );
    let kept = partial_bytes(&remote);
    assert!(kept > 5 << 20, "a prefix is kept ({kept} bytes)");

    let (status, v, err) = json_run(
        deltasync()
            .args(["copy", "--json"])
            .args(server.flags())
            .args(server.remote_bin())
            .arg(slash(&src))
            .arg(server.url(&remote)),
    );
    assert!(status.success(), "{err}");
    assert!(read(&remote.join("big")) == data, "resumed file is whole");
    let sent = v["sent_bytes"].as_u64().unwrap();
    let limit = (24u64 << 20) * 6 / 10;
    eprintln!(
        "resume after a kill (server killed: {kill_server}): kept {kept} bytes, resumed run sent {sent} of {} bytes",
        24u64 << 20
    );

    assert!(
        sent <= limit,
        "resume sent {sent} bytes, over 60% of the file ({limit})"
    );
    assert_eq!(
        partial_bytes(&remote),
        0,
        "the partial file became the real one"
    );
}

#[test]
fn resume_after_the_client_is_killed() {
    kill_and_resume(false);
}

#[test]
fn resume_after_the_server_is_killed() {
    kill_and_resume(true);
}

#[test]
fn serve_never_writes_through_a_symlink_out_of_its_root() {
    let server = Sshd::start("");
    let d = tmp();
    let outside = d.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    write(&outside, "canary", b"must survive");
    let remote = d.path().join("remote");
    std::fs::create_dir(&remote).unwrap();
    std::os::unix::fs::symlink(&outside, remote.join("escape")).unwrap();
    std::os::unix::fs::symlink(outside.join("canary"), remote.join("canary-link")).unwrap();
    let src = d.path().join("src");
    std::fs::create_dir_all(src.join("escape")).unwrap();
    write(&src.join("escape"), "pwned", b"should land inside the root");
    write(&src.join("escape"), "canary", b"overwritten?");
    write(&src, "canary-link", b"a file now");
    let out = remote_copy(&server, &slash(&src), &server.url(&remote), &["--delete"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        1,
        "nothing new outside the root"
    );
    assert_eq!(read(&outside.join("canary")), b"must survive");
    assert!(
        remote.join("escape").symlink_metadata().unwrap().is_dir(),
        "the link was replaced by a real directory"
    );
    assert_eq!(
        read(&remote.join("escape/pwned")),
        b"should land inside the root"
    );
}

#[test]
fn many_files_cost_few_round_trips() {
    // 100 ms each way: a round trip per file would cost 0.2 s per file.
    let server = Sshd::start("");
    let proxy = proxy::Proxy::start(server.port, Duration::from_millis(100));
    let known = server.known_hosts_for(proxy.port);
    let d = tmp();
    let one = d.path().join("one");
    std::fs::create_dir(&one).unwrap();
    write(&one, "f", b"x");
    let many = d.path().join("many");
    std::fs::create_dir(&many).unwrap();
    for i in 0..500 {
        write(&many, &format!("f{i:03}"), format!("file {i}").as_bytes());
    }
    let time = |src: &Path, name: &str| {
        let start = Instant::now();
        let out = deltasync()
            .args([
                "copy",
                "--identity",
                &server.identity.display().to_string(),
                "--known-hosts",
                &known.display().to_string(),
            ])
            .args(server.remote_bin())
            .arg(slash(src))
            .arg(format!(
                "ssh://127.0.0.1:{}{}",
                proxy.port,
                d.path().join(name).display()
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        start.elapsed()
    };
    let t1 = time(&one, "d1");
    let t500 = time(&many, "d500");
    eprintln!("through a 200 ms RTT link: 1 file {t1:?}, 500 files {t500:?}");
    // A round trip per file would add 100 s; allow a handful of round trips.
    assert!(
        t500 < t1 + Duration::from_millis(2000),
        "1 file: {t1:?}, 500 files: {t500:?}"
    );
    assert_eq!(
        std::fs::read_dir(d.path().join("d500")).unwrap().count(),
        501
    );
}

#[test]
fn ssh_config_aliases_are_honoured() {
    let server = Sshd::start("");
    let d = tmp();
    let src = d.path().join("src");
    sample_tree(&src);
    let config = d.path().join("ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host office-b\n    HostName 127.0.0.1\n    Port {}\n    User {}\n    IdentityFile {}\n",
            server.port,
            std::env::var("USER").unwrap_or_else(|_| "root".into()),
            server.identity.display()
        ),
    )
    .unwrap();
    let remote = d.path().join("remote");
    let out = deltasync()
        .env_remove("SSH_AUTH_SOCK")
        .args([
            "copy",
            "--ssh-config",
            &config.display().to_string(),
            "--known-hosts",
            &server.known_hosts.display().to_string(),
        ])
        .args(server.remote_bin())
        .arg(slash(&src))
        .arg(format!("office-b:{}", remote.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same_tree(&src, &remote);
}

#[test]
fn ssh_agent_is_tried_first() {
    let server = Sshd::start("");
    let d = tmp();
    let sock = d.path().join("agent.sock");
    // An agent of our own, ended by its pid at the end.
    let mut agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !sock.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "ssh-agent did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let added = Command::new("ssh-add")
        .arg(&server.identity)
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    write(&src, "f", b"via the agent");
    let out = deltasync()
        .env("SSH_AUTH_SOCK", &sock)
        .env("HOME", d.path()) // no key files to fall back on
        .args([
            "copy",
            "--known-hosts",
            &server.known_hosts.display().to_string(),
        ])
        .args(server.remote_bin())
        .arg(slash(&src))
        .arg(server.url(&d.path().join("remote")))
        .output()
        .unwrap();
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read(&d.path().join("remote/f")), b"via the agent");
}

/// The start-up cost at 40 ms RTT: a one-file copy, median of 5, beside
/// `rsync -az` over OpenSSH through the same proxy. A benchmark: only
/// with DELTASYNC_BENCH=1 (numbers go to docs/benchmarks.md).
#[test]
fn bench_start_up_at_40ms_rtt() {
    if std::env::var_os("DELTASYNC_BENCH").is_none() {
        eprintln!("skipped: a benchmark; run with DELTASYNC_BENCH=1");
        return;
    }
    let server = Sshd::start("");
    let proxy = proxy::Proxy::start(server.port, Duration::from_millis(20));
    let known = server.known_hosts_for(proxy.port);
    let d = tmp();
    let src = d.path().join("src");
    write(&src, "one.txt", b"a small file");
    let url = |name: &str| {
        format!(
            "ssh://127.0.0.1:{}{}",
            proxy.port,
            d.path().join(name).display()
        )
    };
    let copy = |name: &str, extra: &[String]| {
        let start = Instant::now();
        ok(deltasync()
            .arg("copy")
            .args(["--identity", &server.identity.display().to_string()])
            .args(["--known-hosts", &known.display().to_string()])
            .args(extra)
            .arg(slash(&src))
            .arg(url(name)));
        start.elapsed()
    };
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let first = copy("deploy", &[]);
    let cached = median((0..5).map(|i| copy(&format!("c{i}"), &[])).collect());
    let bin = server.remote_bin();
    let with_bin = median((0..5).map(|i| copy(&format!("b{i}"), &bin)).collect());
    let rsh = format!(
        "ssh -p {} -i {} -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -o BatchMode=yes",
        proxy.port,
        server.identity.display(),
        known.display()
    );
    let rsync = median(
        (0..5)
            .map(|i| {
                let start = Instant::now();
                ok(Command::new("rsync")
                    .args(["-az", "-e", &rsh])
                    .arg(slash(&src))
                    .arg(format!(
                        "127.0.0.1:{}/",
                        d.path().join(format!("r{i}")).display()
                    )));
                start.elapsed()
            })
            .collect(),
    );
    println!(
        "start-up at 40 ms RTT, one small file: deltasync first run (deploys) {:.2} s; \
         later runs {:.2} s; with --remote-bin {:.2} s; rsync -az {:.2} s (medians of 5)",
        first.as_secs_f64(),
        cached.as_secs_f64(),
        with_bin.as_secs_f64(),
        rsync.as_secs_f64()
    );
}
