//! Attributes beyond the contents: times, permissions, owners, extended
//! attributes and ACLs, read for listings and set by changes.
//!
//! Times are set with `utimensat` on the entry itself (never a link's
//! target), from signed seconds and nanoseconds, so a file from 1960 or
//! 2300 keeps its date. Extended attributes are read and written through
//! `/proc/self/fd/N` of a descriptor opened beneath the root with
//! `O_PATH | O_NOFOLLOW`: the path-based xattr calls would resolve from the
//! process's working directory, outside the sandbox.
//!
//! Owners are set only where the kernel allows: as root, owner and group;
//! otherwise a group we belong to. Anything else is left as it is, as
//! rsync does for a non-root receiver.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use cap_std::fs::{Metadata, MetadataExt};
use deltasync_wire::{Attrs, EntryKind, ListWants, Mtime, Owner, Xattr};
use rustix::fs::{AtFlags, OFlags, Timespec, Timestamps, UTIME_OMIT, XattrFlags};

use super::ids;
use super::root::Root;
use crate::path::RelPath;

/// ACLs travel as these two attributes.
const ACL_NAMES: [&[u8]; 2] = [b"system.posix_acl_access", b"system.posix_acl_default"];

/// The owner and group `m` records, with their names.
pub fn owner_of(m: &Metadata) -> Owner {
    Owner {
        uid: m.uid(),
        gid: m.gid(),
        user: ids::user_name(m.uid()),
        group: ids::group_name(m.gid()),
    }
}

/// Asked once: the agent's user does not change.
fn is_root() -> bool {
    static ROOT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ROOT.get_or_init(|| rustix::process::geteuid().is_root())
}

/// True if `name` is an attribute `wants` asks for. ACLs are their own
/// choice (`-A`); of the rest, `user.*` always, `trusted.*` and
/// `security.*` only as root, and never an SELinux label, which belongs
/// to the receiving host's policy.
fn wanted(name: &[u8], wants: &ListWants) -> bool {
    if ACL_NAMES.contains(&name) {
        return wants.acls;
    }
    if !wants.xattrs {
        return false;
    }
    name.starts_with(b"user.")
        || (is_root()
            && (name.starts_with(b"trusted.") || name.starts_with(b"security."))
            && name != b"security.selinux")
}

fn proc_path(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// The wanted extended attributes of the object `fd` refers to, sorted.
pub fn read_xattrs(fd: BorrowedFd<'_>, wants: &ListWants) -> io::Result<Vec<Xattr>> {
    let path = proc_path(fd);
    let mut names = vec![0u8; 64 << 10];
    let n = match rustix::fs::listxattr(&path, &mut names[..]) {
        Ok(n) => n,
        Err(e) if e == rustix::io::Errno::NOTSUP => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    let mut value = vec![0u8; deltasync_wire::message::MAX_XATTR_VALUE];
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if !wanted(name, wants) {
            continue;
        }
        match rustix::fs::getxattr(&path, name, &mut value[..]) {
            Ok(len) => out.push(Xattr {
                name: name.to_vec(),
                value: value[..len].to_vec(),
            }),
            // Removed since the list was read.
            Err(e) if e == rustix::io::Errno::NODATA => {}
            Err(e) => return Err(e.into()),
        }
    }
    out.sort();
    Ok(out)
}

/// Makes the object `fd` refers to carry exactly `want` among the
/// attributes of the kinds `want` names: missing ones are added, changed
/// ones replaced, and ones of those kinds not in `want` removed.
pub fn write_xattrs(fd: BorrowedFd<'_>, want: &[Xattr]) -> io::Result<()> {
    let path = proc_path(fd);
    let everything = ListWants {
        xattrs: true,
        acls: true,
        ..ListWants::default()
    };
    let have = read_xattrs(fd, &everything)?;
    let acls_managed = want.iter().any(|x| ACL_NAMES.contains(&x.name.as_slice()));
    for old in &have {
        let is_acl = ACL_NAMES.contains(&old.name.as_slice());
        if (is_acl && !acls_managed) || want.iter().any(|w| w.name == old.name) {
            continue;
        }
        rustix::fs::removexattr(&path, old.name.as_slice())?;
    }
    for x in want {
        if have.contains(x) {
            continue;
        }
        rustix::fs::setxattr(&path, x.name.as_slice(), &x.value, XattrFlags::empty())?;
    }
    Ok(())
}

/// The local ids for `o`: by name where the name is known here.
fn local_ids(o: &Owner) -> (rustix::fs::Uid, rustix::fs::Gid) {
    (
        rustix::fs::Uid::from_raw(ids::uid_for(&o.user, o.uid)),
        rustix::fs::Gid::from_raw(ids::gid_for(&o.group, o.gid)),
    )
}

/// A refused change of owner is no error for a non-root agent (the owner
/// stays ours, as with rsync); anything else is.
fn allowed_or(r: rustix::io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if !is_root() && e == rustix::io::Errno::PERM => Ok(()),
        r => Ok(r?),
    }
}

/// Sets owner and group on `fd` as far as we may (see the module docs):
/// the owner only as root.
fn chown_fd(fd: BorrowedFd<'_>, o: &Owner) -> io::Result<()> {
    let (uid, gid) = local_ids(o);
    allowed_or(rustix::fs::fchown(fd, is_root().then_some(uid), Some(gid)))
}

fn timestamps(t: Mtime) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: t.secs,
            tv_nsec: i64::from(t.nanos),
        },
    }
}

/// Applies `a` to an open regular file (a patch's new file, before it is
/// renamed into place): owner first (it may clear set-id bits), then mode,
/// attributes, and the mtime last.
pub fn apply_to_file(f: &std::fs::File, a: &Attrs) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(o) = &a.owner {
        chown_fd(f.as_fd(), o)?;
    }
    if let Some(m) = a.mode {
        f.set_permissions(std::fs::Permissions::from_mode(m & 0o7777))?;
    }
    if let Some(x) = &a.xattrs {
        write_xattrs(f.as_fd(), x)?;
    }
    if let Some(t) = a.mtime {
        rustix::fs::futimens(f, &timestamps(t))?;
    }
    Ok(())
}

/// [`apply_to_file`] for a file this agent has just created: its owner
/// and mode are set only where they differ from what it got (each is a
/// journaled inode update; the stat that tells is not).
pub fn apply_to_new_file(f: &std::fs::File, a: &Attrs) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let m = f.metadata()?;
    let owner = a.owner.clone().filter(|o| {
        let (uid, gid) = local_ids(o);
        (is_root() && m.uid() != uid.as_raw()) || m.gid() != gid.as_raw()
    });
    // A change of owner may clear set-id bits: then the mode goes again
    // (a file just created has none to lose, but the order is kept).
    let mode = a
        .mode
        .filter(|want| owner.is_some() || m.mode() & 0o7777 != want & 0o7777);
    apply_to_file(
        f,
        &Attrs {
            owner,
            mode,
            xattrs: a.xattrs.clone(),
            mtime: a.mtime,
        },
    )
}

impl Root {
    /// Opens `p` itself (a symlink is not followed) as an `O_PATH`
    /// descriptor, beneath the root.
    fn open_path(&self, p: &RelPath) -> io::Result<std::os::fd::OwnedFd> {
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        if p.is_root() {
            return Ok(rustix::fs::openat(
                &self.dir,
                ".",
                flags,
                rustix::fs::Mode::empty(),
            )?);
        }
        let (parent, name) = self.parent_of(p)?;
        Ok(rustix::fs::openat(
            &parent,
            name,
            flags,
            rustix::fs::Mode::empty(),
        )?)
    }

    /// The wanted extended attributes of `p` (none on symlinks).
    pub fn xattrs(
        &self,
        p: &RelPath,
        kind: EntryKind,
        wants: &ListWants,
    ) -> io::Result<Vec<Xattr>> {
        if kind == EntryKind::Symlink || !(wants.xattrs || wants.acls) {
            return Ok(Vec::new());
        }
        let fd = self.open_path(p)?;
        read_xattrs(fd.as_fd(), wants)
    }

    /// Sets what `a` names on the entry at `p` itself.
    pub fn set_attrs(&self, p: &RelPath, a: &Attrs) -> io::Result<()> {
        self.check_writable()?;
        if a.is_empty() {
            return Ok(());
        }
        let m = self
            .lstat(p)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "vanished"))?;
        let link = m.file_type().is_symlink();
        if let Some(o) = &a.owner {
            let (uid, gid) = local_ids(o);
            let owner = is_root().then_some(uid);
            let done = if p.is_root() {
                rustix::fs::chownat(&self.dir, ".", owner, Some(gid), AtFlags::empty())
            } else {
                let (parent, name) = self.parent_of(p)?;
                rustix::fs::chownat(&parent, name, owner, Some(gid), AtFlags::SYMLINK_NOFOLLOW)
            };
            allowed_or(done)?;
        }
        if let Some(mode) = a.mode {
            self.set_mode(p, mode)?;
        }
        if let (Some(x), false) = (&a.xattrs, link) {
            let fd = self.open_path(p)?;
            write_xattrs(fd.as_fd(), x)?;
        }
        if let Some(t) = a.mtime {
            if p.is_root() {
                rustix::fs::utimensat(&self.dir, ".", &timestamps(t), AtFlags::empty())?;
            } else {
                let (parent, name) = self.parent_of(p)?;
                rustix::fs::utimensat(&parent, name, &timestamps(t), AtFlags::SYMLINK_NOFOLLOW)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new file gets exactly its mode, owner and mtime, whichever of
    /// them it already had.
    #[test]
    fn a_new_file_gets_exactly_its_attributes() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let me = std::fs::metadata(dir.path()).unwrap();
        let cases = [
            (0o644, me.uid(), me.gid()),
            (0o600, me.uid(), me.gid()),
            (0o4755, 65534, 65534),
            (0o2750, me.uid(), me.gid()),
        ];
        for (i, (mode, uid, gid)) in cases.into_iter().enumerate() {
            let path = dir.path().join(i.to_string());
            let f = std::fs::File::create(&path).unwrap();
            let owner = Owner {
                uid,
                gid,
                user: String::new(),
                group: String::new(),
            };
            let a = Attrs {
                mode: Some(mode),
                mtime: Some(Mtime::new(1_234_567, 89)),
                owner: Some(owner),
                xattrs: None,
            };
            apply_to_new_file(&f, &a).unwrap();
            let m = std::fs::metadata(&path).unwrap();
            let root = rustix::process::geteuid().is_root();
            if root || uid == me.uid() {
                assert_eq!(m.mode() & 0o7777, mode, "case {i}");
                assert_eq!((m.uid(), m.gid()), (uid, gid), "case {i}");
            }
            assert_eq!((m.mtime(), m.mtime_nsec()), (1_234_567, 89), "case {i}");
        }
    }

    #[test]
    fn times_before_1970_and_after_2262_are_set_exactly() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        std::os::unix::fs::symlink("f", dir.path().join("l")).unwrap();
        let root = Root::open(dir.path(), false).unwrap();
        for (name, t) in [
            ("f", Mtime::new(-86_400 * 365 * 20, 123)),
            ("f", Mtime::new(10_000_000_000, 5)),
            ("l", Mtime::new(-7, 999_999_999)),
        ] {
            let p = RelPath::parse(name.as_bytes()).unwrap();
            let a = Attrs {
                mtime: Some(t),
                ..Attrs::default()
            };
            root.set_attrs(&p, &a).unwrap();
            let m = std::fs::symlink_metadata(dir.path().join(name)).unwrap();
            assert_eq!(Mtime::new(m.mtime(), m.mtime_nsec()), t);
            assert_eq!(root.entry(&p).unwrap().unwrap().mtime, t);
        }
    }

    #[test]
    fn user_xattrs_are_read_written_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        let root = Root::open(dir.path(), false).unwrap();
        let p = RelPath::parse(b"f").unwrap();
        let wants = ListWants {
            xattrs: true,
            ..ListWants::default()
        };
        let want = vec![
            Xattr {
                name: b"user.a".to_vec(),
                value: b"1".to_vec(),
            },
            Xattr {
                name: b"user.b".to_vec(),
                value: vec![0, 255],
            },
        ];
        let set = |x: Vec<Xattr>| {
            root.set_attrs(
                &p,
                &Attrs {
                    xattrs: Some(x),
                    ..Attrs::default()
                },
            )
        };
        if set(want.clone()).is_err() {
            eprintln!("this file system has no user xattrs; skipping");
            return;
        }
        assert_eq!(root.xattrs(&p, EntryKind::File, &wants).unwrap(), want);
        set(want[1..].to_vec()).unwrap();
        assert_eq!(root.xattrs(&p, EntryKind::File, &wants).unwrap(), want[1..]);
    }
}
