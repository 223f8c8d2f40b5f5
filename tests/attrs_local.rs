//! What `rsync -a` keeps, on `copy` and on `sync`: directory mtimes after
//! their contents change, times before 1970 and after 2262, owner and group
//! (as root), hard links (-H), extended attributes (-X), ACLs (-A) and
//! sparse files (-S).

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

/// `deltasync CMD [-a] ARGS A B` (sync always keeps what `-a` keeps).
fn run(cmd: &str, args: &[&str], a: &Path, b: &Path) -> Output {
    let out = deltasync()
        .arg(cmd)
        .args((cmd == "copy").then_some("-a"))
        .args(args)
        .arg(a)
        .arg(b)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `check` on a fresh source folder and a destination path.
fn fresh(check: impl Fn(&Path, &Path)) {
    let d = tmp();
    let (src, dst) = (d.path().join("src"), d.path().join("dst"));
    fs::create_dir(&src).unwrap();
    check(&src, &dst);
    let _ = fs::remove_dir_all(&dst);
}

fn set_mtime(p: &Path, t: SystemTime) {
    fs::File::open(p).unwrap().set_modified(t).unwrap();
}

fn mtime(p: &Path) -> (i64, i64) {
    let m = fs::symlink_metadata(p).unwrap();
    (m.mtime(), m.mtime_nsec())
}

fn tool(cmd: &mut Command) -> String {
    let out = cmd.output().expect("the test script installs acl and attr");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn folder_mtimes_come_back_after_their_contents_change() {
    for cmd in ["copy", "sync"] {
        let d = tmp();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        write(&a.join("sub"), "one", b"1");
        run(cmd, &[], &a.join(""), &b);
        // A new file in sub moves sub's time; the run comes well after.
        write(&a.join("sub"), "two", b"2");
        std::thread::sleep(Duration::from_millis(1200));
        run(cmd, &[], &a.join(""), &b);
        assert_eq!(read(&b.join("sub/two")), b"2");
        assert_eq!(
            mtime(&b.join("sub")),
            mtime(&a.join("sub")),
            "{cmd}: the folder has its source's time, not the run's"
        );
    }
}

#[test]
fn times_before_1970_and_after_2262_travel_exactly() {
    let before = SystemTime::UNIX_EPOCH - Duration::new(315_619_200, 250_000_000); // 1960
    let after = SystemTime::UNIX_EPOCH + Duration::new(10_413_792_000, 5); // 2300
    for cmd in ["copy", "sync"] {
        fresh(|a, b| {
            write(a, "old.txt", b"old");
            write(a, "future.txt", b"future");
            set_mtime(&a.join("old.txt"), before);
            set_mtime(&a.join("future.txt"), after);
            for _ in 0..2 {
                // The second run must see nothing to do (and not fail).
                run(cmd, &[], &a.join(""), b);
            }
            for f in ["old.txt", "future.txt"] {
                assert_eq!(mtime(&b.join(f)), mtime(&a.join(f)), "{cmd}: {f}");
            }
            assert!(mtime(&b.join("old.txt")).0 < 0);
            assert!(mtime(&b.join("future.txt")).0 > 9_300_000_000);
        });
    }
}

#[test]
fn hard_links_xattrs_acls_and_owners_are_kept() {
    if !deltasync_driver::running_as_root() {
        eprintln!("skipped: owners can only be set as root");
        return;
    }
    for cmd in ["copy", "sync"] {
        fresh(|a, b| {
            write(a, "f", b"linked twice");
            fs::hard_link(a.join("f"), a.join("g")).unwrap();
            write(a, "plain", b"plain");
            tool(
                Command::new("setfattr")
                    .args(["-n", "user.color", "-v", "blue"])
                    .arg(a.join("plain")),
            );
            tool(
                Command::new("setfacl")
                    .args(["-m", "u:65534:r"])
                    .arg(a.join("plain")),
            );
            std::os::unix::fs::chown(a.join("plain"), Some(12345), Some(23456)).unwrap();
            run(cmd, &["-H", "-X", "-A"], &a.join(""), b);
            let (f, g) = (
                fs::metadata(b.join("f")).unwrap(),
                fs::metadata(b.join("g")).unwrap(),
            );
            assert_eq!(f.ino(), g.ino(), "{cmd}: -H keeps the link");
            let xattr = tool(
                Command::new("getfattr")
                    .args(["-n", "user.color", "--only-values"])
                    .arg(b.join("plain")),
            );
            assert_eq!(xattr, "blue", "{cmd}: -X");
            let acl = tool(Command::new("getfacl").arg("-n").arg(b.join("plain")));
            assert!(acl.contains("user:65534:r--"), "{cmd}: -A: {acl}");
            let m = fs::metadata(b.join("plain")).unwrap();
            assert_eq!((m.uid(), m.gid()), (12345, 23456), "{cmd}: -o -g as root");
        });
    }
}

#[test]
fn a_sparse_file_stays_sparse_with_s() {
    let len: u64 = if long_tests() { 1 << 30 } else { 64 << 20 };
    for cmd in ["copy", "sync"] {
        fresh(|a, b| {
            let f = fs::File::create(a.join("disk.img")).unwrap();
            f.set_len(len).unwrap();
            std::os::unix::fs::FileExt::write_at(&f, b"boot", 0).unwrap();
            std::os::unix::fs::FileExt::write_at(&f, b"end", len - 3).unwrap();
            drop(f);
            run(cmd, &["-S"], &a.join(""), b);
            let m = fs::metadata(b.join("disk.img")).unwrap();
            assert_eq!(m.len(), len);
            assert!(
                m.blocks() * 512 < 4 << 20,
                "{cmd}: {} bytes on disk for a sparse {len}",
                m.blocks() * 512
            );
            let got = fs::read(b.join("disk.img")).unwrap();
            assert_eq!(&got[..4], b"boot");
            assert_eq!(&got[got.len() - 3..], b"end");
        });
    }
}
