//! The agent's one-message requests: each gets one reply, `Done` (or a
//! value) or an `Error` naming the path and the cause. Every change is
//! guarded by an `Expect`: if the path no longer holds what the client's
//! plan saw, nothing is done and the reply says so (code `CHANGED`), so a
//! sync never overwrites or removes a change made while it ran.

use std::io;

use deltasync_wire::{Expect, Message};

use super::jobs::error;
use super::list::hash_file;
use super::root::Root;
use crate::link::code;
use crate::path::RelPath;

/// Handles `msg` if it is a one-message request; `None` otherwise.
pub(super) fn handle(root: &Root, msg: &Message) -> Option<Message> {
    let path = |raw: &[u8], id: u64| {
        RelPath::parse(raw).map_err(|e| Message::Error {
            id,
            code: code::REFUSED,
            path: raw.to_vec(),
            message: e.to_string(),
        })
    };
    let reply = match msg {
        Message::Mkdir { id, path: p, mode } => {
            path(p, *id).map(|p| done_or(*id, &p, root.mkdir(&p, *mode)))
        }
        Message::Symlink {
            id,
            path: p,
            target,
        } => path(p, *id).map(|p| done_or(*id, &p, root.symlink(&p, target))),
        Message::SetAttr {
            id,
            path: p,
            mode,
            mtime_ns,
            expect,
        } => path(p, *id).map(|p| {
            guarded(root, *id, &p, expect, || {
                if let Some(m) = mode {
                    root.set_mode(&p, *m)?;
                }
                if let Some(t) = mtime_ns {
                    root.set_mtime(&p, *t)?;
                }
                Ok(())
            })
        }),
        Message::Remove {
            id,
            path: p,
            expect,
        } => path(p, *id).map(|p| {
            if p.is_root() {
                return error(*id, code::REFUSED, &p, "refusing to remove the root");
            }
            guarded(root, *id, &p, expect, || root.remove(&p))
        }),
        Message::Stash {
            id,
            path: p,
            area,
            expect,
        } => path(p, *id).map(|p| {
            if p.is_root() {
                return error(*id, code::REFUSED, &p, "refusing to stash the root");
            }
            match area {
                0 => guarded(root, *id, &p, expect, || root.stash(&p, "deleted", false)),
                1 => guarded(root, *id, &p, expect, || root.stash(&p, "conflicts", true)),
                2 => guarded(root, *id, &p, expect, || root.stash_link(&p, "conflicts")),
                a => error(*id, code::REFUSED, &p, format!("unknown stash area {a}")),
            }
        }),
        Message::Rename {
            id,
            from,
            to,
            expect,
        } => path(from, *id)
            .and_then(|f| path(to, *id).map(|t| (f, t)))
            .map(|(f, t)| {
                if f.is_root() || t.is_root() {
                    return error(*id, code::REFUSED, &f, "refusing to rename the root");
                }
                guarded(root, *id, &f, expect, || root.rename(&f, &t))
            }),
        Message::Hash { id, path: p } => path(p, *id).map(|p| hash(root, *id, &p)),
        Message::ReplicaId { id, create } => Ok(match root.replica_id(*create) {
            Ok(v) => Message::Value {
                id: *id,
                text: v.unwrap_or_default(),
            },
            Err(e) => error(*id, code::FILE_IO, &RelPath::root(), e),
        }),
        Message::Lock { id, owner, force } => Ok(match root.lock(owner, *force) {
            Ok(Ok(())) => Message::Value {
                id: *id,
                text: String::new(),
            },
            Ok(Err(holder)) => error(*id, code::LOCKED, &RelPath::root(), holder),
            Err(e) => error(*id, code::FILE_IO, &RelPath::root(), e),
        }),
        Message::Unlock { id } => Ok(done_or(*id, &RelPath::root(), root.unlock())),
        Message::Pair { id, pair, set } => Ok(match root.pair_note(pair, set.as_deref()) {
            Ok(old) => Message::Value { id: *id, text: old },
            Err(e) => error(*id, code::FILE_IO, &RelPath::root(), e),
        }),
        Message::Purge { id, days } => Ok(done_or(
            *id,
            &RelPath::root(),
            root.purge(*days).map(|_| ()),
        )),
        _ => return None,
    };
    Some(reply.unwrap_or_else(|refused| refused))
}

/// Runs `change` only if `p` still holds what `expect` says.
fn guarded(
    root: &Root,
    id: u64,
    p: &RelPath,
    expect: &Expect,
    change: impl FnOnce() -> io::Result<()>,
) -> Message {
    match root.matches(p, expect) {
        Ok(true) => done_or(id, p, change()),
        Ok(false) if *expect == Expect::EmptyDir => error(
            id,
            code::CHANGED,
            p,
            "the folder is not empty: it holds entries this sync does not list \
             (excluded, hidden or new); left alone",
        ),
        Ok(false) => error(
            id,
            code::CHANGED,
            p,
            "changed since the plan was made; left alone",
        ),
        Err(e) => error(id, code::FILE_IO, p, e),
    }
}

/// The entry at `p` with its BLAKE3, read between two stats: a file that
/// changes while it is read is reported, never hashed half-written.
fn hash(root: &Root, id: u64, p: &RelPath) -> Message {
    let before = match root.entry(p) {
        Ok(Some(e)) => e,
        Ok(None) => return error(id, code::VANISHED, p, "vanished"),
        Err(e) => return error(id, code::FILE_IO, p, e),
    };
    let digest = match hash_file(root, p) {
        Ok(d) => d,
        Err(e) => return error(id, code::FILE_IO, p, e),
    };
    match root.entry(p) {
        Ok(Some(after)) if after == before => Message::Entry {
            id,
            entry: deltasync_wire::Entry {
                blake3: Some(digest),
                ..after
            },
        },
        Ok(_) => error(id, code::CHANGED, p, "changed while it was being read"),
        Err(e) => error(id, code::FILE_IO, p, e),
    }
}

/// `Done`, or the error with the right code.
pub(super) fn done_or(id: u64, p: &RelPath, r: io::Result<()>) -> Message {
    match r {
        Ok(()) => Message::Done { id },
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => error(id, code::REFUSED, p, e),
        Err(e) if e.kind() == io::ErrorKind::NotFound => error(id, code::VANISHED, p, e),
        Err(e) => error(id, code::FILE_IO, p, e),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    /// Every guarded step leaves the entry alone when it is not what the
    /// plan saw: a user's edit made during a run is never overwritten.
    #[test]
    fn guarded_steps_refuse_what_changed_since_the_plan() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"edited meanwhile").unwrap();
        std::fs::create_dir_all(dir.path().join("d/sub")).unwrap();
        let root = Root::open(dir.path(), false).unwrap();
        let meta = std::fs::metadata(dir.path().join("f")).unwrap();
        let seen = Expect::File {
            size: 3, // the plan saw 3 bytes
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        };
        let set = Message::SetAttr {
            id: 1,
            path: b"f".to_vec(),
            mode: Some(0o600),
            mtime_ns: Some(0),
            expect: seen,
        };
        assert!(matches!(
            handle(&root, &set),
            Some(Message::Error {
                code: code::CHANGED,
                ..
            })
        ));
        let after = std::fs::metadata(dir.path().join("f")).unwrap();
        assert_eq!(
            after.permissions().mode() & 0o777,
            meta.permissions().mode() & 0o777
        );
        assert_eq!(
            after.mtime(),
            meta.mtime(),
            "the mtime was not stamped over the edit"
        );

        let rmdir = Message::Remove {
            id: 2,
            path: b"d".to_vec(),
            expect: Expect::EmptyDir,
        };
        match handle(&root, &rmdir) {
            Some(Message::Error {
                code: c, message, ..
            }) => {
                assert_eq!(c, code::CHANGED);
                assert!(message.contains("not empty"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(dir.path().join("d/sub").is_dir());
        std::fs::remove_dir(dir.path().join("d/sub")).unwrap();
        assert!(matches!(handle(&root, &rmdir), Some(Message::Done { .. })));
        assert!(!dir.path().join("d").exists());
    }
}
