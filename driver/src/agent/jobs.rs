//! The three jobs that move file data, as the agent runs them.
//!
//! - **signature**: the basis side sums its current file (and reports any
//!   verified prefix kept from an interrupted transfer);
//! - **delta**: the source side checks a claimed prefix, then encodes the
//!   rest of its file against the signature, hashing every byte it reads;
//! - **patch**: the destination side rebuilds the file in
//!   `.deltasync/partial/`, checks the whole-file BLAKE3, sets mode and
//!   mtime, fsyncs, and renames it into place. If the stream breaks, the
//!   partial file stays: it holds a prefix of the new file, and the next
//!   run offers it for resume. The live file is untouched until the rename.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use crossbeam::channel::{Receiver, Sender};
use deltasync_engine::{
    DeltaOptions, FileBasis, IndexedSignature, Limits, PatchError, Signature, SignatureParams,
    apply_delta, read_signature, write_delta, write_signature,
};
use deltasync_wire::{Expect, FileStat, Message, Partial};

use super::root::{Root, system_time};
use crate::link::{ChunkReader, ChunkWriter, Credit, code, hex};
use crate::path::RelPath;

/// Where a destination path's partial file lives, by name.
pub fn partial_name(p: &RelPath) -> String {
    hex(&blake3::hash(p.as_bytes()).as_bytes()[..16])
}

fn stat_of(f: &File) -> io::Result<FileStat> {
    use std::os::unix::fs::MetadataExt;
    let m = f.metadata()?;
    Ok(FileStat {
        size: m.len(),
        mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        mode: m.mode() & 0o7777,
    })
}

/// An error reply for request `id` about `p`.
pub fn error(id: u64, code: u32, p: &RelPath, message: impl std::fmt::Display) -> Message {
    Message::Error {
        id,
        code,
        path: p.as_bytes().to_vec(),
        message: message.to_string(),
    }
}

fn io_code(e: &io::Error) -> u32 {
    if e.kind() == io::ErrorKind::NotFound {
        code::VANISHED
    } else {
        code::FILE_IO
    }
}

/// Files up to this size are signed in memory on one thread.
const SMALL_FILE: u64 = 1 << 20;

/// The signature of the file at `p` (empty if there is none), then `SigEnd`.
pub fn signature(
    root: &Root,
    id: u64,
    p: &RelPath,
    full_sums: bool,
    resume: bool,
    out: &Sender<Message>,
) {
    if let Err(reply) = try_signature(root, id, p, full_sums, resume, out) {
        let _ = out.send(reply);
    }
}

fn try_signature(
    root: &Root,
    id: u64,
    p: &RelPath,
    full_sums: bool,
    resume: bool,
    out: &Sender<Message>,
) -> Result<(), Message> {
    let fail = |c, e: &dyn std::fmt::Display| error(id, c, p, e);
    let basis = match root.lstat(p).map_err(|e| fail(code::FILE_IO, &e))? {
        Some(m) if m.is_file() => Some(root.open_file(p).map_err(|e| fail(io_code(&e), &e))?),
        _ => None,
    };
    let basis_stat = basis
        .as_ref()
        .map(stat_of)
        .transpose()
        .map_err(|e| fail(code::FILE_IO, &e))?;
    let mut params = SignatureParams::native(basis_stat.map_or(0, |s| s.size));
    if basis.is_none() {
        params.block_len = 1 << 16; // no blocks: only the literal chunk size matters
    }
    if full_sums {
        params = params.with_full_sums();
    }
    let mut w = ChunkWriter::new(out.clone(), |data| Message::SigChunk { id, data });
    match basis {
        Some(f) if basis_stat.is_some_and(|s| s.size > SMALL_FILE) => {
            write_signature(io::BufReader::with_capacity(1 << 20, f), &mut w, params)
                .map(|_| ())
                .map_err(|e| fail(code::FILE_IO, &e))?;
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
                .map_err(|e| fail(code::FILE_IO, &e))?;
        }
    }
    w.flush().map_err(|e| fail(code::FILE_IO, &e))?;
    let partial = if resume {
        partial_prefix(root, p)
    } else {
        None
    };
    out.send(Message::SigEnd {
        id,
        basis: basis_stat,
        partial,
    })
    .map_err(|_| fail(code::FILE_IO, &"closed"))
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

/// The delta of the file at `p` against `sig`, skipping a verified prefix.
pub fn delta(
    root: &Root,
    id: u64,
    p: &RelPath,
    skip: Option<Partial>,
    sig: &[u8],
    credit: Arc<Credit>,
    out: &Sender<Message>,
) {
    if let Err(reply) = try_delta(root, id, p, skip, sig, credit, out) {
        let _ = out.send(reply);
    }
}

fn try_delta(
    root: &Root,
    id: u64,
    p: &RelPath,
    skip: Option<Partial>,
    sig: &[u8],
    credit: Arc<Credit>,
    out: &Sender<Message>,
) -> Result<(), Message> {
    let fail = |c, e: &dyn std::fmt::Display| error(id, c, p, e);
    let sig = read_signature(sig, &Limits::default()).map_err(|e| fail(code::DATA, &e))?;
    let index = IndexedSignature::new(sig);
    let mut file = root.open_file(p).map_err(|e| fail(io_code(&e), &e))?;
    let before = stat_of(&file).map_err(|e| fail(code::FILE_IO, &e))?;
    let mut hasher = blake3::Hasher::new();
    let mut skipped = 0;
    if let Some(prefix) = skip.filter(|s| s.len <= before.size) {
        // The receiver kept `len` bytes; they count only if they are ours.
        let copied = io::copy(&mut (&mut file).take(prefix.len), &mut hasher)
            .map_err(|e| fail(code::FILE_IO, &e))?;
        if copied == prefix.len && *hasher.finalize().as_bytes() == prefix.blake3 {
            skipped = prefix.len;
        } else {
            hasher.reset();
            file.seek(SeekFrom::Start(0))
                .map_err(|e| fail(code::FILE_IO, &e))?;
        }
    }
    out.send(Message::DeltaStart { id, skipped })
        .map_err(|_| fail(code::FILE_IO, &"closed"))?;
    let mut tee = Tee {
        inner: io::BufReader::with_capacity(1 << 20, &file),
        hasher,
    };
    // Gated by the client's credit, so a large file cannot fill the link's
    // queues ahead of the small files behind it.
    let mut w =
        ChunkWriter::new(out.clone(), |data| Message::DeltaChunk { id, data }).gated(credit);
    let stats = write_delta(&index, &mut tee, &mut w, &DeltaOptions::default())
        .map_err(|e| fail(code::FILE_IO, &e))?;
    w.flush().map_err(|e| fail(code::FILE_IO, &e))?;
    let after = stat_of(&file).map_err(|e| fail(code::FILE_IO, &e))?;
    if after != before || skipped + stats.new_len != before.size {
        return Err(fail(code::CHANGED, &"file changed while it was being read"));
    }
    out.send(Message::DeltaEnd {
        id,
        stat: before,
        blake3: *tee.hasher.finalize().as_bytes(),
        skipped,
        literal: stats.literal_bytes,
        matched: stats.copy_bytes,
    })
    .map_err(|_| fail(code::FILE_IO, &"closed"))
}

/// What a patch job receives after its request: delta bytes on `chunks`
/// (`None` at the end), and the new file's stat and BLAKE3 on `end`, sent
/// just before that `None`. A sender dropped early means the transfer was
/// abandoned.
#[derive(Debug)]
pub struct PatchFeed {
    /// Delta bytes, then `None`.
    pub chunks: Receiver<Option<Vec<u8>>>,
    /// The new file's stat and hash.
    pub end: Receiver<(FileStat, [u8; 32])>,
}

/// Hashes and writes.
struct HashWriter {
    out: BufWriter<File>,
    hasher: blake3::Hasher,
}

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Rebuilds the file at `p` from delta chunks arriving on `rx`.
pub fn patch(
    root: Arc<Root>,
    id: u64,
    p: RelPath,
    resume_len: u64,
    expect: Expect,
    feed: PatchFeed,
    out: Sender<Message>,
) {
    let reply = match try_patch(&root, id, &p, resume_len, &expect, feed) {
        Ok(()) => Message::Done { id },
        Err(reply) => reply,
    };
    let _ = out.send(reply);
}

fn try_patch(
    root: &Root,
    id: u64,
    p: &RelPath,
    resume_len: u64,
    expect: &Expect,
    feed: PatchFeed,
) -> Result<(), Message> {
    let fail = |c, e: &dyn std::fmt::Display| error(id, c, p, e);
    root.check_writable().map_err(|e| fail(code::REFUSED, &e))?;
    let work = root
        .work_dir("partial")
        .map_err(|e| fail(code::FILE_IO, &e))?;
    let name = partial_name(p);
    let mut opts = cap_std::fs::OpenOptions::new();
    opts.read(true).write(true).create(true);
    let mut file = work
        .open_with(&name, &opts)
        .map_err(|e| fail(code::FILE_IO, &e))?
        .into_std();
    // Keep exactly the prefix the source agreed to skip, and hash it.
    let mut hasher = blake3::Hasher::new();
    let kept = io::copy(&mut (&mut file).take(resume_len), &mut hasher)
        .map_err(|e| fail(code::FILE_IO, &e))?;
    if kept != resume_len {
        return Err(fail(
            code::DATA,
            &format!("resume from {resume_len} bytes, but only {kept} are kept"),
        ));
    }
    file.set_len(resume_len)
        .map_err(|e| fail(code::FILE_IO, &e))?;
    file.seek(SeekFrom::Start(resume_len))
        .map_err(|e| fail(code::FILE_IO, &e))?;

    let basis = match root.lstat(p).map_err(|e| fail(code::FILE_IO, &e))? {
        Some(m) if m.is_file() => Some(
            root.open_file(p)
                .and_then(FileBasis::new)
                .map_err(|e| fail(code::FILE_IO, &e))?,
        ),
        _ => None,
    };
    // Delta bytes flow through a channel-fed reader, on this thread: a
    // helper thread per file costs more than a small file's whole patch.
    let mut writer = HashWriter {
        out: BufWriter::with_capacity(1 << 20, file),
        hasher,
    };
    let reader = ChunkReader::new(feed.chunks);
    let applied = match &basis {
        Some(b) => apply_delta(b, reader, &mut writer, &Limits::default()),
        None => apply_delta(&[][..], reader, &mut writer, &Limits::default()),
    };
    // The end may trail the delta's last command: wait for it, unless the
    // patch failed (then it does not matter) or the sender is gone
    // (abandoned: `None`).
    let end = if applied.is_ok() {
        feed.end.recv().ok()
    } else {
        None
    };
    let HashWriter {
        out: buffered,
        hasher,
    } = writer;
    let file = buffered
        .into_inner()
        .map_err(|e| fail(code::FILE_IO, &e.error()))?;
    match applied {
        Ok(_) => {}
        // A broken stream leaves a good prefix for the next run to resume.
        Err(PatchError::Io(e)) if e.kind() == io::ErrorKind::ConnectionAborted => {
            let _ = file.sync_data();
            return Err(fail(
                code::ABORTED,
                &"transfer abandoned; prefix kept for resume",
            ));
        }
        Err(e) => {
            drop(file);
            let _ = work.remove_file(&name);
            return Err(fail(code::DATA, &e));
        }
    }
    let Some((stat, expected)) = end else {
        return Err(fail(
            code::ABORTED,
            &"transfer abandoned; prefix kept for resume",
        ));
    };
    if *hasher.finalize().as_bytes() != expected {
        drop(file);
        let _ = work.remove_file(&name);
        return Err(fail(
            code::CHECKSUM,
            &"rebuilt file failed its BLAKE3 check",
        ));
    }
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(stat.mode & 0o7777))
            .map_err(|e| fail(code::FILE_IO, &e))?;
        file.set_modified(system_time(stat.mtime_ns))
            .map_err(|e| fail(code::FILE_IO, &e))?;
        file.sync_all().map_err(|e| fail(code::FILE_IO, &e))?;
    }
    drop(file);
    // RACE: the file at `p` may have changed since the client planned this
    // replacement. Check just before the rename; a change made between the
    // check and the rename is the one window left, and it is microseconds.
    match root.matches(p, expect) {
        Ok(true) => {}
        Ok(false) => {
            return Err(fail(
                code::CHANGED,
                &"changed since the plan was made; left alone (the new version stays in .deltasync/partial)",
            ));
        }
        Err(e) => return Err(fail(code::FILE_IO, &e)),
    }
    root.rename_in(&work, &name, p)
        .map_err(|e| fail(code::FILE_IO, &e))
}
