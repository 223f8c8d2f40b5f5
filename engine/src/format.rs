//! Signature formats: which weak sum and which strong hash a signature uses,
//! and the magic numbers that name them on disk.

use crate::error::SignatureError;

/// The delta file magic, `rs\x026`, shared by every signature format.
pub const DELTA_MAGIC: u32 = 0x7273_0236;

/// The rolling (weak) checksum of a format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WeakKind {
    /// librsync's Adler-style rollsum (rsync's classic checksum).
    Rollsum,
    /// librsync's polynomial RabinKarp hash; far better spread than rollsum.
    RabinKarp,
}

/// The strong hash of a format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StrongKind {
    /// MD4, 16 bytes. Old and weak, kept for compatibility.
    Md4,
    /// BLAKE2b with a 32-byte digest, as librsync computes it.
    Blake2,
    /// BLAKE3, 32 bytes. deltasync's own wire flavour only.
    Blake3,
}

impl StrongKind {
    /// The full digest length; a signature may keep fewer bytes.
    pub const fn max_len(self) -> u32 {
        match self {
            StrongKind::Md4 => 16,
            StrongKind::Blake2 | StrongKind::Blake3 => 32,
        }
    }
}

/// A signature format: the four librsync formats plus deltasync's native one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SigFormat {
    /// MD4 + rollsum, magic `0x72730136` (librsync 1.x and fast_rsync).
    Md4Rollsum,
    /// BLAKE2 + rollsum, magic `0x72730137`.
    Blake2Rollsum,
    /// MD4 + RabinKarp, magic `0x72730146`.
    Md4RabinKarp,
    /// BLAKE2 + RabinKarp, magic `0x72730147`: rdiff 2.3's default.
    Blake2RabinKarp,
    /// deltasync's wire flavour: RabinKarp + truncated BLAKE3, magic `0x44534233` ("DSB3").
    /// Never written by rdiff and never accepted by it.
    Blake3RabinKarp,
}

impl SigFormat {
    /// Every format, librsync's first.
    pub const ALL: [SigFormat; 5] = [
        SigFormat::Md4Rollsum,
        SigFormat::Blake2Rollsum,
        SigFormat::Md4RabinKarp,
        SigFormat::Blake2RabinKarp,
        SigFormat::Blake3RabinKarp,
    ];

    /// The four-byte magic that opens a signature of this format.
    pub const fn magic(self) -> u32 {
        match self {
            SigFormat::Md4Rollsum => 0x7273_0136,
            SigFormat::Blake2Rollsum => 0x7273_0137,
            SigFormat::Md4RabinKarp => 0x7273_0146,
            SigFormat::Blake2RabinKarp => 0x7273_0147,
            SigFormat::Blake3RabinKarp => 0x4453_4233,
        }
    }

    /// The format a magic names.
    pub fn from_magic(magic: u32) -> Result<SigFormat, SignatureError> {
        SigFormat::ALL
            .into_iter()
            .find(|f| f.magic() == magic)
            .ok_or(SignatureError::BadMagic { found: magic })
    }

    /// Builds a format from its two halves. BLAKE3 pairs only with RabinKarp.
    pub fn from_parts(weak: WeakKind, strong: StrongKind) -> Option<SigFormat> {
        match (weak, strong) {
            (WeakKind::Rollsum, StrongKind::Md4) => Some(SigFormat::Md4Rollsum),
            (WeakKind::Rollsum, StrongKind::Blake2) => Some(SigFormat::Blake2Rollsum),
            (WeakKind::RabinKarp, StrongKind::Md4) => Some(SigFormat::Md4RabinKarp),
            (WeakKind::RabinKarp, StrongKind::Blake2) => Some(SigFormat::Blake2RabinKarp),
            (WeakKind::RabinKarp, StrongKind::Blake3) => Some(SigFormat::Blake3RabinKarp),
            (WeakKind::Rollsum, StrongKind::Blake3) => None,
        }
    }

    /// The weak sum half.
    pub const fn weak(self) -> WeakKind {
        match self {
            SigFormat::Md4Rollsum | SigFormat::Blake2Rollsum => WeakKind::Rollsum,
            _ => WeakKind::RabinKarp,
        }
    }

    /// The strong hash half.
    pub const fn strong(self) -> StrongKind {
        match self {
            SigFormat::Md4Rollsum | SigFormat::Md4RabinKarp => StrongKind::Md4,
            SigFormat::Blake2Rollsum | SigFormat::Blake2RabinKarp => StrongKind::Blake2,
            SigFormat::Blake3RabinKarp => StrongKind::Blake3,
        }
    }

    /// True for the formats that rdiff reads and writes.
    pub const fn is_librsync(self) -> bool {
        !matches!(self, SigFormat::Blake3RabinKarp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_round_trips() {
        for f in SigFormat::ALL {
            assert_eq!(SigFormat::from_magic(f.magic()).ok(), Some(f));
            assert_eq!(SigFormat::from_parts(f.weak(), f.strong()), Some(f));
        }
        assert!(SigFormat::from_magic(DELTA_MAGIC).is_err());
    }
}
