//! The agent's one-message requests: each gets one reply, `Done` (or a
//! value) or an `Error` naming the path and the cause (a listing gets its
//! stream). Every change is guarded by an `Expect`: if the path no longer
//! holds what the client's plan saw, nothing is done and the reply says so
//! (code `Changed`), so a sync never overwrites or removes a change made
//! while it ran.

use std::io;

use crossbeam::channel::Sender;
use deltasync_wire::{Code, Expect, Message, Reply, Request};

use super::jobs::io_code;
use super::list::{ListJob, hash_file, matcher, send_listing};
use super::root::Root;
use crate::path::{LOCK_FILE, REPLICA_ID_FILE, RelPath};

/// Answers request `id` on `out`.
pub(super) fn run(root: &Root, id: u64, req: Request, out: &Sender<Message>) {
    let reply = |rep| {
        let _ = out.send(Message::Reply { id, rep });
    };
    if let Request::List {
        under,
        filters,
        wants,
        if_digest,
    } = &req
    {
        let under = match RelPath::parse(under) {
            Ok(p) => p,
            Err(e) => return reply(Reply::error(Code::Refused, under, e)),
        };
        let filter = match matcher(filters) {
            Ok(m) => m,
            Err(e) => return reply(Reply::error(Code::Refused, under.as_bytes(), e)),
        };
        let job = ListJob {
            id,
            under: &under,
            filter: &filter,
            wants: *wants,
            if_digest: *if_digest,
        };
        if let Err(e) = send_listing(root, &job, out) {
            reply(Reply::error(io_code(&e), under.as_bytes(), e));
        }
        return;
    }
    reply(handle(root, &req));
}

/// The reply to a one-message request.
pub(super) fn handle(root: &Root, req: &Request) -> Reply {
    let path = |raw: &[u8]| RelPath::parse(raw).map_err(|e| Reply::error(Code::Refused, raw, e));
    let root_path = RelPath::root();
    let r = match req {
        Request::Mkdir { path: p, attrs } => {
            path(p).map(|p| done_or(&p, root.mkdir(&p).and_then(|()| root.set_attrs(&p, attrs))))
        }
        Request::Symlink {
            path: p,
            target,
            attrs,
        } => path(p).map(|p| {
            done_or(
                &p,
                root.symlink(&p, target)
                    .and_then(|()| root.set_attrs(&p, attrs)),
            )
        }),
        Request::Link {
            path: p,
            existing,
            expect,
        } => path(p).and_then(|p| {
            let existing = path(existing)?;
            Ok(guarded(root, &p, expect, || root.hard_link(&p, &existing)))
        }),
        Request::SetAttr {
            path: p,
            attrs,
            expect,
        } => path(p).map(|p| guarded(root, &p, expect, || root.set_attrs(&p, attrs))),
        Request::Remove { path: p, expect } => path(p).map(|p| {
            if p.is_root() {
                return Reply::error(Code::Refused, p.as_bytes(), "refusing to remove the root");
            }
            guarded(root, &p, expect, || root.remove(&p))
        }),
        Request::Stash {
            path: p,
            area,
            expect,
        } => path(p).map(|p| {
            if p.is_root() {
                return Reply::error(Code::Refused, p.as_bytes(), "refusing to stash the root");
            }
            guarded(root, &p, expect, || root.stash(&p, *area))
        }),
        Request::Rename { from, to, expect } => path(from).and_then(|f| {
            let t = path(to)?;
            if f.is_root() || t.is_root() {
                return Ok(Reply::error(
                    Code::Refused,
                    f.as_bytes(),
                    "refusing to rename the root",
                ));
            }
            Ok(guarded(root, &f, expect, || root.rename(&f, &t)))
        }),
        Request::Hash { path: p } => path(p).map(|p| hash(root, &p)),
        Request::ReplicaId { create } => Ok(match root.replica_id(*create) {
            Ok(v) => Reply::Value(v.unwrap_or_default()),
            Err(e) => Reply::error(io_code(&e), b"", e),
        }),
        Request::Lock {
            owner,
            force,
            replica,
        } => Ok(lock(root, owner, *force, replica.as_deref())),
        Request::Unlock => Ok(done_or(&root_path, root.unlock())),
        Request::Space => Ok(match root.space() {
            Ok((avail, total)) => Reply::Value(format!("{avail} {total}")),
            Err(e) => Reply::error(io_code(&e), b"", e),
        }),
        Request::Pair { pair, set } => Ok(match root.pair_note(pair, set.as_deref()) {
            Ok(old) => Reply::Value(old),
            Err(e) => Reply::error(io_code(&e), b"", e),
        }),
        Request::Purge { days } => Ok(done_or(&root_path, root.purge(*days).map(|_| ()))),
        Request::List { .. }
        | Request::Signature { .. }
        | Request::Delta { .. }
        | Request::Match { .. }
        | Request::Patch { .. }
        | Request::Read { .. }
        | Request::Put { .. }
        | Request::Watch => Ok(Reply::error(
            Code::Refused,
            b"",
            "not a one-message request",
        )),
    };
    r.unwrap_or_else(|refused| refused)
}

/// Runs `change` only if `p` still holds what `expect` says.
fn guarded(
    root: &Root,
    p: &RelPath,
    expect: &Expect,
    change: impl FnOnce() -> io::Result<()>,
) -> Reply {
    match root.matches(p, expect) {
        Ok(true) => done_or(p, change()),
        Ok(false) if *expect == Expect::EmptyDir => Reply::error(
            Code::Changed,
            p.as_bytes(),
            "the folder is not empty: it holds entries this run does not list \
             (excluded, hidden or new); left alone",
        ),
        Ok(false) => Reply::error(
            Code::Changed,
            p.as_bytes(),
            "changed since the plan was made; left alone",
        ),
        Err(e) => Reply::error(io_code(&e), p.as_bytes(), e),
    }
}

/// The entry at `p` with its BLAKE3, read between two stats: a file that
/// changes while it is read is reported, never hashed half-written.
fn hash(root: &Root, p: &RelPath) -> Reply {
    let fail = |c, e: &dyn std::fmt::Display| Reply::error(c, p.as_bytes(), e);
    let before = match root.entry(p) {
        Ok(Some(e)) => e,
        Ok(None) => return fail(Code::Vanished, &"vanished"),
        Err(e) => return fail(io_code(&e), &e),
    };
    let digest = match hash_file(root, p) {
        Ok(d) => d,
        Err(e) => return fail(io_code(&e), &e),
    };
    match root.entry(p) {
        Ok(Some(after)) if after == before => Reply::Entry(Box::new(deltasync_wire::Entry {
            blake3: Some(digest),
            ..after
        })),
        Ok(_) => fail(Code::Changed, &"changed while it was being read"),
        Err(e) => fail(io_code(&e), &e),
    }
}

/// `Done`, or the error with the right code.
fn done_or(p: &RelPath, r: io::Result<()>) -> Reply {
    match r {
        Ok(()) => Reply::Done,
        Err(e) => Reply::error(io_code(&e), p.as_bytes(), e),
    }
}

/// `Lock`, after the replica check when one is asked: on a root that is not
/// the replica the client expects (an unmounted disk shows an empty mount
/// point), nothing is written, not even `.deltasync/`. An error reading the
/// id names its file; one taking the lock names the lock.
fn lock(root: &Root, owner: &str, force: bool, replica: Option<&str>) -> Reply {
    if let Some(want) = replica {
        match root.replica_id(false) {
            Ok(found) if found.as_deref() == Some(want) => {}
            Ok(found) => return Reply::error(Code::Replica, b"", found.unwrap_or_default()),
            Err(e) => return Reply::error(io_code(&e), REPLICA_ID_FILE.as_bytes(), e),
        }
    }
    match root.lock(owner, force) {
        Ok(Ok(())) => Reply::Value(String::new()),
        Ok(Err(holder)) => Reply::error(Code::Locked, b"", holder),
        Err(e) => Reply::error(io_code(&e), LOCK_FILE.as_bytes(), e),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use deltasync_wire::{Attrs, Mtime};

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
            mtime: Mtime::new(meta.mtime(), meta.mtime_nsec()),
        };
        let set = Request::SetAttr {
            path: b"f".to_vec(),
            attrs: Attrs {
                mode: Some(0o600),
                mtime: Some(Mtime::new(0, 0)),
                ..Attrs::default()
            },
            expect: seen,
        };
        assert!(matches!(
            handle(&root, &set),
            Reply::Error {
                code: Code::Changed,
                ..
            }
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

        let rmdir = Request::Remove {
            path: b"d".to_vec(),
            expect: Expect::EmptyDir,
        };
        match handle(&root, &rmdir) {
            Reply::Error { code, message, .. } => {
                assert_eq!(code, Code::Changed);
                assert!(message.contains("not empty"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(dir.path().join("d/sub").is_dir());
        std::fs::remove_dir(dir.path().join("d/sub")).unwrap();
        assert_eq!(handle(&root, &rmdir), Reply::Done);
        assert!(!dir.path().join("d").exists());
    }

    #[test]
    fn a_hard_link_replaces_a_file_and_refuses_a_changed_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"one").unwrap();
        std::fs::write(dir.path().join("b"), b"other").unwrap();
        let root = Root::open(dir.path(), false).unwrap();
        let link = |expect| Request::Link {
            path: b"b".to_vec(),
            existing: b"a".to_vec(),
            expect,
        };
        assert!(matches!(
            handle(&root, &link(Expect::Absent)),
            Reply::Error {
                code: Code::Changed,
                ..
            }
        ));
        assert_eq!(handle(&root, &link(Expect::Any)), Reply::Done);
        let (a, b) = (
            std::fs::metadata(dir.path().join("a")).unwrap(),
            std::fs::metadata(dir.path().join("b")).unwrap(),
        );
        assert_eq!(a.ino(), b.ino());
        assert_eq!(a.nlink(), 2);
    }
}
