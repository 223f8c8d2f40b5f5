//! Small patches, held whole before they run.
//!
//! A patch thread blocks on its feed, so each new file used to cost a
//! thread's wake-up per message: the request, each chunk, the end. For a
//! small new file that is most of its cost. So the session holds the
//! chunks of a patch that makes a new file (`Expect::Absent`, nothing to
//! resume: no basis to copy, so the file is no bigger than its delta)
//! ([`Holding`]) until its end
//! arrives, then hands the whole patch to one writer thread ([`writer`]),
//! which runs patch after patch without sleeping between them while they
//! keep coming, and passes each to the group commit. A patch that grows
//! past [`HOLD_MAX`] before its end is spilled to a thread of its own, fed
//! what was held, and streams from there as before.
//!
//! Memory stays bounded: at most `MAX_PATCHES` patches are open, each
//! holding under `HOLD_MAX` bytes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam::channel::{Receiver, bounded, unbounded};
use deltasync_wire::{FileStat, Message};

use super::patch::{self, PatchFeed, PatchJob, Patched};
use super::root::Root;
use crate::path::RelPath;

use super::commit::Work;
use super::core::{HOLD_MAX, Placing, is_held};

/// A held patch: its job and the delta bytes so far.
#[derive(Debug)]
struct Held {
    job: PatchJob,
    chunks: Vec<Vec<u8>>,
    bytes: usize,
}

/// A whole patch, ready to run.
#[derive(Debug)]
pub struct Whole {
    pub job: PatchJob,
    pub chunks: Vec<Vec<u8>>,
    pub stat: FileStat,
    pub blake3: [u8; 32],
}

/// What became of a chunk.
#[derive(Debug)]
pub enum Chunk {
    /// Not a held patch's: feed it as before.
    NotHeld(Vec<u8>),
    /// Held.
    Held,
    /// The patch grew too big to hold: run it on a thread of its own, fed
    /// these chunks first.
    Spill(Box<PatchJob>, Vec<Vec<u8>>),
}

/// The held patches, by request id. Pure bookkeeping: no I/O.
#[derive(Debug, Default)]
pub struct Holding {
    held: HashMap<u64, Held>,
}

impl Holding {
    /// Holds `job` if it makes a new file from nothing (so it copies no
    /// basis, and its file is no bigger than what is held); otherwise gives
    /// it back.
    pub fn start(&mut self, job: PatchJob) -> Option<PatchJob> {
        if !is_held(job.expect, job.resume_len, job.basis.is_some()) {
            return Some(job);
        }
        self.held.insert(
            job.id,
            Held {
                job,
                chunks: Vec::new(),
                bytes: 0,
            },
        );
        None
    }

    /// Takes a chunk of patch `id`.
    pub fn chunk(&mut self, id: u64, data: Vec<u8>) -> Chunk {
        let Some(h) = self.held.get_mut(&id) else {
            return Chunk::NotHeld(data);
        };
        h.bytes += data.len();
        h.chunks.push(data);
        if h.bytes < HOLD_MAX {
            return Chunk::Held;
        }
        match self.held.remove(&id) {
            Some(h) => Chunk::Spill(Box::new(h.job), h.chunks),
            None => Chunk::Held,
        }
    }

    /// The end of patch `id`: the whole patch, if it was held.
    pub fn end(&mut self, id: u64, stat: FileStat, blake3: [u8; 32]) -> Option<Whole> {
        self.held.remove(&id).map(|h| Whole {
            job: h.job,
            chunks: h.chunks,
            stat,
            blake3,
        })
    }

    /// Drops held patch `id`; its path, if it was held.
    pub fn cancel(&mut self, id: u64) -> Option<RelPath> {
        self.held.remove(&id).map(|h| h.job.path)
    }
}

/// What the writer thread runs.
#[derive(Debug)]
pub enum Write {
    /// A held patch, whole.
    Patch(Box<Whole>),
    /// A `Put`'s files (see [`batch`](super::batch)).
    Put { id: u64, files: Vec<Placing> },
}

/// Runs whole patches and `Put`s as they come until every sender is gone;
/// `done` hears how each patch ended (a reply to send, or a file for the
/// commit), `written` takes each `Put`'s files for the commit. `writing`
/// counts the jobs sent here and not yet handed on (the sender adds one
/// per job, this takes it off once the job's result has gone on), so the
/// commit can tell whether more files are on their way.
pub fn writer(
    root: &Root,
    jobs: Receiver<Write>,
    writing: &AtomicUsize,
    done: impl Fn(u64, Patched),
    written: impl Fn(Work),
) {
    for job in jobs {
        write_one(root, job, &done, &written);
        writing.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One job of [`writer`].
fn write_one(root: &Root, job: Write, done: &impl Fn(u64, Patched), written: &impl Fn(Work)) {
    let w = match job {
        Write::Patch(w) => *w,
        Write::Put { id, files } => {
            let n = files.len();
            // As for a patch: a panic must not leave the batch, and
            // every later one, without a reply.
            let files = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                super::batch::write(root, id, files)
            }))
            .unwrap_or_else(|_| {
                let bug = deltasync_wire::Failed {
                    code: deltasync_wire::Code::FileIo,
                    message: "writing the batch failed (a bug)".into(),
                };
                (0..n).map(|_| Err(bug.clone())).collect()
            });
            written(Work::Batch { id, files });
            return;
        }
    };
    let id = w.job.id;
    let path = w.job.path.clone();
    // A panic on a peer's bytes must not strand this and every later
    // held patch without a reply.
    let patched = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        patch::patch(root, w.job, fed(w.chunks, w.stat, w.blake3))
    }))
    .unwrap_or_else(|_| {
        Patched::Reply(Message::Reply {
            id,
            rep: deltasync_wire::Reply::error(
                deltasync_wire::Code::Data,
                path.as_bytes(),
                "the patch failed (a bug)",
            ),
        })
    });
    done(id, patched);
}

/// A feed that already holds everything: the chunks, the end.
fn fed(chunks: Vec<Vec<u8>>, stat: FileStat, blake3: [u8; 32]) -> PatchFeed {
    let (tx, rx) = unbounded();
    for c in chunks {
        let _ = tx.send(Some(c));
    }
    let _ = tx.send(None);
    let (end_tx, end) = bounded(1);
    let _ = end_tx.send((stat, blake3));
    PatchFeed { chunks: rx, end }
}

/// The reply a held patch gets when it is cancelled before its end: as a
/// running patch's, minus the prefix (nothing was written).
pub fn cancelled(id: u64, path: &RelPath) -> Message {
    Message::Reply {
        id,
        rep: deltasync_wire::Reply::error(
            deltasync_wire::Code::Aborted,
            path.as_bytes(),
            "transfer abandoned before any of it was written",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltasync_wire::{Attrs, Expect, Mtime};

    fn job(id: u64, resume_len: u64) -> PatchJob {
        PatchJob {
            id,
            path: RelPath::parse(b"f").unwrap(),
            resume_len,
            expect: Expect::Absent,
            attrs: Attrs::default(),
            sparse: false,
            basis: None,
        }
    }

    fn update(id: u64) -> PatchJob {
        PatchJob {
            id,
            path: RelPath::parse(b"f").unwrap(),
            resume_len: 0,
            expect: Expect::Any,
            attrs: Attrs::default(),
            sparse: false,
            basis: None,
        }
    }

    fn stat() -> FileStat {
        FileStat {
            size: 1,
            mtime: Mtime::new(1, 0),
            mode: 0o644,
        }
    }

    /// A new patch is held until its end and comes out whole; a resumed
    /// one is not held; one that grows past `HOLD_MAX` is spilled with
    /// every byte it held, in order; a cancelled one is forgotten.
    #[test]
    fn patches_are_held_whole_spilled_when_big_and_dropped_on_cancel() {
        let mut h = Holding::default();
        assert!(h.start(job(1, 0)).is_none());
        assert!(matches!(h.chunk(1, vec![1; 10]), Chunk::Held));
        assert!(matches!(h.chunk(1, vec![2; 10]), Chunk::Held));
        let w = h.end(1, stat(), [7; 32]).expect("held");
        assert_eq!(w.chunks, [vec![1; 10], vec![2; 10]]);
        assert_eq!(w.blake3, [7; 32]);
        assert!(h.end(1, stat(), [7; 32]).is_none(), "taken once");

        assert!(h.start(job(2, 5)).is_some(), "a resumed patch is not held");
        assert!(
            h.start(update(5)).is_some(),
            "nor one that may copy from a basis"
        );
        assert!(matches!(h.chunk(2, vec![0]), Chunk::NotHeld(_)));

        assert!(h.start(job(3, 0)).is_none());
        assert!(matches!(h.chunk(3, vec![1; HOLD_MAX - 1]), Chunk::Held));
        match h.chunk(3, vec![2; 2]) {
            Chunk::Spill(j, chunks) => {
                assert_eq!(j.id, 3);
                assert_eq!(chunks, [vec![1; HOLD_MAX - 1], vec![2; 2]]);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(h.chunk(3, vec![3]), Chunk::NotHeld(_)),
            "spilled once"
        );

        assert!(h.start(job(4, 0)).is_none());
        assert!(h.cancel(4).is_some());
        assert!(h.cancel(4).is_none());
        assert!(h.end(4, stat(), [0; 32]).is_none());
    }
}
