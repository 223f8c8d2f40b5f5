//! `deltasync copy` between local folders (through a child `serve`, the
//! same protocol as remote).

mod common;

use common::*;
use std::time::{Duration, Instant};

fn copy(args: &[&str], src: &std::path::Path, dst: &std::path::Path) -> std::process::Output {
    deltasync()
        .arg("copy")
        .args(args)
        .arg(src)
        .arg(dst)
        .output()
        .expect("runs")
}

#[test]
fn copies_a_tree_with_links_modes_and_mtimes_then_does_nothing() {
    let d = tmp();
    let src = d.path().join("src");
    sample_tree(&src);
    let dst = d.path().join("dst");
    let out = copy(&["-a", "-i"], &src.join(""), &dst);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same_tree(&src, &dst);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(">f+++++++++ big.bin"), "{text}");
    assert!(text.contains("cL+++++++++ link-to-a -> a.txt"), "{text}");
    assert!(text.contains("cd+++++++++ sub/"), "{text}");
    let again = copy(&["-i"], &src.join(""), &dst);
    assert!(again.status.success());
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        "",
        "a second run changes nothing"
    );
}

#[test]
fn trailing_slash_rule() {
    let d = tmp();
    let src = d.path().join("src");
    sample_tree(&src);
    let dst = d.path().join("dst");
    assert!(copy(&[], &src, &dst).status.success());
    assert_same_tree(&src, &dst.join("src"));
    let file_dst = d.path().join("single");
    assert!(copy(&[], &src.join("a.txt"), &file_dst).status.success());
    assert_eq!(read(&file_dst), b"alpha\n");
    std::fs::create_dir(d.path().join("into")).unwrap();
    assert!(
        copy(&[], &src.join("a.txt"), &d.path().join("into"))
            .status
            .success()
    );
    assert_eq!(read(&d.path().join("into/a.txt")), b"alpha\n");
}

#[test]
fn edits_travel_as_deltas() {
    let d = tmp();
    let src = d.path().join("src");
    sample_tree(&src);
    let dst = d.path().join("dst");
    assert!(copy(&[], &src.join(""), &dst).status.success());
    let mut big = read(&src.join("big.bin"));
    big[1_000_000..1_000_010].fill(0);
    big.splice(2_000_000..2_000_000, b"inserted".iter().copied());
    write(&src, "big.bin", &big);
    let (status, v, err) = json_run(
        deltasync()
            .args(["copy", "--json"])
            .arg(src.join(""))
            .arg(&dst),
    );
    assert!(status.success(), "{err}");
    assert_eq!(v["transferred"], 1);
    let literal = v["literal_bytes"].as_u64().unwrap();
    assert!(
        literal < 100_000,
        "a 10-byte edit and an insertion sent {literal} literal bytes"
    );
    assert!(v["matched_bytes"].as_u64().unwrap() > 3_000_000);
    assert_same_tree(&src, &dst);
}

/// `-y`: a new version of a file beside its old one, under a new name,
/// goes as a delta against the old one; without `-y`, whole.
#[test]
fn fuzzy_sends_a_renamed_version_against_the_old_one() {
    let d = tmp();
    let src = d.path().join("src");
    sample_tree(&src);
    let dst = d.path().join("dst");
    assert!(copy(&[], &src.join(""), &dst).status.success());
    let mut next = read(&src.join("big.bin"));
    next[1_000_000..1_000_010].fill(7);
    write(&src, "big-2.bin", &next);
    let literal = |args: &[&str], dst: &std::path::Path| {
        let (status, v, err) = json_run(
            deltasync()
                .args(["copy", "--json"])
                .args(args)
                .arg(src.join(""))
                .arg(dst),
        );
        assert!(status.success(), "{err}");
        assert_same_tree(&src, dst);
        v["literal_bytes"].as_u64().unwrap()
    };
    let plain = d.path().join("plain");
    assert!(copy(&[], &dst.join(""), &plain).status.success());
    assert_eq!(literal(&[], &plain), next.len() as u64, "whole without -y");
    let sent = literal(&["-y"], &dst);
    assert!(sent < 10_000, "{sent} literal bytes with -y");
}

#[test]
fn delete_exclude_and_dry_run() {
    let d = tmp();
    let src = d.path().join("src");
    sample_tree(&src);
    let dst = d.path().join("dst");
    assert!(copy(&[], &src.join(""), &dst).status.success());
    write(&dst, "extra.txt", b"only in dst");
    write(&dst, "keep.log", b"excluded, so protected");
    std::fs::remove_file(src.join("sub/b.txt")).unwrap();
    write(&src, "skip.log", b"excluded, so not sent");

    let dry = copy(
        &["-n", "--delete", "--exclude", "*.log"],
        &src.join(""),
        &dst,
    );
    assert!(dry.status.success());
    let plan = String::from_utf8_lossy(&dry.stdout);
    assert!(
        plan.contains("*deleting   extra.txt") && plan.contains("*deleting   sub/b.txt"),
        "{plan}"
    );
    assert!(dst.join("extra.txt").exists(), "dry run changed nothing");

    let real = copy(
        &["-i", "--delete", "--exclude", "*.log"],
        &src.join(""),
        &dst,
    );
    assert!(real.status.success());
    assert_eq!(
        String::from_utf8_lossy(&real.stdout)
            .lines()
            .filter(|l| l.starts_with('*'))
            .count(),
        2,
        "the dry run showed exactly what ran"
    );
    assert!(!dst.join("extra.txt").exists() && !dst.join("sub/b.txt").exists());
    assert!(
        dst.join("keep.log").exists(),
        "an excluded file is never deleted"
    );
    assert!(
        !dst.join("skip.log").exists(),
        "an excluded file is not sent"
    );
}

#[test]
fn checksum_mode_finds_same_size_same_mtime_changes() {
    let d = tmp();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    write(&src, "f", b"aaaa");
    let dst = d.path().join("dst");
    assert!(copy(&[], &src.join(""), &dst).status.success());
    // Same size, same mtime, different bytes: only --checksum notices.
    let mtime = std::fs::metadata(dst.join("f"))
        .unwrap()
        .modified()
        .unwrap();
    write(&dst, "f", b"bbbb");
    std::fs::File::options()
        .write(true)
        .open(dst.join("f"))
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert!(copy(&[], &src.join(""), &dst).status.success());
    assert_eq!(read(&dst.join("f")), b"bbbb");
    assert!(copy(&["--checksum"], &src.join(""), &dst).status.success());
    assert_eq!(read(&dst.join("f")), b"aaaa");
}

#[test]
fn compression_helps_text_and_costs_little_on_random_data() {
    let d = tmp();
    let text_src = d.path().join("text");
    std::fs::create_dir(&text_src).unwrap();
    write(
        &text_src,
        "t",
        &b"the same sentence again and again. ".repeat(100_000),
    );
    let rand_src = d.path().join("rand");
    std::fs::create_dir(&rand_src).unwrap();
    write(&rand_src, "r", &random_bytes(5, 4 << 20));
    let sent = |src: &std::path::Path, flag: &str, name: &str| {
        let (status, v, err) = json_run(
            deltasync()
                .args(["copy", "--json", flag])
                .arg(src.join(""))
                .arg(d.path().join(name)),
        );
        assert!(status.success(), "{err}");
        v["sent_bytes"].as_u64().unwrap()
    };
    let (t_raw, t_z) = (
        sent(&text_src, "--no-compress", "t1"),
        sent(&text_src, "-z", "t2"),
    );
    assert!(t_z * 20 < t_raw, "text: {t_z} compressed vs {t_raw} raw");
    let (r_raw, r_z) = (
        sent(&rand_src, "--no-compress", "r1"),
        sent(&rand_src, "-z", "r2"),
    );
    assert!(
        (r_z as f64) <= r_raw as f64 * 1.05,
        "random data: {r_z} with -z vs {r_raw} raw (over 5%)"
    );
}

#[test]
fn bwlimit_slows_the_copy_to_the_cap() {
    let d = tmp();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    write(&src, "r", &random_bytes(6, 3 << 20));
    let start = Instant::now();
    let out = copy(&["--bwlimit", "1M"], &src.join(""), &d.path().join("dst"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let took = start.elapsed();
    // 3 MiB at 1 MiB/s: about 3 s (the first 25 ms piece goes at once).
    assert!(took >= Duration::from_millis(2700), "finished in {took:?}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn stats_end_with_rsyncs_two_lines() {
    let d = tmp();
    let src = d.path().join("src");
    sample_tree(&src);
    let out = copy(&["--stats"], &src.join(""), &d.path().join("dst"));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let n = lines.len();
    assert!(
        lines[n - 2].starts_with("sent ")
            && lines[n - 2].contains(" bytes  received ")
            && lines[n - 2].ends_with(" bytes/sec"),
        "{text}"
    );
    assert!(
        lines[n - 1].starts_with("total size is ") && lines[n - 1].contains("  speedup is "),
        "{text}"
    );
    assert!(
        text.contains("Literal data: ") && text.contains("Matched data: "),
        "{text}"
    );
}

#[test]
fn errors_name_the_file_and_use_rsync_codes() {
    let d = tmp();
    let out = copy(&[], &d.path().join("missing/"), &d.path().join("dst"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing"), "{err}");
    let out = deltasync()
        .args(["copy", "--bwlimit", "fast", "a", "b"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "usage error");
}

#[test]
fn small_files_do_not_wait_behind_a_large_one() {
    let d = tmp();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    write(&src, "0-big.bin", &random_bytes(40, 12 << 20));
    // More small files than the client keeps in flight, so the later ones
    // start while the large file's data is already queued.
    for i in 0..1500 {
        write(
            &src,
            &format!("small-{i:04}.txt"),
            format!("small file {i}\n").as_bytes(),
        );
    }
    // At 4 MiB/s the large file takes about 3 s; the small ones should not.
    let out = copy(
        &["-i", "--bwlimit", "4M"],
        &src.join(""),
        &d.path().join("dst"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let big_at = lines
        .iter()
        .position(|l| l.ends_with("0-big.bin"))
        .expect("big file copied");
    let smalls_after = lines[big_at..]
        .iter()
        .filter(|l| l.contains("small-"))
        .count();
    assert_eq!(
        smalls_after, 0,
        "small files finished after the large one:\n{text}"
    );
}

#[test]
fn delete_moves_a_renamed_folder_instead_of_sending_it() {
    let d = tmp();
    let src = d.path().join("src");
    for i in 0..5 {
        write(
            &src.join("photos"),
            &format!("p{i}.jpg"),
            &random_bytes(i, 100_000),
        );
    }
    let dst = d.path().join("dst");
    let first = copy(&["-a"], &src.join(""), &dst);
    assert!(first.status.success());
    std::fs::rename(src.join("photos"), src.join("photos-2026")).unwrap();
    let out = copy(&["-a", "-i", "--delete", "--stats"], &src.join(""), &dst);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert_same_tree(&src, &dst);
    assert!(
        text.contains("cf+++++++++ photos-2026/p3.jpg (moved from photos/p3.jpg)"),
        "{text}"
    );
    assert!(text.contains("Literal data: 0 bytes"), "{text}");
    assert!(text.contains("*deleting   photos/"), "{text}");
}
