//! Listing a subtree of the replica, streamed as `Entry` messages.
//!
//! Filters use gitignore semantics (the `ignore` crate): a pattern without a
//! slash matches a name at any depth, a leading `/` anchors it to the root,
//! a trailing `/` matches directories only, and `!` re-includes. An excluded
//! directory is not descended into. The work directory is never listed.

use std::io;

use crossbeam::channel::Sender;
use deltasync_wire::{Entry, EntryKind, Message};
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

/// Walks `under` and sends its entries (`under` itself first, unless it is
/// the root), then `ListEnd` with the listing's digest. If the digest
/// equals `if_digest`, sends only `ListSame`: a remote tree that has not
/// changed since the last sync costs a few bytes, not a listing.
pub fn send_listing(
    root: &Root,
    under: &RelPath,
    filter: &Gitignore,
    checksum: bool,
    if_digest: Option<[u8; 32]>,
    id: u64,
    out: &Sender<Message>,
) -> io::Result<()> {
    let mut entries = Vec::new();
    walk(root, under, filter, checksum, &mut entries)?;
    let mut h = blake3::Hasher::new();
    for e in &entries {
        // The digest covers every field the client compares.
        let (_, payload) = Message::Entry {
            id: 0,
            entry: e.clone(),
        }
        .encode();
        h.update(&(payload.len() as u64).to_le_bytes());
        h.update(&payload);
    }
    let digest = *h.finalize().as_bytes();
    let count = entries.len() as u64;
    if if_digest == Some(digest) {
        return send(out, Message::ListSame { id, count, digest });
    }
    for entry in entries {
        send(out, Message::Entry { id, entry })?;
    }
    send(out, Message::ListEnd { id, count, digest })
}

/// The entries of `under`, in walk order.
fn walk(
    root: &Root,
    under: &RelPath,
    filter: &Gitignore,
    checksum: bool,
    found: &mut Vec<Entry>,
) -> io::Result<()> {
    let mut stack = vec![under.clone()];
    while let Some(p) = stack.pop() {
        let Some(mut entry) = root.entry(&p)? else {
            if p == *under && !p.is_root() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} does not exist", p.display()),
                ));
            }
            continue; // vanished while we walked, or a special file
        };
        if excluded(filter, &p, entry.kind == EntryKind::Dir) {
            continue;
        }
        if checksum && entry.kind == EntryKind::File {
            entry.blake3 = Some(hash_file(root, &p)?);
        }
        let is_dir = entry.kind == EntryKind::Dir;
        if !p.is_root() {
            found.push(entry);
        }
        if is_dir {
            let names = match root.read_dir(&p) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", p.display()))),
            };
            // Push in reverse so the walk comes out in name order.
            for name in names.iter().rev() {
                if p.is_root() && name == crate::path::WORK_DIR.as_bytes() {
                    continue;
                }
                stack.push(p.join(name));
            }
        }
    }
    Ok(())
}

fn send(out: &Sender<Message>, m: Message) -> io::Result<()> {
    out.send(m)
        .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "connection closed"))
}

/// BLAKE3 of a file's contents.
pub fn hash_file(root: &Root, p: &RelPath) -> io::Result<[u8; 32]> {
    let mut f = root.open_file(p)?;
    let mut h = blake3::Hasher::new();
    io::copy(&mut f, &mut h)?;
    Ok(*h.finalize().as_bytes())
}
