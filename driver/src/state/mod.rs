//! The sync state database: the last synced version of every path, and
//! facts about the pair (replica ids, listing digests).
//!
//! One SQLite file per pair (rusqlite with bundled SQLite; this is the only
//! module that uses it). WAL mode with `synchronous=NORMAL`: each applied
//! change commits its own transaction, so a run killed at any point leaves
//! a consistent database that is at most one change behind the replicas,
//! and the next run's planning sees that change as "the same on both
//! sides" and just records it.
//!
//! A change that reached a replica but was not recorded (a kill between
//! the two) must not look like the user's work on the next run: the file
//! that arrived on B would come back after A deletes it, or a later edit
//! on A would be taken for a conflict. So before applying, a run writes
//! each change's records to the **journal** as intents, with the sides the
//! change touches. A committed change clears its intents in the same
//! transaction. The next run [`settles`](StateDb::settle) what is left:
//! an intent whose touched sides now hold exactly what it would record is
//! adopted (the change happened); any other is dropped (it did not, or the
//! user changed the entry since, and the old record stands).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use deltasync_wire::{Entry, EntryKind, Mtime};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::path::RelPath;

/// Per-side metadata of a synced entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SideMeta {
    /// Modification time on that side.
    pub mtime: Mtime,
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

/// The columns of a `Synced` record, after the path.
const COLUMNS: &str = "kind, size, blake3, target, a_mtime, a_nsec, a_mode, a_ino, \
                       b_mtime, b_nsec, b_mode, b_ino";
/// Their placeholders, after `?1` for the path.
const PLACES: &str = "?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13";

/// Creates the tables, or brings an older database up to date: schema 0
/// kept each mtime as one count of nanoseconds, which cannot hold a time
/// before 1677 or after 2262; schema 1 keeps seconds and nanoseconds.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let had_entries = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'entries')",
        [],
        |r| r.get::<_, bool>(0),
    )?;
    if version == 0 && had_entries {
        conn.execute_batch(
            "BEGIN;
             ALTER TABLE entries ADD COLUMN a_nsec INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE entries ADD COLUMN b_nsec INTEGER NOT NULL DEFAULT 0;
             UPDATE entries SET
                 a_nsec = ((a_mtime % 1000000000) + 1000000000) % 1000000000,
                 b_nsec = ((b_mtime % 1000000000) + 1000000000) % 1000000000;
             UPDATE entries SET
                 a_mtime = (a_mtime - a_nsec) / 1000000000,
                 b_mtime = (b_mtime - b_nsec) / 1000000000;
             COMMIT;",
        )?;
    }
    let table = |name: &str, extra: &str| {
        format!(
            "CREATE TABLE IF NOT EXISTS {name} (
                 path BLOB PRIMARY KEY, kind INTEGER NOT NULL, size INTEGER NOT NULL,
                 blake3 BLOB, target BLOB NOT NULL,
                 a_mtime INTEGER NOT NULL, a_nsec INTEGER NOT NULL,
                 a_mode INTEGER NOT NULL, a_ino INTEGER NOT NULL,
                 b_mtime INTEGER NOT NULL, b_nsec INTEGER NOT NULL,
                 b_mode INTEGER NOT NULL, b_ino INTEGER NOT NULL{extra});"
        )
    };
    conn.execute_batch(&table("entries", ""))?;
    conn.execute_batch(&table(
        "journal",
        ", op INTEGER NOT NULL, sides INTEGER NOT NULL",
    ))?;
    conn.execute_batch("PRAGMA user_version = 1;")
}

/// The SQL values of `p` and `s`, in `COLUMNS` order after the path.
/// One row's values for `path, COLUMNS`, borrowed or computed once, so
/// writing a row allocates nothing (a first sync writes two per file).
struct RowValues<'a> {
    path: &'a [u8],
    kind: i64,
    size: i64,
    blake3: Option<&'a [u8]>,
    target: &'a [u8],
    a: [i64; 4],
    b: [i64; 4],
}

impl<'a> RowValues<'a> {
    fn new(path: &'a [u8], s: &'a Synced) -> RowValues<'a> {
        let side = |m: &SideMeta| {
            [
                m.mtime.secs,
                i64::from(m.mtime.nanos),
                i64::from(m.mode),
                m.ino as i64,
            ]
        };
        RowValues {
            path,
            kind: kind_code(s.kind),
            size: s.size as i64,
            blake3: s.blake3.as_ref().map(|b| &b[..]),
            target: &s.target,
            a: side(&s.a),
            b: side(&s.b),
        }
    }

    /// `?1` to `?13`.
    fn values(&self) -> [&dyn rusqlite::ToSql; 13] {
        let [a0, a1, a2, a3] = &self.a;
        let [b0, b1, b2, b3] = &self.b;
        [
            &self.path,
            &self.kind,
            &self.size,
            &self.blake3,
            &self.target,
            a0,
            a1,
            a2,
            a3,
            b0,
            b1,
            b2,
            b3,
        ]
    }
}

/// The statements that write a row, made once (each is parsed once per
/// connection, then cached).
static PUT_ENTRY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("INSERT OR REPLACE INTO entries (path, {COLUMNS}) VALUES (?1, {PLACES})")
});
static PUT_INTENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "INSERT OR REPLACE INTO journal (path, {COLUMNS}, op, sides) \
         VALUES (?1, {PLACES}, ?14, ?15)"
    )
});

/// A `Synced` read from `COLUMNS`, starting at column `at`.
fn synced_at(r: &Row<'_>, at: usize) -> rusqlite::Result<Synced> {
    let blake3: Option<Vec<u8>> = r.get(at + 2)?;
    let side = |k: usize| -> rusqlite::Result<SideMeta> {
        Ok(SideMeta {
            mtime: Mtime::new(r.get(at + k)?, r.get(at + k + 1)?),
            mode: r.get::<_, i64>(at + k + 2)? as u32,
            ino: r.get::<_, i64>(at + k + 3)? as u64,
        })
    };
    Ok(Synced {
        kind: kind_of(r.get(at)?),
        size: r.get::<_, i64>(at + 1)? as u64,
        blake3: blake3.and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok()),
        target: r.get(at + 3)?,
        a: side(4)?,
        b: side(8)?,
    })
}

/// What a change will record about one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IntentRecord {
    /// The path will be synced as this.
    Put(RelPath, Synced),
    /// The path (and what is under it) will be gone on both sides.
    Remove(RelPath),
}

/// A record a change is about to make, and the sides its steps touch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Intent {
    /// What will be recorded.
    pub record: IntentRecord,
    /// `[a, b]`: the sides the change writes this path on.
    pub sides: [bool; 2],
}

/// How far the replicas bear an intent out.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Settled {
    /// Every touched side holds what it records: the change was done.
    Done(IntentRecord),
    /// The sides it read from still hold it, but a side it wrote to holds
    /// something else now. Either the change was done and that side was
    /// edited since (the usual case: the user went on working after the
    /// kill), or it never got there and the user made that file anew.
    /// Taken as done, so the edit is a plain change and not a conflict;
    /// whatever it will overwrite is kept, in case it never got there.
    Unsure(IntentRecord),
    /// Nothing bears it out.
    Dropped,
}

impl Intent {
    /// How far `a` and `b` bear the intent out (see [`Settled`]).
    fn settled(&self, a: &HashMap<RelPath, Entry>, b: &HashMap<RelPath, Entry>) -> Settled {
        let Some(done) = self.done(a, b) else {
            let IntentRecord::Put(p, s) = &self.record else {
                return Settled::Dropped;
            };
            // Each untouched side (a source) still holds its part, and each
            // touched side has something there (nothing there is most
            // likely a change the kill came before: it is made again).
            let sources_hold = [a, b].iter().enumerate().all(|(i, l)| {
                let meta = if i == 0 { &s.a } else { &s.b };
                match l.get(p) {
                    Some(e) => self.sides[i] || holds(e, s, meta),
                    None => false,
                }
            });
            let any_source = self.sides.iter().any(|t| !t);
            return if sources_hold && any_source {
                Settled::Unsure(self.record.clone())
            } else {
                Settled::Dropped
            };
        };
        Settled::Done(done)
    }

    /// The record to adopt if every touched side holds what it says, with
    /// the inodes found there; `None` if any does not.
    fn done(
        &self,
        a: &HashMap<RelPath, Entry>,
        b: &HashMap<RelPath, Entry>,
    ) -> Option<IntentRecord> {
        match &self.record {
            IntentRecord::Remove(p) => {
                let gone = [a, b]
                    .iter()
                    .zip(self.sides)
                    .all(|(l, touched)| !touched || !l.contains_key(p));
                gone.then(|| self.record.clone())
            }
            IntentRecord::Put(p, recorded) => {
                let mut s = recorded.clone();
                for (i, listing) in [a, b].into_iter().enumerate() {
                    if !self.sides[i] {
                        continue;
                    }
                    let e = listing.get(p)?;
                    let meta = if i == 0 { &mut s.a } else { &mut s.b };
                    if !holds(e, recorded, meta) {
                        return None;
                    }
                    meta.ino = e.ino;
                }
                Some(IntentRecord::Put(p.clone(), s))
            }
        }
    }
}

/// True if the listed `e` is what `s` records, with `meta` its side's part.
fn holds(e: &Entry, s: &Synced, meta: &SideMeta) -> bool {
    e.kind == s.kind
        && e.mode == meta.mode
        && match e.kind {
            EntryKind::File => e.size == s.size && e.mtime == meta.mtime,
            EntryKind::Symlink => e.target == s.target,
            EntryKind::Dir => true,
        }
}

impl Synced {
    /// A placeholder for a removal's journal row.
    fn gone() -> Synced {
        Synced {
            kind: EntryKind::File,
            size: 0,
            blake3: None,
            target: Vec::new(),
            a: SideMeta::default(),
            b: SideMeta::default(),
        }
    }
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
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
        )
        .map_err(err)?;
        migrate(&conn).map_err(err)?;
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
            .prepare(&format!("SELECT path, {COLUMNS} FROM entries"))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, synced_at(r, 1)?)))
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

    /// Records `s` as the synced version of `p`.
    pub fn put(&self, p: &RelPath, s: &Synced) -> Result<(), StateError> {
        // Cached: a first sync records one row per file.
        let row = RowValues::new(p.as_bytes(), s);
        self.conn
            .prepare_cached(&PUT_ENTRY)
            .and_then(|mut st| st.execute(rusqlite::params_from_iter(row.values())))
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

    /// Records what the changes about to be applied will record, each
    /// with the sides it touches, in one transaction.
    pub fn write_intents(&mut self, intents: &[Intent]) -> Result<(), StateError> {
        self.batch(|db| {
            for i in intents {
                let (p, s, op) = match &i.record {
                    IntentRecord::Put(p, s) => (p, s.clone(), 0),
                    IntentRecord::Remove(p) => (p, Synced::gone(), 1),
                };
                let row = RowValues::new(p.as_bytes(), &s);
                let sides = i64::from(i.sides[0]) | i64::from(i.sides[1]) << 1;
                let extra: [&dyn rusqlite::ToSql; 2] = [&op, &sides];
                db.conn
                    .prepare_cached(&PUT_INTENT)
                    .and_then(|mut st| {
                        st.execute(rusqlite::params_from_iter(
                            row.values().into_iter().chain(extra),
                        ))
                    })
                    .map_err(|e| db.err(e))?;
            }
            Ok(())
        })
    }

    /// Forgets the intent about `p` (in the transaction that commits it).
    pub fn clear_intent(&self, p: &RelPath) -> Result<(), StateError> {
        self.conn
            .prepare_cached("DELETE FROM journal WHERE path = ?1")
            .and_then(|mut st| st.execute(params![p.as_bytes()]))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Intents left by a run that did not finish.
    pub fn intents(&self) -> Result<Vec<Intent>, StateError> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT path, {COLUMNS}, op, sides FROM journal"))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    synced_at(r, 1)?,
                    r.get::<_, i64>(13)?,
                    r.get::<_, i64>(14)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (path, s, op, sides) = row.map_err(|e| self.err(e))?;
            let Ok(p) = RelPath::parse(&path) else {
                continue;
            };
            out.push(Intent {
                record: if op == 1 {
                    IntentRecord::Remove(p)
                } else {
                    IntentRecord::Put(p, s)
                },
                sides: [sides & 1 != 0, sides & 2 != 0],
            });
        }
        Ok(out)
    }

    /// Settles the journal against the replicas as listed now: each intent
    /// whose touched sides hold what it records is adopted; one whose
    /// sources still hold it but whose destination was edited since is
    /// adopted too, and its path returned as unsure (see `Settled`); the
    /// rest are dropped. Returns how many were adopted, and the unsure.
    pub fn settle(
        &mut self,
        a: &HashMap<RelPath, Entry>,
        b: &HashMap<RelPath, Entry>,
    ) -> Result<(usize, BTreeSet<RelPath>), StateError> {
        let intents = self.intents()?;
        let mut unsure = BTreeSet::new();
        if intents.is_empty() {
            return Ok((0, unsure));
        }
        self.batch(|db| {
            let mut adopted = 0;
            for i in &intents {
                let record = match i.settled(a, b) {
                    Settled::Done(r) => r,
                    Settled::Unsure(r) => {
                        if let IntentRecord::Put(p, _) = &r {
                            unsure.insert(p.clone());
                        }
                        r
                    }
                    Settled::Dropped => continue,
                };
                match record {
                    IntentRecord::Put(p, s) => db.put(&p, &s)?,
                    IntentRecord::Remove(p) => db.remove(&p)?,
                }
                adopted += 1;
            }
            db.conn
                .execute("DELETE FROM journal", [])
                .map_err(|e| db.err(e))?;
            Ok((adopted, std::mem::take(&mut unsure)))
        })
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
                mtime: Mtime::new(-1, 5),
                mode: 0o644,
                ino: 9,
            },
            b: SideMeta {
                mtime: Mtime::new(20_000_000_000, 0),
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

    #[test]
    fn a_schema_0_database_is_migrated_to_seconds_and_nanoseconds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE entries (
                     path BLOB PRIMARY KEY, kind INTEGER NOT NULL, size INTEGER NOT NULL,
                     blake3 BLOB, target BLOB NOT NULL,
                     a_mtime INTEGER NOT NULL, a_mode INTEGER NOT NULL, a_ino INTEGER NOT NULL,
                     b_mtime INTEGER NOT NULL, b_mode INTEGER NOT NULL, b_ino INTEGER NOT NULL);
                 INSERT INTO entries VALUES (x'66', 0, 3, NULL, x'', -1500000000, 420, 1,
                                             1700000000123456789, 420, 2);",
            )
            .unwrap();
        }
        let db = StateDb::open(&path).unwrap();
        let s = &db.load().unwrap()[&RelPath::parse(b"f").unwrap()];
        assert_eq!(s.a.mtime, Mtime::new(-2, 500_000_000));
        assert_eq!(s.b.mtime, Mtime::new(1_700_000_000, 123_456_789));
        drop(db);
        // Opening again changes nothing.
        let db = StateDb::open(&path).unwrap();
        assert_eq!(
            db.load().unwrap()[&RelPath::parse(b"f").unwrap()].a.mtime,
            Mtime::new(-2, 500_000_000)
        );
    }

    #[test]
    fn intents_are_adopted_where_the_touched_side_holds_them_or_was_edited_since() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = StateDb::open(&dir.path().join("s.sqlite")).unwrap();
        let p = |s: &str| RelPath::parse(s.as_bytes()).unwrap();
        let t = Mtime::new(100, 0);
        let file = |mtime| Entry {
            ino: 9,
            ..Entry::new(b"x", EntryKind::File, 3, mtime, 0o644)
        };
        let synced = Synced {
            kind: EntryKind::File,
            size: 3,
            blake3: None,
            target: Vec::new(),
            a: SideMeta {
                mtime: t,
                mode: 0o644,
                ino: 9,
            },
            b: SideMeta {
                mtime: t,
                mode: 0o644,
                ino: 0,
            },
        };
        let put = |name: &str| Intent {
            record: IntentRecord::Put(p(name), synced.clone()),
            sides: [false, true],
        };
        db.write_intents(&[
            put("arrived"),
            put("never-sent"),
            put("edited-after"),
            Intent {
                record: IntentRecord::Remove(p("removed")),
                sides: [false, true],
            },
        ])
        .unwrap();
        db.clear_intent(&p("never-sent")).unwrap(); // as a commit would
        db.write_intents(&[put("never-sent")]).unwrap();
        let mut a = HashMap::new();
        let mut b = HashMap::new();
        for name in ["arrived", "never-sent", "edited-after"] {
            a.insert(p(name), file(t));
        }
        b.insert(p("arrived"), file(t));
        b.insert(p("edited-after"), file(Mtime::new(200, 0)));
        let (adopted, unsure) = db.settle(&a, &b).unwrap();
        assert_eq!(adopted, 3);
        assert_eq!(unsure, BTreeSet::from([p("edited-after")]));
        let state = db.load().unwrap();
        assert_eq!(state[&p("arrived")].b.ino, 9, "adopted with B's inode");
        assert!(!state.contains_key(&p("never-sent")));
        assert!(
            state.contains_key(&p("edited-after")),
            "an edit after the kill is a change, not a conflict"
        );
        assert!(db.intents().unwrap().is_empty(), "settled once");
    }
}
