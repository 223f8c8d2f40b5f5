//! Planning a one-way copy: a pure function from the source listing and the
//! destination listing to the list of actions that make the destination
//! match. No I/O happens here, so `--dry-run` prints exactly what a run
//! would do, and the tests check plans without touching a disk.

use std::collections::{HashMap, HashSet};

use deltasync_wire::{Entry, EntryKind, Expect};

use crate::path::RelPath;

/// What decides that a file must be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PlanOptions {
    /// Delete destination entries the source does not have (`--delete`).
    pub delete: bool,
    /// Compare contents by BLAKE3 instead of size and mtime (`--checksum`).
    pub checksum: bool,
}

/// One step of a copy. Paths are destination paths unless named `src`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Remove an entry (and everything under it).
    Delete {
        /// What to remove.
        path: RelPath,
        /// What it is.
        kind: EntryKind,
        /// What must be there for the removal to go ahead.
        expect: Expect,
    },
    /// Move an entry into the work directory: `.deltasync/deleted` (area 0)
    /// or `.deltasync/conflicts` (1; 2 keeps the file by hard link).
    Stash {
        /// What to stash.
        path: RelPath,
        /// Where to.
        area: u8,
        /// What must be there.
        expect: Expect,
    },
    /// Rename within the destination.
    Move {
        /// The old path.
        from: RelPath,
        /// The new path.
        to: RelPath,
        /// What must be at `from`.
        expect: Expect,
    },
    /// Create a directory.
    Mkdir {
        /// Where.
        path: RelPath,
        /// Permission bits.
        mode: u32,
    },
    /// Create or repoint a symlink.
    Symlink {
        /// Where.
        path: RelPath,
        /// Its target.
        target: Vec<u8>,
        /// Its mtime.
        mtime_ns: i64,
        /// rsync's itemize code.
        code: String,
    },
    /// Send a file's contents (a delta against the old one, if any).
    Transfer {
        /// The source path.
        src: RelPath,
        /// The destination path.
        path: RelPath,
        /// The source size.
        size: u64,
        /// rsync's itemize code.
        code: String,
        /// What the destination path must hold when the new file replaces it.
        expect: Expect,
    },
    /// Fix mode and/or mtime of an entry whose contents are right.
    SetAttr {
        /// Where.
        path: RelPath,
        /// New mode.
        mode: Option<u32>,
        /// New mtime.
        mtime_ns: Option<i64>,
        /// rsync's itemize code (empty for a directory's closing mtime).
        code: String,
        /// What must be there for the change to go ahead.
        expect: Expect,
    },
}

/// The actions of a copy, in the order they must run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Deletions, then creations and transfers (parents first), then
    /// directory attributes (children first, after their contents).
    pub actions: Vec<Action>,
    /// Bytes in the source's files (rsync's "total size").
    pub total_size: u64,
    /// Source entries considered.
    pub files: u64,
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
    let parse = |e: &Entry| RelPath::parse(&e.path).ok();
    let there: HashMap<RelPath, &Entry> = dst
        .iter()
        .filter_map(|e| parse(e).map(|p| (p, e)))
        .collect();
    let mut wanted = HashSet::new();
    let mut plan = Plan::default();
    let mut early = Vec::new();
    let mut late = Vec::new();
    for e in src {
        let Some(sp) = parse(e) else { continue };
        let path = sp.rebase(from, to);
        wanted.insert(path.clone());
        plan.files += 1;
        let old = there.get(&path).copied().filter(|o| o.kind == e.kind);
        if let Some(o) = there.get(&path).filter(|o| o.kind != e.kind) {
            // A type change: the old entry goes first, whatever --delete says.
            early.push(Action::Delete {
                path: path.clone(),
                kind: o.kind,
                expect: Expect::Any,
            });
        }
        match e.kind {
            EntryKind::Dir => {
                match old {
                    None => plan.actions.push(Action::Mkdir {
                        path: path.clone(),
                        mode: e.mode,
                    }),
                    Some(o) if o.mode != e.mode => plan.actions.push(Action::SetAttr {
                        path: path.clone(),
                        mode: Some(e.mode),
                        mtime_ns: None,
                        code: itemize('.', 'd', false, false, o.mtime_ns != e.mtime_ns, true),
                        expect: Expect::Any,
                    }),
                    Some(_) => {}
                }
                if old.is_none_or(|o| o.mtime_ns != e.mtime_ns) {
                    late.push(Action::SetAttr {
                        path,
                        mode: None,
                        mtime_ns: Some(e.mtime_ns),
                        code: String::new(),
                        expect: Expect::Any,
                    });
                }
            }
            EntryKind::Symlink => match old {
                Some(o) if o.target == e.target => {
                    if o.mtime_ns != e.mtime_ns {
                        plan.actions.push(Action::SetAttr {
                            path,
                            mode: None,
                            mtime_ns: Some(e.mtime_ns),
                            code: itemize('.', 'L', false, false, true, false),
                            expect: Expect::Any,
                        });
                    }
                }
                _ => plan.actions.push(Action::Symlink {
                    path,
                    target: e.target.clone(),
                    mtime_ns: e.mtime_ns,
                    code: match old {
                        None => new_code('c', 'L'),
                        Some(o) => itemize('c', 'L', true, false, o.mtime_ns != e.mtime_ns, false),
                    },
                }),
            },
            EntryKind::File => {
                plan.total_size += e.size;
                let Some(o) = old else {
                    plan.actions.push(Action::Transfer {
                        src: sp,
                        path,
                        size: e.size,
                        code: new_code(dir, 'f'),
                        expect: Expect::Any,
                    });
                    continue;
                };
                let size = o.size != e.size;
                let time = o.mtime_ns != e.mtime_ns;
                let perms = o.mode != e.mode;
                let differs = if options.checksum {
                    size || o.blake3.is_none() || o.blake3 != e.blake3
                } else {
                    size || time
                };
                if differs {
                    let sum = options.checksum && !size;
                    plan.actions.push(Action::Transfer {
                        src: sp,
                        path,
                        size: e.size,
                        code: itemize(dir, 'f', sum, size, time, perms),
                        expect: Expect::Any,
                    });
                } else if time || perms {
                    plan.actions.push(Action::SetAttr {
                        path,
                        mode: perms.then_some(e.mode),
                        mtime_ns: time.then_some(e.mtime_ns),
                        code: itemize('.', 'f', false, false, time, perms),
                        expect: Expect::Any,
                    });
                }
            }
        }
    }
    if options.delete {
        let mut gone: Vec<(&RelPath, &Entry)> = there
            .iter()
            .filter(|(p, _)| p.starts_with(to) && **p != *to && !wanted.contains(*p))
            .map(|(p, e)| (p, *e))
            .collect();
        // Only the topmost of a deleted subtree needs a command; deepest first.
        gone.sort_by(|a, b| b.0.cmp(a.0));
        let all: HashSet<&RelPath> = gone.iter().map(|g| g.0).collect();
        for (p, e) in gone {
            let mut parent = p.parent();
            let mut covered = false;
            while !parent.is_root() {
                covered |= all.contains(&parent);
                parent = parent.parent();
            }
            if !covered {
                early.push(Action::Delete {
                    path: p.clone(),
                    kind: e.kind,
                    expect: Expect::Any,
                });
            }
        }
    }
    late.reverse();
    early.append(&mut plan.actions);
    early.append(&mut late);
    plan.actions = early;
    plan
}

fn new_code(y: char, x: char) -> String {
    format!("{y}{x}+++++++++")
}

/// rsync's `YXcstpoguax`: update type, file type, then one column per
/// attribute (`.` unchanged). We track checksum, size, time and perms.
pub fn itemize(y: char, x: char, c: bool, s: bool, t: bool, p: bool) -> String {
    let f = |b: bool, ch: char| if b { ch } else { '.' };
    format!(
        "{y}{x}{}{}{}{}.....",
        f(c, 'c'),
        f(s, 's'),
        f(t, 't'),
        f(p, 'p')
    )
}

/// The line rsync's `-i` prints for an action (deletions: `*deleting`).
pub fn itemize_line(a: &Action) -> Option<String> {
    let shown = |p: &RelPath, dir: bool| {
        if dir {
            format!("{}/", p.display())
        } else {
            p.display()
        }
    };
    match a {
        Action::Delete { path, kind, .. } => Some(format!(
            "*deleting   {}",
            shown(path, *kind == EntryKind::Dir)
        )),
        Action::Mkdir { path, .. } => Some(format!("{} {}", new_code('c', 'd'), shown(path, true))),
        Action::Symlink {
            path, target, code, ..
        } => Some(format!(
            "{code} {} -> {}",
            path.display(),
            String::from_utf8_lossy(target)
        )),
        Action::Transfer { path, code, .. } => Some(format!("{code} {}", path.display())),
        Action::Stash { path, .. } => Some(format!("*stashing   {}", path.display())),
        Action::Move { from, to, .. } => Some(format!(
            "*moving     {} -> {}",
            from.display(),
            to.display()
        )),
        Action::SetAttr { code, .. } if code.is_empty() => None,
        Action::SetAttr { path, code, .. } => Some(format!(
            "{code} {}",
            shown(path, code.as_bytes()[1] == b'd')
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(path: &str, kind: EntryKind, size: u64, mtime: i64) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            kind,
            size,
            mtime_ns: mtime,
            mode: 0o644,
            target: Vec::new(),
            blake3: None,
            ino: 0,
        }
    }

    fn lines(p: &Plan) -> Vec<String> {
        p.actions.iter().filter_map(itemize_line).collect()
    }

    #[test]
    fn a_first_copy_creates_everything_parents_first() {
        let src = [
            e("s", EntryKind::Dir, 0, 1),
            e("s/a", EntryKind::File, 3, 1),
            e("s/d", EntryKind::Dir, 0, 1),
            e("s/d/b", EntryKind::File, 4, 1),
        ];
        let p = plan(
            &src,
            &[],
            &RelPath::parse(b"s").unwrap(),
            &RelPath::parse(b"s").unwrap(),
            PlanOptions::default(),
            '>',
        );
        assert_eq!(
            lines(&p),
            [
                "cd+++++++++ s/",
                ">f+++++++++ s/a",
                "cd+++++++++ s/d/",
                ">f+++++++++ s/d/b"
            ]
        );
        assert_eq!(p.total_size, 7);
        // Directory mtimes come last, deepest first.
        let last: Vec<_> = p
            .actions
            .iter()
            .rev()
            .take(2)
            .map(|a| match a {
                Action::SetAttr { path, .. } => path.display(),
                _ => String::new(),
            })
            .collect();
        assert_eq!(last, ["s", "s/d"]);
    }

    #[test]
    fn changes_deletes_and_type_clashes() {
        let from = RelPath::root();
        let src = [
            e("same", EntryKind::File, 1, 5),
            e("grew", EntryKind::File, 9, 5),
            e("touched", EntryKind::File, 1, 6),
            e("x", EntryKind::Dir, 0, 5),
        ];
        let dst = [
            e("same", EntryKind::File, 1, 5),
            e("grew", EntryKind::File, 1, 5),
            e("touched", EntryKind::File, 1, 5),
            e("x", EntryKind::File, 1, 5),
            e("old", EntryKind::Dir, 0, 5),
            e("old/inner", EntryKind::File, 1, 5),
        ];
        let p = plan(
            &src,
            &dst,
            &from,
            &from,
            PlanOptions {
                delete: true,
                checksum: false,
            },
            '<',
        );
        let l = lines(&p);
        assert!(l.contains(&"<f.s....... grew".to_string()), "{l:?}");
        assert!(l.contains(&"<f..t...... touched".to_string()), "{l:?}");

        assert!(l.contains(&"*deleting   x".to_string()), "{l:?}");
        assert!(l.contains(&"*deleting   old/".to_string()));
        assert!(
            !l.iter().any(|x| x.contains("old/inner")),
            "a deleted tree is one command"
        );
        assert!(!l.iter().any(|x| x.ends_with(" same")));
        let first_delete = l.iter().position(|x| x.starts_with('*')).unwrap();
        let first_create = l.iter().position(|x| !x.starts_with('*')).unwrap();
        assert!(first_delete < first_create, "deletions come first: {l:?}");
        let without = plan(&src, &dst, &from, &from, PlanOptions::default(), '<');
        assert!(
            !lines(&without).iter().any(|x| x.contains("old")),
            "no --delete, no deletion"
        );
    }

    #[test]
    fn checksum_mode_ignores_mtime_for_content() {
        let mut a = e("f", EntryKind::File, 3, 1);
        a.blake3 = Some([1; 32]);
        let mut b = e("f", EntryKind::File, 3, 2);
        b.blake3 = Some([1; 32]);
        let r = RelPath::root();
        let p = plan(
            &[a.clone()],
            &[b.clone()],
            &r,
            &r,
            PlanOptions {
                delete: false,
                checksum: true,
            },
            '>',
        );
        assert!(matches!(
            p.actions[..],
            [Action::SetAttr {
                mtime_ns: Some(1),
                ..
            }]
        ));
        b.blake3 = Some([2; 32]);
        let p = plan(
            &[a],
            &[b],
            &r,
            &r,
            PlanOptions {
                delete: false,
                checksum: true,
            },
            '>',
        );
        assert_eq!(lines(&p), [">fc.t...... f"]);
    }
}
