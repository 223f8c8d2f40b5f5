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
    },
    Entry {
        id: u64,
        entry: Entry,
    },
    ListEnd {
        id: u64,
        count: u64,
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
    },
    Remove {
        id: u64,
        path: Vec<u8>,
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
            | Remove { id, .. } => Some(*id),
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
            } => {
                e.varint(*id)
                    .bytes(under)
                    .u8(u8::from(*checksum))
                    .varint(filters.len() as u64);
                for f in filters {
                    e.str(f);
                }
                kind::LIST
            }
            Message::Entry { id, entry } => {
                e.varint(*id);
                encode_entry(&mut e, entry);
                kind::ENTRY
            }
            Message::ListEnd { id, count } => {
                e.varint(*id).varint(*count);
                kind::LIST_END
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
            } => {
                e.varint(*id).bytes(path).varint(*resume_len);
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
                kind::SET_ATTR
            }
            Message::Remove { id, path } => {
                e.varint(*id).bytes(path);
                kind::REMOVE
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
                }
            }
            kind::ENTRY => Message::Entry {
                id: d.varint()?,
                entry: decode_entry(&mut d)?,
            },
            kind::LIST_END => Message::ListEnd {
                id: d.varint()?,
                count: d.varint()?,
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
            },
            kind::REMOVE => Message::Remove {
                id: d.varint()?,
                path: d.bytes(MAX_PATH)?.to_vec(),
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
    e.bytes(&x.target).opt_hash(&x.blake3);
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
mod tests {
    use super::*;

    fn samples() -> Vec<Message> {
        let entry = Entry {
            path: b"dir/f\xffile".to_vec(),
            kind: EntryKind::Symlink,
            size: 1 << 40,
            mtime_ns: -5,
            mode: 0o755,
            target: b"../x".to_vec(),
            blake3: Some([9; 32]),
        };
        let stat = FileStat {
            size: 3,
            mtime_ns: 1_700_000_000_000_000_000,
            mode: 0o644,
        };
        let partial = Partial {
            len: 12,
            blake3: [1; 32],
        };
        vec![
            Message::Hello(Hello {
                version: 1,
                program: "deltasync 0.1".into(),
                features: 1,
                max_frame: 1 << 20,
                compress_level: -3,
            }),
            Message::Error {
                id: 1,
                code: 11,
                path: b"a".to_vec(),
                message: "nope".into(),
            },
            Message::Bye,
            Message::List {
                id: 2,
                under: b"sub".to_vec(),
                filters: vec!["*.o".into(), "/target/".into()],
                checksum: true,
            },
            Message::DeltaStart {
                id: 4,
                skipped: 100,
            },
            Message::Entry { id: 2, entry },
            Message::ListEnd { id: 2, count: 7 },
            Message::SigRequest {
                id: 3,
                path: b"f".to_vec(),
                full_sums: true,
                resume: false,
            },
            Message::SigChunk {
                id: 3,
                data: vec![1, 2, 3],
            },
            Message::SigEnd {
                id: 3,
                basis: Some(stat),
                partial: Some(partial),
            },
            Message::DeltaRequest {
                id: 4,
                path: b"f".to_vec(),
                skip: None,
            },
            Message::DeltaChunk {
                id: 4,
                data: vec![],
            },
            Message::DeltaEnd {
                id: 4,
                stat,
                blake3: [2; 32],
                skipped: 0,
                literal: 5,
                matched: 6,
            },
            Message::PatchRequest {
                id: 5,
                path: b"f".to_vec(),
                resume_len: 9,
            },
            Message::Done { id: 5 },
            Message::Mkdir {
                id: 6,
                path: b"d".to_vec(),
                mode: 0o700,
            },
            Message::Symlink {
                id: 7,
                path: b"l".to_vec(),
                target: b"/etc".to_vec(),
            },
            Message::SetAttr {
                id: 8,
                path: b"f".to_vec(),
                mode: None,
                mtime_ns: Some(4),
            },
            Message::Remove {
                id: 9,
                path: b"f".to_vec(),
            },
        ]
    }

    #[test]
    fn every_message_round_trips_and_rejects_truncation() {
        for m in samples() {
            let (k, p) = m.encode();
            assert_eq!(Message::decode(k, &p).unwrap(), m);
            // Chunk payloads take the rest of the frame, so any cut parses;
            // for every other message, a cut is an error, never a panic.
            for cut in 0..p.len() {
                let _ = Message::decode(k, &p[..cut]);
            }
            let mut longer = p.clone();
            longer.push(0);
            if !matches!(m, Message::SigChunk { .. } | Message::DeltaChunk { .. }) {
                assert!(
                    Message::decode(k, &longer).is_err(),
                    "{m:?} accepts trailing bytes"
                );
            }
        }
        assert!(matches!(
            Message::decode(0xee, &[]),
            Err(WireError::UnknownMessage { kind: 0xee })
        ));
    }
}
