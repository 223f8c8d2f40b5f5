//! The run, as named phases. The order is the safety argument: nothing
//! changes on either side before every check has passed.
//!
//! 1. [`open_state`]: the pair's state database (none yet for a dry run);
//! 2. [`start_agents`]: one agent per side;
//! 3. [`check_replicas`]: replica ids and pair notes (a swapped disk, a
//!    missing root or a lost database stops here);
//! 4. [`take_locks`];
//! 5. [`read_sides`]: both listings (or their digests), the journal of a
//!    killed run settled, and the hashes the plan needs;
//! 6. [`plan_and_check`]: the pure plan, then the safety stops;
//! 7. [`apply`](super::apply::apply), or the dry run's lines;
//! 8. [`finish`]: listing digests and retention.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use deltasync_wire::{Entry, EntryKind, ListWants, Request};

use super::pair::{pair_id, root_text, state_path};
use super::plan::{self, Side};
use super::replicas::{self, Listing, side_name};
use super::{RunOptions, SyncJob, SyncSummary, apply, space};
use crate::client::{self, Agent, AgentSpec};
use crate::copy::{Event, Reporter};
use crate::error::DriverError;
use crate::link::hex;
use crate::path::RelPath;
use crate::state::{StateDb, Synced};

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
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("pair", &self.pair.id)
            .finish()
    }
}

impl Session {
    /// Phases 1 to 4: the state, the agents, the replica checks, the locks.
    pub fn open(job: &SyncJob) -> Result<Session, DriverError> {
        let mut session = Session {
            pair: open_state(job)?,
            agents: Vec::new(),
            locked: false,
        };
        match session.start(job) {
            Ok(()) => Ok(session),
            Err(e) => {
                let _ = session.close(false, &mut SyncSummary::default());
                Err(e)
            }
        }
    }

    fn start(&mut self, job: &SyncJob) -> Result<(), DriverError> {
        start_agents(job, &self.pair, &mut self.agents)?;
        let sides = self.sides();
        let ids = check_replicas(job, &self.pair, sides)?;
        if !job.run.dry_run {
            take_locks(job, &self.pair, sides, ids)?;
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
        let sides = [&self.agents[0], &self.agents[1]];
        let pair = &mut self.pair;
        // After a kill, only a full pass may settle the journal.
        let scope = match (scope, &pair.db) {
            (Scope::Paths(_), Some(d)) if !d.intents()?.is_empty() => &Scope::Full,
            _ => scope,
        };
        let read = match scope {
            Scope::Full => read_sides(job, pair, sides, deadline, reporter, summary)?,
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
                replicas::unlock(a);
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
    if pl.changes.iter().any(|c| !c.steps.is_empty()) {
        // A stored digest says "a listing with this digest is what the
        // state records". The first change to a file breaks that, and a
        // run killed after it never reaches `finish`: forget them now, so
        // the next run lists both sides in full instead of trusting the
        // state. (State-only changes, such as learned inodes, keep it.)
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

/// What the phases learn about the pair before they read the replicas.
struct Pair {
    id: String,
    db: Option<StateDb>,
    db_path: PathBuf,
    /// No state and no replica id remembered: this is the first sync.
    first: bool,
}

/// Phase 1. A dry run must not create the database; an absent one reads
/// as empty.
fn open_state(job: &SyncJob) -> Result<Pair, DriverError> {
    let o = &job.run;
    let db_path = state_path(&job.a, &job.b, o.state_dir.as_deref());
    let db = if o.dry_run && !db_path.exists() {
        None
    } else {
        Some(StateDb::open(&db_path)?)
    };
    let remembers = match &db {
        Some(d) => {
            !d.is_empty()? || d.meta("replica_a")?.is_some() || d.meta("replica_b")?.is_some()
        }
        None => false,
    };
    Ok(Pair {
        id: pair_id(&job.a, &job.b),
        db,
        db_path,
        first: !remembers,
    })
}

/// Phase 2.
fn start_agents(job: &SyncJob, pair: &Pair, agents: &mut Vec<Agent>) -> Result<(), DriverError> {
    for l in [&job.a, &job.b] {
        let spec = AgentSpec {
            root: root_text(l),
            read_only: job.run.dry_run,
            mkdir: pair.first && !job.run.dry_run,
        };
        agents.push(client::open(l, &spec, &job.connect, true)?);
    }
    Ok(())
}

fn both() -> [(usize, Side); 2] {
    [(0, Side::A), (1, Side::B)]
}

/// Phase 3: a missing root, a swapped disk, a wrong path or a lost state
/// database stops here.
fn check_replicas(
    job: &SyncJob,
    pair: &Pair,
    agents: [&Agent; 2],
) -> Result<[String; 2], DriverError> {
    let create = pair.first && !job.run.dry_run;
    let mut ids = [String::new(), String::new()];
    for (i, side) in both() {
        let root = root_text(if i == 0 { &job.a } else { &job.b });
        let id = replicas::replica_id(agents[i], create, side, &root)?;
        let key = if i == 0 { "replica_a" } else { "replica_b" };
        let known = match &pair.db {
            Some(d) => d.meta(key)?,
            None => None,
        };
        match known {
            Some(k) if id.is_empty() => {
                return Err(DriverError::SafetyStop(format!(
                    "replica {} has no replica-id, but the state remembers {k}: a different or emptied disk?",
                    side_name(side)
                )));
            }
            Some(k) if k != id => {
                return Err(DriverError::SafetyStop(format!(
                    "replica {} has replica-id {id}, but the state remembers {k}: a swapped disk or a path to the wrong folder?",
                    side_name(side)
                )));
            }
            _ => {}
        }
        // A side that remembers this pair means the state was lost, not
        // that this is a first sync (an unmounted disk shows an empty folder).
        if pair.first && !replicas::pair_note(agents[i], &pair.id, None)?.is_empty() {
            return Err(DriverError::SafetyStop(format!(
                "replica {} was synced in this pair before, but the state database {} is missing; if that is intended, run `deltasync reset`",
                side_name(side),
                pair.db_path.display()
            )));
        }
        ids[i] = id;
    }
    Ok(ids)
}

/// Phase 4: both locks, then the ids and notes that say "synced before".
fn take_locks(
    job: &SyncJob,
    pair: &Pair,
    agents: [&Agent; 2],
    ids: [String; 2],
) -> Result<(), DriverError> {
    for (i, side) in both() {
        replicas::lock(agents[i], job.run.force_unlock, side)?;
    }
    if let Some(d) = &pair.db {
        d.set_meta("replica_a", &ids[0])?;
        d.set_meta("replica_b", &ids[1])?;
    }
    if pair.first {
        replicas::pair_note(agents[0], &pair.id, Some(ids[1].clone()))?;
        replicas::pair_note(agents[1], &pair.id, Some(ids[0].clone()))?;
    }
    Ok(())
}

/// What phase 5 read.
struct Read {
    state: HashMap<RelPath, Synced>,
    listings: [HashMap<RelPath, Entry>; 2],
    /// Each side's digest as listed (None: unchanged since stored).
    fresh: [Option<[u8; 32]>; 2],
    /// Paths left for the next run: unreadable folders, files that kept
    /// changing while hashed.
    busy: BTreeSet<RelPath>,
    /// Paths a killed run's journal left unsure: what a change to them
    /// overwrites is kept (`plan::keep_unsure`).
    unsure: BTreeSet<RelPath>,
}

/// The listing filters (with `--ignore-hidden`) and what each entry reports.
pub(crate) fn what_to_list(job: &SyncJob) -> (Vec<String>, ListWants) {
    let o = &job.run;
    let mut filters = o.excludes.clone();
    if o.ignore_hidden {
        filters.push(".*".into());
    }
    let wants = ListWants {
        checksum: o.checksum,
        owner: job.plan.owner,
        hard_links: job.plan.hard_links,
        xattrs: job.plan.xattrs,
        acls: job.plan.xattrs,
    };
    (filters, wants)
}

/// Phase 5: the listings, the journal, the hashes. `None` when neither
/// side changed since the last clean run.
fn read_sides(
    job: &SyncJob,
    pair: &mut Pair,
    agents: [&Agent; 2],
    deadline: Option<Instant>,
    reporter: &mut dyn Reporter,
    summary: &mut SyncSummary,
) -> Result<Option<Read>, DriverError> {
    let o = &job.run;
    let (filters, wants) = what_to_list(job);
    // A killed run's journal means the stored digests may hide its work.
    let journal = match &pair.db {
        Some(d) => !d.intents()?.is_empty(),
        None => false,
    };
    let mut listed: [Listing; 2] = Default::default();
    for (i, side) in both() {
        let stored = match (&pair.db, journal) {
            (Some(d), false) => d
                .meta(if i == 0 { "digest_a" } else { "digest_b" })?
                .and_then(|t| parse_hash(&t)),
            _ => None,
        };
        listed[i] = replicas::list(agents[i], &filters, wants, stored, side, reporter)?;
    }
    let fresh = [listed[0].digest, listed[1].digest];
    if fresh == [None, None] {
        return Ok(None);
    }
    // Loaded only now: a run where both digests matched never needs it.
    let state = match &pair.db {
        Some(d) => d.load()?,
        None => HashMap::new(),
    };
    let mut busy = BTreeSet::new();
    let [la, lb] = listed;
    let mut listings = [la.entries, lb.entries];
    for (i, (side, unreadable)) in [(Side::A, la.unreadable), (Side::B, lb.unreadable)]
        .into_iter()
        .enumerate()
    {
        if fresh[i].is_none() {
            listings[i] = replicas::from_state(&state, side, &RelPath::root()).collect();
        }
        replicas::keep_unread(
            unreadable,
            side,
            &state,
            &mut listings[i],
            &mut busy,
            &mut summary.failed,
            reporter,
        );
    }
    if let Some(db) = pair.db.as_mut().filter(|_| journal && !o.dry_run) {
        let (adopted, unsure) = db.settle(&listings[0], &listings[1])?;
        if adopted > 0 {
            // What the killed run did is now recorded: plan against that.
            let read = read_again(job, pair, listings, fresh, busy, deadline, agents, reporter)?;
            return Ok(read.map(|r| Read { unsure, ..r }));
        }
    }
    read_hashes(
        job, agents, state, listings, fresh, busy, deadline, reporter,
    )
}

/// The state changed under phase 5 (a journal was settled): load it again.
#[allow(clippy::too_many_arguments)]
fn read_again(
    job: &SyncJob,
    pair: &mut Pair,
    listings: [HashMap<RelPath, Entry>; 2],
    fresh: [Option<[u8; 32]>; 2],
    busy: BTreeSet<RelPath>,
    deadline: Option<Instant>,
    agents: [&Agent; 2],
    reporter: &mut dyn Reporter,
) -> Result<Option<Read>, DriverError> {
    let state = match &pair.db {
        Some(d) => d.load()?,
        None => HashMap::new(),
    };
    read_hashes(
        job, agents, state, listings, fresh, busy, deadline, reporter,
    )
}

#[allow(clippy::too_many_arguments)]
fn read_hashes(
    job: &SyncJob,
    agents: [&Agent; 2],
    state: HashMap<RelPath, Synced>,
    mut listings: [HashMap<RelPath, Entry>; 2],
    fresh: [Option<[u8; 32]>; 2],
    mut busy: BTreeSet<RelPath>,
    deadline: Option<Instant>,
    reporter: &mut dyn Reporter,
) -> Result<Option<Read>, DriverError> {
    out_of_time(deadline, &job.run)?;
    if !job.run.checksum {
        for (i, side) in both() {
            let want = replicas::to_hash(&state, &listings[i], &listings[1 - i], side);
            replicas::hash(agents[i], want, &mut listings[i], &mut busy, reporter)?;
            out_of_time(deadline, &job.run)?;
        }
    }
    Ok(Some(Read {
        state,
        listings,
        fresh,
        busy,
        unsure: BTreeSet::new(),
    }))
}

/// Phase 6: the plan, less what touches busy paths, then the safety stops.
fn plan_and_check(
    job: &SyncJob,
    read: &Read,
    reporter: &mut dyn Reporter,
    summary: &mut SyncSummary,
) -> Result<plan::Plan, DriverError> {
    let o = &job.run;
    let [a, b] = &read.listings;
    let mut pl = plan::plan(&read.state, a, b, &job.plan);
    plan::keep_unsure(&mut pl, &read.unsure);
    if !read.busy.is_empty() {
        pl.changes.retain(|c| !touches(c, &read.busy));
        plan::count_deletions(&mut pl, a, b);
    }
    summary.conflicts = pl.conflicts.len() as u64;
    summary.conflicts_skipped = pl.skipped.len() as u64;
    for s in &pl.skipped {
        reporter.event(Event::Warning(s));
    }
    let had = !read.state.is_empty();
    for (i, side) in both() {
        if had && read.listings[i].is_empty() && !o.allow_empty {
            return Err(DriverError::SafetyStop(format!(
                "replica {} is empty but held files at the last sync; use --allow-empty if that is intended",
                side_name(side)
            )));
        }
        let files = read.listings[i]
            .values()
            .filter(|e| e.kind == EntryKind::File)
            .count() as u64;
        let lose = pl.deleted_files[i];
        if lose > 0 && !o.force && lose * 100 > u64::from(o.max_delete_pct) * files.max(1) {
            return Err(DriverError::SafetyStop(format!(
                "replica {} would lose {lose} of its {files} files, over --max-delete {}%; use --force if that is intended",
                side_name(side),
                o.max_delete_pct
            )));
        }
    }
    let sizes = pl
        .changes
        .iter()
        .flat_map(|c| c.steps.iter())
        .filter_map(|s| match &s.op {
            crate::exec::Op::Transfer { size, .. } => Some(*size),
            _ => None,
        });
    crate::copy::report_planned(reporter, pl.changes.len(), sizes);
    Ok(pl)
}

/// Phase 8: record each side's listing digest, and purge old stashes.
///
/// A stored digest lets the next run skip a side's listing when the agent's
/// digest still matches, so it must describe exactly what the state now
/// records for that side. That holds for the listing read at the start,
/// when this run changed nothing on the side and left nothing undone: the
/// state then records that listing. Otherwise the digest is dropped and the
/// next run lists the side in full. A digest taken after applying would
/// race with a user's edit made meanwhile, which the state has not seen;
/// that edit would then hide behind a matching digest.
fn finish(
    job: &SyncJob,
    agents: [&Agent; 2],
    pair: &Pair,
    fresh: [Option<[u8; 32]>; 2],
    changed: [bool; 2],
    clean: bool,
) -> Result<(), DriverError> {
    let Some(db) = pair.db.as_ref() else {
        return Ok(());
    };
    if job.run.dry_run {
        return Ok(());
    }
    for (i, key) in ["digest_a", "digest_b"].into_iter().enumerate() {
        match fresh[i] {
            _ if changed[i] || !clean => db.clear_meta(key)?,
            Some(digest) => db.set_meta(key, &hex(&digest))?,
            None => {} // the stored digest matched and still holds
        }
    }
    if job.run.retention_days > 0 {
        for a in agents {
            a.call(Request::Purge {
                days: job.run.retention_days,
            })?;
        }
    }
    Ok(())
}

fn parse_hash(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// `--max-time` before anything changed: stop with nothing done (the
/// budget is also watched while changes are applied).
fn out_of_time(deadline: Option<Instant>, o: &RunOptions) -> Result<(), DriverError> {
    match deadline {
        Some(d) if Instant::now() >= d => Err(DriverError::TimeBudget {
            secs: o.max_time.map_or(0, |t| t.as_secs()),
        }),
        _ => Ok(()),
    }
}

/// True if a change involves a path that is being written right now, or
/// lies in a folder that could not be read.
fn touches(c: &plan::Change, busy: &BTreeSet<RelPath>) -> bool {
    let near = |p: &RelPath| busy.iter().any(|b| b.starts_with(p) || p.starts_with(b));
    c.records.iter().any(|r| match r {
        plan::Record::Put(p, _) | plan::Record::Remove(p) => near(p),
    }) || c.steps.iter().any(|s| near(s.op.path()))
}
