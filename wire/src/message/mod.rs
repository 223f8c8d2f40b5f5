//! The messages, their type bytes and their fields.
//!
//! Every conversation is a client talking to one agent. Apart from the
//! greeting and the goodbye, a message is one of four envelopes:
//!
//! - [`Message::Call`]: the client opens request `id` ([`Request`]);
//! - [`Message::Feed`]: the client sends more input to an open request
//!   (the signature a delta is made against, the delta a patch applies,
//!   flow-control credit) ([`Feed`]);
//! - [`Message::Reply`]: the agent answers request `id` ([`Reply`]); some
//!   requests get a stream of replies that ends with a terminal one;
//! - [`Message::Cancel`]: the client abandons request `id`.
//!
//! Ids are chosen by the client (one allocator per connection), so many
//! requests can be in flight and answers may come back in any order. Paths
//! are raw bytes (Unix file names need not be UTF-8); the wire only bounds
//! their length, the receiving agent checks their shape.

mod batch;
mod envelope;
mod fields;
mod rounds;

use crate::error::WireError;
pub use batch::{Failed, FileData, MAX_BATCH_DATA, MAX_BATCH_FILE, MAX_BATCH_FILES, PutFile};
pub use fields::{
    Attrs, Entry, EntryKind, Expect, FileStat, Links, ListWants, Mtime, Owner, Partial, StashArea,
    Xattr,
};
pub use rounds::{Run, SigShape, Span};

/// Longest path the wire carries.
pub const MAX_PATH: usize = 4096;
/// Longest free-text field (errors, program versions, user names).
pub const MAX_TEXT: usize = 4096;
/// Most paths in one `Changed` reply (a watch sends more as more replies).
pub const MAX_CHANGED: u64 = 1024;
/// Most spans in one `Signature` or `Match` (the engine's `rounds::MAX_SPANS`).
pub const MAX_SPANS: usize = 16_384;
/// Most runs in one `Matched` or plan (the engine's `rounds::MAX_RUNS`).
pub const MAX_RUNS: usize = 16_384;
/// Most filter patterns in one listing request.
pub const MAX_FILTERS: u64 = 10_000;
/// Longest extended-attribute name (Linux's `XATTR_NAME_MAX`).
pub const MAX_XATTR_NAME: usize = 255;
/// Largest extended-attribute value (Linux's `XATTR_SIZE_MAX`).
pub const MAX_XATTR_VALUE: usize = 64 << 10;
/// Most extended attributes on one entry.
pub const MAX_XATTRS: u64 = 1024;

/// The first message each way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Protocol version.
    pub version: u32,
    /// The program's version string (for messages and auto-deploy).
    pub program: String,
    /// Feature bits: see [`FEATURE_ZSTD`].
    pub features: u64,
    /// The largest frame this side accepts.
    pub max_frame: u32,
    /// zstd level asked for (client; 0 is off). The agent, which greets
    /// before it has read the client's, says 0.
    pub compress_level: i32,
}

/// Feature bit: this side can read zstd packets.
pub const FEATURE_ZSTD: u64 = 1;

/// Why a request failed, as carried in [`Reply::Error`]. The numbers follow
/// rsync's exit codes where one fits, so the client can pass them on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// The request was refused (bad path, read-only agent, …). 1.
    Refused,
    /// A file could not be read or written. 11.
    FileIo,
    /// A signature or delta was malformed. 12.
    Data,
    /// The file vanished before it could be read. 24.
    Vanished,
    /// The rebuilt file failed its whole-file BLAKE3 check. 40.
    Checksum,
    /// The entry changed while it was read, or since the plan was made. 41.
    Changed,
    /// The client cancelled this request. 42.
    Aborted,
    /// The replica's lock is held; the message names the holder. 43.
    Locked,
    /// The agent's in-flight limits are reached; try again later. 44.
    Busy,
    /// A special file (FIFO, socket, device) was skipped. 45.
    Skipped,
    /// The root is not the replica the client expected; the message is the
    /// replica-id found (empty: none). 46.
    Replica,
    /// The file does not start with the prefix a `Delta` named (an append
    /// guessed wrong); nothing was sent. 47.
    NotPrefix,
    /// A code this build does not know.
    Other(u32),
}

impl Code {
    /// The number on the wire.
    pub fn number(self) -> u32 {
        match self {
            Code::Refused => 1,
            Code::FileIo => 11,
            Code::Data => 12,
            Code::Vanished => 24,
            Code::Checksum => 40,
            Code::Changed => 41,
            Code::Aborted => 42,
            Code::Locked => 43,
            Code::Busy => 44,
            Code::Skipped => 45,
            Code::Replica => 46,
            Code::NotPrefix => 47,
            Code::Other(n) => n,
        }
    }

    /// The code for a number on the wire.
    pub fn from_number(n: u32) -> Code {
        match n {
            1 => Code::Refused,
            11 => Code::FileIo,
            12 => Code::Data,
            24 => Code::Vanished,
            40 => Code::Checksum,
            41 => Code::Changed,
            42 => Code::Aborted,
            43 => Code::Locked,
            44 => Code::Busy,
            45 => Code::Skipped,
            46 => Code::Replica,
            47 => Code::NotPrefix,
            n => Code::Other(n),
        }
    }
}

/// What the client asks of an agent. Each is answered as `docs/protocol.md`
/// says, by one [`Reply`] or a stream ending in a terminal one.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // each variant and field is documented in docs/protocol.md's table
pub enum Request {
    /// List the subtree `under`: `Entry`… and `Notice`…, then `ListEnd`, or
    /// `ListSame` alone when the listing's digest equals `if_digest`.
    List {
        under: Vec<u8>,
        filters: Vec<String>,
        wants: ListWants,
        if_digest: Option<[u8; 32]>,
    },
    /// Sum the file at `path`: `SigChunk`…, `SigEnd`.
    Signature {
        path: Vec<u8>,
        full_sums: bool,
        resume: bool,
        shape: SigShape,
    },
    /// Encode the file at `path` against the signature fed after this
    /// (`Feed::SigChunk`…, `Feed::SigEnd`): `DeltaStart`, `DeltaChunk`…,
    /// `DeltaEnd`. With a `plan` (the runs of a multi-round delta), no
    /// signature is fed: the delta copies what the runs say. With a
    /// `prefix`, only if the file's first `len` bytes have that BLAKE3
    /// (else `Error` `NotPrefix` before anything is sent): an append.
    Delta {
        path: Vec<u8>,
        skip: Option<Partial>,
        prefix: Option<Partial>,
        plan: Option<Vec<Run>>,
    },
    /// One round of a multi-round delta: search `spans` of the file at
    /// `path` (empty: all of it) against the signature fed after this, a
    /// signature of the basis's `basis` spans (empty: all of it): `Matched`.
    Match {
        path: Vec<u8>,
        spans: Vec<Span>,
        basis: Vec<Span>,
    },
    /// Rebuild `path` from the delta fed after this (`Feed::DeltaChunk`…,
    /// `Feed::DeltaEnd`), keeping the first `resume_len` bytes of the
    /// partial file, if `path` still holds what `expect` says: `Done`. The
    /// delta copies from the file at `path`, or at `basis` when given (a
    /// similar file, for a `path` that has none: `--fuzzy`).
    Patch {
        path: Vec<u8>,
        resume_len: u64,
        expect: Expect,
        attrs: Attrs,
        sparse: bool,
        basis: Option<Vec<u8>>,
    },
    /// Read each file at `paths` whole (at most [`MAX_BATCH_FILES`], each
    /// at most [`MAX_BATCH_FILE`] bytes, [`MAX_BATCH_DATA`] in all): one
    /// `Files`, in the same order.
    Read { paths: Vec<Vec<u8>> },
    /// Place each of `files` as a new version (checked, made durable,
    /// renamed in if its path still holds what `expect` says): one
    /// `Placed`, in the same order.
    Put { files: Vec<PutFile> },
    /// Hash the file at `path`: `Entry` with its BLAKE3.
    Hash { path: Vec<u8> },
    /// Create a directory (fine if one is there): `Done`.
    Mkdir { path: Vec<u8>, attrs: Attrs },
    /// Create or repoint a symlink: `Done`.
    Symlink {
        path: Vec<u8>,
        target: Vec<u8>,
        attrs: Attrs,
    },
    /// Make `path` a hard link to the file at `existing`: `Done`.
    Link {
        path: Vec<u8>,
        existing: Vec<u8>,
        expect: Expect,
    },
    /// Set attributes of the entry itself: `Done`.
    SetAttr {
        path: Vec<u8>,
        attrs: Attrs,
        expect: Expect,
    },
    /// Remove an entry or a whole tree: `Done`.
    Remove { path: Vec<u8>, expect: Expect },
    /// Move an entry into the work directory: `Done`.
    Stash {
        path: Vec<u8>,
        area: StashArea,
        expect: Expect,
    },
    /// Rename within the replica: `Done`.
    Rename {
        from: Vec<u8>,
        to: Vec<u8>,
        expect: Expect,
    },
    /// Read (with `create`, make) the replica id: `Value`.
    ReplicaId { create: bool },
    /// Take the replica's lock for the life of this connection: `Value`.
    /// With `replica`, only if the root's replica-id is that one (checked
    /// before the lock is written; `Replica` error otherwise).
    Lock {
        owner: String,
        force: bool,
        replica: Option<String>,
    },
    /// Release our lock: `Done`.
    Unlock,
    /// Remove stashed entries and partial files older than `days`: `Done`.
    Purge { days: u32 },
    /// Read (with `set`, replace) this replica's note about sync pair `pair`: `Value`.
    Pair { pair: String, set: Option<String> },
    /// The root's file system space: `Value` with "AVAIL TOTAL" in bytes
    /// (what an unprivileged writer may use, and the whole).
    Space,
    /// Watch the replica for changes until cancelled: `Changed`… as they
    /// happen, then `Done` (or `Error`, e.g. `Busy` past the kernel's
    /// watch limit).
    Watch,
}

/// More input for an open request, client to agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Feed {
    /// A piece of the signature a `Delta` request encodes against.
    SigChunk(Vec<u8>),
    /// The signature is complete.
    SigEnd,
    /// A piece of the delta a `Patch` request applies.
    DeltaChunk(Vec<u8>),
    /// The delta is complete: the new file's stat and BLAKE3.
    DeltaEnd {
        /// Size, mtime and mode the new file gets.
        stat: FileStat,
        /// BLAKE3 of the whole new file.
        blake3: [u8; 32],
    },
    /// The client can take `bytes` more of this delta (flow control).
    Credit(u64),
}

/// An agent's answer to request `id`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // each variant is documented in docs/protocol.md's table
pub enum Reply {
    /// The request failed; `path` names the file when there is one. Terminal.
    Error {
        code: Code,
        path: Vec<u8>,
        message: String,
    },
    /// The request succeeded. Terminal.
    Done,
    /// A short text answer. Terminal.
    Value(String),
    /// One entry of a listing, or a hashed file (terminal for `Hash`).
    Entry(Box<Entry>),
    /// Something a listing left out, and why (a folder it cannot read, a
    /// special file, a path too long for the wire). Not terminal.
    Notice {
        code: Code,
        path: Vec<u8>,
        message: String,
    },
    /// Paths under a watched root that changed (created, written, removed,
    /// renamed or re-attributed), or `overflow`: too many to tell, list
    /// everything. Not terminal.
    Changed { paths: Vec<Vec<u8>>, overflow: bool },
    /// The listing is complete. Terminal.
    ListEnd { count: u64, digest: [u8; 32] },
    /// The listing's digest matched `if_digest`: no entries follow. Terminal.
    ListSame { count: u64, digest: [u8; 32] },
    /// A piece of a signature.
    SigChunk(Vec<u8>),
    /// The signature is complete, with the basis's stat and any kept prefix. Terminal.
    SigEnd {
        basis: Option<FileStat>,
        partial: Option<Partial>,
    },
    /// The source accepted (`skipped` = the prefix length) or refused (0) a resume.
    DeltaStart { skipped: u64 },
    /// What one round found: `runs`, in real offsets, and the source file's
    /// `stat` as it was read. Terminal.
    Matched { stat: FileStat, runs: Vec<Run> },
    /// A piece of a delta.
    DeltaChunk(Vec<u8>),
    /// The files a `Read` asked for, each whole or why not. Terminal.
    Files(Vec<Result<FileData, Failed>>),
    /// What became of each file of a `Put` (`None`: placed). Terminal.
    Placed(Vec<Option<Failed>>),
    /// The delta is complete. `stat` is the source file as it was read. Terminal.
    DeltaEnd {
        stat: FileStat,
        blake3: [u8; 32],
        skipped: u64,
        literal: u64,
        matched: u64,
    },
}

impl Reply {
    /// True if this reply ends its request (no more replies for its id).
    pub fn is_terminal(&self) -> bool {
        !matches!(
            self,
            Reply::Entry(_)
                | Reply::Notice { .. }
                | Reply::Changed { .. }
                | Reply::SigChunk(_)
                | Reply::DeltaStart { .. }
                | Reply::DeltaChunk(_)
        )
    }

    /// An error reply.
    pub fn error(code: Code, path: &[u8], message: impl std::fmt::Display) -> Reply {
        Reply::Error {
            code,
            path: path.to_vec(),
            message: message.to_string(),
        }
    }
}

/// Every message of the protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// The greeting, first each way.
    Hello(Hello),
    /// The client opens request `id`.
    Call {
        /// The request's id.
        id: u64,
        /// What is asked.
        req: Request,
    },
    /// More input for open request `id`.
    Feed {
        /// The request's id.
        id: u64,
        /// The input.
        feed: Feed,
    },
    /// An answer to request `id`.
    Reply {
        /// The request's id.
        id: u64,
        /// The answer.
        rep: Reply,
    },
    /// The client abandons request `id`: a patch keeps its verified prefix
    /// and answers `Error` (Aborted); a delta stops at its next chunk.
    Cancel {
        /// The request's id.
        id: u64,
    },
    /// End of the session.
    Bye,
}

impl Message {
    /// The request id this message carries, if any.
    pub fn id(&self) -> Option<u64> {
        match self {
            Message::Hello(_) | Message::Bye => None,
            Message::Call { id, .. }
            | Message::Feed { id, .. }
            | Message::Reply { id, .. }
            | Message::Cancel { id } => Some(*id),
        }
    }

    /// Encodes into `(type, payload)`.
    pub fn encode(&self) -> (u8, Vec<u8>) {
        envelope::encode(self)
    }

    /// Parses a frame's payload. Every field is checked; leftovers are an error.
    pub fn decode(kind: u8, payload: &[u8]) -> Result<Message, WireError> {
        envelope::decode(kind, payload)
    }
}

#[cfg(test)]
mod tests;
