//! Holes found by hostile and new-user testing, closed: excluded files in a
//! deleted folder, `copy -n` to a new destination, special files, folders
//! and files that cannot be read, a closed stdout, and partial files left
//! by a failed transfer.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn run(args: &[&str], a: &Path, b: &Path) -> Output {
    deltasync().args(args).arg(a).arg(b).output().expect("runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn delete_never_takes_an_excluded_file_with_its_folder() {
    let d = tmp();
    let (src, dst) = (d.path().join("src"), d.path().join("dst"));
    write(&src, "stay.txt", b"s");
    write(&dst.join("sub"), "keep.log", b"excluded: never deleted");
    write(&dst.join("sub"), "old.txt", b"goes");
    for dry in [true, false] {
        let mut args = vec!["copy", "-a", "-i", "--delete", "--exclude", "*.log"];
        if dry {
            args.push("-n");
        }
        let out = run(&args, &src.join(""), &dst);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(
            out.status.success() || out.status.code() == Some(23),
            "{stderr}"
        );
        assert!(
            !stdout.contains("keep.log"),
            "dry={dry}: named for deletion: {stdout}"
        );
        assert!(
            stdout.contains("*deleting   sub/old.txt"),
            "dry={dry}: {stdout}"
        );
    }
    assert_eq!(read(&dst.join("sub/keep.log")), b"excluded: never deleted");
    assert!(!dst.join("sub/old.txt").exists());
    assert!(dst.join("sub").is_dir(), "the folder that holds it stays");
}

#[test]
fn a_dry_run_to_a_destination_not_made_yet_shows_the_plan() {
    let d = tmp();
    let src = d.path().join("src");
    write(&src.join("sub"), "f.txt", b"f");
    let dst = d.path().join("not/yet");
    let out = run(&["copy", "-a", "-n", "-i"], &src.join(""), &dst);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("sub/f.txt"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        !dst.exists() && !d.path().join("not").exists(),
        "a dry run made it"
    );
}

#[test]
fn special_files_are_skipped_and_reported_once() {
    let d = tmp();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    write(&a, "plain.txt", b"p");
    let fifo = a.join("pipe");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for args in [vec!["copy", "-a"], vec!["sync"]] {
        let out = run(&args, &a.join(""), &b);
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        assert_eq!(stderr.matches("pipe").count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains("skip"), "{args:?}: {stderr}");
        assert_eq!(read(&b.join("plain.txt")), b"p");
        assert!(!b.join("pipe").exists());
    }
}

/// Runs `deltasync ARGS` as the unprivileged user nobody (root reads
/// everything, so unreadable files need someone else).
fn as_nobody(args: &[&str], a: &Path, b: &Path) -> Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_deltasync"))
        .args(args)
        .arg(a)
        .arg(b)
        .output()
        .expect("setpriv runs")
}

/// A temp dir nobody can use, with `a` and `b` owned by nobody.
fn nobodys_pair() -> Option<(tempfile::TempDir, std::path::PathBuf, std::path::PathBuf)> {
    if !deltasync_driver::running_as_root() {
        eprintln!("skipped: needs root to act as another user");
        return None;
    }
    let d = tmp();
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    for p in [&a, &b] {
        fs::create_dir(p).unwrap();
        std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
    }
    Some((d, a, b))
}

fn give_to_nobody(root: &Path) {
    assert!(
        Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(root)
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn an_unreadable_folder_is_reported_and_the_rest_syncs() {
    let Some((_d, a, b)) = nobodys_pair() else {
        return;
    };
    write(&a.join("locked"), "inside.txt", b"i");
    write(&a, "first.txt", b"1");
    give_to_nobody(&a);
    let out = as_nobody(&["sync"], &a, &b);
    assert!(out.status.success(), "{}", text(&out.stderr));
    fs::set_permissions(a.join("locked"), fs::Permissions::from_mode(0o000)).unwrap();
    write(&a, "second.txt", b"2");
    give_to_nobody(&a);
    for _ in 0..2 {
        let out = as_nobody(&["sync"], &a, &b);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(23), "{stderr}");
        assert!(
            stderr.contains("A: locked"),
            "names the side and path: {stderr}"
        );
        assert!(!stderr.to_lowercase().contains("safety"), "{stderr}");
        assert_eq!(read(&b.join("second.txt")), b"2", "the rest syncs");
        assert_eq!(
            read(&b.join("locked/inside.txt")),
            b"i",
            "what could not be read is left alone, not deleted"
        );
    }
    fs::set_permissions(a.join("locked"), fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn an_unreadable_destination_file_is_replaced_whole_and_piles_up_nothing() {
    let Some((_d, a, b)) = nobodys_pair() else {
        return;
    };
    write(&a, "f.txt", b"version one");
    give_to_nobody(&a);
    assert!(as_nobody(&["sync"], &a, &b).status.success());
    // copy: the destination's file cannot be read as a basis.
    let c = a.parent().unwrap().join("c");
    fs::create_dir(&c).unwrap();
    write(&c, "f.txt", b"old and unreadable");
    give_to_nobody(&c);
    fs::set_permissions(c.join("f.txt"), fs::Permissions::from_mode(0o000)).unwrap();
    let out = as_nobody(&["copy", "-a"], &a.join(""), &c);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(read(&c.join("f.txt")), b"version one");

    // sync: B's copy goes unreadable, A's changes; twice over.
    fs::set_permissions(b.join("f.txt"), fs::Permissions::from_mode(0o000)).unwrap();
    write(&a, "f.txt", b"version two");
    give_to_nobody(&a);
    let mut codes = Vec::new();
    for _ in 0..3 {
        codes.push(as_nobody(&["sync"], &a, &b).status.code());
    }
    let conflicts = |root: &Path| {
        fs::read_dir(root.join(".deltasync/conflicts"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    assert!(
        conflicts(&a) + conflicts(&b) <= 1,
        "conflict copies piled up: {codes:?}"
    );
    assert_eq!(codes.last(), Some(&Some(0)), "{codes:?}");
}

#[test]
fn a_closed_stdout_ends_output_quietly() {
    let d = tmp();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    for i in 0..200 {
        write(&a, &format!("f{i:03}"), b"x");
    }
    let mut child = deltasync()
        .args(["copy", "-a", "-v"])
        .arg(a.join(""))
        .arg(&b)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader is gone, as with `| head -1`
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "{stderr}");
    let copied = fs::read_dir(&b)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('f')
        })
        .count();
    assert_eq!(copied, 200, "the copy still finished");
}

/// Builds 18 nested folders of 250-byte names under `root` with a file at
/// the bottom: a path past the 4096 bytes the wire (and PATH_MAX) carries.
/// No single call can name it, so two halves are built and one is moved
/// into the other.
fn too_deep(root: &Path) {
    let name = "d".repeat(250);
    let chain = |top: &Path, n: usize| {
        let mut p = top.to_path_buf();
        for _ in 0..n {
            p.push(&name);
        }
        fs::create_dir_all(&p).unwrap();
        p
    };
    let upper = chain(root, 9);
    let lower = root.join("lower");
    let bottom = chain(&lower, 9);
    fs::write(bottom.join("f"), b"deep").unwrap();
    fs::rename(lower.join(&name), upper.join(&name)).unwrap();
    fs::remove_dir(lower).unwrap();
}

#[test]
fn a_path_too_long_is_reported_with_its_side_and_the_rest_syncs() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    write(&a, "first.txt", b"1");
    assert!(run(&["sync"], &a, &b).status.success());
    too_deep(&a);
    write(&a, "second.txt", b"2");
    for _ in 0..2 {
        let out = run(&["sync"], &a, &b);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(23), "{stderr}");
        assert!(
            stderr.contains("A: ddd"),
            "names the side and path: {stderr}"
        );
        assert!(stderr.contains("longer than"), "names the cause: {stderr}");
        assert!(!stderr.to_lowercase().contains("safety"), "{stderr}");
        assert_eq!(read(&b.join("second.txt")), b"2", "the rest syncs");
    }
    let c = d.path().join("c");
    let out = run(&["copy", "-a"], &a.join(""), &c);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(23), "{stderr}");
    assert!(stderr.contains("source: ddd"), "{stderr}");
    assert_eq!(read(&c.join("second.txt")), b"2");
}
