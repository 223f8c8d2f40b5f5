//! Carrying out a sync plan through the copy executor.
//!
//! Each change's steps go to the side they change, in two phases: first
//! moves, stashes and removals (so a conflict loser is kept, and a renamed
//! file is in place, before anything is written over it or copied from
//! it), then creations and transfers. Phases run A→B then B→A.
//!
//! A change's state records are committed the moment its last step
//! succeeds, one transaction each. A change with a failed step records
//! nothing: the next run sees the same difference again and retries, or
//! sees it already done on both sides and just records it.

use std::collections::HashMap;
use std::time::Instant;

use deltasync_wire::Expect;

use super::plan::{Area, Plan, Record, Side, Step};
use super::{RunOptions, SyncSummary};
use crate::client::Agent;
use crate::copy::execute::{ExecOptions, execute};
use crate::copy::{Action, CopySummary, Event, Reporter};
use crate::error::DriverError;
use crate::path::RelPath;
use crate::state::StateDb;

/// Applies `plan`; returns which sides were changed.
#[allow(clippy::too_many_arguments)]
pub(super) fn apply(
    plan: &Plan,
    a: &Agent,
    b: &Agent,
    db: &mut StateDb,
    summary: &mut SyncSummary,
    reporter: &mut dyn Reporter,
    deadline: Option<Instant>,
    o: &RunOptions,
) -> Result<[bool; 2], DriverError> {
    let mut changed = [false, false];
    // Changes with no steps touch no file: record them in one batch.
    db.batch(|db| {
        for c in plan.changes.iter().filter(|c| c.steps.is_empty()) {
            commit(db, &c.records, &HashMap::new())?;
        }
        Ok(())
    })?;

    let mut t = Tracker {
        remaining: plan.changes.iter().map(|c| c.steps.len()).collect(),
        failed: vec![false; plan.changes.len()],
        hashes: HashMap::new(),
        plan,
        db,
        summary,
        reporter,
        commits: 0,
        limit: o.commit_limit,
        map: Vec::new(),
    };
    for phase in [1, 2] {
        for side in [Side::B, Side::A] {
            let (actions, map) = actions_for(plan, side, phase);
            if actions.is_empty() {
                continue;
            }
            changed[if side == Side::A { 0 } else { 1 }] = true;
            let (src, dst) = if side == Side::B { (a, b) } else { (b, a) };
            t.map = map;
            let copy_plan = crate::copy::Plan {
                actions,
                total_size: 0,
                files: 0,
            };
            let mut scratch = CopySummary::default();
            let eo = ExecOptions {
                whole_file: false,
                window: o.window,
                deadline,
            };
            execute(&copy_plan, src, dst, &eo, &mut scratch, &mut t)?;
            t.summary.literal += scratch.literal;
            t.summary.matched += scratch.matched;
        }
    }
    if let Some(limit) = o.commit_limit {
        if t.commits >= limit {
            return Err(DriverError::Startup(format!(
                "simulated crash after {limit} state commits"
            )));
        }
    }
    Ok(changed)
}

/// The copy actions of `phase` on `side`, and for each its change's index.
///
/// Phase 1 is moves, then stashes and removals; phase 2 the rest, ending
/// with the removal of emptied directories (`--empty-dirs remove`),
/// deepest first. Moves go first because a file may be moved out of a
/// directory that is then stashed as a whole (a renamed folder leaves its
/// old one empty).
fn actions_for(plan: &Plan, side: Side, phase: u8) -> (Vec<Action>, Vec<(usize, usize)>) {
    let rank = |step: &Step| match step {
        Step::Move { .. } => 0,
        Step::Remove {
            expect: Expect::EmptyDir,
            ..
        } => 3,
        Step::Stash { .. } | Step::Remove { .. } => 1,
        _ => 2,
    };
    let wanted: &[u8] = if phase == 1 { &[0, 1] } else { &[2, 3] };
    let mut actions = Vec::new();
    let mut map = Vec::new();
    for &r in wanted {
        let mut picked = Vec::new();
        for (ci, c) in plan.changes.iter().enumerate() {
            for (si, step) in c.steps.iter().enumerate() {
                if step.side() == side && rank(step) == r {
                    picked.push((ci, si));
                }
            }
        }
        if r == 3 {
            picked.reverse(); // changes run parents first; emptied directories go children first
        }
        for (ci, si) in picked {
            actions.push(to_action(&plan.changes[ci].steps[si]));
            map.push((ci, si));
        }
    }
    (actions, map)
}

fn to_action(step: &Step) -> Action {
    match step {
        Step::Move {
            from, to, expect, ..
        } => Action::Move {
            from: from.clone(),
            to: to.clone(),
            expect: *expect,
        },
        Step::Stash {
            path,
            area,
            link,
            expect,
            ..
        } => {
            let area = match (area, link) {
                (Area::Deleted, _) => 0,
                (Area::Conflicts, false) => 1,
                (Area::Conflicts, true) => 2,
            };
            Action::Stash {
                path: path.clone(),
                area,
                expect: *expect,
            }
        }
        Step::Remove { path, expect, .. } => Action::Delete {
            path: path.clone(),
            kind: deltasync_wire::EntryKind::File,
            expect: *expect,
        },
        Step::Mkdir { path, mode, .. } => Action::Mkdir {
            path: path.clone(),
            mode: *mode,
        },
        Step::Copy {
            src,
            path,
            size,
            expect,
            ..
        } => Action::Transfer {
            src: src.clone(),
            path: path.clone(),
            size: *size,
            code: String::new(),
            expect: *expect,
        },
        Step::Symlink {
            path,
            target,
            mtime_ns,
            ..
        } => Action::Symlink {
            path: path.clone(),
            target: target.clone(),
            mtime_ns: *mtime_ns,
            code: String::new(),
        },
        // A directory's mtime waits until its contents are written (an
        // empty code tells the executor so).
        Step::SetAttr {
            path,
            mode,
            mtime_ns,
            dir,
            expect,
            ..
        } => Action::SetAttr {
            path: path.clone(),
            mode: *mode,
            mtime_ns: *mtime_ns,
            code: if *dir { String::new() } else { "attrs".into() },
            expect: *expect,
        },
    }
}

/// Counts each change's steps down and commits it when they are all done.
struct Tracker<'a> {
    remaining: Vec<usize>,
    failed: Vec<bool>,
    /// BLAKE3s of files written by transfers, by destination path.
    hashes: HashMap<RelPath, [u8; 32]>,
    plan: &'a Plan,
    db: &'a mut StateDb,
    summary: &'a mut SyncSummary,
    reporter: &'a mut dyn Reporter,
    commits: usize,
    limit: Option<usize>,
    /// The current phase's action index -> (change, step).
    map: Vec<(usize, usize)>,
}

impl Reporter for Tracker<'_> {
    fn event(&mut self, e: Event<'_>) {
        match e {
            Event::Applied { index, blake3 } => {
                let Some(&(ci, si)) = self.map.get(index) else {
                    return;
                };
                let step = &self.plan.changes[ci].steps[si];
                self.count(step);
                if let (Some(h), Step::Copy { path, .. }) = (blake3, step) {
                    self.hashes.insert(path.clone(), h);
                }
                self.remaining[ci] -= 1;
                if self.remaining[ci] == 0 && !self.failed[ci] {
                    self.finish(ci);
                }
            }
            Event::Failed { index, message, .. } => {
                let Some(&(ci, _)) = self.map.get(index) else {
                    return;
                };
                if !self.failed[ci] {
                    self.failed[ci] = true;
                    let c = &self.plan.changes[ci];
                    self.summary
                        .failed
                        .push(format!("{}: {message}", c.line.trim()));
                }
            }
            // Per-action lines are the copy's; the sync prints its own.
            Event::Item { .. } => {}
            other => self.reporter.event(other),
        }
    }
}

impl Tracker<'_> {
    fn count(&mut self, step: &Step) {
        match step {
            Step::Copy { to: Side::B, .. } | Step::Symlink { side: Side::B, .. } => {
                self.summary.copied_ab += 1
            }
            Step::Copy { to: Side::A, .. } | Step::Symlink { side: Side::A, .. } => {
                self.summary.copied_ba += 1
            }
            Step::Move { .. } => self.summary.moved += 1,
            Step::Stash {
                area: Area::Deleted,
                ..
            } => self.summary.soft_deleted += 1,
            Step::Remove { .. } => self.summary.deleted += 1,
            _ => {}
        }
    }

    fn finish(&mut self, ci: usize) {
        if self.limit.is_some_and(|l| self.commits >= l) {
            return; // the simulated crash: applied, never recorded
        }
        let c = &self.plan.changes[ci];
        // One transaction per change: a move's two rows land together.
        let hashes = &self.hashes;
        if let Err(e) = self.db.batch(|db| commit(db, &c.records, hashes)) {
            self.summary.failed.push(format!("{}: {e}", c.line.trim()));
            return;
        }
        self.commits += 1;
        if !c.line.is_empty() {
            self.summary.lines.push(c.line.clone());
            self.reporter.event(Event::Item {
                line: &c.line,
                path: &RelPath::root(),
            });
        }
    }
}

fn commit(
    db: &StateDb,
    records: &[Record],
    hashes: &HashMap<RelPath, [u8; 32]>,
) -> Result<(), crate::state::StateError> {
    for r in records {
        match r {
            Record::Put(p, s) => {
                let mut s = s.clone();
                if let Some(h) = hashes.get(p) {
                    s.blake3 = Some(*h);
                }
                db.put(p, &s)?;
            }
            Record::Remove(p) => db.remove(p)?,
        }
    }
    Ok(())
}
