//! Relative paths from a peer, checked before any file system call sees them.
//!
//! A path on the wire is raw bytes. It is accepted only if every component
//! is a plain name: no empty components, no `.` or `..`, no NUL, not
//! absolute, at most 4096 bytes, and not inside the `.deltasync` work
//! directory. Symlinks along the way are the sandbox's business (cap-std
//! refuses to resolve out of the root); this module only checks shape.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The per-replica work directory, never synced or listed.
pub const WORK_DIR: &str = ".deltasync";
/// The replica's id, made on its first sync.
pub const REPLICA_ID_FILE: &str = ".deltasync/replica-id";
/// The replica's lock, held by a running sync's agent.
pub const LOCK_FILE: &str = ".deltasync/lock";

/// A checked relative path; empty means the root itself.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RelPath(Vec<u8>);

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused path {path:?}: {reason}")]
pub struct PathError {
    /// The path, lossily decoded.
    pub path: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl RelPath {
    /// The root.
    pub fn root() -> RelPath {
        RelPath(Vec::new())
    }

    /// Checks `bytes` and accepts them as a path.
    pub fn parse(bytes: &[u8]) -> Result<RelPath, PathError> {
        let err = |reason| PathError {
            path: String::from_utf8_lossy(bytes).into_owned(),
            reason,
        };
        if bytes.is_empty() {
            return Ok(RelPath::root());
        }
        if bytes.len() > 4096 {
            return Err(err("longer than 4096 bytes"));
        }
        if bytes.contains(&0) {
            return Err(err("contains a NUL byte"));
        }
        if bytes[0] == b'/' {
            return Err(err("absolute"));
        }
        for (i, c) in bytes.split(|&b| b == b'/').enumerate() {
            match c {
                b"" => return Err(err("empty component (// or a trailing /)")),
                b"." => return Err(err("'.' component")),
                b".." => return Err(err("'..' component")),
                c if i == 0 && c == WORK_DIR.as_bytes() => {
                    return Err(err("inside the .deltasync work directory"));
                }
                _ => {}
            }
        }
        Ok(RelPath(bytes.to_vec()))
    }

    /// The raw bytes, as sent on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// As a `Path` relative to the root (`.` for the root).
    pub fn as_path(&self) -> &Path {
        if self.0.is_empty() {
            Path::new(".")
        } else {
            Path::new(OsStr::from_bytes(&self.0))
        }
    }

    /// True for the root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// `self/name`, for a name read from a directory (never `.` or `..`).
    pub fn join(&self, name: &[u8]) -> RelPath {
        let mut v = self.0.clone();
        if !v.is_empty() {
            v.push(b'/');
        }
        v.extend_from_slice(name);
        RelPath(v)
    }

    /// The last component.
    pub fn file_name(&self) -> &[u8] {
        self.0.rsplit(|&b| b == b'/').next().unwrap_or(&[])
    }

    /// The parent (the root for a top-level name).
    pub fn parent(&self) -> RelPath {
        match self.0.iter().rposition(|&b| b == b'/') {
            Some(i) => RelPath(self.0[..i].to_vec()),
            None => RelPath::root(),
        }
    }

    /// True if `self` is `other` or lies under it.
    pub fn starts_with(&self, other: &RelPath) -> bool {
        other.0.is_empty()
            || self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.get(other.0.len()) == Some(&b'/'))
    }

    /// `self` with the leading `from` replaced by `to`.
    pub fn rebase(&self, from: &RelPath, to: &RelPath) -> RelPath {
        let rest = if from.0.is_empty() {
            &self.0[..]
        } else {
            self.0[from.0.len()..].strip_prefix(b"/").unwrap_or(&[])
        };
        if to.0.is_empty() {
            RelPath(rest.to_vec())
        } else if rest.is_empty() {
            to.clone()
        } else {
            to.join(rest)
        }
    }

    /// For messages.
    pub fn display(&self) -> String {
        if self.0.is_empty() {
            ".".into()
        } else {
            String::from_utf8_lossy(&self.0).into_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_could_escape() {
        for bad in [
            &b"/etc/passwd"[..],
            b"../x",
            b"a/../../x",
            b"a//b",
            b"a/",
            b"./a",
            b"a\0b",
            b".deltasync/state",
            b"a/.",
        ] {
            assert!(
                RelPath::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        for good in [
            &b"a"[..],
            b"a/b/c",
            b"..a",
            b"a..",
            b".hidden",
            b"x/.deltasync",
            b"\xff\xfe",
        ] {
            assert!(
                RelPath::parse(good).is_ok(),
                "{:?}",
                String::from_utf8_lossy(good)
            );
        }
        assert!(RelPath::parse(&vec![b'a'; 5000]).is_err());
    }

    #[test]
    fn rebase_and_family() {
        let p = RelPath::parse(b"src/a/b").unwrap();
        let src = RelPath::parse(b"src").unwrap();
        assert_eq!(
            p.rebase(&src, &RelPath::parse(b"dst").unwrap()).as_bytes(),
            b"dst/a/b"
        );
        assert_eq!(p.rebase(&src, &RelPath::root()).as_bytes(), b"a/b");
        assert_eq!(
            src.rebase(&src, &RelPath::parse(b"d").unwrap()).as_bytes(),
            b"d"
        );
        assert!(p.starts_with(&src) && !RelPath::parse(b"srcx").unwrap().starts_with(&src));
        assert_eq!(p.parent().as_bytes(), b"src/a");
        assert_eq!(p.file_name(), b"b");
    }
}
