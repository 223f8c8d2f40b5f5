//! The messages, their type bytes and their fields.
//!
//! Requests carry an `id` chosen by the client; every response names the id
//! it answers, so many requests can be in flight and answers may come back
//! in any order. Paths are raw bytes (Unix file names need not be UTF-8);
//! the wire only bounds their length, the receiving agent checks their shape.

use crate::codec::{Dec, Enc};
use crate::error::WireError;

/// Longest path the wire carries.
pub const MAX_PATH: usize = 4096;
/// Longest free-text field (errors, program versions).
const MAX_TEXT: usize = 4096;
/// Most filter patterns in one request.
const MAX_FILTERS: u64 = 10_000;

/// What a directory entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (never followed).
    Symlink,
}

/// One entry of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Relative path, `/`-separated.
    pub path: Vec<u8>,
    /// File, directory or symlink.
    pub kind: EntryKind,
    /// Size in bytes (files only).
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Permission bits.
    pub mode: u32,
    /// Symlink target.
    pub target: Vec<u8>,
    /// BLAKE3 of the contents, when asked for (`--checksum`) or known.
    pub blake3: Option<[u8; 32]>,
    /// Inode number, for change detection (0 when unknown).
    pub ino: u64,
}

/// What a change may find at its path before it acts: the guard that keeps
/// a sync from replacing a file that changed after it was planned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Expect {
    /// Whatever is there.
    #[default]
    Any,
    /// Nothing.
    Absent,
    /// A regular file of this size and mtime.
    File {
        /// Size in bytes.
        size: u64,
        /// Modification time in nanoseconds.
        mtime_ns: i64,
    },
    /// A directory.
    Dir,
    /// A symlink.
    Symlink,
    /// A directory with nothing in it.
    EmptyDir,
}

/// A file's identity at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileStat {
    /// Size in bytes.
    pub size: u64,
    /// Modification time in nanoseconds.
    pub mtime_ns: i64,
    /// Permission bits.
    pub mode: u32,
}

/// A verified prefix kept from an interrupted transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partial {
    /// Bytes kept.
    pub len: u64,
    /// BLAKE3 of those bytes.
    pub blake3: [u8; 32],
}

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
    /// zstd level asked for (client) or agreed (server); 0 is off.
    pub compress_level: i32,
}

/// Feature bit: this side can read zstd packets.
pub const FEATURE_ZSTD: u64 = 1;

/// Every message of the protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // each variant is documented in docs/protocol.md's table
pub enum Message {
    Hello(Hello),
    /// A request failed; `path` names the file when there is one.
    Error {
        id: u64,
        code: u32,
        path: Vec<u8>,
        message: String,
    },
    List {
        id: u64,
        under: Vec<u8>,
        filters: Vec<String>,
        checksum: bool,
        /// Answer `ListSame` instead of the entries if the listing's digest is this.
        if_digest: Option<[u8; 32]>,
    },
    Entry {
        id: u64,
        entry: Entry,
    },
    ListEnd {
        id: u64,
        count: u64,
        digest: [u8; 32],
    },
    /// The listing's digest matched `if_digest`: no entries follow.
    ListSame {
        id: u64,
        count: u64,
        digest: [u8; 32],
    },
    SigRequest {
        id: u64,
        path: Vec<u8>,
        full_sums: bool,
        resume: bool,
    },
    SigChunk {
        id: u64,
        data: Vec<u8>,
    },
    SigEnd {
        id: u64,
        basis: Option<FileStat>,
        partial: Option<Partial>,
    },
    DeltaRequest {
        id: u64,
        path: Vec<u8>,
        skip: Option<Partial>,
    },
    /// The client can take `bytes` more of delta `id` (flow control).
    Credit {
        id: u64,
        bytes: u64,
    },
    /// The sender accepted (`skipped` = the prefix length) or refused (0) a resume.
    DeltaStart {
        id: u64,
        skipped: u64,
    },
    DeltaChunk {
        id: u64,
        data: Vec<u8>,
    },
    DeltaEnd {
        id: u64,
        stat: FileStat,
        blake3: [u8; 32],
        skipped: u64,
        literal: u64,
        matched: u64,
    },
    PatchRequest {
        id: u64,
        path: Vec<u8>,
        resume_len: u64,
        expect: Expect,
    },
    Done {
        id: u64,
    },
    Mkdir {
        id: u64,
        path: Vec<u8>,
        mode: u32,
    },
    Symlink {
        id: u64,
        path: Vec<u8>,
        target: Vec<u8>,
    },
    SetAttr {
        id: u64,
        path: Vec<u8>,
        mode: Option<u32>,
        mtime_ns: Option<i64>,
        expect: Expect,
    },
    Remove {
        id: u64,
        path: Vec<u8>,
        expect: Expect,
    },
    /// Read (or, with `create`, make) the replica id; answered by `Value`.
    ReplicaId {
        id: u64,
        create: bool,
    },
    /// A short text answer.
    Value {
        id: u64,
        text: String,
    },
    /// Hash a file; answered by `Entry` with `blake3` set.
    Hash {
        id: u64,
        path: Vec<u8>,
    },
    /// Move an entry into `.deltasync/deleted` (area 0) or `.deltasync/conflicts` (1).
    Stash {
        id: u64,
        path: Vec<u8>,
        area: u8,
        expect: Expect,
    },
    /// Rename within the replica (parents are created).
    Rename {
        id: u64,
        from: Vec<u8>,
        to: Vec<u8>,
        expect: Expect,
    },
    /// Take the replica's lock, recording `owner`; answered by `Value`
    /// (empty: taken) or an `Error` naming the holder.
    Lock {
        id: u64,
        owner: String,
        force: bool,
    },
    /// Release the lock.
    Unlock {
        id: u64,
    },
    /// Remove stashed entries older than `days` days.
    Purge {
        id: u64,
        days: u32,
    },
    /// Read (and, with `set`, replace) this replica's note about sync pair
    /// `pair` (the other side's replica id); answered by `Value` with the
    /// old note, empty if none.
    Pair {
        id: u64,
        pair: String,
        set: Option<String>,
    },
    Bye,
}

mod kind {
    pub const HELLO: u8 = 0x01;
    pub const ERROR: u8 = 0x02;
    pub const BYE: u8 = 0x03;
    pub const LIST: u8 = 0x10;
    pub const ENTRY: u8 = 0x11;
    pub const LIST_END: u8 = 0x12;
    pub const SIG_REQUEST: u8 = 0x20;
    pub const SIG_CHUNK: u8 = 0x21;
    pub const SIG_END: u8 = 0x22;
    pub const DELTA_REQUEST: u8 = 0x30;
    pub const DELTA_CHUNK: u8 = 0x31;
    pub const DELTA_END: u8 = 0x32;
    pub const DELTA_START: u8 = 0x33;
    pub const CREDIT: u8 = 0x34;
    pub const LIST_SAME: u8 = 0x13;
    pub const REPLICA_ID: u8 = 0x60;
    pub const VALUE: u8 = 0x61;
    pub const HASH: u8 = 0x62;
    pub const STASH: u8 = 0x63;
    pub const RENAME: u8 = 0x64;
    pub const LOCK: u8 = 0x65;
    pub const UNLOCK: u8 = 0x66;
    pub const PURGE: u8 = 0x67;
    pub const PAIR: u8 = 0x68;
    pub const PATCH_REQUEST: u8 = 0x40;
    pub const DONE: u8 = 0x41;
    pub const MKDIR: u8 = 0x50;
    pub const SYMLINK: u8 = 0x51;
    pub const SET_ATTR: u8 = 0x52;
    pub const REMOVE: u8 = 0x53;
}

const MAGIC: &[u8; 4] = b"DSYN";

impl Message {
    /// The request id this message carries, if any.
    pub fn id(&self) -> Option<u64> {
        use Message::*;
        match self {
            Hello(_) | Bye => None,
            Error { id, .. }
            | List { id, .. }
            | Entry { id, .. }
            | ListEnd { id, .. }
            | SigRequest { id, .. }
            | SigChunk { id, .. }
            | SigEnd { id, .. }
            | DeltaRequest { id, .. }
            | DeltaStart { id, .. }
            | Credit { id, .. }
            | DeltaChunk { id, .. }
            | DeltaEnd { id, .. }
            | PatchRequest { id, .. }
            | Done { id }
            | Mkdir { id, .. }
            | Symlink { id, .. }
            | SetAttr { id, .. }
            | Remove { id, .. }
            | ListSame { id, .. }
            | ReplicaId { id, .. }
            | Value { id, .. }
            | Hash { id, .. }
            | Stash { id, .. }
            | Rename { id, .. }
            | Lock { id, .. }
            | Unlock { id }
            | Purge { id, .. }
            | Pair { id, .. } => Some(*id),
        }
    }

    /// Encodes into `(type, payload)`.
    pub fn encode(&self) -> (u8, Vec<u8>) {
        let mut e = Enc::default();
        let k = match self {
            Message::Hello(h) => {
                e.buf.extend_from_slice(MAGIC);
                e.varint(u64::from(h.version))
                    .str(&h.program)
                    .varint(h.features);
                e.varint(u64::from(h.max_frame))
                    .ivarint(i64::from(h.compress_level));
                kind::HELLO
            }
            Message::Error {
                id,
                code,
                path,
                message,
            } => {
                e.varint(*id)
                    .varint(u64::from(*code))
                    .bytes(path)
                    .str(message);
                kind::ERROR
            }
            Message::Bye => kind::BYE,
            Message::List {
                id,
                under,
                filters,
                checksum,
                if_digest,
            } => {
                e.varint(*id)
                    .bytes(under)
                    .u8(u8::from(*checksum))
                    .varint(filters.len() as u64);
                for f in filters {
                    e.str(f);
                }
                e.opt_hash(if_digest);
                kind::LIST
            }
            Message::Entry { id, entry } => {
                e.varint(*id);
                encode_entry(&mut e, entry);
                kind::ENTRY
            }
            Message::ListEnd { id, count, digest } => {
                e.varint(*id).varint(*count).hash(digest);
                kind::LIST_END
            }
            Message::ListSame { id, count, digest } => {
                e.varint(*id).varint(*count).hash(digest);
                kind::LIST_SAME
            }
            Message::SigRequest {
                id,
                path,
                full_sums,
                resume,
            } => {
                e.varint(*id)
                    .bytes(path)
                    .u8(u8::from(*full_sums))
                    .u8(u8::from(*resume));
                kind::SIG_REQUEST
            }
            Message::SigChunk { id, data } => {
                e.varint(*id);
                e.buf.extend_from_slice(data);
                kind::SIG_CHUNK
            }
            Message::SigEnd { id, basis, partial } => {
                e.varint(*id);
                encode_opt_stat(&mut e, basis);
                encode_opt_partial(&mut e, partial);
                kind::SIG_END
            }
            Message::DeltaRequest { id, path, skip } => {
                e.varint(*id).bytes(path);
                encode_opt_partial(&mut e, skip);
                kind::DELTA_REQUEST
            }
            Message::Credit { id, bytes } => {
                e.varint(*id).varint(*bytes);
                kind::CREDIT
            }
            Message::DeltaStart { id, skipped } => {
                e.varint(*id).varint(*skipped);
                kind::DELTA_START
            }
            Message::DeltaChunk { id, data } => {
                e.varint(*id);
                e.buf.extend_from_slice(data);
                kind::DELTA_CHUNK
            }
            Message::DeltaEnd {
                id,
                stat,
                blake3,
                skipped,
                literal,
                matched,
            } => {
                e.varint(*id);
                encode_stat(&mut e, stat);
                e.hash(blake3)
                    .varint(*skipped)
                    .varint(*literal)
                    .varint(*matched);
                kind::DELTA_END
            }
            Message::PatchRequest {
                id,
                path,
                resume_len,
                expect,
            } => {
                e.varint(*id).bytes(path).varint(*resume_len);
                encode_expect(&mut e, expect);
                kind::PATCH_REQUEST
            }
            Message::Done { id } => {
                e.varint(*id);
                kind::DONE
            }
            Message::Mkdir { id, path, mode } => {
                e.varint(*id).bytes(path).varint(u64::from(*mode));
                kind::MKDIR
            }
            Message::Symlink { id, path, target } => {
                e.varint(*id).bytes(path).bytes(target);
                kind::SYMLINK
            }
            Message::SetAttr {
                id,
                path,
                mode,
                mtime_ns,
                expect,
            } => {
                e.varint(*id).bytes(path);
                match mode {
                    Some(m) => e.u8(1).varint(u64::from(*m)),
                    None => e.u8(0),
                };
                match mtime_ns {
                    Some(t) => e.u8(1).ivarint(*t),
                    None => e.u8(0),
                };
                encode_expect(&mut e, expect);
                kind::SET_ATTR
            }
            Message::Remove { id, path, expect } => {
                e.varint(*id).bytes(path);
                encode_expect(&mut e, expect);
                kind::REMOVE
            }
            Message::ReplicaId { id, create } => {
                e.varint(*id).u8(u8::from(*create));
                kind::REPLICA_ID
            }
            Message::Value { id, text } => {
                e.varint(*id).str(text);
                kind::VALUE
            }
            Message::Hash { id, path } => {
                e.varint(*id).bytes(path);
                kind::HASH
            }
            Message::Stash {
                id,
                path,
                area,
                expect,
            } => {
                e.varint(*id).bytes(path).u8(*area);
                encode_expect(&mut e, expect);
                kind::STASH
            }
            Message::Rename {
                id,
                from,
                to,
                expect,
            } => {
                e.varint(*id).bytes(from).bytes(to);
                encode_expect(&mut e, expect);
                kind::RENAME
            }
            Message::Lock { id, owner, force } => {
                e.varint(*id).str(owner).u8(u8::from(*force));
                kind::LOCK
            }
            Message::Unlock { id } => {
                e.varint(*id);
                kind::UNLOCK
            }
            Message::Purge { id, days } => {
                e.varint(*id).varint(u64::from(*days));
                kind::PURGE
            }
            Message::Pair { id, pair, set } => {
                e.varint(*id).str(pair);
                match set {
                    Some(v) => e.u8(1).str(v),
                    None => e.u8(0),
                };
                kind::PAIR
            }
        };
        (k, e.buf)
    }

    /// Parses a frame's payload. Every field is checked; leftovers are an error.
    pub fn decode(k: u8, payload: &[u8]) -> Result<Message, WireError> {
        let name = kind_name(k).ok_or(WireError::UnknownMessage { kind: k })?;
        let mut d = Dec::new(payload, name);
        let msg = match k {
            kind::HELLO => {
                if d.rest_len() < 4 || &payload[..4] != MAGIC {
                    return Err(WireError::Mismatch(
                        "the peer is not a deltasync agent (no DSYN greeting)".into(),
                    ));
                }
                d.skip(4);
                Message::Hello(Hello {
                    version: d.u32()?,
                    program: d.string(MAX_TEXT)?,
                    features: d.varint()?,
                    max_frame: d.u32()?,
                    compress_level: i32::try_from(d.ivarint()?).map_err(|_| {
                        WireError::malformed(name, "compression level out of range")
                    })?,
                })
            }
            kind::ERROR => Message::Error {
                id: d.varint()?,
                code: d.u32()?,
                path: d.bytes(MAX_PATH)?.to_vec(),
                message: d.string(MAX_TEXT)?,
            },
            kind::BYE => Message::Bye,
            kind::LIST => {
                let id = d.varint()?;
                let under = d.bytes(MAX_PATH)?.to_vec();
                let checksum = d.bool()?;
                let n = d.varint()?;
                if n > MAX_FILTERS {
                    return Err(WireError::malformed(
                        name,
                        format!("{n} filters exceed the limit of {MAX_FILTERS}"),
                    ));
                }
                let mut filters = Vec::new();
                for _ in 0..n {
                    filters.push(d.string(MAX_TEXT)?);
                }
                Message::List {
                    id,
                    under,
                    filters,
                    checksum,
                    if_digest: d.opt_hash()?,
                }
            }
            kind::ENTRY => Message::Entry {
                id: d.varint()?,
                entry: decode_entry(&mut d)?,
            },
            kind::LIST_END => Message::ListEnd {
                id: d.varint()?,
                count: d.varint()?,
                digest: d.hash()?,
            },
            kind::LIST_SAME => Message::ListSame {
                id: d.varint()?,
                count: d.varint()?,
                digest: d.hash()?,
            },
            kind::SIG_REQUEST => Message::SigRequest {
                id: d.varint()?,
                path: d.bytes(MAX_PATH)?.to_vec(),
                full_sums: d.bool()?,
                resume: d.bool()?,
            },
            kind::SIG_CHUNK => Message::SigChunk {
                id: d.varint()?,
                data: d.rest().to_vec(),
            },
            kind::SIG_END => Message::SigEnd {
                id: d.varint()?,
                basis: decode_opt_stat(&mut d)?,
                partial: decode_opt_partial(&mut d)?,
            },
            kind::DELTA_REQUEST => Message::DeltaRequest {
                id: d.varint()?,
                path: d.bytes(MAX_PATH)?.to_vec(),
                skip: decode_opt_partial(&mut d)?,
            },
            kind::CREDIT => Message::Credit {
                id: d.varint()?,
                bytes: d.varint()?,
            },
            kind::DELTA_START => Message::DeltaStart {
                id: d.varint()?,
                skipped: d.varint()?,
            },
            kind::DELTA_CHUNK => Message::DeltaChunk {
                id: d.varint()?,
                data: d.rest().to_vec(),
            },
            kind::DELTA_END => Message::DeltaEnd {
                id: d.varint()?,
                stat: decode_stat(&mut d)?,
                blake3: d.hash()?,
                skipped: d.varint()?,
                literal: d.varint()?,
                matched: d.varint()?,
            },
            kind::PATCH_REQUEST => Message::PatchRequest {
                id: d.varint()?,
                path: d.bytes(MAX_PATH)?.to_vec(),
                resume_len: d.varint()?,
                expect: decode_expect(&mut d)?,
            },
            kind::DONE => Message::Done { id: d.varint()? },
            kind::MKDIR => Message::Mkdir {
                id: d.varint()?,
                path: d.bytes(MAX_PATH)?.to_vec(),
                mode: d.u32()?,
            },
            kind::SYMLINK => Message::Symlink {
                id: d.varint()?,
                path: d.bytes(MAX_PATH)?.to_vec(),
                target: d.bytes(MAX_PATH)?.to_vec(),
            },
            kind::SET_ATTR => Message::SetAttr {
                id: d.varint()?,
                path: d.bytes(MAX_PATH)?.to_vec(),
                mode: if d.bool()? { Some(d.u32()?) } else { None },
                mtime_ns: if d.bool()? { Some(d.ivarint()?) } else { None },
                expect: decode_expect(&mut d)?,
            },
            kind::REMOVE => Message::Remove {
                id: d.varint()?,
                path: d.bytes(MAX_PATH)?.to_vec(),
                expect: decode_expect(&mut d)?,
            },
            kind::REPLICA_ID => Message::ReplicaId {
                id: d.varint()?,
                create: d.bool()?,
            },
            kind::VALUE => Message::Value {
                id: d.varint()?,
                text: d.string(MAX_TEXT)?,
            },
            kind::HASH => Message::Hash {
                id: d.varint()?,
                path: d.bytes(MAX_PATH)?.to_vec(),
            },
            kind::STASH => Message::Stash {
                id: d.varint()?,
                path: d.bytes(MAX_PATH)?.to_vec(),
                area: d.u8()?,
                expect: decode_expect(&mut d)?,
            },
            kind::RENAME => Message::Rename {
                id: d.varint()?,
                from: d.bytes(MAX_PATH)?.to_vec(),
                to: d.bytes(MAX_PATH)?.to_vec(),
                expect: decode_expect(&mut d)?,
            },
            kind::LOCK => Message::Lock {
                id: d.varint()?,
                owner: d.string(MAX_TEXT)?,
                force: d.bool()?,
            },
            kind::UNLOCK => Message::Unlock { id: d.varint()? },
            kind::PURGE => Message::Purge {
                id: d.varint()?,
                days: d.u32()?,
            },
            kind::PAIR => Message::Pair {
                id: d.varint()?,
                pair: d.string(MAX_TEXT)?,
                set: if d.bool()? {
                    Some(d.string(MAX_TEXT)?)
                } else {
                    None
                },
            },
            _ => return Err(WireError::UnknownMessage { kind: k }),
        };
        d.finish()?;
        Ok(msg)
    }
}

fn kind_name(k: u8) -> Option<&'static str> {
    Some(match k {
        kind::HELLO => "Hello",
        kind::ERROR => "Error",
        kind::BYE => "Bye",
        kind::LIST => "List",
        kind::ENTRY => "Entry",
        kind::LIST_END => "ListEnd",
        kind::SIG_REQUEST => "SigRequest",
        kind::SIG_CHUNK => "SigChunk",
        kind::SIG_END => "SigEnd",
        kind::DELTA_REQUEST => "DeltaRequest",
        kind::DELTA_CHUNK => "DeltaChunk",
        kind::DELTA_END => "DeltaEnd",
        kind::DELTA_START => "DeltaStart",
        kind::CREDIT => "Credit",
        kind::LIST_SAME => "ListSame",
        kind::REPLICA_ID => "ReplicaId",
        kind::VALUE => "Value",
        kind::HASH => "Hash",
        kind::STASH => "Stash",
        kind::RENAME => "Rename",
        kind::LOCK => "Lock",
        kind::UNLOCK => "Unlock",
        kind::PURGE => "Purge",
        kind::PAIR => "Pair",
        kind::PATCH_REQUEST => "PatchRequest",
        kind::DONE => "Done",
        kind::MKDIR => "Mkdir",
        kind::SYMLINK => "Symlink",
        kind::SET_ATTR => "SetAttr",
        kind::REMOVE => "Remove",
        _ => return None,
    })
}

fn encode_entry(e: &mut Enc, x: &Entry) {
    let k = match x.kind {
        EntryKind::File => 0,
        EntryKind::Dir => 1,
        EntryKind::Symlink => 2,
    };
    e.bytes(&x.path)
        .u8(k)
        .varint(x.size)
        .ivarint(x.mtime_ns)
        .varint(u64::from(x.mode));
    e.bytes(&x.target).opt_hash(&x.blake3).varint(x.ino);
}

fn encode_expect(e: &mut Enc, x: &Expect) {
    match x {
        Expect::Any => e.u8(0),
        Expect::Absent => e.u8(1),
        Expect::File { size, mtime_ns } => e.u8(2).varint(*size).ivarint(*mtime_ns),
        Expect::Dir => e.u8(3),
        Expect::Symlink => e.u8(4),
        Expect::EmptyDir => e.u8(5),
    };
}

fn decode_expect(d: &mut Dec<'_>) -> Result<Expect, WireError> {
    Ok(match d.u8()? {
        0 => Expect::Any,
        1 => Expect::Absent,
        2 => Expect::File {
            size: d.varint()?,
            mtime_ns: d.ivarint()?,
        },
        3 => Expect::Dir,
        4 => Expect::Symlink,
        5 => Expect::EmptyDir,
        t => return Err(WireError::malformed("expectation", format!("tag {t}"))),
    })
}

fn decode_entry(d: &mut Dec<'_>) -> Result<Entry, WireError> {
    let path = d.bytes(MAX_PATH)?.to_vec();
    let kind = match d.u8()? {
        0 => EntryKind::File,
        1 => EntryKind::Dir,
        2 => EntryKind::Symlink,
        k => return Err(WireError::malformed("Entry", format!("entry kind {k}"))),
    };
    Ok(Entry {
        path,
        kind,
        size: d.varint()?,
        mtime_ns: d.ivarint()?,
        mode: d.u32()?,
        target: d.bytes(MAX_PATH)?.to_vec(),
        blake3: d.opt_hash()?,
        ino: d.varint()?,
    })
}

fn encode_stat(e: &mut Enc, s: &FileStat) {
    e.varint(s.size)
        .ivarint(s.mtime_ns)
        .varint(u64::from(s.mode));
}

fn decode_stat(d: &mut Dec<'_>) -> Result<FileStat, WireError> {
    Ok(FileStat {
        size: d.varint()?,
        mtime_ns: d.ivarint()?,
        mode: d.u32()?,
    })
}

fn encode_opt_stat(e: &mut Enc, s: &Option<FileStat>) {
    match s {
        Some(s) => {
            e.u8(1);
            encode_stat(e, s);
        }
        None => {
            e.u8(0);
        }
    }
}

fn decode_opt_stat(d: &mut Dec<'_>) -> Result<Option<FileStat>, WireError> {
    if d.bool()? {
        Ok(Some(decode_stat(d)?))
    } else {
        Ok(None)
    }
}

fn encode_opt_partial(e: &mut Enc, p: &Option<Partial>) {
    match p {
        Some(p) => {
            e.u8(1).varint(p.len).hash(&p.blake3);
        }
        None => {
            e.u8(0);
        }
    }
}

fn decode_opt_partial(d: &mut Dec<'_>) -> Result<Option<Partial>, WireError> {
    if d.bool()? {
        Ok(Some(Partial {
            len: d.varint()?,
            blake3: d.hash()?,
        }))
    } else {
        Ok(None)
    }
}

#[cfg(test)]
mod tests;
