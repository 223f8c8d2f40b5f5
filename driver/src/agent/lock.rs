//! The replica lock: `.deltasync/lock`, held with `flock` for as long as
//! the agent that took it lives.
//!
//! The kernel releases a `flock` when its holder dies, so a run that was
//! killed leaves no lock behind to clean up, and no two runs can ever both
//! "take over" a stale one: taking the lock is one atomic system call. The
//! file's text (host, pid, start time) only tells a waiting user who holds
//! it.
//!
//! RACE: a holder that unlocks removes the file; a run that opened the old
//! file just before may then lock an unlinked inode. So after locking, the
//! taker checks that the path still names the inode it locked, and starts
//! over if not.

use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;

use cap_fs_ext::{FollowSymlinks, OpenOptionsFollowExt};
use cap_std::fs::{MetadataExt as _, OpenOptions};
use rustix::fs::FlockOperation;

use super::root::Root;
use crate::path::{LOCK_FILE, WORK_DIR};

/// The lock this agent holds, if any.
#[derive(Debug, Default)]
pub struct Lock(Mutex<Option<std::fs::File>>);

impl Root {
    /// Takes the lock, writing `owner` into it; `Ok(Err(holder))` if a
    /// live process holds it. With `force`, a held lock is broken: its
    /// file is replaced, so its holder keeps a lock on nothing.
    pub fn lock(&self, owner: &str, force: bool) -> io::Result<Result<(), String>> {
        self.check_writable()?;
        self.dir.create_dir_all(WORK_DIR)?;
        let mut held = self
            .lock
            .0
            .lock()
            .map_err(|_| io::Error::other("lock poisoned"))?;
        if held.is_some() {
            return Ok(Ok(())); // already ours
        }
        for _ in 0..16 {
            let mut o = OpenOptions::new();
            o.read(true)
                .write(true)
                .create(true)
                .follow(FollowSymlinks::No);
            let mut f = self.dir.open_with(LOCK_FILE, &o)?.into_std();
            match rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                    let mut holder = String::new();
                    let _ = f.read_to_string(&mut holder);
                    if force {
                        self.dir.remove_file(LOCK_FILE)?;
                        continue;
                    }
                    return Ok(Err(holder.trim().to_string()));
                }
                Err(e) => return Err(e.into()),
            }
            // Still the file at the path? (see RACE above)
            let ours = f.metadata()?;
            match self.dir.symlink_metadata(LOCK_FILE) {
                Ok(now) if now.ino() == ours.ino() && now.dev() == ours.dev() => {}
                _ => continue,
            }
            f.set_len(0)?;
            f.rewind()?;
            f.write_all(owner.as_bytes())?;
            *held = Some(f);
            return Ok(Ok(()));
        }
        Err(io::Error::other(
            "the lock file kept changing under us; is another run starting and stopping?",
        ))
    }

    /// Releases our lock: removes the file (only if it is still the one we
    /// locked), then lets the `flock` go. Without our lock, nothing happens:
    /// another run's lock is never removed.
    pub fn unlock(&self) -> io::Result<()> {
        let mut held = self
            .lock
            .0
            .lock()
            .map_err(|_| io::Error::other("lock poisoned"))?;
        let Some(f) = held.take() else {
            return Ok(());
        };
        let ours = f.metadata()?;
        if let Ok(now) = self.dir.symlink_metadata(LOCK_FILE) {
            if now.ino() == ours.ino() && now.dev() == ours.dev() {
                self.dir.remove_file(LOCK_FILE)?;
            }
        }
        drop(f);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many agents racing for a stale lock: exactly one wins each round.
    #[test]
    fn a_stale_lock_is_taken_by_exactly_one_racer() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".deltasync")).unwrap();
        for round in 0..20 {
            std::fs::write(
                dir.path().join(".deltasync/lock"),
                "host=gone pid=4000000000 started=long ago",
            )
            .unwrap();
            let roots: Vec<Root> = (0..4)
                .map(|_| Root::open(dir.path(), false).unwrap())
                .collect();
            let barrier = std::sync::Barrier::new(roots.len());
            let wins: usize = std::thread::scope(|s| {
                let hs: Vec<_> = roots
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        let barrier = &barrier;
                        s.spawn(move || {
                            barrier.wait();
                            r.lock(&format!("racer {i}"), false).unwrap().is_ok() as usize
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).sum()
            });
            assert_eq!(wins, 1, "round {round}: {wins} racers took the lock");
            for r in &roots {
                r.unlock().unwrap();
            }
            assert!(!dir.path().join(".deltasync/lock").exists());
        }
    }

    #[test]
    fn unlock_removes_only_our_own_lock_and_force_breaks_a_live_one() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            Root::open(dir.path(), false).unwrap(),
            Root::open(dir.path(), false).unwrap(),
        );
        assert!(a.lock("a", false).unwrap().is_ok());
        assert_eq!(b.lock("b", false).unwrap(), Err("a".to_string()));
        b.unlock().unwrap(); // not b's: nothing happens
        assert!(dir.path().join(".deltasync/lock").exists());
        assert!(b.lock("b", true).unwrap().is_ok());
        a.unlock().unwrap(); // a's lock was broken: b's file stays
        assert_eq!(
            std::fs::read_to_string(dir.path().join(".deltasync/lock")).unwrap(),
            "b"
        );
        b.unlock().unwrap();
        assert!(!dir.path().join(".deltasync/lock").exists());
    }
}
