//! deltasync's wire protocol.
//!
//! This crate will hold the framed protocol that carries signatures, deltas
//! and file lists between a client and `deltasync serve`:
//!
//! - **frames**: length-prefixed, typed, with a maximum size; the codec
//!   works on byte buffers and does no I/O ("check, then parse"; an
//!   incomplete frame is not an error);
//! - **messages and handshake**: protocol version and capabilities
//!   (compression, hash choices, limits);
//! - **`Connection<R, W>`**: generic over `Read + Write`, so tests can join
//!   two ends with an in-memory pipe;
//! - **transports**: a child process over pipes, an SSH exec channel (ssh2),
//!   and any `--rsh` command.
//!
//! It depends on no other deltasync crate: the engine's bytes travel as
//! opaque payloads. Nothing is implemented yet; see `docs/architecture.md`.

#![deny(missing_docs)]

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;
