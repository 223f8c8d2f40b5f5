//! Running unattended from a config file: precedence of the command line,
//! the environment, a pair and `[defaults]`; `run`'s batch retry; hooks
//! (timeout, exit 53, remote over sshd); alerts fired once per change of
//! health; the free-space stop; errors that name the file, line and key.

mod common;

use common::sshd::Sshd;
use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A temp dir with a config file and a private HOME.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(config: &str) -> Setup {
        let s = Setup { dir: tmp() };
        let text = config.replace("@/", &format!("{}/", s.path().display()));
        fs::write(s.config(), text).unwrap();
        s
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn config(&self) -> PathBuf {
        self.path().join("config.toml")
    }

    /// `deltasync ARGS --config FILE`, with HOME here and no DELTASYNC_*
    /// variables from outside.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = deltasync();
        for (k, _) in std::env::vars() {
            if k.starts_with("DELTASYNC_") {
                c.env_remove(k);
            }
        }
        c.env("HOME", self.path())
            .env("XDG_CONFIG_HOME", self.path().join("xdg"));
        c.args(args).arg("--config").arg(self.config());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        bounded(&mut self.cmd(args), Duration::from_secs(60))
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn files(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(root)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != ".deltasync")
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn the_command_line_beats_the_environment_beats_the_pair_beats_defaults() {
    let s = Setup::new(
        r#"
[defaults]
exclude = ["*.a"]

[pairs.plain]
a = "@/src"
b = "@/plain"

[pairs.own]
a = "@/src"
b = "@/own"
exclude = ["*.b"]
"#,
    );
    for ext in ["a", "b", "c", "d"] {
        write(&s.path().join("src"), &format!("x.{ext}"), b"x");
    }
    // [defaults] alone, then the pair's own list in its place.
    assert!(s.run(&["run", "plain"]).status.success());
    assert_eq!(files(&s.path().join("plain")), ["x.b", "x.c", "x.d"]);
    let out = s.run(&["run", "own"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(files(&s.path().join("own")), ["x.a", "x.c", "x.d"]);
    // The environment over the pair, the command line over both.
    fs::remove_dir_all(s.path().join("own")).unwrap();
    fs::remove_dir_all(s.path().join("src/.deltasync")).unwrap();
    let out = bounded(
        s.cmd(&["run", "own"]).env("DELTASYNC_EXCLUDE", "*.c"),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(files(&s.path().join("own")), ["x.a", "x.b", "x.d"]);
    fs::remove_dir_all(s.path().join("own")).unwrap();
    fs::remove_dir_all(s.path().join("src/.deltasync")).unwrap();
    let out = bounded(
        s.cmd(&["run", "own", "--exclude", "*.d"])
            .env("DELTASYNC_EXCLUDE", "*.c"),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(files(&s.path().join("own")), ["x.a", "x.b", "x.c"]);
    // `config show` names where each value came from.
    let out = bounded(
        s.cmd(&["config", "show", "own"])
            .env("DELTASYNC_MAX_DELETE", "7"),
        Duration::from_secs(10),
    );
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("exclude = [\"*.b\"]  # from pair section in"),
        "{shown}"
    );
    assert!(shown.contains("config.toml:12"), "{shown}");
    assert!(
        shown.contains("max-delete = \"7\"  # from environment DELTASYNC_MAX_DELETE"),
        "{shown}"
    );
}

#[test]
fn a_bad_key_or_value_names_the_file_line_and_key() {
    for (body, line, key) in [
        ("[defaults]\nmax-delete = 5\nbwlimt = \"2M\"\n", 3, "bwlimt"),
        (
            "[pairs.p]\na = \"/x\"\nb = \"/y\"\nconflict = \"sometimes\"\n",
            4,
            "conflict",
        ),
        (
            "[pairs.p]\na = \"/x\"\nb = \"/y\"\n\nmax-time = \"10x\"\n",
            5,
            "max-time",
        ),
        (
            "[pairs.p]\na = \"/x\"\nb = \"/y\"\nchecksum = \"yes\"\n",
            4,
            "checksum",
        ),
    ] {
        let s = Setup::new(body);
        let out = s.run(&["config", "check"]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{t}");
        let want = format!("config.toml:{line}: ");
        assert!(t.contains(&want), "{want} in {t}");
        assert!(t.contains(&format!("`{key}`")), "{key} in {t}");
    }
    let s = Setup::new("[pairs.p]\na = \"/x\"\nb = \"/y\"\n");
    let out = s.run(&["config", "check"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = bounded(
        s.cmd(&["run", "p"]).env("DELTASYNC_MAX_DELETE", "lots"),
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("DELTASYNC_MAX_DELETE"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_failed_pair_is_retried_at_the_end_and_the_worst_code_wins() {
    // `flaky` fails its first try (its pre hook), then works.
    let s = Setup::new(
        r#"
[pairs.flaky]
a = "@/a1"
b = "@/b1"
pre-cmd = "test -e @/tried || { touch @/tried; exit 3; }"

[pairs.good]
a = "@/a2"
b = "@/b2"
"#,
    );
    write(&s.path().join("a1"), "f", b"1");
    write(&s.path().join("a2"), "g", b"2");
    let out = s.run(&["run", "--all"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("flaky: exit 53"), "{t}");
    assert!(t.contains("flaky (retry 1): ok"), "{t}");
    let order: Vec<&str> = t.lines().filter(|l| l.contains(": ")).collect();
    let pos = |p: &str| order.iter().position(|l| l.starts_with(p)).unwrap();
    assert!(
        pos("good") < pos("flaky (retry 1)"),
        "retried at the end: {t}"
    );
    assert_eq!(read(&s.path().join("b1/f")), b"1");
    // Without retries the batch ends with the failed pair's code.
    fs::remove_file(s.path().join("tried")).unwrap();
    let out = s.run(&["run", "--all", "--retries", "0", "--json"]);
    assert_eq!(out.status.code(), Some(53), "{}", text(&out));
    let objects: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 2);
    assert_eq!(objects[0]["pair"], "flaky");
    assert_eq!(objects[0]["exit"], 53);
    assert_eq!(objects[1]["exit"], 0);
}

#[test]
fn a_hook_past_its_timeout_is_killed_with_its_children() {
    let s = Setup::new(
        r#"
[pairs.slow]
a = "@/a"
b = "@/b"
hook-timeout = "1s"
pre-cmd = "sleep 120 & echo $! > @/child.pid; wait"
"#,
    );
    write(&s.path().join("a"), "f", b"1");
    let t0 = Instant::now();
    let out = s.run(&["run", "slow", "--retries", "0"]);
    let took = t0.elapsed();
    assert_eq!(out.status.code(), Some(53), "{}", text(&out));
    assert!(text(&out).contains("hook-timeout"), "{}", text(&out));
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert!(
        !s.path().join("b/f").exists(),
        "a failed pre hook skips the sync"
    );
    let pid = fs::read_to_string(s.path().join("child.pid")).unwrap();
    let stat = fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
    // Gone, or a zombie waiting for its reaper: not running or sleeping.
    let state = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .next();
    assert!(
        matches!(state, None | Some("Z") | Some("X")),
        "the hook's child survived: {stat}"
    );
    // With stop-on-hook-error false, the sync goes on.
    let out = s.run(&["run", "slow", "--stop-on-hook-error", "false"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(read(&s.path().join("b/f")), b"1");
}

#[test]
fn an_alert_fires_once_when_failing_starts_and_once_on_recovery() {
    let s = Setup::new(
        r#"
[pairs.p]
a = "@/a"
b = "@/b"
pre-cmd = "test ! -e @/broken"
on-failure = "{ echo FAIL $DELTASYNC_PAIR; cat; } >> @/alerts.log"
on-recovery = "echo RECOVER $DELTASYNC_PAIR >> @/alerts.log"
"#,
    );
    write(&s.path().join("a"), "f", b"1");
    let log = s.path().join("alerts.log");
    let alerts = || fs::read_to_string(&log).unwrap_or_default();
    assert!(s.run(&["run", "p"]).status.success());
    assert_eq!(alerts(), "", "a healthy pair sends nothing");
    fs::write(s.path().join("broken"), b"").unwrap();
    for _ in 0..3 {
        assert_eq!(
            s.run(&["run", "p", "--retries", "0"]).status.code(),
            Some(53)
        );
    }
    let a = alerts();
    assert_eq!(a.matches("FAIL p").count(), 1, "{a}");
    assert!(a.contains("pre-cmd"), "the error is on stdin: {a}");
    fs::remove_file(s.path().join("broken")).unwrap();
    for _ in 0..2 {
        assert!(s.run(&["run", "p"]).status.success());
    }
    let a = alerts();
    assert_eq!(a.matches("RECOVER p").count(), 1, "{a}");
    assert_eq!(a.matches("FAIL p").count(), 1, "{a}");
    assert!(
        s.path()
            .join("a/.deltasync/state")
            .read_dir()
            .unwrap()
            .any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".outcome.json")),
        "the outcome is kept with the pair's state"
    );
}

#[test]
fn too_little_free_space_stops_before_any_change() {
    let s = Setup::new(
        r#"
[pairs.full]
a = "@/a"
b = "@/b"
min-free-space = "100%"

[pairs.roomy]
a = "@/a"
b = "@/c"
min-free-space = "1K"
"#,
    );
    write(&s.path().join("a"), "f", &random_bytes(1, 100_000));
    fs::create_dir(s.path().join("b")).unwrap();
    let out = s.run(&["run", "full", "--retries", "0"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(54), "{t}");
    assert!(t.contains("free"), "{t}");
    assert!(!s.path().join("b/f").exists(), "nothing changed");
    let out = s.run(&["run", "roomy"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(read(&s.path().join("c/f")), read(&s.path().join("a/f")));
    // A plain sync takes the flag too.
    let out = bounded(
        deltasync()
            .args(["sync", "--min-free-space", "100%"])
            .arg(s.path().join("a"))
            .arg(s.path().join("d")),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(54), "{}", text(&out));
}

#[test]
fn remote_hooks_run_on_the_remote_side_over_ssh() {
    let server = Sshd::start("");
    let s = Setup::new("");
    let remote = s.path().join("remote");
    fs::create_dir(&remote).unwrap();
    let flags = server.flags();
    let bin = server.remote_bin();
    // The agent notes its SSH connection (client address and port) too.
    let wrap = s.path().join("wrap.sh");
    fs::write(
        &wrap,
        format!(
            "#!/bin/sh\necho \"$SSH_CONNECTION\" > {}/agent.txt\nexec {} \"$@\"\n",
            s.path().display(),
            bin[1]
        ),
    )
    .unwrap();
    fs::set_permissions(&wrap, fs::Permissions::from_mode(0o755)).unwrap();
    let config = format!(
        "[pairs.r]\na = \"{}\"\nb = \"{}\"\nidentity = \"{}\"\nknown-hosts = \"{}\"\nremote-bin = \"{}\"\n\
         remote-pre-cmd = \"echo pre $DELTASYNC_PAIR $DELTASYNC_DRY_RUN > {dir}/pre.txt; echo $SSH_CONNECTION > {dir}/pre-conn.txt\"\n\
         remote-post-cmd = \"echo post $DELTASYNC_EXIT > {dir}/post.txt; echo $SSH_CONNECTION > {dir}/post-conn.txt\"\n",
        s.path().join("a").display(),
        server.url(&remote),
        flags[1],
        flags[3],
        wrap.display(),
        dir = s.path().display(),
    );
    fs::write(s.config(), config).unwrap();
    write(&s.path().join("a"), "f", b"hello");
    let out = s.run(&["run", "r"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(read(&remote.join("f")), b"hello");
    assert_eq!(
        fs::read_to_string(s.path().join("pre.txt")).unwrap(),
        "pre r 0\n"
    );
    assert_eq!(
        fs::read_to_string(s.path().join("post.txt")).unwrap(),
        "post 0\n"
    );
    // Hooks and agent went through one SSH session: one TCP connection.
    let conn = |name: &str| fs::read_to_string(s.path().join(name)).unwrap();
    let agent = conn("agent.txt");
    assert!(agent.split(' ').count() == 4, "{agent:?}");
    assert_eq!(conn("pre-conn.txt"), agent);
    assert_eq!(conn("post-conn.txt"), agent);
    // A failing remote pre hook stops the sync.
    let out = s.run(&["run", "r", "--retries", "0", "--remote-pre-cmd", "exit 4"]);
    assert_eq!(out.status.code(), Some(53), "{}", text(&out));
    assert!(text(&out).contains("exit status 4"), "{}", text(&out));
}

#[test]
fn completions_and_the_man_page_are_generated() {
    let bash = ok(deltasync().args(["completions", "bash"]));
    let bash = String::from_utf8_lossy(&bash);
    assert!(
        bash.contains("deltasync") && bash.contains("--min-free-space"),
        "{bash}"
    );
    let man = ok(deltasync().arg("man"));
    let man = String::from_utf8_lossy(&man);
    assert!(man.starts_with(".ie") || man.contains(".TH"), "{man}");
    assert!(man.contains("run"), "{man}");
}

#[test]
fn a_log_file_gets_timed_lines_as_text_or_json_and_progress_on_long_runs() {
    let s = Setup::new(
        r#"
[pairs.p]
a = "@/a"
b = "@/b"
log-file = "@/logs/p.log"
keep-logging = "1s"
bwlimit = "1M"
"#,
    );
    write(&s.path().join("a"), "big", &random_bytes(3, 3 << 20));
    let out = s.run(&["run", "p"]);
    assert!(out.status.success(), "{}", text(&out));
    let log = fs::read_to_string(s.path().join("logs/p.log")).unwrap();
    let first = log.lines().next().unwrap_or("");
    assert!(
        first.starts_with("20") && first.contains("T"),
        "a time first: {log}"
    );
    assert!(log.contains("pair p: start"), "{log}");
    assert!(log.contains("a->b create   big"), "{log}");
    assert!(
        log.contains("progress: "),
        "a progress line each second: {log}"
    );
    assert!(log.contains("pair p: ok"), "{log}");
    write(&s.path().join("a"), "small", b"s");
    let out = s.run(&["run", "p", "--log-format", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let log = fs::read_to_string(s.path().join("logs/p.log")).unwrap();
    let json: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(json.len() >= 3, "{log}");
    assert!(json.iter().all(|v| v["timestamp"].is_string()), "{log}");
    assert!(
        json.iter().any(|v| v["fields"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("create   small")),
        "{log}"
    );
}

#[test]
fn filters_follow_rsyncs_first_match_order_in_copy_sync_and_a_config() {
    let s = Setup::new(
        r#"
[pairs.p]
a = "@/src"
b = "@/viaconfig"
include = ["keep.log"]
exclude = ["*.log"]

[pairs.ruled]
a = "@/src"
b = "@/viarules"
filter = ["- drop.log", "+ *.log", "- *"]
"#,
    );
    let src = s.path().join("src");
    for name in ["keep.log", "drop.log", "x.txt"] {
        write(&src, name, b"x");
    }
    let want = ["keep.log", "x.txt"];
    let out = s.run(&["run", "p", "ruled"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(files(&s.path().join("viaconfig")), want);
    assert_eq!(files(&s.path().join("viarules")), ["keep.log"]);
    // On the command line the order typed decides: the first match wins.
    for (i, (filters, want)) in [
        (
            &["--include", "keep.log", "--exclude", "*.log"][..],
            &want[..],
        ),
        (
            &["--exclude", "*.log", "--include", "keep.log"][..],
            &["x.txt"][..],
        ),
        (
            &["-f", "+ keep.log", "--exclude", "*"][..],
            &["keep.log"][..],
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let copied = s.path().join(format!("copied{i}"));
        ok(deltasync()
            .arg("copy")
            .args(filters)
            .arg(src.join(""))
            .arg(&copied));
        assert_eq!(files(&copied), want, "copy {filters:?}");
        let synced = s.path().join(format!("synced{i}"));
        ok(deltasync().arg("sync").args(filters).arg(&src).arg(&synced));
        assert_eq!(files(&synced), want, "sync {filters:?}");
    }
    // The command line's rules replace the config's.
    let out = s.run(&["run", "ruled", "--exclude", "drop.log"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(files(&s.path().join("viarules")), ["keep.log", "x.txt"]);
    let out = s.run(&["run", "ruled", "-f", "bogus"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("'+ PATTERN'"), "{}", text(&out));
}

#[test]
fn mail_to_sends_the_failure_and_the_recovery_with_sendmail() {
    if Path::new("/usr/sbin/sendmail").exists() || Path::new("/usr/lib/sendmail").exists() {
        eprintln!("skipped: a real sendmail is installed; this test uses a fake one on PATH");
        return;
    }
    let s = Setup::new(
        r#"
[pairs.p]
a = "@/a"
b = "@/b"
pre-cmd = "test ! -e @/broken"
mail-to = "ops@example.invalid"
"#,
    );
    let bin = s.path().join("bin");
    fs::create_dir(&bin).unwrap();
    let fake = bin.join("sendmail");
    fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"args: $*\" >> {0}/mail.txt\ncat >> {0}/mail.txt\n",
            s.path().display()
        ),
    )
    .unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    write(&s.path().join("a"), "f", b"1");
    fs::write(s.path().join("broken"), b"").unwrap();
    let run = |args: &[&str]| bounded(s.cmd(args).env("PATH", &path), Duration::from_secs(60));
    assert_eq!(run(&["run", "p", "--retries", "0"]).status.code(), Some(53));
    assert_eq!(run(&["run", "p", "--retries", "0"]).status.code(), Some(53));
    fs::remove_file(s.path().join("broken")).unwrap();
    assert!(run(&["run", "p"]).status.success());
    let mail = fs::read_to_string(s.path().join("mail.txt")).unwrap();
    assert_eq!(mail.matches("args: -t -i").count(), 2, "{mail}");
    assert!(mail.contains("To: ops@example.invalid"), "{mail}");
    assert!(mail.contains("Subject: deltasync: p is failing"), "{mail}");
    assert!(
        mail.contains("Subject: deltasync: p has recovered"),
        "{mail}"
    );
    assert!(mail.contains("pre-cmd"), "the error is in the body: {mail}");
}

#[test]
fn the_systemd_drop_in_lists_what_the_pair_writes() {
    let s = Setup::new(
        r#"
[pairs.office]
a = "@/share"
b = "host:/srv/share"
state-dir = "@/state"
log-file = "@/logs/office.log"
"#,
    );
    let out = s.run(&["config", "systemd", "office"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let p = s.path().display();
    assert!(t.contains("[Service]\nExecStart=\nExecStart="), "{t}");
    assert!(
        t.contains(&format!("run --config {p}/config.toml office")),
        "{t}"
    );
    for want in ["share", "state", "logs"] {
        assert!(
            t.contains(&format!("ReadWritePaths={p}/{want}\n")),
            "{want}: {t}"
        );
    }
    assert!(
        !t.contains("/srv/share"),
        "remote replicas need nothing here: {t}"
    );
}
