//! Two-way reconciliation as a pure function: `plan(state, a, b)`.
//!
//! For every path in the union of the last synced state and both listings,
//! each side's change since the state is one of: none, metadata only,
//! content, created, deleted. Then:
//!
//! - a change on one side only propagates to the other;
//! - the same change on both sides (same content) moves nothing, and the
//!   state is updated;
//! - deleted on one side, changed on the other: modify beats delete, the
//!   changed version is restored where it was deleted;
//! - changed differently on both sides: a conflict, settled by the policy,
//!   the losing version kept (in `.deltasync/conflicts/`, or beside the
//!   winner for keep-both); a directory always beats a file or link, whose
//!   version goes to `conflicts/`;
//! - a file that vanished on one side and reappeared elsewhere there with
//!   the same BLAKE3 is moved on the other side, not sent again;
//! - a directory deleted on one side goes (as a whole) on the other only
//!   if nothing under it changed there; otherwise it is restored.
//!
//! With no state (a first sync) everything is "created": the result is the
//! union, identical files are recorded, differing ones follow the policy.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use deltasync_wire::{Attrs, Entry, EntryKind, Expect, Mtime, Partial, StashArea};

use crate::exec::Op;

use crate::path::RelPath;
use crate::state::{SideMeta, Synced};

/// One of the two replicas.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// The first replica named.
    A,
    /// The second.
    B,
}

impl Side {
    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    /// `a` or `b`.
    pub fn name(self) -> &'static str {
        match self {
            Side::A => "a",
            Side::B => "b",
        }
    }

    fn arrow(self) -> &'static str {
        match self {
            Side::A => "a<-b",
            Side::B => "a->b",
        }
    }
}

/// How a conflict (changed differently on both sides) is settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictPolicy {
    /// The newer mtime wins; on a tie, `prefer`.
    Newest,
    /// Both kept: the loser renamed beside the winner, on both sides.
    KeepBoth,
    /// A always wins.
    PreferA,
    /// B always wins.
    PreferB,
    /// Nothing is done; reported (exit 23).
    Skip,
}

/// The choices that shape a plan.
#[derive(Clone, Debug)]
pub struct SyncOptions {
    /// Conflict policy.
    pub conflict: ConflictPolicy,
    /// Tie-break for `Newest` (and the winner for keep-both ties).
    pub prefer: Side,
    /// Deletions do not reach side A.
    pub skip_deletion_a: bool,
    /// Deletions do not reach side B.
    pub skip_deletion_b: bool,
    /// Deleted entries go to `.deltasync/deleted/` (else removed for real).
    pub soft_delete: bool,
    /// Remove directories that this run leaves empty on both sides.
    pub remove_empty_dirs: bool,
    /// `YYYYmmdd-HHMMSS`, for keep-both names.
    pub stamp: String,
    /// Keep owner and group (`-o`/`-g`).
    pub owner: bool,
    /// Owners by number, not name (`--numeric-ids`).
    pub numeric_ids: bool,
    /// Keep extended attributes and ACLs (`-X`, `-A`).
    pub xattrs: bool,
    /// Keep hard links (`-H`).
    pub hard_links: bool,
    /// Send a file new to a side as a delta against a similar file that
    /// side already has (`-y`, `--fuzzy`; see `fuzzy.rs`).
    pub fuzzy: bool,
}

/// One change to one side: the shared operation ([`Op`]) and the side it
/// changes. Every change that could overwrite or remove something carries
/// an `Expect`: what the agent must find there before acting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The side changed.
    pub side: Side,
    /// What is done there.
    pub op: Op,
}

impl Step {
    /// `op` on `side`.
    pub fn on(side: Side, op: Op) -> Step {
        Step { side, op }
    }
}

/// Attributes that set only a mode and/or an mtime.
fn mode_time(mode: Option<u32>, mtime: Option<Mtime>) -> Attrs {
    Attrs {
        mode,
        mtime,
        ..Attrs::default()
    }
}

/// What to write to the state once all of a change's steps succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// `path` is now synced as this.
    Put(RelPath, Synced),
    /// `path` (and what is under it) is gone on both sides.
    Remove(RelPath),
}

/// One logical change: its steps, its state records, and its line of output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Steps, in order.
    pub steps: Vec<Step>,
    /// State updates after the steps.
    pub records: Vec<Record>,
    /// The itemized line (empty for state-only changes).
    pub line: String,
}

/// The result of planning.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Changes, parents before children.
    pub changes: Vec<Change>,
    /// Conflicts settled by the policy (one line each).
    pub conflicts: Vec<String>,
    /// Conflicts left alone (`--conflict skip`).
    pub skipped: Vec<String>,
    /// Files each side would lose by deletion: `[a, b]`.
    pub deleted_files: [u64; 2],
    /// Deletions held back by `--skip-deletion`: the state still records
    /// what one side no longer has, so that side's listing is not the
    /// state's, and its digest must not be kept.
    pub held_back: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delta {
    None,
    Meta,
    Content,
    Created,
    Deleted,
}

fn meta_of(s: &Synced, side: Side) -> SideMeta {
    match side {
        Side::A => s.a,
        Side::B => s.b,
    }
}

fn delta(st: Option<&Synced>, e: Option<&Entry>, side: Side) -> Delta {
    match (st, e) {
        (None, None) => Delta::None,
        (None, Some(_)) => Delta::Created,
        (Some(_), None) => Delta::Deleted,
        (Some(s), Some(e)) => {
            if s.kind != e.kind {
                return Delta::Content;
            }
            let m = meta_of(s, side);
            match e.kind {
                EntryKind::File => {
                    let fast =
                        e.size == s.size && e.mtime == m.mtime && (m.ino == 0 || e.ino == m.ino);
                    if fast || (e.blake3.is_some() && e.blake3 == s.blake3 && e.size == s.size) {
                        if fast && e.mode == m.mode {
                            Delta::None
                        } else {
                            Delta::Meta
                        }
                    } else {
                        Delta::Content
                    }
                }
                EntryKind::Symlink if e.target != s.target => Delta::Content,
                EntryKind::Symlink => Delta::None,
                EntryKind::Dir if e.mode != m.mode => Delta::Meta,
                EntryKind::Dir => Delta::None,
            }
        }
    }
}

/// Same kind and same content (files: same BLAKE3; links: same target).
pub fn same_content(a: &Entry, b: &Entry) -> bool {
    a.kind == b.kind
        && match a.kind {
            EntryKind::File => a.size == b.size && a.blake3.is_some() && a.blake3 == b.blake3,
            EntryKind::Symlink => a.target == b.target,
            EntryKind::Dir => true,
        }
}

/// What `expect` a change should demand of an entry it found.
pub fn expect_of(e: Option<&Entry>) -> Expect {
    match e {
        None => Expect::Absent,
        Some(e) => match e.kind {
            EntryKind::File => Expect::File {
                size: e.size,
                mtime: e.mtime,
            },
            EntryKind::Dir => Expect::Dir,
            EntryKind::Symlink => Expect::Symlink,
        },
    }
}

fn side_meta(e: &Entry) -> SideMeta {
    SideMeta {
        mtime: e.mtime,
        mode: e.mode,
        ino: e.ino,
    }
}

/// The state record for `e` on `from`, just copied (as is) to the other side.
fn synced_copy(e: &Entry, from: Side) -> Synced {
    let here = side_meta(e);
    let there = SideMeta { ino: 0, ..here };
    let (a, b) = if from == Side::A {
        (here, there)
    } else {
        (there, here)
    };
    Synced {
        kind: e.kind,
        size: e.size,
        blake3: e.blake3,
        target: e.target.clone(),
        a,
        b,
    }
}

/// The state record for two entries already equal in content.
fn synced_pair(a: &Entry, b: &Entry) -> Synced {
    Synced {
        kind: a.kind,
        size: a.size,
        blake3: a.blake3.or(b.blake3),
        target: a.target.clone(),
        a: side_meta(a),
        b: side_meta(b),
    }
}

struct Planner<'a> {
    st: &'a HashMap<RelPath, Synced>,
    a: &'a HashMap<RelPath, Entry>,
    b: &'a HashMap<RelPath, Entry>,
    o: &'a SyncOptions,
    plan: Plan,
    /// Entries leaving each side, by deletion or by a move elsewhere (to
    /// decide whether a deleted directory may go as a whole).
    deleting: [BTreeSet<RelPath>; 2],
    /// Directory deletions, handled after every path is decided: (side it
    /// is deleted on, path).
    dir_deletions: Vec<(Side, RelPath)>,
    /// Folders stashed whole to make way for a file or link: (side, path).
    replaced_dirs: Vec<(Side, RelPath)>,
    /// keep-both names already given out by this plan.
    given_names: BTreeSet<RelPath>,
}

fn idx(s: Side) -> usize {
    if s == Side::A { 0 } else { 1 }
}

impl<'a> Planner<'a> {
    fn entry(&self, side: Side, p: &RelPath) -> Option<&'a Entry> {
        match side {
            Side::A => self.a.get(p),
            Side::B => self.b.get(p),
        }
    }

    fn listing(&self, side: Side) -> &'a HashMap<RelPath, Entry> {
        match side {
            Side::A => self.a,
            Side::B => self.b,
        }
    }

    fn push(&mut self, steps: Vec<Step>, records: Vec<Record>, line: String) {
        self.plan.changes.push(Change {
            steps,
            records,
            line,
        });
    }

    fn skip_deletion(&self, side: Side) -> bool {
        match side {
            Side::A => self.o.skip_deletion_a,
            Side::B => self.o.skip_deletion_b,
        }
    }

    /// Deletes `p` (which `e` is) on `side`.
    fn delete_step(&self, side: Side, p: &RelPath, e: &Entry) -> Step {
        let expect = expect_of(Some(e));
        let op = if self.o.soft_delete {
            Op::Stash {
                path: p.clone(),
                area: StashArea::Deleted,
                expect,
            }
        } else {
            Op::Remove {
                path: p.clone(),
                expect,
            }
        };
        Step::on(side, op)
    }

    /// `from` changed (`d`), the other side did not: carry it over.
    fn propagate(&mut self, p: &RelPath, from: Side, d: Delta) {
        let to = from.other();
        let target = self.entry(to, p).cloned();
        let source = self.entry(from, p).cloned();
        match (d, source) {
            (Delta::Deleted, _) => {
                let Some(t) = target else { return };
                if self.skip_deletion(to) {
                    // Kept there; the state still remembers it, so nothing flips back.
                    self.plan.held_back += 1;
                    return;
                }
                if t.kind == EntryKind::Dir {
                    self.dir_deletions.push((to, p.clone()));
                    return;
                }
                self.deleting[idx(to)].insert(p.clone());
                let step = self.delete_step(to, p, &t);
                self.push(
                    vec![step],
                    vec![Record::Remove(p.clone())],
                    format!("{} delete   {}", to.arrow(), p.display()),
                );
            }
            (Delta::Meta, Some(s)) => {
                let Some(t) = target else { return };
                let file = s.kind == EntryKind::File;
                let step = Step::on(
                    to,
                    Op::SetAttr {
                        path: p.clone(),
                        attrs: mode_time(Some(s.mode), file.then_some(s.mtime)),
                        // An edit made there since the listing must not be
                        // stamped with this side's mtime and recorded as synced.
                        expect: expect_of(Some(&t)),
                        late: s.kind == EntryKind::Dir,
                    },
                );
                // The content is unchanged: keep the known hash.
                let mut record = synced_copy(&s, from);
                record.blake3 = s.blake3.or(self.st.get(p).and_then(|x| x.blake3));
                let there = SideMeta {
                    mode: s.mode,
                    mtime: if file { s.mtime } else { t.mtime },
                    ino: t.ino,
                };
                match to {
                    Side::A => record.a = there,
                    Side::B => record.b = there,
                }
                self.push(
                    vec![step],
                    vec![Record::Put(p.clone(), record)],
                    format!("{} attrs    {}", to.arrow(), p.display()),
                );
            }
            // A folder replaced by a file or link on `from`, while something
            // under it changed on `to`: the folder wins (a type clash), so
            // the changes inside it are not swept away with it.
            (_, Some(s))
                if s.kind != EntryKind::Dir
                    && target.as_ref().is_some_and(|t| t.kind == EntryKind::Dir)
                    && self.changed_under(to, p) =>
            {
                let dir = target.unwrap_or_else(|| s.clone());
                self.plan.conflicts.push(format!(
                    "{}: a directory on {} with changes inside, a {} on {}; the directory wins, the other is kept in {}/.deltasync/conflicts",
                    p.display(),
                    to.name(),
                    kind_name(s.kind),
                    from.name(),
                    from.name()
                ));
                self.create(p, &dir, to, Some(&s), StashArea::Conflicts);
            }
            (_, Some(s)) => self.create(p, &s, from, target.as_ref(), StashArea::Deleted),
            (_, None) => {}
        }
    }

    /// What `to`'s file `o` at `p` holds, if the state knows: its record's
    /// length and BLAKE3, when `o` is as recorded (size, mtime, inode).
    fn known(&self, p: &RelPath, o: &Entry, to: Side) -> Option<Partial> {
        let st = self.st.get(p).filter(|s| s.kind == EntryKind::File)?;
        let m = if to == Side::A { st.a } else { st.b };
        let unchanged = o.size == st.size && o.mtime == m.mtime && (m.ino == 0 || o.ino == m.ino);
        let blake3 = st.blake3.filter(|_| unchanged)?;
        Some(Partial {
            len: st.size,
            blake3,
        })
    }

    /// Makes `to`'s `p` what `s` is on `from`, moving `old` (what `to` has
    /// there now) into `area` first if it is in the way.
    fn create(&mut self, p: &RelPath, s: &Entry, from: Side, old: Option<&Entry>, area: StashArea) {
        let to = from.other();
        let mut steps = Vec::new();
        let mut expect = Expect::Absent;
        let mut known = None;
        if let Some(o) = old {
            let same_kind = o.kind == s.kind;
            if same_kind && s.kind == EntryKind::File && area == StashArea::Deleted {
                // A plain update: the patch replaces it atomically, guarded.
                expect = expect_of(Some(o));
                known = self.known(p, o, to);
            } else if same_kind && s.kind == EntryKind::File {
                // A conflict loser: keep it (a hard link, so the old content
                // also stays the delta's basis), then replace it.
                steps.push(Step::on(
                    to,
                    Op::Stash {
                        path: p.clone(),
                        area: StashArea::ConflictsLink,
                        expect: expect_of(Some(o)),
                    },
                ));
                expect = expect_of(Some(o));
            } else if same_kind && s.kind == EntryKind::Dir {
                expect = Expect::Dir;
            } else {
                steps.push(Step::on(
                    to,
                    Op::Stash {
                        path: p.clone(),
                        area,
                        expect: expect_of(Some(o)),
                    },
                ));
            }
        }
        let verb = if old.is_some() { "update" } else { "create" };
        match s.kind {
            EntryKind::File => steps.push(Step::on(
                to,
                Op::Transfer {
                    src: p.clone(),
                    path: p.clone(),
                    size: s.size,
                    expect,
                    attrs: self.o.extra_attrs(s),
                    known,
                    basis: None,
                },
            )),
            EntryKind::Dir => {
                if expect != Expect::Dir {
                    steps.push(Step::on(
                        to,
                        Op::Mkdir {
                            path: p.clone(),
                            attrs: Attrs {
                                mode: Some(s.mode),
                                ..self.o.extra_attrs(s)
                            },
                        },
                    ));
                }
                steps.push(Step::on(
                    to,
                    Op::SetAttr {
                        path: p.clone(),
                        attrs: mode_time(Some(s.mode), Some(s.mtime)),
                        expect: Expect::Dir,
                        late: true,
                    },
                ));
            }
            EntryKind::Symlink => steps.push(Step::on(
                to,
                Op::Symlink {
                    path: p.clone(),
                    target: s.target.clone(),
                    attrs: Attrs {
                        mtime: Some(s.mtime),
                        ..self.o.extra_attrs(s)
                    },
                },
            )),
        }
        let shown = if s.kind == EntryKind::Dir {
            format!("{}/", p.display())
        } else {
            p.display()
        };
        let mut records = vec![Record::Put(p.clone(), synced_copy(s, from))];
        if old.is_some_and(|o| o.kind == EntryKind::Dir) && s.kind != EntryKind::Dir {
            // The stash takes the old folder whole: what was under it is
            // gone from the state with it.
            records.insert(0, Record::Remove(p.clone()));
            self.replaced_dirs.push((to, p.clone()));
        }
        self.push(steps, records, format!("{} {verb:<8} {shown}", to.arrow()));
    }

    /// Both sides changed `p` differently and both have something there.
    fn conflict(&mut self, p: &RelPath, a: &Entry, b: &Entry) {
        // A directory always wins a type clash: the file or link is kept in conflicts/.
        if a.kind == EntryKind::Dir || b.kind == EntryKind::Dir {
            let (winner, w, l) = if a.kind == EntryKind::Dir {
                (Side::A, a, b)
            } else {
                (Side::B, b, a)
            };
            let note = format!(
                "{}: a directory on {} and a {} on {}; the directory wins, the other is kept in {}/.deltasync/conflicts",
                p.display(),
                winner.name(),
                kind_name(l.kind),
                winner.other().name(),
                winner.other().name()
            );
            self.plan.conflicts.push(note);
            self.create(p, w, winner, Some(l), StashArea::Conflicts);
            return;
        }
        let newer = match a.mtime.cmp(&b.mtime) {
            std::cmp::Ordering::Greater => Side::A,
            std::cmp::Ordering::Less => Side::B,
            std::cmp::Ordering::Equal => self.o.prefer,
        };
        let winner = match self.o.conflict {
            ConflictPolicy::Skip => {
                self.plan.skipped.push(format!(
                    "{}: changed on both sides; left alone (--conflict skip)",
                    p.display()
                ));
                return;
            }
            ConflictPolicy::PreferA => Side::A,
            ConflictPolicy::PreferB => Side::B,
            ConflictPolicy::Newest | ConflictPolicy::KeepBoth => newer,
        };
        let loser = winner.other();
        let (w, l) = if winner == Side::A { (a, b) } else { (b, a) };
        if self.o.conflict == ConflictPolicy::KeepBoth {
            let renamed = self.free_conflict_name(p, loser);
            let note = format!(
                "{}: changed on both sides; {}'s version wins, {}'s is kept as {} on both",
                p.display(),
                winner.name(),
                loser.name(),
                renamed.display()
            );
            self.plan.conflicts.push(note);
            // The loser steps aside on its own side, then each side gets the other's.
            let mv = Step::on(
                loser,
                Op::Move {
                    from: p.clone(),
                    to: renamed.clone(),
                    expect: expect_of(Some(l)),
                },
            );
            let mut steps = vec![mv];
            steps.push(self.o.copy_or_link(w, winner, p, p));
            steps.push(self.o.copy_or_link(l, loser, &renamed, &renamed));
            let records = vec![
                Record::Put(p.clone(), synced_copy(w, winner)),
                Record::Put(renamed.clone(), synced_copy(l, loser)),
            ];
            self.push(
                steps,
                records,
                format!(
                    "a<>b conflict {} (kept both; {}'s as {})",
                    p.display(),
                    loser.name(),
                    renamed.display()
                ),
            );
            return;
        }
        let note = format!(
            "{}: changed on both sides; {}'s version wins, {}'s is kept in {}/.deltasync/conflicts",
            p.display(),
            winner.name(),
            loser.name(),
            loser.name()
        );
        self.plan.conflicts.push(note);
        self.create(p, w, winner, Some(l), StashArea::Conflicts);
        if let Some(last) = self.plan.changes.last_mut() {
            last.line = format!(
                "{} conflict {} ({} wins, {}'s kept in conflicts/)",
                winner.other().arrow(),
                p.display(),
                winner.name(),
                loser.name()
            );
        }
    }

    /// A keep-both name for `loser`'s version of `p` that no side, no
    /// record and no other step of this plan uses: the plain name first,
    /// then `-2`, `-3`, … after it.
    fn free_conflict_name(&mut self, p: &RelPath, loser: Side) -> RelPath {
        let taken = |q: &RelPath| {
            self.a.contains_key(q)
                || self.b.contains_key(q)
                || self.st.contains_key(q)
                || self.given_names.contains(q)
        };
        let mut n = 1;
        let name = loop {
            let q = conflict_name(p, &self.o.stamp, loser, n);
            if !taken(&q) {
                break q;
            }
            n += 1;
        };
        self.given_names.insert(name.clone());
        name
    }

    /// A file unchanged on both sides whose state does not know a side's
    /// inode (it was a fresh copy) learns it now, in a state-only change.
    /// Until then the fast check compares only size and mtime there, and a
    /// file renamed over it with the same size and mtime (coarse clocks,
    /// generated files) would pass for unchanged.
    fn learn_inodes(
        &mut self,
        p: &RelPath,
        st: Option<&Synced>,
        a: Option<&Entry>,
        b: Option<&Entry>,
    ) {
        let (Some(s), Some(x), Some(y)) = (st, a, b) else {
            return;
        };
        let learn = |known: u64, listed: u64| known == 0 && listed != 0;
        if s.kind != EntryKind::File || !(learn(s.a.ino, x.ino) || learn(s.b.ino, y.ino)) {
            return;
        }
        let mut r = s.clone();
        if learn(r.a.ino, x.ino) {
            r.a.ino = x.ino;
        }
        if learn(r.b.ino, y.ino) {
            r.b.ino = y.ino;
        }
        self.push(Vec::new(), vec![Record::Put(p.clone(), r)], String::new());
    }

    /// Finds files that moved on one side: gone from their old path, new at
    /// another with the same BLAKE3, while the other side still has the old
    /// path unchanged. Those become moves there. Returns the paths handled.
    fn moves(&mut self) -> BTreeSet<RelPath> {
        let mut handled = BTreeSet::new();
        for side in [Side::A, Side::B] {
            let other = side.other();
            // Old paths gone on `side`, still unchanged on the other side.
            let mut gone: HashMap<[u8; 32], Vec<RelPath>> = HashMap::new();
            for (p, s) in self.st.iter() {
                if s.kind != EntryKind::File || self.entry(side, p).is_some() {
                    continue;
                }
                let Some(o) = self.entry(other, p) else {
                    continue;
                };
                if let (Some(h), Delta::None) = (s.blake3, delta(Some(s), Some(o), other)) {
                    gone.entry(h).or_default().push(p.clone());
                }
            }
            if gone.is_empty() {
                continue;
            }
            for v in gone.values_mut() {
                v.sort();
            }
            let mut fresh: Vec<(&RelPath, &Entry)> = self
                .listing(side)
                .iter()
                .filter(|(q, e)| {
                    e.kind == EntryKind::File
                        && !self.st.contains_key(*q)
                        && self.entry(other, q).is_none()
                })
                .collect();
            fresh.sort_by(|x, y| x.0.cmp(y.0));
            for (q, e) in fresh {
                let Some(h) = e.blake3 else { continue };
                let Some(candidates) = gone.get_mut(&h) else {
                    continue;
                };
                let Some(pos) = candidates.iter().position(|c| !handled.contains(c)) else {
                    continue;
                };
                let from = candidates.remove(pos);
                let Some(old) = self.entry(other, &from).cloned() else {
                    continue;
                };
                let mut steps = vec![Step::on(
                    other,
                    Op::Move {
                        from: from.clone(),
                        to: q.clone(),
                        expect: expect_of(Some(&old)),
                    },
                )];
                if old.mode != e.mode || old.mtime != e.mtime {
                    steps.push(Step::on(
                        other,
                        Op::SetAttr {
                            path: q.clone(),
                            attrs: mode_time(Some(e.mode), Some(e.mtime)),
                            expect: expect_of(Some(&old)),
                            late: false,
                        },
                    ));
                }
                let mut record = synced_copy(e, side);
                match other {
                    Side::A => record.a.ino = old.ino,
                    Side::B => record.b.ino = old.ino,
                }
                let records = vec![Record::Remove(from.clone()), Record::Put(q.clone(), record)];
                self.push(
                    steps,
                    records,
                    format!(
                        "{} move     {} -> {}",
                        other.arrow(),
                        from.display(),
                        q.display()
                    ),
                );
                self.deleting[idx(other)].insert(from.clone());
                handled.insert(from);
                handled.insert(q.clone());
            }
        }
        handled
    }
}

fn kind_name(k: EntryKind) -> &'static str {
    match k {
        EntryKind::File => "file",
        EntryKind::Dir => "directory",
        EntryKind::Symlink => "symlink",
    }
}

impl SyncOptions {
    /// Owner and extended attributes that `e` carries to the other side,
    /// as far as this sync keeps them.
    pub fn extra_attrs(&self, e: &Entry) -> Attrs {
        Attrs {
            owner: if self.owner {
                e.owner.clone().map(|mut o| {
                    if self.numeric_ids {
                        o.user.clear();
                        o.group.clear();
                    }
                    o
                })
            } else {
                None
            },
            xattrs: if self.xattrs && e.kind != EntryKind::Symlink {
                e.xattrs.clone()
            } else {
                None
            },
            ..Attrs::default()
        }
    }

    /// The step that puts `e` (on `from`) at `to_path` on the other side.
    fn copy_or_link(&self, e: &Entry, from: Side, src: &RelPath, to_path: &RelPath) -> Step {
        let op = match e.kind {
            EntryKind::Symlink => Op::Symlink {
                path: to_path.clone(),
                target: e.target.clone(),
                attrs: Attrs {
                    mtime: Some(e.mtime),
                    ..self.extra_attrs(e)
                },
            },
            _ => Op::Transfer {
                src: src.clone(),
                path: to_path.clone(),
                size: e.size,
                expect: Expect::Absent,
                attrs: self.extra_attrs(e),
                known: None,
                basis: None,
            },
        };
        Step::on(from.other(), op)
    }
}

/// `dir/name.ext` as `dir/name.conflict-STAMP-side.ext`; the `n`th choice
/// (from 2 on) as `dir/name.conflict-STAMP-side-n.ext`.
pub fn conflict_name(p: &RelPath, stamp: &str, side: Side, n: u32) -> RelPath {
    let name = String::from_utf8_lossy(p.file_name()).into_owned();
    let tag = match n {
        0 | 1 => format!("conflict-{stamp}-{}", side.name()),
        n => format!("conflict-{stamp}-{}-{n}", side.name()),
    };
    let new = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem}.{tag}.{ext}"),
        _ => format!("{name}.{tag}"),
    };
    p.parent().join(new.as_bytes())
}

/// Reconciles the last synced `state` with listings `a` and `b`.
pub fn plan(
    state: &HashMap<RelPath, Synced>,
    a: &HashMap<RelPath, Entry>,
    b: &HashMap<RelPath, Entry>,
    o: &SyncOptions,
) -> Plan {
    let mut pl = Planner {
        st: state,
        a,
        b,
        o,
        plan: Plan::default(),
        deleting: [BTreeSet::new(), BTreeSet::new()],
        dir_deletions: Vec::new(),
        replaced_dirs: Vec::new(),
        given_names: BTreeSet::new(),
    };
    let handled = pl.moves();
    let paths: BTreeMap<&RelPath, ()> = state
        .keys()
        .chain(a.keys())
        .chain(b.keys())
        .map(|p| (p, ()))
        .collect();
    for p in paths.keys().copied() {
        if handled.contains(p) {
            continue;
        }
        let st = state.get(p);
        let (ea, eb) = (a.get(p), b.get(p));
        let (da, db) = (delta(st, ea, Side::A), delta(st, eb, Side::B));
        match (da, db) {
            (Delta::None, Delta::None) => pl.learn_inodes(p, st, ea, eb),
            (_, Delta::None) => pl.propagate(p, Side::A, da),
            (Delta::None, _) => pl.propagate(p, Side::B, db),
            _ => match (ea, eb) {
                (None, None) => pl.push(Vec::new(), vec![Record::Remove(p.clone())], String::new()),
                // Metadata changed on both sides, contents as synced: the
                // same content (neither was hashed, as neither needed it).
                (Some(x), Some(y))
                    if same_content(x, y) || (da == Delta::Meta && db == Delta::Meta) =>
                {
                    // The same change on both sides: nothing moves. Modes
                    // that differ are settled by the newer side.
                    let mut steps = Vec::new();
                    if x.mode != y.mode {
                        let (from, src) = if x.mtime >= y.mtime {
                            (Side::A, x)
                        } else {
                            (Side::B, y)
                        };
                        steps.push(Step::on(
                            from.other(),
                            Op::SetAttr {
                                path: p.clone(),
                                attrs: mode_time(Some(src.mode), None),
                                expect: expect_of(Some(if from == Side::A { y } else { x })),
                                late: x.kind == EntryKind::Dir,
                            },
                        ));
                    }
                    let mut rec = synced_pair(x, y);
                    rec.blake3 = rec.blake3.or(st.and_then(|s| s.blake3));
                    if x.mode != y.mode {
                        let m = if x.mtime >= y.mtime { x.mode } else { y.mode };
                        rec.a.mode = m;
                        rec.b.mode = m;
                    }
                    pl.push(steps, vec![Record::Put(p.clone(), rec)], String::new());
                }
                // Modify beats delete: restore where it was deleted.
                (None, Some(y)) => pl.create(p, &y.clone(), Side::B, None, StashArea::Deleted),
                (Some(x), None) => pl.create(p, &x.clone(), Side::A, None, StashArea::Deleted),
                (Some(x), Some(y)) => pl.conflict(p, &x.clone(), &y.clone()),
            },
        }
    }
    pl.settle_dirs();
    pl.drop_covered_deletions();
    if o.remove_empty_dirs {
        pl.prune_empty_dirs();
    }
    if o.hard_links {
        pl.link_copies();
    }
    pl.restore_dir_times();
    count_deletions(&mut pl.plan, a, b);
    // Parents before children, whatever order the decisions came in.
    let mut plan = pl.plan;
    // Borrowed keys: a first sync sorts one change per file.
    plan.changes
        .sort_by(|x, y| first_path(x).cmp(&first_path(y)));
    if o.fuzzy {
        for (side, listing) in [(Side::A, a), (Side::B, b)] {
            let mut ops: Vec<&mut Op> = plan
                .changes
                .iter_mut()
                .flat_map(|c| c.steps.iter_mut())
                .filter(|s| s.side == side)
                .map(|s| &mut s.op)
                .collect();
            crate::fuzzy::choose(&mut ops, listing);
        }
    }
    plan
}

/// Counts the files each side loses (`Plan::deleted_files`): a deleted
/// file counts one, a deleted directory every file under it there, except
/// those moved out first. Run again after changes are dropped from a plan.
pub fn count_deletions(plan: &mut Plan, a: &HashMap<RelPath, Entry>, b: &HashMap<RelPath, Entry>) {
    let moved_out: HashSet<(Side, &RelPath)> = plan
        .changes
        .iter()
        .flat_map(|c| c.steps.iter())
        .filter_map(|s| match &s.op {
            Op::Move { from, .. } => Some((s.side, from)),
            _ => None,
        })
        .collect();
    // Each side's files, sorted, so the files under a removed path are one
    // range (made only for a side that loses something).
    let mut sorted: [Option<Vec<&[u8]>>; 2] = [None, None];
    let mut lost = [0u64; 2];
    for step in plan.changes.iter().flat_map(|c| c.steps.iter()) {
        let path = match &step.op {
            // An emptied directory: its files are counted already.
            Op::Remove {
                expect: Expect::EmptyDir,
                ..
            } => continue,
            Op::Stash {
                path,
                area: StashArea::Deleted,
                ..
            }
            | Op::Remove { path, .. } => path,
            _ => continue,
        };
        let files = sorted[idx(step.side)].get_or_insert_with(|| {
            let listing = if step.side == Side::A { a } else { b };
            let mut v: Vec<&[u8]> = listing
                .iter()
                .filter(|(q, e)| e.kind == EntryKind::File && !moved_out.contains(&(step.side, *q)))
                .map(|(q, _)| q.as_bytes())
                .collect();
            v.sort_unstable();
            v
        });
        lost[idx(step.side)] += files_under(files, path.as_bytes()) as u64;
    }
    plan.deleted_files = lost;
}

/// How many of `sorted` are `path` or under it (all of them under the root).
fn files_under(sorted: &[&[u8]], path: &[u8]) -> usize {
    if path.is_empty() {
        return sorted.len();
    }
    let itself = usize::from(sorted.binary_search(&path).is_ok());
    // Under `path`: from `path/` up to `path0` ('0' follows '/').
    let mut from = path.to_vec();
    from.push(b'/');
    let mut to = path.to_vec();
    to.push(b'/' + 1);
    let lo = sorted.partition_point(|q| *q < from.as_slice());
    let hi = sorted.partition_point(|q| *q < to.as_slice());
    itself + (hi - lo)
}

fn first_path(c: &Change) -> Option<&RelPath> {
    c.records
        .iter()
        .map(|r| match r {
            Record::Put(p, _) | Record::Remove(p) => p,
        })
        .min()
}

mod dirs;
mod links;
mod prune;
mod unsure;

pub use unsure::keep_unsure;
#[cfg(test)]
mod tests;
