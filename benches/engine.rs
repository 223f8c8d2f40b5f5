//! Engine benchmarks: in-process throughput, and the CLI's wall time beside
//! Debian's rdiff on the same files, on this machine, in the same run.
//!
//!     cargo bench --bench engine            # 256 MiB cases (about two minutes)
//!     cargo bench --bench engine -- --big   # also 4 GiB delta/patch peak RSS
//!
//! Every figure is the median of several runs. Results go to stdout as the
//! Markdown tables kept in docs/benchmarks.md.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use deltasync_driver::engine::{
    DeltaOptions, IndexedSignature, Limits, SigFormat, Signature, SignatureParams, apply_delta,
    write_delta,
};

const MIB: usize = 1 << 20;
const RUNS: usize = 5;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --all-targets` runs this binary too; only `cargo bench` should do work.
        println!("engine benchmark: run it with `cargo bench --bench engine`");
        return;
    }
    let big = args.iter().any(|a| a == "--big");
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!("## Engine benchmarks\n");
    println!("Machine: {} cores, {}.\n", threads, cpu_name());
    in_process();
    against_rdiff();
    if big {
        big_files();
    }
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// Median wall time of `f` over `RUNS` runs.
fn median(mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[RUNS / 2]
}

fn gbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e9
}

/// Pseudo-random bytes, fast enough for GiB-sized files.
fn random_fill(seed: u64, buf: &mut [u8]) {
    let mut x = seed | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

/// A near-identical copy: 16-byte edits every ~4 MiB and an insertion.
fn near_identical(basis: &[u8]) -> Vec<u8> {
    let mut new = basis.to_vec();
    for i in (0..new.len()).step_by(4 * MIB + 12_345) {
        let end = (i + 16).min(new.len());
        new[i..end].fill(0xee);
    }
    let mid = new.len() / 2;
    new.splice(
        mid..mid,
        b"an insertion that shifts everything after it"
            .iter()
            .copied(),
    );
    new
}

fn in_process() {
    let len = 256 * MIB;
    let mut basis = vec![0u8; len];
    random_fill(1, &mut basis);
    let new = near_identical(&basis);
    let all = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);

    println!("### In-process throughput (256 MiB in memory, GB/s, median of {RUNS})\n");
    println!("| operation | 1 thread | all cores |");
    println!("|---|---|---|");
    let md4 = SignatureParams::rdiff(SigFormat::Md4Rollsum, Some(len as u64), None, None)
        .expect("params");
    let blake2 = SignatureParams::rdiff(SigFormat::Blake2RabinKarp, Some(len as u64), None, None)
        .expect("params");
    let native = SignatureParams::native(len as u64);
    for (name, params) in [
        ("signature, MD4 + rollsum (rdiff -H md4 -R rollsum)", md4),
        ("signature, BLAKE2 + RabinKarp (rdiff default)", blake2),
        ("signature, native BLAKE3 + RabinKarp", native),
    ] {
        let one = median(|| drop(Signature::generate_on(&basis, params, 1)));
        let many = median(|| drop(Signature::generate_on(&basis, params, all)));
        println!(
            "| {name}, block {} | {:.2} | {:.2} |",
            params.block_len,
            gbps(len, one),
            gbps(len, many)
        );
    }
    let fr_opts = fast_rsync::SignatureOptions {
        block_size: md4.block_len,
        crypto_hash_size: 16,
    };
    let fr = median(|| drop(fast_rsync::Signature::calculate(&basis, fr_opts)));
    println!(
        "| reference: fast_rsync::Signature::calculate (MD4), block {} | {:.2} | n/a |",
        md4.block_len,
        gbps(len, fr)
    );

    for (name, params) in [("rdiff default format", blake2), ("native format", native)] {
        let index = IndexedSignature::new(Signature::generate(&basis, params));
        let run = |threads: usize| {
            median(|| {
                let options = DeltaOptions {
                    threads,
                    ..DeltaOptions::default()
                };
                write_delta(&index, &new[..], std::io::sink(), &options).expect("delta");
            })
        };
        let (one, many) = (run(1), run(all));
        println!(
            "| delta of a near-identical file, {name} | {:.2} | {:.2} |",
            gbps(new.len(), one),
            gbps(new.len(), many)
        );
    }
    let fr_sig = fast_rsync::Signature::calculate(&basis, fr_opts);
    let fr_index = fr_sig.index();
    let fr_delta = median(|| {
        let mut out = Vec::new();
        fast_rsync::diff(&fr_index, &new, &mut out).expect("fast_rsync diff");
    });
    println!(
        "| reference: fast_rsync::diff (MD4) | {:.2} | n/a |",
        gbps(new.len(), fr_delta)
    );

    let index = IndexedSignature::new(Signature::generate(&basis, blake2));
    let mut d = Vec::new();
    write_delta(&index, &new[..], &mut d, &DeltaOptions::default()).expect("delta");
    let mut out = Vec::with_capacity(new.len());
    let p = median(|| {
        out.clear();
        apply_delta(&basis[..], &d[..], &mut out, &Limits::default()).expect("patch");
    });
    println!("| patch in memory | {:.2} | n/a |\n", gbps(new.len(), p));
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ours() -> Command {
    Command::new(env!("CARGO_BIN_EXE_deltasync"))
}

/// Median wall time of the command `make` builds. Outputs are removed
/// before each (untimed) run, so neither tool pays to free an old file.
fn timed(mut make: impl FnMut() -> Command) -> Duration {
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let mut cmd = make();
            if let Some(out) = cmd.get_args().last() {
                let _ = std::fs::remove_file(out);
            }
            let t = Instant::now();
            run_ok(&mut cmd);
            t.elapsed()
        })
        .collect();
    times.sort();
    times[RUNS / 2]
}

fn against_rdiff() {
    if Command::new("rdiff").arg("--version").output().is_err() {
        println!("(rdiff is not installed: skipping the side-by-side table)\n");
        return;
    }
    let dir = tempfile::tempdir_in(std::env::var_os("BENCH_DIR").unwrap_or_else(|| ".".into()))
        .expect("temp dir");
    let d = dir.path();
    let len = 256 * MIB;
    let mut basis = vec![0u8; len];
    random_fill(2, &mut basis);
    let new = near_identical(&basis);
    let (old_p, new_p) = (d.join("old"), d.join("new"));
    std::fs::write(&old_p, &basis).expect("write");
    std::fs::write(&new_p, &new).expect("write");
    drop((basis, new));
    let p = |name: &str| d.join(name);

    println!(
        "### CLI beside rdiff 2.3.2 (256 MiB files, page cache warm, wall seconds, median of {RUNS})\n"
    );
    println!("| command | rdiff | deltasync | ratio | target |");
    println!("|---|---|---|---|---|");
    let row = |name: &str, theirs: Duration, us: Duration, target: &str| {
        println!(
            "| {name} | {:.3} | {:.3} | {:.2}× | {target} |",
            theirs.as_secs_f64(),
            us.as_secs_f64(),
            us.as_secs_f64() / theirs.as_secs_f64()
        );
    };
    let rdiff = || Command::new("rdiff");
    for (name, extra) in [
        ("signature (BLAKE2 + RabinKarp)", &[][..]),
        (
            "signature (MD4 + rollsum)",
            &["-H", "md4", "-R", "rollsum"][..],
        ),
    ] {
        // rdiff takes options before the command, deltasync after it.
        let theirs = timed(|| {
            let mut c = rdiff();
            c.args(extra)
                .args(["-f", "signature"])
                .arg(&old_p)
                .arg(p("t.sig"));
            c
        });
        let us = timed(|| {
            let mut c = ours();
            c.arg("signature")
                .args(extra)
                .arg("-f")
                .arg(&old_p)
                .arg(p("o.sig"));
            c
        });
        assert_eq!(
            std::fs::read(p("t.sig")).ok(),
            std::fs::read(p("o.sig")).ok(),
            "signatures differ"
        );
        row(name, theirs, us, "≤ 0.25×");
    }
    run_ok(rdiff().args(["-f", "signature"]).arg(&old_p).arg(p("s")));
    let theirs = timed(|| {
        let mut c = rdiff();
        c.args(["-f", "delta"])
            .arg(p("s"))
            .arg(&new_p)
            .arg(p("t.delta"));
        c
    });
    let us = timed(|| {
        let mut c = ours();
        c.args(["delta", "-f"])
            .arg(p("s"))
            .arg(&new_p)
            .arg(p("o.delta"));
        c
    });
    assert_eq!(
        std::fs::read(p("t.delta")).ok(),
        std::fs::read(p("o.delta")).ok(),
        "deltas differ"
    );
    row("delta, near-identical file", theirs, us, "≤ 0.25×");
    let theirs = timed(|| {
        let mut c = rdiff();
        c.args(["-f", "patch"])
            .arg(&old_p)
            .arg(p("t.delta"))
            .arg(p("t.out"));
        c
    });
    for (name, extra) in [
        ("patch (with fsync)", &[][..]),
        ("patch (--no-fsync, as rdiff)", &["--no-fsync"][..]),
    ] {
        let us = timed(|| {
            let mut c = ours();
            c.args(["patch", "-f"])
                .args(extra)
                .arg(&old_p)
                .arg(p("t.delta"))
                .arg(p("o.out"));
            c
        });
        row(name, theirs, us, "≤ 0.5×");
        println!(
            "|   … file-to-file patch rate | | {:.2} GB/s | | ≥ 1 GB/s |",
            gbps(len, us)
        );
    }
    println!();
}

/// Peak RSS of `cmd` in MiB, from GNU time's `-v` report.
fn peak_rss_mib(cmd: &mut Command) -> f64 {
    let out = cmd.output().expect("time -v runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let kb: f64 = err
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse().ok())
        .expect("time -v prints the peak RSS");
    kb / 1024.0
}

fn write_big(path: &Path, seed: u64, len: u64, edit: bool) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut buf = vec![0u8; 64 * MIB];
    let mut written = 0u64;
    let mut chunk = 0u64;
    while written < len {
        random_fill(seed + chunk, &mut buf);
        if edit {
            buf[12_345..12_361].fill(0xee);
        }
        let n = (len - written).min(buf.len() as u64) as usize;
        f.write_all(&buf[..n]).expect("write");
        written += n as u64;
        chunk += 1;
    }
    f.flush().expect("flush");
}

fn big_files() {
    let dir = tempfile::tempdir_in(std::env::var_os("BENCH_DIR").unwrap_or_else(|| ".".into()))
        .expect("temp dir");
    let d = dir.path();
    let len = 4u64 << 30;
    let (old_p, new_p) = (d.join("old"), d.join("new"));
    write_big(&old_p, 10, len, false);
    write_big(&new_p, 10, len, true);
    run_ok(ours().args(["signature"]).arg(&old_p).arg(d.join("sig")));
    let time = || {
        let mut c = Command::new("/usr/bin/time");
        c.arg("-v").arg(env!("CARGO_BIN_EXE_deltasync"));
        c
    };
    let t = Instant::now();
    let delta_rss = peak_rss_mib(
        time()
            .args(["delta"])
            .arg(d.join("sig"))
            .arg(&new_p)
            .arg(d.join("delta")),
    );
    let delta_s = t.elapsed();
    let t = Instant::now();
    let patch_rss = peak_rss_mib(
        time()
            .args(["patch"])
            .arg(&old_p)
            .arg(d.join("delta"))
            .arg(d.join("out")),
    );
    let patch_s = t.elapsed();
    println!("### 4 GiB file, peak RSS (GNU time -v)\n");
    println!("| command | peak RSS | wall | target |");
    println!("|---|---|---|---|");
    println!(
        "| delta | {delta_rss:.1} MiB | {:.1} s | ≤ 128 MiB |",
        delta_s.as_secs_f64()
    );
    println!(
        "| patch | {patch_rss:.1} MiB | {:.1} s | ≤ 128 MiB |\n",
        patch_s.as_secs_f64()
    );
}
