//! deltasync's wire protocol: how a client and a `deltasync serve` agent
//! talk, over any byte pipe.
//!
//! - [`Message`]: every message and its fields ([`message`] module);
//! - [`frame`]: frames (`type, len, payload`) inside packets (raw or zstd),
//!   decoded from byte buffers with no I/O, check-then-parse;
//! - [`Connection`]: a [`MessageReader`] and a [`MessageWriter`] over any
//!   `Read + Write`, with the version/capability handshake; tests join two
//!   ends with in-memory pipes;
//! - [`bwlimit`]: `--bwlimit` on the bytes actually written;
//! - [`transport`]: child process, `--rsh` command, and SSH (ssh2).
//!
//! ```
//! use deltasync_wire::{Connection, Message, Reply};
//! // Two one-way pipes make a full-duplex link; here, messages to ourselves.
//! let mut wire = Vec::new();
//! let mut conn = Connection::new(&[][..], &mut wire);
//! let done = Message::Reply { id: 7, rep: Reply::Done };
//! conn.writer.send(&done)?;
//! conn.writer.flush()?;
//! drop(conn);
//! let mut back = Connection::new(&wire[..], std::io::sink());
//! assert_eq!(back.reader.recv()?, Some(done));
//! # Ok::<(), deltasync_wire::WireError>(())
//! ```
//!
//! It depends on no other deltasync crate: signatures and deltas travel as
//! opaque chunks. `docs/protocol.md` is the reference for the byte layout.

#![deny(missing_docs)]

pub mod adapt;
pub mod bwlimit;
mod codec;
mod connection;
mod error;
pub mod frame;
pub mod message;
pub mod transport;

pub use connection::{
    Connection, DELTA_WINDOW, MAX_CHUNK, MAX_FRAME, MAX_PACKET, MessageReader, MessageWriter,
    PACKET_TARGET, PROTOCOL_VERSION, Settings, WireStats,
};
pub use error::WireError;
pub use message::{
    Attrs, Code, Entry, EntryKind, Expect, Failed, Feed, FileData, FileStat, Hello, Links,
    ListWants, MAX_BATCH_DATA, MAX_BATCH_FILE, MAX_BATCH_FILES, Message, Mtime, Owner, Partial,
    PutFile, Reply, Request, Run, SigShape, Span, StashArea, Xattr,
};
