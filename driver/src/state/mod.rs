//! The sync state database: the last synced version of every path, and
//! facts about the pair (replica ids, listing digests).
//!
//! One SQLite file per pair (rusqlite with bundled SQLite; this is the only
//! module that uses it). WAL mode with `synchronous=NORMAL`: each applied
//! change commits its own transaction, so a run killed at any point leaves
//! a consistent database that is at most one change behind the replicas,
//! and the next run's planning sees that change as "the same on both
//! sides" and just records it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use deltasync_wire::EntryKind;
use rusqlite::{Connection, OptionalExtension, params};

use crate::path::RelPath;

/// Per-side metadata of a synced entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SideMeta {
    /// Modification time on that side, nanoseconds.
    pub mtime_ns: i64,
    /// Permission bits on that side.
    pub mode: u32,
    /// Inode on that side; 0 when unknown (a fresh copy), then the fast
    /// check compares size and mtime only.
    pub ino: u64,
}

/// The last synced version of one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Synced {
    /// File, directory or symlink.
    pub kind: EntryKind,
    /// Size (files).
    pub size: u64,
    /// BLAKE3 of the contents (files).
    pub blake3: Option<[u8; 32]>,
    /// Link target (symlinks).
    pub target: Vec<u8>,
    /// Side A's metadata.
    pub a: SideMeta,
    /// Side B's metadata.
    pub b: SideMeta,
}

/// A state database failure.
#[derive(Debug, thiserror::Error)]
#[error("state database {}: {source}", path.display())]
pub struct StateError {
    /// The database file.
    pub path: PathBuf,
    /// What SQLite said.
    pub source: rusqlite::Error,
}

/// An open state database.
#[derive(Debug)]
pub struct StateDb {
    conn: Connection,
    path: PathBuf,
}

fn kind_code(k: EntryKind) -> i64 {
    match k {
        EntryKind::File => 0,
        EntryKind::Dir => 1,
        EntryKind::Symlink => 2,
    }
}

fn kind_of(c: i64) -> EntryKind {
    match c {
        1 => EntryKind::Dir,
        2 => EntryKind::Symlink,
        _ => EntryKind::File,
    }
}

impl StateDb {
    /// Opens (creating if need be) the database at `path`.
    pub fn open(path: &Path) -> Result<StateDb, StateError> {
        let err = |source| StateError {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS entries (
                 path BLOB PRIMARY KEY, kind INTEGER NOT NULL, size INTEGER NOT NULL,
                 blake3 BLOB, target BLOB NOT NULL,
                 a_mtime INTEGER NOT NULL, a_mode INTEGER NOT NULL, a_ino INTEGER NOT NULL,
                 b_mtime INTEGER NOT NULL, b_mode INTEGER NOT NULL, b_ino INTEGER NOT NULL);",
        )
        .map_err(err)?;
        Ok(StateDb {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn err(&self, source: rusqlite::Error) -> StateError {
        StateError {
            path: self.path.clone(),
            source,
        }
    }

    /// Every synced entry.
    pub fn load(&self) -> Result<HashMap<RelPath, Synced>, StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT path, kind, size, blake3, target, a_mtime, a_mode, a_ino, b_mtime, b_mode, b_ino FROM entries")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                let path: Vec<u8> = r.get(0)?;
                let blake3: Option<Vec<u8>> = r.get(3)?;
                Ok((
                    path,
                    Synced {
                        kind: kind_of(r.get(1)?),
                        size: r.get::<_, i64>(2)? as u64,
                        blake3: blake3.and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok()),
                        target: r.get(4)?,
                        a: SideMeta {
                            mtime_ns: r.get(5)?,
                            mode: r.get::<_, i64>(6)? as u32,
                            ino: r.get::<_, i64>(7)? as u64,
                        },
                        b: SideMeta {
                            mtime_ns: r.get(8)?,
                            mode: r.get::<_, i64>(9)? as u32,
                            ino: r.get::<_, i64>(10)? as u64,
                        },
                    },
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = HashMap::new();
        for row in rows {
            let (path, s) = row.map_err(|e| self.err(e))?;
            // A row we cannot parse as a path is skipped, never trusted.
            if let Ok(p) = RelPath::parse(&path) {
                out.insert(p, s);
            }
        }
        Ok(out)
    }

    /// True if no entry is recorded (cheaper than [`StateDb::load`]).
    pub fn is_empty(&self) -> Result<bool, StateError> {
        self.conn
            .query_row("SELECT EXISTS (SELECT 1 FROM entries)", [], |r| {
                r.get::<_, bool>(0)
            })
            .map(|any| !any)
            .map_err(|e| self.err(e))
    }

    /// Records `s` as the synced version of `p`, in its own transaction.
    pub fn put(&self, p: &RelPath, s: &Synced) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO entries VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    p.as_bytes(),
                    kind_code(s.kind),
                    s.size as i64,
                    s.blake3.map(|b| b.to_vec()),
                    s.target,
                    s.a.mtime_ns,
                    i64::from(s.a.mode),
                    s.a.ino as i64,
                    s.b.mtime_ns,
                    i64::from(s.b.mode),
                    s.b.ino as i64
                ],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Forgets `p` and everything under it.
    pub fn remove(&self, p: &RelPath) -> Result<(), StateError> {
        let mut under = p.as_bytes().to_vec();
        under.push(b'/');
        let mut end = under.clone();
        *end.last_mut().unwrap_or(&mut 0) = b'/' + 1;
        self.conn
            .execute(
                "DELETE FROM entries WHERE path = ?1 OR (path >= ?2 AND path < ?3)",
                params![p.as_bytes(), under, end],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Runs `f` in one transaction (for bulk records that change no file).
    pub fn batch<T>(
        &mut self,
        f: impl FnOnce(&StateDb) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        self.conn.execute_batch("BEGIN").map_err(|e| self.err(e))?;
        match f(self) {
            Ok(v) => {
                self.conn.execute_batch("COMMIT").map_err(|e| self.err(e))?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// A fact about the pair.
    pub fn meta(&self, key: &str) -> Result<Option<String>, StateError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Records a fact about the pair.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta VALUES (?1, ?2)",
                params![key, value],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Forgets a fact.
    pub fn clear_meta(&self, key: &str) -> Result<(), StateError> {
        self.conn
            .execute("DELETE FROM meta WHERE key = ?1", params![key])
            .map(|_| ())
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_a_reopen_and_subtrees_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let s = Synced {
            kind: EntryKind::File,
            size: 3,
            blake3: Some([7; 32]),
            target: Vec::new(),
            a: SideMeta {
                mtime_ns: 1,
                mode: 0o644,
                ino: 9,
            },
            b: SideMeta {
                mtime_ns: 2,
                mode: 0o600,
                ino: 0,
            },
        };
        {
            let db = StateDb::open(&path).unwrap();
            for p in ["d", "d/x", "d/y/z", "dd", "e"] {
                db.put(&RelPath::parse(p.as_bytes()).unwrap(), &s).unwrap();
            }
            db.set_meta("replica_a", "abc").unwrap();
        }
        let db = StateDb::open(&path).unwrap();
        assert_eq!(db.load().unwrap().len(), 5);
        db.remove(&RelPath::parse(b"d").unwrap()).unwrap();
        let left: Vec<String> = {
            let mut v: Vec<_> = db.load().unwrap().keys().map(|k| k.display()).collect();
            v.sort();
            v
        };
        assert_eq!(left, ["dd", "e"], "d and its subtree go, dd stays");
        assert_eq!(db.load().unwrap()[&RelPath::parse(b"e").unwrap()], s);
        assert_eq!(db.meta("replica_a").unwrap().as_deref(), Some("abc"));
        assert_eq!(db.meta("missing").unwrap(), None);
    }
}
