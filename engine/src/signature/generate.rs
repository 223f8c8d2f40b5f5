//! Computing signatures: in memory, and streamed from a reader in bounded
//! chunks so a basis larger than memory costs only a few chunk buffers.
//!
//! Blocks are independent, so each chunk is cut at block boundaries and the
//! pieces are hashed on all cores, while a reader thread fills the next chunk.

use std::io::{Read, Write};

use crossbeam::channel;

use super::header;
use crate::error::SignatureError;
use crate::format::SigFormat;
use crate::io_util::read_full;
use crate::params::{Limits, SignatureParams};
use crate::strong;
use crate::weak::{RabinKarp, Rolling, Rollsum};

/// Bytes read per chunk when streaming (rounded to whole blocks).
const CHUNK: usize = 8 << 20;
/// Below this, one thread is quicker than spreading the work.
const PARALLEL_MIN: usize = 1 << 20;

/// Streams the signature of `basis` to `out`; returns the basis length.
pub fn write_signature(
    basis: impl Read + Send,
    mut out: impl Write,
    params: SignatureParams,
) -> Result<u64, SignatureError> {
    params.check(&Limits::default())?;
    out.write_all(&header(&params))?;
    let block = params.block_len as usize;
    let chunk_len = (CHUNK / block).max(1) * block;
    let mut total = 0u64;
    let mut records = Vec::new();

    std::thread::scope(|scope| -> Result<(), SignatureError> {
        // Full chunks flow to us on `full`; spent buffers go back on `empty`.
        let (full_tx, full_rx) = channel::bounded::<std::io::Result<Vec<u8>>>(1);
        let (empty_tx, empty_rx) = channel::bounded::<Vec<u8>>(2);
        for _ in 0..2 {
            let _ = empty_tx.send(vec![0u8; chunk_len]);
        }
        scope.spawn(move || {
            let mut basis = basis;
            while let Ok(mut buf) = empty_rx.recv() {
                buf.resize(chunk_len, 0);
                let result = read_full(&mut basis, &mut buf).map(|n| {
                    buf.truncate(n);
                    buf
                });
                let done = !matches!(&result, Ok(b) if b.len() == chunk_len);
                if full_tx.send(result).is_err() || done {
                    break;
                }
            }
        });
        for result in full_rx.iter() {
            let buf = result?;
            total += buf.len() as u64;
            records.clear();
            self::records(&buf, &params, &mut records);
            out.write_all(&records)?;
            // The reader may already have stopped; a failed send is harmless.
            let _ = empty_tx.send(buf);
        }
        Ok(())
    })?;
    out.flush()?;
    Ok(total)
}

/// Appends the block records of `data` to `out`, on all cores when it pays.
pub(super) fn records(data: &[u8], params: &SignatureParams, out: &mut Vec<u8>) {
    let block = params.block_len as usize;
    let threads = crate::workers();
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
