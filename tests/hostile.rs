//! A corpus of hostile signatures and deltas, one per check the engine
//! makes. Each must be refused within a time bound, with exit code 12 and a
//! message that names the offending number, and must leave no output file.

mod common;

use common::*;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(10);

fn sig(magic: u32, block: u32, strong: u32, records: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    v.extend_from_slice(&block.to_be_bytes());
    v.extend_from_slice(&strong.to_be_bytes());
    v.extend_from_slice(records);
    v
}

fn delta(cmds: &[u8]) -> Vec<u8> {
    let mut v = 0x7273_0236u32.to_be_bytes().to_vec();
    v.extend_from_slice(cmds);
    v
}

const BLAKE2_RK: u32 = 0x7273_0147;

#[test]
fn hostile_signatures_are_refused() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "block_len 0",
            sig(BLAKE2_RK, 0, 8, &[0; 12]),
            "block length is 0",
        ),
        (
            "absurd block_len",
            sig(BLAKE2_RK, u32::MAX, 8, &[]),
            "block length 4294967295 exceeds",
        ),
        (
            "strong_len 0",
            sig(BLAKE2_RK, 256, 0, &[0; 4]),
            "strong-sum length is 0",
        ),
        (
            "strong_len > digest",
            sig(BLAKE2_RK, 256, 33, &[]),
            "strong-sum length 33 exceeds the 32-byte",
        ),
        (
            "md4 strong_len > 16",
            sig(0x7273_0136, 256, 17, &[]),
            "length 17 exceeds the 16-byte",
        ),
        (
            "bad magic",
            sig(0x1234_5678, 256, 8, &[]),
            "bad signature magic 0x12345678",
        ),
        (
            "truncated header",
            BLAKE2_RK.to_be_bytes()[..].to_vec(),
            "header truncated: 4 of 12",
        ),
        ("empty", Vec::new(), "header truncated: 0 of 12"),
        (
            "truncated record",
            sig(BLAKE2_RK, 256, 8, &[0; 19]),
            "record needs 12 bytes, 7 left",
        ),
    ];
    let dir = tmp();
    let new = write(dir.path(), "new", &random_bytes(1, 10_000));
    for (name, bytes, expect) in cases {
        let s = write(dir.path(), "hostile.sig", &bytes);
        let out_path = dir.path().join("out.delta");
        let out = bounded(
            deltasync().arg("delta").arg(&s).arg(&new).arg(&out_path),
            LIMIT,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(12),
            "{name}: exit code; stderr: {err}"
        );
        assert!(
            err.contains(expect),
            "{name}: message {err:?} lacks {expect:?}"
        );
        assert_eq!(
            err.lines().count(),
            1,
            "{name}: one-line message, got {err:?}"
        );
        assert!(
            !out_path.exists(),
            "{name}: a refused delta left an output file"
        );
    }
}

#[test]
fn hostile_deltas_are_refused() {
    let basis_bytes = random_bytes(2, 1000);
    let u64max = [0xffu8; 8];
    let mut copy_overflow = vec![0x54];
    copy_overflow.extend_from_slice(&u64max);
    copy_overflow.extend_from_slice(&2u64.to_be_bytes());
    copy_overflow.push(0);
    let mut huge_literal = vec![0x44];
    huge_literal.extend_from_slice(&u64max);
    huge_literal.extend_from_slice(b"tiny");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "bad magic",
            b"RS\x026\x00".to_vec(),
            "bad delta magic 0x52530236",
        ),
        (
            "truncated magic",
            b"rs".to_vec(),
            "inside its 4-byte magic (2 bytes)",
        ),
        (
            "copy past the basis",
            delta(&[0x46, 200, 0x03, 0x21, 0]),
            "reads basis bytes 200..200+801, past its end at 1000",
        ),
        (
            "copy offset overflow",
            delta(&copy_overflow),
            "past its end at 1000",
        ),
        (
            "zero-length copy",
            delta(&[0x45, 0, 0, 0]),
            "copy of length 0 at byte 4",
        ),
        (
            "zero-length literal",
            delta(&[0x41, 0, 0]),
            "literal of length 0 at byte 4",
        ),
        (
            "literal past the end",
            delta(&[0x41, 200, 1, 2, 3]),
            "claims 200 bytes but only 3 remain",
        ),
        (
            "huge literal",
            delta(&huge_literal),
            "claims 18446744073709551615 bytes but only 4 remain",
        ),
        (
            "unknown opcode",
            delta(&[0x55, 0]),
            "unknown delta opcode 0x55 at byte 4",
        ),
        (
            "missing END",
            delta(&[2, b'o', b'k']),
            "without an END command",
        ),
        (
            "truncated command",
            delta(&[0x47, 1]),
            "command 0x47 needs 5 parameter bytes, 1 left",
        ),
        (
            "data after END",
            delta(&[1, b'x', 0, 0]),
            "data after its END command at byte 6",
        ),
    ];
    let dir = tmp();
    let basis = write(dir.path(), "basis", &basis_bytes);
    for (name, bytes, expect) in cases {
        let d = write(dir.path(), "hostile.delta", &bytes);
        let out_path = dir.path().join("out");
        let out = bounded(
            deltasync().arg("patch").arg(&basis).arg(&d).arg(&out_path),
            LIMIT,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(12),
            "{name}: exit code; stderr: {err}"
        );
        assert!(
            err.contains(expect),
            "{name}: message {err:?} lacks {expect:?}"
        );
        assert!(
            !out_path.exists(),
            "{name}: a refused patch left an output file"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".deltasync"))
            .collect();
        assert!(leftovers.is_empty(), "{name}: temporary files left behind");
    }
}

#[test]
fn output_limit_is_enforced_in_time() {
    use deltasync_driver::engine::{Limits, PatchError, apply_delta};
    // A 1 KiB basis copied 100,000 times: a 400 KB delta claiming 100 MB of output.
    let basis = random_bytes(3, 1024);
    let mut cmds = [0x46u8, 0x00, 0x04, 0x00].repeat(100_000); // COPY_N1_N2: offset 0, 1024 bytes
    cmds.push(0);
    let d = delta(&cmds);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let limits = Limits {
            max_output: 10 << 20,
            ..Limits::default()
        };
        let mut sink = std::io::sink();
        let _ = tx.send(apply_delta(&basis[..], &d[..], &mut sink, &limits));
    });
    let result = rx.recv_timeout(LIMIT).expect("patch finished in time");
    assert!(
        matches!(result, Err(PatchError::OutputTooLarge { limit }) if limit == 10 << 20),
        "got {result:?}"
    );
}
