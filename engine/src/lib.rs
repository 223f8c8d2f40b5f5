//! deltasync's delta engine: rolling checksums, signatures, deltas and
//! patch, byte-compatible with librsync 2.3 / rdiff.
//!
//! The rsync algorithm in three verbs:
//!
//! 1. **signature** — the side that has the old file (the *basis*) cuts it
//!    into blocks and sends a weak rolling sum and a strong hash of each:
//!    [`Signature::generate`], or [`write_signature`] to stream a file.
//! 2. **delta** — the side with the new file slides a window over it, byte
//!    by byte, looking each window up by weak sum and confirming by strong
//!    hash; it emits copy commands for blocks the basis has and literal
//!    bytes for the rest: [`delta`], or [`write_delta`] to stream.
//! 3. **patch** — the basis side replays the commands: [`patch`],
//!    [`apply_delta`] or [`patch_file`].
//!
//! ```
//! use deltasync_engine::{delta, patch, IndexedSignature, SigFormat, Signature, SignatureParams};
//!
//! let old = vec![42u8; 10_000];
//! let mut new = old.clone();
//! new.extend_from_slice(b"appended");
//! let params = SignatureParams::rdiff(SigFormat::Blake2RabinKarp, Some(old.len() as u64), None, None)?;
//! let sig = IndexedSignature::new(Signature::generate(&old, params));
//! let d = delta(&sig, &new);
//! assert_eq!(patch(&old, &d)?, new);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Formats
//!
//! All four librsync signature formats ([`SigFormat`]) and the delta format
//! `rs\x026` are spoken byte for byte: for the same input and parameters our
//! signatures and deltas equal rdiff 2.3.2's, including its default block
//! and strong-sum lengths ([`SignatureParams::rdiff`]), its choice among
//! identical blocks, its merging of adjacent copies and its 32 KiB literal
//! runs. deltasync's own wire adds a fifth format, RabinKarp + truncated
//! BLAKE3, with rsync's size rules ([`SignatureParams::native`]). Its short
//! sums can collide, so a rebuilt file is confirmed by a whole-file BLAKE3
//! ([`PatchFileOptions::expected_blake3`]) and, on a mismatch, redone with
//! full-length sums ([`SignatureParams::with_full_sums`]).
//!
//! # Big files and many cores
//!
//! Every path streams through bounded buffers, so memory does not grow with
//! file size. Signatures hash blocks on all cores; deltas split the new file
//! among workers and stitch their decisions into exactly the serial result.
//!
//! # Hostile input
//!
//! Signatures and deltas may come from a peer. Every number in them is
//! checked against [`Limits`] before use, and every failure is a typed error
//! ([`SignatureError`], [`PatchError`]) naming the numbers. Nothing here
//! panics, loops or allocates on a number the input merely claims.

#![deny(missing_docs)]

mod command;
mod delta;
mod error;
mod format;
mod index;
mod io_util;
mod params;
mod patch;
pub mod rounds;
mod signature;
mod simd;
mod strong;
mod weak;

pub use delta::{DeltaOptions, DeltaStats, delta, write_delta};
pub use error::{DeltaError, PatchError, SignatureError};
pub use format::{DELTA_MAGIC, SigFormat, StrongKind, WeakKind};
pub use index::IndexedSignature;
pub use params::{
    Limits, RDIFF_PIPE_BLOCK_LEN, SignatureParams, native_block_len, native_strong_len,
    rdiff_block_len, rdiff_min_strong_len,
};
pub use patch::{Basis, FileBasis, PatchFileOptions, PatchStats, apply_delta, patch, patch_file};
pub use signature::{Signature, read_signature, write_signature};

/// Worker threads for the parallel paths: the machine's cores, at most 8.
/// Asked once: the answer reads cgroup files, a cost a small file's delta
/// would pay many times over.
pub(crate) fn workers() -> usize {
    static WORKERS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *WORKERS.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(8)
    })
}
