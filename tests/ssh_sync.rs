//! `deltasync sync` with one replica behind a real OpenSSH sshd on
//! 127.0.0.1 (ssh2): the change matrix, renames and no-change runs that cost
//! a few hundred bytes, a missing remote root, and a kill -9 of the remote
//! agent mid-run that the next run recovers from.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::sshd::Sshd;
use common::*;

fn sync_cmd(server: &Sshd, a: &Path, b: &Path, extra: &[&str]) -> Command {
    let mut c = deltasync();
    c.args(["sync", "--json"])
        .args(extra)
        .args(server.flags())
        .args(server.remote_bin())
        .arg(a)
        .arg(server.url(b));
    c
}

#[track_caller]
fn sync_ok(server: &Sshd, a: &Path, b: &Path, extra: &[&str]) -> serde_json::Value {
    let (status, v, err) = json_run(&mut sync_cmd(server, a, b, extra));
    assert!(status.success(), "sync failed ({status}): {v} {err}");
    v
}

fn wire(v: &serde_json::Value) -> u64 {
    v["sent_bytes"].as_u64().unwrap() + v["received_bytes"].as_u64().unwrap()
}

#[test]
fn two_way_over_ssh2() {
    let server = Sshd::start("");
    let d = tmp();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    fs::create_dir(&a).unwrap();
    fs::create_dir(&b).unwrap();
    write(&a, "local.txt", b"written on a\n");
    write(&b, "remote.txt", b"written on b\n");
    let big = random_bytes(7, 3 << 20);
    fs::create_dir(a.join("docs")).unwrap();
    write(&a, "docs/big.bin", &big);
    sync_ok(&server, &a, &b, &[]);
    assert_synced_trees(&a, &b);

    // A change on each side, a deletion, a conflict.
    let mut edited = big.clone();
    edited[1 << 20..(1 << 20) + 100].fill(b'x');
    write(&b, "docs/big.bin", &edited);
    write(&a, "new-on-a.txt", b"new\n");
    fs::remove_file(b.join("remote.txt")).unwrap();
    write(&a, "local.txt", b"a's edit\n");
    write(&b, "local.txt", b"b's later edit\n");
    let later = std::time::SystemTime::now() + Duration::from_secs(60);
    fs::File::options()
        .write(true)
        .open(b.join("local.txt"))
        .unwrap()
        .set_modified(later)
        .unwrap();
    let v = sync_ok(&server, &a, &b, &["--max-delete", "100"]);
    assert_synced_trees(&a, &b);
    assert_eq!(read(&a.join("docs/big.bin")), edited);
    assert_eq!(read(&a.join("local.txt")), b"b's later edit\n");
    assert!(!a.join("remote.txt").exists());
    assert!(
        a.join(".deltasync/deleted/remote.txt").exists(),
        "soft delete on a"
    );
    assert_eq!(v["conflicts"], 1, "{v}");
    let literal = v["literal_bytes"].as_u64().unwrap();
    assert!(
        literal < 64 << 10,
        "a 100-byte edit of 3 MiB sent {literal} literal bytes"
    );

    // A renamed folder moves; then a run with nothing to do costs a digest.
    fs::rename(a.join("docs"), a.join("papers")).unwrap();
    let v = sync_ok(&server, &a, &b, &[]);
    assert_eq!(v["moved"], 1, "{v}");
    assert!(
        wire(&v) < 16 << 10,
        "a renamed folder cost {} bytes",
        wire(&v)
    );
    assert_synced_trees(&a, &b);
    sync_ok(&server, &a, &b, &[]);
    let quiet = sync_ok(&server, &a, &b, &[]);
    assert!(quiet["changes"].as_array().unwrap().is_empty());
    eprintln!(
        "no-change sync over ssh: {} bytes on the wire",
        wire(&quiet)
    );
    assert!(
        wire(&quiet) < 8 << 10,
        "a no-change run cost {} bytes",
        wire(&quiet)
    );
}

#[test]
fn a_missing_remote_root_is_a_safety_stop() {
    let server = Sshd::start("");
    let d = tmp();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    fs::create_dir(&a).unwrap();
    fs::create_dir(&b).unwrap();
    write(&a, "one", b"1");
    sync_ok(&server, &a, &b, &[]);
    fs::remove_dir_all(&b).unwrap();
    let (status, v, _) = json_run(&mut sync_cmd(&server, &a, &b, &[]));
    assert_eq!(status.code(), Some(51), "{v}");
    assert_eq!(read(&a.join("one")), b"1", "nothing changed on a");
    assert!(!b.exists());
}

#[test]
fn a_killed_remote_agent_is_recovered_by_the_next_run() {
    let server = Sshd::start("");
    let d = tmp();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    fs::create_dir(&a).unwrap();
    fs::create_dir(&b).unwrap();
    write(&a, "seed", b"seed");
    sync_ok(&server, &a, &b, &[]);
    let data = random_bytes(3, 16 << 20);
    write(&a, "big", &data);
    fs::create_dir(b.join("small")).unwrap();
    for i in 0..30 {
        write(&b, &format!("small/{i}"), format!("{i}").as_bytes());
    }
    let mut child = sync_cmd(&server, &a, &b, &["--bwlimit", "4M"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let partial = b.join(".deltasync/partial");
    let start = Instant::now();
    while fs::read_dir(&partial)
        .map(|r| {
            r.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum::<u64>()
        })
        .unwrap_or(0)
        < 2 << 20
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the transfer did not progress"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the kill"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The remote agent is ours, started through sshd: found by its unique root.
    let out = Command::new("pgrep")
        .args(["-f", &format!("serve --root {}", b.display())])
        .output()
        .unwrap();
    let pids = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!pids.trim().is_empty(), "the remote agent is running");
    for pid in pids.split_whitespace() {
        Command::new("kill").args(["-9", pid]).status().unwrap();
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "the client notices the dead agent");
    assert!(
        !b.join("big").exists(),
        "a half-sent file never appears at its live path"
    );

    // The dead agent's lock is stale on this host: the next run takes it over.
    let v = sync_ok(&server, &a, &b, &[]);
    assert_synced_trees(&a, &b);
    assert_eq!(read(&b.join("big")), data);
    let sent = v["sent_bytes"].as_u64().unwrap();
    assert!(
        sent < data.len() as u64,
        "the next run resumed: sent {sent} of {}",
        data.len()
    );
    let again = sync_ok(&server, &a, &b, &[]);
    assert!(again["changes"].as_array().unwrap().is_empty(), "{again}");
}
