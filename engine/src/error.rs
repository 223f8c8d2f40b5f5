//! The engine's typed errors.
//!
//! Policy: every check on bytes that came from a file or a peer fails with a
//! variant that names the offending numbers, so the message alone tells a user
//! (or a bug report) what was wrong and where. I/O errors are carried as they
//! are. Nothing in this crate panics on bad input; the fuzz targets and the
//! hostile-input tests hold it to that.

use std::io;

/// A signature could not be made, read or trusted.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// The first four bytes are not a signature magic we know.
    #[error("bad signature magic {found:#010x}: not an rdiff or deltasync signature")]
    BadMagic {
        /// The magic that was read.
        found: u32,
    },
    /// The stream ended inside the 12-byte header.
    #[error("signature header truncated: {len} of 12 bytes")]
    TruncatedHeader {
        /// Bytes present.
        len: usize,
    },
    /// A block length of zero can match nothing and would loop forever.
    #[error("signature block length is 0")]
    BlockLenZero,
    /// A block length beyond the configured limit.
    #[error("signature block length {block_len} exceeds the limit of {max} bytes")]
    BlockLenTooLarge {
        /// The block length asked for.
        block_len: u64,
        /// The largest allowed.
        max: u32,
    },
    /// A strong-sum length of zero would accept any block.
    #[error("signature strong-sum length is 0")]
    StrongLenZero,
    /// A strong-sum length longer than the hash's digest.
    #[error("signature strong-sum length {strong_len} exceeds the {max}-byte digest of {hash}")]
    StrongLenTooLong {
        /// The strong-sum length asked for.
        strong_len: u64,
        /// The digest length of the hash.
        max: u32,
        /// The hash's name.
        hash: &'static str,
    },
    /// The stream ended inside a block record.
    #[error("signature truncated at byte {offset}: block record needs {need} bytes, {have} left")]
    TruncatedRecord {
        /// Offset of the record in the signature stream.
        offset: u64,
        /// Bytes present.
        have: usize,
        /// Bytes a record takes.
        need: usize,
    },
    /// More blocks than the configured limit.
    #[error("signature has more than {max} blocks")]
    TooManyBlocks {
        /// The limit.
        max: u64,
    },
    /// Reading the basis or writing the signature failed.
    #[error("signature I/O: {0}")]
    Io(#[from] io::Error),
}

/// A delta could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    /// The signature was refused.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// Reading the new file or writing the delta failed.
    #[error("delta I/O: {0}")]
    Io(#[from] io::Error),
    /// A multi-round plan's runs are out of order, overlap or overflow.
    #[error("bad delta plan: {0}")]
    Plan(String),
}

/// A delta could not be applied. Offsets are byte positions in the delta stream.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The first four bytes are not the delta magic.
    #[error("bad delta magic {found:#010x} (expected 0x72730236)")]
    BadMagic {
        /// The magic that was read.
        found: u32,
    },
    /// The stream ended before the magic was complete.
    #[error("delta truncated inside its 4-byte magic ({len} bytes)")]
    TruncatedMagic {
        /// Bytes present.
        len: usize,
    },
    /// A byte that is no delta opcode.
    #[error("unknown delta opcode {opcode:#04x} at byte {offset}")]
    UnknownOpcode {
        /// The opcode.
        opcode: u8,
        /// Where it stands.
        offset: u64,
    },
    /// The stream ended inside a command's parameters.
    #[error(
        "delta truncated at byte {offset}: command {opcode:#04x} needs {need} parameter bytes, {have} left"
    )]
    TruncatedCommand {
        /// The opcode.
        opcode: u8,
        /// Where the command starts.
        offset: u64,
        /// Parameter bytes needed.
        need: usize,
        /// Parameter bytes present.
        have: usize,
    },
    /// A literal claims more bytes than the stream holds.
    #[error("delta literal at byte {offset} claims {len} bytes but only {available} remain")]
    LiteralTruncated {
        /// Where the command starts.
        offset: u64,
        /// The literal's length.
        len: u64,
        /// What was left in the stream.
        available: u64,
    },
    /// A literal of length zero, which no encoder writes.
    #[error("delta literal of length 0 at byte {offset}")]
    ZeroLengthLiteral {
        /// Where the command starts.
        offset: u64,
    },
    /// A copy of length zero, which no encoder writes.
    #[error("delta copy of length 0 at byte {offset}")]
    ZeroLengthCopy {
        /// Where the command starts.
        offset: u64,
    },
    /// A copy that reaches past the end of the basis.
    #[error(
        "delta copy at byte {at} reads basis bytes {offset}..{offset}+{len}, past its end at {basis_len}"
    )]
    CopyOutOfBounds {
        /// Where the command starts.
        at: u64,
        /// The basis offset.
        offset: u64,
        /// The copy length.
        len: u64,
        /// The basis length.
        basis_len: u64,
    },
    /// The output would pass the configured limit.
    #[error("patched output would exceed the limit of {limit} bytes")]
    OutputTooLarge {
        /// The limit.
        limit: u64,
    },
    /// The stream ended without an END command.
    #[error("delta ends at byte {offset} without an END command")]
    MissingEnd {
        /// The stream length.
        offset: u64,
    },
    /// The rebuilt file does not have the hash it should.
    #[error("rebuilt file has BLAKE3 {actual}, expected {expected}")]
    ChecksumMismatch {
        /// The hash the sender computed, in hex.
        expected: String,
        /// The hash of what we rebuilt, in hex.
        actual: String,
    },
    /// Bytes follow the END command.
    #[error("delta has data after its END command at byte {offset}")]
    TrailingData {
        /// Where the END command stands.
        offset: u64,
    },
    /// Reading the basis or the delta, or writing the output, failed.
    #[error("patch I/O: {0}")]
    Io(#[from] io::Error),
}
