//! `--empty-dirs remove`: a directory that this run leaves empty goes, on
//! every side that has it.

use std::collections::BTreeSet;

use deltasync_wire::{EntryKind, Expect};

use super::{Planner, Record, Side, Step, idx};
use crate::exec::Op;
use crate::path::RelPath;

impl Planner<'_> {
    /// Plans the removal of each directory that held something at the last
    /// sync and holds nothing once this run is done: everything under it
    /// goes (deleted here or by the user) and nothing arrives.
    ///
    /// Deepest first, so a parent emptied by its child's removal goes too.
    /// A directory that was already empty at the last sync is kept: an
    /// empty folder someone made on purpose is content. The agent checks
    /// emptiness just before removing (`Expect::EmptyDir`), so a file
    /// written there meanwhile keeps its directory (RACE: a user saving
    /// into a folder while the sync prunes it).
    pub(super) fn prune_empty_dirs(&mut self) {
        // What each side gains, and what already goes as a whole.
        let mut arriving: [BTreeSet<RelPath>; 2] = Default::default();
        let mut going: [BTreeSet<RelPath>; 2] = Default::default();
        for step in self.plan.changes.iter().flat_map(|c| c.steps.iter()) {
            let i = idx(step.side);
            match &step.op {
                Op::Transfer { path, .. }
                | Op::Link { path, .. }
                | Op::Mkdir { path, .. }
                | Op::Symlink { path, .. } => {
                    arriving[i].insert(path.clone());
                }
                Op::Move { to, .. } => {
                    arriving[i].insert(to.clone());
                }
                Op::Stash { path, .. } | Op::Remove { path, .. } => {
                    going[i].insert(path.clone());
                }
                Op::SetAttr { .. } => {}
            }
        }
        let mut dirs: Vec<RelPath> = self
            .a
            .iter()
            .chain(self.b.iter())
            .filter(|(p, e)| e.kind == EntryKind::Dir && !p.is_root())
            .map(|(p, _)| p.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        dirs.sort_by_key(|d| {
            std::cmp::Reverse(d.as_bytes().iter().filter(|&&c| c == b'/').count())
        });
        for d in dirs {
            let held = self.st.keys().any(|q| q.starts_with(&d) && *q != d);
            if !held {
                continue;
            }
            let mut sides = Vec::new();
            let mut empty = true;
            for side in [Side::A, Side::B] {
                let i = idx(side);
                let under = |q: &RelPath| q.starts_with(&d) && *q != d;
                if arriving[i].iter().any(under) {
                    empty = false;
                }
                let listing = self.listing(side);
                let here = listing.get(&d).is_some_and(|e| e.kind == EntryKind::Dir);
                if !here || going[i].iter().any(|g| d.starts_with(g)) {
                    continue; // not there, or already going as a whole
                }
                let gone = |q: &RelPath| {
                    self.deleting[i].contains(q) || going[i].iter().any(|g| q.starts_with(g))
                };
                if listing.keys().any(|q| under(q) && !gone(q)) {
                    empty = false;
                }
                sides.push(side);
            }
            if !empty || sides.is_empty() {
                continue;
            }
            for side in sides {
                self.deleting[idx(side)].insert(d.clone());
                going[idx(side)].insert(d.clone());
                let step = Step::on(
                    side,
                    Op::Remove {
                        path: d.clone(),
                        expect: Expect::EmptyDir,
                    },
                );
                let line = format!("{} rmdir    {}/", side.arrow(), d.display());
                self.push(vec![step], vec![Record::Remove(d.clone())], line);
            }
        }
    }
}
