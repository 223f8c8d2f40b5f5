//! `deltasync watch` against a real sshd: edits on either side arrive
//! within settle + 2 s; a conflict made while the link was down is settled
//! after it comes back, with nothing lost; a killed and restarted sshd is
//! reconnected to; SIGTERM leaves no lock and no partial file behind.

mod common;

use common::sshd::Sshd;
use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SETTLE: Duration = Duration::from_secs(1);

/// A `deltasync watch` child, killed (by its pid) if a test fails.
struct Watch {
    child: Child,
    log: PathBuf,
    state: tempfile::TempDir,
}

impl Watch {
    fn start(server: &Sshd, a: &Path, b: &Path) -> Watch {
        let mut flags = server.flags();
        flags.extend(["--keepalive".into(), "2s".into()]);
        Watch::start_with(server, &server.url(b), a, &flags)
    }

    /// A watch of `a` and `b` on `server` through a proxy that delays
    /// each way by `delay`.
    fn through_proxy(
        server: &Sshd,
        a: &Path,
        b: &Path,
        delay: Duration,
        extra: &[&str],
    ) -> (Watch, common::proxy::Proxy) {
        let proxy = common::proxy::Proxy::start(server.port, delay);
        let url = format!("ssh://127.0.0.1:{}{}", proxy.port, b.display());
        let mut flags = vec![
            "--identity".to_string(),
            server.identity.display().to_string(),
            "--known-hosts".into(),
            server.known_hosts_for(proxy.port).display().to_string(),
        ];
        flags.extend(extra.iter().map(|e| e.to_string()));
        (Watch::start_with(server, &url, a, &flags), proxy)
    }

    fn start_with(server: &Sshd, url: &str, a: &Path, flags: &[String]) -> Watch {
        let mut cmd = deltasync();
        cmd.arg("watch")
            .arg(a)
            .arg(url)
            .args(flags)
            .args(server.remote_bin())
            .args(["--settle", "1s"]);
        Watch::spawn(&mut cmd, tmp())
    }

    /// Starts `cmd` (a watch, however it is wrapped: setpriv, unshare)
    /// with its status files in `state`, and its output kept there.
    fn spawn(cmd: &mut Command, state: tempfile::TempDir) -> Watch {
        let log = state.path().join("watch.log");
        let child = cmd
            .env("XDG_STATE_HOME", state.path())
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log).unwrap())
            .stderr(fs::File::create(state.path().join("watch.err")).unwrap())
            .spawn()
            .expect("deltasync watch starts");
        Watch { child, log, state }
    }

    /// Waits up to `secs` for `p` to hold `data`; fails with the log.
    #[track_caller]
    fn wait_for(&self, p: &Path, data: &[u8], secs: u64) {
        let got = within(Duration::from_secs(secs), || holds(p, data));
        assert!(
            got.is_some(),
            "{} never held {:?}: {}",
            p.display(),
            String::from_utf8_lossy(data),
            self.log()
        );
    }

    fn log(&self) -> String {
        let err = fs::read_to_string(self.state.path().join("watch.err")).unwrap_or_default();
        format!("{}{err}", fs::read_to_string(&self.log).unwrap_or_default())
    }

    fn status(&self) -> String {
        let out = deltasync()
            .arg("status")
            .env("XDG_STATE_HOME", self.state.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// SIGTERM; the exit status.
    /// Sends signal `sig` (`-HUP`, `-TERM`) to the watch, by its pid.
    fn signal(&self, sig: &str) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args([sig, &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("-TERM");
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < until, "watch did not stop: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits up to `limit` for `cond`; how long it took, or `None`.
fn within(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn holds(p: &Path, data: &[u8]) -> bool {
    fs::read(p).is_ok_and(|d| d == data)
}

/// Every file's contents under `root`, the work folder's kept versions included.
fn all_contents(root: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.push(fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

fn setup() -> (Sshd, tempfile::TempDir, PathBuf, PathBuf) {
    let server = Sshd::start("");
    let t = tmp();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    write(&a, "first.txt", b"from the start");
    (server, t, a, b)
}

#[test]
fn edits_on_either_side_arrive_within_settle_plus_two_seconds() {
    let (server, _t, a, b) = setup();
    let mut w = Watch::start(&server, &a, &b);
    w.wait_for(&b.join("first.txt"), b"from the start", 20);
    let bound = SETTLE + Duration::from_secs(2);
    for i in 0..3 {
        let data = format!("local edit {i}");
        write(&a, &format!("dir/local{i}.txt"), data.as_bytes());
        let took = within(Duration::from_secs(10), || {
            holds(&b.join(format!("dir/local{i}.txt")), data.as_bytes())
        });
        assert!(
            took.is_some_and(|t| t <= bound),
            "local -> remote took {took:?}: {}",
            w.log()
        );
        let data = format!("remote edit {i}");
        write(&b, "first.txt", data.as_bytes());
        let took = within(Duration::from_secs(10), || {
            holds(&a.join("first.txt"), data.as_bytes())
        });
        assert!(
            took.is_some_and(|t| t <= bound),
            "remote -> local took {took:?}: {}",
            w.log()
        );
    }
    // A deletion travels too.
    fs::remove_file(a.join("dir/local0.txt")).unwrap();
    assert!(
        within(Duration::from_secs(10), || !b
            .join("dir/local0.txt")
            .exists())
        .is_some(),
        "{}",
        w.log()
    );
    assert!(w.status().contains("watching"), "{}", w.status());
    assert!(w.terminate().success(), "{}", w.log());
}

#[test]
fn a_conflict_made_while_the_link_is_down_is_settled_after_it_returns() {
    let (mut server, _t, a, b) = setup();
    write(&a, "shared.txt", b"the base version");
    let w = Watch::start(&server, &a, &b);
    w.wait_for(&b.join("shared.txt"), b"the base version", 20);
    server.kill();
    // Both sides change the same file, and each adds one of its own.
    write(&a, "shared.txt", b"A's edit while the link was down");
    write(&b, "shared.txt", b"B's edit while the link was down");
    write(&a, "only-a.txt", b"new on A");
    write(&b, "only-b.txt", b"new on B");
    assert!(
        within(Duration::from_secs(10), || w.log().contains("trying again")).is_some(),
        "the lost link was not noticed: {}",
        w.log()
    );
    server.restart();
    let converged = within(Duration::from_secs(60), || {
        holds(&b.join("only-a.txt"), b"new on A")
            && holds(&a.join("only-b.txt"), b"new on B")
            && fs::read(a.join("shared.txt")).ok() == fs::read(b.join("shared.txt")).ok()
    });
    assert!(
        converged.is_some(),
        "no convergence after the restart: {}",
        w.log()
    );
    // Nothing lost: both edits are still there, one live and one kept
    // (in the conflicts folder of the side it lost on).
    let mut all = all_contents(&a);
    all.extend(all_contents(&b));
    for edit in [
        &b"A's edit while the link was down"[..],
        b"B's edit while the link was down",
    ] {
        assert!(
            all.iter().any(|c| c == edit),
            "lost {:?}: {}",
            String::from_utf8_lossy(edit),
            w.log()
        );
    }
}

#[test]
fn sigterm_parks_the_transfer_in_flight_and_leaves_no_lock() {
    let (server, _t, a, b) = setup();
    // 48 MiB at 4 MiB/s: still sending when SIGTERM comes.
    write(&a, "big.bin", &random_bytes(7, 48 << 20));
    let mut flags = server.flags();
    flags.extend(["--bwlimit".into(), "4M".into(), "--no-compress".into()]);
    let mut w = Watch::start_with(&server, &server.url(&b), &a, &flags);
    assert!(
        within(Duration::from_secs(20), || w.log().contains("connected")).is_some(),
        "{}",
        w.log()
    );
    std::thread::sleep(Duration::from_millis(2500));
    let asked = Instant::now();
    let status = w.terminate();
    assert!(status.success(), "exit {status}: {}", w.log());
    assert!(
        asked.elapsed() < Duration::from_secs(8),
        "SIGTERM took {:?}: the transfer was not parked: {}",
        asked.elapsed(),
        w.log()
    );
    // Nothing torn at a live path, no stray file; the prefix is parked.
    assert!(!b.join("big.bin").exists(), "{}", w.log());
    for side in [&a, &b] {
        for e in fs::read_dir(side).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(
                matches!(name.as_str(), "big.bin" | "first.txt" | ".deltasync"),
                "stray {name} in {}",
                side.display()
            );
        }
    }
    let parked = fs::read_dir(b.join(".deltasync/partial")).map_or(0, |d| d.count());
    assert!(parked > 0, "no parked prefix: {}", w.log());
    // No lock is left: a plain sync runs at once, resumes, and converges.
    ok(deltasync()
        .arg("sync")
        .arg(&a)
        .arg(server.url(&b))
        .args(server.flags())
        .args(server.remote_bin()));
    assert_eq!(read(&b.join("big.bin")), read(&a.join("big.bin")));
    assert!(w.status().contains("stopped"), "{}", w.status());
}

#[test]
fn a_tree_past_the_inotify_limit_is_scanned_instead() {
    // A user namespace of our own, where the watch limit is 3.
    let probe = Command::new("unshare")
        .args([
            "-Ur",
            "sh",
            "-c",
            "echo 3 > /proc/sys/user/max_inotify_watches",
        ])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!(
            "skipped: this kernel does not let us make a user namespace with its own inotify limit"
        );
        return;
    }
    let t = tmp();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    for i in 0..10 {
        write(&a, &format!("d{i}/f"), b"x");
    }
    fs::create_dir_all(&b).unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args([
        "-Ur",
        "sh",
        "-c",
        "echo 3 > /proc/sys/user/max_inotify_watches && exec \"$@\"",
        "sh",
    ])
    .arg(env!("CARGO_BIN_EXE_deltasync"))
    .arg("watch")
    .arg(&a)
    .arg(&b)
    .args(["--settle", "500ms", "--scan-every", "2s"]);
    let mut w = Watch::spawn(&mut cmd, tmp());
    w.wait_for(&b.join("d9/f"), b"x", 20);
    write(&a, "d5/new.txt", b"made after the start");
    w.wait_for(&b.join("d5/new.txt"), b"made after the start", 10);
    let status = w.terminate();
    assert!(w.log().contains("cannot be watched"), "{}", w.log());
    assert!(w.log().contains("max_user_watches"), "{}", w.log());
    assert!(status.success(), "{status}: {}", w.log());
}

/// CPU time (user + system, in clock ticks) of every deltasync process:
/// the watch, its local agent and the remote agent.
fn deltasync_ticks() -> u64 {
    let bin = env!("CARGO_BIN_EXE_deltasync");
    let mut total = 0;
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let cmdline = fs::read(e.path().join("cmdline")).unwrap_or_default();
        if !cmdline.starts_with(bin.as_bytes()) {
            continue;
        }
        let stat = fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        total += f.get(11).unwrap_or(&0) + f.get(12).unwrap_or(&0); // utime, stime
    }
    total
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Latency of 20 edits each way, idle CPU over 60 s and bytes per idle
/// minute, over a 40 ms RTT proxy. A benchmark: only with DELTASYNC_BENCH=1
/// (numbers go to docs/benchmarks.md).
#[test]
fn bench_watch_latency_idle_cpu_and_idle_bytes() {
    if std::env::var_os("DELTASYNC_BENCH").is_none() {
        eprintln!("skipped: a benchmark; run with DELTASYNC_BENCH=1");
        return;
    }
    let (server, _t, a, b) = setup();
    let (w, proxy) = Watch::through_proxy(&server, &a, &b, Duration::from_millis(20), &[]);
    w.wait_for(&b.join("first.txt"), b"from the start", 30);
    let (mut up, mut down) = (Vec::new(), Vec::new());
    for i in 0..20 {
        let data = format!("edit {i} made on A");
        let start = Instant::now();
        write(&a, &format!("a{i}.txt"), data.as_bytes());
        within(Duration::from_secs(20), || {
            holds(&b.join(format!("a{i}.txt")), data.as_bytes())
        })
        .expect("arrived");
        up.push(start.elapsed());
        let data = format!("edit {i} made on B");
        let start = Instant::now();
        write(&b, &format!("b{i}.txt"), data.as_bytes());
        within(Duration::from_secs(20), || {
            holds(&a.join(format!("b{i}.txt")), data.as_bytes())
        })
        .expect("arrived");
        down.push(start.elapsed());
    }
    std::thread::sleep(Duration::from_secs(5)); // our own echoes settle
    let ticks = deltasync_ticks();
    let bytes = proxy.up.load(std::sync::atomic::Ordering::Relaxed)
        + proxy.down.load(std::sync::atomic::Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(60));
    let idle_ticks = deltasync_ticks() - ticks;
    let idle_bytes = proxy.up.load(std::sync::atomic::Ordering::Relaxed)
        + proxy.down.load(std::sync::atomic::Ordering::Relaxed)
        - bytes;
    println!(
        "watch bench (settle 1 s, 40 ms RTT): A->B median {:.2} s p95 {:.2} s; B->A median {:.2} s p95 {:.2} s; \
         idle CPU over 60 s: {:.2} s ({:.3}%); idle bytes per minute: {idle_bytes}",
        percentile(&mut up, 0.5).as_secs_f64(),
        percentile(&mut up, 0.95).as_secs_f64(),
        percentile(&mut down, 0.5).as_secs_f64(),
        percentile(&mut down, 0.95).as_secs_f64(),
        idle_ticks as f64 / 100.0,
        idle_ticks as f64 / 100.0 / 60.0 * 100.0,
    );
}

#[test]
fn a_config_pair_is_watched_by_name_and_sighup_reloads_it() {
    let t = tmp();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    write(&a, "keep.txt", b"kept");
    fs::create_dir_all(&b).unwrap();
    let config = t.path().join("config.toml");
    let pair = |exclude: &str| {
        format!(
            "[pairs.office]\na = \"{}\"\nb = \"{}\"\nexclude = [\"{exclude}\"]\n",
            a.display(),
            b.display()
        )
    };
    fs::write(&config, pair("*.tmp")).unwrap();
    let mut cmd = deltasync();
    cmd.args(["watch", "office", "--settle", "300ms", "--config"])
        .arg(&config);
    let mut w = Watch::spawn(&mut cmd, tmp());
    w.wait_for(&b.join("keep.txt"), b"kept", 20);
    write(&a, "x.tmp", b"excluded");
    write(&a, "x.log", b"taken");
    w.wait_for(&b.join("x.log"), b"taken", 10);
    assert!(
        !b.join("x.tmp").exists(),
        "an excluded file was synced: {}",
        w.log()
    );
    // Reload with *.tmp no longer excluded: the full sync after it takes x.tmp.
    fs::write(&config, pair("*.bak")).unwrap();
    w.signal("-HUP");
    w.wait_for(&b.join("x.tmp"), b"excluded", 20);
    assert!(w.log().contains("reloading"), "{}", w.log());
    let status = w.terminate();
    assert!(status.success(), "{status}: {}", w.log());
    assert!(w.status().contains("office: stopped"), "{}", w.status());
}

#[test]
fn a_link_that_goes_silent_is_noticed_and_reconnected() {
    let (server, _t, a, b) = setup();
    let (w, proxy) = Watch::through_proxy(
        &server,
        &a,
        &b,
        Duration::from_millis(1),
        &["--keepalive", "2s"],
    );
    w.wait_for(&b.join("first.txt"), b"from the start", 20);
    // Once the first sync is over, the network goes quiet: no error, no bytes.
    assert!(
        within(Duration::from_secs(20), || w.log().contains("full sync:")).is_some(),
        "{}",
        w.log()
    );
    proxy.stall();
    write(&b, "made-while-silent.txt", b"on B, link down");
    assert!(
        within(Duration::from_secs(15), || w.log().contains("trying again")).is_some(),
        "the silent link was not noticed: {}",
        w.log()
    );
    proxy.resume();
    w.wait_for(&a.join("made-while-silent.txt"), b"on B, link down", 60);
}

#[test]
fn a_folder_that_keeps_failing_does_not_make_every_turn_a_full_pass() {
    if !deltasync_driver::running_as_root() {
        eprintln!("skipped: needs root to act as the user nobody");
        return;
    }
    let t = tmp();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    // The watch's status files, in a folder nobody may write.
    let state = tmp();
    write(&a.join("locked"), "inside.txt", b"unreadable to nobody");
    write(&a, "ok.txt", b"fine");
    fs::create_dir_all(&b).unwrap();
    fs::set_permissions(
        t.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let chown = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(&a)
        .arg(&b)
        .arg(state.path())
        .status()
        .unwrap();
    assert!(chown.success());
    fs::set_permissions(
        a.join("locked"),
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_deltasync"))
        .arg("watch")
        .arg(&a)
        .arg(&b)
        .args(["--settle", "200ms", "--full-every", "1s"])
        .env("HOME", state.path());
    let mut w = Watch::spawn(&mut cmd, state);
    w.wait_for(&b.join("ok.txt"), b"fine", 20);
    std::thread::sleep(Duration::from_secs(5));
    let status = w.terminate();
    assert!(status.success(), "{status}: {}", w.log());
    // About one full pass a second (each one partial), not one per turn.
    let full = w.log().matches("full sync:").count();
    assert!(
        (2..=10).contains(&full),
        "{full} full passes in about 5 s: {}",
        w.log()
    );
    assert!(w.log().contains("failed"), "{}", w.log());
}
