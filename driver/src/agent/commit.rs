//! Group commit: small new versions are made durable together.
//!
//! A patch job writes and checks its file in `.deltasync/partial/`. A large
//! file is then fsynced and renamed into place by its own job. A small one
//! is handed here instead, as [`Ready`]: this thread takes every file that
//! is waiting, makes their data durable with one `syncfs`, renames each
//! into place (if the live path still holds what the plan saw), makes the
//! renames durable with a second `syncfs`, and only then replies `Done`
//! for each. So a file is always either its old or its new version, a
//! `Done` (on which the client records the state) means durable, and a
//! first sync of 100,000 small files costs a few hundred `syncfs` calls,
//! not 100,000 `fsync` calls each forcing its own journal commit.
//!
//! Batches form by themselves: while one batch syncs, the next waits.
//! `syncfs` goes through one descriptor kept open for the thread's life
//! ([`Syncer`]), so a write-back error met while a batch gathered is
//! reported (Linux 5.8 and later; older kernels report none through
//! `syncfs`). A panic while committing answers the batch with errors
//! rather than leaving its patches without replies.

use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender};
use deltasync_wire::{Code, Expect, Message, Reply};

use super::root::Root;
use crate::path::RelPath;

/// Files up to this size are committed in groups; larger ones fsync on
/// their own (their writeback costs more than a journal commit anyway).
pub const GROUP_MAX: u64 = 1 << 20;

/// At most this many files per `syncfs`.
const MAX_BATCH: usize = 128;
/// A batch gathers for at most this long after its first file…
const GATHER: Duration = Duration::from_millis(20);
/// …and stops early when no file came for this long.
const LULL: Duration = Duration::from_millis(1);

/// A checked new version waiting in `.deltasync/partial/` to be made
/// durable and renamed into place.
#[derive(Debug)]
pub struct Ready {
    /// The patch request's id.
    pub id: u64,
    /// The destination path.
    pub path: RelPath,
    /// What must be at `path` when the new version replaces it.
    pub expect: Expect,
    /// The partial file's name in `.deltasync/partial/`.
    pub name: String,
}

/// `syncfs` on one descriptor kept for the commit thread's whole life.
/// Linux (5.8 and later) reports through `syncfs` the write-back errors
/// met on the filesystem since that descriptor was opened or last synced:
/// a descriptor opened per call would miss an error met while a batch
/// gathered, after its files' own descriptors were closed.
#[derive(Debug)]
pub struct Syncer(std::os::fd::OwnedFd);

impl Syncer {
    pub fn new(root: &Root) -> std::io::Result<Syncer> {
        root.fs_handle().map(Syncer)
    }

    fn sync(&self) -> std::io::Result<()> {
        rustix::fs::syncfs(&self.0).map_err(std::io::Error::from)
    }
}

/// Commits what arrives on `ready` in batches until every sender is gone.
/// For each file, `finished(id)` is called before its reply goes to `out`,
/// so the agent frees the patch's slot before the client hears of it.
pub fn run(root: &Root, ready: Receiver<Ready>, out: &Sender<Message>, finished: impl Fn(u64)) {
    let fs = Syncer::new(root);
    while let Ok(first) = ready.recv() {
        let mut batch = vec![first];
        // Gather while files keep coming, for at most `GATHER`.
        let until = Instant::now() + GATHER;
        while batch.len() < MAX_BATCH {
            match ready.recv_deadline(until.min(Instant::now() + LULL)) {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let ids: Vec<(u64, RelPath)> = batch.iter().map(|r| (r.id, r.path.clone())).collect();
        let replies = match &fs {
            Ok(fs) => {
                // A panic must not strand the batch's slots and replies.
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| commit(root, fs, batch)))
                    .unwrap_or_else(|_| all_failed(ids, "commit failed (a bug)"))
            }
            Err(e) => all_failed(ids, &format!("cannot open the root for syncfs: {e}")),
        };
        for (id, rep) in replies {
            finished(id);
            let _ = out.send(Message::Reply { id, rep });
        }
    }
}

/// The same error for every file of a batch.
fn all_failed(ids: Vec<(u64, RelPath)>, why: &str) -> Vec<(u64, Reply)> {
    ids.into_iter()
        .map(|(id, p)| (id, Reply::error(Code::FileIo, p.as_bytes(), why)))
        .collect()
}

/// Makes one batch durable and renames it into place; the reply for each.
pub fn commit(root: &Root, fs: &Syncer, batch: Vec<Ready>) -> Vec<(u64, Reply)> {
    let work = root.work_dir("partial");
    let synced = fs.sync();
    let mut replies = Vec::with_capacity(batch.len());
    let mut renamed = Vec::new();
    for r in batch {
        let fail = |c, e: &dyn std::fmt::Display| Reply::error(c, r.path.as_bytes(), e);
        let work = match &work {
            Ok(w) => w,
            Err(e) => {
                replies.push((r.id, fail(Code::FileIo, e)));
                continue;
            }
        };
        if let Err(e) = &synced {
            let _ = work.remove_file(&r.name);
            replies.push((r.id, fail(Code::FileIo, &format!("syncfs: {e}"))));
            continue;
        }
        match settle(root, work, &r.name, &r.path, &r.expect) {
            Ok(()) => renamed.push(r),
            Err(rep) => replies.push((r.id, rep)),
        }
    }
    // The renames themselves, made durable before the client records them.
    let after = if renamed.is_empty() {
        Ok(())
    } else {
        fs.sync()
    };
    for r in renamed {
        let rep = match &after {
            Ok(()) => Reply::Done,
            Err(e) => Reply::error(
                Code::FileIo,
                r.path.as_bytes(),
                format!("renamed into place, but syncfs failed: {e}"),
            ),
        };
        replies.push((r.id, rep));
    }
    replies
}

/// Renames the durable new version `name` (in `work`) to `p` if `p` still
/// holds what `expect` says. A version refused because `p` changed stays in
/// `work` for a later run to resume; on any other failure it is removed.
pub fn settle(
    root: &Root,
    work: &cap_std::fs::Dir,
    name: &str,
    p: &RelPath,
    expect: &Expect,
) -> Result<(), Reply> {
    let fail = |c, e: &dyn std::fmt::Display| Reply::error(c, p.as_bytes(), e);
    // RACE: the file at `p` may have changed since the client planned this
    // replacement. Check just before the rename; a change made between the
    // check and the rename is the one window left, and it is microseconds.
    let result = match root.matches(p, expect) {
        // Absent, or a file or a symlink: no directory is in the way.
        Ok(true)
            if matches!(
                expect,
                Expect::Absent | Expect::File { .. } | Expect::Symlink
            ) =>
        {
            root.rename_in_unchecked(work, name, p)
                .map_err(|e| fail(Code::FileIo, &e))
        }
        Ok(true) => root
            .rename_in(work, name, p)
            .map_err(|e| fail(Code::FileIo, &e)),
        Ok(false) => {
            return Err(fail(
                Code::Changed,
                &"changed since the plan was made; left alone",
            ));
        }
        Err(e) => Err(fail(Code::FileIo, &e)),
    };
    if result.is_err() {
        let _ = work.remove_file(name);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltasync_wire::Mtime;

    fn ready(root: &Root, id: u64, path: &[u8], data: &[u8], expect: Expect) -> Ready {
        let path = RelPath::parse(path).unwrap();
        let name = super::super::jobs::partial_name(&path);
        root.work_dir("partial")
            .unwrap()
            .write(&name, data)
            .unwrap();
        Ready {
            id,
            path,
            expect,
            name,
        }
    }

    /// A batch is renamed into place and answered `Done`, except a file
    /// whose live path changed since the plan: it is answered `Changed`
    /// and its new version stays in partial/ for a later run.
    #[test]
    fn a_batch_lands_except_what_changed_under_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path(), false).unwrap();
        std::fs::write(dir.path().join("c"), b"live").unwrap();
        let batch = vec![
            ready(&root, 1, b"a", b"one", Expect::Absent),
            ready(&root, 2, b"b", b"two", Expect::Any),
            // The plan saw `c` absent; it is there now.
            ready(&root, 3, b"c", b"three", Expect::Absent),
            ready(
                &root,
                4,
                b"c",
                b"four",
                Expect::File {
                    size: 99,
                    mtime: Mtime::new(1, 0),
                },
            ),
        ];
        let replies = commit(&root, &Syncer::new(&root).unwrap(), batch);
        let mut ids: Vec<_> = replies.iter().map(|(id, _)| *id).collect();
        ids.sort();
        assert_eq!(ids, [1, 2, 3, 4]);
        for (id, rep) in &replies {
            match id {
                1 | 2 => assert!(matches!(rep, Reply::Done), "{id}: {rep:?}"),
                _ => assert!(
                    matches!(
                        rep,
                        Reply::Error {
                            code: Code::Changed,
                            ..
                        }
                    ),
                    "{id}: {rep:?}"
                ),
            }
        }
        assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"one");
        assert_eq!(std::fs::read(dir.path().join("b")).unwrap(), b"two");
        assert_eq!(std::fs::read(dir.path().join("c")).unwrap(), b"live");
        let kept = dir.path().join(crate::path::WORK_DIR).join("partial").join(
            super::super::jobs::partial_name(&RelPath::parse(b"c").unwrap()),
        );
        assert!(kept.exists(), "a refused version is kept for a later run");
    }

    /// The committer thread answers every file, frees each slot before the
    /// reply goes out, and ends when its senders are gone.
    #[test]
    fn the_thread_answers_every_file_and_frees_its_slot_first() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path(), false).unwrap();
        let (tx, rx) = crossbeam::channel::unbounded();
        let (out, replies) = crossbeam::channel::unbounded();
        let (freed_tx, freed) = crossbeam::channel::unbounded();
        for i in 0..300u64 {
            let name = format!("f{i}");
            tx.send(ready(
                &root,
                i,
                name.as_bytes(),
                name.as_bytes(),
                Expect::Absent,
            ))
            .unwrap();
        }
        drop(tx);
        run(&root, rx, &out, |id| freed_tx.send(id).unwrap());
        drop(out);
        let mut n = 0;
        for m in replies {
            let Message::Reply { id, rep } = m else {
                panic!("{m:?}")
            };
            assert!(matches!(rep, Reply::Done), "{id}: {rep:?}");
            assert_eq!(freed.try_recv().unwrap(), id, "slot freed after the reply");
            let name = format!("f{id}");
            assert_eq!(
                std::fs::read(dir.path().join(&name)).unwrap(),
                name.as_bytes()
            );
            n += 1;
        }
        assert_eq!(n, 300);
    }
}
