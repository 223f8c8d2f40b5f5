//! Block-size and strong-sum-length policy, and the limits on hostile input.
//!
//! Two policies live here. `rdiff_*` reproduces rdiff 2.3.2's defaults
//! exactly, so `deltasync signature` writes what rdiff writes. `native_*` is
//! deltasync's wire policy: rsync's square-root block size and its
//! "bits of strong sum from file and block size" rule, which keeps
//! signatures small on a thin link. Both are plain functions so later work
//! can tune them without touching the engine.

use crate::error::SignatureError;
use crate::format::SigFormat;

/// rdiff's block length when the basis size is unknown (a pipe).
pub const RDIFF_PIPE_BLOCK_LEN: u32 = 2048;

/// Limits on what a signature or delta may ask of us. Every number read from
/// a file or a peer is checked against these before it is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest block length accepted (the delta scanner buffers a block).
    pub max_block_len: u32,
    /// The most block records a signature may hold.
    pub max_blocks: u64,
    /// The most bytes a patch may write.
    pub max_output: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_block_len: 1 << 26,
            max_blocks: 1 << 26,
            max_output: u64::MAX,
        }
    }
}

/// What a signature is made with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignatureParams {
    /// Weak sum and strong hash.
    pub format: SigFormat,
    /// Bytes per block; the last block of a file may be shorter.
    pub block_len: u32,
    /// Bytes of strong hash kept per block.
    pub strong_len: u32,
}

impl SignatureParams {
    /// rdiff 2.3.2's choice for a basis of `file_len` bytes (`None`: a pipe),
    /// with optional `-b` and `-S` overrides. As in rdiff, a `strong_len` of 0
    /// means the full digest and -1 the recommended minimum.
    pub fn rdiff(
        format: SigFormat,
        file_len: Option<u64>,
        block_len: Option<u32>,
        strong_len: Option<i64>,
    ) -> Result<SignatureParams, SignatureError> {
        let max = format.strong().max_len();
        let block_len = match block_len {
            Some(0) | None => rdiff_block_len(file_len),
            Some(b) => b,
        };
        let strong_len = match strong_len {
            None | Some(0) => i64::from(max),
            Some(-1) if block_len > 0 => i64::from(rdiff_min_strong_len(file_len, block_len)),
            Some(s) => s,
        };
        // rdiff reads -S into a size_t, so -2 becomes a huge length; say so plainly.
        let strong_len =
            u32::try_from(strong_len).map_err(|_| SignatureError::StrongLenTooLong {
                strong_len: strong_len as u64,
                max,
                hash: strong_name(format),
            })?;
        let params = SignatureParams {
            format,
            block_len,
            strong_len,
        };
        params.check(&Limits::default())?;
        Ok(params)
    }

    /// deltasync's wire choice for a basis of `file_len` bytes.
    pub fn native(file_len: u64) -> SignatureParams {
        let block_len = native_block_len(file_len);
        SignatureParams {
            format: SigFormat::Blake3RabinKarp,
            block_len,
            strong_len: native_strong_len(file_len, block_len),
        }
    }

    /// The same blocks with full 32-byte sums: the retry after a whole-file
    /// check failed because a truncated sum collided.
    pub fn with_full_sums(self) -> SignatureParams {
        SignatureParams {
            strong_len: self.format.strong().max_len(),
            ..self
        }
    }

    /// Checks the numbers against the format and `limits`.
    pub fn check(&self, limits: &Limits) -> Result<(), SignatureError> {
        if self.block_len == 0 {
            return Err(SignatureError::BlockLenZero);
        }
        if self.block_len > limits.max_block_len {
            return Err(SignatureError::BlockLenTooLarge {
                block_len: u64::from(self.block_len),
                max: limits.max_block_len,
            });
        }
        if self.strong_len == 0 {
            return Err(SignatureError::StrongLenZero);
        }
        let max = self.format.strong().max_len();
        if self.strong_len > max {
            return Err(SignatureError::StrongLenTooLong {
                strong_len: u64::from(self.strong_len),
                max,
                hash: strong_name(self.format),
            });
        }
        Ok(())
    }

    /// Bytes of one block record: the 4-byte weak sum and the strong sum.
    pub fn record_len(&self) -> usize {
        4 + self.strong_len as usize
    }
}

fn strong_name(format: SigFormat) -> &'static str {
    match format.strong() {
        crate::format::StrongKind::Md4 => "MD4",
        crate::format::StrongKind::Blake2 => "BLAKE2",
        crate::format::StrongKind::Blake3 => "BLAKE3",
    }
}

/// rdiff 2.3.2's default block length: 256 up to 64 KiB, then √len rounded
/// down to a multiple of 128 (BLAKE2b's block); 2048 for a pipe.
pub fn rdiff_block_len(file_len: Option<u64>) -> u32 {
    match file_len {
        None => RDIFF_PIPE_BLOCK_LEN,
        Some(n) if n <= 256 * 256 => 256,
        Some(n) => (n.isqrt() & !127) as u32,
    }
}

/// rdiff 2.3.2's recommended minimum strong-sum length (`-S -1`), below
/// which it warns of collisions: enough bits for a new file up to 16 MiB
/// larger than the basis, 12 bytes when the basis size is unknown.
pub fn rdiff_min_strong_len(file_len: Option<u64>, block_len: u32) -> u32 {
    let Some(len) = file_len else { return 12 };
    let blocks = len / u64::from(block_len.max(1)) + 1;
    let bits = (len + (1 << 24)).ilog2() + blocks.ilog2();
    2 + bits.div_ceil(8)
}

/// deltasync's wire block length: rsync's √len rounded down to a multiple
/// of 8, at least 700 bytes and at most 128 KiB.
pub fn native_block_len(file_len: u64) -> u32 {
    (file_len.isqrt() & !7).clamp(700, 128 * 1024) as u32
}

/// deltasync's wire strong-sum length, rsync's rule: the sums need about
/// `10 + 2·log2(len) − log2(block_len)` bits between them; the 32-bit weak
/// sum supplies 32, and the rest is rounded up to bytes (2 to 32).
pub fn native_strong_len(file_len: u64, block_len: u32) -> u32 {
    let log_len = file_len.max(1).ilog2() as i64;
    let log_block = block_len.max(1).ilog2() as i64;
    let bits = 10 + 2 * log_len - log_block;
    ((bits + 1 - 32 + 7).div_euclid(8)).clamp(2, 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rdiff_block_len_rules() {
        assert_eq!(rdiff_block_len(None), 2048);
        assert_eq!(rdiff_block_len(Some(0)), 256);
        assert_eq!(rdiff_block_len(Some(65_537)), 256);
        assert_eq!(rdiff_block_len(Some(1_000_000)), 896);
        assert_eq!(rdiff_block_len(Some(16 << 20)), 4096);
        assert_eq!(rdiff_block_len(Some(100_000_000)), 9984);
    }

    #[test]
    fn rdiff_warning_threshold() {
        // rdiff: "recommended minimum 7 for old_fsize=200000 with block_len=384".
        assert_eq!(rdiff_min_strong_len(Some(200_000), 384), 7);
        assert_eq!(rdiff_min_strong_len(Some(0), 256), 5);
        assert_eq!(rdiff_min_strong_len(Some(256 << 20), 16384), 8);
        assert_eq!(rdiff_min_strong_len(None, 2048), 12);
    }

    #[test]
    fn native_policy_grows_with_size() {
        assert_eq!(native_block_len(0), 700);
        assert_eq!(native_block_len(256 << 20), 16384);
        assert_eq!(native_block_len(1 << 40), 128 * 1024);
        assert_eq!(native_strong_len(256 << 20, 16384), 3);
        assert_eq!(native_strong_len(1 << 40, 128 * 1024), 6);
        assert!(native_strong_len(10, 700) >= 2);
    }

    #[test]
    fn rdiff_params_validate() {
        let f = SigFormat::Blake2RabinKarp;
        assert_eq!(
            SignatureParams::rdiff(f, Some(200_000), None, None)
                .unwrap()
                .strong_len,
            32
        );
        assert_eq!(
            SignatureParams::rdiff(SigFormat::Md4Rollsum, None, None, Some(0))
                .unwrap()
                .strong_len,
            16
        );
        assert_eq!(
            SignatureParams::rdiff(f, Some(200_000), None, Some(-1))
                .unwrap()
                .strong_len,
            7
        );
        assert!(SignatureParams::rdiff(f, Some(200_000), None, Some(-2)).is_err());
        assert!(matches!(
            SignatureParams::rdiff(f, None, None, Some(33)),
            Err(SignatureError::StrongLenTooLong {
                strong_len: 33,
                max: 32,
                ..
            })
        ));
    }
}
