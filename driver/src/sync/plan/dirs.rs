//! Directories deleted on one side: they go from the other side only when
//! everything under them goes too, and never sweep away what the plan did
//! not see.

use std::collections::BTreeSet;

use deltasync_wire::{Attrs, EntryKind, Expect, StashArea};

use super::{Delta, Planner, Record, Side, Step, delta, idx};
use crate::exec::Op;
use crate::path::RelPath;

impl Planner<'_> {
    /// Directory deletions, after every path is decided. A directory goes
    /// only if everything under it on that side goes too (files deleted or
    /// moved out, subdirectories going by this same rule, deepest first);
    /// otherwise it is restored where it was deleted, for what stays.
    ///
    /// A directory that goes is removed only once it is empty
    /// (`Expect::EmptyDir`), after the entries under it went one by one.
    /// Removing or stashing it whole would also take what the listing did
    /// not show: excluded or hidden files, or a file saved there since.
    /// Such a directory stays, and the run reports it.
    pub(super) fn settle_dirs(&mut self) {
        let mut dels = std::mem::take(&mut self.dir_deletions);
        dels.sort_by_key(|(_, d)| (std::cmp::Reverse(depth(d)), d.clone()));
        let mut gone: [BTreeSet<RelPath>; 2] = Default::default();
        let mut restore = Vec::new();
        for (side, d) in dels {
            let i = idx(side);
            let all_go = self
                .listing(side)
                .keys()
                .filter(|q| q.starts_with(&d) && **q != d)
                .all(|q| self.deleting[i].contains(q) || gone[i].contains(q));
            if all_go {
                gone[i].insert(d.clone());
                let step = Step::on(
                    side,
                    Op::Remove {
                        path: d.clone(),
                        expect: Expect::EmptyDir,
                    },
                );
                let line = format!("{} delete   {}/", side.arrow(), d.display());
                self.push(vec![step], vec![Record::Remove(d.clone())], line);
            } else {
                restore.push((side, d));
            }
        }
        for (side, d) in restore {
            // Something under it changed where it was kept: restore it.
            if let Some(e) = self.entry(side, &d).cloned() {
                self.create(&d, &e, side, None, StashArea::Deleted);
            }
        }
    }

    /// A folder stashed whole to make way for a file takes everything under
    /// it along: the per-entry deletions planned inside it would find
    /// nothing and fail, so they are dropped (the stash's change forgets
    /// the subtree in the state).
    pub(super) fn drop_covered_deletions(&mut self) {
        let replaced = std::mem::take(&mut self.replaced_dirs);
        if replaced.is_empty() {
            return;
        }
        let covered = |side: Side, q: &RelPath| {
            replaced
                .iter()
                .any(|(s, d)| *s == side && q.starts_with(d) && q != d)
        };
        self.plan.changes.retain(|c| {
            !(c.steps.len() == 1
                && matches!(&c.steps[0].op,
                    Op::Stash { path, area: StashArea::Deleted, .. }
                    | Op::Remove { path, .. } if covered(c.steps[0].side, path)))
        });
    }

    /// Directories whose contents this plan changes get their mtime back
    /// once the run is done with them, as `rsync -a` does: the later of
    /// the two sides' times, so a folder shows when it last changed on
    /// either side, not when the sync ran. Runs last, once every step is
    /// planned; a folder the plan creates, removes or moves already has
    /// its own steps and is left to them.
    pub(super) fn restore_dir_times(&mut self) {
        let mut touched: BTreeSet<(Side, RelPath)> = BTreeSet::new();
        let mut own: BTreeSet<(Side, RelPath)> = BTreeSet::new();
        for step in self.plan.changes.iter().flat_map(|c| &c.steps) {
            let path = step.op.path();
            touched.insert((step.side, path.parent()));
            own.insert((step.side, path.clone()));
            if let Op::Move { from, .. } = &step.op {
                touched.insert((step.side, from.parent()));
                own.insert((step.side, from.clone()));
            }
        }
        let mut steps = Vec::new();
        for (side, d) in touched {
            if d.is_root() || own.contains(&(side, d.clone())) {
                continue;
            }
            let here = self.entry(side, &d).filter(|e| e.kind == EntryKind::Dir);
            let there = self
                .entry(side.other(), &d)
                .filter(|e| e.kind == EntryKind::Dir);
            let Some(mtime) = here.iter().chain(there.iter()).map(|e| e.mtime).max() else {
                continue;
            };
            if here.is_none() {
                continue;
            }
            steps.push(Step::on(
                side,
                Op::SetAttr {
                    path: d,
                    attrs: Attrs {
                        mtime: Some(mtime),
                        ..Attrs::default()
                    },
                    expect: Expect::Dir,
                    late: true,
                },
            ));
        }
        if !steps.is_empty() {
            self.push(steps, Vec::new(), String::new());
        }
    }

    /// True if anything under the directory `p` on `side` is new or changed
    /// since the last sync.
    pub(super) fn changed_under(&self, side: Side, p: &RelPath) -> bool {
        self.listing(side)
            .iter()
            .filter(|(q, _)| q.starts_with(p) && *q != p)
            .any(|(q, e)| delta(self.st.get(q), Some(e), side) != Delta::None)
    }
}

fn depth(p: &RelPath) -> usize {
    p.as_bytes().iter().filter(|&&c| c == b'/').count()
}
