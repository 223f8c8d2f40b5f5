//! Carrying out a sync plan through the shared executor.
//!
//! Each change's steps go to the side they change, in two phases: first
//! moves, stashes and removals (so a conflict loser is kept, and a renamed
//! file is in place, before anything is written over it or copied from
//! it), then creations and transfers. Phases run A→B then B→A.
//!
//! Before anything changes, every change's records go to the state's
//! journal as intents. A change's records are committed (and its intents
//! cleared) once its last step succeeds: when the executor next waits, in
//! one transaction with every other change that ended since, with
//! what the executor reports (a transfer records the file as it was sent,
//! not as it was listed). A change with a failed step records nothing: the
//! next run sees the same difference again and retries, or sees it done on
//! both sides and just records it. A kill in between leaves intents, which
//! the next run settles (`StateDb::settle`).

use std::collections::HashMap;
use std::time::Instant;

use deltasync_wire::Expect;

use super::plan::{Plan, Record, Side, Step};
use super::{RunOptions, SyncSummary};
use crate::client::Agent;
use crate::copy::{Event, Reporter};
use crate::error::DriverError;
use crate::exec::{ExecOptions, Observer, Op, Outcome, Sent, execute};
use crate::path::RelPath;
use crate::state::{Intent, IntentRecord, SideMeta, StateDb, StateError};

/// Applies `plan`; returns which sides were changed.
pub(super) fn apply(
    plan: &Plan,
    agents: [&Agent; 2],
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
    db.write_intents(&intents(plan))?;

    let mut t = Tracker {
        remaining: plan.changes.iter().map(|c| c.steps.len()).collect(),
        failed: vec![false; plan.changes.len()],
        sent: HashMap::new(),
        plan,
        db,
        summary,
        reporter,
        commits: 0,
        limit: o.commit_limit,
        map: Vec::new(),
        ready: Vec::new(),
    };
    for phase in [1, 2] {
        for side in [Side::B, Side::A] {
            let (ops, map) = ops_for(plan, side, phase);
            if ops.is_empty() {
                continue;
            }
            changed[if side == Side::A { 0 } else { 1 }] = true;
            let (src, dst) = if side == Side::B {
                (agents[0], agents[1])
            } else {
                (agents[1], agents[0])
            };
            t.map = map;
            let eo = ExecOptions {
                window: o.window,
                deadline,
                sparse: o.sparse,
                stop: o.stop.clone(),
                ..ExecOptions::default()
            };
            execute(&ops, src, dst, &eo, &mut t)?;
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

/// Each change's records, with the sides its steps write them on.
fn intents(plan: &Plan) -> Vec<Intent> {
    let mut out = Vec::new();
    for c in plan.changes.iter().filter(|c| !c.steps.is_empty()) {
        for r in &c.records {
            let mut sides = [false, false];
            for s in &c.steps {
                let touches = match (r, &s.op) {
                    (Record::Put(p, _), Op::Move { to, .. }) => to == p,
                    (Record::Put(p, _), op) => op.path() == p,
                    (Record::Remove(p), Op::Move { from, .. }) => from == p,
                    (Record::Remove(p), Op::Stash { path, .. } | Op::Remove { path, .. }) => {
                        path == p
                    }
                    (Record::Remove(_), _) => false,
                };
                if touches {
                    sides[if s.side == Side::A { 0 } else { 1 }] = true;
                }
            }
            if sides == [false, false] {
                continue; // nothing written at this path: nothing to settle
            }
            let record = match r {
                Record::Put(p, s) => IntentRecord::Put(p.clone(), s.clone()),
                Record::Remove(p) => IntentRecord::Remove(p.clone()),
            };
            out.push(Intent { record, sides });
        }
    }
    out
}

/// The ops of `phase` on `side`, and for each its change and step.
///
/// Phase 1 is moves, then stashes and removals; phase 2 the rest, ending
/// with the removal of emptied directories (`--empty-dirs remove`),
/// deepest first. Moves go first because a file may be moved out of a
/// directory that is then stashed as a whole (a renamed folder leaves its
/// old one empty).
fn ops_for(plan: &Plan, side: Side, phase: u8) -> (Vec<Op>, Vec<(usize, usize)>) {
    let rank = |step: &Step| match &step.op {
        Op::Move { .. } => 0,
        Op::Remove {
            expect: Expect::EmptyDir,
            ..
        } => 3,
        Op::Stash { .. } | Op::Remove { .. } => 1,
        _ => 2,
    };
    let wanted: &[u8] = if phase == 1 { &[0, 1] } else { &[2, 3] };
    let mut ops = Vec::new();
    let mut map = Vec::new();
    for &r in wanted {
        let mut picked = Vec::new();
        for (ci, c) in plan.changes.iter().enumerate() {
            for (si, step) in c.steps.iter().enumerate() {
                if step.side == side && rank(step) == r {
                    picked.push((ci, si));
                }
            }
        }
        if r == 3 {
            picked.reverse(); // changes run parents first; emptied directories go children first
        }
        for (ci, si) in picked {
            ops.push(plan.changes[ci].steps[si].op.clone());
            map.push((ci, si));
        }
    }
    (ops, map)
}

/// Finished changes recorded in one transaction at most (and at least, when
/// the executor does not wait in between).
const FLUSH_AT: usize = 512;

/// Counts each change's steps down and commits it when they are all done.
struct Tracker<'a> {
    remaining: Vec<usize>,
    failed: Vec<bool>,
    /// What transfers sent, by destination path.
    sent: HashMap<RelPath, (Side, Sent)>,
    plan: &'a Plan,
    db: &'a mut StateDb,
    summary: &'a mut SyncSummary,
    reporter: &'a mut dyn Reporter,
    commits: usize,
    limit: Option<usize>,
    /// The current phase's op index -> (change, step).
    map: Vec<(usize, usize)>,
    /// Changes whose steps have all ended, to record at the next idle.
    ready: Vec<usize>,
}

impl Observer for Tracker<'_> {
    fn outcome(&mut self, index: usize, _op: &Op, outcome: &Outcome) {
        let Some(&(ci, si)) = self.map.get(index) else {
            return;
        };
        let step = &self.plan.changes[ci].steps[si];
        match outcome {
            Outcome::Failed { message, .. } => {
                if !self.failed[ci] {
                    self.failed[ci] = true;
                    let c = &self.plan.changes[ci];
                    self.summary
                        .failed
                        .push(format!("{}: {message}", c.line.trim()));
                }
            }
            Outcome::Done | Outcome::Sent(_) => {
                self.count(step);
                if let Outcome::Sent(sent) = outcome {
                    self.summary.literal += sent.literal;
                    self.summary.matched += sent.matched;
                    self.sent.insert(step.op.path().clone(), (step.side, *sent));
                }
                self.remaining[ci] -= 1;
                if self.remaining[ci] == 0 && !self.failed[ci] {
                    self.ready.push(ci);
                    // While replies keep coming the executor never idles:
                    // record in bounded bursts all the same.
                    if self.ready.len() >= FLUSH_AT {
                        self.flush();
                    }
                }
            }
        }
    }

    fn progress(&mut self, path: &RelPath, done: u64, total: u64) {
        self.reporter.event(Event::Progress { path, done, total });
    }

    fn warning(&mut self, text: &str) {
        self.reporter.event(Event::Warning(text));
    }

    fn idle(&mut self) {
        self.flush();
    }
}

impl Tracker<'_> {
    fn count(&mut self, step: &Step) {
        let to_b = step.side == Side::B;
        match &step.op {
            Op::Transfer { .. } | Op::Symlink { .. } | Op::Link { .. } => {
                if to_b {
                    self.summary.copied_ab += 1
                } else {
                    self.summary.copied_ba += 1
                }
            }
            Op::Move { .. } => self.summary.moved += 1,
            Op::Stash {
                area: deltasync_wire::StashArea::Deleted,
                ..
            } => self.summary.soft_deleted += 1,
            Op::Remove { .. } => self.summary.deleted += 1,
            _ => {}
        }
    }

    /// Records the changes whose steps have all ended, in one transaction
    /// (a move's two rows always land together).
    fn flush(&mut self) {
        let mut ready = std::mem::take(&mut self.ready);
        if let Some(l) = self.limit {
            // The simulated crash: applied, never recorded.
            ready.truncate(l.saturating_sub(self.commits));
        }
        if ready.is_empty() {
            return;
        }
        let (changes, sent) = (&self.plan.changes, &self.sent);
        let recorded = self.db.batch(|db| {
            ready
                .iter()
                .try_for_each(|&ci| commit(db, &changes[ci].records, sent))
        });
        for ci in ready {
            let c = &self.plan.changes[ci];
            if let Err(e) = &recorded {
                self.summary.failed.push(format!("{}: {e}", c.line.trim()));
                continue;
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
}

/// Writes a change's records, and clears their intents. A transferred
/// file is recorded as it was sent: the source may have changed between
/// the listing and the transfer, and the destination got what was read.
fn commit(
    db: &StateDb,
    records: &[Record],
    sent: &HashMap<RelPath, (Side, Sent)>,
) -> Result<(), StateError> {
    for r in records {
        match r {
            Record::Put(p, s) => {
                let mut s = s.clone();
                if let Some((to, x)) = sent.get(p) {
                    let (from_meta, to_meta) = match to {
                        Side::B => (&mut s.a, &mut s.b),
                        Side::A => (&mut s.b, &mut s.a),
                    };
                    let same = s.size == x.stat.size && from_meta.mtime == x.stat.mtime;
                    *from_meta = SideMeta {
                        mtime: x.stat.mtime,
                        mode: x.stat.mode,
                        ino: if same { from_meta.ino } else { 0 },
                    };
                    *to_meta = SideMeta {
                        mtime: x.stat.mtime,
                        mode: x.stat.mode,
                        ino: 0,
                    };
                    s.size = x.stat.size;
                    s.blake3 = Some(x.blake3);
                }
                db.put(p, &s)?;
                db.clear_intent(p)?;
            }
            Record::Remove(p) => {
                db.remove(p)?;
                db.clear_intent(p)?;
            }
        }
    }
    Ok(())
}
