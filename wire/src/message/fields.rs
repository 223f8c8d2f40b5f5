//! The structured fields messages carry, and their checked encoding.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{MAX_PATH, MAX_TEXT, MAX_XATTR_NAME, MAX_XATTR_VALUE, MAX_XATTRS};
use crate::codec::{Dec, Enc};
use crate::error::WireError;

/// A file time: signed seconds since the epoch and nanoseconds (below one
/// billion). Unlike a count of nanoseconds in an `i64`, it holds any time a
/// file system stores, from before 1970 to long after 2262.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mtime {
    /// Seconds since 1970-01-01 UTC; negative before it.
    pub secs: i64,
    /// Nanoseconds within the second, 0 to 999,999,999.
    pub nanos: u32,
}

impl Mtime {
    /// A time from its parts; nanoseconds past a second carry into `secs`.
    pub fn new(secs: i64, nanos: i64) -> Mtime {
        Mtime {
            secs: secs.saturating_add(nanos.div_euclid(1_000_000_000)),
            nanos: nanos.rem_euclid(1_000_000_000) as u32,
        }
    }

    /// The same moment as a `SystemTime`, if the platform can hold it.
    pub fn to_system_time(self) -> Option<SystemTime> {
        let nanos = Duration::from_nanos(u64::from(self.nanos));
        if self.secs >= 0 {
            UNIX_EPOCH
                .checked_add(Duration::from_secs(self.secs as u64))?
                .checked_add(nanos)
        } else {
            UNIX_EPOCH
                .checked_sub(Duration::from_secs(self.secs.unsigned_abs()))?
                .checked_add(nanos)
        }
    }

    /// The moment a `SystemTime` names (before the epoch too).
    pub fn from_system_time(t: SystemTime) -> Mtime {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Mtime {
                secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                nanos: d.subsec_nanos(),
            },
            Err(e) => {
                let d = e.duration();
                let secs = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                Mtime::new(secs, -i64::from(d.subsec_nanos()))
            }
        }
    }
}

impl std::fmt::Display for Mtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:09}", self.secs, self.nanos)
    }
}

/// What a directory entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (never followed).
    Symlink,
}

/// An owner and group, by number and (when known) by name. A receiver maps
/// names to its own numbers unless told to keep numbers (`--numeric-ids`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// User name, empty if unknown.
    pub user: String,
    /// Group name, empty if unknown.
    pub group: String,
}

/// Where a file with more than one name lives, so the names can be grouped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Links {
    /// The device; with the entry's inode it names the file.
    pub dev: u64,
    /// How many names the file has.
    pub nlink: u32,
}

/// One extended attribute (ACLs travel as `system.posix_acl_*`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Xattr {
    /// The name, such as `user.comment`.
    pub name: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
}

/// One entry of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Relative path, `/`-separated.
    pub path: Vec<u8>,
    /// File, directory or symlink.
    pub kind: EntryKind,
    /// Size in bytes (files only).
    pub size: u64,
    /// Modification time.
    pub mtime: Mtime,
    /// Permission bits.
    pub mode: u32,
    /// Symlink target.
    pub target: Vec<u8>,
    /// BLAKE3 of the contents, when asked for (`--checksum`) or known.
    pub blake3: Option<[u8; 32]>,
    /// Inode number, for change detection (0 when unknown).
    pub ino: u64,
    /// Owner and group, when asked for.
    pub owner: Option<Owner>,
    /// Hard-link identity, when asked for and the file has several names.
    pub links: Option<Links>,
    /// Extended attributes, when asked for (sorted by name).
    pub xattrs: Option<Vec<Xattr>>,
}

impl Entry {
    /// An entry with only the basic fields set.
    pub fn new(path: &[u8], kind: EntryKind, size: u64, mtime: Mtime, mode: u32) -> Entry {
        Entry {
            path: path.to_vec(),
            kind,
            size,
            mtime,
            mode,
            target: Vec::new(),
            blake3: None,
            ino: 0,
            owner: None,
            links: None,
            xattrs: None,
        }
    }
}

/// What a listing should report beyond names, kinds, sizes, times and modes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListWants {
    /// Every file's BLAKE3 (`--checksum`).
    pub checksum: bool,
    /// Owners and groups (`-o`, `-g`).
    pub owner: bool,
    /// Hard-link identities (`-H`).
    pub hard_links: bool,
    /// Extended attributes other than ACLs (`-X`).
    pub xattrs: bool,
    /// POSIX ACLs (`-A`).
    pub acls: bool,
}

/// Attributes a change sets. `None` leaves one as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attrs {
    /// Permission bits.
    pub mode: Option<u32>,
    /// Modification time.
    pub mtime: Option<Mtime>,
    /// Owner and group.
    pub owner: Option<Owner>,
    /// The whole set of extended attributes: others are removed.
    pub xattrs: Option<Vec<Xattr>>,
}

impl Attrs {
    /// True if nothing is to be set.
    pub fn is_empty(&self) -> bool {
        self.mode.is_none() && self.mtime.is_none() && self.owner.is_none() && self.xattrs.is_none()
    }
}

/// What a change may find at its path before it acts: the guard that keeps
/// a sync from replacing a file that changed after it was planned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Expect {
    /// Whatever is there.
    #[default]
    Any,
    /// Nothing.
    Absent,
    /// A regular file of this size and mtime.
    File {
        /// Size in bytes.
        size: u64,
        /// Modification time.
        mtime: Mtime,
    },
    /// A directory.
    Dir,
    /// A symlink.
    Symlink,
    /// A directory with nothing in it.
    EmptyDir,
}

/// A file's identity at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileStat {
    /// Size in bytes.
    pub size: u64,
    /// Modification time.
    pub mtime: Mtime,
    /// Permission bits.
    pub mode: u32,
}

/// A verified prefix kept from an interrupted transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partial {
    /// Bytes kept.
    pub len: u64,
    /// BLAKE3 of those bytes.
    pub blake3: [u8; 32],
}

/// Where a stashed entry goes in the work directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StashArea {
    /// `.deltasync/deleted/`: moved there (a soft delete).
    Deleted,
    /// `.deltasync/conflicts/`: moved there (a conflict's loser).
    Conflicts,
    /// `.deltasync/conflicts/`, by hard link: the version also stays in
    /// place, as the basis of the delta that will replace it.
    ConflictsLink,
}

pub(super) fn put_time(e: &mut Enc, t: &Mtime) {
    e.ivarint(t.secs).varint(u64::from(t.nanos));
}

pub(super) fn get_time(d: &mut Dec<'_>) -> Result<Mtime, WireError> {
    let secs = d.ivarint()?;
    let nanos = d.u32()?;
    if nanos >= 1_000_000_000 {
        return Err(WireError::malformed("time", format!("{nanos} nanoseconds")));
    }
    Ok(Mtime { secs, nanos })
}

fn put_owner(e: &mut Enc, o: &Owner) {
    e.varint(u64::from(o.uid))
        .varint(u64::from(o.gid))
        .str(&o.user)
        .str(&o.group);
}

fn get_owner(d: &mut Dec<'_>) -> Result<Owner, WireError> {
    Ok(Owner {
        uid: d.u32()?,
        gid: d.u32()?,
        user: d.string(MAX_TEXT)?,
        group: d.string(MAX_TEXT)?,
    })
}

fn put_xattrs(e: &mut Enc, x: &[Xattr]) {
    e.varint(x.len() as u64);
    for a in x {
        e.bytes(&a.name).bytes(&a.value);
    }
}

fn get_xattrs(d: &mut Dec<'_>) -> Result<Vec<Xattr>, WireError> {
    let n = d.varint()?;
    if n > MAX_XATTRS {
        return Err(WireError::malformed(
            "xattrs",
            format!("{n} attributes exceed the limit of {MAX_XATTRS}"),
        ));
    }
    // Each attribute takes at least two bytes, so `n` is also bounded by
    // what the frame holds before anything is allocated for it.
    if n > d.rest_len() as u64 / 2 {
        return Err(WireError::malformed(
            "xattrs",
            format!("{n} attributes in {} bytes", d.rest_len()),
        ));
    }
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let name = d.bytes(MAX_XATTR_NAME)?.to_vec();
        let value = d.bytes(MAX_XATTR_VALUE)?.to_vec();
        out.push(Xattr { name, value });
    }
    Ok(out)
}

pub(super) fn put_entry(e: &mut Enc, x: &Entry) {
    let k = match x.kind {
        EntryKind::File => 0,
        EntryKind::Dir => 1,
        EntryKind::Symlink => 2,
    };
    e.bytes(&x.path).u8(k).varint(x.size);
    put_time(e, &x.mtime);
    e.varint(u64::from(x.mode))
        .bytes(&x.target)
        .opt_hash(&x.blake3)
        .varint(x.ino);
    let flags = u8::from(x.owner.is_some())
        | u8::from(x.links.is_some()) << 1
        | u8::from(x.xattrs.is_some()) << 2;
    e.u8(flags);
    if let Some(o) = &x.owner {
        put_owner(e, o);
    }
    if let Some(l) = &x.links {
        e.varint(l.dev).varint(u64::from(l.nlink));
    }
    if let Some(xa) = &x.xattrs {
        put_xattrs(e, xa);
    }
}

pub(super) fn get_entry(d: &mut Dec<'_>) -> Result<Entry, WireError> {
    let path = d.bytes(MAX_PATH)?.to_vec();
    let kind = match d.u8()? {
        0 => EntryKind::File,
        1 => EntryKind::Dir,
        2 => EntryKind::Symlink,
        k => return Err(WireError::malformed("Entry", format!("entry kind {k}"))),
    };
    let size = d.varint()?;
    let mtime = get_time(d)?;
    let mode = d.u32()?;
    let target = d.bytes(MAX_PATH)?.to_vec();
    let blake3 = d.opt_hash()?;
    let ino = d.varint()?;
    let flags = d.u8()?;
    if flags > 7 {
        return Err(WireError::malformed("Entry", format!("flags {flags:#x}")));
    }
    let owner = (flags & 1 != 0).then(|| get_owner(d)).transpose()?;
    let links = (flags & 2 != 0)
        .then(|| -> Result<Links, WireError> {
            Ok(Links {
                dev: d.varint()?,
                nlink: d.u32()?,
            })
        })
        .transpose()?;
    let xattrs = (flags & 4 != 0).then(|| get_xattrs(d)).transpose()?;
    Ok(Entry {
        path,
        kind,
        size,
        mtime,
        mode,
        target,
        blake3,
        ino,
        owner,
        links,
        xattrs,
    })
}

pub(super) fn put_wants(e: &mut Enc, w: &ListWants) {
    e.u8(u8::from(w.checksum)
        | u8::from(w.owner) << 1
        | u8::from(w.hard_links) << 2
        | u8::from(w.xattrs) << 3
        | u8::from(w.acls) << 4);
}

pub(super) fn get_wants(d: &mut Dec<'_>) -> Result<ListWants, WireError> {
    let b = d.u8()?;
    if b > 0x1f {
        return Err(WireError::malformed("List", format!("wants {b:#x}")));
    }
    Ok(ListWants {
        checksum: b & 1 != 0,
        owner: b & 2 != 0,
        hard_links: b & 4 != 0,
        xattrs: b & 8 != 0,
        acls: b & 16 != 0,
    })
}

pub(super) fn put_attrs(e: &mut Enc, a: &Attrs) {
    let flags = u8::from(a.mode.is_some())
        | u8::from(a.mtime.is_some()) << 1
        | u8::from(a.owner.is_some()) << 2
        | u8::from(a.xattrs.is_some()) << 3;
    e.u8(flags);
    if let Some(m) = a.mode {
        e.varint(u64::from(m));
    }
    if let Some(t) = &a.mtime {
        put_time(e, t);
    }
    if let Some(o) = &a.owner {
        put_owner(e, o);
    }
    if let Some(x) = &a.xattrs {
        put_xattrs(e, x);
    }
}

pub(super) fn get_attrs(d: &mut Dec<'_>) -> Result<Attrs, WireError> {
    let flags = d.u8()?;
    if flags > 0xf {
        return Err(WireError::malformed(
            "attributes",
            format!("flags {flags:#x}"),
        ));
    }
    Ok(Attrs {
        mode: (flags & 1 != 0).then(|| d.u32()).transpose()?,
        mtime: (flags & 2 != 0).then(|| get_time(d)).transpose()?,
        owner: (flags & 4 != 0).then(|| get_owner(d)).transpose()?,
        xattrs: (flags & 8 != 0).then(|| get_xattrs(d)).transpose()?,
    })
}

pub(super) fn put_expect(e: &mut Enc, x: &Expect) {
    match x {
        Expect::Any => {
            e.u8(0);
        }
        Expect::Absent => {
            e.u8(1);
        }
        Expect::File { size, mtime } => {
            e.u8(2).varint(*size);
            put_time(e, mtime);
        }
        Expect::Dir => {
            e.u8(3);
        }
        Expect::Symlink => {
            e.u8(4);
        }
        Expect::EmptyDir => {
            e.u8(5);
        }
    }
}

pub(super) fn get_expect(d: &mut Dec<'_>) -> Result<Expect, WireError> {
    Ok(match d.u8()? {
        0 => Expect::Any,
        1 => Expect::Absent,
        2 => Expect::File {
            size: d.varint()?,
            mtime: get_time(d)?,
        },
        3 => Expect::Dir,
        4 => Expect::Symlink,
        5 => Expect::EmptyDir,
        t => return Err(WireError::malformed("expectation", format!("tag {t}"))),
    })
}

pub(super) fn put_stat(e: &mut Enc, s: &FileStat) {
    e.varint(s.size);
    put_time(e, &s.mtime);
    e.varint(u64::from(s.mode));
}

pub(super) fn get_stat(d: &mut Dec<'_>) -> Result<FileStat, WireError> {
    Ok(FileStat {
        size: d.varint()?,
        mtime: get_time(d)?,
        mode: d.u32()?,
    })
}

pub(super) fn put_opt_stat(e: &mut Enc, s: &Option<FileStat>) {
    match s {
        Some(s) => {
            e.u8(1);
            put_stat(e, s);
        }
        None => {
            e.u8(0);
        }
    }
}

pub(super) fn get_opt_stat(d: &mut Dec<'_>) -> Result<Option<FileStat>, WireError> {
    d.bool()?.then(|| get_stat(d)).transpose()
}

pub(super) fn put_opt_partial(e: &mut Enc, p: &Option<Partial>) {
    match p {
        Some(p) => {
            e.u8(1).varint(p.len).hash(&p.blake3);
        }
        None => {
            e.u8(0);
        }
    }
}

pub(super) fn get_opt_partial(d: &mut Dec<'_>) -> Result<Option<Partial>, WireError> {
    d.bool()?
        .then(|| -> Result<Partial, WireError> {
            Ok(Partial {
                len: d.varint()?,
                blake3: d.hash()?,
            })
        })
        .transpose()
}

pub(super) fn put_area(e: &mut Enc, a: StashArea) {
    e.u8(match a {
        StashArea::Deleted => 0,
        StashArea::Conflicts => 1,
        StashArea::ConflictsLink => 2,
    });
}

pub(super) fn get_area(d: &mut Dec<'_>) -> Result<StashArea, WireError> {
    Ok(match d.u8()? {
        0 => StashArea::Deleted,
        1 => StashArea::Conflicts,
        2 => StashArea::ConflictsLink,
        a => return Err(WireError::malformed("Stash", format!("area {a}"))),
    })
}

/// An optional short text: a flag byte, then the text if present.
pub(super) fn put_opt_str(e: &mut Enc, s: Option<&str>) {
    match s {
        Some(v) => e.u8(1).str(v),
        None => e.u8(0),
    };
}

pub(super) fn get_opt_str(d: &mut Dec<'_>) -> Result<Option<String>, WireError> {
    Ok(if d.bool()? {
        Some(d.string(MAX_TEXT)?)
    } else {
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_before_1970_and_after_2262_convert_both_ways() {
        for t in [
            Mtime::new(-1, 500),
            Mtime::new(-86_400 * 365 * 100, 999_999_999),
            Mtime::new(1 << 34, 1), // the year 2514
            Mtime::new(0, 0),
        ] {
            let st = t.to_system_time().expect("representable");
            assert_eq!(Mtime::from_system_time(st), t);
        }
        assert_eq!(
            Mtime::new(5, -1),
            Mtime {
                secs: 4,
                nanos: 999_999_999
            }
        );
        assert!(Mtime::new(-1, 0) < Mtime::new(0, 0));
    }
}
