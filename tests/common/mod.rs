//! Helpers shared by the end-to-end tests: the binary under test, real
//! tools, pipes, and deterministic test data.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The deltasync binary cargo built for these tests.
pub mod proxy;
pub mod sshd;

/// Runs `cmd`, parsing the one JSON object it prints on stdout.
pub fn json_run(cmd: &mut Command) -> (std::process::ExitStatus, serde_json::Value, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let v = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{cmd:?} printed no JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (
        out.status,
        v,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

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

/// Writes `data` to `dir/name` (making its folders) and returns the path.
pub fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
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

/// Builds a small tree with files, a subdirectory, a symlink and odd modes.
pub fn sample_tree(root: &Path) {
    std::fs::create_dir_all(root.join("sub/deeper")).expect("mkdir");
    write(root, "a.txt", b"alpha\n");
    write(root, "big.bin", &random_bytes(11, 3 << 20));
    write(&root.join("sub"), "b.txt", b"bravo\n");
    write(&root.join("sub/deeper"), "c.bin", &random_bytes(12, 70_000));
    std::os::unix::fs::symlink("a.txt", root.join("link-to-a")).expect("symlink");
    std::os::unix::fs::symlink("/nonexistent/target", root.join("dangling")).expect("symlink");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.join("a.txt"), std::fs::Permissions::from_mode(0o640))
        .expect("chmod");
    std::fs::set_permissions(root.join("sub"), std::fs::Permissions::from_mode(0o750))
        .expect("chmod");
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
    std::fs::File::options()
        .write(true)
        .open(root.join("sub/b.txt"))
        .expect("open")
        .set_modified(old)
        .expect("mtime");
}

/// Asserts two trees hold the same names, kinds, contents, link targets,
/// modes and mtimes (directories' mtimes included). `.deltasync` is skipped.
pub fn assert_same_tree(a: &Path, b: &Path) {
    compare_trees(a, b, true);
}

/// Like [`assert_same_tree`], but directory mtimes may differ: a two-way
/// sync writes into a directory on one side only, which moves its mtime.
pub fn assert_synced_trees(a: &Path, b: &Path) {
    compare_trees(a, b, false);
}

fn compare_trees(a: &Path, b: &Path, dir_mtimes: bool) {
    use std::os::unix::fs::MetadataExt;
    let list = |root: &Path| -> Vec<(PathBuf, std::fs::Metadata)> {
        let mut out = Vec::new();
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let full = root.join(&rel);
            let meta = std::fs::symlink_metadata(&full).expect("lstat");
            if meta.is_dir() {
                for e in std::fs::read_dir(&full).expect("read_dir") {
                    let name = e.expect("entry").file_name();
                    if rel.as_os_str().is_empty() && name == ".deltasync" {
                        continue;
                    }
                    stack.push(rel.join(name));
                }
            }
            out.push((rel, meta));
        }
        out.sort_by(|x, y| x.0.cmp(&y.0));
        out
    };
    let (la, lb) = (list(a), list(b));
    let names =
        |l: &[(PathBuf, std::fs::Metadata)]| l.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&la),
        names(&lb),
        "different entries in {} and {}",
        a.display(),
        b.display()
    );
    for ((p, ma), (_, mb)) in la.iter().zip(&lb) {
        assert_eq!(
            ma.file_type().is_dir(),
            mb.file_type().is_dir(),
            "{}: kind",
            p.display()
        );
        assert_eq!(
            ma.file_type().is_symlink(),
            mb.file_type().is_symlink(),
            "{}: kind",
            p.display()
        );
        if ma.file_type().is_symlink() {
            assert_eq!(
                std::fs::read_link(a.join(p)).ok(),
                std::fs::read_link(b.join(p)).ok(),
                "{}: link target",
                p.display()
            );
        } else {
            assert_eq!(
                ma.mode() & 0o7777,
                mb.mode() & 0o7777,
                "{}: mode",
                p.display()
            );
        }
        if ma.is_file() {
            assert!(
                read(&a.join(p)) == read(&b.join(p)),
                "{}: contents differ",
                p.display()
            );
        }
        if !p.as_os_str().is_empty() && (dir_mtimes || !ma.is_dir()) {
            assert_eq!(
                (ma.mtime(), ma.mtime_nsec()),
                (mb.mtime(), mb.mtime_nsec()),
                "{}: mtime",
                p.display()
            );
        }
    }
}
