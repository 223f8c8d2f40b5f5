//! A sync session: phases 1–4 of [`run`](super::run) once (state, agents,
//! replica checks, locks), then any number of passes (phases 5–8) over
//! everything or over some paths, then the locks released. A plain
//! [`sync`] is one full pass; `deltasync watch` keeps a session for its
//! whole life.

use std::collections::BTreeSet;
use std::time::Instant;

use super::run::{
    Pair, Pending, Read, breaks_digests, check_replicas, finish, open_state, plan_and_check,
    read_hashes, read_sides, remembered_ids, start_agents, take_locks,
};
use super::{SyncJob, SyncSummary, apply, replicas, space, state_path};
use crate::client::Agent;
use crate::copy::{Event, Reporter};
use crate::error::DriverError;
use crate::path::RelPath;

/// Runs a sync. The summary is returned whatever the outcome.
pub fn sync(job: &SyncJob, reporter: &mut dyn Reporter) -> (SyncSummary, Result<(), DriverError>) {
    let started = Instant::now();
    let mut summary = SyncSummary {
        dry_run: job.run.dry_run,
        state_path: state_path(&job.a, &job.b, job.run.state_dir.as_deref()),
        ..SyncSummary::default()
    };
    let result = match Session::open(job) {
        Ok(mut session) => {
            let result = session.pass(job, &Scope::Full, reporter, &mut summary);
            let closed = session.close(result.is_ok(), &mut summary);
            result.and(closed)
        }
        Err(e) => Err(e),
    };
    summary.elapsed = started.elapsed();
    let result = partial(result, &summary);
    (summary, result)
}

/// A run that went through but left files or conflicts undone is partial.
pub(crate) fn partial(
    result: Result<(), DriverError>,
    summary: &SyncSummary,
) -> Result<(), DriverError> {
    if result.is_ok() && (!summary.failed.is_empty() || summary.conflicts_skipped > 0) {
        return Err(DriverError::Partial {
            failed: summary.failed.len() + summary.conflicts_skipped as usize,
            vanished: 0,
        });
    }
    result
}

/// What a pass looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Both replicas, whole (or their digests, when unchanged).
    Full,
    /// Only these paths and what lies beneath them, on both sides; the
    /// rest is taken as the state records it (a watch's changes).
    Paths(BTreeSet<RelPath>),
}

/// An open pair: its state, an agent on each side, and (unless a dry run)
/// both locks, held until [`Session::close`]. A plain sync runs one full
/// pass on it; a watch runs many.
pub struct Session {
    pair: Pair,
    agents: Vec<Agent>,
    locked: bool,
    /// Listings asked for behind the locks, for the first full pass.
    pending: Option<Pending>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("pair", &self.pair.id)
            .finish()
    }
}

impl Session {
    /// Phases 1 to 4: the state, the agents, the replica checks, the locks,
    /// with the first pass's listings asked for right behind the locks.
    pub fn open(job: &SyncJob) -> Result<Session, DriverError> {
        Session::open_with(job, true)
    }

    /// [`Session::open`] for a watch, which must start watching before its
    /// first full listing (a change made after a folder was listed would
    /// otherwise be seen by neither): no listing asked ahead.
    pub fn open_watching(job: &SyncJob) -> Result<Session, DriverError> {
        Session::open_with(job, false)
    }

    fn open_with(job: &SyncJob, list_ahead: bool) -> Result<Session, DriverError> {
        let mut session = Session {
            pair: open_state(job)?,
            agents: Vec::new(),
            locked: false,
            pending: None,
        };
        match session.start(job, list_ahead) {
            Ok(()) => Ok(session),
            Err(e) => {
                let _ = session.close(false, &mut SyncSummary::default());
                Err(e)
            }
        }
    }

    fn start(&mut self, job: &SyncJob, list_ahead: bool) -> Result<(), DriverError> {
        start_agents(job, &self.pair, &mut self.agents)?;
        let sides = self.sides();
        // Ids the state remembers are checked by the locks, a round trip less.
        let remembered = remembered_ids(job, &self.pair)?;
        let checked = remembered.is_some();
        let ids = match remembered {
            Some(ids) => ids,
            None => check_replicas(job, &self.pair, sides)?,
        };
        if !job.run.dry_run {
            self.pending = take_locks(job, &self.pair, sides, ids, checked, list_ahead)?;
            self.locked = true;
        }
        Ok(())
    }

    /// The agents, A then B.
    pub fn sides(&self) -> [&Agent; 2] {
        [&self.agents[0], &self.agents[1]]
    }

    /// Phases 5 to 8 over `scope`: read, plan, check, apply, finish.
    pub fn pass(
        &mut self,
        job: &SyncJob,
        scope: &Scope,
        reporter: &mut dyn Reporter,
        summary: &mut SyncSummary,
    ) -> Result<(), DriverError> {
        let deadline = job.run.max_time.map(|d| Instant::now() + d);
        // Only the first pass may use the listings asked for at the start;
        // a first pass over some paths leaves them unread (passed over).
        let pending = self.pending.take();
        let sides = [&self.agents[0], &self.agents[1]];
        let pair = &mut self.pair;
        // After a kill, only a full pass may settle the journal.
        let scope = match (scope, &pair.db) {
            (Scope::Paths(_), Some(d)) if !d.intents()?.is_empty() => &Scope::Full,
            _ => scope,
        };
        let read = match scope {
            Scope::Full => read_sides(job, pair, sides, pending, deadline, reporter, summary)?,
            Scope::Paths(paths) => {
                match super::scoped::read(job, pair.db.as_ref(), sides, paths, reporter, summary)? {
                    Some((state, listings, busy)) => read_hashes(
                        job,
                        sides,
                        state,
                        listings,
                        [None, None],
                        busy,
                        deadline,
                        reporter,
                    )?,
                    None => None,
                }
            }
        };
        let Some(read) = read else {
            reporter.event(Event::Planned {
                actions: 0,
                transfers: 0,
                bytes: 0,
            });
            return match scope {
                Scope::Full => finish(job, sides, pair, [None, None], [false, false], true),
                Scope::Paths(_) => Ok(()),
            };
        };
        apply_pass(job, scope, sides, pair, read, deadline, reporter, summary)
    }

    /// Ends a session whose link is gone: no goodbyes, which would only
    /// wait; each agent's lock goes with it.
    pub fn abandon(self) {
        self.agents.into_iter().for_each(Agent::kill);
    }

    /// Releases the locks and ends the agents (politely when `ok`), adding
    /// the bytes they moved to `summary`.
    pub fn close(self, ok: bool, summary: &mut SyncSummary) -> Result<(), DriverError> {
        if self.locked {
            for a in &self.agents {
                if ok {
                    // The agent unlocks before it reads the goodbye that
                    // follows, so waiting would only cost a round trip.
                    let _ = a.start(deltasync_wire::Request::Unlock);
                } else {
                    replicas::unlock(a);
                }
            }
        }
        let any_remote = self.agents.iter().any(|a| a.remote);
        for a in self.agents.iter().filter(|a| a.remote || !any_remote) {
            summary.sent += a.stats.sent.load(std::sync::atomic::Ordering::Relaxed);
            summary.received += a.stats.received.load(std::sync::atomic::Ordering::Relaxed);
        }
        if ok {
            self.agents.into_iter().try_for_each(Agent::close)
        } else {
            self.agents.into_iter().for_each(Agent::kill);
            Ok(())
        }
    }
}

/// Phases 6 to 8 on what a pass read.
#[allow(clippy::too_many_arguments)]
fn apply_pass(
    job: &SyncJob,
    scope: &Scope,
    sides: [&Agent; 2],
    pair: &mut Pair,
    read: Read,
    deadline: Option<Instant>,
    reporter: &mut dyn Reporter,
    summary: &mut SyncSummary,
) -> Result<(), DriverError> {
    let o = &job.run;
    let pl = plan_and_check(job, &read, reporter, summary)?;
    if o.dry_run {
        for c in pl.changes.iter().filter(|c| !c.line.is_empty()) {
            summary.lines.push(c.line.clone());
            reporter.event(Event::Item {
                line: &c.line,
                path: &RelPath::root(),
            });
        }
        return Ok(());
    }
    if let Some(min) = o.min_free {
        space::check(&pl, sides, min)?;
    }
    let Some(db) = pair.db.as_mut() else {
        return Ok(());
    };
    if breaks_digests(&pl, &read) {
        // A stored digest says "a listing with this digest is what the
        // state records". The first change to a file breaks that, and so
        // does recording a path anew (the same file made on both sides):
        // a run killed after it never reaches `finish`, and a side edited
        // back to its old listing would answer `ListSame` and be read from
        // a state that no longer matches it. Forget them now, so the next
        // run lists both sides in full instead of trusting the state.
        // (State-only learning, such as inodes and hashes, keeps them.)
        db.clear_meta("digest_a")?;
        db.clear_meta("digest_b")?;
    }
    let changed =
        apply::apply(&pl, sides, db, summary, reporter, deadline, o).map_err(|e| match e {
            DriverError::TimeBudget { .. } => DriverError::TimeBudget {
                secs: o.max_time.map_or(0, |d| d.as_secs()),
            },
            other => other,
        })?;
    let clean = summary.failed.is_empty()
        && summary.conflicts_skipped == 0
        && read.busy.is_empty()
        && pl.held_back == 0;
    // A pass over some paths saw neither side whole: what it changed drops
    // both stored digests, so the next full pass lists both.
    let changed = match scope {
        Scope::Paths(_) if !pl.changes.is_empty() => [true, true],
        _ => changed,
    };
    finish(job, sides, pair, read.fresh, changed, clean)
}
