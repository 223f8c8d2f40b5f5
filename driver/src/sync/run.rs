//! The run, as named phases. The order is the safety argument: nothing
//! changes on either side before every check has passed.
//!
//! 1. [`open_state`]: the pair's state database (none yet for a dry run);
//! 2. [`start_agents`]: one agent per side;
//! 3. [`check_replicas`]: replica ids and pair notes (a swapped disk, a
//!    missing root or a lost database stops here);
//! 4. [`take_locks`]. When the state remembers both ids
//!    ([`remembered_ids`]), phase 3 is folded into this one: each agent
//!    checks its root's id before it writes its lock, and the run saves a
//!    round trip;
//! 5. [`read_sides`]: both listings (or their digests), the journal of a
//!    killed run settled, and the hashes the plan needs;
//! 6. [`plan_and_check`]: the pure plan, then the safety stops;
//! 7. [`apply`](super::apply::apply), or the dry run's lines;
//! 8. [`finish`]: listing digests and retention.
//!
//! [`Session`](super::session::Session) runs phases 1–4 once and 5–8 per
//! pass.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use deltasync_wire::{Entry, EntryKind, ListWants, Request};

use super::pair::{pair_id, root_text, state_path};
use super::plan::{self, Side};
use super::replicas::{self, Listing, side_name};
use super::{RunOptions, SyncJob, SyncSummary};
use crate::client::{self, Agent, AgentSpec};
use crate::copy::{Event, Reporter};
use crate::error::DriverError;
use crate::link::hex;
use crate::path::RelPath;
use crate::state::{SideMeta, StateDb, Synced};

/// What the phases learn about the pair before they read the replicas.
pub(super) struct Pair {
    pub(super) id: String,
    pub(super) db: Option<StateDb>,
    db_path: PathBuf,
    /// No state and no replica id remembered: this is the first sync.
    first: bool,
}

/// Phase 1. A dry run must not create the database; an absent one reads
/// as empty.
pub(super) fn open_state(job: &SyncJob) -> Result<Pair, DriverError> {
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
pub(super) fn start_agents(
    job: &SyncJob,
    pair: &Pair,
    agents: &mut Vec<Agent>,
) -> Result<(), DriverError> {
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
pub(super) fn check_replicas(
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
        if let Some(k) = known {
            if k != id {
                return Err(replicas::not_the_replica(side, &id, &k));
            }
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

/// The ids the state remembers for both sides, when the locks can check
/// them (phase 3 folded into phase 4): not on a first sync, which makes
/// the ids, nor on a dry run, which takes no lock.
pub(super) fn remembered_ids(
    job: &SyncJob,
    pair: &Pair,
) -> Result<Option<[String; 2]>, DriverError> {
    let Some(d) = pair.db.as_ref().filter(|_| !pair.first && !job.run.dry_run) else {
        return Ok(None);
    };
    Ok(match (d.meta("replica_a")?, d.meta("replica_b")?) {
        (Some(a), Some(b)) if !a.is_empty() && !b.is_empty() => Some([a, b]),
        _ => None,
    })
}

/// The listing requests a session sent right behind its locks, one per
/// side, for its first full pass to read (phase 5).
pub(super) type Pending = [u64; 2];

/// Phase 4: both locks, then the ids and notes that say "synced before".
/// With `checked`, each lock is taken only if the side's replica-id is
/// `ids`' (phase 3, done by the agent before it writes anything).
///
/// Unless this is a first sync (whose pair notes come after the locks),
/// each side's listing is asked for right behind its lock, without waiting:
/// the agent answers in order, so it lists under the lock, and the run
/// saves a round trip. A refused lock ends the run; its listing is never
/// read.
pub(super) fn take_locks(
    job: &SyncJob,
    pair: &Pair,
    agents: [&Agent; 2],
    ids: [String; 2],
    checked: bool,
    list_ahead: bool,
) -> Result<Option<Pending>, DriverError> {
    let mut locks = [0; 2];
    for (i, _) in both() {
        let replica = checked.then(|| ids[i].clone());
        locks[i] = agents[i].start(replicas::lock_request(job.run.force_unlock, replica))?;
    }
    let mut pending = if pair.first || !list_ahead {
        None
    } else {
        let (filters, wants) = what_to_list(job);
        let stored = stored_digests(pair)?;
        let mut lists = [0; 2];
        for (i, _) in both() {
            let req = replicas::list_request(&RelPath::root(), &filters, wants, stored[i]);
            lists[i] = agents[i].start(req)?;
        }
        Some((lists, stored))
    };
    for (i, side) in both() {
        let root = root_text(if i == 0 { &job.a } else { &job.b });
        let expected = checked.then(|| replicas::Expected {
            id: &ids[i],
            root: &root,
        });
        replicas::locked(agents[i].answer(locks[i])?, side, expected)?;
    }
    // A run of this pair killed between our read and our lock may have
    // left a journal: then the digests asked with are stale, and the
    // listings are asked for again (these ones' replies are passed over).
    if let Some((_, stored)) = &pending {
        if stored_digests(pair)? != *stored {
            pending = None;
        }
    }
    let pending = pending.map(|(lists, _)| lists);
    if let Some(d) = &pair.db {
        d.set_meta("replica_a", &ids[0])?;
        d.set_meta("replica_b", &ids[1])?;
    }
    if pair.first {
        replicas::pair_note(agents[0], &pair.id, Some(ids[1].clone()))?;
        replicas::pair_note(agents[1], &pair.id, Some(ids[0].clone()))?;
    }
    Ok(pending)
}

/// Each side's stored listing digest, which lets an unchanged side answer
/// in a few bytes; none after a killed run, whose journal means the
/// stored digests may hide its work.
fn stored_digests(pair: &Pair) -> Result<[Option<[u8; 32]>; 2], DriverError> {
    let Some(d) = &pair.db else {
        return Ok([None, None]);
    };
    if !d.intents()?.is_empty() {
        return Ok([None, None]);
    }
    let digest = |key| -> Result<_, DriverError> { Ok(d.meta(key)?.and_then(|t| parse_hash(&t))) };
    Ok([digest("digest_a")?, digest("digest_b")?])
}

/// What phase 5 read.
pub(super) struct Read {
    state: HashMap<RelPath, Synced>,
    listings: [HashMap<RelPath, Entry>; 2],
    /// Each side's digest as listed (None: unchanged since stored).
    pub(super) fresh: [Option<[u8; 32]>; 2],
    /// Paths left for the next run: unreadable folders, files that kept
    /// changing while hashed.
    pub(super) busy: BTreeSet<RelPath>,
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

/// Phase 5: the listings (the ones `pending` already asked for, if any),
/// the journal, the hashes. `None` when neither side changed since the
/// last clean run.
pub(super) fn read_sides(
    job: &SyncJob,
    pair: &mut Pair,
    agents: [&Agent; 2],
    pending: Option<Pending>,
    deadline: Option<Instant>,
    reporter: &mut dyn Reporter,
    summary: &mut SyncSummary,
) -> Result<Option<Read>, DriverError> {
    let o = &job.run;
    let (filters, wants) = what_to_list(job);
    let journal = match &pair.db {
        Some(d) => !d.intents()?.is_empty(),
        None => false,
    };
    let stored = stored_digests(pair)?;
    let mut listed: [Listing; 2] = Default::default();
    for (i, side) in both() {
        let root = RelPath::root();
        listed[i] = match pending {
            Some(ids) => replicas::listing(agents[i], ids[i], &root, side, reporter)?,
            None => replicas::list(agents[i], &filters, wants, stored[i], side, reporter)?,
        };
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
pub(super) fn read_hashes(
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

/// True if applying `pl` makes the state record something a stored
/// listing digest does not describe: any change with steps, or any record
/// of a path that differs from what `read` loaded other than by what a
/// run learns (inodes, a hash not known before).
pub(super) fn breaks_digests(pl: &plan::Plan, read: &Read) -> bool {
    let learned_only = |old: &Synced, new: &Synced| {
        let forget = |s: &Synced| Synced {
            blake3: None,
            a: SideMeta { ino: 0, ..s.a },
            b: SideMeta { ino: 0, ..s.b },
            ..s.clone()
        };
        forget(old) == forget(new) && (old.blake3.is_none() || old.blake3 == new.blake3)
    };
    pl.changes.iter().any(|c| {
        !c.steps.is_empty()
            || c.records.iter().any(|r| match r {
                plan::Record::Put(p, s) => {
                    read.state.get(p).is_none_or(|old| !learned_only(old, s))
                }
                plan::Record::Remove(p) => read.state.contains_key(p),
            })
    })
}

/// Phase 6: the plan, less what touches busy paths, then the safety stops.
pub(super) fn plan_and_check(
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
pub(super) fn finish(
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
        // Not waited for: what the purge says changes nothing here, and
        // on a slow link each wait is a round trip. The agent purges before
        // it takes what comes next; a later reply to it is passed over.
        for a in agents {
            a.start(Request::Purge {
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
