//! What a sync asks of its two agents before it plans: replica ids, pair
//! notes, locks, listings and hashes. Each function is one conversation.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use deltasync_wire::{Code, Entry, EntryKind, ListWants, Reply, Request, WireError};

use super::plan::Side;
use crate::client::Agent;
use crate::copy::{Event, Reporter};
use crate::error::DriverError;
use crate::path::{LOCK_FILE, RelPath};
use crate::state::Synced;

/// "A" or "B".
pub(super) fn side_name(s: Side) -> &'static str {
    if s == Side::A { "A" } else { "B" }
}

pub(super) fn unexpected(r: Reply) -> DriverError {
    DriverError::Wire(WireError::Violation(format!("unexpected reply: {r:?}")))
}

/// The replica's id (made on first use with `create`). An agent that
/// cannot read its root is a safety stop; one that refuses (read-only)
/// says so.
pub(super) fn replica_id(
    agent: &Agent,
    create: bool,
    side: Side,
    root: &str,
) -> Result<String, DriverError> {
    match agent.call(Request::ReplicaId { create })? {
        Reply::Value(text) => Ok(text),
        Reply::Error {
            code: Code::Refused,
            message,
            ..
        } => Err(DriverError::Refused(format!(
            "replica {} ({root}) refuses changes: {message}; a sync needs both sides writable",
            side_name(side)
        ))),
        Reply::Error { message, .. } => Err(unreadable(side, root, &message)),
        other => Err(unexpected(other)),
    }
}

/// Reads (and with `set`, replaces) a replica's note about the pair.
pub(super) fn pair_note(
    agent: &Agent,
    pair: &str,
    set: Option<String>,
) -> Result<String, DriverError> {
    match agent.call(Request::Pair {
        pair: pair.to_string(),
        set,
    })? {
        Reply::Value(text) => Ok(text),
        Reply::Error { message, .. } => Err(DriverError::Startup(format!(
            "cannot keep the pair's note: {message}"
        ))),
        other => Err(unexpected(other)),
    }
}

/// The request that takes a replica's lock for the life of its agent,
/// naming this run as its owner. A lock left by a run that died was
/// released with its agent (`flock`), so a held lock is a live run's
/// (unless `force`). With `replica`, the agent takes it only if the root's
/// replica-id is that one: the check and the lock in one round trip.
pub(super) fn lock_request(force: bool, replica: Option<String>) -> Request {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_string();
    let owner = format!(
        "host={host} pid={} started={}",
        std::process::id(),
        chrono::Local::now().to_rfc3339()
    );
    Request::Lock {
        owner,
        force,
        replica,
    }
}

/// The replica a lock was asked to check: the id the state remembers and
/// the root, for the messages.
pub(super) struct Expected<'a> {
    pub id: &'a str,
    pub root: &'a str,
}

/// A root whose replica-id is `found` (empty: none) where the state
/// remembers `known`: a safety stop.
pub(super) fn not_the_replica(side: Side, found: &str, known: &str) -> DriverError {
    let name = side_name(side);
    DriverError::SafetyStop(if found.is_empty() {
        format!(
            "replica {name} has no replica-id, but the state remembers {known}: a different or emptied disk?"
        )
    } else {
        format!(
            "replica {name} has replica-id {found}, but the state remembers {known}: a swapped disk or a path to the wrong folder?"
        )
    })
}

/// A root whose replica-id cannot be read: a safety stop.
fn unreadable(side: Side, root: &str, message: &str) -> DriverError {
    DriverError::SafetyStop(format!(
        "replica {} ({root}) cannot be read: {message}; is it missing or unmounted?",
        side_name(side)
    ))
}

/// What the answer to [`lock_request`] means.
pub(super) fn locked(
    rep: Reply,
    side: Side,
    expected: Option<Expected<'_>>,
) -> Result<(), DriverError> {
    let name = side_name(side);
    // With a check, the agent reads the id before it locks: any failure
    // but the lock's own is the root's (a root it cannot open answers so).
    if let (
        Some(e),
        Reply::Error {
            code,
            path,
            message,
        },
    ) = (&expected, &rep)
    {
        match code {
            Code::Replica => return Err(not_the_replica(side, message, e.id)),
            Code::Locked | Code::Refused => {}
            _ if path.as_slice() != LOCK_FILE.as_bytes() => {
                return Err(unreadable(side, e.root, message));
            }
            _ => {}
        }
    }
    match rep {
        Reply::Value(_) => Ok(()),
        Reply::Error {
            code: Code::Locked,
            message,
            ..
        } => Err(DriverError::LockHeld(format!(
            "replica {name} is locked by another run ({message}); if that run is stuck, use --force-unlock"
        ))),
        Reply::Error {
            code: Code::Refused,
            message,
            ..
        } => Err(DriverError::Refused(format!(
            "replica {name} refuses changes ({message}); a sync needs both sides writable"
        ))),
        Reply::Error { message, .. } => Err(DriverError::Startup(format!(
            "cannot lock replica {name}: {message}"
        ))),
        other => Err(unexpected(other)),
    }
}

/// Releases a replica's lock, whatever state the conversation is in:
/// after an error, replies to abandoned requests may still be queued, and
/// are passed over, for at most a few seconds. The lock also goes with its
/// agent.
pub(super) fn unlock(agent: &Agent) {
    let _ = agent.call_within(Request::Unlock, Duration::from_secs(5));
}

/// A side's listing, as the agent sent it.
#[derive(Debug, Default)]
pub(super) struct Listing {
    /// Entries by path.
    pub entries: HashMap<RelPath, Entry>,
    /// The listing's digest; `None` when it matched the stored one.
    pub digest: Option<[u8; 32]>,
    /// Folders the agent could not read (their contents are unknown).
    pub unreadable: Vec<(RelPath, String)>,
}

/// Lists a whole replica; with `if_digest`, only its digest if unchanged.
pub(super) fn list(
    agent: &Agent,
    filters: &[String],
    wants: ListWants,
    if_digest: Option<[u8; 32]>,
    side: Side,
    reporter: &mut dyn Reporter,
) -> Result<Listing, DriverError> {
    list_under(
        agent,
        &RelPath::root(),
        filters,
        wants,
        if_digest,
        side,
        reporter,
    )
}

/// Lists the subtree `under` (itself first). Below the root, a path that
/// is not there lists as nothing, and one that cannot be listed is
/// reported as unreadable, not as an error.
pub(super) fn list_under(
    agent: &Agent,
    under: &RelPath,
    filters: &[String],
    wants: ListWants,
    if_digest: Option<[u8; 32]>,
    side: Side,
    reporter: &mut dyn Reporter,
) -> Result<Listing, DriverError> {
    let id = agent.start(list_request(under, filters, wants, if_digest))?;
    listing(agent, id, under, side, reporter)
}

/// The request that lists `under`.
pub(super) fn list_request(
    under: &RelPath,
    filters: &[String],
    wants: ListWants,
    if_digest: Option<[u8; 32]>,
) -> Request {
    Request::List {
        under: under.as_bytes().to_vec(),
        filters: filters.to_vec(),
        wants,
        if_digest,
    }
}

/// Reads the listing of `under` that request `id` asked for.
pub(super) fn listing(
    agent: &Agent,
    id: u64,
    under: &RelPath,
    side: Side,
    reporter: &mut dyn Reporter,
) -> Result<Listing, DriverError> {
    let mut out = Listing::default();
    for rep in agent.replies(id) {
        match rep? {
            Reply::Entry(entry) => {
                if let Ok(p) = RelPath::parse(&entry.path) {
                    out.entries.insert(p, *entry);
                }
            }
            Reply::Notice {
                code,
                path,
                message,
            } => {
                let shown = String::from_utf8_lossy(&path).into_owned();
                if code == Code::Skipped {
                    reporter.event(Event::Warning(&format!(
                        "{}: {shown}: {message}",
                        side_name(side)
                    )));
                } else if let Ok(p) = RelPath::parse(&path) {
                    out.unreadable.push((p, message));
                } else {
                    out.unreadable
                        .push((RelPath::root(), format!("{shown}: {message}")));
                }
            }
            Reply::ListEnd { digest, .. } => {
                out.digest = Some(digest);
                return Ok(out);
            }
            Reply::ListSame { .. } => return Ok(out),
            Reply::Error { code, .. } if code == Code::Vanished && !under.is_root() => {
                return Ok(out);
            }
            Reply::Error { message, .. } if !under.is_root() => {
                out.unreadable.push((under.clone(), message));
                return Ok(out);
            }
            Reply::Error { message, .. } => {
                return Err(DriverError::SafetyStop(format!(
                    "cannot list replica {}: {message}",
                    side_name(side)
                )));
            }
            other => return Err(unexpected(other)),
        }
    }
    Err(DriverError::Wire(WireError::Truncated { what: "listing" }))
}

/// What a folder holds that could not be read is unknown, not gone: each
/// of `unreadable` is reported, counted as failed, taken as the state
/// remembers it, and left alone (`busy`) until a later run.
pub(super) fn keep_unread(
    unreadable: Vec<(RelPath, String)>,
    side: Side,
    state: &HashMap<RelPath, Synced>,
    listing: &mut HashMap<RelPath, Entry>,
    busy: &mut BTreeSet<RelPath>,
    failed: &mut Vec<String>,
    reporter: &mut dyn Reporter,
) {
    for (p, why) in unreadable {
        let line = format!(
            "{}: {}: {why}; left for the next run",
            side_name(side),
            p.display()
        );
        reporter.event(Event::Warning(&line));
        failed.push(line);
        listing.extend(from_state(state, side, &p));
        busy.insert(p);
    }
}

/// A side's listing as the state remembers it (its digest matched, or a
/// folder could not be read): the paths under `under`.
pub(super) fn from_state(
    state: &HashMap<RelPath, Synced>,
    side: Side,
    under: &RelPath,
) -> impl Iterator<Item = (RelPath, Entry)> {
    state
        .iter()
        .filter(move |(p, _)| p.starts_with(under) && *p != under)
        .map(move |(p, s)| {
            let m = if side == Side::A { s.a } else { s.b };
            let mut e = Entry::new(p.as_bytes(), s.kind, s.size, m.mtime, m.mode);
            e.target = s.target.clone();
            e.ino = m.ino;
            (p.clone(), e)
        })
}

/// Files whose BLAKE3 the plan needs: those whose size or mtime moved
/// since the state, and new ones that could equal something (a file of the
/// same size on the other side, or a vanished file: a move).
pub(super) fn to_hash(
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
                !(e.size == s.size && e.mtime == m.mtime && (m.ino == 0 || e.ino == m.ino))
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
pub(super) fn hash(
    agent: &Agent,
    want: Vec<RelPath>,
    listing: &mut HashMap<RelPath, Entry>,
    busy: &mut BTreeSet<RelPath>,
    reporter: &mut dyn Reporter,
) -> Result<(), DriverError> {
    let mut todo: Vec<(RelPath, u8)> = want.into_iter().map(|p| (p, 0)).collect();
    while !todo.is_empty() {
        // Requests go out in batches; replies are matched by id.
        let batch: Vec<(RelPath, u8)> = todo.drain(..todo.len().min(4096)).collect();
        let mut ids = HashMap::new();
        for (i, (p, _)) in batch.iter().enumerate() {
            let id = agent.start(Request::Hash {
                path: p.as_bytes().to_vec(),
            })?;
            ids.insert(id, i);
        }
        let mut replies: Vec<Option<Reply>> = vec![None; batch.len()];
        let mut left = batch.len();
        while left > 0 {
            match agent.incoming().recv() {
                Ok(Ok(deltasync_wire::Message::Reply { id, rep })) => {
                    if let Some(&i) = ids.get(&id) {
                        if replies[i].is_none() {
                            left -= 1;
                        }
                        replies[i] = Some(rep);
                    }
                }
                Ok(Ok(other)) => {
                    return Err(DriverError::Wire(WireError::Violation(format!(
                        "the agent sent a client's message: {other:?}"
                    ))));
                }
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => return Err(DriverError::Wire(WireError::Truncated { what: "hashing" })),
            }
        }
        for ((p, tries), rep) in batch.into_iter().zip(replies) {
            match rep {
                Some(Reply::Entry(entry)) => {
                    listing.insert(p, *entry);
                }
                Some(Reply::Error {
                    code: Code::Changed,
                    ..
                }) if tries < 2 => todo.push((p, tries + 1)),
                Some(Reply::Error {
                    code: Code::Vanished,
                    ..
                }) => {
                    listing.remove(&p);
                }
                Some(Reply::Error { message, .. }) => {
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
