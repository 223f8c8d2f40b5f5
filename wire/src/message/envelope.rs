//! Type bytes and the byte layout of every message (see
//! `docs/protocol.md`). A message's type byte names both its envelope and
//! its body; every payload but the greeting starts with the request id.

use super::batch::*;
use super::fields::*;
use super::rounds::*;
use super::{
    Code, Feed, Hello, MAX_CHANGED, MAX_FILTERS, MAX_PATH, MAX_TEXT, Message, Reply, Request,
};
use crate::codec::{Dec, Enc};
use crate::error::WireError;

mod kind {
    pub const HELLO: u8 = 0x01;
    pub const BYE: u8 = 0x03;
    pub const CANCEL: u8 = 0x04;
    // Requests (Call).
    pub const LIST: u8 = 0x10;
    pub const SIGNATURE: u8 = 0x20;
    pub const DELTA: u8 = 0x30;
    pub const PATCH: u8 = 0x40;
    pub const MKDIR: u8 = 0x50;
    pub const SYMLINK: u8 = 0x51;
    pub const SET_ATTR: u8 = 0x52;
    pub const REMOVE: u8 = 0x53;
    pub const LINK: u8 = 0x54;
    pub const REPLICA_ID: u8 = 0x60;
    pub const HASH: u8 = 0x62;
    pub const STASH: u8 = 0x63;
    pub const RENAME: u8 = 0x64;
    pub const LOCK: u8 = 0x65;
    pub const UNLOCK: u8 = 0x66;
    pub const PURGE: u8 = 0x67;
    pub const PAIR: u8 = 0x68;
    pub const SPACE: u8 = 0x69;
    pub const WATCH: u8 = 0x6a;
    pub const MATCH: u8 = 0x6b;
    pub const READ: u8 = 0x35;
    pub const PUT: u8 = 0x42;
    // Replies.
    pub const ERROR: u8 = 0x02;
    pub const ENTRY: u8 = 0x11;
    pub const LIST_END: u8 = 0x12;
    pub const LIST_SAME: u8 = 0x13;
    pub const NOTICE: u8 = 0x14;
    pub const CHANGED: u8 = 0x15;
    pub const SIG_CHUNK: u8 = 0x21;
    pub const SIG_END: u8 = 0x22;
    pub const DELTA_CHUNK: u8 = 0x31;
    pub const DELTA_END: u8 = 0x32;
    pub const DELTA_START: u8 = 0x33;
    pub const MATCHED: u8 = 0x34;
    pub const FILES: u8 = 0x36;
    pub const PLACED: u8 = 0x43;
    pub const DONE: u8 = 0x41;
    pub const VALUE: u8 = 0x61;
    // Feeds.
    pub const FEED_SIG_CHUNK: u8 = 0x70;
    pub const FEED_SIG_END: u8 = 0x71;
    pub const FEED_DELTA_CHUNK: u8 = 0x72;
    pub const FEED_DELTA_END: u8 = 0x73;
    pub const FEED_CREDIT: u8 = 0x74;
}

const MAGIC: &[u8; 4] = b"DSYN";

fn kind_name(k: u8) -> Option<&'static str> {
    use kind::*;
    Some(match k {
        HELLO => "Hello",
        BYE => "Bye",
        CANCEL => "Cancel",
        LIST => "List",
        SIGNATURE => "Signature",
        DELTA => "Delta",
        PATCH => "Patch",
        MKDIR => "Mkdir",
        SYMLINK => "Symlink",
        SET_ATTR => "SetAttr",
        REMOVE => "Remove",
        LINK => "Link",
        REPLICA_ID => "ReplicaId",
        HASH => "Hash",
        STASH => "Stash",
        RENAME => "Rename",
        LOCK => "Lock",
        UNLOCK => "Unlock",
        PURGE => "Purge",
        PAIR => "Pair",
        SPACE => "Space",
        WATCH => "Watch",
        MATCH => "Match",
        READ => "Read",
        PUT => "Put",
        ERROR => "Error",
        ENTRY => "Entry",
        LIST_END => "ListEnd",
        LIST_SAME => "ListSame",
        NOTICE => "Notice",
        CHANGED => "Changed",
        SIG_CHUNK => "SigChunk",
        SIG_END => "SigEnd",
        DELTA_CHUNK => "DeltaChunk",
        DELTA_END => "DeltaEnd",
        DELTA_START => "DeltaStart",
        MATCHED => "Matched",
        FILES => "Files",
        PLACED => "Placed",
        DONE => "Done",
        VALUE => "Value",
        FEED_SIG_CHUNK => "Feed SigChunk",
        FEED_SIG_END => "Feed SigEnd",
        FEED_DELTA_CHUNK => "Feed DeltaChunk",
        FEED_DELTA_END => "Feed DeltaEnd",
        FEED_CREDIT => "Feed Credit",
        _ => return None,
    })
}

pub(super) fn encode(m: &Message) -> (u8, Vec<u8>) {
    let mut e = Enc::default();
    let k = match m {
        Message::Hello(h) => {
            e.buf.extend_from_slice(MAGIC);
            e.varint(u64::from(h.version))
                .str(&h.program)
                .varint(h.features)
                .varint(u64::from(h.max_frame))
                .ivarint(i64::from(h.compress_level));
            kind::HELLO
        }
        Message::Bye => kind::BYE,
        Message::Cancel { id } => {
            e.varint(*id);
            kind::CANCEL
        }
        Message::Call { id, req } => {
            e.varint(*id);
            put_request(&mut e, req)
        }
        Message::Feed { id, feed } => {
            e.varint(*id);
            put_feed(&mut e, feed)
        }
        Message::Reply { id, rep } => {
            e.varint(*id);
            put_reply(&mut e, rep)
        }
    };
    (k, e.buf)
}

fn put_request(e: &mut Enc, r: &Request) -> u8 {
    match r {
        Request::List {
            under,
            filters,
            wants,
            if_digest,
        } => {
            e.bytes(under);
            put_wants(e, wants);
            e.varint(filters.len() as u64);
            for f in filters {
                e.str(f);
            }
            e.opt_hash(if_digest);
            kind::LIST
        }
        Request::Signature {
            path,
            full_sums,
            resume,
            shape,
        } => {
            e.bytes(path).u8(u8::from(*full_sums)).u8(u8::from(*resume));
            put_shape(e, shape);
            kind::SIGNATURE
        }
        Request::Delta {
            path,
            skip,
            prefix,
            plan,
        } => {
            e.bytes(path);
            put_opt_partial(e, skip);
            put_opt_partial(e, prefix);
            match plan {
                Some(runs) => {
                    e.u8(1);
                    put_runs(e, runs);
                }
                None => {
                    e.u8(0);
                }
            }
            kind::DELTA
        }
        Request::Match { path, spans, basis } => {
            e.bytes(path);
            put_spans(e, spans);
            put_spans(e, basis);
            kind::MATCH
        }
        Request::Read { paths } => {
            put_paths(e, paths);
            kind::READ
        }
        Request::Put { files } => {
            put_puts(e, files);
            kind::PUT
        }
        Request::Patch {
            path,
            resume_len,
            expect,
            attrs,
            sparse,
            basis,
        } => {
            e.bytes(path).varint(*resume_len);
            put_expect(e, expect);
            put_attrs(e, attrs);
            e.u8(u8::from(*sparse));
            match basis {
                Some(b) => e.u8(1).bytes(b),
                None => e.u8(0),
            };
            kind::PATCH
        }
        Request::Hash { path } => {
            e.bytes(path);
            kind::HASH
        }
        Request::Mkdir { path, attrs } => {
            e.bytes(path);
            put_attrs(e, attrs);
            kind::MKDIR
        }
        Request::Symlink {
            path,
            target,
            attrs,
        } => {
            e.bytes(path).bytes(target);
            put_attrs(e, attrs);
            kind::SYMLINK
        }
        Request::Link {
            path,
            existing,
            expect,
        } => {
            e.bytes(path).bytes(existing);
            put_expect(e, expect);
            kind::LINK
        }
        Request::SetAttr {
            path,
            attrs,
            expect,
        } => {
            e.bytes(path);
            put_attrs(e, attrs);
            put_expect(e, expect);
            kind::SET_ATTR
        }
        Request::Remove { path, expect } => {
            e.bytes(path);
            put_expect(e, expect);
            kind::REMOVE
        }
        Request::Stash { path, area, expect } => {
            e.bytes(path);
            put_area(e, *area);
            put_expect(e, expect);
            kind::STASH
        }
        Request::Rename { from, to, expect } => {
            e.bytes(from).bytes(to);
            put_expect(e, expect);
            kind::RENAME
        }
        Request::ReplicaId { create } => {
            e.u8(u8::from(*create));
            kind::REPLICA_ID
        }
        Request::Lock {
            owner,
            force,
            replica,
        } => {
            e.str(owner).u8(u8::from(*force));
            put_opt_str(e, replica.as_deref());
            kind::LOCK
        }
        Request::Unlock => kind::UNLOCK,
        Request::Space => kind::SPACE,
        Request::Watch => kind::WATCH,
        Request::Purge { days } => {
            e.varint(u64::from(*days));
            kind::PURGE
        }
        Request::Pair { pair, set } => {
            e.str(pair);
            put_opt_str(e, set.as_deref());
            kind::PAIR
        }
    }
}

fn put_feed(e: &mut Enc, f: &Feed) -> u8 {
    match f {
        Feed::SigChunk(data) => {
            e.buf.extend_from_slice(data);
            kind::FEED_SIG_CHUNK
        }
        Feed::SigEnd => kind::FEED_SIG_END,
        Feed::DeltaChunk(data) => {
            e.buf.extend_from_slice(data);
            kind::FEED_DELTA_CHUNK
        }
        Feed::DeltaEnd { stat, blake3 } => {
            put_stat(e, stat);
            e.hash(blake3);
            kind::FEED_DELTA_END
        }
        Feed::Credit(bytes) => {
            e.varint(*bytes);
            kind::FEED_CREDIT
        }
    }
}

fn put_reply(e: &mut Enc, r: &Reply) -> u8 {
    match r {
        Reply::Error {
            code,
            path,
            message,
        } => {
            e.varint(u64::from(code.number())).bytes(path).str(message);
            kind::ERROR
        }
        Reply::Notice {
            code,
            path,
            message,
        } => {
            e.varint(u64::from(code.number())).bytes(path).str(message);
            kind::NOTICE
        }
        Reply::Changed { paths, overflow } => {
            e.u8(u8::from(*overflow)).varint(paths.len() as u64);
            for p in paths {
                e.bytes(p);
            }
            kind::CHANGED
        }
        Reply::Done => kind::DONE,
        Reply::Value(text) => {
            e.str(text);
            kind::VALUE
        }
        Reply::Entry(entry) => {
            put_entry(e, entry);
            kind::ENTRY
        }
        Reply::ListEnd { count, digest } => {
            e.varint(*count).hash(digest);
            kind::LIST_END
        }
        Reply::ListSame { count, digest } => {
            e.varint(*count).hash(digest);
            kind::LIST_SAME
        }
        Reply::SigChunk(data) => {
            e.buf.extend_from_slice(data);
            kind::SIG_CHUNK
        }
        Reply::SigEnd { basis, partial } => {
            put_opt_stat(e, basis);
            put_opt_partial(e, partial);
            kind::SIG_END
        }
        Reply::DeltaStart { skipped } => {
            e.varint(*skipped);
            kind::DELTA_START
        }
        Reply::Matched { stat, runs } => {
            put_stat(e, stat);
            put_runs(e, runs);
            kind::MATCHED
        }
        Reply::Files(files) => {
            put_files(e, files);
            kind::FILES
        }
        Reply::Placed(placed) => {
            put_placed(e, placed);
            kind::PLACED
        }
        Reply::DeltaChunk(data) => {
            e.buf.extend_from_slice(data);
            kind::DELTA_CHUNK
        }
        Reply::DeltaEnd {
            stat,
            blake3,
            skipped,
            literal,
            matched,
        } => {
            put_stat(e, stat);
            e.hash(blake3)
                .varint(*skipped)
                .varint(*literal)
                .varint(*matched);
            kind::DELTA_END
        }
    }
}

pub(super) fn decode(k: u8, payload: &[u8]) -> Result<Message, WireError> {
    use kind::*;
    let name = kind_name(k).ok_or(WireError::UnknownMessage { kind: k })?;
    let mut d = Dec::new(payload, name);
    let msg = match k {
        HELLO => {
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
                compress_level: i32::try_from(d.ivarint()?)
                    .map_err(|_| WireError::malformed(name, "compression level out of range"))?,
            })
        }
        BYE => Message::Bye,
        CANCEL => Message::Cancel { id: d.varint()? },
        LIST | SIGNATURE | DELTA | PATCH | MKDIR | SYMLINK | SET_ATTR | REMOVE | LINK
        | REPLICA_ID | HASH | STASH | RENAME | LOCK | UNLOCK | PURGE | PAIR | SPACE | WATCH
        | MATCH | READ | PUT => {
            let id = d.varint()?;
            Message::Call {
                id,
                req: get_request(k, &mut d)?,
            }
        }
        FEED_SIG_CHUNK | FEED_SIG_END | FEED_DELTA_CHUNK | FEED_DELTA_END | FEED_CREDIT => {
            let id = d.varint()?;
            let feed = match k {
                FEED_SIG_CHUNK => Feed::SigChunk(d.rest().to_vec()),
                FEED_SIG_END => Feed::SigEnd,
                FEED_DELTA_CHUNK => Feed::DeltaChunk(d.rest().to_vec()),
                FEED_DELTA_END => Feed::DeltaEnd {
                    stat: get_stat(&mut d)?,
                    blake3: d.hash()?,
                },
                _ => Feed::Credit(d.varint()?),
            };
            Message::Feed { id, feed }
        }
        _ => {
            let id = d.varint()?;
            Message::Reply {
                id,
                rep: get_reply(k, &mut d)?,
            }
        }
    };
    d.finish()?;
    Ok(msg)
}

fn get_request(k: u8, d: &mut Dec<'_>) -> Result<Request, WireError> {
    use kind::*;
    let path = |d: &mut Dec<'_>| d.bytes(MAX_PATH).map(<[u8]>::to_vec);
    Ok(match k {
        LIST => {
            let under = path(d)?;
            let wants = get_wants(d)?;
            let n = d.varint()?;
            if n > MAX_FILTERS {
                return Err(WireError::malformed(
                    "List",
                    format!("{n} filters exceed the limit of {MAX_FILTERS}"),
                ));
            }
            let mut filters = Vec::new();
            for _ in 0..n {
                filters.push(d.string(MAX_TEXT)?);
            }
            Request::List {
                under,
                filters,
                wants,
                if_digest: d.opt_hash()?,
            }
        }
        SIGNATURE => Request::Signature {
            path: path(d)?,
            full_sums: d.bool()?,
            resume: d.bool()?,
            shape: get_shape(d)?,
        },
        DELTA => Request::Delta {
            path: path(d)?,
            skip: get_opt_partial(d)?,
            prefix: get_opt_partial(d)?,
            plan: if d.bool()? {
                Some(get_runs(d, "Delta")?)
            } else {
                None
            },
        },
        MATCH => Request::Match {
            path: path(d)?,
            spans: get_spans(d, "Match")?,
            basis: get_spans(d, "Match")?,
        },
        PATCH => Request::Patch {
            path: path(d)?,
            resume_len: d.varint()?,
            expect: get_expect(d)?,
            attrs: get_attrs(d)?,
            sparse: d.bool()?,
            basis: if d.bool()? { Some(path(d)?) } else { None },
        },
        HASH => Request::Hash { path: path(d)? },
        READ => Request::Read {
            paths: get_paths(d)?,
        },
        PUT => Request::Put {
            files: get_puts(d)?,
        },
        MKDIR => Request::Mkdir {
            path: path(d)?,
            attrs: get_attrs(d)?,
        },
        SYMLINK => Request::Symlink {
            path: path(d)?,
            target: path(d)?,
            attrs: get_attrs(d)?,
        },
        LINK => Request::Link {
            path: path(d)?,
            existing: path(d)?,
            expect: get_expect(d)?,
        },
        SET_ATTR => Request::SetAttr {
            path: path(d)?,
            attrs: get_attrs(d)?,
            expect: get_expect(d)?,
        },
        REMOVE => Request::Remove {
            path: path(d)?,
            expect: get_expect(d)?,
        },
        STASH => Request::Stash {
            path: path(d)?,
            area: get_area(d)?,
            expect: get_expect(d)?,
        },
        RENAME => Request::Rename {
            from: path(d)?,
            to: path(d)?,
            expect: get_expect(d)?,
        },
        REPLICA_ID => Request::ReplicaId { create: d.bool()? },
        LOCK => Request::Lock {
            owner: d.string(MAX_TEXT)?,
            force: d.bool()?,
            replica: get_opt_str(d)?,
        },
        UNLOCK => Request::Unlock,
        SPACE => Request::Space,
        WATCH => Request::Watch,
        PURGE => Request::Purge { days: d.u32()? },
        _ => Request::Pair {
            pair: d.string(MAX_TEXT)?,
            set: get_opt_str(d)?,
        },
    })
}

fn get_reply(k: u8, d: &mut Dec<'_>) -> Result<Reply, WireError> {
    use kind::*;
    Ok(match k {
        ERROR | NOTICE => {
            let code = Code::from_number(d.u32()?);
            let path = d.bytes(MAX_PATH)?.to_vec();
            let message = d.string(MAX_TEXT)?;
            if k == ERROR {
                Reply::Error {
                    code,
                    path,
                    message,
                }
            } else {
                Reply::Notice {
                    code,
                    path,
                    message,
                }
            }
        }
        CHANGED => {
            let overflow = d.bool()?;
            let n = d.varint()?;
            if n > MAX_CHANGED {
                return Err(WireError::malformed(
                    "Changed",
                    format!("{n} paths exceed the limit of {MAX_CHANGED}"),
                ));
            }
            let mut paths = Vec::new();
            for _ in 0..n {
                paths.push(d.bytes(MAX_PATH)?.to_vec());
            }
            Reply::Changed { paths, overflow }
        }
        DONE => Reply::Done,
        VALUE => Reply::Value(d.string(MAX_TEXT)?),
        ENTRY => Reply::Entry(Box::new(get_entry(d)?)),
        LIST_END => Reply::ListEnd {
            count: d.varint()?,
            digest: d.hash()?,
        },
        LIST_SAME => Reply::ListSame {
            count: d.varint()?,
            digest: d.hash()?,
        },
        SIG_CHUNK => Reply::SigChunk(d.rest().to_vec()),
        SIG_END => Reply::SigEnd {
            basis: get_opt_stat(d)?,
            partial: get_opt_partial(d)?,
        },
        DELTA_START => Reply::DeltaStart {
            skipped: d.varint()?,
        },
        MATCHED => Reply::Matched {
            stat: get_stat(d)?,
            runs: get_runs(d, "Matched")?,
        },
        DELTA_CHUNK => Reply::DeltaChunk(d.rest().to_vec()),
        FILES => Reply::Files(get_files(d)?),
        PLACED => Reply::Placed(get_placed(d)?),
        _ => Reply::DeltaEnd {
            stat: get_stat(d)?,
            blake3: d.hash()?,
            skipped: d.varint()?,
            literal: d.varint()?,
            matched: d.varint()?,
        },
    })
}
