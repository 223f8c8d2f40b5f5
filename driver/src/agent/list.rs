//! Listing a subtree of the replica, streamed as `Entry` replies.
//!
//! Filters use gitignore semantics (the `ignore` crate): a pattern without a
//! slash matches a name at any depth, a leading `/` anchors it to the root,
//! a trailing `/` matches directories only, and `!` re-includes. An excluded
//! directory is not descended into. The work directory is never listed.
//!
//! What cannot be listed does not stop the listing: a folder we may not
//! read, a special file (FIFO, socket, device), or a path longer than the
//! wire carries each becomes a `Notice` naming it, and the walk goes on.
//! The client then treats that subtree as unknown, never as deleted.

use std::io;

use crossbeam::channel::Sender;
use deltasync_wire::message::MAX_PATH;
use deltasync_wire::{Code, Entry, EntryKind, ListWants, Message, Reply};
use ignore::gitignore::{Gitignore, GitignoreBuilder};

use super::root::Root;
use crate::path::RelPath;

/// Builds the matcher for `patterns`.
pub fn matcher(patterns: &[String]) -> Result<Gitignore, String> {
    let mut b = GitignoreBuilder::new("");
    for p in patterns {
        b.add_line(None, p)
            .map_err(|e| format!("bad pattern {p:?}: {e}"))?;
    }
    b.build().map_err(|e| e.to_string())
}

/// True if `p` (of kind `is_dir`) is excluded.
pub fn excluded(m: &Gitignore, p: &RelPath, is_dir: bool) -> bool {
    !p.is_root()
        && m.matched_path_or_any_parents(p.as_path(), is_dir)
            .is_ignore()
}

/// One thing a walk found: an entry, or something it had to leave out.
enum Found {
    Entry(Entry),
    Notice(Code, Vec<u8>, String),
}

impl Found {
    fn reply(self) -> Reply {
        match self {
            Found::Entry(e) => Reply::Entry(Box::new(e)),
            Found::Notice(code, path, message) => Reply::Notice {
                code,
                path,
                message,
            },
        }
    }
}

/// What a listing is asked.
pub struct ListJob<'a> {
    /// The request's id.
    pub id: u64,
    /// The subtree.
    pub under: &'a RelPath,
    /// Compiled filters.
    pub filter: &'a Gitignore,
    /// What to report of each entry.
    pub wants: ListWants,
    /// Answer `ListSame` if the listing's digest is this.
    pub if_digest: Option<[u8; 32]>,
}

/// Walks `under` and sends its entries and notices (`under` itself first,
/// unless it is the root), then `ListEnd` with the listing's digest. If
/// the digest equals `if_digest`, sends only `ListSame`: a remote tree
/// that has not changed since the last sync costs a few bytes, not a
/// listing.
pub fn send_listing(root: &Root, job: &ListJob<'_>, out: &Sender<Message>) -> io::Result<()> {
    let mut found = Vec::new();
    walk(root, job, &mut found)?;
    let mut h = blake3::Hasher::new();
    let mut count = 0;
    let replies: Vec<Reply> = found.into_iter().map(Found::reply).collect();
    for r in &replies {
        // The digest covers every field the client compares, and notices.
        let (_, payload) = Message::Reply {
            id: 0,
            rep: r.clone(),
        }
        .encode();
        h.update(&(payload.len() as u64).to_le_bytes());
        h.update(&payload);
        count += u64::from(matches!(r, Reply::Entry(_)));
    }
    let digest = *h.finalize().as_bytes();
    let id = job.id;
    if job.if_digest == Some(digest) {
        return send(out, id, Reply::ListSame { count, digest });
    }
    for rep in replies {
        send(out, id, rep)?;
    }
    send(out, id, Reply::ListEnd { count, digest })
}

/// A path too long for the wire, cut for the notice that names it.
fn shortened(p: &[u8]) -> Vec<u8> {
    let mut v = p[..p.len().min(MAX_PATH - 16)].to_vec();
    v.extend_from_slice("…".as_bytes());
    v
}

/// A child's name, and its entry as read with its folder's listing.
type Child = (Vec<u8>, io::Result<Option<Entry>>);

/// The names in folder `p`, sorted, each with its entry. Each is read with
/// one `statx` on the open folder (one component, never followed), not by
/// resolving its whole path from the root again.
fn children(root: &Root, p: &RelPath, wants: &ListWants) -> io::Result<Vec<Child>> {
    use cap_fs_ext::DirExt;
    use std::os::unix::ffi::OsStrExt;
    let dir = if p.is_root() {
        root.dir.try_clone()?
    } else {
        root.dir.open_dir_nofollow(p.as_path())?
    };
    let mut names: Vec<Vec<u8>> = dir
        .entries()?
        .map(|e| e.map(|e| e.file_name().as_bytes().to_vec()))
        .collect::<io::Result<_>>()?;
    names.sort();
    Ok(names
        .into_iter()
        .map(|name: Vec<u8>| {
            let got = match dir.symlink_metadata(std::ffi::OsStr::from_bytes(&name)) {
                Ok(m) => root.entry_from(&p.join(&name), &m, wants).map(Some),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            };
            (name, got)
        })
        .collect())
}

/// The entries of `job.under`, in walk order.
fn walk(root: &Root, job: &ListJob<'_>, found: &mut Vec<Found>) -> io::Result<()> {
    let under = job.under;
    // Each path with its entry, when its folder's listing read it already.
    let mut stack: Vec<(RelPath, Option<io::Result<Option<Entry>>>)> = vec![(under.clone(), None)];
    while let Some((p, read)) = stack.pop() {
        let got = match read {
            Some(got) => got,
            None => root.entry_with(&p, &job.wants),
        };
        let entry = match got {
            Ok(Some(e)) => e,
            Ok(None) if p == *under && !p.is_root() => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} does not exist", p.display()),
                ));
            }
            Ok(None) => continue, // vanished while we walked
            Err(e) if p == *under => return Err(e),
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                if !excluded(job.filter, &p, false) {
                    found.push(Found::Notice(
                        Code::Skipped,
                        p.as_bytes().to_vec(),
                        e.to_string(),
                    ));
                }
                continue;
            }
            Err(e) => {
                found.push(Found::Notice(
                    Code::FileIo,
                    p.as_bytes().to_vec(),
                    e.to_string(),
                ));
                continue;
            }
        };
        if excluded(job.filter, &p, entry.kind == EntryKind::Dir) {
            continue;
        }
        let mut entry = entry;
        if job.wants.checksum && entry.kind == EntryKind::File {
            match hash_file(root, &p) {
                Ok(h) => entry.blake3 = Some(h),
                Err(e) => {
                    found.push(Found::Notice(
                        Code::FileIo,
                        p.as_bytes().to_vec(),
                        format!("cannot read it: {e}"),
                    ));
                    continue;
                }
            }
        }
        let is_dir = entry.kind == EntryKind::Dir;
        let names = if is_dir {
            match children(root, &p, &job.wants) {
                Ok(n) => Some(n),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) if p == *under => {
                    return Err(io::Error::new(e.kind(), format!("{}: {e}", p.display())));
                }
                Err(e) => {
                    // Listed, so the folder itself is known; its contents are not.
                    if !p.is_root() {
                        found.push(Found::Entry(entry));
                    }
                    found.push(Found::Notice(
                        Code::FileIo,
                        p.as_bytes().to_vec(),
                        format!("cannot read this folder: {e}"),
                    ));
                    continue;
                }
            }
        } else {
            None
        };
        if !p.is_root() {
            found.push(Found::Entry(entry));
        }
        // Push in reverse so the walk comes out in name order.
        for (name, got) in names.into_iter().flatten().rev() {
            if p.is_root() && name == crate::path::WORK_DIR.as_bytes() {
                continue;
            }
            let child = p.join(&name);
            if child.as_bytes().len() > MAX_PATH {
                found.push(Found::Notice(
                    Code::FileIo,
                    shortened(child.as_bytes()),
                    format!(
                        "path of {} bytes is longer than the {MAX_PATH} bytes deltasync carries; skipped",
                        child.as_bytes().len()
                    ),
                ));
                continue;
            }
            stack.push((child, Some(got)));
        }
    }
    Ok(())
}

fn send(out: &Sender<Message>, id: u64, rep: Reply) -> io::Result<()> {
    out.send(Message::Reply { id, rep })
        .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "connection closed"))
}

/// BLAKE3 of a file's contents.
pub fn hash_file(root: &Root, p: &RelPath) -> io::Result<[u8; 32]> {
    let mut f = root.open_file(p)?;
    let mut h = blake3::Hasher::new();
    io::copy(&mut f, &mut h)?;
    Ok(*h.finalize().as_bytes())
}
