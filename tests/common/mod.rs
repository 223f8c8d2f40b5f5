//! Helpers shared by the end-to-end tests: the binary under test, real
//! tools, pipes, and deterministic test data.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The deltasync binary cargo built for these tests.
pub fn deltasync() -> Command {
    Command::new(env!("CARGO_BIN_EXE_deltasync"))
}

/// Debian's rdiff. The test command installs it; a missing rdiff fails loudly.
pub fn rdiff() -> Command {
    Command::new("rdiff")
}

/// True when `scripts/test --long` asked for the long cases.
pub fn long_tests() -> bool {
    std::env::var_os("DELTASYNC_LONG_TESTS").is_some()
}

/// Runs `cmd`, expecting success; returns stdout.
#[track_caller]
pub fn ok(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs `cmd` with `input` written to its stdin through a real pipe.
#[track_caller]
pub fn ok_piped(cmd: &mut Command, input: &[u8]) -> Vec<u8> {
    let out = piped(cmd, input);
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs `cmd` with `input` on a pipe, whatever the outcome.
pub fn piped(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        // The child may exit early on bad input; a broken pipe is its answer, not ours.
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("child runs");
    let _ = writer.join();
    out
}

/// Runs `cmd` and kills it if it takes longer than `limit`: a hang is a failure.
pub fn bounded(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait works").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} ran longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), so failures reproduce.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes `data` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    p
}

/// Reads a file the test made.
pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A fresh temporary directory, removed when dropped.
pub fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// The four librsync formats as rdiff's `-H` and `-R` values.
pub const FORMATS: [(&str, &str); 4] = [
    ("md4", "rollsum"),
    ("blake2", "rollsum"),
    ("md4", "rabinkarp"),
    ("blake2", "rabinkarp"),
];

/// A basis with the features that make delta choices interesting: random
/// data, a long run of one byte (many identical blocks), and a repeated chunk.
pub fn interesting_basis(len: usize) -> Vec<u8> {
    let mut v = random_bytes(7, len);
    if len > 300_000 {
        v[100_000..160_000].fill(b'A');
        let chunk = v[10_000..30_000].to_vec();
        v[200_000..220_000].copy_from_slice(&chunk);
    }
    v
}

/// The edits the compatibility tests apply, by name.
pub fn edits(basis: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let n = basis.len();
    let mut out = vec![("identical", basis.to_vec()), ("empty", Vec::new())];
    let mut overwrite = basis.to_vec();
    for i in (0..n).step_by(97_003) {
        let end = (i + 13).min(n);
        overwrite[i..end].fill(0x5a);
    }
    out.push(("overwrite", overwrite));
    let mut insert = basis.to_vec();
    insert.splice(
        n / 3..n / 3,
        b"inserted bytes shift every offset".repeat(30),
    );
    out.push(("insert", insert));
    let mut delete = basis.to_vec();
    delete.drain(n / 2..(n / 2 + 5_000).min(n));
    out.push(("delete", delete));
    let mut append = basis.to_vec();
    append.extend_from_slice(&random_bytes(99, 1234));
    out.push(("append", append));
    out.push(("truncate", basis[..n * 2 / 3].to_vec()));
    let mut literal = basis.to_vec();
    literal.splice(n / 4..n / 4, random_bytes(5, 100_000)); // over three 32 KiB runs
    out.push(("long-literal", literal));
    out
}
