//! The wire's typed errors.
//!
//! Policy: a peer's bytes that break a rule produce a variant naming the
//! rule and the numbers (`FrameTooLarge { len, max }`), never a panic. I/O
//! errors from the transport are kept whole so the caller can tell a
//! timeout (exit 30) from a broken connection (exit 10).

use std::io;

/// Something went wrong on the wire.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// A frame longer than the agreed maximum.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// The length the frame claims.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A packet longer than the agreed maximum, compressed or not.
    #[error("packet of {len} bytes exceeds the limit of {max}")]
    PacketTooLarge {
        /// The length the packet claims.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A compressed packet that does not decompress to its stated size.
    #[error(
        "compressed packet is corrupt or lies about its size ({stated} bytes stated): {reason}"
    )]
    BadCompression {
        /// The size the packet header stated.
        stated: u64,
        /// What zstd said.
        reason: String,
    },
    /// A packet kind we do not know or did not agree to.
    #[error("unknown or unnegotiated packet kind {kind:#04x}")]
    BadPacketKind {
        /// The kind byte.
        kind: u8,
    },
    /// A message type we do not know.
    #[error("unknown message type {kind:#04x}")]
    UnknownMessage {
        /// The type byte.
        kind: u8,
    },
    /// A message whose fields do not parse.
    #[error("malformed {message} message: {reason}")]
    Malformed {
        /// Which message.
        message: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The stream ended inside a packet or frame.
    #[error("connection closed in the middle of a {what}")]
    Truncated {
        /// A packet or a frame.
        what: &'static str,
    },
    /// The peer is not deltasync, or speaks another protocol version.
    #[error("protocol mismatch: {0}")]
    Mismatch(String),
    /// The peer broke the conversation's order.
    #[error("protocol violation: {0}")]
    Violation(String),
    /// No byte arrived for longer than the timeout.
    #[error("no data from the peer for {secs} s (--timeout)")]
    Timeout {
        /// The timeout.
        secs: u64,
    },
    /// The transport failed.
    #[error("connection I/O: {0}")]
    Io(#[from] io::Error),
}

impl WireError {
    /// A malformed-message error.
    pub(crate) fn malformed(message: &'static str, reason: impl Into<String>) -> WireError {
        WireError::Malformed {
            message,
            reason: reason.into(),
        }
    }
}
