//! The command line, as clap types. Nothing below `main.rs` sees these:
//! each command turns its arguments into a plain driver job.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// deltasync keeps folders in step across slow links.
///
/// Today it speaks rdiff: `signature`, `delta` and `patch` read and write
/// librsync 2.3's formats byte for byte, so deltasync and rdiff can stand in
/// for each other at any step.
#[derive(Debug, Parser)]
#[command(name = "deltasync", version, propagate_version = true)]
#[command(after_help = "Example, a round trip that rdiff could do too:\n  \
    deltasync signature old.bin old.sig\n  \
    deltasync delta old.sig new.bin new.delta\n  \
    deltasync patch old.bin new.delta rebuilt.bin\n\n\
    Exit codes: 0 ok, 1 usage, 11 file I/O, 12 bad signature or delta data.")]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write the signature of BASIS: the checksums a delta is computed against.
    ///
    /// Defaults are rdiff 2.3's: BLAKE2 + RabinKarp; the block size grows as the
    /// square root of the basis (256 bytes up to 64 KiB; 2048 when reading a
    /// pipe, whose size is unknown); full-length strong sums.
    Signature(SignatureArgs),
    /// Write the delta that turns the signature's basis into NEW.
    ///
    /// The output equals rdiff's byte for byte; it is computed on all cores.
    Delta(DeltaArgs),
    /// Apply DELTA to BASIS, writing the new file.
    ///
    /// A named output is written to a temporary file beside it, fsynced and
    /// renamed into place: a failed patch never leaves a partial file.
    /// Every command in the delta is checked before it is applied.
    Patch(PatchArgs),
}

/// Options every rdiff-style command shares.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Overwrite an existing output file.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Print statistics to stderr when done.
    #[arg(short = 's', long = "statistics")]
    pub statistics: bool,
}

/// `deltasync signature`.
#[derive(Debug, Args)]
pub struct SignatureArgs {
    /// Block size in bytes; 0 for the recommended size.
    #[arg(short = 'b', long = "block-size", value_name = "BYTES")]
    pub block_size: Option<u32>,
    /// Strong-sum bytes per block: 0 for the full hash, -1 for rdiff's minimum.
    #[arg(
        short = 'S',
        long = "sum-size",
        value_name = "BYTES",
        allow_negative_numbers = true
    )]
    pub sum_size: Option<i64>,
    /// Strong hash. blake3 is deltasync's own and rdiff cannot read it.
    #[arg(short = 'H', long = "hash", value_enum, default_value_t = HashArg::Blake2)]
    pub hash: HashArg,
    /// Rolling checksum.
    #[arg(short = 'R', long = "rollsum", value_enum, default_value_t = RollArg::Rabinkarp)]
    pub rollsum: RollArg,
    #[command(flatten)]
    pub common: CommonArgs,
    /// The basis file; `-` or omitted reads stdin.
    pub basis: Option<PathBuf>,
    /// Where to write the signature; `-` or omitted writes stdout.
    pub signature: Option<PathBuf>,
}

/// `deltasync delta`.
#[derive(Debug, Args)]
pub struct DeltaArgs {
    /// Scanner threads (default: all cores). The output is the same for any count.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub common: CommonArgs,
    /// The basis's signature; `-` reads stdin.
    pub signature: PathBuf,
    /// The new file; `-` or omitted reads stdin.
    pub new: Option<PathBuf>,
    /// Where to write the delta; `-` or omitted writes stdout.
    pub delta: Option<PathBuf>,
}

/// `deltasync patch`.
#[derive(Debug, Args)]
pub struct PatchArgs {
    /// Skip the fsync before the new file is renamed into place (faster, less safe).
    #[arg(long)]
    pub no_fsync: bool,
    #[command(flatten)]
    pub common: CommonArgs,
    /// The basis file. It must be a regular file: copies seek in it.
    pub basis: PathBuf,
    /// The delta; `-` or omitted reads stdin.
    pub delta: Option<PathBuf>,
    /// Where to write the new file; `-` or omitted writes stdout.
    pub new: Option<PathBuf>,
}

/// `-H`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HashArg {
    /// MD4 (librsync 1.x; weak).
    Md4,
    /// BLAKE2b (rdiff's default).
    Blake2,
    /// BLAKE3 (deltasync's wire flavour; needs rabinkarp).
    Blake3,
}

/// `-R`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RollArg {
    /// librsync's Adler-style rollsum.
    Rollsum,
    /// librsync's RabinKarp (rdiff's default).
    Rabinkarp,
}
