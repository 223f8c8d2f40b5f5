//! The agent's watch: the replica's changes, as `Changed` replies.
//!
//! notify (inotify on Linux) watches the root recursively through the
//! opened directory's own handle (`/proc/self/fd/N`), so a root opened
//! beneath a forced root is watched where it was opened, never by
//! resolving its path again. Events are gathered for [`GATHER`] and go out
//! as one `Changed` reply with paths relative to the root. Reads are not
//! changes (our own listings and signatures read files), and the work
//! directory's events are dropped (our own partial files).
//!
//! Nothing here grows without bound: past [`MAX_PENDING`] distinct paths
//! between two sends, or when the kernel's queue overflowed, the reply
//! says `overflow` (list everything) instead. A tree with more folders
//! than the kernel's watch limit ends the watch with a `Busy` error that
//! names `fs.inotify.max_user_watches`; the client then scans on a timer.

use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender, bounded, select, unbounded};
use deltasync_wire::message::MAX_CHANGED;
use deltasync_wire::{Code, Message, Reply};
use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecursiveMode, Watcher};

use crate::path::WORK_DIR;

/// How long events are gathered before they are sent.
pub const GATHER: Duration = Duration::from_millis(100);
/// Most distinct paths held between two sends.
pub const MAX_PENDING: usize = 16_384;

/// A running watch; dropping it does not stop it, [`Watching::stop`] does.
#[derive(Debug)]
pub struct Watching {
    /// The request it answers.
    pub id: u64,
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl Watching {
    /// Stops the watch; it replies `Done` and reports itself finished.
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// Starts watching `dir` (the root's open handle, as a path) for request
/// `id`. Replies go to `out`; `finished` is called once the watch has sent
/// its last reply.
pub fn start(
    dir: PathBuf,
    id: u64,
    out: Sender<Message>,
    finished: impl FnOnce() + Send + 'static,
) -> Watching {
    let (stop, stopped) = bounded(1);
    let thread = std::thread::spawn(move || {
        let last = run(&dir, id, &out, &stopped);
        let _ = out.send(Message::Reply { id, rep: last });
        finished();
    });
    Watching { id, stop, thread }
}

/// Watches until told to stop; returns the terminal reply.
fn run(dir: &Path, id: u64, out: &Sender<Message>, stopped: &Receiver<()>) -> Reply {
    let (tx, events) = unbounded();
    let watcher = notify::recommended_watcher(move |e| {
        let _ = tx.send(e);
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => return Reply::error(Code::FileIo, b"", format!("cannot watch: {e}")),
    };
    if let Err(e) = watcher.watch(dir, RecursiveMode::Recursive) {
        return match e.kind {
            notify::ErrorKind::MaxFilesWatch => Reply::error(
                Code::Busy,
                b"",
                "the replica has more folders than the kernel lets one user watch \
                 (raise fs.inotify.max_user_watches)",
            ),
            _ => Reply::error(Code::FileIo, b"", format!("cannot watch: {e}")),
        };
    }
    let mut pending = Pending::default();
    let mut due: Option<Instant> = None;
    loop {
        let wait = due.map_or(Duration::from_secs(3600), |d| {
            d.saturating_duration_since(Instant::now())
        });
        select! {
            recv(stopped) -> _ => return Reply::Done,
            recv(events) -> e => match e {
                Ok(Ok(event)) => {
                    if event.need_rescan() {
                        pending.overflow = true;
                    } else if is_change(&event.kind) {
                        for p in &event.paths {
                            pending.add(relative(dir, p));
                        }
                    }
                }
                Ok(Err(_)) => pending.overflow = true, // a lost event: list everything
                Err(_) => return Reply::error(Code::FileIo, b"", "the watcher stopped"),
            },
            default(wait) => {}
        }
        if pending.is_empty() {
            continue;
        }
        match due {
            None => due = Some(Instant::now() + GATHER),
            Some(d) if Instant::now() >= d => {
                for rep in pending.take() {
                    if out.send(Message::Reply { id, rep }).is_err() {
                        return Reply::Done; // the client is gone
                    }
                }
                due = None;
            }
            Some(_) => {}
        }
    }
}

/// True for what changes a replica: not reads, and not a close after one.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// `p` relative to the watched `dir`, as wire bytes; `None` for the root
/// itself, the work directory, or a path from elsewhere.
fn relative(dir: &Path, p: &Path) -> Option<Vec<u8>> {
    let rel = p.strip_prefix(dir).ok()?;
    let first = rel.components().next()?;
    if first.as_os_str().as_bytes() == WORK_DIR.as_bytes() {
        return None;
    }
    Some(rel.as_os_str().as_bytes().to_vec())
}

/// Paths gathered since the last send.
#[derive(Debug, Default)]
struct Pending {
    paths: BTreeSet<Vec<u8>>,
    overflow: bool,
}

impl Pending {
    fn add(&mut self, p: Option<Vec<u8>>) {
        let Some(p) = p else { return };
        if self.overflow {
            return;
        }
        self.paths.insert(p);
        if self.paths.len() > MAX_PENDING {
            self.paths.clear();
            self.overflow = true;
        }
    }

    fn is_empty(&self) -> bool {
        self.paths.is_empty() && !self.overflow
    }

    /// The replies that send what is pending, and an empty set.
    fn take(&mut self) -> Vec<Reply> {
        if std::mem::take(&mut self.overflow) {
            self.paths.clear();
            return vec![Reply::Changed {
                paths: Vec::new(),
                overflow: true,
            }];
        }
        let paths: Vec<Vec<u8>> = std::mem::take(&mut self.paths).into_iter().collect();
        paths
            .chunks(MAX_CHANGED as usize)
            .map(|c| Reply::Changed {
                paths: c.to_vec(),
                overflow: false,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_relative_and_the_work_directory_is_left_out() {
        let dir = Path::new("/proc/self/fd/7");
        assert_eq!(
            relative(dir, Path::new("/proc/self/fd/7/a/b")),
            Some(b"a/b".to_vec())
        );
        assert_eq!(relative(dir, dir), None);
        assert_eq!(
            relative(dir, Path::new("/proc/self/fd/7/.deltasync/x")),
            None
        );
        assert_eq!(relative(dir, Path::new("/etc/passwd")), None);
    }

    #[test]
    fn too_many_paths_become_one_overflow_and_big_sets_are_split() {
        let mut p = Pending::default();
        for i in 0..=MAX_PENDING {
            p.add(Some(format!("f{i}").into_bytes()));
        }
        assert_eq!(
            p.take(),
            [Reply::Changed {
                paths: Vec::new(),
                overflow: true
            }]
        );
        assert!(p.is_empty());
        for i in 0..MAX_CHANGED + 1 {
            p.add(Some(format!("f{i}").into_bytes()));
        }
        let sent = p.take();
        assert_eq!(sent.len(), 2);
        assert!(p.is_empty());
    }

    #[test]
    fn a_write_in_the_tree_is_reported_and_a_read_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("sub")).unwrap();
        std::fs::write(tmp.path().join("sub/old"), b"x").unwrap();
        let (out, replies) = unbounded();
        let (fin, finished) = bounded(1);
        let w = start(tmp.path().to_path_buf(), 9, out, move || {
            let _ = fin.send(());
        });
        std::thread::sleep(Duration::from_millis(200));
        let _ = std::fs::read(tmp.path().join("sub/old")).unwrap();
        std::fs::write(tmp.path().join("sub/new"), b"y").unwrap();
        std::fs::create_dir(tmp.path().join(".deltasync")).unwrap();
        std::fs::write(tmp.path().join(".deltasync/partial"), b"z").unwrap();
        let got = replies.recv_timeout(Duration::from_secs(5)).unwrap();
        let Message::Reply {
            id: 9,
            rep: Reply::Changed { paths, overflow },
        } = got
        else {
            panic!("{got:?}");
        };
        assert!(!overflow);
        assert_eq!(paths, [b"sub/new".to_vec()]);
        w.stop();
        assert!(finished.recv_timeout(Duration::from_secs(5)).is_ok());
        let last = replies.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(
            matches!(
                last,
                Message::Reply {
                    id: 9,
                    rep: Reply::Done
                }
            ),
            "{last:?}"
        );
    }
}
