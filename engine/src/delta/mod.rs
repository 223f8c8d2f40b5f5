//! Deltas: the commands that rebuild a new file from a basis, given only the
//! basis's signature.
//!
//! The output is byte-identical to rdiff 2.3.2's for the same signature and
//! new file. `serial.rs` holds librsync's scan loop and `emit.rs` its
//! command rules; `parallel.rs` runs the same decisions on all cores.

pub(crate) mod emit;
mod parallel;
mod serial;

pub use emit::DeltaStats;

use std::io::{Read, Write};

use crate::error::DeltaError;
use crate::format::WeakKind;
use crate::index::IndexedSignature;
use crate::weak::{RabinKarp, Rolling, Rollsum};
use emit::Emitter;

/// How to compute a delta.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeltaOptions {
    /// Worker threads for scanning; 1 runs librsync's loop as it is. Either
    /// way the bytes are the same.
    pub threads: usize,
    /// Bytes of the new file buffered at a time for the workers to share.
    pub region_len: usize,
    /// The smallest slice of a region worth a worker of its own.
    pub min_segment: usize,
}

impl Default for DeltaOptions {
    fn default() -> Self {
        DeltaOptions {
            threads: crate::workers(),
            region_len: 4 << 20,
            min_segment: 256 << 10,
        }
    }
}

/// The scanners' hot loop: slides `w`'s window (`b` bytes starting at
/// `pos`) one byte at a time until the index may hold its weak sum, or
/// until `end`. Returns the offset it stopped at; the window there has not
/// been looked up when that is `end`. `buf` must hold `end + b` bytes or
/// more (every window rolled through, and its next byte).
#[inline]
pub(crate) fn roll<R: Rolling>(
    index: &IndexedSignature,
    buf: &[u8],
    b: usize,
    w: &mut R,
    pos: usize,
    end: usize,
) -> usize {
    if pos >= end {
        return pos;
    }
    let leaving = &buf[pos..end];
    let entering = &buf[pos + b..end + b];
    for (k, (&out, &inb)) in leaving.iter().zip(entering).enumerate() {
        if index.may_have(w.digest()) {
            return pos + k;
        }
        w.rotate(out, inb);
    }
    end
}

/// Streams the delta of `new` against `sig` into `out`.
pub fn write_delta(
    sig: &IndexedSignature,
    mut new: impl Read + Send,
    out: impl Write,
    options: &DeltaOptions,
) -> Result<DeltaStats, DeltaError> {
    let mut emitter = Emitter::new(out);
    let block_len = sig.signature().block_len() as usize;
    let read = if sig.signature().is_empty() {
        serial::slack(block_len, &mut new, &mut emitter)?
    } else {
        match (sig.signature().format().weak(), options.threads > 1) {
            (WeakKind::Rollsum, false) => serial::scan::<Rollsum, _>(sig, &mut new, &mut emitter)?,
            (WeakKind::RabinKarp, false) => {
                serial::scan::<RabinKarp, _>(sig, &mut new, &mut emitter)?
            }
            (WeakKind::Rollsum, true) => {
                parallel::scan::<Rollsum, _>(sig, &mut new, &mut emitter, options)?
            }
            (WeakKind::RabinKarp, true) => {
                parallel::scan::<RabinKarp, _>(sig, &mut new, &mut emitter, options)?
            }
        }
    };
    emitter.set_new_len(read);
    let (_, stats) = emitter.finish()?;
    Ok(stats)
}

/// The delta of `new` against `sig`, in memory.
///
/// ```
/// use deltasync_engine::{delta, patch, IndexedSignature, SigFormat, Signature, SignatureParams};
/// let old = b"the quick brown fox jumps over the lazy dog".repeat(100);
/// let mut new = old.clone();
/// new[2000..2005].copy_from_slice(b"HELLO");
/// let params = SignatureParams::rdiff(SigFormat::Blake2RabinKarp, Some(old.len() as u64), None, None).unwrap();
/// let sig = IndexedSignature::new(Signature::generate(&old, params));
/// let d = delta(&sig, &new);
/// assert!(d.len() < 1000);
/// assert_eq!(patch(&old, &d).unwrap(), new);
/// ```
pub fn delta(sig: &IndexedSignature, new: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    // Reading a slice and writing a Vec cannot fail.
    let _ = write_delta(sig, new, &mut out, &DeltaOptions::default());
    out
}
