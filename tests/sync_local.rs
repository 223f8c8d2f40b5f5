//! `deltasync sync` end to end on the local transport (a child `serve` per
//! side, the same protocol as SSH): the two-way change matrix, conflicts,
//! safety stops, locks, dry runs, renames and the time budget.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::{deltasync, json_run};
use serde_json::Value;

struct Pair {
    _tmp: tempfile::TempDir,
    a: PathBuf,
    b: PathBuf,
}

fn pair() -> Pair {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    fs::create_dir(&a).unwrap();
    fs::create_dir(&b).unwrap();
    Pair { _tmp: tmp, a, b }
}

fn write(root: &Path, rel: &str, content: &[u8]) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, content).unwrap();
}

/// Sets `rel`'s mtime to `secs` seconds after a fixed past instant.
fn age(root: &Path, rel: &str, secs: u64) {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs);
    fs::File::options()
        .write(true)
        .open(root.join(rel))
        .unwrap()
        .set_modified(t)
        .unwrap();
}

fn read(root: &Path, rel: &str) -> Option<Vec<u8>> {
    fs::read(root.join(rel)).ok()
}

fn sync_cmd(p: &Pair, extra: &[&str]) -> Command {
    let mut c = deltasync();
    c.arg("sync").arg("--json").args(extra).arg(&p.a).arg(&p.b);
    c
}

/// Runs a sync; returns its exit code and JSON summary.
fn run(p: &Pair, extra: &[&str]) -> (i32, Value) {
    let (status, v, stderr) = json_run(&mut sync_cmd(p, extra));
    let code = status.code().unwrap_or(-1);
    if code != 0 {
        eprintln!("sync exited {code}: {stderr}");
    }
    (code, v)
}

#[track_caller]
fn sync_ok(p: &Pair, extra: &[&str]) -> Value {
    let (code, v) = run(p, extra);
    assert_eq!(code, 0, "sync failed: {v}");
    v
}

fn changes(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

/// Every regular file under `root` (outside `.deltasync`), with contents.
fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let rel = e
                .path()
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if rel == ".deltasync" {
                continue;
            }
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                out.push((format!("{rel}/"), Vec::new()));
                walk(base, &e.path(), out);
            } else if ft.is_symlink() {
                out.push((
                    rel,
                    fs::read_link(e.path())
                        .unwrap()
                        .to_string_lossy()
                        .as_bytes()
                        .to_vec(),
                ));
            } else {
                out.push((rel, fs::read(e.path()).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// Files stashed under `root/.deltasync/<area>`, as relative names.
fn stashed(root: &Path, area: &str) -> Vec<String> {
    let base = root.join(".deltasync").join(area);
    let mut out = Vec::new();
    let mut stack = vec![base.clone()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(
                    e.path()
                        .strip_prefix(&base)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    out.sort();
    out
}

fn contents_of_stash(root: &Path, area: &str, name_prefix: &str) -> Vec<u8> {
    let name = stashed(root, area)
        .into_iter()
        .find(|n| n.starts_with(name_prefix))
        .unwrap_or_else(|| {
            panic!(
                "nothing stashed as {name_prefix}* in {}/{area}: {:?}",
                root.display(),
                stashed(root, area)
            )
        });
    fs::read(root.join(".deltasync").join(area).join(name)).unwrap()
}

#[test]
fn first_sync_is_the_union_and_a_second_is_a_no_op() {
    let p = pair();
    write(&p.a, "only-a.txt", b"from a");
    write(&p.a, "dir/nested.txt", b"nested");
    write(&p.b, "only-b.txt", b"from b");
    write(&p.a, "same.txt", b"identical");
    write(&p.b, "same.txt", b"identical");
    std::os::unix::fs::symlink("only-a.txt", p.a.join("link")).unwrap();
    fs::set_permissions(
        p.a.join("only-a.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    age(&p.a, "only-a.txt", 1000);

    let v = sync_ok(&p, &[]);
    assert_eq!(tree(&p.a), tree(&p.b));
    assert_eq!(read(&p.b, "only-a.txt").unwrap(), b"from a");
    assert_eq!(read(&p.a, "only-b.txt").unwrap(), b"from b");
    assert_eq!(
        fs::read_link(p.b.join("link")).unwrap(),
        Path::new("only-a.txt")
    );
    let mb = fs::metadata(p.b.join("only-a.txt")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mb.permissions()) & 0o777,
        0o600
    );
    assert_eq!(
        mb.modified().unwrap(),
        fs::metadata(p.a.join("only-a.txt"))
            .unwrap()
            .modified()
            .unwrap()
    );
    assert!(
        !changes(&v).iter().any(|l| l.contains("same.txt")),
        "identical files move nothing: {v}"
    );
    assert!(
        p.a.join(".deltasync/replica-id").is_file() && p.b.join(".deltasync/replica-id").is_file()
    );

    let again = sync_ok(&p, &[]);
    assert_eq!(
        changes(&again),
        Vec::<String>::new(),
        "a second sync changes nothing"
    );
}

#[test]
fn the_two_way_change_matrix() {
    let p = pair();
    for name in [
        "newer-a",
        "newer-b",
        "del-a",
        "del-b",
        "both-a-newer",
        "both-b-newer",
        "mod-a-del-b",
        "mod-b-del-a",
        "del-both",
        "same-change",
    ] {
        write(&p.a, name, b"base");
        write(&p.b, name, b"base");
    }
    sync_ok(&p, &[]);

    write(&p.a, "new-a", b"new on a");
    write(&p.b, "new-b", b"new on b");
    write(&p.a, "newer-a", b"changed on a");
    write(&p.b, "newer-b", b"changed on b");
    fs::remove_file(p.a.join("del-a")).unwrap();
    fs::remove_file(p.b.join("del-b")).unwrap();
    write(&p.a, "both-a-newer", b"a's version");
    write(&p.b, "both-a-newer", b"b's version");
    age(&p.a, "both-a-newer", 2000);
    age(&p.b, "both-a-newer", 1000);
    write(&p.a, "both-b-newer", b"a's version");
    write(&p.b, "both-b-newer", b"b's version");
    age(&p.a, "both-b-newer", 1000);
    age(&p.b, "both-b-newer", 2000);
    write(&p.a, "mod-a-del-b", b"modified on a");
    fs::remove_file(p.b.join("mod-a-del-b")).unwrap();
    write(&p.b, "mod-b-del-a", b"modified on b");
    fs::remove_file(p.a.join("mod-b-del-a")).unwrap();
    fs::remove_file(p.a.join("del-both")).unwrap();
    fs::remove_file(p.b.join("del-both")).unwrap();
    write(&p.a, "same-change", b"the same edit");
    write(&p.b, "same-change", b"the same edit");

    let v = sync_ok(&p, &["--max-delete", "100"]);
    assert_eq!(tree(&p.a), tree(&p.b), "converged: {v}");
    assert_eq!(read(&p.b, "new-a").unwrap(), b"new on a");
    assert_eq!(read(&p.a, "new-b").unwrap(), b"new on b");
    assert_eq!(read(&p.b, "newer-a").unwrap(), b"changed on a");
    assert_eq!(read(&p.a, "newer-b").unwrap(), b"changed on b");
    assert_eq!(read(&p.b, "del-a"), None);
    assert_eq!(read(&p.a, "del-b"), None);
    assert_eq!(
        contents_of_stash(&p.b, "deleted", "del-a"),
        b"base",
        "soft delete on b"
    );
    assert_eq!(
        contents_of_stash(&p.a, "deleted", "del-b"),
        b"base",
        "soft delete on a"
    );
    assert_eq!(
        read(&p.b, "both-a-newer").unwrap(),
        b"a's version",
        "newest wins"
    );
    assert_eq!(
        contents_of_stash(&p.b, "conflicts", "both-a-newer"),
        b"b's version",
        "loser kept"
    );
    assert_eq!(read(&p.a, "both-b-newer").unwrap(), b"b's version");
    assert_eq!(
        contents_of_stash(&p.a, "conflicts", "both-b-newer"),
        b"a's version"
    );
    assert_eq!(
        read(&p.b, "mod-a-del-b").unwrap(),
        b"modified on a",
        "modify beats delete"
    );
    assert_eq!(
        read(&p.a, "mod-b-del-a").unwrap(),
        b"modified on b",
        "modify beats delete"
    );
    assert_eq!(read(&p.a, "del-both"), None);
    assert!(
        !changes(&v).iter().any(|l| l.contains("same-change")),
        "the same change moves nothing: {v}"
    );
    assert_eq!(v["conflicts"], 2, "{v}");

    assert_eq!(
        changes(&sync_ok(&p, &[])),
        Vec::<String>::new(),
        "converged: a rerun changes nothing"
    );
}

#[test]
fn conflict_policies_keep_both_and_skip() {
    let p = pair();
    write(&p.a, "doc.txt", b"base");
    write(&p.b, "doc.txt", b"base");
    sync_ok(&p, &[]);
    write(&p.a, "doc.txt", b"a edit");
    write(&p.b, "doc.txt", b"b edit");
    age(&p.a, "doc.txt", 100);
    age(&p.b, "doc.txt", 200);

    // skip: nothing changes, exit 23 (partial), and it stays a conflict.
    let (code, v) = run(&p, &["--conflict", "skip"]);
    assert_eq!(code, 23, "{v}");
    assert_eq!(read(&p.a, "doc.txt").unwrap(), b"a edit");
    assert_eq!(read(&p.b, "doc.txt").unwrap(), b"b edit");

    // keep-both: b is newer and wins the name; a's version sits beside it on both sides.
    sync_ok(&p, &["--conflict", "keep-both"]);
    assert_eq!(tree(&p.a), tree(&p.b));
    assert_eq!(read(&p.a, "doc.txt").unwrap(), b"b edit");
    let beside: Vec<_> = tree(&p.a)
        .into_iter()
        .filter(|(n, _)| n.starts_with("doc.conflict-"))
        .collect();
    assert_eq!(beside.len(), 1, "{beside:?}");
    assert!(beside[0].0.ends_with("-a.txt"), "{}", beside[0].0);
    assert_eq!(beside[0].1, b"a edit");
}

#[test]
fn prefer_decides_a_tie_and_prefer_b_always_wins() {
    let p = pair();
    write(&p.a, "t", b"base");
    write(&p.b, "t", b"base");
    sync_ok(&p, &[]);
    write(&p.a, "t", b"a side");
    write(&p.b, "t", b"b side");
    age(&p.a, "t", 500);
    age(&p.b, "t", 500);
    sync_ok(&p, &["--prefer", "b"]);
    assert_eq!(
        read(&p.a, "t").unwrap(),
        b"b side",
        "a tie goes to --prefer"
    );

    write(&p.a, "t", b"a again");
    write(&p.b, "t", b"b again");
    age(&p.a, "t", 900);
    age(&p.b, "t", 100);
    sync_ok(&p, &["--conflict", "prefer-b"]);
    assert_eq!(
        read(&p.a, "t").unwrap(),
        b"b again",
        "prefer-b wins although older"
    );
    assert!(
        stashed(&p.a, "conflicts")
            .iter()
            .filter(|n| n.starts_with('t'))
            .count()
            >= 2
    );
}

#[test]
fn a_type_clash_keeps_both_versions() {
    let p = pair();
    write(&p.a, "thing", b"a file");
    write(&p.b, "thing/inside", b"a file in a directory");
    sync_ok(&p, &[]);
    assert_eq!(tree(&p.a), tree(&p.b));
    assert_eq!(
        read(&p.a, "thing/inside").unwrap(),
        b"a file in a directory"
    );
    assert_eq!(contents_of_stash(&p.a, "conflicts", "thing"), b"a file");
}

#[test]
fn skip_deletion_and_hard_deletes() {
    let p = pair();
    for n in ["k1", "k2", "k3", "k4"] {
        write(&p.a, n, n.as_bytes());
    }
    sync_ok(&p, &[]);
    fs::remove_file(p.a.join("k1")).unwrap();
    sync_ok(&p, &["--skip-deletion", "b"]);
    assert_eq!(
        read(&p.b, "k1").unwrap(),
        b"k1",
        "the deletion did not reach b"
    );
    assert_eq!(read(&p.a, "k1"), None, "and it does not come back to a");
    sync_ok(&p, &[]);
    assert_eq!(read(&p.a, "k1"), None, "still not restored on a later run");
    assert_eq!(
        read(&p.b, "k1"),
        None,
        "a later run without the flag carries the held-back deletion"
    );

    fs::remove_file(p.b.join("k2")).unwrap();
    sync_ok(&p, &["--no-soft-delete"]);
    assert_eq!(read(&p.a, "k2"), None);
    assert!(
        !stashed(&p.a, "deleted").iter().any(|n| n.starts_with("k2")),
        "a hard delete keeps no copy"
    );
}

#[test]
fn excluded_and_hidden_paths_are_never_touched() {
    let p = pair();
    write(&p.a, "keep.txt", b"k");
    write(&p.a, "build/out.o", b"object");
    write(&p.a, ".hidden", b"h");
    write(&p.b, "build/other.o", b"b's object");
    sync_ok(&p, &["--exclude", "build/", "--ignore-hidden"]);
    assert_eq!(read(&p.b, "keep.txt").unwrap(), b"k");
    assert_eq!(read(&p.b, "build/out.o"), None);
    assert_eq!(read(&p.b, ".hidden"), None);
    assert_eq!(read(&p.a, "build/other.o"), None);
    fs::remove_dir_all(p.a.join("build")).unwrap();
    sync_ok(&p, &["--exclude", "build/", "--ignore-hidden"]);
    assert_eq!(
        read(&p.b, "build/other.o").unwrap(),
        b"b's object",
        "excluded paths are never deleted"
    );
}

#[test]
fn a_renamed_folder_is_moved_not_sent() {
    let p = pair();
    let big: Vec<u8> = (0..4u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for i in 0..4 {
        let mut content = big.clone();
        content[0] = i as u8;
        write(&p.a, &format!("photos/2025/img{i}.raw"), &content);
    }
    sync_ok(&p, &[]);
    fs::rename(p.a.join("photos/2025"), p.a.join("photos/archive-2025")).unwrap();
    let v = sync_ok(&p, &[]);
    assert_eq!(tree(&p.a), tree(&p.b));
    assert_eq!(v["moved"], 4, "{v}");
    let wire = v["sent_bytes"].as_u64().unwrap() + v["received_bytes"].as_u64().unwrap();
    assert!(
        wire < 64 * 1024,
        "16 MiB renamed cost {wire} bytes on the wire"
    );
    assert!(read(&p.b, "photos/archive-2025/img3.raw").is_some());
    assert!(!p.b.join("photos/2025").exists(), "{:?}", tree(&p.b));
}

#[test]
fn dry_run_prints_the_plan_the_real_run_carries_out() {
    let p = pair();
    for n in ["x", "y", "z"] {
        write(&p.a, n, n.as_bytes());
    }
    sync_ok(&p, &[]);
    write(&p.a, "x", b"x changed");
    write(&p.b, "new", b"new on b");
    fs::remove_file(p.b.join("y")).unwrap();
    fs::rename(p.a.join("z"), p.a.join("z2")).unwrap();
    let before = (tree(&p.a), tree(&p.b));
    let dry = sync_ok(&p, &["--dry-run"]);
    assert_eq!(
        (tree(&p.a), tree(&p.b)),
        before,
        "a dry run changes nothing"
    );
    let real = sync_ok(&p, &[]);
    assert_eq!(changes(&dry), changes(&real));
    assert_eq!(changes(&real).len(), 4, "{real}");
}

#[test]
fn too_many_deletions_is_a_safety_stop() {
    let p = pair();
    for i in 0..10 {
        write(&p.a, &format!("f{i}"), b"x");
    }
    sync_ok(&p, &[]);
    for i in 0..6 {
        fs::remove_file(p.a.join(format!("f{i}"))).unwrap();
    }
    let before = tree(&p.b);
    let (code, v) = run(&p, &[]);
    assert_eq!(code, 51, "{v}");
    assert!(v["error"].as_str().unwrap().contains("--max-delete"), "{v}");
    assert_eq!(tree(&p.b), before, "a safety stop changes nothing");
    sync_ok(&p, &["--force"]);
    assert_eq!(tree(&p.a), tree(&p.b));
}

#[test]
fn an_emptied_replica_is_a_safety_stop() {
    let p = pair();
    write(&p.a, "one", b"1");
    write(&p.a, "two", b"2");
    sync_ok(&p, &[]);
    for n in ["one", "two"] {
        fs::remove_file(p.b.join(n)).unwrap();
    }
    let (code, v) = run(&p, &["--force"]);
    assert_eq!(
        code, 51,
        "--force does not lift the empty-replica stop: {v}"
    );
    assert_eq!(read(&p.a, "one").unwrap(), b"1");
    sync_ok(&p, &["--allow-empty", "--force"]);
    assert_eq!(read(&p.a, "one"), None);
}

#[test]
fn a_missing_root_is_a_safety_stop() {
    let p = pair();
    write(&p.a, "one", b"1");
    sync_ok(&p, &[]);
    fs::remove_dir_all(&p.b).unwrap();
    let (code, v) = run(&p, &[]);
    assert_eq!(code, 51, "{v}");
    assert_eq!(read(&p.a, "one").unwrap(), b"1");
    assert!(!p.b.exists(), "a missing root is not created again");
}

#[test]
fn a_swapped_replica_is_a_safety_stop() {
    let p = pair();
    write(&p.a, "one", b"1");
    sync_ok(&p, &[]);
    fs::write(p.b.join(".deltasync/replica-id"), "someone-else\n").unwrap();
    let (code, v) = run(&p, &["--force", "--allow-empty"]);
    assert_eq!(code, 51, "{v}");
    assert!(v["error"].as_str().unwrap().contains("replica-id"), "{v}");
    // reset forgets the pair; the next run is a first sync again.
    common::ok(deltasync().arg("reset").arg(&p.a).arg(&p.b));
    sync_ok(&p, &[]);
}

#[test]
fn an_empty_mount_point_is_a_safety_stop_and_is_left_untouched() {
    // An unmounted disk shows its mount point: an empty folder. The lock
    // that checks the replica-id must refuse before it writes anything.
    let p = pair();
    write(&p.a, "one", b"1");
    sync_ok(&p, &[]);
    fs::remove_dir_all(&p.b).unwrap();
    fs::create_dir(&p.b).unwrap();
    let (code, v) = run(&p, &["--force", "--allow-empty"]);
    assert_eq!(code, 51, "{v}");
    let error = v["error"].as_str().unwrap();
    assert!(error.contains("replica B has no replica-id"), "{v}");
    assert_eq!(
        fs::read_dir(&p.b).unwrap().count(),
        0,
        "nothing, not even .deltasync/, is written on the empty mount point"
    );
    assert_eq!(read(&p.a, "one").unwrap(), b"1");
}

#[test]
fn a_held_lock_stops_the_run_and_a_dead_one_is_recovered() {
    let p = pair();
    write(&p.a, "one", b"1");
    sync_ok(&p, &[]);
    write(&p.a, "two", b"2");
    let lock = p.b.join(".deltasync/lock");
    let live = "host=there pid=4242 started=now";
    fs::write(&lock, live).unwrap();
    // Another run holds the lock: util-linux's flock(1) takes the same
    // flock(2) lock a run takes, and holds it while its child sleeps.
    let hold = || {
        // -o: only flock(1) itself holds it, not the sleep, so killing
        // flock(1) is the holder dying.
        Command::new("flock")
            .arg("-o")
            .arg(&lock)
            .args(["sleep", "60"])
            .spawn()
            .unwrap()
    };
    let wait_held = || {
        for _ in 0..200 {
            let free = Command::new("flock")
                .arg("-n")
                .arg(&lock)
                .arg("true")
                .status()
                .unwrap()
                .success();
            if !free {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("flock(1) never took the lock");
    };
    let mut holder = hold();
    wait_held();
    let (code, v) = run(&p, &[]);
    assert_eq!(code, 50, "{v}");
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("pid=4242")),
        "the error names the holder: {v}"
    );
    assert_eq!(read(&p.b, "two"), None);
    assert_eq!(
        fs::read_to_string(&lock).unwrap(),
        live,
        "another run's lock is left alone"
    );

    // Its holder died (a killed run): the kernel let the lock go, and the
    // file it left is taken over without a flag.
    holder.kill().unwrap();
    holder.wait().unwrap();
    sync_ok(&p, &[]);
    assert_eq!(read(&p.b, "two").unwrap(), b"2");
    assert!(!lock.exists(), "the lock is released at the end");

    // A held lock gives way only to --force-unlock.
    fs::write(&lock, live).unwrap();
    let mut holder = hold();
    wait_held();
    write(&p.a, "three", b"3");
    assert_eq!(run(&p, &[]).0, 50);
    sync_ok(&p, &["--force-unlock"]);
    assert_eq!(read(&p.b, "three").unwrap(), b"3");
    holder.kill().unwrap();
    holder.wait().unwrap();
}

#[test]
fn the_time_budget_stops_cleanly_and_the_next_run_resumes() {
    let p = pair();
    let big: Vec<u8> = (0..6u32 << 20)
        .map(|i| (i.wrapping_mul(2_246_822_519) >> 11) as u8)
        .collect();
    write(&p.a, "small", b"small");
    write(&p.a, "big.bin", &big);
    let (code, v) = run(&p, &["--bwlimit", "1M", "--max-time", "2"]);
    assert_eq!(code, 52, "{v}");
    for side in [&p.a, &p.b] {
        assert!(
            !side.join(".deltasync/lock").exists(),
            "a run out of time releases its locks"
        );
    }
    assert_eq!(
        read(&p.b, "big.bin"),
        None,
        "a file in flight never appears half-written"
    );
    let partial = p.b.join(".deltasync/partial");
    assert!(
        fs::read_dir(&partial).map(|d| d.count()).unwrap_or(0) > 0,
        "the file in flight is parked as a partial"
    );
    let v = sync_ok(&p, &[]);
    assert_eq!(read(&p.b, "big.bin").unwrap(), big);
    let sent = v["sent_bytes"].as_u64().unwrap();
    assert!(
        sent < big.len() as u64,
        "the resumed run sent {sent} bytes of {}",
        big.len()
    );
    assert_eq!(tree(&p.a), tree(&p.b));
}

#[test]
fn a_killed_run_converges_on_the_next() {
    let p = pair();
    let big: Vec<u8> = (0..4u32 << 20)
        .map(|i| (i.wrapping_mul(3_266_489_917) >> 9) as u8)
        .collect();
    for i in 0..20 {
        write(&p.a, &format!("small/{i}"), format!("small {i}").as_bytes());
    }
    write(&p.b, "from-b.bin", &big);
    write(&p.a, "from-a.bin", &big[..3 << 20]);
    let mut child = sync_cmd(&p, &["--bwlimit", "1M"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // SIGKILL: no cleanup at all, the lock stays behind.
    Command::new("kill")
        .arg("-9")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    child.wait().unwrap();
    let v = sync_ok(&p, &[]);
    assert_eq!(tree(&p.a), tree(&p.b), "{v}");
    assert_eq!(read(&p.a, "from-b.bin").unwrap(), big);
    assert_eq!(changes(&sync_ok(&p, &[])), Vec::<String>::new());
}

#[test]
fn sync_help_teaches() {
    let out = common::ok(deltasync().args(["sync", "--help"]));
    let text = String::from_utf8_lossy(&out);
    for word in [
        "--conflict",
        "--max-delete",
        "--dry-run",
        "--skip-deletion",
        "--max-time",
        "soft",
    ] {
        assert!(text.contains(word), "sync --help lacks {word}");
    }
}

#[test]
fn an_unchanged_tree_costs_a_digest_and_an_edit_is_still_seen() {
    let p = pair();
    for i in 0..500 {
        write(
            &p.a,
            &format!("d{}/file-{i}.txt", i % 10),
            format!("content {i}").as_bytes(),
        );
    }
    sync_ok(&p, &[]);
    // The first run changed B, so its digest was not kept: this run lists
    // both sides in full, finds nothing to do, and records the digests.
    assert_eq!(changes(&sync_ok(&p, &[])), Vec::<String>::new());
    let quiet = sync_ok(&p, &[]);
    let wire = quiet["sent_bytes"].as_u64().unwrap() + quiet["received_bytes"].as_u64().unwrap();
    assert!(
        wire < 4096,
        "a no-change run of 500 files moved {wire} bytes"
    );
    write(
        &p.b,
        "d3/file-3.txt",
        b"edited after the digest was recorded",
    );
    let v = sync_ok(&p, &[]);
    assert_eq!(
        read(&p.a, "d3/file-3.txt").unwrap(),
        b"edited after the digest was recorded",
        "{v}"
    );
}

#[test]
fn empty_dirs_remove_prunes_what_the_run_emptied() {
    let p = pair();
    write(&p.a, "old/project/notes.txt", b"notes");
    write(&p.a, "other.txt", b"other");
    fs::create_dir(p.a.join("empty-on-purpose")).unwrap();
    sync_ok(&p, &[]);
    fs::remove_file(p.a.join("old/project/notes.txt")).unwrap();
    sync_ok(&p, &["--empty-dirs", "remove", "--max-delete", "100"]);
    assert!(
        !p.a.join("old").exists() && !p.b.join("old").exists(),
        "{:?}",
        tree(&p.b)
    );
    assert!(
        p.b.join("empty-on-purpose").is_dir(),
        "an empty folder synced as such stays"
    );
    assert_eq!(contents_of_stash(&p.b, "deleted", "old"), b"notes");
    assert_eq!(tree(&p.a), tree(&p.b));
}

#[test]
fn a_file_rewritten_during_the_sync_never_lands_torn() {
    use std::io::{Seek, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let p = pair();
    let len = 8 << 20;
    write(&p.a, "busy.bin", &vec![0u8; len]);
    write(&p.a, "calm.txt", b"calm");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, path) = (stop.clone(), p.a.join("busy.bin"));
        std::thread::spawn(move || {
            // Rewrites the file in place, one generation after another: a
            // copy taken across two generations holds two different bytes.
            let mut f = fs::File::options().write(true).open(path).unwrap();
            let mut g = 1u8;
            while !stop.load(Ordering::Relaxed) {
                f.rewind().unwrap();
                for _ in 0..8 {
                    f.write_all(&vec![g; len / 8]).unwrap();
                }
                g = g.wrapping_add(1).max(1);
            }
        })
    };
    let (code, v) = run(&p, &[]);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(code == 0 || code == 23, "{v}");
    assert_eq!(
        read(&p.b, "calm.txt").unwrap(),
        b"calm",
        "the rest of the tree syncs"
    );
    if let Some(got) = read(&p.b, "busy.bin") {
        assert_eq!(got.len(), len);
        assert!(got.iter().all(|&b| b == got[0]), "a torn copy landed: {v}");
    }
    sync_ok(&p, &[]);
    assert_eq!(
        read(&p.b, "busy.bin"),
        read(&p.a, "busy.bin"),
        "the next run syncs it"
    );
}

#[test]
fn progress_without_a_terminal_still_prints_each_change() {
    let p = pair();
    write(&p.a, "report.txt", b"r");
    let out = common::ok(deltasync().args(["sync", "--progress"]).arg(&p.a).arg(&p.b));
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("a->b create   report.txt"), "{text}");
    assert!(text.contains("copied 1 a->b"), "{text}");
}

#[test]
fn a_deleted_folder_never_takes_what_the_sync_does_not_list() {
    let p = pair();
    write(&p.a, "proj/src.txt", b"source");
    write(&p.a, "keep.txt", b"so that A is not emptied");
    sync_ok(&p, &["--ignore-hidden"]);
    write(&p.b, "proj/.git/HEAD", b"ref: main");
    fs::remove_dir_all(p.a.join("proj")).unwrap();
    let (code, v) = run(
        &p,
        &["--ignore-hidden", "--no-soft-delete", "--max-delete", "100"],
    );
    assert_eq!(
        code, 23,
        "the folder that still holds a hidden file is reported: {v}"
    );
    assert_eq!(
        read(&p.b, "proj/.git/HEAD").unwrap(),
        b"ref: main",
        "hidden content survives"
    );
    assert_eq!(read(&p.b, "proj/src.txt"), None, "the listed file went");
}
