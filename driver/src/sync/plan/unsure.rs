//! After a kill: paths whose journal left it unsure whether the killed
//! run's change arrived (`StateDb::settle`). They are planned as if it
//! did, so an edit made since is a plain change, never a conflict, and is
//! never reverted. In case it did not arrive, what a change to such a path
//! overwrites or deletes is kept in the work directory instead of lost.

use std::collections::BTreeSet;

use deltasync_wire::{Expect, StashArea};

use super::{Plan, Step};
use crate::exec::Op;
use crate::path::RelPath;

/// Makes every overwrite of an `unsure` path keep the old file first (in
/// `conflicts/`), and every removal of one a stash (in `deleted/`).
pub fn keep_unsure(plan: &mut Plan, unsure: &BTreeSet<RelPath>) {
    if unsure.is_empty() {
        return;
    }
    for change in &mut plan.changes {
        let mut steps = Vec::with_capacity(change.steps.len());
        for step in std::mem::take(&mut change.steps) {
            let side = step.side;
            match step.op {
                Op::Transfer {
                    ref path,
                    expect: expect @ Expect::File { .. },
                    ..
                } if unsure.contains(path) => {
                    let keep = Op::Stash {
                        path: path.clone(),
                        area: StashArea::ConflictsLink,
                        expect,
                    };
                    let already = steps.iter().any(|s: &Step| s.side == side && s.op == keep);
                    if !already {
                        steps.push(Step::on(side, keep));
                    }
                    steps.push(step);
                }
                Op::Remove { path, expect } if unsure.contains(&path) => steps.push(Step::on(
                    side,
                    Op::Stash {
                        path,
                        area: StashArea::Deleted,
                        expect,
                    },
                )),
                op => steps.push(Step { side, op }),
            }
        }
        change.steps = steps;
    }
}

#[cfg(test)]
mod tests {
    use deltasync_wire::{Attrs, Mtime};

    use super::super::{Change, Side};
    use super::*;

    #[test]
    fn an_unsure_overwrite_keeps_the_old_file_and_a_removal_stashes() {
        let p = |s: &str| RelPath::parse(s.as_bytes()).unwrap();
        let expect = Expect::File {
            size: 3,
            mtime: Mtime::new(5, 0),
        };
        let transfer = |path: &str| Op::Transfer {
            src: p(path),
            path: p(path),
            size: 3,
            expect,
            attrs: Attrs::default(),
            known: None,
            basis: None,
        };
        let mut plan = Plan::default();
        for op in [
            transfer("unsure"),
            transfer("sure"),
            Op::Remove {
                path: p("gone"),
                expect,
            },
        ] {
            plan.changes.push(Change {
                steps: vec![Step::on(Side::B, op)],
                records: Vec::new(),
                line: String::new(),
            });
        }
        keep_unsure(&mut plan, &BTreeSet::from([p("unsure"), p("gone")]));
        let ops: Vec<Vec<&Op>> = plan
            .changes
            .iter()
            .map(|c| c.steps.iter().map(|s| &s.op).collect())
            .collect();
        assert!(matches!(
            ops[0][..],
            [
                Op::Stash {
                    area: StashArea::ConflictsLink,
                    ..
                },
                Op::Transfer { .. }
            ]
        ));
        assert!(matches!(ops[1][..], [Op::Transfer { .. }]));
        assert!(matches!(
            ops[2][..],
            [Op::Stash {
                area: StashArea::Deleted,
                ..
            }]
        ));
    }
}
