//! `signature`, `delta` and `patch`: clap arguments in, driver jobs out.

use anyhow::Result;
use deltasync_driver::DriverError;
use deltasync_driver::engine::{SigFormat, StrongKind, WeakKind};
use deltasync_driver::rdiff::{self, Input, Output};

use crate::cli::{DeltaArgs, HashArg, PatchArgs, RollArg, SignatureArgs};

pub fn signature(args: &SignatureArgs) -> Result<()> {
    let strong = match args.hash {
        HashArg::Md4 => StrongKind::Md4,
        HashArg::Blake2 => StrongKind::Blake2,
        HashArg::Blake3 => StrongKind::Blake3,
    };
    let weak = match args.rollsum {
        RollArg::Rollsum => WeakKind::Rollsum,
        RollArg::Rabinkarp => WeakKind::RabinKarp,
    };
    let format = SigFormat::from_parts(weak, strong)
        .ok_or_else(|| DriverError::Usage("-H blake3 needs -R rabinkarp".into()))?;
    let job = rdiff::SignatureJob {
        basis: Input::from_arg(args.basis.as_deref()),
        output: Output::from_arg(args.signature.as_deref()),
        format,
        block_len: args.block_size,
        strong_len: args.sum_size,
        force: args.common.force,
    };
    let report = rdiff::signature(&job)?;
    for w in &report.warnings {
        eprintln!("deltasync: warning: {w}");
    }
    if args.common.statistics {
        eprintln!(
            "deltasync: signature statistics: {} bytes in {} blocks of {} ({:?}, {}-byte sums)",
            report.basis_len,
            report
                .basis_len
                .div_ceil(u64::from(report.params.block_len)),
            report.params.block_len,
            report.params.format,
            report.params.strong_len
        );
    }
    Ok(())
}

pub fn delta(args: &DeltaArgs) -> Result<()> {
    let job = rdiff::DeltaJob {
        signature: Input::from_arg(Some(&args.signature)),
        new: Input::from_arg(args.new.as_deref()),
        output: Output::from_arg(args.delta.as_deref()),
        force: args.common.force,
        threads: args.threads.unwrap_or_else(default_threads),
    };
    let stats = rdiff::delta(&job)?;
    if args.common.statistics {
        eprintln!(
            "deltasync: delta statistics: literal[{} cmds, {} bytes] copy[{} cmds, {} bytes] new {} bytes, delta {} bytes",
            stats.literal_cmds,
            stats.literal_bytes,
            stats.copy_cmds,
            stats.copy_bytes,
            stats.new_len,
            stats.delta_len
        );
    }
    Ok(())
}

pub fn patch(args: &PatchArgs) -> Result<()> {
    let job = rdiff::PatchJob {
        basis: args.basis.clone(),
        delta: Input::from_arg(args.delta.as_deref()),
        output: Output::from_arg(args.new.as_deref()),
        force: args.common.force,
        fsync: !args.no_fsync,
    };
    let stats = rdiff::patch(&job)?;
    if args.common.statistics {
        eprintln!(
            "deltasync: patch statistics: literal {} bytes, copy {} bytes, wrote {} bytes from a {}-byte delta",
            stats.literal_bytes, stats.copy_bytes, stats.written, stats.delta_len
        );
    }
    Ok(())
}

fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8)
}
