//! The patch job: the destination side rebuilds a file from a delta.
//!
//! The new file is written in `.deltasync/partial/`, checked against the
//! source's whole-file BLAKE3, and given its mode, owner, attributes and
//! mtime. A small new file is then handed to the group commit
//! ([`commit`](super::commit)); a large or resumed one is fsynced here and
//! renamed into place only if the live path still holds what the client's
//! plan saw. The live file is untouched until the rename.
//!
//! If the stream breaks (the client cancels or dies), the partial file
//! stays: it holds a verified prefix of the new file, and the next run
//! offers it for resume. On any other failure (bad data, a failed check, a
//! full disk) it is removed: a prefix that cannot be trusted or finished
//! must not sit there taking space.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};

use crossbeam::channel::Receiver;
use deltasync_engine::{FileBasis, Limits, PatchError, apply_delta};
use deltasync_wire::{Attrs, Code, Expect, FileStat, Message, Reply};

use super::attrs::apply_to_file;
use super::commit::{GROUP_MAX, Ready, settle};
use super::jobs::{open_basis, partial_name};
use super::root::Root;
use crate::link::ChunkReader;
use crate::path::RelPath;

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

/// What to build, and how.
#[derive(Debug)]
pub struct PatchJob {
    /// The request's id.
    pub id: u64,
    /// The destination path.
    pub path: RelPath,
    /// Bytes of the partial file the source agreed to skip.
    pub resume_len: u64,
    /// What must be at `path` when the new file replaces it.
    pub expect: Expect,
    /// Owner and extended attributes for the new file.
    pub attrs: Attrs,
    /// Write runs of zeros as holes.
    pub sparse: bool,
    /// Copy from this file instead of `path`'s (`--fuzzy`).
    pub basis: Option<RelPath>,
}

/// How a patch job ended.
#[derive(Debug)]
pub enum Patched {
    /// Finished (in place, or failed): the one reply, for the caller to send.
    Reply(Message),
    /// Written and checked, waiting for the group commit to make it
    /// durable and rename it; the commit replies.
    Ready(Ready),
}

/// Rebuilds the file at `job.path` from delta chunks arriving on `feed`.
pub fn patch(root: &Root, job: PatchJob, feed: PatchFeed) -> Patched {
    let id = job.id;
    match try_patch(root, job, feed) {
        Ok(None) => Patched::Reply(Message::Reply {
            id,
            rep: Reply::Done,
        }),
        Ok(Some(ready)) => Patched::Ready(ready),
        Err(rep) => Patched::Reply(Message::Reply { id, rep }),
    }
}

/// Removes the partial file when dropped, unless told to keep it.
struct Partial<'a> {
    dir: &'a cap_std::fs::Dir,
    name: &'a str,
    keep: bool,
}

impl Drop for Partial<'_> {
    fn drop(&mut self) {
        if !self.keep {
            let _ = self.dir.remove_file(self.name);
        }
    }
}

fn try_patch(root: &Root, job: PatchJob, feed: PatchFeed) -> Result<Option<Ready>, Reply> {
    let p = &job.path;
    let fail = |c, e: &dyn std::fmt::Display| Reply::error(c, p.as_bytes(), e);
    root.check_writable().map_err(|e| fail(Code::Refused, &e))?;
    let work = root
        .work_dir("partial")
        .map_err(|e| fail(Code::FileIo, &e))?;
    let name = partial_name(p);
    let mut opts = cap_std::fs::OpenOptions::new();
    opts.read(true).write(true).create(true);
    let mut file = work
        .open_with(&name, &opts)
        .map_err(|e| fail(Code::FileIo, &e))?
        .into_std();
    let mut guard = Partial {
        dir: &work,
        name: &name,
        keep: false,
    };
    // Keep exactly the prefix the source agreed to skip, and hash it.
    let mut hasher = blake3::Hasher::new();
    let kept = io::copy(&mut (&mut file).take(job.resume_len), &mut hasher)
        .map_err(|e| fail(Code::FileIo, &e))?;
    if kept != job.resume_len {
        return Err(fail(
            Code::Data,
            &format!(
                "resume from {} bytes, but only {kept} are kept",
                job.resume_len
            ),
        ));
    }
    file.set_len(job.resume_len)
        .map_err(|e| fail(Code::FileIo, &e))?;
    if job.resume_len > 0 {
        // (A file just opened is at 0 already.)
        file.seek(SeekFrom::Start(job.resume_len))
            .map_err(|e| fail(Code::FileIo, &e))?;
    }

    // A file the plan saw absent has no basis worth opening (unless the
    // client named a similar one): were one there now, the `Expect` check
    // refuses the rename anyway.
    let basis = if job.expect == Expect::Absent && job.basis.is_none() {
        None
    } else {
        open_basis(root, job.basis.as_ref().unwrap_or(p))
            .and_then(|f| f.map(FileBasis::new).transpose())
            .map_err(|e| fail(Code::FileIo, &e))?
    };
    // Delta bytes flow through a channel-fed reader, on this thread: a
    // helper thread per file costs more than a small file's whole patch.
    let mut writer = HashWriter {
        out: BufWriter::with_capacity(64 << 10, Sparse::new(file, job.sparse)),
        hasher,
        written: job.resume_len,
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
        written,
    } = writer;
    let file = buffered
        .into_inner()
        .map_err(|e| fail(Code::FileIo, &e.error()))?
        .finish()
        .map_err(|e| fail(Code::FileIo, &e))?;
    match applied {
        Ok(_) => {}
        // A broken stream leaves a good prefix for the next run to resume.
        Err(PatchError::Io(e)) if e.kind() == io::ErrorKind::ConnectionAborted => {
            let _ = file.sync_data();
            guard.keep = true;
            return Err(fail(
                Code::Aborted,
                &"transfer abandoned; prefix kept for resume",
            ));
        }
        Err(PatchError::Io(e)) => return Err(fail(Code::FileIo, &e)),
        Err(e) => return Err(fail(Code::Data, &e)),
    }
    let Some((stat, expected)) = end else {
        let _ = file.sync_data();
        guard.keep = true;
        return Err(fail(
            Code::Aborted,
            &"transfer abandoned; prefix kept for resume",
        ));
    };
    if *hasher.finalize().as_bytes() != expected {
        return Err(fail(
            Code::Checksum,
            &"rebuilt file failed its BLAKE3 check",
        ));
    }
    let attrs = Attrs {
        mode: Some(stat.mode),
        mtime: Some(stat.mtime),
        ..job.attrs.clone()
    };
    apply_to_file(&file, &attrs).map_err(|e| fail(Code::FileIo, &e))?;
    if job.resume_len == 0 && written <= GROUP_MAX {
        guard.keep = true; // the commit owns it now
        drop(guard);
        return Ok(Some(Ready {
            id: job.id,
            path: job.path,
            expect: job.expect,
            name,
            written: super::commit::syncs_so_far(),
        }));
    }
    file.sync_all().map_err(|e| fail(Code::FileIo, &e))?;
    drop(file);
    guard.keep = true; // `settle` keeps or removes it
    settle(root, &work, &name, p, &job.expect)?;
    // `Done` means durable, the rename too.
    root.sync_parent(p).map_err(|e| {
        fail(
            Code::FileIo,
            &format!("renamed into place, but its folder's fsync failed: {e}"),
        )
    })?;
    Ok(None)
}

/// Hashes, counts and writes.
struct HashWriter<W: Write> {
    out: W,
    hasher: blake3::Hasher,
    /// The file's length so far.
    written: u64,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Holes in sparse files come in blocks of this size.
const HOLE_BLOCK: usize = 4096;

/// A file writer that, when `sparse`, seeks over whole blocks of zeros
/// instead of writing them, so they stay holes (rsync's `-S`).
struct Sparse {
    file: File,
    sparse: bool,
    /// Zero bytes skipped and not yet accounted for by a later write.
    hole: u64,
}

impl Sparse {
    fn new(file: File, sparse: bool) -> Sparse {
        Sparse {
            file,
            sparse,
            hole: 0,
        }
    }

    fn settle_hole(&mut self) -> io::Result<()> {
        if self.hole > 0 {
            self.file.seek(SeekFrom::Current(self.hole as i64))?;
            self.hole = 0;
        }
        Ok(())
    }

    /// Ends the file: a trailing hole still counts toward its length.
    fn finish(mut self) -> io::Result<File> {
        if self.hole > 0 {
            let end = self.file.stream_position()? + self.hole;
            self.file.set_len(end)?;
            self.file.seek(SeekFrom::Start(end))?;
            self.hole = 0;
        }
        Ok(self.file)
    }
}

impl Write for Sparse {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.sparse {
            return self.file.write(buf);
        }
        for block in buf.chunks(HOLE_BLOCK) {
            if block.len() == HOLE_BLOCK && block.iter().all(|&b| b == 0) {
                self.hole += HOLE_BLOCK as u64;
            } else {
                self.settle_hole()?;
                self.file.write_all(block)?;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A patch that fails for any cause but an abandoned stream (here a
    /// delta that is not one; ENOSPC takes the same path) leaves no partial
    /// file behind: only an abandoned one is kept, for resume.
    #[test]
    fn a_failed_patch_removes_its_partial_and_an_abandoned_one_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path(), false).unwrap();
        let path = RelPath::parse(b"f").unwrap();
        let partial = dir
            .path()
            .join(crate::path::WORK_DIR)
            .join("partial")
            .join(partial_name(&path));
        let job = |id| PatchJob {
            id,
            path: path.clone(),
            resume_len: 0,
            expect: Expect::Any,
            attrs: Attrs::default(),
            sparse: false,
            basis: None,
        };
        let feed = |chunks: Vec<Vec<u8>>, end: bool| {
            let (tx, rx) = crossbeam::channel::unbounded();
            let (end_tx, end_rx) = crossbeam::channel::bounded(1);
            for c in chunks {
                tx.send(Some(c)).unwrap();
            }
            if end {
                tx.send(None).unwrap();
            } else {
                drop(end_tx);
            }
            PatchFeed {
                chunks: rx,
                end: end_rx,
            }
        };
        // Garbage where a delta should be: a data error.
        let reply = patch(
            &root,
            job(1),
            feed(vec![b"not a delta at all".to_vec()], true),
        );
        assert!(
            matches!(
                reply,
                Patched::Reply(Message::Reply {
                    rep: Reply::Error {
                        code: Code::Data,
                        ..
                    },
                    ..
                })
            ),
            "{reply:?}"
        );
        assert!(!partial.exists(), "a failed patch left its partial file");
        // A valid start, then the sender goes away: kept for resume.
        let delta = deltasync_engine::DELTA_MAGIC.to_be_bytes().to_vec();
        let reply = patch(&root, job(2), feed(vec![delta], false));
        assert!(
            matches!(
                reply,
                Patched::Reply(Message::Reply {
                    rep: Reply::Error {
                        code: Code::Aborted,
                        ..
                    },
                    ..
                })
            ),
            "{reply:?}"
        );
        assert!(partial.exists(), "an abandoned patch keeps its prefix");
    }

    #[test]
    fn zero_blocks_become_holes_and_the_length_is_kept() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let mut data = vec![0u8; 8 << 20];
        data[100] = 1;
        data.extend_from_slice(&[0u8; 3 << 20]); // ends in a hole
        let mut w = BufWriter::new(Sparse::new(File::create(&path).unwrap(), true));
        w.write_all(&data).unwrap();
        let f = w.into_inner().ok().unwrap().finish().unwrap();
        drop(f);
        assert_eq!(std::fs::read(&path).unwrap(), data);
        let m = std::fs::metadata(&path).unwrap();
        assert!(
            m.blocks() * 512 < 1 << 20,
            "{} bytes allocated for an 11 MiB file of zeros",
            m.blocks() * 512
        );
    }
}
