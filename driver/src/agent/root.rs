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
use deltasync_wire::{Entry, EntryKind};

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

    /// Creates a symlink, replacing an existing symlink or file in its place.
    pub fn symlink(&self, p: &RelPath, target: &[u8]) -> io::Result<()> {
        use std::os::unix::ffi::OsStrExt;
        self.check_writable()?;
        if let Some(m) = self.lstat(p)? {
            if m.is_dir() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "a directory is in the way",
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
        }))
    }
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
