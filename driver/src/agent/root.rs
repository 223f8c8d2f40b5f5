//! The agent's view of its replica: a cap-std directory handle.
//!
//! Every path goes through `RelPath` (shape) and then through cap-std, which
//! resolves it with `openat`-style calls beneath the root and refuses any
//! resolution that would leave it, symlinks included. The final component
//! is never followed when it is a symlink: we open, stat, remove and retime
//! the link itself. Nothing here can name a file outside the root.

use std::fs::File;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt, SystemTimeSpec};
use cap_std::fs::{Dir, Metadata, MetadataExt, OpenOptions};
use deltasync_wire::{Entry, EntryKind, Expect};

use crate::path::{RelPath, WORK_DIR};

/// A replica root opened for an agent.
#[derive(Debug)]
pub struct Root {
    dir: Dir,
    shown: PathBuf,
    read_only: bool,
}

impl Root {
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

    /// `lstat`: the entry itself, symlinks not followed; `None` if absent.
    pub fn lstat(&self, p: &RelPath) -> io::Result<Option<Metadata>> {
        match self.dir.symlink_metadata(p.as_path()) {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Opens a regular file for reading, refusing a symlink in last place.
    pub fn open_file(&self, p: &RelPath) -> io::Result<File> {
        let mut o = OpenOptions::new();
        o.read(true).follow(FollowSymlinks::No);
        let f = self.dir.open_with(p.as_path(), &o)?.into_std();
        if !f.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        Ok(f)
    }

    /// Reads a directory's names, sorted.
    pub fn read_dir(&self, p: &RelPath) -> io::Result<Vec<Vec<u8>>> {
        use std::os::unix::ffi::OsStrExt;
        let mut names: Vec<Vec<u8>> = self
            .dir
            .read_dir(p.as_path())?
            .map(|e| e.map(|e| e.file_name().as_bytes().to_vec()))
            .collect::<io::Result<_>>()?;
        names.sort();
        Ok(names)
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

    /// Creates a directory (fine if it already is one).
    pub fn mkdir(&self, p: &RelPath, mode: u32) -> io::Result<()> {
        self.check_writable()?;
        match self.dir.create_dir(p.as_path()) {
            Ok(()) => {}
            Err(e)
                if e.kind() == io::ErrorKind::AlreadyExists
                    && self.lstat(p)?.is_some_and(|m| m.is_dir()) => {}
            Err(e) => return Err(e),
        }
        self.set_mode(p, mode)
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
        // such links, so the parent is opened through cap-std (confined,
        // no-follow) and the link made with symlinkat beneath it.
        let parent = p.parent();
        let parent_dir = if parent.is_root() {
            self.dir.try_clone()?
        } else {
            self.dir.open_dir_nofollow(parent.as_path())?
        };
        let name = std::ffi::OsStr::from_bytes(p.file_name());
        rustix::fs::symlinkat(std::ffi::OsStr::from_bytes(target), &parent_dir, name)?;
        Ok(())
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

    /// Sets the modification time of the entry itself.
    pub fn set_mtime(&self, p: &RelPath, mtime_ns: i64) -> io::Result<()> {
        self.check_writable()?;
        let t = cap_std::time::SystemTime::from_std(system_time(mtime_ns));
        self.dir
            .set_symlink_times(p.as_path(), None, Some(SystemTimeSpec::Absolute(t)))
    }

    /// The work directory `.deltasync/<sub>`, created on demand.
    pub fn work_dir(&self, sub: &str) -> io::Result<Dir> {
        self.check_writable()?;
        let rel = Path::new(WORK_DIR).join(sub);
        self.dir.create_dir_all(&rel)?;
        self.dir.open_dir_nofollow(&rel)
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
        from.rename(name, &self.dir, p.as_path())
    }

    /// Describes the entry at `p`, or `None` if it is absent.
    pub fn entry(&self, p: &RelPath) -> io::Result<Option<Entry>> {
        let Some(m) = self.lstat(p)? else {
            return Ok(None);
        };
        let ft = m.file_type();
        let kind = if ft.is_symlink() {
            EntryKind::Symlink
        } else if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_file() {
            EntryKind::File
        } else {
            return Ok(None); // sockets, fifos, devices: not synced
        };
        Ok(Some(Entry {
            path: p.as_bytes().to_vec(),
            kind,
            size: if kind == EntryKind::File { m.len() } else { 0 },
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            mode: m.mode() & 0o7777,
            target: if kind == EntryKind::Symlink {
                self.read_link(p)?
            } else {
                Vec::new()
            },
            blake3: None,
            ino: m.ino(),
        }))
    }

    /// True if what stands at `p` is what `expect` says.
    pub fn matches(&self, p: &RelPath, expect: &Expect) -> io::Result<bool> {
        let m = self.lstat(p)?;
        Ok(match (expect, m) {
            (Expect::Any, _) => true,
            (Expect::Absent, m) => m.is_none(),
            (Expect::File { size, mtime_ns }, Some(m)) => {
                m.is_file()
                    && m.len() == *size
                    && m.mtime() * 1_000_000_000 + m.mtime_nsec() == *mtime_ns
            }
            (Expect::Dir, Some(m)) => m.is_dir(),
            (Expect::Symlink, Some(m)) => m.file_type().is_symlink(),
            (Expect::EmptyDir, Some(m)) => {
                m.is_dir() && self.dir.read_dir(p.as_path())?.next().is_none()
            }
            (_, None) => false,
        })
    }

    /// Moves `p` into `.deltasync/<area>/` under its own relative path. A
    /// conflict copy always gets a timestamp suffix; a deleted entry gets
    /// one only when its name is already taken there.
    pub fn stash(&self, p: &RelPath, area: &str, always_stamp: bool) -> io::Result<()> {
        self.stash_with(p, area, always_stamp, false)
    }

    /// Like [`Root::stash`], but a regular file is hard-linked, not moved:
    /// the version stays in place (as the basis of the delta that will
    /// replace it) and in the work directory, at no cost in space.
    pub fn stash_link(&self, p: &RelPath, area: &str) -> io::Result<()> {
        let link = self.lstat(p)?.is_some_and(|m| m.is_file());
        self.stash_with(p, area, true, link)
    }

    fn stash_with(
        &self,
        p: &RelPath,
        area: &str,
        always_stamp: bool,
        link: bool,
    ) -> io::Result<()> {
        self.check_writable()?;
        let work = self.work_dir(area)?;
        let parent = p.parent();
        if !parent.is_root() {
            work.create_dir_all(parent.as_path())?;
        }
        let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S").to_string();
        let mut target = p.as_path().to_path_buf();
        if always_stamp || work.symlink_metadata(&target).is_ok() {
            target = suffixed(p.as_path(), &stamp);
        }
        let mut n = 1;
        while work.symlink_metadata(&target).is_ok() {
            n += 1;
            target = suffixed(p.as_path(), &format!("{stamp}-{n}"));
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
        let rel = Path::new(WORK_DIR).join("replica-id");
        match self.dir.read_to_string(&rel) {
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
        self.dir.write(&rel, format!("{id}\n"))?;
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

    /// Takes the lock, writing `owner` into it; `Err(holder)` if it is held
    /// (and `force` is not set).
    pub fn lock(&self, owner: &str, force: bool) -> io::Result<Result<(), String>> {
        self.check_writable()?;
        self.dir.create_dir_all(WORK_DIR)?;
        let rel = Path::new(WORK_DIR).join("lock");
        let mut o = OpenOptions::new();
        o.write(true).create_new(true);
        match self.dir.open_with(&rel, &o) {
            Ok(mut f) => {
                std::io::Write::write_all(&mut f, owner.as_bytes())?;
                Ok(Ok(()))
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let holder = self.dir.read_to_string(&rel).unwrap_or_default();
                if force {
                    self.dir.write(&rel, owner)?;
                    Ok(Ok(()))
                } else {
                    Ok(Err(holder.trim().to_string()))
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Releases the lock.
    pub fn unlock(&self) -> io::Result<()> {
        match self.dir.remove_file(Path::new(WORK_DIR).join("lock")) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Removes entries stashed in `deleted/` and `conflicts/` more than
    /// `days` days ago (by their ctime, which the stashing rename set).
    pub fn purge(&self, days: u32) -> io::Result<u64> {
        self.check_writable()?;
        let cutoff =
            std::time::SystemTime::now() - std::time::Duration::from_secs(u64::from(days) * 86_400);
        let cutoff_secs = cutoff
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let mut removed = 0;
        for area in ["deleted", "conflicts"] {
            let rel = Path::new(WORK_DIR).join(area);
            let Ok(dir) = self.dir.open_dir_nofollow(&rel) else {
                continue;
            };
            removed += purge_dir(&dir, Path::new(""), cutoff_secs, true)?;
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

/// Nanoseconds since the epoch as a `SystemTime` (negative: before it).
pub fn system_time(ns: i64) -> std::time::SystemTime {
    let d = std::time::Duration::from_nanos(ns.unsigned_abs());
    if ns >= 0 {
        std::time::UNIX_EPOCH + d
    } else {
        std::time::UNIX_EPOCH - d
    }
}
