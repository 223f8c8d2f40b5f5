//! The sequential scanner: librsync's delta loop, decision for decision.
//!
//! At each offset `p` of the new file the scanner asks whether the window
//! starting at `p` matches a basis block. While more than a block remains
//! the window is one block long; in the last block ("flush") it runs to the
//! end of the file and shrinks by one byte per miss. A match jumps the whole
//! window, a miss one byte. Because the weak sum is a pure function of the
//! window, the decision at `p` depends on `p` alone, not on how we got
//! there; `parallel.rs` builds on that.

use std::io::{self, Read, Write};

use super::emit::Emitter;
use super::roll;
use crate::index::{Candidate, IndexedSignature};
use crate::weak::Rolling;

/// New-file bytes read per refill.
pub(crate) const READ_CHUNK: usize = 1 << 20;

/// Scans all of `input` against `index`, feeding `emitter`. Returns the
/// number of bytes read.
pub(crate) fn scan<R: Rolling, W: Write>(
    index: &IndexedSignature,
    input: &mut impl Read,
    emitter: &mut Emitter<W>,
) -> io::Result<u64> {
    let b = index.signature().block_len() as usize;
    let mut buf: Vec<u8> = Vec::with_capacity(b + 1 + READ_CHUNK);
    let mut eof = false;
    let mut consumed = 0u64;
    let mut pos = 0usize;
    let mut miss_from = 0usize;
    let mut weak: Option<R> = None;

    // The scan phase: a full block plus one byte is in view.
    loop {
        if buf.len() - pos <= b {
            if eof {
                break;
            }
            emitter.miss(&buf[miss_from..pos])?;
            consumed += pos as u64;
            buf.drain(..pos);
            pos = 0;
            miss_from = 0;
            eof = fill(input, &mut buf, b + 1 + READ_CHUNK)?;
            continue;
        }
        let end = buf.len();
        while pos + b < end {
            let w = weak.get_or_insert_with(|| R::of(&buf[pos..pos + b]));
            pos = roll(index, &buf, b, w, pos, end - b);
            if pos + b >= end {
                break;
            }
            let mut cand = Candidate::new(&buf[pos..pos + b]);
            if let Some(block) = index.find(w.digest(), &mut cand) {
                emitter.miss(&buf[miss_from..pos])?;
                emitter.matched(u64::from(block) * b as u64, b as u64)?;
                pos += b;
                miss_from = pos;
                weak = None;
                continue;
            }
            w.rotate(buf[pos], buf[pos + b]);
            pos += 1;
        }
    }

    // The flush phase: the window runs to the end of the file.
    while pos < buf.len() {
        let len = buf.len() - pos;
        let w = weak.get_or_insert_with(|| R::of(&buf[pos..]));
        let mut cand = Candidate::new(&buf[pos..]);
        if let Some(block) = index.find(w.digest(), &mut cand) {
            emitter.miss(&buf[miss_from..pos])?;
            emitter.matched(u64::from(block) * b as u64, len as u64)?;
            pos += len;
            miss_from = pos;
            weak = None;
        } else {
            w.rollout(buf[pos]);
            pos += 1;
        }
    }
    emitter.miss(&buf[miss_from..pos])?;
    Ok(consumed + pos as u64)
}

/// rdiff's "slack" delta, used when the signature has no blocks: one literal
/// command per block-sized read, exactly as rdiff's buffering yields them.
pub(crate) fn slack<W: Write>(
    block_len: usize,
    input: &mut impl Read,
    emitter: &mut Emitter<W>,
) -> io::Result<u64> {
    // block_len is bounded by `Limits::max_block_len` wherever it came from a peer.
    let mut buf = vec![0u8; block_len];
    let mut total = 0u64;
    loop {
        let n = crate::io_util::read_full(input, &mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
        emitter.literal_command(&buf[..n])?;
        if n < buf.len() {
            return Ok(total);
        }
    }
}

/// Reads until `buf` holds `want` bytes or the input ends; true at the end.
pub(crate) fn fill(input: &mut impl Read, buf: &mut Vec<u8>, want: usize) -> io::Result<bool> {
    let start = buf.len();
    if start >= want {
        return Ok(false);
    }
    buf.resize(want, 0);
    let n = crate::io_util::read_full(input, &mut buf[start..])?;
    buf.truncate(start + n);
    Ok(buf.len() < want)
}
