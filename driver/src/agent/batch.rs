//! Batches of small new files, both ends.
//!
//! A first sync of many small files used to send each through the whole
//! delta conversation: a `Delta` to the source, its start, chunk and end,
//! a `Patch` to the destination fed the same, and a `Done`: eight messages
//! and as many thread hand-offs per file, for files of a few hundred
//! bytes. A batch carries up to `MAX_BATCH_FILES` of them in one message
//! each way:
//!
//! - [`read`]: the source reads each file whole (one job on the small-file
//!   lane) and answers one `Files`, each file with its stat and BLAKE3 as
//!   read, or why not (vanished, changed while read, grown past what a
//!   batch carries);
//! - [`write`]: the destination's writer thread writes each file of a
//!   `Put` into `.deltasync/partial/`, checks its BLAKE3 and sets its
//!   attributes, then hands the whole batch to the group commit
//!   ([`commit`](super::commit)), which makes it durable, renames each
//!   file in if its path still holds what the plan saw, and answers one
//!   `Placed`.
//!
//! So the guarantees are the patch's: a file is either its old or its new
//! version, and `Placed` (on which the client records state) means durable.

use std::io::{Read, Write};

use cap_std::fs::Dir;
use crossbeam::channel::Sender;
use deltasync_wire::{
    Attrs, Code, Failed, FileData, MAX_BATCH_DATA, MAX_BATCH_FILE, Message, Reply,
};

use super::attrs::apply_to_new_file;
use super::commit::Ready;
use super::core::Placing;
use super::jobs::{io_code, partial_name, stat_of};
use super::root::{Root, mtime_of};
use crate::path::RelPath;

fn failed(code: Code, message: impl std::fmt::Display) -> Failed {
    Failed {
        code,
        message: message.to_string(),
    }
}

/// Reads `paths` whole and answers request `id` with one `Files`.
pub fn read(root: &Root, id: u64, paths: &[RelPath], out: &Sender<Message>) {
    let mut room = MAX_BATCH_DATA;
    let files = paths
        .iter()
        .map(|p| {
            let got = read_one(root, p, room);
            if let Ok(f) = &got {
                room -= f.data.len();
            }
            got
        })
        .collect();
    let _ = out.send(Message::Reply {
        id,
        rep: Reply::Files(files),
    });
}

/// One file, whole, if it fits in `room` bytes (and a batch's limit).
fn read_one(root: &Root, p: &RelPath, room: usize) -> Result<FileData, Failed> {
    let mut file = root.open_file(p).map_err(|e| failed(io_code(&e), e))?;
    let before = stat_of(&file).map_err(|e| failed(Code::FileIo, e))?;
    let fits = MAX_BATCH_FILE.min(room as u64);
    if before.size > fits {
        // Grown since it was listed: the client sends it the usual way.
        return Err(failed(
            Code::Busy,
            format!(
                "{} bytes now, more than a batch has room for ({fits})",
                before.size
            ),
        ));
    }
    let mut data = Vec::with_capacity(before.size as usize);
    (&mut file)
        .take(fits + 1)
        .read_to_end(&mut data)
        .map_err(|e| failed(Code::FileIo, e))?;
    let after = stat_of(&file).map_err(|e| failed(Code::FileIo, e))?;
    if after != before || data.len() as u64 != before.size {
        return Err(failed(
            Code::Changed,
            "file changed while it was being read",
        ));
    }
    // RACE: as a delta's (`jobs::try_delta`): the path may have been
    // renamed over while we read the old file through our descriptor.
    match root.lstat(p) {
        Ok(Some(m)) if m.is_file() && m.len() == before.size && mtime_of(&m) == before.mtime => {}
        _ => {
            return Err(failed(
                Code::Changed,
                "file replaced while it was being read",
            ));
        }
    }
    Ok(FileData {
        stat: before,
        blake3: *blake3::hash(&data).as_bytes(),
        data,
    })
}

/// Writes each file of a `Put` into `.deltasync/partial/`, checked and
/// with its attributes: what the group commit takes, or why not.
pub fn write(root: &Root, id: u64, files: Vec<Placing>) -> Vec<Result<Ready, Failed>> {
    // A read-only agent refuses, as it refuses a patch.
    let work = match root.check_writable() {
        Err(e) => Err(failed(Code::Refused, e)),
        Ok(()) => root
            .work_dir("partial")
            .map_err(|e| failed(Code::FileIo, e)),
    };
    files
        .into_iter()
        .map(|f| {
            let work = work.as_ref().map_err(Clone::clone)?;
            let name = write_one(work, &f)?;
            Ok(Ready {
                id,
                path: f.path,
                expect: f.expect,
                name,
                written: super::commit::syncs_so_far(),
            })
        })
        .collect()
}

/// One new version in `work`, by its partial name; removed on failure.
fn write_one(work: &Dir, f: &Placing) -> Result<String, Failed> {
    if *blake3::hash(&f.file.data).as_bytes() != f.file.blake3 {
        return Err(failed(Code::Checksum, "the file failed its BLAKE3 check"));
    }
    let name = partial_name(&f.path);
    let mut opts = cap_std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    let written = work.open_with(&name, &opts).and_then(|file| {
        let mut file = file.into_std();
        file.write_all(&f.file.data)?;
        let attrs = Attrs {
            mode: Some(f.file.stat.mode),
            mtime: Some(f.file.stat.mtime),
            ..f.attrs.clone()
        };
        apply_to_new_file(&file, &attrs)
    });
    match written {
        Ok(()) => Ok(name),
        Err(e) => {
            let _ = work.remove_file(&name);
            Err(failed(Code::FileIo, e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam::channel::unbounded;
    use deltasync_wire::{Expect, FileStat, Mtime};

    fn path(p: &str) -> RelPath {
        RelPath::parse(p.as_bytes()).unwrap()
    }

    /// Each file comes back whole with its stat and BLAKE3, in order; a
    /// missing one vanished, a directory is refused, and a file past the
    /// room left is `Busy` (sent the usual way) while smaller ones after
    /// it still fit.
    #[test]
    fn a_read_answers_each_file_in_order_within_the_batch_limits() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a"), b"one").unwrap();
        std::fs::write(d.join("big"), vec![7; MAX_BATCH_FILE as usize + 1]).unwrap();
        std::fs::write(d.join("b"), b"").unwrap();
        std::fs::create_dir(d.join("dir")).unwrap();
        let root = Root::open(d, true).unwrap();
        let (tx, rx) = unbounded();
        let paths = ["a", "gone", "big", "dir", "b"].map(path);
        read(&root, 9, &paths, &tx);
        let Ok(Message::Reply {
            id: 9,
            rep: Reply::Files(files),
        }) = rx.try_recv()
        else {
            panic!("one Files reply");
        };
        assert_eq!(files.len(), 5);
        let a = files[0].as_ref().unwrap();
        assert_eq!(a.data, b"one");
        assert_eq!(a.stat.size, 3);
        assert_eq!(a.blake3, *blake3::hash(b"one").as_bytes());
        assert_eq!(files[1].as_ref().unwrap_err().code, Code::Vanished);
        assert_eq!(files[2].as_ref().unwrap_err().code, Code::Busy);
        assert!(files[3].is_err());
        assert_eq!(files[4].as_ref().unwrap().data, b"");
        assert!(rx.try_recv().is_err(), "nothing else");
    }

    /// The room left counts: once a batch holds `MAX_BATCH_DATA` bytes, a
    /// file that would pass it is `Busy`.
    #[test]
    fn a_read_stops_at_the_batch_total() {
        let dir = tempfile::tempdir().unwrap();
        let n = MAX_BATCH_DATA / MAX_BATCH_FILE as usize;
        for i in 0..=n {
            std::fs::write(
                dir.path().join(i.to_string()),
                vec![1; MAX_BATCH_FILE as usize],
            )
            .unwrap();
        }
        let root = Root::open(dir.path(), true).unwrap();
        let (tx, rx) = unbounded();
        let paths: Vec<RelPath> = (0..=n).map(|i| path(&i.to_string())).collect();
        read(&root, 1, &paths, &tx);
        let Ok(Message::Reply {
            rep: Reply::Files(files),
            ..
        }) = rx.try_recv()
        else {
            panic!("one Files reply");
        };
        assert!(files[..n].iter().all(Result::is_ok));
        assert_eq!(files[n].as_ref().unwrap_err().code, Code::Busy);
    }

    /// Written files wait in partial/ with their mode and mtime; one whose
    /// bytes fail their BLAKE3 is refused and leaves nothing behind.
    #[test]
    fn a_write_checks_each_file_and_sets_its_attributes() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path(), false).unwrap();
        let file = |data: &[u8], blake3: [u8; 32]| Placing {
            path: path(&format!("f{}", data.len())),
            expect: Expect::Absent,
            attrs: Attrs::default(),
            file: FileData {
                stat: FileStat {
                    size: data.len() as u64,
                    mtime: Mtime::new(1_000_000, 5),
                    mode: 0o640,
                },
                blake3,
                data: data.to_vec(),
            },
        };
        let good = file(b"abc", *blake3::hash(b"abc").as_bytes());
        let bad = file(b"abcd", [0; 32]);
        let got = write(&root, 4, vec![good, bad]);
        let ready = got[0].as_ref().unwrap();
        assert_eq!(ready.path, path("f3"));
        let partial = dir.path().join(crate::path::WORK_DIR).join("partial");
        let meta = std::fs::metadata(partial.join(&ready.name)).unwrap();
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
        assert_eq!(meta.mtime(), 1_000_000);
        assert_eq!(got[1].as_ref().unwrap_err().code, Code::Checksum);
        assert!(!partial.join(partial_name(&path("f4"))).exists());
    }
}
