//! Group commit: small new versions are made durable together.
//!
//! A patch job writes and checks its file in `.deltasync/partial/`. A large
//! file is then fsynced and renamed into place by its own job. A small one
//! is handed here instead, as [`Ready`], and so are the files of a `Put`
//! ([`Work::Batch`], see [`batch`](super::batch)): this thread takes every
//! file that is waiting, makes their data durable with one `syncfs`,
//! renames each into place (if the live path still holds what the plan
//! saw), makes the renames durable with a second `syncfs` (the next
//! batch's first, when more files come soon), and only then
//! replies `Done` for each patch and `Placed` for each `Put`. So a file is
//! always either its old or its new version, a
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

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender};
use deltasync_wire::{Code, Expect, Failed, Message, Reply};

use super::root::Root;
use crate::path::RelPath;

/// Files up to this size are committed in groups; larger ones fsync on
/// their own (their writeback costs more than a journal commit anyway).
pub const GROUP_MAX: u64 = 1 << 20;

/// At most this many files per `syncfs` (the agent holds at most
/// `MAX_PATCHES` patches and `MAX_PUTS` batches anyway).
const MAX_BATCH: usize = 1024;
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
    /// [`syncs_so_far`] when it was written.
    pub written: u64,
}

/// `syncfs` calls begun so far by this process's commit threads. A file
/// records the count when it is written: a later failed `syncfs` may have
/// been its own write-back's failure, whichever batch it was for.
static SYNCS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// See [`SYNCS`]; read after a file's last write.
pub fn syncs_so_far() -> u64 {
    SYNCS.load(std::sync::atomic::Ordering::SeqCst)
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

/// What the commit thread takes.
#[derive(Debug)]
pub enum Work {
    /// One patch's new version: answered `Done`, or an error.
    One(Ready),
    /// A `Put`'s files, in order, each written or why not: answered with
    /// one `Placed`.
    Batch {
        id: u64,
        files: Vec<Result<Ready, Failed>>,
    },
}

impl Work {
    fn files(&self) -> usize {
        match self {
            Work::One(_) => 1,
            Work::Batch { files, .. } => files.len(),
        }
    }
}

/// Whose reply a committed file's is.
enum Owner {
    /// A patch's, at this place in the commit.
    One(u64, usize),
    /// A `Put`'s: each file failed already or is at this place.
    Batch(u64, Vec<Result<usize, Failed>>),
}

/// Commits what arrives on `ready` in batches until every sender is gone.
/// For each request, `finished(id)` is called before its reply goes to
/// `out`, so the agent frees its slot before the client hears of it.
///
/// Two stages, so that renaming one batch overlaps the `syncfs` of the
/// next: this thread gathers a batch and makes its data durable with one
/// `syncfs`; a renamer thread then renames its files into place
/// ([`land`]). The renames of every batch the renamer has finished are
/// made durable by the next `syncfs` this thread starts (the next batch's,
/// or one of their own when no batch comes: within `GATHER` while the
/// writer thread has files on their way here, `writing`, else within
/// `LULL`), and only then are their replies sent. While files keep coming,
/// that is one `syncfs` a batch.
pub fn run(
    root: &Root,
    ready: Receiver<Work>,
    writing: &std::sync::atomic::AtomicUsize,
    out: &Sender<Message>,
    finished: impl Fn(u64),
) {
    let mut fs = Syncs {
        fs: Syncer::new(root),
        poisoned_below: 0,
    };
    let send = |answered: Vec<(u64, Reply)>| {
        for (id, rep) in answered {
            finished(id);
            let _ = out.send(Message::Reply { id, rep });
        }
    };
    let (to_rename, renames) = crossbeam::channel::unbounded::<Round>();
    let (renamed_tx, renamed) = crossbeam::channel::unbounded::<(Vec<Owner>, Landed)>();
    std::thread::scope(|scope| {
        let renamer = std::thread::Builder::new()
            .name("agent-renamer".into())
            .spawn_scoped(scope, move || {
                for (owners, batch, synced) in renames {
                    let n = batch.len();
                    // A panic must not strand the batch's slots and replies.
                    let landed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        land(root, &synced.0, synced.1, batch)
                    }))
                    .unwrap_or_else(|_| Landed::failed(n, "commit failed (a bug)"));
                    if renamed_tx.send((owners, landed)).is_err() {
                        return;
                    }
                }
            });
        let Ok(_renamer) = renamer else {
            // No thread: each batch is renamed here, in turn.
            let mut local = Vec::new();
            while let Ok(first) = ready.recv() {
                let (batch, owners) = flatten(gather(first, &ready));
                let synced = fs.sync();
                local.push((owners, land(root, &synced, fs.poisoned_below, batch)));
                let after = fs.sync();
                for (owners, landed) in local.drain(..) {
                    send(answers(owners, landed.seal(&after)));
                }
            }
            return;
        };
        // Batches with the renamer, and batches it has renamed whose
        // renames no `syncfs` has covered yet.
        let mut renaming = 0usize;
        let mut unsealed: Vec<(Vec<Owner>, Landed)> = Vec::new();
        let mut open = true;
        while open || renaming > 0 || !unsealed.is_empty() {
            let first = if renaming == 0 && unsealed.is_empty() {
                ready.recv().ok()
            } else if open {
                let coming = writing.load(std::sync::atomic::Ordering::Acquire) > 0;
                match ready.recv_timeout(if coming { GATHER } else { LULL }) {
                    Ok(w) => Some(w),
                    Err(e) => {
                        open = !e.is_disconnected();
                        None
                    }
                }
            } else {
                None
            };
            let Some(first) = first else {
                if renaming == 0 && unsealed.is_empty() {
                    break; // every sender is gone and nothing is left
                }
                // A lull: wait for the renamer, then one `syncfs` for it all.
                while renaming > 0 {
                    match renamed.recv() {
                        Ok(r) => {
                            unsealed.push(r);
                            renaming -= 1;
                        }
                        Err(_) => renaming = 0, // the renamer is gone, and so are they
                    }
                }
                let after = fs.sync();
                for (owners, landed) in unsealed.drain(..) {
                    send(answers(owners, landed.seal(&after)));
                }
                continue;
            };
            let (batch, owners) = flatten(gather(first, &ready));
            if batch.len() <= SMALL_BATCH && renaming == 0 && unsealed.is_empty() {
                // A few files, nothing else pending: each made durable on
                // its own, see `commit_small`.
                let n = batch.len();
                let poisoned = fs.poisoned_below;
                let replies = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    commit_small(root, poisoned, batch)
                }))
                .unwrap_or_else(|_| Landed::failed(n, "commit failed (a bug)").seal(&Ok(())));
                send(answers(owners, replies));
                continue;
            }
            // What the renamer has finished is renamed before this syncfs.
            while let Ok(r) = renamed.try_recv() {
                unsealed.push(r);
                renaming -= 1;
            }
            // The batch's data, and those renames.
            let synced = fs.sync();
            for (owners, landed) in unsealed.drain(..) {
                send(answers(owners, landed.seal(&synced)));
            }
            match to_rename.send((owners, batch, (synced, fs.poisoned_below))) {
                Ok(()) => renaming += 1,
                Err(back) => {
                    let (owners, batch, (synced, poisoned)) = back.0;
                    unsealed.push((owners, land(root, &synced, poisoned, batch)));
                }
            }
        }
        drop(to_rename); // the renamer ends
    });
}

/// A batch whose data is durable (or why not), for the renamer, with the
/// files it must fail as written before a failed `syncfs` (see [`Syncs`]).
type Round = (Vec<Owner>, Vec<Ready>, (Result<(), String>, u64));

/// `first`, and what else comes while files keep coming, for at most
/// `GATHER` and `MAX_BATCH` files.
fn gather(first: Work, ready: &Receiver<Work>) -> Vec<Work> {
    let mut files = first.files();
    let mut works = vec![first];
    let until = Instant::now() + GATHER;
    while files < MAX_BATCH {
        match ready.recv_deadline(until.min(Instant::now() + LULL)) {
            Ok(w) => {
                files += w.files();
                works.push(w);
            }
            Err(_) => break,
        }
    }
    works
}

/// A commit thread's `syncfs` calls, and what their failures cost.
///
/// A `syncfs` reports a write-back error once, to whichever call comes
/// first after it, which need not be the call for the batch of the file
/// whose write-back failed: that file may still be waiting to be
/// committed. So a failed call numbered `k` fails every file written
/// before it ended (`written < k + 1`) as it comes, not only its own batch.
struct Syncs {
    fs: std::io::Result<Syncer>,
    /// Files with `written` below this may have lost their data.
    poisoned_below: u64,
}

impl Syncs {
    /// One `syncfs`, or why it failed.
    fn sync(&mut self) -> Result<(), String> {
        let k = SYNCS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let r = match &self.fs {
            Ok(fs) => fs.sync().map_err(|e| format!("syncfs: {e}")),
            Err(e) => Err(format!("cannot open the root for syncfs: {e}")),
        };
        if r.is_err() {
            self.poisoned_below = k + 1;
        }
        r
    }
}

/// The files to commit, in order, and whose each is.
fn flatten(works: Vec<Work>) -> (Vec<Ready>, Vec<Owner>) {
    let mut batch = Vec::new();
    let mut owners = Vec::with_capacity(works.len());
    for w in works {
        match w {
            Work::One(r) => {
                owners.push(Owner::One(r.id, batch.len()));
                batch.push(r);
            }
            Work::Batch { id, files } => {
                let at = files
                    .into_iter()
                    .map(|f| {
                        f.map(|r| {
                            batch.push(r);
                            batch.len() - 1
                        })
                    })
                    .collect();
                owners.push(Owner::Batch(id, at));
            }
        }
    }
    (batch, owners)
}

/// Each request's reply, from the replies of the files committed.
fn answers(owners: Vec<Owner>, replies: Vec<Reply>) -> Vec<(u64, Reply)> {
    let mut replies: Vec<Option<Reply>> = replies.into_iter().map(Some).collect();
    let mut take = |at: usize| {
        replies[at]
            .take()
            .unwrap_or_else(|| Reply::error(Code::FileIo, b"", "no reply (a bug)"))
    };
    owners
        .into_iter()
        .map(|o| match o {
            Owner::One(id, at) => (id, take(at)),
            Owner::Batch(id, files) => {
                let placed = files
                    .into_iter()
                    .map(|f| match f.map(&mut take) {
                        Ok(Reply::Done) => None,
                        Ok(Reply::Error { code, message, .. }) => Some(Failed { code, message }),
                        Ok(other) => Some(Failed {
                            code: Code::FileIo,
                            message: format!("unexpected {other:?}"),
                        }),
                        Err(f) => Some(f),
                    })
                    .collect();
                (id, Reply::Placed(placed))
            }
        })
        .collect()
}

/// A batch renamed into place (those of its files that could be), its
/// renames not yet durable.
#[derive(Debug)]
pub struct Landed {
    /// Each file's reply, once it has one.
    replies: Vec<Option<Reply>>,
    /// The files renamed, by place.
    renamed: Vec<(usize, RelPath)>,
}

impl Landed {
    /// The same error for each of a batch's `n` files (the client names
    /// each file itself).
    fn failed(n: usize, why: &str) -> Landed {
        Landed {
            replies: vec![Some(Reply::error(Code::FileIo, b"", why)); n],
            renamed: Vec::new(),
        }
    }

    /// Every file's reply, in order, once `after` (a `syncfs` made after
    /// the renames) says whether they are durable.
    pub fn seal(mut self, after: &Result<(), String>) -> Vec<Reply> {
        for (at, path) in self.renamed {
            self.replies[at] = Some(match after {
                Ok(()) => Reply::Done,
                Err(e) => Reply::error(
                    Code::FileIo,
                    path.as_bytes(),
                    format!("renamed into place, but {e}"),
                ),
            });
        }
        self.replies.into_iter().flatten().collect()
    }
}

/// Renames each file of a batch whose data `synced` made durable into
/// place, if its path still holds what the plan saw; a file written before
/// a failed `syncfs` (`written < poisoned_below`) fails instead.
pub fn land(
    root: &Root,
    synced: &Result<(), String>,
    poisoned_below: u64,
    batch: Vec<Ready>,
) -> Landed {
    let work = root.work_dir("partial");
    let mut replies: Vec<Option<Reply>> = vec![None; batch.len()];
    let mut renamed = Vec::new();
    let mut parent = None;
    for (at, r) in batch.into_iter().enumerate() {
        let fail = |c, e: &dyn std::fmt::Display| Reply::error(c, r.path.as_bytes(), e);
        let work = match &work {
            Ok(w) => w,
            Err(e) => {
                replies[at] = Some(fail(Code::FileIo, e));
                continue;
            }
        };
        let lost = (r.written < poisoned_below).then_some(
            "a write-back error was reported after it was written; its data may be lost",
        );
        if let Some(e) = synced.as_ref().err().map(String::as_str).or(lost) {
            let _ = work.remove_file(&r.name);
            replies[at] = Some(fail(Code::FileIo, &e));
            continue;
        }
        if r.expect == Expect::Absent {
            // A new file: no check needed before a rename that refuses to
            // replace anything.
            match root.rename_in_new(work, &r.name, &r.path, &mut parent) {
                Ok(true) => {
                    renamed.push((at, r.path));
                    continue;
                }
                Ok(false) => {
                    // Kept in partial/, as `settle` keeps one.
                    replies[at] = Some(fail(Code::Changed, &CHANGED));
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {}
                Err(e) => {
                    let _ = work.remove_file(&r.name);
                    replies[at] = Some(fail(Code::FileIo, &e));
                    continue;
                }
            }
        }
        match settle(root, work, &r.name, &r.path, &r.expect) {
            Ok(()) => renamed.push((at, r.path)),
            Err(rep) => replies[at] = Some(rep),
        }
    }
    Landed { replies, renamed }
}

/// Makes one batch durable and renames it into place, with a `syncfs`
/// before and one after; the reply for each, in order.
#[cfg(test)]
pub fn commit(root: &Root, fs: &Syncer, batch: Vec<Ready>) -> Vec<Reply> {
    let sync = || fs.sync().map_err(|e| format!("syncfs: {e}"));
    land(root, &sync(), 0, batch).seal(&sync())
}

/// A batch of at most this many files, with nothing else pending, is made
/// durable file by file instead of with `syncfs`, which writes back
/// everything dirty on the filesystem, other writers' data too: in the WAN
/// benchmark, 110 ms for 20 appended files just after the scenario was
/// set up, where each file's own `fdatasync` costs well under a
/// millisecond on that disk.
const SMALL_BATCH: usize = 32;

/// Commits a small batch: `fdatasync` of each file, the guarded renames,
/// then `fsync` of each folder a file landed in; the reply for each, in
/// order. The guarantees are `run`'s: a reply means data and rename are
/// durable.
fn commit_small(root: &Root, poisoned_below: u64, batch: Vec<Ready>) -> Vec<Reply> {
    let work = root.work_dir("partial");
    let mut replies: Vec<Option<Reply>> = vec![None; batch.len()];
    let mut durable = Vec::with_capacity(batch.len());
    let mut places = Vec::with_capacity(batch.len());
    for (at, r) in batch.into_iter().enumerate() {
        let data = match &work {
            Ok(w) => w
                .open(&r.name)
                .and_then(|f| f.into_std().sync_data())
                .map_err(|e| format!("fdatasync: {e}")),
            Err(e) => Err(e.to_string()),
        };
        match data {
            Ok(()) => {
                durable.push(r);
                places.push(at);
            }
            Err(e) => {
                if let Ok(w) = &work {
                    let _ = w.remove_file(&r.name);
                }
                replies[at] = Some(Reply::error(Code::FileIo, r.path.as_bytes(), e));
            }
        }
    }
    let landed = land(root, &Ok(()), poisoned_below, durable);
    // Each folder once: its fsync makes the renames into it durable.
    let mut folders: HashMap<RelPath, Result<(), String>> = HashMap::new();
    for (_, p) in &landed.renamed {
        folders.entry(p.parent()).or_insert_with(|| {
            root.sync_parent(p)
                .map_err(|e| format!("its folder's fsync failed: {e}"))
        });
    }
    let Landed {
        replies: got,
        renamed,
    } = landed;
    let mut got: Vec<Option<Reply>> = got;
    for (i, p) in renamed {
        got[i] = Some(match &folders[&p.parent()] {
            Ok(()) => Reply::Done,
            Err(e) => Reply::error(
                Code::FileIo,
                p.as_bytes(),
                format!("renamed into place, but {e}"),
            ),
        });
    }
    for (i, rep) in got.into_iter().enumerate() {
        replies[places[i]] = rep;
    }
    replies
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Reply::error(Code::FileIo, b"", "no reply (a bug)")))
        .collect()
}

/// Why a new version was not renamed in.
const CHANGED: &str = "changed since the plan was made; left alone";

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
            return Err(fail(Code::Changed, &CHANGED));
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
            written: syncs_so_far(),
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
        assert_eq!(replies.len(), 4, "one reply per file, in order");
        for (id, rep) in (1..).zip(&replies) {
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

    /// A small batch is made durable file by file, with the same
    /// answers: placed, changed under it (kept in partial/), or written
    /// before a failed `syncfs`.
    #[test]
    fn a_small_batch_commits_file_by_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path(), false).unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("taken"), b"live").unwrap();
        let at = |mut r: Ready, written| {
            r.written = written;
            r
        };
        let poisoned_below = u64::MAX - 1;
        let a = at(ready(&root, 1, b"d/a", b"one", Expect::Absent), u64::MAX);
        let taken = at(ready(&root, 2, b"taken", b"two", Expect::Absent), u64::MAX);
        let late = at(ready(&root, 3, b"late", b"three", Expect::Absent), u64::MAX);
        let early = at(ready(&root, 4, b"early", b"four", Expect::Absent), 0);
        let replies = commit_small(&root, poisoned_below, vec![a, taken, late, early]);
        assert_eq!(replies[0], Reply::Done);
        assert!(
            matches!(
                &replies[1],
                Reply::Error {
                    code: Code::Changed,
                    ..
                }
            ),
            "{replies:?}"
        );
        assert_eq!(replies[2], Reply::Done);
        assert!(
            matches!(
                &replies[3],
                Reply::Error {
                    code: Code::FileIo,
                    ..
                }
            ),
            "{replies:?}"
        );
        assert_eq!(std::fs::read(dir.path().join("d/a")).unwrap(), b"one");
        assert_eq!(std::fs::read(dir.path().join("taken")).unwrap(), b"live");
        assert_eq!(std::fs::read(dir.path().join("late")).unwrap(), b"three");
        assert!(!dir.path().join("early").exists());
    }

    /// A file written before a failed `syncfs` is failed when it comes,
    /// whichever batch that `syncfs` was for, and its partial removed; one
    /// written after it lands.
    #[test]
    fn a_file_written_before_a_failed_syncfs_fails() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path(), false).unwrap();
        let early = ready(&root, 1, b"early", b"1", Expect::Absent);
        let poisoned_below = early.written + 1;
        let mut late = ready(&root, 2, b"late", b"2", Expect::Absent);
        late.written = poisoned_below;
        let name = early.name.clone();
        let replies = land(&root, &Ok(()), poisoned_below, vec![early, late]).seal(&Ok(()));
        assert!(
            matches!(
                &replies[0],
                Reply::Error {
                    code: Code::FileIo,
                    ..
                }
            ),
            "{replies:?}"
        );
        assert_eq!(replies[1], Reply::Done);
        assert!(!dir.path().join("early").exists());
        let partial = dir.path().join(crate::path::WORK_DIR).join("partial");
        assert!(!partial.join(name).exists(), "its partial is removed");
        assert_eq!(std::fs::read(dir.path().join("late")).unwrap(), b"2");
    }

    /// A patch's file and a `Put`'s files commit together: the patch gets
    /// its own reply, the `Put` one `Placed` with each file's fate in its
    /// order, failures met before the commit included.
    #[test]
    fn patches_and_batches_each_get_their_own_reply() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path(), false).unwrap();
        std::fs::write(dir.path().join("taken"), b"live").unwrap();
        let early = Failed {
            code: Code::Checksum,
            message: "bad".into(),
        };
        let works = vec![
            Work::Batch {
                id: 7,
                files: vec![
                    Ok(ready(&root, 7, b"x", b"1", Expect::Absent)),
                    Err(early.clone()),
                    Ok(ready(&root, 7, b"taken", b"2", Expect::Absent)),
                ],
            },
            Work::One(ready(&root, 8, b"y", b"3", Expect::Absent)),
        ];
        let (batch, owners) = flatten(works);
        let replies = commit(&root, &Syncer::new(&root).unwrap(), batch);
        let answered = answers(owners, replies);
        assert_eq!(answered.len(), 2);
        let (id, Reply::Placed(placed)) = &answered[0] else {
            panic!("{answered:?}");
        };
        assert_eq!(*id, 7);
        assert_eq!(placed.len(), 3);
        assert_eq!(placed[0], None);
        assert_eq!(placed[1], Some(early));
        assert_eq!(placed[2].as_ref().unwrap().code, Code::Changed);
        assert_eq!(answered[1], (8, Reply::Done));
        assert_eq!(std::fs::read(dir.path().join("x")).unwrap(), b"1");
        assert_eq!(std::fs::read(dir.path().join("y")).unwrap(), b"3");
        assert_eq!(std::fs::read(dir.path().join("taken")).unwrap(), b"live");
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
            tx.send(Work::One(ready(
                &root,
                i,
                name.as_bytes(),
                name.as_bytes(),
                Expect::Absent,
            )))
            .unwrap();
        }
        drop(tx);
        let writing = std::sync::atomic::AtomicUsize::new(0);
        run(&root, rx, &writing, &out, |id| freed_tx.send(id).unwrap());
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
