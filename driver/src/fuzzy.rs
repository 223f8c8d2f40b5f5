//! `--fuzzy`: a file new at the destination may have an older version
//! there under another name (`report-v2.txt` beside a new
//! `report-v3.txt`, `app-1.4.tar` beside `app-1.5.tar`). As rsync's
//! `--fuzzy` does, such a file is sent as a delta against that similar
//! file instead of whole. Pure: a pass over a finished plan's steps on one
//! destination, copy's or one side of a sync's.
//!
//! A basis must be in the same folder, a regular non-empty file, within
//! half to twice the new file's size, and share with the new name at
//! least half of it as a common start plus a common end. The best score
//! wins, then the closer size, then the name. Only a file this plan
//! leaves alone may serve: none that it writes, moves, removes or stashes,
//! nor anything under a folder it removes, since the basis is read while
//! the plan's other steps run. (rsync with `--delete-after` may also use
//! a file about to be deleted; here such a file keeps its turn.)

use std::collections::{HashMap, HashSet};

use deltasync_wire::{Entry, EntryKind, Expect};

use crate::exec::Op;
use crate::path::RelPath;

/// Gives each new file of `ops` (the steps on one destination) the best
/// similar file of `there` (that destination's listing) as its basis,
/// where one qualifies.
pub fn choose<'e>(ops: &mut [&mut Op], there: impl IntoIterator<Item = (&'e RelPath, &'e Entry)>) {
    let (written, gone) = busy(ops);
    let touched = |p: &RelPath| {
        if written.contains(p) {
            return true;
        }
        let mut at = p.clone();
        loop {
            if gone.contains(&at) {
                return true;
            }
            if at.is_root() {
                return false;
            }
            at = at.parent();
        }
    };
    let mut by_folder: HashMap<RelPath, Vec<(&RelPath, u64)>> = HashMap::new();
    for (p, e) in there {
        if e.kind == EntryKind::File && e.size > 0 && !touched(p) {
            by_folder.entry(p.parent()).or_default().push((p, e.size));
        }
    }
    for op in ops.iter_mut() {
        if let Op::Transfer {
            path,
            size,
            expect: Expect::Absent,
            basis,
            ..
        } = &mut **op
        {
            let found = by_folder
                .get(&path.parent())
                .and_then(|c| best(path, *size, c));
            *basis = found.cloned();
        }
    }
}

/// The paths the plan writes (a folder's new mtime leaves what it holds
/// alone), and those it takes away with all they hold (removed, stashed,
/// moved).
fn busy(ops: &[&mut Op]) -> (HashSet<RelPath>, HashSet<RelPath>) {
    let (mut written, mut gone) = (HashSet::new(), HashSet::new());
    for op in ops {
        match &**op {
            Op::Remove { path, .. } | Op::Stash { path, .. } => {
                gone.insert(path.clone());
            }
            Op::Move { from, to, .. } => {
                gone.insert(from.clone());
                written.insert(to.clone());
            }
            other => {
                written.insert(other.path().clone());
            }
        }
    }
    (written, gone)
}

/// The best of `candidates` for a new file at `path` of `size` bytes.
fn best<'a>(path: &RelPath, size: u64, candidates: &[(&'a RelPath, u64)]) -> Option<&'a RelPath> {
    let name = path.file_name();
    candidates
        .iter()
        .filter(|(_, len)| *len * 2 >= size && *len <= size.saturating_mul(2))
        .filter_map(|&(p, len)| {
            let score = likeness(name, p.file_name());
            (score * 2 >= name.len()).then_some((score, size.abs_diff(len), p))
        })
        .min_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(b.2)))
        .map(|(_, _, p)| p)
}

/// Bytes of a common start plus a common end (not overlapping).
fn likeness(a: &[u8], b: &[u8]) -> usize {
    let start = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let room = a.len().min(b.len()) - start;
    let end = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take(room)
        .take_while(|(x, y)| x == y)
        .count();
    start + end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn likeness_counts_a_common_start_and_end_once() {
        assert_eq!(likeness(b"report-v3.txt", b"report-v2.txt"), 12);
        assert_eq!(likeness(b"aaa", b"aaa"), 3);
        assert_eq!(likeness(b"abc", b"xyz"), 0);
        assert_eq!(likeness(b"app-1.5.tar", b"app-1.4.tar"), 10);
        assert_eq!(likeness(b"a.txt", b"totally-else.txt"), 4);
    }

    #[test]
    fn the_closest_name_then_size_wins_within_bounds() {
        let p = |s: &str| RelPath::parse(s.as_bytes()).unwrap();
        let (v1, v2, other, tiny) = (
            p("d/r-v1.txt"),
            p("d/r-v2.txt"),
            p("d/zz.bin"),
            p("d/r-v0.txt"),
        );
        let c = [(&v1, 900), (&v2, 1000), (&other, 1000), (&tiny, 10)];
        assert_eq!(best(&p("d/r-v3.txt"), 1000, &c), Some(&v2));
        assert_eq!(
            best(&p("d/r-v3.txt"), 5000, &c),
            None,
            "sizes too far apart"
        );
        assert_eq!(best(&p("d/unrelated"), 1000, &c), None, "no name alike");
    }
}
