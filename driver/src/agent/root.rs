//! The agent's view of its replica: a cap-std directory handle.
//!
//! Every path goes through `RelPath` (shape) and then through cap-std, which
//! resolves it with `openat`-style calls beneath the root and refuses any
//! resolution that would leave it, symlinks included. The final component
//! is never followed when it is a symlink: we open, stat, remove and retime
//! the link itself. Nothing here can name a file outside the root.
//!
//! The root itself is opened the same way when the agent runs as a forced
//! command: the forced directory is the only ambient path, and the
//! sub-root the client asked for is resolved beneath it, so a symlink in
//! the jail (`etc -> /etc`) cannot become the root.

use std::fs::File;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt, OpenOptionsSyncExt};
use cap_std::fs::{Dir, Metadata, MetadataExt, OpenOptions};
use deltasync_wire::{Entry, EntryKind, Expect, Links, ListWants, Mtime, StashArea};

use super::lock::Lock;
use crate::path::{REPLICA_ID_FILE, RelPath, WORK_DIR};

/// A replica root opened for an agent.
#[derive(Debug)]
pub struct Root {
    pub(super) dir: Dir,
    shown: PathBuf,
    read_only: bool,
    pub(super) lock: Lock,
}

/// A plain read-only descriptor of the directory `dir`: its handle may be
/// an `O_PATH` one, which `fsync` and `syncfs` refuse.
fn readable(dir: &Dir) -> io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    Ok(rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// The modification time `m` records.
pub fn mtime_of(m: &Metadata) -> Mtime {
    Mtime::new(m.mtime(), m.mtime_nsec())
}

impl Root {
    /// The open root as a path the kernel resolves to this very directory
    /// (`/proc/self/fd/N`), for a watch that must not look anywhere else.
    pub fn handle_path(&self) -> PathBuf {
        use std::os::fd::AsRawFd;
        PathBuf::from(format!("/proc/self/fd/{}", self.dir.as_raw_fd()))
    }

    /// Opens `path` as the root (it must exist and be a directory).
    pub fn open(path: &Path, read_only: bool) -> io::Result<Root> {
        let dir = Dir::open_ambient_dir(path, cap_std::ambient_authority()).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot open root {}: {e}", path.display()),
            )
        })?;
        Ok(Root {
            dir,
            shown: path.to_path_buf(),
            read_only,
            lock: Lock::default(),
        })
    }

    /// Opens `sub` beneath the directory `base` as the root: every
    /// component of `sub`, symlinks included, must resolve inside `base`.
    /// With `mkdir`, a missing last component is created (beneath `base`).
    pub fn open_beneath(base: &Path, sub: &Path, read_only: bool, mkdir: bool) -> io::Result<Root> {
        let jail = Dir::open_ambient_dir(base, cap_std::ambient_authority()).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot open the allowed root {}: {e}", base.display()),
            )
        })?;
        let shown = base.join(sub);
        if sub.as_os_str().is_empty() || sub == Path::new(".") {
            return Ok(Root {
                dir: jail,
                shown,
                read_only,
                lock: Lock::default(),
            });
        }
        if mkdir && !read_only {
            match jail.create_dir(sub) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot create root {}: {e}", shown.display()),
                    ));
                }
                _ => {}
            }
        }
        let dir = jail.open_dir(sub).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot open root {} beneath the allowed root {}: {e}",
                    shown.display(),
                    base.display()
                ),
            )
        })?;
        Ok(Root {
            dir,
            shown,
            read_only,
            lock: Lock::default(),
        })
    }

    /// The root as the user named it, for messages.
    pub fn shown(&self) -> &Path {
        &self.shown
    }

    /// Refuses writes on a `--read-only` agent.
    pub fn check_writable(&self) -> io::Result<()> {
        if self.read_only {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "this agent is --read-only",
            ))
        } else {
            Ok(())
        }
    }

    /// True on a `--read-only` agent.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// `lstat`: the entry itself, symlinks not followed; `None` if absent.
    pub fn lstat(&self, p: &RelPath) -> io::Result<Option<Metadata>> {
        match self.dir.symlink_metadata(p.as_path()) {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Opens a regular file for reading, refusing a symlink in last place
    /// and anything that is not a regular file.
    ///
    /// RACE: the entry may have been swapped for a FIFO or a device since
    /// it was listed. Opening a FIFO for reading blocks until a writer
    /// comes, forever if none does, so the open is non-blocking and the
    /// type is checked on the opened file, not on an earlier stat.
    pub fn open_file(&self, p: &RelPath) -> io::Result<File> {
        self.open_file_stat(p).map(|(f, _)| f)
    }

    /// [`Root::open_file`], with the stat it took of the open file.
    pub fn open_file_stat(&self, p: &RelPath) -> io::Result<(File, std::fs::Metadata)> {
        let mut o = OpenOptions::new();
        o.read(true).follow(FollowSymlinks::No).nonblock(true);
        let f = self.dir.open_with(p.as_path(), &o)?.into_std();
        let m = f.metadata()?;
        if !m.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file (a FIFO, socket or device is never read)",
            ));
        }
        let flags = rustix::fs::fcntl_getfl(&f)?;
        rustix::fs::fcntl_setfl(&f, flags - rustix::fs::OFlags::NONBLOCK)?;
        Ok((f, m))
    }

    /// What is at `p` now, if it is a regular file: its size and mtime
    /// (`lstat` through `p`'s parent, opened beneath the root and kept in
    /// `parent` for the next call: files of one folder come together).
    pub fn file_now(
        &self,
        p: &RelPath,
        parent: &mut Option<(RelPath, Dir)>,
    ) -> io::Result<Option<(u64, Mtime)>> {
        use std::os::unix::ffi::OsStrExt;
        let dir = self.parent_kept(p, parent)?;
        let name = std::ffi::OsStr::from_bytes(p.file_name());
        match rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if rustix::fs::FileType::from_raw_mode(st.st_mode).is_file() => Ok(Some((
                st.st_size as u64,
                Mtime::new(st.st_mtime, st.st_mtime_nsec as i64),
            ))),
            Ok(_) | Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A symlink's target.
    pub fn read_link(&self, p: &RelPath) -> io::Result<Vec<u8>> {
        use std::os::unix::ffi::OsStrExt;
        Ok(self
            .dir
            .read_link_contents(p.as_path())?
            .as_os_str()
            .as_bytes()
            .to_vec())
    }

    /// The directory that holds `p`, opened beneath the root, and `p`'s
    /// last component: for the `*at` calls cap-std does not offer. The
    /// name is one component, so nothing past the parent is followed.
    pub(super) fn parent_of<'p>(&self, p: &'p RelPath) -> io::Result<(Dir, &'p std::ffi::OsStr)> {
        use std::os::unix::ffi::OsStrExt;
        if p.is_root() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the root has no parent here",
            ));
        }
        let parent = p.parent();
        let dir = if parent.is_root() {
            self.dir.try_clone()?
        } else {
            self.dir.open_dir_nofollow(parent.as_path())?
        };
        Ok((dir, std::ffi::OsStr::from_bytes(p.file_name())))
    }

    /// `p`'s parent, opened beneath the root, from `parent` if it holds
    /// that folder already, else opened and kept there for the next call.
    fn parent_kept<'k>(
        &self,
        p: &RelPath,
        parent: &'k mut Option<(RelPath, Dir)>,
    ) -> io::Result<&'k Dir> {
        let folder = p.parent();
        if parent.as_ref().is_none_or(|(at, _)| *at != folder) {
            *parent = None;
            let (dir, _) = self.parent_of(p)?;
            *parent = Some((folder, dir));
        }
        match parent.as_ref() {
            Some((_, dir)) => Ok(dir),
            None => unreachable!("just set"),
        }
    }

    /// Creates a directory (fine if it already is one).
    pub fn mkdir(&self, p: &RelPath) -> io::Result<()> {
        self.check_writable()?;
        match self.dir.create_dir(p.as_path()) {
            Ok(()) => Ok(()),
            Err(e)
                if e.kind() == io::ErrorKind::AlreadyExists
                    && self.lstat(p)?.is_some_and(|m| m.is_dir()) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Creates a symlink, replacing an existing symlink in its place.
    ///
    /// Anything else in the way is refused, never removed: a client that
    /// means to replace a file or directory removes or stashes it first,
    /// and a file that appeared there since the client's plan (RACE: a
    /// user writing while a sync runs) must not be lost.
    pub fn symlink(&self, p: &RelPath, target: &[u8]) -> io::Result<()> {
        use std::os::unix::ffi::OsStrExt;
        self.check_writable()?;
        if let Some(m) = self.lstat(p)? {
            if !m.file_type().is_symlink() {
                let what = if m.is_dir() { "a directory" } else { "a file" };
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{what} is in the way of the symlink"),
                ));
            }
            self.dir.remove_file_or_symlink(p.as_path())?;
        }
        // The target is only text: it may be absolute or point anywhere,
        // since nothing here ever follows a link. cap-std refuses to create
        // such links, so the link is made with symlinkat beneath the parent.
        let (parent, name) = self.parent_of(p)?;
        rustix::fs::symlinkat(std::ffi::OsStr::from_bytes(target), &parent, name)?;
        Ok(())
    }

    /// Makes `p` a second name of the regular file at `existing`. Whatever
    /// is at `p` (a file, checked by the caller's `Expect`) is replaced
    /// atomically: the link is made under a temporary name, then renamed.
    pub fn hard_link(&self, p: &RelPath, existing: &RelPath) -> io::Result<()> {
        self.check_writable()?;
        if !self.lstat(existing)?.is_some_and(|m| m.is_file()) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} is not a regular file to link to", existing.display()),
            ));
        }
        if self.lstat(p)?.is_some_and(|m| m.is_dir()) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a directory is in the way of the hard link",
            ));
        }
        let (parent, name) = self.parent_of(p)?;
        let tmp = format!(".deltasync-link.{}", std::process::id());
        let _ = parent.remove_file(&tmp);
        self.dir.hard_link(existing.as_path(), &parent, &tmp)?;
        parent.rename(&tmp, &parent, name).inspect_err(|_| {
            let _ = parent.remove_file(&tmp);
        })
    }

    /// Removes a file, symlink or whole directory tree (never following links).
    pub fn remove(&self, p: &RelPath) -> io::Result<()> {
        self.check_writable()?;
        match self.lstat(p)? {
            None => Ok(()),
            Some(m) if m.is_dir() => self.dir.remove_dir_all(p.as_path()),
            Some(_) => self.dir.remove_file_or_symlink(p.as_path()),
        }
    }

    /// Sets permission bits (not on symlinks, which have none to speak of).
    pub fn set_mode(&self, p: &RelPath, mode: u32) -> io::Result<()> {
        self.check_writable()?;
        match self.lstat(p)? {
            Some(m) if !m.file_type().is_symlink() => {
                let perms = cap_std::fs::Permissions::from_std(std::fs::Permissions::from_mode(
                    mode & 0o7777,
                ));
                self.dir.set_permissions(p.as_path(), perms)
            }
            _ => Ok(()),
        }
    }

    /// The work directory `.deltasync/<sub>`, created on demand.
    pub fn work_dir(&self, sub: &str) -> io::Result<Dir> {
        self.check_writable()?;
        let rel = Path::new(WORK_DIR).join(sub);
        // Usually there already: one open instead of a mkdir per level.
        match self.dir.open_dir_nofollow(&rel) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.dir.create_dir_all(&rel)?;
                self.dir.open_dir_nofollow(&rel)
            }
            other => other,
        }
    }

    /// A plain descriptor of the root, for `syncfs` on its filesystem.
    pub fn fs_handle(&self) -> io::Result<std::os::fd::OwnedFd> {
        readable(&self.dir)
    }

    /// Makes the entries of the directory holding `p` durable (a rename
    /// into it, say).
    pub fn sync_parent(&self, p: &RelPath) -> io::Result<()> {
        let parent = p.parent();
        let fd = if parent.is_root() {
            readable(&self.dir)?
        } else {
            readable(&self.dir.open_dir_nofollow(parent.as_path())?)?
        };
        rustix::fs::fsync(fd).map_err(io::Error::from)
    }

    /// Renames `name` in `from` (a work directory) to `p` under the root.
    pub fn rename_in(&self, from: &Dir, name: &str, p: &RelPath) -> io::Result<()> {
        self.check_writable()?;
        if self.lstat(p)?.is_some_and(|m| m.is_dir()) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a directory is in the way",
            ));
        }
        self.rename_in_unchecked(from, name, p)
    }

    /// Renames `name` in `from` to `p` only if nothing is at `p`, in one
    /// step (`renameat2` with `RENAME_NOREPLACE`): no window between a
    /// check and the rename. `Ok(false)` if something is there; an error
    /// of kind `Unsupported` on a filesystem without it. `parent` keeps
    /// the last parent opened, for the next call: files of one folder come
    /// together, so each folder is resolved once.
    pub fn rename_in_new(
        &self,
        from: &Dir,
        name: &str,
        p: &RelPath,
        parent: &mut Option<(RelPath, Dir)>,
    ) -> io::Result<bool> {
        use rustix::fs::{RenameFlags, renameat_with};
        use std::os::unix::ffi::OsStrExt;
        self.check_writable()?;
        let dir = self.parent_kept(p, parent)?;
        let file_name = std::ffi::OsStr::from_bytes(p.file_name());
        match renameat_with(from, name, dir, file_name, RenameFlags::NOREPLACE) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::EXIST) => Ok(false),
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the filesystem cannot rename without replacing",
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// [`Root::rename_in`] for a caller that has just seen no directory
    /// at `p` (its `Expect` check).
    pub fn rename_in_unchecked(&self, from: &Dir, name: &str, p: &RelPath) -> io::Result<()> {
        self.check_writable()?;
        from.rename(name, &self.dir, p.as_path())
    }

    /// Describes the entry at `p`, or `None` if it is absent. A special
    /// file is an error of kind `Unsupported`, so a listing can name it.
    pub fn entry(&self, p: &RelPath) -> io::Result<Option<Entry>> {
        self.entry_with(p, &ListWants::default())
    }

    /// Like [`Root::entry`], with the attributes `wants` asks for.
    pub fn entry_with(&self, p: &RelPath, wants: &ListWants) -> io::Result<Option<Entry>> {
        match self.lstat(p)? {
            Some(m) => self.entry_from(p, &m, wants).map(Some),
            None => Ok(None),
        }
    }

    /// The entry at `p`, whose `lstat` is `m`.
    pub(super) fn entry_from(
        &self,
        p: &RelPath,
        m: &Metadata,
        wants: &ListWants,
    ) -> io::Result<Entry> {
        let ft = m.file_type();
        let kind = if ft.is_symlink() {
            EntryKind::Symlink
        } else if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_file() {
            EntryKind::File
        } else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a special file (FIFO, socket or device); skipped",
            ));
        };
        let mut e = Entry::new(
            p.as_bytes(),
            kind,
            if kind == EntryKind::File { m.len() } else { 0 },
            mtime_of(m),
            m.mode() & 0o7777,
        );
        e.ino = m.ino();
        if kind == EntryKind::Symlink {
            e.target = self.read_link(p)?;
        }
        if wants.owner {
            e.owner = Some(super::attrs::owner_of(m));
        }
        if wants.hard_links && kind == EntryKind::File && m.nlink() > 1 {
            e.links = Some(Links {
                dev: m.dev(),
                nlink: u32::try_from(m.nlink()).unwrap_or(u32::MAX),
            });
        }
        if wants.xattrs || wants.acls {
            e.xattrs = Some(self.xattrs(p, kind, wants)?);
        }
        Ok(e)
    }

    /// True if what stands at `p` is what `expect` says.
    pub fn matches(&self, p: &RelPath, expect: &Expect) -> io::Result<bool> {
        let m = self.lstat(p)?;
        Ok(match (expect, m) {
            (Expect::Any, _) => true,
            (Expect::Absent, m) => m.is_none(),
            (Expect::File { size, mtime }, Some(m)) => {
                m.is_file() && m.len() == *size && mtime_of(&m) == *mtime
            }
            (Expect::Dir, Some(m)) => m.is_dir(),
            (Expect::Symlink, Some(m)) => m.file_type().is_symlink(),
            (Expect::EmptyDir, Some(m)) => {
                m.is_dir() && self.dir.read_dir(p.as_path())?.next().is_none()
            }
            (_, None) => false,
        })
    }

    /// Moves `p` into its area of the work directory under its own
    /// relative path. A conflict copy always gets a timestamp suffix; a
    /// deleted entry gets one only when its name is already taken there.
    /// `ConflictsLink` hard-links a regular file instead of moving it: the
    /// version stays in place (as the basis of the delta that will replace
    /// it) and in the work directory, at no cost in space.
    pub fn stash(&self, p: &RelPath, area: StashArea) -> io::Result<()> {
        self.check_writable()?;
        let (sub, always_stamp, link) = match area {
            StashArea::Deleted => ("deleted", false, false),
            StashArea::Conflicts => ("conflicts", true, false),
            StashArea::ConflictsLink => (
                "conflicts",
                true,
                self.lstat(p)?.is_some_and(|m| m.is_file()),
            ),
        };
        let work = self.work_dir(sub)?;
        let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S").to_string();
        let base = stash_base(&work, p, &stamp)?;
        let path = base.join(p.as_path());
        let mut target = path.clone();
        if always_stamp || work.symlink_metadata(&target).is_ok() {
            target = suffixed(&path, &stamp);
        }
        let mut n = 1;
        while work.symlink_metadata(&target).is_ok() {
            n += 1;
            target = suffixed(&path, &format!("{stamp}-{n}"));
        }
        if link {
            self.dir.hard_link(p.as_path(), &work, &target)
        } else {
            self.dir.rename(p.as_path(), &work, &target)
        }
    }

    /// Renames `from` to `to` within the root, making `to`'s parents.
    pub fn rename(&self, from: &RelPath, to: &RelPath) -> io::Result<()> {
        self.check_writable()?;
        if self.lstat(to)?.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} already exists", to.display()),
            ));
        }
        let parent = to.parent();
        if !parent.is_root() {
            self.dir.create_dir_all(parent.as_path())?;
        }
        self.dir.rename(from.as_path(), &self.dir, to.as_path())
    }

    /// The replica's id, made on first use when `create` is set.
    pub fn replica_id(&self, create: bool) -> io::Result<Option<String>> {
        match self.dir.read_to_string(REPLICA_ID_FILE) {
            Ok(text) => return Ok(Some(text.trim().to_string())),
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            Err(_) => {}
        }
        if !create {
            return Ok(None);
        }
        self.check_writable()?;
        let mut raw = [0u8; 16];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut raw)?;
        let id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        self.dir.create_dir_all(WORK_DIR)?;
        self.dir.write(REPLICA_ID_FILE, format!("{id}\n"))?;
        Ok(Some(id))
    }

    /// This replica's note about sync pair `pair` (kept in
    /// `.deltasync/pairs/`), replaced by `set` when given. Returns the old
    /// note. The note says "this replica has been synced in this pair", so
    /// a lost state database is noticed instead of taken for a first sync.
    pub fn pair_note(&self, pair: &str, set: Option<&str>) -> io::Result<String> {
        if pair.is_empty() || !pair.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "pair ids are alphanumeric",
            ));
        }
        let rel = Path::new(WORK_DIR).join("pairs").join(pair);
        let old = match self.dir.read_to_string(&rel) {
            Ok(t) => t.trim().to_string(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        match set {
            Some("") => {
                self.check_writable()?;
                let _ = self.dir.remove_file(&rel);
            }
            Some(v) => {
                self.check_writable()?;
                self.dir.create_dir_all(Path::new(WORK_DIR).join("pairs"))?;
                self.dir.write(&rel, format!("{v}\n"))?;
            }
            None => {}
        }
        Ok(old)
    }

    /// The root's file system: bytes an unprivileged writer may still use,
    /// and its whole size.
    pub fn space(&self) -> io::Result<(u64, u64)> {
        let s = rustix::fs::fstatvfs(&self.dir)?;
        Ok((
            s.f_bavail.saturating_mul(s.f_frsize),
            s.f_blocks.saturating_mul(s.f_frsize),
        ))
    }

    /// Removes entries stashed in `deleted/` and `conflicts/` more than
    /// `days` days ago (by their ctime, which the stashing rename set), and
    /// partial files not written to for that long (by their mtime): a
    /// prefix nobody resumed in `days` days is not worth its space.
    pub fn purge(&self, days: u32) -> io::Result<u64> {
        self.check_writable()?;
        let cutoff =
            std::time::SystemTime::now() - std::time::Duration::from_secs(u64::from(days) * 86_400);
        let cutoff_secs = Mtime::from_system_time(cutoff).secs;
        let mut removed = 0;
        for area in ["deleted", "conflicts"] {
            let rel = Path::new(WORK_DIR).join(area);
            let Ok(dir) = self.dir.open_dir_nofollow(&rel) else {
                continue;
            };
            removed += purge_dir(&dir, Path::new(""), cutoff_secs, true)?;
        }
        if let Ok(dir) = self
            .dir
            .open_dir_nofollow(Path::new(WORK_DIR).join("partial"))
        {
            for e in dir.entries()? {
                let e = e?;
                let m = e.metadata()?;
                if m.is_file() && m.mtime() < cutoff_secs {
                    dir.remove_file(e.file_name())?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// Removes entries under `dir/sub` stashed before `cutoff`; prunes emptied
/// directories.
///
/// An entry's age is its ctime, which the stashing rename set. But a
/// directory stashed whole keeps its contents' old ctimes, so an entry goes
/// only if it *and every directory above it* (below the area) are older
/// than the cutoff (`parents_old`): stashing into a directory renews its
/// ctime, which keeps everything under it. That errs toward keeping.
fn purge_dir(dir: &Dir, sub: &Path, cutoff: i64, parents_old: bool) -> io::Result<u64> {
    let mut removed = 0;
    let here = if sub.as_os_str().is_empty() {
        Path::new(".")
    } else {
        sub
    };
    for e in dir.read_dir(here)? {
        let e = e?;
        let p = sub.join(e.file_name());
        let m = dir.symlink_metadata(&p)?;
        let old = parents_old && m.ctime() < cutoff;
        if m.is_dir() && !m.file_type().is_symlink() {
            removed += purge_dir(dir, &p, cutoff, old)?;
            // Only once empty: what is left under it is younger.
            if old && dir.remove_dir(&p).is_ok() {
                removed += 1;
            }
        } else if old {
            dir.remove_file_or_symlink(&p)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// `dir/name.ext` becomes `dir/name.SUFFIX.ext` (`dir/name.SUFFIX` without an extension).
/// Where under a stash area `p` goes: the area itself, mirroring the
/// replica, unless an earlier stash holds a file where `p` needs a folder
/// (file `e` deleted, later `e/f` deleted too); then a fresh folder named
/// by the time, `STAMP[-N]/`, with `p`'s parents made inside it.
fn stash_base(work: &cap_std::fs::Dir, p: &RelPath, stamp: &str) -> io::Result<PathBuf> {
    let parent = p.parent();
    if parent.is_root() {
        return Ok(PathBuf::new());
    }
    match work.create_dir_all(parent.as_path()) {
        Ok(()) => return Ok(PathBuf::new()),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotADirectory | io::ErrorKind::AlreadyExists
            ) => {}
        Err(e) => return Err(e),
    }
    let mut n = 1;
    loop {
        let base = if n == 1 {
            PathBuf::from(stamp)
        } else {
            PathBuf::from(format!("{stamp}-{n}"))
        };
        if work.symlink_metadata(&base).is_err() {
            work.create_dir_all(base.join(parent.as_path()))?;
            return Ok(base);
        }
        n += 1;
    }
}

fn suffixed(p: &Path, suffix: &str) -> PathBuf {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let new = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem}.{suffix}.{ext}"),
        _ => format!("{name}.{suffix}"),
    };
    p.with_file_name(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file swapped for a FIFO after the listing: opening it neither
    /// blocks (no writer will ever come) nor reads it.
    #[test]
    fn a_fifo_is_refused_at_once_never_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("was-a-file");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let root = Root::open(dir.path(), false).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let got = root.open_file(&RelPath::parse(b"was-a-file").unwrap());
            let _ = tx.send(got.map(|_| ()).map_err(|e| e.kind()));
        });
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("opening a FIFO hung");
        assert_eq!(got, Err(io::ErrorKind::InvalidInput));
    }

    /// Partial files older than the purge age go with the stashes.
    #[test]
    fn purge_takes_old_partial_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path(), false).unwrap();
        let partial = root.work_dir("partial").unwrap();
        partial.write("old", b"left by a full disk").unwrap();
        partial.write("new", b"a transfer to resume").unwrap();
        let old = dir.path().join(WORK_DIR).join("partial/old");
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(
                std::time::SystemTime::now() - std::time::Duration::from_secs(40 * 86_400),
            )
            .unwrap();
        assert_eq!(root.purge(30).unwrap(), 1);
        assert!(!old.exists());
        assert!(dir.path().join(WORK_DIR).join("partial/new").exists());
    }

    /// A file `e` stashed, then `e/f/a` (after `e` became a folder): the
    /// second goes into a fresh time-named folder, not into the file.
    #[test]
    fn a_stash_never_needs_a_folder_where_an_earlier_one_left_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path(), false).unwrap();
        let p = |s: &str| RelPath::parse(s.as_bytes()).unwrap();
        std::fs::write(dir.path().join("e"), b"a file").unwrap();
        root.stash(&p("e"), StashArea::Deleted).unwrap();
        std::fs::create_dir_all(dir.path().join("e/f")).unwrap();
        std::fs::write(dir.path().join("e/f/a"), b"inside").unwrap();
        root.stash(&p("e/f/a"), StashArea::Deleted).unwrap();
        root.stash(&p("e/f"), StashArea::Deleted).unwrap();
        let deleted = dir.path().join(WORK_DIR).join("deleted");
        assert_eq!(std::fs::read(deleted.join("e")).unwrap(), b"a file");
        let found: Vec<_> = std::fs::read_dir(&deleted)
            .unwrap()
            .map(|e| e.unwrap().path().join("e/f/a"))
            .filter(|x| x.exists())
            .collect();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(std::fs::read(&found[0]).unwrap(), b"inside");
        assert!(!dir.path().join("e/f").exists());
    }
}
