//! The executor against two in-process agents (the in-memory harness): no
//! child processes, the real protocol.

use std::path::Path;

use deltasync_wire::{Mtime, StashArea};

use super::*;
use crate::client::{self, AgentSpec, ConnectOptions};
use crate::location::Location;

fn agent(root: &Path) -> Agent {
    let options = ConnectOptions {
        in_process: true,
        ..ConnectOptions::default()
    };
    let spec = AgentSpec {
        root: root.display().to_string(),
        read_only: false,
        mkdir: false,
    };
    client::open(&Location::Local(root.to_path_buf()), &spec, &options, true).unwrap()
}

#[derive(Default)]
struct Seen(Vec<(usize, Outcome)>);

impl Observer for Seen {
    fn outcome(&mut self, index: usize, _op: &Op, outcome: &Outcome) {
        self.0.push((index, outcome.clone()));
    }
}

/// Two empty replica roots, `a` and `b`, in a temporary folder.
fn roots() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    (d, a, b)
}

/// `len` bytes in which no block repeats (a scrambled counter).
fn noise(len: u64) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8)
        .collect()
}

fn p(s: &str) -> RelPath {
    RelPath::parse(s.as_bytes()).unwrap()
}

fn transfer(path: &str, size: u64, expect: Expect) -> Op {
    Op::Transfer {
        src: p(path),
        path: p(path),
        size,
        expect,
        attrs: Attrs::default(),
        known: None,
        basis: None,
    }
}

#[test]
fn every_kind_of_step_runs_and_a_stale_one_fails_alone() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    std::fs::create_dir_all(a.join("dir")).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(a.join("dir/new.bin"), &big).unwrap();
    std::fs::write(a.join("edited.txt"), b"new text, longer than before").unwrap();
    std::fs::write(b.join("edited.txt"), b"old text").unwrap();
    std::fs::write(b.join("gone.txt"), b"delete me").unwrap();
    std::fs::write(b.join("stash.txt"), b"keep me aside").unwrap();
    std::fs::write(b.join("from.txt"), b"moving").unwrap();
    std::fs::write(b.join("stale.txt"), b"changed since the plan").unwrap();
    let old = std::fs::metadata(b.join("edited.txt")).unwrap();
    use std::os::unix::fs::MetadataExt;
    let edited_expect = Expect::File {
        size: old.len(),
        mtime: Mtime::new(old.mtime(), old.mtime_nsec()),
    };
    let ops = vec![
        Op::Mkdir {
            path: p("dir"),
            attrs: Attrs::default(),
        },
        transfer("dir/new.bin", big.len() as u64, Expect::Absent),
        transfer("edited.txt", 28, edited_expect),
        Op::Remove {
            path: p("gone.txt"),
            expect: Expect::Any,
        },
        Op::Stash {
            path: p("stash.txt"),
            area: StashArea::Deleted,
            expect: Expect::Any,
        },
        Op::Move {
            from: p("from.txt"),
            to: p("dir/to.txt"),
            expect: Expect::Any,
        },
        Op::Symlink {
            path: p("link"),
            target: b"dir/new.bin".to_vec(),
            attrs: Attrs::default(),
        },
        Op::Link {
            path: p("hard.bin"),
            existing: p("dir/new.bin"),
            expect: Expect::Absent,
        },
        // The plan saw no file here; there is one now: refused, alone.
        transfer("stale.txt", 3, Expect::Absent),
    ];
    std::fs::write(a.join("stale.txt"), b"new").unwrap();
    let (src, dst) = (agent(&a), agent(&b));
    let mut seen = Seen::default();
    execute(&ops, &src, &dst, &ExecOptions::default(), &mut seen).unwrap();
    seen.0.sort_by_key(|(i, _)| *i);
    let indexes: Vec<usize> = seen.0.iter().map(|(i, _)| *i).collect();
    assert_eq!(
        indexes,
        (0..ops.len()).collect::<Vec<_>>(),
        "one outcome per step"
    );
    for (i, outcome) in &seen.0[..ops.len() - 1] {
        assert!(
            matches!(outcome, Outcome::Done | Outcome::Sent(_)),
            "step {i} ({:?}): {outcome:?}",
            ops[*i]
        );
    }
    assert!(matches!(
        seen.0.last(),
        Some((
            _,
            Outcome::Failed {
                code: Code::Changed,
                ..
            }
        ))
    ));
    let Outcome::Sent(sent) = &seen.0[1].1 else {
        panic!()
    };
    assert_eq!(sent.blake3, *blake3::hash(&big).as_bytes());
    assert_eq!(sent.stat.size, big.len() as u64);
    assert_eq!(std::fs::read(b.join("dir/new.bin")).unwrap(), big);
    assert_eq!(
        std::fs::read(b.join("edited.txt")).unwrap(),
        b"new text, longer than before"
    );
    assert!(!b.join("gone.txt").exists() && !b.join("stash.txt").exists());
    assert_eq!(std::fs::read(b.join("dir/to.txt")).unwrap(), b"moving");
    assert_eq!(
        std::fs::read_link(b.join("link")).unwrap(),
        Path::new("dir/new.bin")
    );
    assert_eq!(
        std::fs::metadata(b.join("hard.bin")).unwrap().ino(),
        std::fs::metadata(b.join("dir/new.bin")).unwrap().ino()
    );
    assert_eq!(
        std::fs::read(b.join("stale.txt")).unwrap(),
        b"changed since the plan"
    );
    src.close().unwrap();
    dst.close().unwrap();
}

#[test]
fn an_edited_large_file_goes_in_rounds_and_sends_little() {
    let (_d, a, b) = roots();
    let old = noise(4u64 << 20);
    let mut new = old.clone();
    for k in 0..8usize {
        let at = 500_000 * k + 12_345;
        new[at..at + 50].fill(b'!');
    }
    new.splice(
        3_000_000..3_000_000,
        b"an insert that shifts what follows".iter().copied(),
    );
    std::fs::write(a.join("f"), &new).unwrap();
    std::fs::write(b.join("f"), &old).unwrap();
    let (src, dst) = (agent(&a), agent(&b));
    let run = |rounds: bool| {
        std::fs::write(b.join("f"), &old).unwrap();
        let mut seen = Seen::default();
        let o = ExecOptions {
            rounds,
            ..ExecOptions::default()
        };
        let op = transfer("f", new.len() as u64, Expect::Any);
        execute(&[op], &src, &dst, &o, &mut seen).unwrap();
        assert_eq!(std::fs::read(b.join("f")).unwrap(), new);
        match &seen.0[..] {
            [(0, Outcome::Sent(s))] => s.literal,
            other => panic!("{other:?}"),
        }
    };
    let (one, many) = (run(false), run(true));
    // Nine edits of 50 bytes or less: the edit and up to a 128-byte block
    // on each side, twice (a round's gap edges), in rounds; a whole 2 KiB
    // native block or more each in one round.
    assert!(
        many <= 9 * (50 + 4 * 128),
        "rounds sent {many} literal bytes"
    );
    assert!(one >= 9 * 2048, "one round sent {one} literal bytes");
}

#[test]
fn closing_an_agent_with_many_unread_replies_does_not_hang() {
    let d = tempfile::tempdir().unwrap();
    let a = agent(d.path());
    // More replies than the bounded incoming queue holds, none read.
    for _ in 0..300 {
        a.start(deltasync_wire::Request::Space).unwrap();
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(a.close().is_ok());
    });
    let closed = rx.recv_timeout(Duration::from_secs(20));
    assert_eq!(closed, Ok(true), "close() hung on a full reply queue");
}

#[test]
fn a_grown_file_whose_old_content_is_known_goes_as_its_tail_alone() {
    let (_d, a, b) = roots();
    let old = noise(1u64 << 20);
    let tail = b"one more line of the log\n".repeat(400);
    let mut appended = old.clone();
    appended.extend_from_slice(&tail);
    let mut edited = appended.clone();
    edited[1000] ^= 1; // grown, but not only at its end
    let (src, dst) = (agent(&a), agent(&b));
    let known = deltasync_wire::Partial {
        len: old.len() as u64,
        blake3: *blake3::hash(&old).as_bytes(),
    };
    // Returns the literal bytes and what the destination sent (a
    // signature, if one was asked for, and its replies).
    let run = |new: &[u8], o: &ExecOptions| {
        std::fs::write(a.join("f"), new).unwrap();
        std::fs::write(b.join("f"), &old).unwrap();
        let before = dst
            .stats
            .received
            .load(std::sync::atomic::Ordering::Relaxed);
        let mut op = transfer("f", new.len() as u64, Expect::Any);
        if let Op::Transfer { known: k, .. } = &mut op {
            *k = Some(known);
        }
        let mut seen = Seen::default();
        execute(&[op], &src, &dst, o, &mut seen).unwrap();
        assert_eq!(std::fs::read(b.join("f")).unwrap(), new);
        let sent = dst
            .stats
            .received
            .load(std::sync::atomic::Ordering::Relaxed)
            - before;
        match &seen.0[..] {
            [(0, Outcome::Sent(s))] => (s.literal, s.matched, sent),
            other => panic!("{other:?}"),
        }
    };
    let (literal, matched, dst_sent) = run(&appended, &ExecOptions::default());
    assert_eq!(literal, tail.len() as u64, "only the tail is literal");
    assert_eq!(matched, old.len() as u64);
    assert!(
        dst_sent < 200,
        "no signature: the destination sent {dst_sent} bytes"
    );
    // Not an append: the source says so, and the rounds take over.
    let (literal, _, dst_sent) = run(&edited, &ExecOptions::default());
    assert!(
        literal < tail.len() as u64 + 2048,
        "{literal} literal bytes"
    );
    assert!(
        dst_sent > 1000,
        "a signature was asked for: {dst_sent} bytes"
    );
    // --whole-file asks for no delta at all: the whole file goes.
    let whole = ExecOptions {
        whole_file: true,
        ..ExecOptions::default()
    };
    let (literal, matched, _) = run(&appended, &whole);
    assert_eq!((literal, matched), (appended.len() as u64, 0));
}

/// Many small new files go in a few batches, each file with its own
/// outcome: placed, or (alone) failed as it would have without batches.
/// A file grown past what a batch carries since it was listed, and one
/// that changed at the source mid-plan, go again the usual way.
#[test]
fn small_new_files_go_in_batches_and_each_ends_on_its_own() {
    let (_d, a, b) = roots();
    let n = 600;
    let mut ops = Vec::new();
    for i in 0..n {
        let name = format!("f{i}");
        let data = format!("file {i}\n").repeat(1 + i % 7);
        std::fs::write(a.join(&name), &data).unwrap();
        ops.push(transfer(&name, data.len() as u64, Expect::Absent));
    }
    // Listed small, grown past a batch's file limit since.
    let grown = vec![b'g'; deltasync_wire::MAX_BATCH_FILE as usize + 10];
    std::fs::write(a.join("grown"), &grown).unwrap();
    ops.push(transfer("grown", 10, Expect::Absent));
    // Gone from the source.
    ops.push(transfer("vanished", 10, Expect::Absent));
    // Absent when planned, there now at the destination.
    std::fs::write(a.join("taken"), b"new").unwrap();
    std::fs::write(b.join("taken"), b"someone else's").unwrap();
    ops.push(transfer("taken", 3, Expect::Absent));

    let (src, dst) = (agent(&a), agent(&b));
    let first_id = src.next_id();
    let mut seen = Seen::default();
    execute(&ops, &src, &dst, &ExecOptions::default(), &mut seen).unwrap();
    let asked = src.next_id() - first_id - 1;
    assert!(
        asked <= 6,
        "{asked} requests to the source for {} files: not batched",
        ops.len()
    );
    seen.0.sort_by_key(|(i, _)| *i);
    assert_eq!(seen.0.len(), ops.len(), "one outcome per file");
    for (i, outcome) in &seen.0[..n] {
        let name = format!("f{i}");
        let want = std::fs::read(a.join(&name)).unwrap();
        let Outcome::Sent(s) = outcome else {
            panic!("{name}: {outcome:?}");
        };
        assert_eq!(s.blake3, *blake3::hash(&want).as_bytes());
        assert_eq!(
            (s.literal, s.stat.size),
            (want.len() as u64, want.len() as u64)
        );
        assert_eq!(std::fs::read(b.join(&name)).unwrap(), want, "{name}");
    }
    assert!(matches!(&seen.0[n].1, Outcome::Sent(s) if s.stat.size == grown.len() as u64));
    assert_eq!(std::fs::read(b.join("grown")).unwrap(), grown);
    assert!(
        matches!(
            &seen.0[n + 1].1,
            Outcome::Failed {
                code: Code::Vanished,
                ..
            }
        ),
        "{:?}",
        seen.0[n + 1]
    );
    assert!(
        matches!(
            &seen.0[n + 2].1,
            Outcome::Failed {
                code: Code::Changed,
                ..
            }
        ),
        "{:?}",
        seen.0[n + 2]
    );
    assert_eq!(std::fs::read(b.join("taken")).unwrap(), b"someone else's");
    src.close().unwrap();
    dst.close().unwrap();
}

/// A new file with a similar file as its basis (`--fuzzy`) is sent as a
/// delta against it: few literal bytes, the right contents, and the basis
/// as it was. Large enough to go in rounds, whose later signatures must
/// also be the basis's.
#[test]
fn a_new_file_sent_against_a_similar_one_sends_what_differs() {
    let (_d, a, b) = roots();
    let old = noise(1u64 << 20);
    let mut new = old.clone();
    new[5000..5010].copy_from_slice(b"0123456789");
    new.extend_from_slice(b"and a tail");
    std::fs::write(b.join("v1.bin"), &old).unwrap();
    std::fs::write(a.join("v2.bin"), &new).unwrap();
    let mut op = transfer("v2.bin", new.len() as u64, Expect::Absent);
    if let Op::Transfer { basis, .. } = &mut op {
        *basis = Some(p("v1.bin"));
    }
    let (src, dst) = (agent(&a), agent(&b));
    let mut seen = Seen::default();
    execute(&[op], &src, &dst, &ExecOptions::default(), &mut seen).unwrap();
    let [(0, Outcome::Sent(s))] = &seen.0[..] else {
        panic!("{:?}", seen.0);
    };
    assert!(s.literal < 1000, "{} literal bytes", s.literal);
    assert_eq!(std::fs::read(b.join("v2.bin")).unwrap(), new);
    assert_eq!(
        std::fs::read(b.join("v1.bin")).unwrap(),
        old,
        "the basis stays"
    );
    src.close().unwrap();
    dst.close().unwrap();
}
