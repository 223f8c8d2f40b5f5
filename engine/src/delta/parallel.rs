//! The same decisions as `serial.rs`, made on all cores.
//!
//! The decision at offset `p` (match or miss) depends only on `p`, so the
//! trace of visited offsets is a path that any two scanners share from the
//! first offset both visit. We cut each buffered region into segments, let
//! one worker per segment scan from the segment's start, then stitch: the
//! true path enters a segment at some offset `q`; if the worker visited `q`
//! we adopt the worker's path from there, otherwise we step serially until
//! we land on an offset it visited (for ordinary data, within a block).
//! The output is therefore byte-identical to the serial scan, which the
//! tests check. Periodic data can keep the paths apart; then the stitcher
//! does the segment's work itself and we are no slower than serial.
//!
//! Workers also batch: after a match, the next few block-aligned windows
//! are the likely decision points, so when their weak sums all hit the
//! index we hash them together on the SIMD multi-lane paths.

use std::io::{self, Read, Write};

use super::DeltaOptions;
use super::emit::Emitter;
use super::roll;
use crate::index::{Candidate, IndexedSignature};
use crate::io_util::Prefetch;
use crate::strong::{self, Digest};
use crate::weak::Rolling;

/// Windows hashed together after a match.
const BATCH: usize = 16;

/// A scanner's path through one segment: match offsets with their blocks,
/// and the offset where it left the segment.
struct Path {
    start: usize,
    matches: Vec<(usize, u32)>,
    end: usize,
}

impl Path {
    /// True if this path visits offset `q` (`start <= q`): every offset is
    /// visited except those strictly inside a matched window.
    fn visits(&self, q: usize, b: usize) -> bool {
        let i = self.matches.partition_point(|&(m, _)| m <= q);
        i == 0 || {
            let m = self.matches[i - 1].0;
            m == q || m + b <= q
        }
    }
}

/// Scans all of `input` against `index` with `options.threads` workers,
/// while a helper thread reads the next region.
pub(crate) fn scan<R: Rolling, W: Write>(
    index: &IndexedSignature,
    input: &mut (impl Read + Send),
    emitter: &mut Emitter<W>,
    options: &DeltaOptions,
) -> io::Result<u64> {
    let b = index.signature().block_len() as usize;
    // What is left of a region after its scan is at most one block.
    let head = b + 1;
    std::thread::scope(|scope| {
        let ahead = Prefetch::start(scope, input, head, options.region_len.max(1));
        let first = ahead.next()?;
        let mut eof = first.last;
        let mut cur = first.buf;
        let mut start = head; // the region is `cur[start..]`
        let mut consumed = 0u64;
        let mut pos = 0usize; // the true path's offset in the region
        loop {
            let region = &cur[start..];
            // Offsets below `limit` see a full block plus one byte: the scan phase.
            let limit = region.len().saturating_sub(b);
            if pos < limit {
                let (matches, end) = decide_region::<R>(index, region, b, pos, limit, options);
                let mut from = pos;
                for &(m, block) in &matches {
                    emitter.miss(&region[from..m])?;
                    emitter.matched(u64::from(block) * b as u64, b as u64)?;
                    from = m + b;
                }
                emitter.miss(&region[from..end.max(from)])?;
                pos = end;
            }
            if eof {
                break;
            }
            // Carry the unscanned tail in front of the next chunk's data.
            let next = ahead.next()?;
            eof = next.last;
            consumed += pos as u64;
            let tail = &region[pos..];
            let mut buf = next.buf;
            if tail.len() <= head {
                buf[head - tail.len()..head].copy_from_slice(tail);
                start = head - tail.len();
            } else {
                // Only chunks smaller than a block get here (tests use them).
                let mut joined = Vec::with_capacity(tail.len() + buf.len() - head);
                joined.extend_from_slice(tail);
                joined.extend_from_slice(&buf[head..]);
                ahead.recycle(std::mem::replace(&mut buf, joined));
                start = 0;
            }
            ahead.recycle(std::mem::replace(&mut cur, buf));
            pos = 0;
        }
        // The last block is librsync's flush phase: at most `b` offsets, serially.
        let region = &cur[start..];
        let mut weak: Option<R> = None;
        let mut miss_from = pos;
        while pos < region.len() {
            let len = region.len() - pos;
            let w = weak.get_or_insert_with(|| R::of(&region[pos..]));
            if let Some(block) = index.find(w.digest(), &mut Candidate::new(&region[pos..])) {
                emitter.miss(&region[miss_from..pos])?;
                emitter.matched(u64::from(block) * b as u64, len as u64)?;
                pos += len;
                miss_from = pos;
                weak = None;
            } else {
                w.rollout(region[pos]);
                pos += 1;
            }
        }
        emitter.miss(&region[miss_from..pos])?;
        Ok(consumed + pos as u64)
    })
}

/// The true path's matches for offsets in `[start, limit)`, and the offset
/// where it leaves that range.
fn decide_region<R: Rolling>(
    index: &IndexedSignature,
    buf: &[u8],
    b: usize,
    start: usize,
    limit: usize,
    options: &DeltaOptions,
) -> (Vec<(usize, u32)>, usize) {
    let span = limit - start;
    let parts = options
        .threads
        .min(span / options.min_segment.max(1))
        .max(1);
    if parts == 1 {
        let path = walk::<R>(index, buf, b, start, limit);
        return (path.matches, path.end);
    }
    let step = span.div_ceil(parts);
    let bounds: Vec<(usize, usize)> = (0..parts)
        .map(|k| (start + k * step, (start + (k + 1) * step).min(limit)))
        .collect();
    let paths: Vec<Path> = std::thread::scope(|scope| {
        let handles: Vec<_> = bounds[1..]
            .iter()
            .map(|&(s, e)| scope.spawn(move || walk::<R>(index, buf, b, s, e)))
            .collect();
        let mut paths = vec![walk::<R>(index, buf, b, bounds[0].0, bounds[0].1)];
        for h in handles {
            paths.push(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
        paths
    });
    stitch::<R>(index, buf, b, start, &bounds, paths)
}

/// Follows the true path from `start` across the workers' paths.
fn stitch<R: Rolling>(
    index: &IndexedSignature,
    buf: &[u8],
    b: usize,
    start: usize,
    bounds: &[(usize, usize)],
    paths: Vec<Path>,
) -> (Vec<(usize, u32)>, usize) {
    let mut matches = Vec::new();
    let mut q = start;
    for (path, &(_, e)) in paths.into_iter().zip(bounds) {
        let mut weak: Option<R> = None;
        while q < e {
            if q >= path.start && path.visits(q, b) {
                let i = path.matches.partition_point(|&(m, _)| m < q);
                matches.extend_from_slice(&path.matches[i..]);
                q = path.end;
                break;
            }
            // Off the worker's path: one serial decision.
            let w = weak.get_or_insert_with(|| R::of(&buf[q..q + b]));
            if let Some(block) = index.find(w.digest(), &mut Candidate::new(&buf[q..q + b])) {
                matches.push((q, block));
                q += b;
                weak = None;
            } else {
                w.rotate(buf[q], buf[q + b]);
                q += 1;
            }
        }
    }
    (matches, q)
}

/// Scans offsets `[s, e)` of `buf` from `s`, as if the file started there.
/// Windows may read past `e`; the caller guarantees `e + b <= buf.len()`.
fn walk<R: Rolling>(index: &IndexedSignature, buf: &[u8], b: usize, s: usize, e: usize) -> Path {
    let kind = index.signature().format().strong();
    let mut matches = Vec::new();
    let mut p = s;
    let mut weak: Option<R> = None;
    while p < e {
        if weak.is_none() {
            // Just matched (or starting): the next windows are block-aligned.
            let mut sums = [R::of(&[]); BATCH];
            let mut hits = 0;
            while hits < BATCH && p + hits * b < e {
                let at = p + hits * b;
                sums[hits] = R::of(&buf[at..at + b]);
                if !index.may_have(sums[hits].digest()) {
                    break;
                }
                hits += 1;
            }
            if hits >= 2 {
                // Fill the hash's lanes when the buffer allows: the extra
                // windows cost next to nothing and their digests are unused.
                let filled = hits.next_multiple_of(strong::lanes(kind)).min(BATCH);
                let hashed = if p + filled * b <= buf.len() {
                    filled
                } else {
                    hits
                };
                let mut digests = [[0u8; 32]; BATCH];
                strong::hash_blocks(kind, &buf[p..p + hashed * b], b, |i, d: &Digest| {
                    digests[i] = *d;
                });
                for j in 0..hits {
                    let window = &buf[p..p + b];
                    let mut cand = Candidate::with_digest(window, digests[j]);
                    match index.find(sums[j].digest(), &mut cand) {
                        Some(block) => {
                            matches.push((p, block));
                            p += b;
                        }
                        None => {
                            let mut w = sums[j];
                            w.rotate(buf[p], buf[p + b]);
                            weak = Some(w);
                            p += 1;
                            break;
                        }
                    }
                }
                continue;
            }
            weak = Some(sums[0]);
        }
        let Some(w) = weak.as_mut() else { continue };
        p = roll(index, buf, b, w, p, e);
        if p >= e {
            break;
        }
        if let Some(block) = index.find(w.digest(), &mut Candidate::new(&buf[p..p + b])) {
            matches.push((p, block));
            p += b;
            weak = None;
            continue;
        }
        w.rotate(buf[p], buf[p + b]);
        p += 1;
    }
    Path {
        start: s,
        matches,
        end: p,
    }
}
