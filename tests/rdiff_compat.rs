//! deltasync against Debian's real rdiff 2.3.2: same signature bytes, same
//! delta bytes, and each side applies the other's deltas.

mod common;

use common::*;
use std::path::Path;

fn sig_both(basis: &Path, args: &[&str], dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let ours = dir.join("ours.sig");
    let theirs = dir.join("theirs.sig");
    ok(rdiff()
        .args(args)
        .arg("-f")
        .arg("signature")
        .arg(basis)
        .arg(&theirs));
    ok(deltasync()
        .arg("signature")
        .args(args)
        .arg("-f")
        .arg(basis)
        .arg(&ours));
    (read(&ours), read(&theirs))
}

#[test]
fn signatures_match_at_block_edges() {
    let dir = tmp();
    // rdiff's default block is 256 up to 64 KiB: cover block-1, block, block+1 and a few multiples.
    for len in [
        0usize, 1, 255, 256, 257, 511, 512, 513, 65_535, 65_536, 65_537, 1_000_000,
    ] {
        let basis = write(dir.path(), "basis", &random_bytes(len as u64, len));
        for (h, r) in FORMATS {
            let (ours, theirs) = sig_both(&basis, &["-H", h, "-R", r], dir.path());
            assert!(
                ours == theirs,
                "signature differs: len {len}, -H {h} -R {r}"
            );
        }
    }
}

#[test]
fn signature_options_match() {
    let dir = tmp();
    let basis = write(dir.path(), "basis", &interesting_basis(300_001));
    for args in [
        &["-b", "1"][..],
        &["-b", "700", "-S", "8"],
        &["-b", "4096", "-S", "-1"],
        &["-S", "4"],
        &["-b", "100000"],
        &["-H", "md4", "-S", "-1"],
    ] {
        let (ours, theirs) = sig_both(&basis, args, dir.path());
        assert!(ours == theirs, "signature differs for {args:?}");
    }
}

#[test]
fn signatures_from_a_pipe_match() {
    // A pipe has no size, so rdiff falls back to 2048-byte blocks.
    for (h, r) in FORMATS {
        let data = random_bytes(3, 100_000);
        let theirs = ok_piped(rdiff().args(["-H", h, "-R", r, "signature"]), &data);
        let ours = ok_piped(
            deltasync().args(["signature", "-H", h, "-R", r, "-", "-"]),
            &data,
        );
        assert_eq!(
            &theirs[4..8],
            &2048u32.to_be_bytes(),
            "rdiff's pipe block size"
        );
        assert!(ours == theirs, "pipe signature differs: -H {h} -R {r}");
    }
}

/// For each format and edit: equal deltas (serial and parallel), and each
/// tool rebuilds the new file from the other's delta.
fn deltas_match(basis: &[u8], block_args: &[&str]) {
    let dir = tmp();
    let d = dir.path();
    let basis_path = write(d, "basis", basis);
    for (h, r) in FORMATS {
        let sig = d.join("basis.sig");
        ok(rdiff()
            .args(["-H", h, "-R", r])
            .args(block_args)
            .args(["-f", "signature"])
            .arg(&basis_path)
            .arg(&sig));
        for (name, new) in edits(basis) {
            let new_path = write(d, "new", &new);
            let (theirs, ours, serial) = (
                d.join("theirs.delta"),
                d.join("ours.delta"),
                d.join("serial.delta"),
            );
            ok(rdiff()
                .args(["-f", "delta"])
                .arg(&sig)
                .arg(&new_path)
                .arg(&theirs));
            ok(deltasync()
                .args(["delta", "-f"])
                .arg(&sig)
                .arg(&new_path)
                .arg(&ours));
            ok(deltasync()
                .args(["delta", "-f", "--threads", "1"])
                .arg(&sig)
                .arg(&new_path)
                .arg(&serial));
            let what = format!("edit {name}, -H {h} -R {r} {block_args:?}");
            assert!(
                read(&ours) == read(&theirs),
                "delta differs from rdiff's: {what}"
            );
            assert!(
                read(&serial) == read(&theirs),
                "serial delta differs from rdiff's: {what}"
            );

            let (a, b) = (d.join("rebuilt-by-rdiff"), d.join("rebuilt-by-us"));
            ok(rdiff()
                .args(["-f", "patch"])
                .arg(&basis_path)
                .arg(&ours)
                .arg(&a));
            ok(deltasync()
                .args(["patch", "-f"])
                .arg(&basis_path)
                .arg(&theirs)
                .arg(&b));
            assert!(
                read(&a) == new,
                "rdiff cannot rebuild from our delta: {what}"
            );
            assert!(
                read(&b) == new,
                "we cannot rebuild from rdiff's delta: {what}"
            );
        }
    }
}

#[test]
fn deltas_match_for_every_edit_and_format() {
    deltas_match(&interesting_basis(1_500_000), &[]);
}

#[test]
fn deltas_match_with_small_and_odd_blocks() {
    deltas_match(&interesting_basis(400_000), &["-b", "333"]);
    deltas_match(&random_bytes(11, 5_000), &["-b", "1"]);
}

#[test]
fn deltas_against_an_empty_basis_match() {
    // librsync's "slack" delta: one literal per block-sized read.
    deltas_match(&[], &[]);
    deltas_match(&[], &["-b", "100000"]);
}

#[test]
fn deltas_from_a_pipe_match() {
    let dir = tmp();
    let basis = interesting_basis(700_000);
    let basis_path = write(dir.path(), "basis", &basis);
    let sig = dir.path().join("sig");
    ok(rdiff().arg("signature").arg(&basis_path).arg(&sig));
    for (name, new) in edits(&basis) {
        let theirs = ok_piped(rdiff().arg("delta").arg(&sig), &new);
        let ours = ok_piped(deltasync().arg("delta").arg(&sig), &new);
        assert!(ours == theirs, "piped delta differs: edit {name}");
        let rebuilt = ok_piped(deltasync().arg("patch").arg(&basis_path), &ours);
        assert!(rebuilt == new, "piped patch differs: edit {name}");
    }
}

#[test]
fn large_files_match() {
    // 64 MiB by default; `scripts/test --long` adds every format and 256 MiB.
    let dir = tmp();
    let len = 64 << 20;
    let basis = random_bytes(64, len);
    let mut new = basis.clone();
    for i in (0..len).step_by(3_000_017) {
        new[i] ^= 0xff;
    }
    new.splice(len / 2..len / 2, random_bytes(1, 50_000));
    new.truncate(len - 123_456);
    let basis_path = write(dir.path(), "basis", &basis);
    let new_path = write(dir.path(), "new", &new);
    let formats: &[(&str, &str)] = if long_tests() {
        &FORMATS
    } else {
        &FORMATS[3..]
    };
    for (h, r) in formats {
        let (ours_sig, theirs_sig) = sig_both(&basis_path, &["-H", h, "-R", r], dir.path());
        assert!(
            ours_sig == theirs_sig,
            "64 MiB signature differs: -H {h} -R {r}"
        );
        let sig = dir.path().join("theirs.sig");
        let (theirs, ours) = (dir.path().join("t.delta"), dir.path().join("o.delta"));
        ok(rdiff()
            .args(["-f", "delta"])
            .arg(&sig)
            .arg(&new_path)
            .arg(&theirs));
        ok(deltasync()
            .args(["delta", "-f"])
            .arg(&sig)
            .arg(&new_path)
            .arg(&ours));
        assert!(
            read(&ours) == read(&theirs),
            "64 MiB delta differs: -H {h} -R {r}"
        );
        let rebuilt = dir.path().join("rebuilt");
        ok(deltasync()
            .args(["patch", "-f"])
            .arg(&basis_path)
            .arg(&ours)
            .arg(&rebuilt));
        assert!(read(&rebuilt) == new, "64 MiB patch differs");
    }
}
