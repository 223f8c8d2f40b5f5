//! Computing signatures: in memory, and streamed from a reader in bounded
//! chunks so a basis larger than memory costs only a few chunk buffers.
//!
//! Blocks are independent, so chunks (whole blocks each) are hashed on all
//! cores at once, and in memory a buffer is cut at block boundaries.

use std::io::{Read, Write};
use std::sync::Mutex;

use super::header;
use crate::error::SignatureError;
use crate::format::SigFormat;
use crate::io_util::read_full;
use crate::params::{Limits, SignatureParams};
use crate::strong;
use crate::weak::{RabinKarp, Rolling, Rollsum};

/// Bytes read per chunk when streaming (rounded to whole blocks).
const CHUNK: usize = 1 << 20;
/// Below this, one thread is quicker than spreading the work.
const PARALLEL_MIN: usize = 1 << 20;

/// Streams the signature of `basis` to `out`; returns the basis length.
///
/// Each worker thread takes the reader in turn, reads the next chunk, lets
/// go, and hashes the chunk while another worker reads. The caller's thread
/// writes the finished records in chunk order. There is no barrier between
/// chunks, so reading and hashing overlap on every core.
pub fn write_signature(
    basis: impl Read + Send,
    mut out: impl Write,
    params: SignatureParams,
) -> Result<u64, SignatureError> {
    params.check(&Limits::default())?;
    out.write_all(&header(&params))?;
    let block = params.block_len as usize;
    let chunk_len = (CHUNK / block).max(1) * block;
    let threads = crate::workers();
    // (next chunk index, end of stream seen, the reader)
    let shared = Mutex::new((0usize, false, basis));
    let (done_tx, done_rx) =
        std::sync::mpsc::sync_channel::<(usize, std::io::Result<(u64, Vec<u8>)>)>(threads);

    std::thread::scope(|scope| -> Result<u64, SignatureError> {
        for _ in 0..threads {
            let done_tx = done_tx.clone();
            let shared = &shared;
            scope.spawn(move || {
                let mut buf = vec![0u8; chunk_len];
                loop {
                    let (index, read) = {
                        let mut guard = match shared.lock() {
                            Ok(g) => g,
                            Err(_) => return, // another worker panicked; the scope reports it
                        };
                        let (next, ended, reader) = &mut *guard;
                        if *ended {
                            return;
                        }
                        let read = read_full(reader, &mut buf);
                        if !matches!(read, Ok(n) if n == chunk_len) {
                            *ended = true;
                        }
                        *next += 1;
                        (*next - 1, read)
                    };
                    let result = read.map(|n| {
                        let mut records = Vec::new();
                        records_serial(&buf[..n], &params, &mut records);
                        (n as u64, records)
                    });
                    if done_tx.send((index, result)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        // Chunks finish out of order; write them in order.
        let mut pending = std::collections::BTreeMap::new();
        let mut next = 0usize;
        let mut total = 0u64;
        for (index, result) in done_rx.iter() {
            pending.insert(index, result?);
            while let Some((n, records)) = pending.remove(&next) {
                out.write_all(&records)?;
                total += n;
                next += 1;
            }
        }
        Ok(total)
    })
    .and_then(|total| {
        out.flush()?;
        Ok(total)
    })
}

/// Appends the block records of `data` to `out`, on all cores when it pays.
pub(super) fn records(data: &[u8], params: &SignatureParams, threads: usize, out: &mut Vec<u8>) {
    let block = params.block_len as usize;
    if data.len() < PARALLEL_MIN || threads < 2 {
        return records_serial(data, params, out);
    }
    let blocks_per_part = data.len().div_ceil(block).div_ceil(threads);
    let parts: Vec<&[u8]> = data.chunks(blocks_per_part * block).collect();
    let outputs: Vec<Vec<u8>> = std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .iter()
            .map(|part| {
                scope.spawn(move || {
                    let mut v = Vec::new();
                    records_serial(part, params, &mut v);
                    v
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    for v in outputs {
        out.extend_from_slice(&v);
    }
}

fn records_serial(data: &[u8], params: &SignatureParams, out: &mut Vec<u8>) {
    let block = params.block_len as usize;
    let strong_len = params.strong_len as usize;
    let record_len = params.record_len();
    let start = out.len();
    match params.format {
        // fast_rsync's multi-lane MD4 writes these records byte for byte.
        SigFormat::Md4Rollsum => {
            out.extend_from_slice(&strong::md4_rollsum_records(data, block, strong_len));
            return;
        }
        SigFormat::Md4RabinKarp => {
            out.extend_from_slice(&strong::md4_rollsum_records(data, block, strong_len));
        }
        _ => {
            out.resize(start + data.len().div_ceil(block) * record_len, 0);
            strong::hash_blocks(params.format.strong(), data, block, |i, digest| {
                let at = start + i * record_len + 4;
                out[at..at + strong_len].copy_from_slice(&digest[..strong_len]);
            });
        }
    }
    let records = &mut out[start..];
    for (rec, blk) in records.chunks_exact_mut(record_len).zip(data.chunks(block)) {
        let weak = match params.format.weak() {
            crate::format::WeakKind::Rollsum => Rollsum::of(blk).digest(),
            crate::format::WeakKind::RabinKarp => RabinKarp::of(blk).digest(),
        };
        rec[..4].copy_from_slice(&weak.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::Signature;

    #[test]
    fn streamed_equals_in_memory() {
        let data: Vec<u8> = (0..(3 * CHUNK + 12345))
            .map(|i| (i * 13 % 251) as u8)
            .collect();
        for format in SigFormat::ALL {
            let params = SignatureParams {
                format,
                block_len: 4000,
                strong_len: 8,
            };
            let mut streamed = Vec::new();
            let n = write_signature(&data[..], &mut streamed, params).unwrap();
            assert_eq!(n, data.len() as u64);
            assert_eq!(
                streamed,
                Signature::generate(&data, params).to_bytes(),
                "{format:?}"
            );
        }
    }
}
