//! Planning a one-way copy: a pure function from the source listing and the
//! destination listing to the steps that make the destination match. No
//! I/O happens here, so `--dry-run` prints exactly what a run would do, and
//! the tests check plans without touching a disk.
//!
//! Each step is a shared [`Op`] with an [`Item`]: what rsync's `-i` would
//! print for it.

use std::collections::{BTreeSet, HashMap, HashSet};

use deltasync_wire::{Attrs, Entry, EntryKind, Expect, Links, Owner};

use crate::exec::Op;
use crate::path::RelPath;

mod renames;

/// What decides that a file must be sent, and which attributes are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PlanOptions {
    /// Delete destination entries the source does not have (`--delete`).
    pub delete: bool,
    /// Compare contents by BLAKE3 instead of size and mtime (`--checksum`).
    pub checksum: bool,
    /// Keep owner and group (`-o`, `-g`).
    pub owner: bool,
    /// Compare and keep owners by number, not by name (`--numeric-ids`).
    pub numeric_ids: bool,
    /// Keep extended attributes (`-X`) or ACLs (`-A`).
    pub xattrs: bool,
    /// Keep hard links (`-H`).
    pub hard_links: bool,
    /// Send a new file as a delta against a similar one already at the
    /// destination (`-y`, `--fuzzy`; see `fuzzy.rs`).
    pub fuzzy: bool,
}

/// rsync's `YXcstpoguax` for one step: the update type, the file type,
/// then one column per attribute that changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Itemize {
    /// `<` sent, `>` received, `c` created locally, `h` hard link, `.` attributes only.
    pub update: char,
    /// `f` file, `d` directory, `L` symlink.
    pub kind: char,
    /// A new entry (`+++++++++`).
    pub new: bool,
    /// Contents differ by checksum.
    pub checksum: bool,
    /// Size differs.
    pub size: bool,
    /// Modification time differs.
    pub time: bool,
    /// Permissions differ.
    pub perms: bool,
    /// Owner or group differs.
    pub owner: bool,
    /// Extended attributes or ACLs differ.
    pub xattrs: bool,
}

impl Itemize {
    fn new_entry(update: char, kind: char) -> Itemize {
        Itemize {
            update,
            kind,
            new: true,
            checksum: false,
            size: false,
            time: false,
            perms: false,
            owner: false,
            xattrs: false,
        }
    }
}

impl std::fmt::Display for Itemize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.new {
            return write!(f, "{}{}+++++++++", self.update, self.kind);
        }
        let c = |b: bool, ch: char| if b { ch } else { '.' };
        write!(
            f,
            "{}{}{}{}{}{}{}{}..{}",
            self.update,
            self.kind,
            c(self.checksum, 'c'),
            c(self.size, 's'),
            c(self.time, 't'),
            c(self.perms, 'p'),
            c(self.owner, 'o'),
            c(self.owner, 'g'),
            c(self.xattrs, 'x'),
        )
    }
}

/// What `-i` says about a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A change: its code.
    Change(Itemize),
    /// A removal (`*deleting`).
    Deleting,
    /// Nothing worth a line (a directory's closing mtime).
    Quiet,
}

/// One step of a copy and how it is shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// What to do at the destination.
    pub op: Op,
    /// What `-i` prints for it.
    pub item: Item,
}

/// The steps of a copy, in the order they must run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Deletions, then creations and transfers (parents first), then hard
    /// links and directory mtimes (children first, after their contents).
    pub steps: Vec<Step>,
    /// Bytes in the source's files (rsync's "total size").
    pub total_size: u64,
    /// Source entries considered.
    pub files: u64,
}

fn owner_key(o: &Option<Owner>, numeric: bool) -> Option<(String, String)> {
    o.as_ref().map(|o| {
        if numeric || (o.user.is_empty() && o.group.is_empty()) {
            (o.uid.to_string(), o.gid.to_string())
        } else {
            (o.user.clone(), o.group.clone())
        }
    })
}

/// The owner a destination should get: without names under `--numeric-ids`.
fn owner_for(e: &Entry, o: &PlanOptions) -> Option<Owner> {
    if !o.owner {
        return None;
    }
    e.owner.clone().map(|mut w| {
        if o.numeric_ids {
            w.user.clear();
            w.group.clear();
        }
        w
    })
}

/// The attributes beyond mode and mtime that `e` carries to a new entry.
fn extra_attrs(e: &Entry, o: &PlanOptions) -> Attrs {
    Attrs {
        owner: owner_for(e, o),
        xattrs: if o.xattrs && e.kind != EntryKind::Symlink {
            e.xattrs.clone()
        } else {
            None
        },
        ..Attrs::default()
    }
}

fn expect_of(e: &Entry) -> Expect {
    match e.kind {
        EntryKind::File => Expect::File {
            size: e.size,
            mtime: e.mtime,
        },
        EntryKind::Dir => Expect::EmptyDir,
        EntryKind::Symlink => Expect::Symlink,
    }
}

fn kind_char(k: EntryKind) -> char {
    match k {
        EntryKind::File => 'f',
        EntryKind::Dir => 'd',
        EntryKind::Symlink => 'L',
    }
}

/// Plans the copy of `src` (paths under `from` on the source) to `dst`
/// (paths under `to` on the destination). `dir` is `<` when the
/// destination is remote (we send), `>` when it is local (we receive).
pub fn plan(
    src: &[Entry],
    dst: &[Entry],
    from: &RelPath,
    to: &RelPath,
    options: PlanOptions,
    dir: char,
) -> Plan {
    let o = &options;
    let parse = |e: &Entry| RelPath::parse(&e.path).ok();
    let there: HashMap<RelPath, &Entry> = dst
        .iter()
        .filter_map(|e| parse(e).map(|p| (p, e)))
        .collect();
    let mut wanted = HashSet::new();
    let mut plan = Plan::default();
    // With --delete, files about to go may be the new files, renamed.
    let mut departing = if o.delete {
        let keep: HashSet<RelPath> = src
            .iter()
            .filter_map(|e| parse(e).map(|p| p.rebase(from, to)))
            .collect();
        renames::Departing::new(&there, &keep, to)
    } else {
        renames::Departing::default()
    };
    let mut moves = Vec::new();
    let mut early = Vec::new();
    let mut middle = Vec::new();
    let mut late = Vec::new();
    // Hard-link groups: the first name of each source file, by (dev, ino).
    let mut first_name: HashMap<(u64, u64), RelPath> = HashMap::new();
    // Directories whose contents this plan changes: their mtimes move.
    let mut touched: BTreeSet<RelPath> = BTreeSet::new();
    for e in src {
        let Some(sp) = parse(e) else { continue };
        let path = sp.rebase(from, to);
        let sp_parent = path.parent();
        wanted.insert(path.clone());
        plan.files += 1;
        let old = there.get(&path).copied().filter(|o| o.kind == e.kind);
        if let Some(gone) = there.get(&path).filter(|o| o.kind != e.kind) {
            // A type change: the old entry goes first, whatever --delete says.
            early.extend(deletion(gone, &path, &there));
        }
        let before = middle.len();
        let mut step = |op: Op, item: Item| middle.push(Step { op, item });
        if let (true, Some(Links { dev, .. })) = (o.hard_links, e.links) {
            if let Some(first) = first_name.get(&(dev, e.ino)) {
                let linked = old.is_some_and(|old| {
                    old.links.is_some()
                        && there.get(first).is_some_and(|f| {
                            f.ino == old.ino && f.links.map(|l| l.dev) == old.links.map(|l| l.dev)
                        })
                });
                if !linked {
                    late.push(Step {
                        op: Op::Link {
                            path: path.clone(),
                            existing: first.clone(),
                            expect: Expect::Any,
                        },
                        item: Item::Change(Itemize::new_entry('h', 'f')),
                    });
                    touched.insert(path.parent());
                }
                plan.total_size += e.size;
                continue;
            }
            first_name.insert((dev, e.ino), path.clone());
        }
        let owner_differs = o.owner
            && old.is_some_and(|old| {
                owner_key(&old.owner, o.numeric_ids) != owner_key(&e.owner, o.numeric_ids)
            });
        let xattrs_differ = o.xattrs && old.is_some_and(|old| old.xattrs != e.xattrs);
        let extras = |with: bool| Attrs {
            owner: if owner_differs || with {
                owner_for(e, o)
            } else {
                None
            },
            xattrs: if (xattrs_differ || with) && o.xattrs && e.kind != EntryKind::Symlink {
                e.xattrs.clone()
            } else {
                None
            },
            ..Attrs::default()
        };
        let changes = |time: bool, perms: bool, update: char| Itemize {
            update,
            kind: kind_char(e.kind),
            new: false,
            checksum: false,
            size: false,
            time,
            perms,
            owner: owner_differs,
            xattrs: xattrs_differ,
        };
        match e.kind {
            EntryKind::Dir => {
                match old {
                    None => step(
                        Op::Mkdir {
                            path: path.clone(),
                            attrs: Attrs {
                                mode: Some(e.mode),
                                ..extra_attrs(e, o)
                            },
                        },
                        Item::Change(Itemize::new_entry('c', 'd')),
                    ),
                    Some(old) if old.mode != e.mode || owner_differs || xattrs_differ => step(
                        Op::SetAttr {
                            path: path.clone(),
                            attrs: Attrs {
                                mode: (old.mode != e.mode).then_some(e.mode),
                                ..extras(false)
                            },
                            expect: Expect::Dir,
                            late: false,
                        },
                        Item::Change(changes(old.mtime != e.mtime, old.mode != e.mode, '.')),
                    ),
                    Some(_) => {}
                }
                // Every directory's mtime is settled last (see `touched`).
                late.push(Step {
                    op: Op::SetAttr {
                        path,
                        attrs: Attrs {
                            mtime: Some(e.mtime),
                            ..Attrs::default()
                        },
                        expect: Expect::Dir,
                        late: true,
                    },
                    item: Item::Quiet,
                });
            }
            EntryKind::Symlink => match old {
                Some(old) if old.target == e.target => {
                    if old.mtime != e.mtime || owner_differs {
                        step(
                            Op::SetAttr {
                                path,
                                attrs: Attrs {
                                    mtime: Some(e.mtime),
                                    ..extras(false)
                                },
                                expect: Expect::Symlink,
                                late: false,
                            },
                            Item::Change(changes(old.mtime != e.mtime, false, '.')),
                        );
                    }
                }
                _ => step(
                    Op::Symlink {
                        path,
                        target: e.target.clone(),
                        attrs: Attrs {
                            mtime: Some(e.mtime),
                            ..extra_attrs(e, o)
                        },
                    },
                    Item::Change(match old {
                        None => Itemize::new_entry('c', 'L'),
                        Some(old) => Itemize {
                            checksum: true,
                            ..changes(old.mtime != e.mtime, false, 'c')
                        },
                    }),
                ),
            },
            EntryKind::File => {
                plan.total_size += e.size;
                // A move needs a free path under folders only: a file or
                // link in the way of a parent goes later, with the type
                // changes, so the new file is sent instead.
                let free =
                    !there.contains_key(&path) && renames::parents_are_folders(&path, &there);
                let renamed = free.then(|| departing.take(e, &path)).flatten();
                if let Some((was, old)) = renamed {
                    touched.insert(was.parent());
                    touched.insert(sp_parent);
                    moves.push(Step {
                        op: Op::Move {
                            from: was,
                            to: path.clone(),
                            expect: expect_of(old),
                        },
                        item: Item::Change(Itemize::new_entry('c', 'f')),
                    });
                    let same = o.checksum && old.blake3.is_some() && old.blake3 == e.blake3;
                    let fix = extras(true);
                    if !same {
                        // Size and mtime matched, across the tree: check
                        // the bytes too. The moved file is the basis, so a
                        // true rename costs a signature and an empty delta,
                        // and a false one is repaired here.
                        step(
                            Op::Transfer {
                                src: sp,
                                path,
                                size: e.size,
                                expect: Expect::Any,
                                attrs: extra_attrs(e, o),
                                known: None,
                                basis: None,
                            },
                            Item::Quiet,
                        );
                    } else if old.mode != e.mode || fix.owner.is_some() || fix.xattrs.is_some() {
                        step(
                            Op::SetAttr {
                                path,
                                attrs: Attrs {
                                    mode: Some(e.mode),
                                    ..fix
                                },
                                expect: expect_of(old),
                                late: false,
                            },
                            Item::Quiet,
                        );
                    }
                    continue;
                }
                let Some(old) = old else {
                    step(
                        Op::Transfer {
                            src: sp,
                            path,
                            size: e.size,
                            expect: Expect::Absent,
                            attrs: extra_attrs(e, o),
                            known: None,
                            basis: None,
                        },
                        Item::Change(Itemize::new_entry(dir, 'f')),
                    );
                    touched.insert(sp_parent);
                    continue;
                };
                let size = old.size != e.size;
                let time = old.mtime != e.mtime;
                let perms = old.mode != e.mode;
                let differs = if o.checksum {
                    size || old.blake3.is_none() || old.blake3 != e.blake3
                } else {
                    size || time
                };
                if differs {
                    step(
                        Op::Transfer {
                            src: sp,
                            path,
                            size: e.size,
                            expect: Expect::Any,
                            attrs: extra_attrs(e, o),
                            known: None,
                            basis: None,
                        },
                        Item::Change(Itemize {
                            checksum: o.checksum && !size,
                            size,
                            ..changes(time, perms, dir)
                        }),
                    );
                } else if time || perms || owner_differs || xattrs_differ {
                    step(
                        Op::SetAttr {
                            path,
                            attrs: Attrs {
                                mode: perms.then_some(e.mode),
                                mtime: time.then_some(e.mtime),
                                ..extras(false)
                            },
                            expect: expect_of(old),
                            late: false,
                        },
                        Item::Change(changes(time, perms, '.')),
                    );
                }
            }
        }
        if middle.len() > before {
            touched.insert(middle[before].op.path().parent());
        }
    }
    if o.delete {
        let gone: Vec<(&RelPath, &Entry)> = there
            .iter()
            .filter(|(p, _)| p.starts_with(to) && **p != *to && !wanted.contains(*p))
            .map(|(p, e)| (p, *e))
            .collect();
        // Only the topmost of a deleted subtree starts a deletion.
        let all: HashSet<&RelPath> = gone.iter().map(|g| g.0).collect();
        let mut tops: Vec<(&RelPath, &Entry)> = gone
            .into_iter()
            .filter(|(p, _)| {
                let mut parent = p.parent();
                while !parent.is_root() {
                    if all.contains(&parent) {
                        return false;
                    }
                    parent = parent.parent();
                }
                true
            })
            .collect();
        tops.sort_by(|a, b| a.0.cmp(b.0));
        for (p, e) in tops {
            early.extend(deletion(e, p, &there));
            touched.insert(p.parent());
        }
    }
    // Moved files are no longer there to delete, and they move before
    // anything is deleted.
    early.retain(|s| !matches!(&s.op, Op::Remove { path, .. } if departing.moved.contains(path)));
    moves.append(&mut early);
    let mut early = moves;
    for s in &early {
        touched.insert(s.op.path().parent());
    }
    // A directory's closing mtime is needed only if it differs or its
    // contents change; children first.
    late.retain(|s| match &s.op {
        Op::SetAttr {
            path,
            attrs,
            late: true,
            ..
        } => {
            touched.contains(path)
                || there
                    .get(path)
                    .is_none_or(|old| Some(old.mtime) != attrs.mtime)
        }
        _ => true,
    });
    let (links, mut dirs): (Vec<Step>, Vec<Step>) = late
        .into_iter()
        .partition(|s| matches!(s.op, Op::Link { .. }));
    dirs.reverse();
    early.append(&mut middle);
    early.extend(links);
    early.append(&mut dirs);
    if o.fuzzy {
        let mut ops: Vec<&mut Op> = early.iter_mut().map(|s| &mut s.op).collect();
        crate::fuzzy::choose(&mut ops, there.iter().map(|(p, e)| (p, *e)));
    }
    plan.steps = early;
    plan
}

/// Removes `e` at `p` and, for a directory, what the destination listing
/// shows under it: entry by entry, deepest first, each folder only once it
/// is empty. A folder that still holds what the listing did not show (an
/// excluded file) is never emptied of it: its removal fails, and it stays.
fn deletion(e: &Entry, p: &RelPath, there: &HashMap<RelPath, &Entry>) -> Vec<Step> {
    let mut under: Vec<(&RelPath, &Entry)> = if e.kind == EntryKind::Dir {
        there
            .iter()
            .filter(|(q, _)| q.starts_with(p) && *q != p)
            .map(|(q, e)| (q, *e))
            .collect()
    } else {
        Vec::new()
    };
    under.sort_by(|a, b| b.0.cmp(a.0)); // deepest (and last) first
    under.push((p, e));
    under
        .into_iter()
        .map(|(q, e)| Step {
            op: Op::Remove {
                path: q.clone(),
                expect: expect_of(e),
            },
            item: Item::Deleting,
        })
        .collect()
}

/// The line rsync's `-i` prints for a step, if any.
pub fn itemize_line(s: &Step) -> Option<String> {
    let path = s.op.path();
    let is_dir = matches!(
        &s.op,
        Op::Mkdir { .. }
            | Op::Remove {
                expect: Expect::EmptyDir | Expect::Dir,
                ..
            }
    ) || matches!(&s.item, Item::Change(i) if i.kind == 'd');
    let shown = if is_dir {
        format!("{}/", path.display())
    } else {
        path.display()
    };
    match (&s.item, &s.op) {
        (Item::Quiet, _) => None,
        (Item::Deleting, _) => Some(format!("*deleting   {shown}")),
        (Item::Change(i), Op::Symlink { target, .. }) => Some(format!(
            "{i} {shown} -> {}",
            String::from_utf8_lossy(target)
        )),
        (Item::Change(i), Op::Link { existing, .. }) => {
            Some(format!("{i} {shown} => {}", existing.display()))
        }
        (Item::Change(i), Op::Move { from, .. }) => {
            Some(format!("{i} {shown} (moved from {})", from.display()))
        }
        (Item::Change(i), _) => Some(format!("{i} {shown}")),
    }
}

#[cfg(test)]
mod tests;
