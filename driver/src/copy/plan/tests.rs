use deltasync_wire::Mtime;

use super::*;

fn e(path: &str, kind: EntryKind, size: u64, mtime: i64) -> Entry {
    Entry::new(path.as_bytes(), kind, size, Mtime::new(mtime, 0), 0o644)
}

fn lines(p: &Plan) -> Vec<String> {
    p.steps.iter().filter_map(itemize_line).collect()
}

fn r(s: &str) -> RelPath {
    RelPath::parse(s.as_bytes()).unwrap()
}

#[test]
fn a_first_copy_creates_everything_parents_first() {
    let src = [
        e("s", EntryKind::Dir, 0, 1),
        e("s/a", EntryKind::File, 3, 1),
        e("s/d", EntryKind::Dir, 0, 1),
        e("s/d/b", EntryKind::File, 4, 1),
    ];
    let p = plan(&src, &[], &r("s"), &r("s"), PlanOptions::default(), '>');
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
        .steps
        .iter()
        .rev()
        .take(2)
        .map(|s| match &s.op {
            Op::SetAttr {
                path, late: true, ..
            } => path.display(),
            _ => String::new(),
        })
        .collect();
    assert_eq!(last, ["s", "s/d"]);
}

#[test]
fn changes_deletes_and_type_clashes() {
    let root = RelPath::root();
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
    let delete = PlanOptions {
        delete: true,
        ..PlanOptions::default()
    };
    let p = plan(&src, &dst, &root, &root, delete, '<');
    let l = lines(&p);
    assert!(l.contains(&"<f.s....... grew".to_string()), "{l:?}");
    assert!(l.contains(&"<f..t...... touched".to_string()), "{l:?}");
    assert!(l.contains(&"*deleting   x".to_string()), "{l:?}");
    // A deleted folder goes entry by entry, the folder itself last and
    // only if empty: what the listing did not show (an excluded file)
    // keeps it.
    let at = |line: &str| l.iter().position(|x| x == line).unwrap();
    assert!(
        at("*deleting   old/inner") < at("*deleting   old/"),
        "{l:?}"
    );
    assert!(p.steps.iter().any(|s| matches!(
        &s.op,
        Op::Remove { path, expect: Expect::EmptyDir } if path == &r("old")
    )));
    assert!(!l.iter().any(|x| x.ends_with(" same")));
    let first_delete = l.iter().position(|x| x.starts_with('*')).unwrap();
    let first_create = l.iter().position(|x| !x.starts_with('*')).unwrap();
    assert!(first_delete < first_create, "deletions come first: {l:?}");
    let without = plan(&src, &dst, &root, &root, PlanOptions::default(), '<');
    assert!(
        !lines(&without).iter().any(|x| x.contains("old")),
        "no --delete, no deletion"
    );
}

#[test]
fn a_folder_whose_contents_change_gets_its_mtime_back() {
    let src = [
        e("d", EntryKind::Dir, 0, 100),
        e("d/new", EntryKind::File, 1, 5),
        e("quiet", EntryKind::Dir, 0, 100),
        e("quiet/f", EntryKind::File, 1, 5),
    ];
    let dst = [
        e("d", EntryKind::Dir, 0, 100), // same mtime, but a file lands in it
        e("quiet", EntryKind::Dir, 0, 100),
        e("quiet/f", EntryKind::File, 1, 5),
    ];
    let root = RelPath::root();
    let p = plan(&src, &dst, &root, &root, PlanOptions::default(), '>');
    let retimed: Vec<String> = p
        .steps
        .iter()
        .filter_map(|s| match &s.op {
            Op::SetAttr {
                path, late: true, ..
            } => Some(path.display()),
            _ => None,
        })
        .collect();
    assert_eq!(retimed, ["d"]);
}

#[test]
fn checksum_mode_ignores_mtime_for_content() {
    let mut a = e("f", EntryKind::File, 3, 1);
    a.blake3 = Some([1; 32]);
    let mut b = e("f", EntryKind::File, 3, 2);
    b.blake3 = Some([1; 32]);
    let root = RelPath::root();
    let sums = PlanOptions {
        checksum: true,
        ..PlanOptions::default()
    };
    let p = plan(&[a.clone()], &[b.clone()], &root, &root, sums, '>');
    assert!(matches!(
        &p.steps[..],
        [Step {
            op: Op::SetAttr { attrs: Attrs { mtime: Some(t), .. }, .. },
            ..
        }] if *t == Mtime::new(1, 0)
    ));
    b.blake3 = Some([2; 32]);
    let p = plan(&[a], &[b], &root, &root, sums, '>');
    assert_eq!(lines(&p), [">fc.t...... f"]);
}

#[test]
fn hard_links_become_links_after_the_transfers() {
    let linked = |path: &str| {
        let mut x = e(path, EntryKind::File, 4, 1);
        x.ino = 42;
        x.links = Some(Links { dev: 7, nlink: 2 });
        x
    };
    let src = [linked("a"), linked("b")];
    let root = RelPath::root();
    let o = PlanOptions {
        hard_links: true,
        ..PlanOptions::default()
    };
    let p = plan(&src, &[], &root, &root, o, '>');
    assert_eq!(lines(&p), [">f+++++++++ a", "hf+++++++++ b => a"]);
    assert!(p.steps[1].op.is_late());
    // Without -H, two files.
    let p = plan(&src, &[], &root, &root, PlanOptions::default(), '>');
    assert_eq!(lines(&p), [">f+++++++++ a", ">f+++++++++ b"]);
}

#[test]
fn owners_compare_by_name_unless_numeric() {
    let owned = |uid, user: &str| {
        let mut x = e("f", EntryKind::File, 1, 1);
        x.owner = Some(Owner {
            uid,
            gid: 1,
            user: user.into(),
            group: "g".into(),
        });
        x
    };
    let root = RelPath::root();
    let by_name = PlanOptions {
        owner: true,
        ..PlanOptions::default()
    };
    // The same name under another uid (another host) is the same owner.
    let p = plan(
        &[owned(1000, "ann")],
        &[owned(1001, "ann")],
        &root,
        &root,
        by_name,
        '>',
    );
    assert!(p.steps.is_empty(), "{:?}", lines(&p));
    let numeric = PlanOptions {
        numeric_ids: true,
        ..by_name
    };
    let p = plan(
        &[owned(1000, "ann")],
        &[owned(1001, "ann")],
        &root,
        &root,
        numeric,
        '>',
    );
    assert_eq!(lines(&p), [".f....og... f"]);
}

#[test]
fn with_delete_a_renamed_file_is_moved_not_sent() {
    let root = RelPath::root();
    let src = [
        e("new", EntryKind::Dir, 0, 1),
        e("new/a.txt", EntryKind::File, 10, 7),
        e("new/b.txt", EntryKind::File, 10, 7),
        e("fresh", EntryKind::File, 10, 8),
        e("empty", EntryKind::File, 0, 7),
    ];
    let dst = [
        e("old", EntryKind::Dir, 0, 1),
        e("old/b.txt", EntryKind::File, 10, 7),
        e("old/a.txt", EntryKind::File, 10, 7),
        e("old/gone", EntryKind::File, 3, 2),
        e("zero", EntryKind::File, 0, 7),
    ];
    let o = PlanOptions {
        delete: true,
        ..PlanOptions::default()
    };
    let p = plan(&src, &dst, &root, &root, o, '<');
    let moves: Vec<_> = p
        .steps
        .iter()
        .filter_map(|s| match &s.op {
            Op::Move { from, to, expect } => Some((from.display(), to.display(), *expect)),
            _ => None,
        })
        .collect();
    // Same name preferred; the mtime must match (fresh is sent); empty files are sent.
    assert_eq!(
        moves,
        [
            (
                "old/a.txt".into(),
                "new/a.txt".into(),
                Expect::File {
                    size: 10,
                    mtime: Mtime::new(7, 0)
                }
            ),
            (
                "old/b.txt".into(),
                "new/b.txt".into(),
                Expect::File {
                    size: 10,
                    mtime: Mtime::new(7, 0)
                }
            ),
        ]
    );
    let lines = lines(&p);
    assert!(
        lines.contains(&"<f+++++++++ fresh".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"<f+++++++++ empty".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"cf+++++++++ new/a.txt (moved from old/a.txt)".to_string()),
        "{lines:?}"
    );
    // The moves come first; the moved files are not deleted; the rest of old/ is.
    assert!(matches!(p.steps[0].op, Op::Move { .. }) && matches!(p.steps[1].op, Op::Move { .. }));
    let deleted: Vec<_> = p
        .steps
        .iter()
        .filter(|s| s.item == Item::Deleting)
        .map(|s| s.op.path().display())
        .collect();
    assert_eq!(deleted, ["old/gone", "old", "zero"]);
    // Without --delete nothing moves.
    let p = plan(&src, &dst, &root, &root, PlanOptions::default(), '<');
    assert!(!p.steps.iter().any(|s| matches!(s.op, Op::Move { .. })));
}

#[test]
fn a_rename_is_checked_by_a_transfer_and_never_goes_under_a_file_in_the_way() {
    let root = RelPath::root();
    let src = [
        e("n", EntryKind::Dir, 0, 1),
        e("n/x", EntryKind::File, 10, 7),
        e("y", EntryKind::File, 10, 7),
    ];
    let dst = [
        e("n", EntryKind::File, 3, 1),
        e("old", EntryKind::Dir, 0, 1),
        e("old/x", EntryKind::File, 10, 7),
    ];
    let o = PlanOptions {
        delete: true,
        ..PlanOptions::default()
    };
    let p = plan(&src, &dst, &root, &root, o, '<');
    // n/x may not move under the file n (removed later, with the type
    // change), so old/x goes to y, and y is then sent against itself.
    let ops: Vec<String> = p
        .steps
        .iter()
        .filter_map(|s| match &s.op {
            Op::Move { from, to, .. } => Some(format!("move {} {}", from.display(), to.display())),
            Op::Transfer { path, expect, .. } => {
                Some(format!("send {} {expect:?}", path.display()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(ops, ["move old/x y", "send n/x Absent", "send y Any"]);
    // With --checksum and equal hashes, the move alone does it.
    let mut src = src.to_vec();
    let mut dst = dst.to_vec();
    src[2].blake3 = Some([5; 32]);
    dst[2].blake3 = Some([5; 32]);
    let o = PlanOptions {
        delete: true,
        checksum: true,
        ..PlanOptions::default()
    };
    let p = plan(&src, &dst, &root, &root, o, '<');
    assert!(
        !p.steps
            .iter()
            .any(|s| matches!(&s.op, Op::Transfer { path, .. } if path.display() == "y"))
    );
    assert!(p.steps.iter().any(|s| matches!(&s.op, Op::Move { .. })));
}

/// `--fuzzy`: a new file gets a similar file of its folder as its basis,
/// never one this plan deletes, writes or moves, nor one in another
/// folder; without the flag, none.
#[test]
fn fuzzy_gives_a_new_file_a_similar_one_that_stays() {
    let root = RelPath::root();
    let src = [
        e("d", EntryKind::Dir, 0, 1),
        e("d/report-v2.txt", EntryKind::File, 1000, 1),
        e("d/report-v3.txt", EntryKind::File, 1100, 2),
        e("d/app-1.5.tar", EntryKind::File, 5000, 2),
        e("e", EntryKind::Dir, 0, 1),
        e("e/report-v4.txt", EntryKind::File, 1000, 2),
    ];
    let dst = [
        e("d", EntryKind::Dir, 0, 1),
        e("d/report-v2.txt", EntryKind::File, 1000, 1),
        // Gone from the source: deleted with --delete, so never a basis.
        e("d/app-1.4.tar", EntryKind::File, 5000, 1),
        e("e", EntryKind::Dir, 0, 1),
    ];
    let basis_of = |p: &Plan, path: &str| {
        p.steps.iter().find_map(|s| match &s.op {
            Op::Transfer {
                path: at, basis, ..
            } if *at == r(path) => Some(basis.clone()),
            _ => None,
        })
    };
    let fuzzy = PlanOptions {
        fuzzy: true,
        ..PlanOptions::default()
    };
    let p = plan(&src, &dst, &root, &root, fuzzy, '>');
    assert_eq!(
        basis_of(&p, "d/report-v3.txt"),
        Some(Some(r("d/report-v2.txt")))
    );
    assert_eq!(
        basis_of(&p, "d/app-1.5.tar"),
        Some(Some(r("d/app-1.4.tar")))
    );
    assert_eq!(
        basis_of(&p, "e/report-v4.txt"),
        Some(None),
        "another folder"
    );
    let deleting = PlanOptions {
        delete: true,
        ..fuzzy
    };
    let p = plan(&src, &dst, &root, &root, deleting, '>');
    assert_eq!(
        basis_of(&p, "d/report-v3.txt"),
        Some(Some(r("d/report-v2.txt")))
    );
    assert_eq!(
        basis_of(&p, "d/app-1.5.tar"),
        Some(None),
        "its old version is deleted"
    );
    let p = plan(&src, &dst, &root, &root, PlanOptions::default(), '>');
    assert_eq!(basis_of(&p, "d/report-v3.txt"), Some(None), "not asked for");
}
