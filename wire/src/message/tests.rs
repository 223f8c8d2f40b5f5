//! Round trips and truncation for every message.

use super::*;

fn entry() -> Entry {
    Entry {
        path: b"dir/f\xffile".to_vec(),
        kind: EntryKind::Symlink,
        size: 1 << 40,
        mtime: Mtime::new(-5, 7),
        mode: 0o755,
        target: b"../x".to_vec(),
        blake3: Some([9; 32]),
        ino: 77,
        owner: Some(Owner {
            uid: 1000,
            gid: 100,
            user: "ann".into(),
            group: "users".into(),
        }),
        links: Some(Links {
            dev: 2049,
            nlink: 3,
        }),
        xattrs: Some(vec![Xattr {
            name: b"user.comment".to_vec(),
            value: vec![0, 1, 2],
        }]),
    }
}

fn samples() -> Vec<Message> {
    let stat = FileStat {
        size: 3,
        mtime: Mtime::new(17_000_000_000, 5), // past 2262
        mode: 0o644,
    };
    let partial = Partial {
        len: 12,
        blake3: [1; 32],
    };
    let attrs = Attrs {
        mode: Some(0o600),
        mtime: Some(Mtime::new(-100, 0)),
        owner: entry().owner,
        xattrs: Some(Vec::new()),
    };
    let call = |id, req| Message::Call { id, req };
    let reply = |id, rep| Message::Reply { id, rep };
    let feed = |id, feed| Message::Feed { id, feed };
    vec![
        Message::Hello(Hello {
            version: 1,
            program: "deltasync 0.1".into(),
            features: 1,
            max_frame: 1 << 20,
            compress_level: -3,
        }),
        Message::Bye,
        Message::Cancel { id: 9 },
        call(
            2,
            Request::List {
                under: b"sub".to_vec(),
                filters: vec!["*.o".into(), "/target/".into()],
                wants: ListWants {
                    checksum: true,
                    owner: true,
                    hard_links: false,
                    xattrs: true,
                    acls: true,
                },
                if_digest: Some([3; 32]),
            },
        ),
        call(
            3,
            Request::Signature {
                path: b"f".to_vec(),
                full_sums: true,
                resume: false,
                shape: SigShape::Native,
            },
        ),
        call(
            3,
            Request::Signature {
                path: b"f".to_vec(),
                full_sums: false,
                resume: true,
                shape: SigShape::Coarse,
            },
        ),
        call(
            3,
            Request::Signature {
                path: b"f".to_vec(),
                full_sums: false,
                resume: false,
                shape: SigShape::Spans {
                    block_len: 128,
                    spans: vec![span(0, 1), span(5, 1 << 40), span(u64::MAX - 1, 1)],
                },
            },
        ),
        call(
            4,
            Request::Delta {
                path: b"f".to_vec(),
                skip: Some(partial),
                prefix: None,
                plan: None,
            },
        ),
        call(
            4,
            Request::Delta {
                path: b"f".to_vec(),
                skip: None,
                prefix: Some(partial),
                plan: Some(vec![run(0, 900, 5), run(5, 0, 7), run(1 << 50, 1 << 60, 1)]),
            },
        ),
        call(
            4,
            Request::Match {
                path: b"f".to_vec(),
                spans: Vec::new(),
                basis: vec![span(3, 4)],
            },
        ),
        call(
            5,
            Request::Patch {
                path: b"f".to_vec(),
                resume_len: 9,
                expect: Expect::File {
                    size: 3,
                    mtime: Mtime::new(-1, 0),
                },
                attrs: attrs.clone(),
                sparse: true,
                basis: Some(b"old/f".to_vec()),
            },
        ),
        call(
            6,
            Request::Hash {
                path: b"f".to_vec(),
            },
        ),
        call(
            7,
            Request::Mkdir {
                path: b"d".to_vec(),
                attrs: Attrs {
                    mode: Some(0o700),
                    ..Attrs::default()
                },
            },
        ),
        call(
            8,
            Request::Symlink {
                path: b"l".to_vec(),
                target: b"/etc".to_vec(),
                attrs: attrs.clone(),
            },
        ),
        call(
            8,
            Request::Link {
                path: b"h".to_vec(),
                existing: b"f".to_vec(),
                expect: Expect::Absent,
            },
        ),
        call(
            9,
            Request::SetAttr {
                path: b"f".to_vec(),
                attrs,
                expect: Expect::EmptyDir,
            },
        ),
        call(
            10,
            Request::Remove {
                path: b"f".to_vec(),
                expect: Expect::Dir,
            },
        ),
        call(
            11,
            Request::Stash {
                path: b"f".to_vec(),
                area: StashArea::ConflictsLink,
                expect: Expect::Symlink,
            },
        ),
        call(
            12,
            Request::Rename {
                from: b"a".to_vec(),
                to: b"b/c".to_vec(),
                expect: Expect::Any,
            },
        ),
        call(13, Request::ReplicaId { create: true }),
        call(
            14,
            Request::Lock {
                owner: "host 12 now".into(),
                force: false,
                replica: None,
            },
        ),
        call(
            21,
            Request::Lock {
                owner: "host 12 later".into(),
                force: true,
                replica: Some("r-1234".into()),
            },
        ),
        call(15, Request::Unlock),
        call(16, Request::Purge { days: 30 }),
        call(19, Request::Space),
        call(20, Request::Watch),
        call(
            17,
            Request::Pair {
                pair: "p1".into(),
                set: Some("other".into()),
            },
        ),
        call(
            18,
            Request::Pair {
                pair: "p1".into(),
                set: None,
            },
        ),
        feed(4, Feed::SigChunk(vec![1, 2, 3])),
        feed(4, Feed::SigEnd),
        feed(5, Feed::DeltaChunk(Vec::new())),
        feed(
            5,
            Feed::DeltaEnd {
                stat,
                blake3: [2; 32],
            },
        ),
        feed(4, Feed::Credit(1 << 21)),
        reply(1, Reply::error(Code::FileIo, b"a", "nope")),
        reply(
            1,
            Reply::Notice {
                code: Code::Skipped,
                path: b"fifo".to_vec(),
                message: "a FIFO".into(),
            },
        ),
        reply(
            20,
            Reply::Changed {
                paths: vec![b"a/b".to_vec(), Vec::new()],
                overflow: false,
            },
        ),
        reply(
            20,
            Reply::Changed {
                paths: Vec::new(),
                overflow: true,
            },
        ),
        reply(
            4,
            Reply::Matched {
                stat: FileStat {
                    size: 9,
                    mtime: Mtime::new(5, 6),
                    mode: 0o644,
                },
                runs: vec![run(7, 3, 1), run(8, 0, 2)],
            },
        ),
        reply(1, Reply::Done),
        reply(1, Reply::Value("abc".into())),
        reply(2, Reply::Entry(Box::new(entry()))),
        reply(
            2,
            Reply::ListEnd {
                count: 7,
                digest: [4; 32],
            },
        ),
        reply(
            2,
            Reply::ListSame {
                count: 7,
                digest: [4; 32],
            },
        ),
        reply(3, Reply::SigChunk(vec![5; 9])),
        reply(
            3,
            Reply::SigEnd {
                basis: Some(stat),
                partial: Some(partial),
            },
        ),
        call(
            12,
            Request::Read {
                paths: vec![b"a".to_vec(), b"d/b\xff".to_vec()],
            },
        ),
        call(
            13,
            Request::Put {
                files: vec![PutFile {
                    path: b"d/b".to_vec(),
                    expect: Expect::Absent,
                    attrs: Attrs {
                        mode: Some(0o600),
                        ..Attrs::default()
                    },
                    file: file(b"abc"),
                }],
            },
        ),
        reply(
            12,
            Reply::Files(vec![
                Ok(file(b"abc")),
                Err(Failed {
                    code: Code::Vanished,
                    message: "gone".into(),
                }),
                Ok(file(b"")),
            ]),
        ),
        reply(
            13,
            Reply::Placed(vec![
                None,
                Some(Failed {
                    code: Code::Changed,
                    message: "moved".into(),
                }),
            ]),
        ),
        reply(4, Reply::DeltaStart { skipped: 100 }),
        reply(4, Reply::DeltaChunk(vec![1])),
        reply(
            4,
            Reply::DeltaEnd {
                stat,
                blake3: [2; 32],
                skipped: 0,
                literal: 5,
                matched: 6,
            },
        ),
    ]
}

fn file(data: &[u8]) -> FileData {
    FileData {
        stat: FileStat {
            size: data.len() as u64,
            mtime: Mtime::new(5, 6),
            mode: 0o644,
        },
        blake3: [3; 32],
        data: data.to_vec(),
    }
}

/// A batch past its limits, or whose data disagrees with its stat, is
/// refused as it is read, before anything is allocated for it.
#[test]
fn batches_past_their_limits_are_refused() {
    let decode = |m: Message| {
        let (k, p) = m.encode();
        Message::decode(k, &p)
    };
    let files = |f: Vec<FileData>| Message::Reply {
        id: 1,
        rep: Reply::Files(f.into_iter().map(Ok).collect()),
    };
    let big = vec![0; MAX_BATCH_FILE as usize];
    let fits = vec![file(&big); MAX_BATCH_DATA / big.len()];
    assert!(decode(files(fits.clone())).is_ok());
    let mut over = fits;
    over.push(file(b"x"));
    assert!(decode(files(over)).is_err(), "one byte past the total");
    let one_big = vec![0; MAX_BATCH_FILE as usize + 1];
    assert!(decode(files(vec![file(&one_big)])).is_err());
    let mut lying = file(b"abc");
    lying.stat.size = 2;
    assert!(decode(files(vec![lying.clone()])).is_err());
    let put = Message::Call {
        id: 2,
        req: Request::Put {
            files: vec![PutFile {
                path: b"f".to_vec(),
                expect: Expect::Absent,
                attrs: Attrs::default(),
                file: lying,
            }],
        },
    };
    assert!(decode(put).is_err(), "a Put is checked alike");
    let xattrs = Attrs {
        owner: Some(Owner {
            uid: 1,
            gid: 2,
            user: "u".repeat(300),
            group: "g".into(),
        }),
        xattrs: Some(vec![
            Xattr {
                name: b"user.a".to_vec(),
                value: vec![7; 5000],
            };
            3
        ]),
        mode: Some(0o7777),
        mtime: Some(Mtime::new(i64::MIN, 999_999_999)),
    };
    let one = PutFile {
        path: vec![b'p'; MAX_PATH],
        expect: Expect::File {
            size: u64::MAX,
            mtime: Mtime::new(i64::MAX, 1),
        },
        attrs: xattrs,
        file: file(b"abcd"),
    };
    let (_, p) = Message::Call {
        id: u64::MAX,
        req: Request::Put {
            files: vec![one.clone()],
        },
    }
    .encode();
    assert!(
        p.len() <= PutFile::meta_bound(&one.path, &one.attrs) + one.file.data.len(),
        "the bound holds for a Put of one file"
    );
    let read = |n: usize| Message::Call {
        id: 3,
        req: Request::Read {
            paths: vec![b"f".to_vec(); n],
        },
    };
    assert!(decode(read(MAX_BATCH_FILES)).is_ok());
    assert!(decode(read(MAX_BATCH_FILES + 1)).is_err());
    let placed = Message::Reply {
        id: 4,
        rep: Reply::Placed(vec![None; MAX_BATCH_FILES + 1]),
    };
    assert!(decode(placed).is_err());
}

fn takes_rest(m: &Message) -> bool {
    matches!(
        m,
        Message::Feed {
            feed: Feed::SigChunk(_) | Feed::DeltaChunk(_),
            ..
        } | Message::Reply {
            rep: Reply::SigChunk(_) | Reply::DeltaChunk(_),
            ..
        }
    )
}

#[test]
fn every_message_round_trips_and_rejects_truncation() {
    for m in samples() {
        let (k, p) = m.encode();
        assert_eq!(Message::decode(k, &p).unwrap(), m);
        // Chunk payloads take the rest of the frame, so any cut parses;
        // for every other message, a cut is an error, never a panic.
        for cut in 0..p.len() {
            let _ = Message::decode(k, &p[..cut]);
        }
        let mut longer = p.clone();
        longer.push(0);
        if !takes_rest(&m) {
            assert!(
                Message::decode(k, &longer).is_err(),
                "{m:?} accepts trailing bytes"
            );
        }
    }
    assert!(matches!(
        Message::decode(0xee, &[]),
        Err(WireError::UnknownMessage { kind: 0xee })
    ));
}

#[test]
fn hostile_fields_are_refused() {
    // Nanoseconds past one second.
    let (k, mut p) = Message::Reply {
        id: 1,
        rep: Reply::Entry(Box::new(Entry::new(
            b"f",
            EntryKind::File,
            1,
            Mtime::new(0, 0),
            0o644,
        ))),
    }
    .encode();
    // path(2) kind(1) size(1) secs(1) nanos(1): patch the nanos varint.
    let at = 1 + 2 + 1 + 1 + 1;
    p.splice(at..at + 1, [0x80, 0x94, 0xeb, 0xdc, 0x03]); // 1,000,000,000
    assert!(Message::decode(k, &p).is_err());
    // An attribute count the frame cannot hold.
    let mut e = crate::codec::Enc::default();
    e.varint(1).bytes(b"f").u8(0b1000).varint(1000);
    assert!(Message::decode(0x52, &e.buf).is_err());
}

#[test]
fn codes_keep_their_numbers() {
    for n in [1, 11, 12, 24, 40, 41, 42, 43, 44, 45, 99] {
        assert_eq!(Code::from_number(n).number(), n);
    }
}

fn span(start: u64, len: u64) -> Span {
    Span { start, len }
}

fn run(new_off: u64, basis_off: u64, len: u64) -> Run {
    Run {
        new_off,
        basis_off,
        len,
    }
}

#[test]
fn spans_and_runs_from_a_peer_are_checked() {
    use crate::codec::Enc;
    // Zero-length, overflowing, and too many.
    let cases: Vec<(u8, Vec<u8>)> = vec![
        (0x6b, {
            let mut e = Enc::default();
            e.varint(1)
                .bytes(b"f")
                .varint(1)
                .varint(0)
                .varint(0)
                .varint(0);
            e.buf
        }),
        (0x6b, {
            let mut e = Enc::default();
            e.varint(1)
                .bytes(b"f")
                .varint(2)
                .varint(u64::MAX)
                .varint(1)
                .varint(0)
                .varint(1);
            e.varint(0);
            e.buf
        }),
        (0x6b, {
            let mut e = Enc::default();
            e.varint(1).bytes(b"f").varint(1 << 30);
            e.buf
        }),
        (0x34, {
            // A run whose basis offset would be negative.
            let mut e = Enc::default();
            e.varint(1);
            super::fields::put_stat(&mut e, &FileStat::default());
            e.varint(2).varint(0).ivarint(0).varint(5);
            e.varint(0).ivarint(-10).varint(3);
            e.buf
        }),
    ];
    for (k, payload) in cases {
        let got = super::envelope::decode(k, &payload);
        assert!(got.is_err(), "{k:#x} {payload:?} gave {got:?}");
    }
}
