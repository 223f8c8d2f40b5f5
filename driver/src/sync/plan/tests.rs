//! The classic two-way change matrix, and the rules around it.

use super::*;

fn p(s: &str) -> RelPath {
    RelPath::parse(s.as_bytes()).unwrap()
}

fn file(path: &str, content: u8, mtime: i64) -> Entry {
    Entry {
        blake3: Some([content; 32]),
        ..Entry::new(
            path.as_bytes(),
            EntryKind::File,
            10,
            Mtime::new(mtime, 0),
            0o644,
        )
    }
}

fn dir(path: &str) -> Entry {
    Entry::new(path.as_bytes(), EntryKind::Dir, 0, Mtime::new(1, 0), 0o755)
}

fn listing(entries: &[Entry]) -> HashMap<RelPath, Entry> {
    entries
        .iter()
        .map(|e| (RelPath::parse(&e.path).unwrap(), e.clone()))
        .collect()
}

/// State as if `entries` had been synced, identical on both sides.
fn state(entries: &[Entry]) -> HashMap<RelPath, Synced> {
    entries
        .iter()
        .map(|e| (RelPath::parse(&e.path).unwrap(), synced_pair(e, e)))
        .collect()
}

fn opts() -> SyncOptions {
    SyncOptions {
        conflict: ConflictPolicy::Newest,
        prefer: Side::A,
        skip_deletion_a: false,
        skip_deletion_b: false,
        soft_delete: true,
        remove_empty_dirs: false,
        stamp: "20261125-120000".into(),
        owner: false,
        numeric_ids: false,
        xattrs: false,
        hard_links: false,
        fuzzy: false,
    }
}

fn lines(pl: &Plan) -> Vec<String> {
    pl.changes
        .iter()
        .filter(|c| !c.line.is_empty())
        .map(|c| c.line.clone())
        .collect()
}

#[test]
fn the_change_matrix() {
    let base = [
        file("same", 1, 1),
        file("newer_on_a", 1, 1),
        file("newer_on_b", 1, 1),
        file("del_on_a", 1, 1),
        file("del_on_b", 1, 1),
        file("both_a_newer", 1, 1),
        file("both_b_newer", 1, 1),
        file("newer_a_del_b", 1, 1),
        file("del_a_newer_b", 1, 1),
        file("del_both", 1, 1),
        file("identical", 1, 1),
    ];
    let st = state(&base);
    let a = listing(&[
        file("same", 1, 1),
        file("new_on_a", 2, 5),
        file("newer_on_a", 2, 5),
        file("newer_on_b", 1, 1),
        file("del_on_b", 1, 1),
        file("both_a_newer", 3, 9),
        file("both_b_newer", 3, 5),
        file("newer_a_del_b", 4, 5),
        file("identical", 7, 5),
    ]);
    let b = listing(&[
        file("same", 1, 1),
        file("new_on_b", 2, 5),
        file("newer_on_a", 1, 1),
        file("newer_on_b", 2, 5),
        file("del_on_a", 1, 1),
        file("both_a_newer", 4, 5),
        file("both_b_newer", 4, 9),
        file("del_a_newer_b", 4, 5),
        file("identical", 7, 6),
    ]);
    let pl = plan(&st, &a, &b, &opts());
    let l = lines(&pl);
    let has = |s: &str| l.iter().any(|x| x == s);
    assert!(has("a->b create   new_on_a"), "{l:#?}");
    assert!(has("a<-b create   new_on_b"), "{l:#?}");
    assert!(has("a->b update   newer_on_a"), "{l:#?}");
    assert!(has("a<-b update   newer_on_b"), "{l:#?}");
    assert!(has("a->b delete   del_on_a"), "{l:#?}");
    assert!(has("a<-b delete   del_on_b"), "{l:#?}");
    assert!(
        has("a->b conflict both_a_newer (a wins, b's kept in conflicts/)"),
        "{l:#?}"
    );
    assert!(
        has("a<-b conflict both_b_newer (b wins, a's kept in conflicts/)"),
        "{l:#?}"
    );
    // Modify beats delete, both ways.
    assert!(has("a->b create   newer_a_del_b"), "{l:#?}");
    assert!(has("a<-b create   del_a_newer_b"), "{l:#?}");
    assert!(
        !l.iter()
            .any(|x| x.contains("same") || x.contains("del_both") || x.contains("identical")),
        "{l:#?}"
    );
    // Deleted on both, and the same change on both: state only.
    assert!(
        pl.changes
            .iter()
            .any(|c| c.steps.is_empty() && c.records == vec![Record::Remove(p("del_both"))])
    );
    assert!(pl.changes.iter().any(|c| c.steps.is_empty()
        && matches!(&c.records[..], [Record::Put(q, _)] if *q == p("identical"))));
    assert_eq!(pl.conflicts.len(), 2);
    assert_eq!(pl.deleted_files, [1, 1]);
    // The conflict loser is kept before it is replaced.
    let c = pl
        .changes
        .iter()
        .find(|c| c.line.contains("both_a_newer"))
        .unwrap();
    assert!(
        matches!(
            &c.steps[0],
            Step {
                side: Side::B,
                op: Op::Stash {
                    area: StashArea::ConflictsLink,
                    ..
                }
            }
        ),
        "{:?}",
        c.steps
    );
}

#[test]
fn first_sync_is_the_union_and_equal_files_are_just_recorded() {
    let a = listing(&[
        file("only_a", 1, 1),
        file("both_same", 2, 1),
        file("both_differ", 3, 1),
    ]);
    let b = listing(&[
        file("only_b", 1, 1),
        file("both_same", 2, 7),
        file("both_differ", 4, 2),
    ]);
    let pl = plan(&HashMap::new(), &a, &b, &opts());
    let l = lines(&pl);
    assert!(
        l.contains(&"a->b create   only_a".to_string())
            && l.contains(&"a<-b create   only_b".to_string()),
        "{l:#?}"
    );
    assert!(
        l.iter().any(|x| x.contains("conflict both_differ (b wins")),
        "newer b wins: {l:#?}"
    );
    assert!(!l.iter().any(|x| x.contains("both_same")), "{l:#?}");
}

#[test]
fn policies() {
    let st = state(&[file("f", 1, 1)]);
    let a = listing(&[file("f", 2, 9)]);
    let b = listing(&[file("f", 3, 5)]);
    let with = |c| {
        plan(
            &st,
            &a,
            &b,
            &SyncOptions {
                conflict: c,
                ..opts()
            },
        )
    };
    assert!(lines(&with(ConflictPolicy::PreferB))[0].contains("(b wins"));
    let skip = with(ConflictPolicy::Skip);
    assert!(skip.changes.is_empty() && skip.skipped.len() == 1);
    let both = with(ConflictPolicy::KeepBoth);
    let c = &both.changes[0];
    assert!(
        matches!(&c.steps[0], Step { side: Side::B, op: Op::Move { to, .. } } if to.display() == "f.conflict-20261125-120000-b"),
        "{:?}",
        c.steps
    );
    assert_eq!(
        c.steps.len(),
        3,
        "loser steps aside, each side gets the other's"
    );
    // A tie on mtime goes to --prefer.
    let tie = plan(
        &st,
        &listing(&[file("f", 2, 5)]),
        &b,
        &SyncOptions {
            prefer: Side::B,
            ..opts()
        },
    );
    assert!(lines(&tie)[0].contains("(b wins"));
}

#[test]
fn keep_both_picks_a_free_name_when_its_first_choice_is_taken() {
    let first = "f.conflict-20261125-120000-b";
    let st = state(&[file("f", 1, 1)]);
    // The first choice exists on A already (a user's file, or an earlier
    // conflict in the same second).
    let a = listing(&[file("f", 2, 5), file(first, 9, 1)]);
    let b = listing(&[file("f", 3, 4)]);
    let pl = plan(
        &st,
        &a,
        &b,
        &SyncOptions {
            conflict: ConflictPolicy::KeepBoth,
            ..opts()
        },
    );
    let moved_to: Vec<String> = pl
        .changes
        .iter()
        .flat_map(|c| &c.steps)
        .filter_map(|s| match &s.op {
            Op::Move { to, .. } => Some(to.display()),
            _ => None,
        })
        .collect();
    assert_eq!(moved_to, vec!["f.conflict-20261125-120000-b-2".to_string()]);
}

#[test]
fn skip_deletion_keeps_the_file_and_does_not_flip_back() {
    let st = state(&[file("f", 1, 1)]);
    let a = listing(&[]);
    let b = listing(&[file("f", 1, 1)]);
    let pl = plan(
        &st,
        &a,
        &b,
        &SyncOptions {
            skip_deletion_b: true,
            ..opts()
        },
    );
    assert!(pl.changes.is_empty(), "{:?}", pl.changes);
}

#[test]
fn renames_become_moves() {
    let st = state(&[file("old/name.txt", 5, 1), dir("old")]);
    let a = listing(&[dir("new"), file("new/name.txt", 5, 1)]);
    let b = listing(&[dir("old"), file("old/name.txt", 5, 1)]);
    let pl = plan(&st, &a, &b, &opts());
    let l = lines(&pl);
    assert!(
        l.contains(&"a->b move     old/name.txt -> new/name.txt".to_string()),
        "{l:#?}"
    );
    assert!(
        !pl.changes
            .iter()
            .any(|c| c.steps.iter().any(|s| matches!(s.op, Op::Transfer { .. }))),
        "nothing is sent again: {l:#?}"
    );
    assert!(l.contains(&"a->b delete   old/".to_string()), "{l:#?}");
    assert_eq!(
        pl.deleted_files,
        [0, 0],
        "a file moved out of a deleted folder is not lost"
    );
}

#[test]
fn a_deleted_directory_goes_whole_or_is_restored() {
    let st = state(&[dir("d"), file("d/x", 1, 1), file("d/y", 1, 1)]);
    let b = listing(&[dir("d"), file("d/x", 1, 1), file("d/y", 1, 1)]);
    let pl = plan(&st, &listing(&[]), &b, &opts());
    let mut l = lines(&pl);
    l.sort();
    assert_eq!(
        l,
        ["a->b delete   d/", "a->b delete   d/x", "a->b delete   d/y"],
        "each entry goes, then the emptied directory"
    );
    let rmdir = pl
        .changes
        .iter()
        .flat_map(|c| c.steps.iter())
        .find(|s| matches!(&s.op, Op::Remove { path, .. } if path == &p("d")));
    assert!(
        matches!(
            rmdir.map(|s| &s.op),
            Some(Op::Remove {
                expect: Expect::EmptyDir,
                ..
            })
        ),
        "the directory goes only if empty, so nothing unlisted goes with it: {rmdir:?}"
    );
    assert_eq!(pl.deleted_files, [0, 2]);
    // If b changed something inside, the directory comes back on a with it.
    let b2 = listing(&[dir("d"), file("d/x", 9, 9), file("d/y", 1, 1)]);
    let l = lines(&plan(&st, &listing(&[]), &b2, &opts()));
    assert!(
        l.contains(&"a<-b create   d/".to_string()) && l.contains(&"a<-b create   d/x".to_string()),
        "{l:#?}"
    );
    assert!(l.contains(&"a->b delete   d/y".to_string()), "{l:#?}");
}

#[test]
fn a_deleted_tree_of_nested_folders_goes_whole() {
    let tree = [dir("d"), dir("d/s"), dir("d/s/t"), file("d/s/t/f", 1, 1)];
    let st = state(&tree);
    let pl = plan(&st, &listing(&[]), &listing(&tree), &opts());
    let l = lines(&pl);
    for want in [
        "a->b delete   d/s/t/f",
        "a->b delete   d/s/t/",
        "a->b delete   d/s/",
        "a->b delete   d/",
    ] {
        assert!(l.contains(&want.to_string()), "{want}: {l:#?}");
    }
    assert!(
        !l.iter().any(|x| x.contains("create")),
        "nothing comes back: {l:#?}"
    );
}

#[test]
fn a_folder_replaced_by_a_file_keeps_changes_made_inside_it() {
    let st = state(&[dir("d"), file("d/f", 1, 1), file("d/g", 2, 1)]);
    // a replaced the folder with a file; b edited d/f meanwhile.
    let a = listing(&[file("d", 7, 5)]);
    let b = listing(&[dir("d"), file("d/f", 9, 9), file("d/g", 2, 1)]);
    let pl = plan(&st, &a, &b, &opts());
    let l = lines(&pl);
    assert_eq!(pl.conflicts.len(), 1, "{:#?}", pl.conflicts);
    assert!(
        l.contains(&"a<-b create   d/f".to_string()),
        "the edit inside is restored on a: {l:#?}"
    );
    let stashed_on_a = pl.changes.iter().flat_map(|c| c.steps.iter()).any(|s| {
        matches!(s, Step { side: Side::A, op: Op::Stash { path, area: StashArea::Conflicts, .. } } if path == &p("d"))
    });
    assert!(stashed_on_a, "a's file is kept in conflicts/: {pl:#?}");
    assert!(
        !pl.changes.iter().flat_map(|c| c.steps.iter()).any(|s| {
            matches!(s, Step { side: Side::B, op: Op::Stash { path, .. } } if path == &p("d"))
        }),
        "b's folder is not swept away: {l:#?}"
    );
    // With nothing changed inside, the file replaces the folder.
    let b2 = listing(&[dir("d"), file("d/f", 1, 1), file("d/g", 2, 1)]);
    let pl = plan(&st, &a, &b2, &opts());
    assert!(pl.conflicts.is_empty(), "{:#?}", pl.conflicts);
    assert!(
        lines(&pl).contains(&"a->b update   d".to_string()),
        "{:#?}",
        lines(&pl)
    );
}

#[test]
fn type_clash_keeps_both_versions() {
    let st = state(&[file("t", 1, 1)]);
    let a = listing(&[dir("t"), file("t/inner", 2, 2)]);
    let b = listing(&[file("t", 3, 9)]);
    let pl = plan(&st, &a, &b, &opts());
    let c = pl
        .changes
        .iter()
        .find(|c| c.line.contains(" t/"))
        .expect("t");
    assert!(
        matches!(
            &c.steps[0],
            Step {
                side: Side::B,
                op: Op::Stash {
                    area: StashArea::Conflicts,
                    ..
                }
            }
        ),
        "{:?}",
        c.steps
    );
    assert!(matches!(
        &c.steps[1],
        Step {
            side: Side::B,
            op: Op::Mkdir { .. }
        }
    ));
    assert_eq!(pl.conflicts.len(), 1);
}

#[test]
fn emptied_directories_go_with_empty_dirs_remove() {
    let st = state(&[dir("d"), dir("d/e"), file("d/e/x", 1, 1), dir("keep")]);
    let a = listing(&[dir("d"), dir("d/e"), dir("keep")]);
    let b = listing(&[dir("d"), dir("d/e"), file("d/e/x", 1, 1), dir("keep")]);
    let mut o = opts();
    o.remove_empty_dirs = true;
    let pl = plan(&st, &a, &b, &o);
    let l = lines(&pl);
    for want in [
        "a->b delete   d/e/x",
        "a<-b rmdir    d/e/",
        "a->b rmdir    d/e/",
        "a<-b rmdir    d/",
        "a->b rmdir    d/",
    ] {
        assert!(l.contains(&want.to_string()), "{want}: {l:#?}");
    }
    assert!(
        !l.iter().any(|x| x.contains("keep")),
        "a directory already empty at the last sync stays: {l:#?}"
    );
    assert_eq!(
        pl.deleted_files,
        [0, 1],
        "an emptied directory counts no file twice"
    );
    let l = lines(&plan(&st, &a, &b, &opts()));
    assert!(
        !l.iter().any(|x| x.contains("rmdir")),
        "keep is the default: {l:#?}"
    );
    // Something arriving keeps the directory.
    let b2 = listing(&[
        dir("d"),
        dir("d/e"),
        file("d/e/x", 1, 1),
        file("d/new", 2, 2),
        dir("keep"),
    ]);
    let l = lines(&plan(&st, &a, &b2, &o));
    assert!(l.contains(&"a<-b rmdir    d/e/".to_string()), "{l:#?}");
    assert!(
        !l.iter()
            .any(|x| x.contains("rmdir    d/\n") || x.ends_with("rmdir    d/")),
        "{l:#?}"
    );
}

#[test]
fn the_same_chmod_on_both_sides_is_no_conflict() {
    // A run killed after applying a chmod to B and before recording it:
    // both sides now differ from the state in mode only.
    let st = state(&[file("f", 3, 5)]);
    let mut fa = file("f", 3, 5);
    fa.mode = 0o600;
    fa.blake3 = None; // not hashed: size and mtime did not move
    let fb = fa.clone();
    let pl = plan(&st, &listing(&[fa]), &listing(&[fb]), &opts());
    assert!(pl.conflicts.is_empty(), "{:#?}", pl.conflicts);
    assert!(pl.changes.iter().all(|c| c.steps.is_empty()), "{pl:#?}");
    match &pl.changes[..] {
        [c] => match &c.records[..] {
            [Record::Put(_, s)] => {
                assert_eq!(s.blake3, Some([3; 32]), "the known hash is kept");
                assert_eq!((s.a.mode, s.b.mode), (0o600, 0o600));
            }
            other => panic!("{other:#?}"),
        },
        other => panic!("{other:#?}"),
    }
}

#[test]
fn an_update_knows_the_destinations_content_only_while_it_is_as_recorded() {
    let old = file("log", 1, 1);
    let grown = |mtime| Entry {
        size: 20,
        ..file("log", 2, mtime)
    };
    let known_of = |st: &HashMap<RelPath, Synced>, b: &Entry| {
        let pl = plan(
            st,
            &listing(&[grown(2)]),
            &listing(std::slice::from_ref(b)),
            &opts(),
        );
        let transfers: Vec<_> = pl
            .changes
            .iter()
            .flat_map(|c| &c.steps)
            .filter_map(|s| match &s.op {
                Op::Transfer { known, .. } => Some(*known),
                _ => None,
            })
            .collect();
        assert_eq!(transfers.len(), 1, "{:?}", lines(&pl));
        transfers[0]
    };
    let st = state(std::slice::from_ref(&old));
    // B as synced: the state's length and hash go with the transfer.
    assert_eq!(
        known_of(&st, &old),
        Some(Partial {
            len: 10,
            blake3: [1; 32]
        })
    );
    // B moved under another inode since: not known.
    let mut replaced = old.clone();
    replaced.ino = 77;
    let mut st_ino = st.clone();
    st_ino.get_mut(&p("log")).unwrap().b.ino = 76;
    assert_eq!(known_of(&st_ino, &replaced), None);
    // A record without a hash: not known.
    let mut unhashed = st.clone();
    unhashed.get_mut(&p("log")).unwrap().blake3 = None;
    assert_eq!(known_of(&unhashed, &old), None);
}

/// `--fuzzy`: a file new to a side takes a similar file that side keeps
/// as its basis; one the same run deletes there never serves.
#[test]
fn fuzzy_gives_each_side_a_similar_file_it_keeps() {
    let base = [file("d/v1.txt", 1, 1), file("e/old-1.txt", 1, 1)];
    let st = state(&base);
    // v2 is new on A; B still has v1. B's old-1 is deleted on A and
    // old-2 is new on A, so the old one leaves B as old-2 arrives.
    let a = listing(&[
        dir("d"),
        dir("e"),
        file("d/v1.txt", 1, 1),
        file("d/v2.txt", 2, 5),
        file("e/old-2.txt", 3, 5),
    ]);
    let b = listing(&[
        dir("d"),
        dir("e"),
        file("d/v1.txt", 1, 1),
        file("e/old-1.txt", 1, 1),
    ]);
    let basis_of = |pl: &Plan, path: &str| {
        pl.changes
            .iter()
            .flat_map(|c| c.steps.iter())
            .find_map(|s| match &s.op {
                Op::Transfer {
                    path: at, basis, ..
                } if *at == p(path) && s.side == Side::B => Some(basis.clone()),
                _ => None,
            })
    };
    let fuzzy = SyncOptions {
        fuzzy: true,
        ..opts()
    };
    let pl = plan(&st, &a, &b, &fuzzy);
    assert_eq!(basis_of(&pl, "d/v2.txt"), Some(Some(p("d/v1.txt"))));
    assert_eq!(basis_of(&pl, "e/old-2.txt"), Some(None), "old-1 leaves B");
    let pl = plan(&st, &a, &b, &opts());
    assert_eq!(basis_of(&pl, "d/v2.txt"), Some(None), "not asked for");
}

/// The files under a removed path are counted by range, as the naive
/// `starts_with` count over the whole listing would count them: the path
/// itself, its children, none of its look-alike siblings (`a-x`, `a.b`,
/// `a0`, `ab`), everything under the root.
#[test]
fn files_under_a_path_are_counted_as_starts_with_would() {
    let names = [
        "a", "a-x", "a.b", "a/b", "a/b/c", "a/c", "a0", "ab", "b", "b/a", "c/a/b",
    ];
    let mut sorted: Vec<&[u8]> = names.iter().map(|n| n.as_bytes()).collect();
    sorted.sort_unstable();
    for path in ["", "a", "a/b", "b", "c", "c/a", "z", "a-x"] {
        let naive = names.iter().filter(|n| p(n).starts_with(&p(path))).count();
        assert_eq!(
            files_under(&sorted, path.as_bytes()),
            naive,
            "under {path:?}"
        );
    }
}
