//! The run: agents, locks, ids, listings, hashes, plan, safety stops,
//! apply, digests, retention. The order is the safety argument: nothing
//! changes on either side before every check has passed.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use deltasync_wire::{Entry, EntryKind, Message, WireError};

use super::plan::{self, Side};
use super::{SyncJob, SyncSummary, apply};
use crate::client::{self, Agent, AgentSpec, ConnectOptions};
use crate::copy::{Event, Reporter};
use crate::error::DriverError;
use crate::link::{code, hex};
use crate::location::Location;
use crate::path::RelPath;
use crate::state::{StateDb, Synced};

/// Runs a sync. The summary is returned whatever the outcome.
pub fn sync(job: &SyncJob, reporter: &mut dyn Reporter) -> (SyncSummary, Result<(), DriverError>) {
    let started = Instant::now();
    let mut summary = SyncSummary {
        dry_run: job.run.dry_run,
        ..SyncSummary::default()
    };
    let mut agents: Vec<Agent> = Vec::new();
    let mut locked = Vec::new();
    let result = run(job, reporter, &mut summary, &mut agents, &mut locked);
    for (i, a) in agents.iter().enumerate() {
        if locked.contains(&i) {
            unlock(a);
        }
    }
    let any_remote = agents.iter().any(|a| a.remote);
    for a in agents.iter().filter(|a| a.remote || !any_remote) {
        summary.sent += a.stats.sent.load(std::sync::atomic::Ordering::Relaxed);
        summary.received += a.stats.received.load(std::sync::atomic::Ordering::Relaxed);
    }
    let closed = if result.is_ok() {
        agents.into_iter().try_for_each(Agent::close)
    } else {
        agents.into_iter().for_each(Agent::kill);
        Ok(())
    };
    summary.elapsed = started.elapsed();
    let mut result = result.and(closed);
    if result.is_ok() && (!summary.failed.is_empty() || summary.conflicts_skipped > 0) {
        result = Err(DriverError::Partial {
            failed: summary.failed.len() + summary.conflicts_skipped as usize,
            vanished: 0,
        });
    }
    (summary, result)
}

/// A pair's id: the two locations, as canonical text, hashed.
pub fn pair_id(a: &Location, b: &Location) -> String {
    let h = blake3::hash(format!("{}\0{}", canonical(a), canonical(b)).as_bytes());
    hex(&h.as_bytes()[..8])
}

fn canonical(l: &Location) -> String {
    match l {
        Location::Local(p) => {
            let abs = std::fs::canonicalize(p)
                .unwrap_or_else(|_| std::path::absolute(p).unwrap_or_else(|_| p.clone()));
            abs.display().to_string()
        }
        Location::Remote(r) => format!(
            "{}@{}:{}:{}",
            r.user.as_deref().unwrap_or(""),
            r.host,
            r.port.unwrap_or(22),
            r.path
        ),
    }
}

/// The state database's path: `--state-dir`, else `A/.deltasync/state/`
/// (or B's, if only B is local; else `~/.local/state/deltasync/`).
pub fn state_path(a: &Location, b: &Location, dir: Option<&Path>) -> PathBuf {
    let file = format!("{}.sqlite", pair_id(a, b));
    if let Some(d) = dir {
        return d.join(file);
    }
    for l in [a, b] {
        if let Location::Local(p) = l {
            return p.join(".deltasync/state").join(file);
        }
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".local/state/deltasync").join(file)
}

/// `deltasync reset A B`: forgets the pair (its state database and the
/// notes each side keeps), so the next run is a first sync.
pub fn reset(
    a: &Location,
    b: &Location,
    state_dir: Option<&Path>,
    connect: &ConnectOptions,
) -> Result<PathBuf, DriverError> {
    let pair = pair_id(a, b);
    for l in [a, b] {
        let spec = AgentSpec {
            root: root_text(l),
            read_only: false,
            mkdir: false,
        };
        if let Ok(agent) = client::open(l, &spec, connect, false) {
            let _ = call(
                &agent,
                Message::Pair {
                    id: 1,
                    pair: pair.clone(),
                    set: Some(String::new()),
                },
            );
            let _ = agent.close();
        }
    }
    let path = state_path(a, b, state_dir);
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(DriverError::Io { path: p, source: e });
            }
            _ => {}
        }
    }
    Ok(path)
}

fn root_text(l: &Location) -> String {
    let t = l.path_text();
    if t.is_empty() { ".".into() } else { t }
}

/// Releases a replica's lock, whatever state the conversation is in: after
/// an error, replies to abandoned requests (listing entries, transfer
/// results) may still be queued ahead of the unlock's, so they are passed
/// over, for at most a few seconds. A lock left behind by a dead agent is
/// recovered by the next run on this host.
fn unlock(agent: &Agent) {
    const UNLOCK_ID: u64 = 900;
    if agent.out.send(Message::Unlock { id: UNLOCK_ID }).is_err() {
        return;
    }
    let until = Instant::now() + std::time::Duration::from_secs(5);
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match agent.incoming.recv_timeout(left) {
            Ok(Ok(m)) if m.id() == Some(UNLOCK_ID) => return,
            Ok(Ok(_)) => continue,
            _ => return,
        }
    }
}

/// Sends one request and waits for its reply (no other traffic is in flight).
pub(super) fn call(agent: &Agent, m: Message) -> Result<Message, DriverError> {
    agent.out.send(m).map_err(|_| {
        DriverError::Wire(WireError::Truncated {
            what: "conversation",
        })
    })?;
    match agent.incoming.recv() {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(DriverError::Wire(WireError::Truncated {
            what: "conversation",
        })),
    }
}

fn side_name(s: Side) -> &'static str {
    if s == Side::A { "A" } else { "B" }
}

fn run(
    job: &SyncJob,
    reporter: &mut dyn Reporter,
    summary: &mut SyncSummary,
    agents: &mut Vec<Agent>,
    locked: &mut Vec<usize>,
) -> Result<(), DriverError> {
    let o = &job.run;
    let started = Instant::now();
    let deadline = o.max_time.map(|d| started + d);
    let pair = pair_id(&job.a, &job.b);
    let db_path = state_path(&job.a, &job.b, o.state_dir.as_deref());
    summary.state_path = db_path.clone();
    // A dry run must not create the database; an absent one reads as empty.
    let mut db = if o.dry_run && !db_path.exists() {
        None
    } else {
        Some(StateDb::open(&db_path)?)
    };
    let known = [meta(&db, "replica_a")?, meta(&db, "replica_b")?];
    let remembers = match &db {
        Some(d) => !d.is_empty()?,
        None => false,
    };
    let first = known[0].is_none() && known[1].is_none() && !remembers;

    for l in [&job.a, &job.b] {
        let spec = AgentSpec {
            root: root_text(l),
            read_only: o.dry_run,
            mkdir: first && !o.dry_run,
        };
        agents.push(client::open(l, &spec, &job.connect, true)?);
    }

    // Replica ids: a missing root, a swapped disk or a wrong path stops here.
    let mut ids = [String::new(), String::new()];
    for (i, side) in [Side::A, Side::B].into_iter().enumerate() {
        let create = first && !o.dry_run;
        let text = match call(&agents[i], Message::ReplicaId { id: 1, create })? {
            Message::Value { text, .. } => text,
            Message::Error { message, .. } => {
                return Err(DriverError::SafetyStop(format!(
                    "replica {} ({}) cannot be read: {message}; is it missing or unmounted?",
                    side_name(side),
                    root_text(if i == 0 { &job.a } else { &job.b })
                )));
            }
            other => return Err(unexpected(other)),
        };
        match &known[i] {
            Some(k) if text.is_empty() => {
                return Err(DriverError::SafetyStop(format!(
                    "replica {} has no replica-id, but the state remembers {k}: a different or emptied disk?",
                    side_name(side)
                )));
            }
            Some(k) if *k != text => {
                return Err(DriverError::SafetyStop(format!(
                    "replica {} has replica-id {text}, but the state remembers {k}: a swapped disk or a path to the wrong folder?",
                    side_name(side)
                )));
            }
            _ => {}
        }
        ids[i] = text;
    }
    if first {
        // A side that remembers this pair means the state was lost, not that
        // this is a first sync (an unmounted disk shows an empty folder).
        for (i, side) in [Side::A, Side::B].into_iter().enumerate() {
            if let Message::Value { text, .. } = call(
                &agents[i],
                Message::Pair {
                    id: 2,
                    pair: pair.clone(),
                    set: None,
                },
            )? {
                if !text.is_empty() {
                    return Err(DriverError::SafetyStop(format!(
                        "replica {} was synced in this pair before, but the state database {} is missing; if that is intended, run `deltasync reset`",
                        side_name(side),
                        db_path.display()
                    )));
                }
            }
        }
    }

    if !o.dry_run {
        for (i, agent) in agents.iter().enumerate() {
            take_lock(agent, o.force_unlock, if i == 0 { "A" } else { "B" })?;
            locked.push(i);
        }
        if let Some(d) = &db {
            d.set_meta("replica_a", &ids[0])?;
            d.set_meta("replica_b", &ids[1])?;
        }
        if first {
            call(
                &agents[0],
                Message::Pair {
                    id: 3,
                    pair: pair.clone(),
                    set: Some(ids[1].clone()),
                },
            )?;
            call(
                &agents[1],
                Message::Pair {
                    id: 3,
                    pair: pair.clone(),
                    set: Some(ids[0].clone()),
                },
            )?;
        }
    }

    // Listings: each side in one stream, or only its digest if unchanged.
    let mut filters = o.excludes.clone();
    if o.ignore_hidden {
        filters.push(".*".into());
    }
    let use_digest = !first && !o.checksum;
    let digests = [
        if use_digest {
            meta(&db, "digest_a")?
        } else {
            None
        },
        if use_digest {
            meta(&db, "digest_b")?
        } else {
            None
        },
    ];
    for (i, d) in digests.iter().enumerate() {
        let if_digest = d.as_deref().and_then(parse_hash);
        let m = Message::List {
            id: 10,
            under: Vec::new(),
            filters: filters.clone(),
            checksum: o.checksum,
            if_digest,
        };
        agents[i].out.send(m).map_err(|_| {
            DriverError::Wire(WireError::Truncated {
                what: "conversation",
            })
        })?;
    }
    let mut listings = [HashMap::new(), HashMap::new()];
    // Each side's listing digest as read now (None: it matched the stored one).
    let mut fresh: [Option<[u8; 32]>; 2] = [None, None];
    for i in 0..2 {
        if let Some((entries, digest)) = collect_listing(&agents[i])? {
            listings[i] = entries;
            fresh[i] = Some(digest);
        }
    }
    if fresh == [None, None] {
        reporter.event(Event::Planned {
            actions: 0,
            transfers: 0,
            bytes: 0,
        });
        return finish(
            job,
            agents,
            &db,
            Digests {
                fresh,
                changed: [false, false],
                clean: true,
            },
        );
    }

    // Loaded only now: a run where both digests matched never needs it.
    let state = match &db {
        Some(d) => d.load()?,
        None => HashMap::new(),
    };
    for (i, side) in [Side::A, Side::B].into_iter().enumerate() {
        if fresh[i].is_none() {
            listings[i] = from_state(&state, side);
        }
    }

    out_of_time(deadline, o)?;
    // Hash only what needs it.
    let mut busy = BTreeSet::new();
    if !o.checksum {
        for i in 0..2 {
            let side = if i == 0 { Side::A } else { Side::B };
            let other = &listings[1 - i];
            let want = to_hash(&state, &listings[i], other, side);
            hash(&agents[i], want, &mut listings[i], &mut busy, reporter)?;
            out_of_time(deadline, o)?;
        }
    }

    let mut pl = plan::plan(&state, &listings[0], &listings[1], &job.plan);
    if !busy.is_empty() {
        pl.changes.retain(|c| !touches(c, &busy));
    }
    summary.conflicts = pl.conflicts.len() as u64;
    summary.conflicts_skipped = pl.skipped.len() as u64;
    for s in &pl.skipped {
        reporter.event(Event::Warning(s));
    }

    // Safety stops: nothing has changed yet.
    for (i, side) in [Side::A, Side::B].into_iter().enumerate() {
        let had = state.values().any(|_| true);
        if had && listings[i].is_empty() && !o.allow_empty {
            return Err(DriverError::SafetyStop(format!(
                "replica {} is empty but held files at the last sync; use --allow-empty if that is intended",
                side_name(side)
            )));
        }
        let files = listings[i]
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
        .filter_map(|s| match s {
            plan::Step::Copy { size, .. } => Some(*size),
            _ => None,
        });
    crate::copy::report_planned(reporter, pl.changes.len(), sizes);
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
    let Some(dbm) = db.as_mut() else {
        return Ok(());
    };
    let changed = apply::apply(
        &pl, &agents[0], &agents[1], dbm, summary, reporter, deadline, o,
    )
    .map_err(|e| match e {
        DriverError::TimeBudget { .. } => DriverError::TimeBudget {
            secs: o.max_time.map_or(0, |d| d.as_secs()),
        },
        other => other,
    })?;
    let clean = summary.failed.is_empty()
        && summary.conflicts_skipped == 0
        && busy.is_empty()
        && pl.held_back == 0;
    finish(
        job,
        agents,
        &db,
        Digests {
            fresh,
            changed,
            clean,
        },
    )
}

/// What [`finish`] needs to know to record listing digests.
struct Digests {
    /// Each side's digest as listed at the start (None: unchanged since stored).
    fresh: [Option<[u8; 32]>; 2],
    /// Sides this run changed.
    changed: [bool; 2],
    /// No change failed, was skipped or was left for the next run.
    clean: bool,
}

/// After a run: record each side's listing digest, and purge old stashes.
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
    agents: &[Agent],
    db: &Option<StateDb>,
    d: Digests,
) -> Result<(), DriverError> {
    let Some(db) = db.as_ref() else { return Ok(()) };
    if job.run.dry_run {
        return Ok(());
    }
    for (i, key) in ["digest_a", "digest_b"].into_iter().enumerate() {
        match d.fresh[i] {
            _ if d.changed[i] || !d.clean => db.clear_meta(key)?,
            Some(digest) => db.set_meta(key, &hex(&digest))?,
            None => {} // the stored digest matched and still holds
        }
    }
    if job.run.retention_days > 0 {
        for a in agents {
            let _ = call(
                a,
                Message::Purge {
                    id: 30,
                    days: job.run.retention_days,
                },
            )?;
        }
    }
    Ok(())
}

fn meta(db: &Option<StateDb>, key: &str) -> Result<Option<String>, DriverError> {
    match db {
        Some(d) => Ok(d.meta(key)?),
        None => Ok(None),
    }
}

fn parse_hash(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn unexpected(m: Message) -> DriverError {
    DriverError::Wire(WireError::Violation(format!("unexpected reply: {m:?}")))
}

/// Takes a replica's lock; a lock left by a dead process on this host is
/// taken over, any other is reported (unless `force`).
fn take_lock(agent: &Agent, force: bool, name: &str) -> Result<(), DriverError> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_string();
    let owner = format!(
        "host={host} pid={} started={}",
        std::process::id(),
        chrono::Local::now().to_rfc3339()
    );
    match call(
        agent,
        Message::Lock {
            id: 4,
            owner: owner.clone(),
            force,
        },
    )? {
        Message::Value { .. } => Ok(()),
        Message::Error {
            code: c, message, ..
        } if c == code::LOCKED => {
            let field = |k: &str| {
                message
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix(k))
                    .map(str::to_string)
            };
            let stale = field("host=").as_deref() == Some(host.as_str())
                && field("pid=")
                    .and_then(|p| p.parse::<u32>().ok())
                    .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
            if stale {
                match call(
                    agent,
                    Message::Lock {
                        id: 5,
                        owner,
                        force: true,
                    },
                )? {
                    Message::Value { .. } => return Ok(()),
                    other => return Err(unexpected(other)),
                }
            }
            Err(DriverError::LockHeld(format!(
                "replica {name} is locked by another run ({message}); if that run is gone, use --force-unlock"
            )))
        }
        Message::Error { message, .. } => Err(DriverError::Startup(format!(
            "cannot lock replica {name}: {message}"
        ))),
        other => Err(unexpected(other)),
    }
}

/// Receives a listing: `Some(entries)`, or `None` if the agent said the
/// digest matched.
fn collect_listing(agent: &Agent) -> Result<Option<Listing>, DriverError> {
    let mut out = HashMap::new();
    loop {
        match agent.incoming.recv() {
            Ok(Ok(Message::Entry { entry, .. })) => {
                if let Ok(p) = RelPath::parse(&entry.path) {
                    out.insert(p, entry);
                }
            }
            Ok(Ok(Message::ListEnd { digest, .. })) => return Ok(Some((out, digest))),
            Ok(Ok(Message::ListSame { .. })) => return Ok(None),
            Ok(Ok(Message::Error { message, .. })) => {
                return Err(DriverError::SafetyStop(format!(
                    "cannot list a replica: {message}"
                )));
            }
            Ok(Ok(other)) => return Err(unexpected(other)),
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Err(DriverError::Wire(WireError::Truncated { what: "listing" })),
        }
    }
}

/// A listing and the agent's digest of it.
type Listing = (HashMap<RelPath, Entry>, [u8; 32]);

/// A side's listing as the state remembers it (its digest matched).
fn from_state(state: &HashMap<RelPath, Synced>, side: Side) -> HashMap<RelPath, Entry> {
    state
        .iter()
        .map(|(p, s)| {
            let m = if side == Side::A { s.a } else { s.b };
            let e = Entry {
                path: p.as_bytes().to_vec(),
                kind: s.kind,
                size: s.size,
                mtime_ns: m.mtime_ns,
                mode: m.mode,
                target: s.target.clone(),
                blake3: None,
                ino: m.ino,
            };
            (p.clone(), e)
        })
        .collect()
}

/// Files whose BLAKE3 the plan needs: those whose size or mtime moved
/// since the state, and new ones that could equal something (a file of the
/// same size on the other side, or a vanished file: a move).
fn to_hash(
    state: &HashMap<RelPath, Synced>,
    mine: &HashMap<RelPath, Entry>,
    other: &HashMap<RelPath, Entry>,
    side: Side,
) -> Vec<RelPath> {
    let vanished: BTreeSet<u64> = state
        .iter()
        .filter(|(p, s)| s.kind == EntryKind::File && !mine.contains_key(*p))
        .map(|(_, s)| s.size)
        .collect();
    let mut out: Vec<RelPath> = mine
        .iter()
        .filter(|(_, e)| e.kind == EntryKind::File)
        .filter(|(p, e)| match state.get(*p) {
            Some(s) if s.kind == EntryKind::File => {
                let m = if side == Side::A { s.a } else { s.b };
                !(e.size == s.size && e.mtime_ns == m.mtime_ns && (m.ino == 0 || e.ino == m.ino))
            }
            Some(_) => other
                .get(*p)
                .is_some_and(|o| o.kind == EntryKind::File && o.size == e.size),
            None => {
                other
                    .get(*p)
                    .is_some_and(|o| o.kind == EntryKind::File && o.size == e.size)
                    || vanished.contains(&e.size)
            }
        })
        .map(|(p, _)| p.clone())
        .collect();
    out.sort();
    out
}

/// Hashes `want` on `agent`, pipelined; a file that keeps changing while
/// read is left out of this run (`busy`), never treated as deleted.
/// `--max-time` before anything changed: stop with nothing done (the
/// budget is also watched while changes are applied).
fn out_of_time(deadline: Option<Instant>, o: &super::RunOptions) -> Result<(), DriverError> {
    match deadline {
        Some(d) if Instant::now() >= d => Err(DriverError::TimeBudget {
            secs: o.max_time.map_or(0, |t| t.as_secs()),
        }),
        _ => Ok(()),
    }
}

fn hash(
    agent: &Agent,
    want: Vec<RelPath>,
    listing: &mut HashMap<RelPath, Entry>,
    busy: &mut BTreeSet<RelPath>,
    reporter: &mut dyn Reporter,
) -> Result<(), DriverError> {
    let mut todo: Vec<(RelPath, u8)> = want.into_iter().map(|p| (p, 0)).collect();
    while !todo.is_empty() {
        // Requests go out in batches, replies come back in order.
        let batch: Vec<(RelPath, u8)> = todo.drain(..todo.len().min(4096)).collect();
        for (i, (p, _)) in batch.iter().enumerate() {
            agent
                .out
                .send(Message::Hash {
                    id: i as u64,
                    path: p.as_bytes().to_vec(),
                })
                .map_err(|_| {
                    DriverError::Wire(WireError::Truncated {
                        what: "conversation",
                    })
                })?;
        }
        let mut replies: HashMap<u64, Message> = HashMap::new();
        while replies.len() < batch.len() {
            match agent.incoming.recv() {
                Ok(Ok(m)) => {
                    let id = m.id().unwrap_or(u64::MAX);
                    replies.insert(id, m);
                }
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => return Err(DriverError::Wire(WireError::Truncated { what: "hashing" })),
            }
        }
        for (i, (p, tries)) in batch.into_iter().enumerate() {
            match replies.remove(&(i as u64)) {
                Some(Message::Entry { entry, .. }) => {
                    listing.insert(p, entry);
                }
                Some(Message::Error { code: c, .. }) if c == code::CHANGED && tries < 2 => {
                    todo.push((p, tries + 1))
                }
                Some(Message::Error { code: c, .. }) if c == code::VANISHED => {
                    listing.remove(&p);
                }
                Some(Message::Error { message, .. }) => {
                    reporter.event(Event::Warning(&format!(
                        "{}: {message}; left for the next run",
                        p.display()
                    )));
                    busy.insert(p);
                }
                _ => {
                    busy.insert(p);
                }
            }
        }
    }
    Ok(())
}

/// True if a change involves a path that is being written right now.
fn touches(c: &plan::Change, busy: &BTreeSet<RelPath>) -> bool {
    c.records.iter().any(|r| match r {
        plan::Record::Put(p, _) | plan::Record::Remove(p) => {
            busy.iter().any(|b| b.starts_with(p) || p.starts_with(b))
        }
    })
}
