//! Two of the three jobs that move file data, as the agent runs them (the
//! third, the patch, is in `patch.rs`), and the rounds between them:
//!
//! - **signature**: the basis side sums its current file (and reports any
//!   verified prefix kept from an interrupted transfer), with native or
//!   coarse blocks, or only some spans of it for a later round;
//! - **match**: the source side searches spans of its file against one
//!   round's signature and reports the runs it found;
//! - **delta**: the source side checks a claimed prefix, then encodes the
//!   rest of its file against the signature, or as the rounds' runs say,
//!   hashing every byte it reads.
//!
//! Each sends its replies itself and ends with a terminal one.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use crossbeam::channel::Sender;
use deltasync_engine::rounds::{self, SpanReader};
use deltasync_engine::{
    DeltaOptions, IndexedSignature, Limits, Signature, SignatureParams, read_signature,
    write_delta, write_signature,
};
use deltasync_wire::{Code, FileStat, Message, Partial, Reply, Run, SigShape, Span};

use super::root::{Root, mtime_of};
use crate::link::{ChunkWriter, Credit, hex};
use crate::path::RelPath;
use crate::runs;

/// Where a destination path's partial file lives, by name.
pub fn partial_name(p: &RelPath) -> String {
    hex(&blake3::hash(p.as_bytes()).as_bytes()[..16])
}

/// The stat of an open file.
pub(super) fn stat_of(f: &File) -> io::Result<FileStat> {
    f.metadata().map(|m| stat_from(&m))
}

/// The stat in `m`.
pub(super) fn stat_from(m: &std::fs::Metadata) -> FileStat {
    use std::os::unix::fs::MetadataExt;
    FileStat {
        size: m.len(),
        mtime: deltasync_wire::Mtime::new(m.mtime(), m.mtime_nsec()),
        mode: m.mode() & 0o7777,
    }
}

/// The code for an I/O error: a missing file vanished, a refused one was
/// refused, anything else is a file I/O error.
pub(super) fn io_code(e: &io::Error) -> Code {
    match e.kind() {
        io::ErrorKind::NotFound => Code::Vanished,
        io::ErrorKind::PermissionDenied => Code::Refused,
        _ => Code::FileIo,
    }
}

/// Files up to this size are signed in memory on one thread.
const SMALL_FILE: u64 = 1 << 20;

/// The basis file at `p`, if there is a regular file there that we may
/// read. A file we may not read (mode 000) is no basis: the source then
/// sends its whole file, which replaces it.
pub(super) fn open_basis(root: &Root, p: &RelPath) -> io::Result<Option<File>> {
    match root.lstat(p)? {
        Some(m) if m.is_file() => match root.open_file(p) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Ok(None),
            Err(e) => Err(e),
        },
        _ => Ok(None),
    }
}

/// The signature of the file at `p` (empty if there is none), then `SigEnd`.
pub fn signature(
    root: &Root,
    id: u64,
    p: &RelPath,
    full_sums: bool,
    resume: bool,
    shape: &SigShape,
    out: &Sender<Message>,
) {
    if let Err(rep) = try_signature(root, id, p, full_sums, resume, shape, out) {
        let _ = out.send(Message::Reply { id, rep });
    }
}

fn try_signature(
    root: &Root,
    id: u64,
    p: &RelPath,
    full_sums: bool,
    resume: bool,
    shape: &SigShape,
    out: &Sender<Message>,
) -> Result<(), Reply> {
    let fail = |c, e: &dyn std::fmt::Display| Reply::error(c, p.as_bytes(), e);
    let basis = open_basis(root, p).map_err(|e| fail(io_code(&e), &e))?;
    let basis_stat = basis
        .as_ref()
        .map(stat_of)
        .transpose()
        .map_err(|e| fail(Code::FileIo, &e))?;
    let size = basis_stat.map_or(0, |s| s.size);
    let mut params = match shape {
        SigShape::Native => SignatureParams::native(size),
        SigShape::Coarse => rounds::round_params(size, rounds::coarse_block_len(size)),
        SigShape::Spans { block_len, spans } => {
            let Some(f) = basis else {
                return Err(fail(Code::Changed, &"the basis vanished between rounds"));
            };
            if spans.last().is_some_and(|s| s.end() > size) {
                return Err(fail(
                    Code::Changed,
                    &format_args!("the basis changed between rounds (now {size} bytes)"),
                ));
            }
            let total = spans.iter().map(|s| s.len).sum();
            let params = rounds::round_params(total, *block_len);
            let mut w = ChunkWriter::new(out.clone(), move |data| Message::Reply {
                id,
                rep: Reply::SigChunk(data),
            });
            let spans = runs::spans_in(spans);
            let spanned = SpanReader::new(io::BufReader::with_capacity(1 << 16, f), &spans);
            write_signature(spanned, &mut w, params)
                .and_then(|_| w.flush().map_err(Into::into))
                .map_err(|e| fail(Code::FileIo, &e))?;
            return out
                .send(Message::Reply {
                    id,
                    rep: Reply::SigEnd {
                        basis: basis_stat,
                        partial: None,
                    },
                })
                .map_err(|_| fail(Code::FileIo, &"closed"));
        }
    };
    if basis.is_none() {
        params.block_len = 1 << 16; // no blocks: only the literal chunk size matters
    }
    if full_sums {
        params = params.with_full_sums();
    }
    let mut w = ChunkWriter::new(out.clone(), move |data| Message::Reply {
        id,
        rep: Reply::SigChunk(data),
    });
    match basis {
        Some(f) if basis_stat.is_some_and(|s| s.size > SMALL_FILE) => {
            write_signature(io::BufReader::with_capacity(1 << 20, f), &mut w, params)
                .map(|_| ())
                .map_err(|e| fail(Code::FileIo, &e))?;
        }
        // Small or missing: in memory on this thread, since starting the
        // pipelined workers costs more than hashing a small file.
        small => {
            let mut data = Vec::new();
            if let Some(f) = small {
                f.take(SMALL_FILE + 1)
                    .read_to_end(&mut data)
                    .map_err(|e| fail(io_code(&e), &e))?;
            }
            w.write_all(&Signature::generate_on(&data, params, 1).to_bytes())
                .map_err(|e| fail(Code::FileIo, &e))?;
        }
    }
    w.flush().map_err(|e| fail(Code::FileIo, &e))?;
    let partial = if resume {
        partial_prefix(root, p)
    } else {
        None
    };
    out.send(Message::Reply {
        id,
        rep: Reply::SigEnd {
            basis: basis_stat,
            partial,
        },
    })
    .map_err(|_| fail(Code::FileIo, &"closed"))
}

/// The verified prefix kept for `p`, if any (never on a read-only agent).
fn partial_prefix(root: &Root, p: &RelPath) -> Option<Partial> {
    let dir = root.work_dir("partial").ok()?;
    let mut f = dir.open(partial_name(p)).ok()?.into_std();
    let mut h = blake3::Hasher::new();
    let len = io::copy(&mut f, &mut h).ok()?;
    (len > 0).then(|| Partial {
        len,
        blake3: *h.finalize().as_bytes(),
    })
}

/// Hashes everything read through it.
struct Tee<R> {
    inner: R,
    hasher: blake3::Hasher,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// One round: the runs of `p`'s `spans` (all of it if empty) found in a
/// signature of the basis's `basis` spans (all of it if empty).
pub fn matches(
    root: &Root,
    id: u64,
    p: &RelPath,
    spans: &[Span],
    basis: &[Span],
    sig: &[u8],
    out: &Sender<Message>,
) {
    let fail = |c, e: &dyn std::fmt::Display| Reply::error(c, p.as_bytes(), e);
    let or_whole = |s: &[Span]| {
        if s.is_empty() {
            vec![rounds::Span {
                start: 0,
                len: u64::MAX,
            }]
        } else {
            runs::spans_in(s)
        }
    };
    let run = || -> Result<Reply, Reply> {
        let sig = read_signature(sig, &Limits::default()).map_err(|e| fail(Code::Data, &e))?;
        let index = IndexedSignature::new(sig);
        let file = root.open_file(p).map_err(|e| fail(io_code(&e), &e))?;
        let before = stat_of(&file).map_err(|e| fail(Code::FileIo, &e))?;
        let spans = or_whole(spans);
        let reader = SpanReader::new(io::BufReader::with_capacity(1 << 20, &file), &spans);
        let found = rounds::find_runs(&index, reader, &spans, &or_whole(basis), rounds::MAX_RUNS)
            .map_err(|e| fail(Code::FileIo, &e))?;
        if stat_of(&file).map_err(|e| fail(Code::FileIo, &e))? != before {
            return Err(fail(Code::Changed, &"file changed while it was being read"));
        }
        Ok(Reply::Matched {
            stat: before,
            runs: runs::runs_out(&found),
        })
    };
    let rep = run().unwrap_or_else(|e| e);
    let _ = out.send(Message::Reply { id, rep });
}

/// Reads `file` from where it stands: if its next `prefix.len` bytes have
/// BLAKE3 `prefix.blake3`, the hasher that has taken them; else `None`,
/// with `file` back at its start.
fn read_prefix(file: &mut File, prefix: &Partial) -> io::Result<Option<blake3::Hasher>> {
    let mut hasher = blake3::Hasher::new();
    let read = io::copy(&mut file.take(prefix.len), &mut hasher)?;
    if read == prefix.len && *hasher.finalize().as_bytes() == prefix.blake3 {
        return Ok(Some(hasher));
    }
    file.seek(SeekFrom::Start(0))?;
    Ok(None)
}

/// What a delta is made against: a peer's signature, or the rounds' runs.
pub enum Against<'a> {
    /// A serialized signature.
    Signature(&'a [u8]),
    /// Runs found by the rounds, or guessed.
    Plan(&'a Planned),
}

/// A delta's runs, known without a signature: found by the rounds, or (with
/// `prefix`) guessed by a client that knows what the destination holds, an
/// append, which stands only if the file starts with exactly that.
#[derive(Debug, PartialEq, Eq)]
pub struct Planned {
    /// Where the new file equals the basis.
    pub runs: Vec<Run>,
    /// The first `len` bytes the file must have, by BLAKE3.
    pub prefix: Option<Partial>,
}

/// The delta of the file at `p` against a signature or a plan, skipping a
/// verified prefix.
pub fn delta(
    root: &Root,
    id: u64,
    p: &RelPath,
    skip: Option<Partial>,
    against: Against<'_>,
    credit: Arc<Credit>,
    out: &Sender<Message>,
) {
    if let Err(rep) = try_delta(root, id, p, skip, against, credit, out) {
        let _ = out.send(Message::Reply { id, rep });
    }
}

fn try_delta(
    root: &Root,
    id: u64,
    p: &RelPath,
    skip: Option<Partial>,
    against: Against<'_>,
    credit: Arc<Credit>,
    out: &Sender<Message>,
) -> Result<(), Reply> {
    let fail = |c, e: &dyn std::fmt::Display| Reply::error(c, p.as_bytes(), e);
    let index = match against {
        Against::Signature(sig) => Ok(IndexedSignature::new(
            read_signature(sig, &Limits::default()).map_err(|e| fail(Code::Data, &e))?,
        )),
        Against::Plan(planned) => Err(runs::runs_in(&planned.runs)),
    };
    let mut file = root.open_file(p).map_err(|e| fail(io_code(&e), &e))?;
    let before = stat_of(&file).map_err(|e| fail(Code::FileIo, &e))?;
    if let Against::Plan(Planned {
        prefix: Some(prefix),
        ..
    }) = against
    {
        let found = read_prefix(&mut file, prefix).map_err(|e| fail(Code::FileIo, &e))?;
        if found.is_none() {
            return Err(fail(
                Code::NotPrefix,
                &"does not start with the destination's file",
            ));
        }
        // The delta reads the file from its start again: its copy of the
        // prefix is a run like any other, and the whole-file BLAKE3 needs
        // those bytes too. A second read of a page-cached prefix, which the
        // signature round it spares would have cost more than.
        file.seek(SeekFrom::Start(0))
            .map_err(|e| fail(Code::FileIo, &e))?;
    }
    // The receiver kept `skip.len` bytes; they count only if they are ours.
    let kept = match skip.filter(|s| s.len <= before.size) {
        Some(prefix) => read_prefix(&mut file, &prefix)
            .map_err(|e| fail(Code::FileIo, &e))?
            .map(|hasher| (hasher, prefix.len)),
        None => None,
    };
    let (hasher, skipped) = kept.unwrap_or_else(|| (blake3::Hasher::new(), 0));
    out.send(Message::Reply {
        id,
        rep: Reply::DeltaStart { skipped },
    })
    .map_err(|_| fail(Code::FileIo, &"closed"))?;
    let mut tee = Tee {
        // Sized to the file (a small one should not cost a 1 MiB buffer).
        inner: io::BufReader::with_capacity(
            (before.size.saturating_sub(skipped) + 1).clamp(8 << 10, 1 << 20) as usize,
            &file,
        ),
        hasher,
    };
    // Gated by the client's credit, so a large file cannot fill the link's
    // queues ahead of the small files behind it.
    let mut w = ChunkWriter::new(out.clone(), move |data| Message::Reply {
        id,
        rep: Reply::DeltaChunk(data),
    })
    .gated(credit);
    let stats = match &index {
        Ok(index) => write_delta(index, &mut tee, &mut w, &DeltaOptions::default()),
        Err(plan) => rounds::write_planned_delta(plan, skipped, &mut tee, &mut w),
    }
    .map_err(|e| fail(Code::FileIo, &e))?;
    w.flush().map_err(|e| fail(Code::FileIo, &e))?;
    let after = stat_of(&file).map_err(|e| fail(Code::FileIo, &e))?;
    if after != before || skipped + stats.new_len != before.size {
        return Err(fail(Code::Changed, &"file changed while it was being read"));
    }
    // RACE: the file at `p` may have been replaced (renamed over) while we
    // read the old one through our descriptor. Then what we sent is not
    // what is there now, and the stat we report must not be taken for it.
    match root.lstat(p) {
        Ok(Some(m)) if m.is_file() && m.len() == before.size && mtime_of(&m) == before.mtime => {}
        _ => {
            return Err(fail(
                Code::Changed,
                &"file replaced while it was being read",
            ));
        }
    }
    out.send(Message::Reply {
        id,
        rep: Reply::DeltaEnd {
            stat: before,
            blake3: *tee.hasher.finalize().as_bytes(),
            skipped,
            literal: stats.literal_bytes,
            matched: stats.copy_bytes,
        },
    })
    .map_err(|_| fail(Code::FileIo, &"closed"))
}
