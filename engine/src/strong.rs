//! Strong hashes of blocks: MD4 (through fast_rsync's multi-lane code),
//! BLAKE2b-256 (through blake2b_simd, four lanes at a time) and BLAKE3.
//!
//! Every function returns the full digest in a 32-byte array; callers keep
//! the first `strong_len` bytes, as librsync does.

use crate::format::StrongKind;

/// A full-length digest, zero-padded for MD4.
pub(crate) type Digest = [u8; 32];

/// The strong hash of one block.
pub(crate) fn hash_one(kind: StrongKind, data: &[u8]) -> Digest {
    let mut out = [0u8; 32];
    match kind {
        StrongKind::Md4 => out[..16].copy_from_slice(&md4_blocks(data, data.len().max(1))[0]),
        StrongKind::Blake2 => out.copy_from_slice(blake2(data).as_bytes()),
        StrongKind::Blake3 => out.copy_from_slice(blake3::hash(data).as_bytes()),
    }
    out
}

/// How many blocks [`hash_blocks`] hashes at once for `kind`: a batch of
/// that many costs about what one block alone costs, so a caller with a
/// few windows to hash may as well fill the lanes.
pub(crate) fn lanes(kind: StrongKind) -> usize {
    match kind {
        StrongKind::Md4 => 8,
        StrongKind::Blake2 => blake2b_simd::many::MAX_DEGREE,
        StrongKind::Blake3 => 1,
    }
}

/// Hashes `data` cut into `block_len` pieces (the last may be short) and
/// calls `sink(index, digest)` for each, in order. This is the signature's
/// hot loop, so each hash uses its widest path.
pub(crate) fn hash_blocks(
    kind: StrongKind,
    data: &[u8],
    block_len: usize,
    mut sink: impl FnMut(usize, &Digest),
) {
    match kind {
        StrongKind::Md4 => {
            for (i, d) in md4_blocks(data, block_len).into_iter().enumerate() {
                let mut out = [0u8; 32];
                out[..16].copy_from_slice(&d);
                sink(i, &out);
            }
        }
        StrongKind::Blake2 => {
            let params = blake2_params();
            let mut index = 0;
            // Four lanes of AVX2 per round; blake2b_simd picks the widest path.
            for group in data.chunks(block_len * blake2b_simd::many::MAX_DEGREE) {
                let mut jobs: Vec<blake2b_simd::many::HashManyJob<'_>> = group
                    .chunks(block_len)
                    .map(|b| blake2b_simd::many::HashManyJob::new(&params, b))
                    .collect();
                blake2b_simd::many::hash_many(jobs.iter_mut());
                for job in &jobs {
                    let mut out = [0u8; 32];
                    out.copy_from_slice(job.to_hash().as_bytes());
                    sink(index, &out);
                    index += 1;
                }
            }
        }
        StrongKind::Blake3 => {
            for (i, b) in data.chunks(block_len).enumerate() {
                sink(i, blake3::hash(b).as_bytes());
            }
        }
    }
}

fn blake2_params() -> blake2b_simd::Params {
    let mut p = blake2b_simd::Params::new();
    p.hash_length(32);
    p
}

fn blake2(data: &[u8]) -> blake2b_simd::Hash {
    blake2_params().hash(data)
}

/// MD4 of each `block_len` piece of `data`, through fast_rsync's signature
/// code (its MD4 is private; a full-length MD4 signature carries it).
fn md4_blocks(data: &[u8], block_len: usize) -> Vec<[u8; 16]> {
    let options = fast_rsync::SignatureOptions {
        block_size: block_len as u32,
        crypto_hash_size: 16,
    };
    let sig = fast_rsync::Signature::calculate(data, options);
    let records = &sig.serialized()[12..];
    records
        .chunks_exact(20)
        .map(|r| {
            let mut d = [0u8; 16];
            d.copy_from_slice(&r[4..]);
            d
        })
        .collect()
}

/// MD4 + rollsum records exactly as fast_rsync writes them: `weak(4) strong(n)`
/// per block. Used for the `0x72730136` format, where fast_rsync's SIMD path
/// is fastest and already byte-compatible with librsync.
pub(crate) fn md4_rollsum_records(data: &[u8], block_len: usize, strong_len: usize) -> Vec<u8> {
    let options = fast_rsync::SignatureOptions {
        block_size: block_len as u32,
        crypto_hash_size: strong_len as u32,
    };
    let mut sig = fast_rsync::Signature::calculate(data, options).into_serialized();
    sig.drain(..12);
    sig
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md4_known_answer() {
        // RFC 1320 test vector: MD4("abc").
        let d = hash_one(StrongKind::Md4, b"abc");
        assert_eq!(
            &d[..16],
            &[
                0xa4, 0x48, 0x01, 0x7a, 0xaf, 0x21, 0xd8, 0x52, 0x5f, 0xc1, 0x0a, 0xe8, 0x7a, 0xa6,
                0x72, 0x9d
            ]
        );
    }

    #[test]
    fn many_equals_one() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 253) as u8).collect();
        for kind in [StrongKind::Md4, StrongKind::Blake2, StrongKind::Blake3] {
            let mut seen = 0;
            hash_blocks(kind, &data, 777, |i, d| {
                let lo = i * 777;
                let hi = (lo + 777).min(data.len());
                assert_eq!(*d, hash_one(kind, &data[lo..hi]), "{kind:?} block {i}");
                seen += 1;
            });
            assert_eq!(seen, data.len().div_ceil(777));
        }
    }
}
