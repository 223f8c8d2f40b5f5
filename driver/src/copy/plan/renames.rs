//! Renames in a copy: with `--delete`, a file new at the destination
//! whose size and mtime equal those of a file the destination is about to
//! lose is probably that file, renamed. It is moved there (guarded by the
//! old file's size and mtime, like any change the plan makes), and then
//! sent as an update against itself: a true rename costs a signature and
//! an empty delta instead of the whole file, and a false match (two files
//! of one size stamped with one time, as reproducible builds do) is
//! repaired by the same transfer. With `--checksum` and equal hashes the
//! transfer is skipped.

use std::collections::{HashMap, HashSet};

use deltasync_wire::{Entry, EntryKind, Mtime};

use crate::path::RelPath;

/// True if every parent of `path` that the destination has is a folder.
pub(super) fn parents_are_folders(path: &RelPath, there: &HashMap<RelPath, &Entry>) -> bool {
    let mut p = path.parent();
    while !p.is_root() {
        if there.get(&p).is_some_and(|e| e.kind != EntryKind::Dir) {
            return false;
        }
        p = p.parent();
    }
    true
}

/// Files the destination will lose, by size and mtime.
#[derive(Debug, Default)]
pub(super) struct Departing<'a> {
    by_key: HashMap<(u64, Mtime), Vec<(RelPath, &'a Entry)>>,
    /// Paths already taken by a move: not deleted.
    pub(super) moved: HashSet<RelPath>,
}

impl<'a> Departing<'a> {
    /// The regular, non-empty files of `there` under `to` that no path in
    /// `wanted` keeps.
    pub(super) fn new(
        there: &HashMap<RelPath, &'a Entry>,
        wanted: &HashSet<RelPath>,
        to: &RelPath,
    ) -> Departing<'a> {
        let mut by_key: HashMap<_, Vec<_>> = HashMap::new();
        for (p, e) in there {
            if e.kind == EntryKind::File && e.size > 0 && p.starts_with(to) && !wanted.contains(p) {
                by_key
                    .entry((e.size, e.mtime))
                    .or_default()
                    .push((p.clone(), *e));
            }
        }
        for v in by_key.values_mut() {
            v.sort_by(|a, b| a.0.cmp(&b.0));
        }
        Departing {
            by_key,
            moved: HashSet::new(),
        }
    }

    /// A departing file that `e` (new at `path`) is a renamed copy of, if
    /// any: one with the same name if there is one, else the first.
    pub(super) fn take(&mut self, e: &Entry, path: &RelPath) -> Option<(RelPath, &'a Entry)> {
        let list = self.by_key.get_mut(&(e.size, e.mtime))?;
        let name = path.file_name();
        let at = list
            .iter()
            .position(|(p, _)| p.file_name() == name)
            .unwrap_or(0);
        if list.is_empty() {
            return None;
        }
        let (from, old) = list.remove(at);
        self.moved.insert(from.clone());
        Some((from, old))
    }
}
