//! A hostile client speaks crafted frames to `deltasync serve`: escaping
//! paths, symlink escapes, huge lengths, truncated frames, a zstd bomb and
//! a signature with block_len 0. Each must be refused, nothing may be
//! written outside the root, and the agent must never panic or hang.

mod common;

use common::*;
use deltasync_driver::wire::frame;
use deltasync_driver::wire::{
    Attrs, Code, Connection, Expect, Feed, FileData, FileStat, Hello, Message, Mtime,
    PROTOCOL_VERSION, PutFile, Reply, Request, Run, SigShape, Span,
};
use std::io::Write;
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

struct Hostile {
    child: Child,
    stdin: Option<ChildStdin>,
    replies: Receiver<Message>,
}

impl Hostile {
    /// Starts `serve` on `root` and greets it (asking for zstd when `zstd`).
    fn start(root: &Path, zstd: bool) -> Hostile {
        let mut child = deltasync()
            .args(["serve", "--root"])
            .arg(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, replies) = channel();
        std::thread::spawn(move || {
            let mut conn = Connection::new(stdout, std::io::sink());
            conn.reader.allow_zstd().unwrap();
            while let Ok(Some(m)) = conn.reader.recv() {
                if tx.send(m).is_err() {
                    return;
                }
            }
        });
        let mut h = Hostile {
            stdin: child.stdin.take(),
            child,
            replies,
        };
        h.send(&Message::Hello(Hello {
            version: PROTOCOL_VERSION,
            program: "hostile".into(),
            features: 1,
            max_frame: 1 << 20,
            compress_level: if zstd { 3 } else { 0 },
        }));
        assert!(matches!(h.reply(), Message::Hello(_)));
        h
    }

    fn raw(&mut self, bytes: &[u8]) {
        // The agent may already have hung up on us; that is its right.
        let _ = self.stdin.as_mut().unwrap().write_all(bytes);
        let _ = self.stdin.as_mut().unwrap().flush();
    }

    fn send(&mut self, m: &Message) {
        let (kind, payload) = m.encode();
        let mut f = Vec::new();
        frame::encode_frame(kind, &payload, &mut f);
        let mut p = Vec::new();
        frame::encode_raw_packet(&f, &mut p);
        self.raw(&p);
    }

    fn reply(&self) -> Message {
        self.replies
            .recv_timeout(Duration::from_secs(10))
            .expect("a reply within 10 s")
    }

    /// Closes our side; the agent must exit by itself, without panicking.
    fn finish(mut self) -> (Option<i32>, String) {
        drop(self.stdin.take());
        let start = std::time::Instant::now();
        loop {
            if self.child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "the agent hangs");
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = self.child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!err.contains("panicked"), "the agent panicked: {err}");
        assert_ne!(out.status.code(), Some(101), "panic exit code");
        (out.status.code(), err)
    }
}

/// A valid delta that writes `data` from nothing.
fn literal_delta(data: &[u8]) -> Vec<u8> {
    let mut d = 0x7273_0236u32.to_be_bytes().to_vec();
    d.push(0x41);
    d.push(data.len() as u8);
    d.extend_from_slice(data);
    d.push(0);
    d
}

/// Sends a full, well-formed patch of `path`; returns the agent's answer.
fn try_patch(h: &mut Hostile, id: u64, path: &[u8], data: &[u8]) -> Message {
    h.send(&call(id, patch(path)));
    h.send(&Message::Feed {
        id,
        feed: Feed::DeltaChunk(literal_delta(data)),
    });
    let stat = FileStat {
        size: data.len() as u64,
        mtime: Mtime::new(0, 0),
        mode: 0o644,
    };
    h.send(&Message::Feed {
        id,
        feed: Feed::DeltaEnd {
            stat,
            blake3: *blake3::hash(data).as_bytes(),
        },
    });
    h.reply()
}

fn call(id: u64, req: Request) -> Message {
    Message::Call { id, req }
}

fn patch(path: &[u8]) -> Request {
    Request::Patch {
        path: path.to_vec(),
        resume_len: 0,
        expect: Expect::Any,
        attrs: Attrs::default(),
        sparse: false,
        basis: None,
    }
}

/// True if `m` is an error reply to `id`.
fn error_to(m: &Message, id: u64) -> bool {
    matches!(m, Message::Reply { id: got, rep: Reply::Error { .. } } if *got == id)
}

fn done(m: &Message, id: u64) -> bool {
    matches!(m, Message::Reply { id: got, rep: Reply::Done } if *got == id)
}

fn outside_untouched(outside: &Path) {
    let names: Vec<_> = std::fs::read_dir(outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["canary"], "something appeared outside the root");
    assert_eq!(read(&outside.join("canary")), b"untouched");
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let d = tmp();
    let root = d.path().join("root");
    let outside = d.path().join("outside");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    write(&outside, "canary", b"untouched");
    std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
    (d, root, outside)
}

#[test]
fn escaping_paths_are_refused() {
    let (_d, root, outside) = setup();
    let mut h = Hostile::start(&root, false);
    let rel_out = "../outside/pwned".to_string();
    let abs_out = outside.join("pwned").display().to_string();
    let mut id = 1;
    for bad in [
        rel_out.as_bytes(),
        abs_out.as_bytes(),
        b"a/../../outside/pwned",
        b"escape/pwned",
        b"nul\0byte",
        b".deltasync/partial/x",
        b"a//b",
    ] {
        id += 1;
        let got = try_patch(&mut h, id, bad, b"evil");
        assert!(
            error_to(&got, id),
            "{:?} was accepted: {got:?}",
            String::from_utf8_lossy(bad)
        );
    }
    // Other requests through the same doors.
    for m in [
        call(
            50,
            Request::Mkdir {
                path: b"escape/newdir".to_vec(),
                attrs: Attrs::default(),
            },
        ),
        call(
            51,
            Request::Remove {
                path: b"escape/canary".to_vec(),
                expect: Expect::Any,
            },
        ),
        call(
            52,
            Request::Remove {
                path: b"../outside/canary".to_vec(),
                expect: Expect::Any,
            },
        ),
        call(
            53,
            Request::Remove {
                path: Vec::new(),
                expect: Expect::Any,
            },
        ),
        call(
            54,
            Request::SetAttr {
                path: b"escape/canary".to_vec(),
                attrs: Attrs {
                    mode: Some(0o777),
                    mtime: Some(Mtime::new(0, 0)),
                    ..Attrs::default()
                },
                expect: Expect::Any,
            },
        ),
        call(
            55,
            Request::Signature {
                path: b"escape/canary".to_vec(),
                full_sums: false,
                resume: false,
                shape: SigShape::Native,
            },
        ),
        call(
            56,
            Request::Delta {
                path: b"../outside/canary".to_vec(),
                skip: None,
                prefix: None,
                plan: None,
            },
        ),
        call(
            63,
            Request::Signature {
                path: b"escape/canary".to_vec(),
                full_sums: false,
                resume: false,
                shape: SigShape::Spans {
                    block_len: 4,
                    spans: vec![Span { start: 0, len: 4 }],
                },
            },
        ),
        call(
            64,
            Request::Delta {
                path: b"escape/canary".to_vec(),
                skip: None,
                prefix: None,
                plan: Some(vec![Run {
                    new_off: 0,
                    basis_off: 0,
                    len: 4,
                }]),
            },
        ),
        call(
            65,
            Request::Match {
                path: b"../outside/canary".to_vec(),
                spans: Vec::new(),
                basis: Vec::new(),
            },
        ),
        call(
            57,
            Request::Link {
                path: b"inside".to_vec(),
                existing: b"escape/canary".to_vec(),
                expect: Expect::Any,
            },
        ),
    ] {
        let want = m.id().unwrap();
        let got = h.reply_to(m);
        assert!(error_to(&got, want), "accepted: {got:?}");
    }
    // A symlink may point anywhere (it is only text), but nothing goes through it.
    h.send(&call(
        60,
        Request::Symlink {
            path: b"s".to_vec(),
            target: outside.display().to_string().into_bytes(),
            attrs: Attrs::default(),
        },
    ));
    assert!(done(&h.reply(), 60));
    assert!(error_to(&try_patch(&mut h, 61, b"s/pwned", b"evil"), 61));
    // And a good request still works.
    assert!(done(&try_patch(&mut h, 62, b"fine.txt", b"ok"), 62));
    assert_eq!(read(&root.join("fine.txt")), b"ok");
    h.finish();
    outside_untouched(&outside);
}

impl Hostile {
    fn reply_to(&mut self, m: Message) -> Message {
        self.send(&m);
        self.reply()
    }
}

#[test]
fn a_signature_with_block_len_zero_is_refused() {
    let (_d, root, outside) = setup();
    write(&root, "f", b"some data");
    let mut h = Hostile::start(&root, false);
    let mut sig = 0x4453_4233u32.to_be_bytes().to_vec();
    sig.extend_from_slice(&0u32.to_be_bytes());
    sig.extend_from_slice(&4u32.to_be_bytes());
    sig.extend_from_slice(&[0; 8]);
    h.send(&call(
        1,
        Request::Delta {
            path: b"f".to_vec(),
            skip: None,
            prefix: None,
            plan: None,
        },
    ));
    h.send(&Message::Feed {
        id: 1,
        feed: Feed::SigChunk(sig),
    });
    h.send(&Message::Feed {
        id: 1,
        feed: Feed::SigEnd,
    });
    match h.reply() {
        Message::Reply {
            id: 1,
            rep: Reply::Error { message, .. },
        } => {
            assert!(message.contains("block length is 0"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    h.finish();
    outside_untouched(&outside);
}

#[test]
fn a_huge_frame_length_is_refused() {
    let (_d, root, outside) = setup();
    let mut h = Hostile::start(&root, false);
    let mut f = vec![0x40u8];
    f.extend_from_slice(&u32::MAX.to_be_bytes());
    f.extend_from_slice(b"tiny");
    let mut p = Vec::new();
    frame::encode_raw_packet(&f, &mut p);
    h.raw(&p);
    let (code, err) = h.finish();
    assert_ne!(code, Some(0));
    assert!(err.contains("exceeds the limit"), "{err}");
    outside_untouched(&outside);
}

#[test]
fn a_huge_packet_length_is_refused() {
    let (_d, root, outside) = setup();
    let mut h = Hostile::start(&root, false);
    let mut p = vec![0u8];
    p.extend_from_slice(&0xffff_fff0u32.to_be_bytes());
    h.raw(&p);
    let (code, err) = h.finish();
    assert_ne!(code, Some(0));
    assert!(err.contains("packet of 4294967280 bytes exceeds"), "{err}");
    outside_untouched(&outside);
}

#[test]
fn a_truncated_frame_ends_the_session_cleanly() {
    let (_d, root, outside) = setup();
    let mut h = Hostile::start(&root, false);
    let (kind, payload) = call(
        9,
        Request::Mkdir {
            path: b"dir".to_vec(),
            attrs: Attrs::default(),
        },
    )
    .encode();
    let mut f = Vec::new();
    frame::encode_frame(kind, &payload, &mut f);
    let mut p = Vec::new();
    frame::encode_raw_packet(&f[..f.len() - 2], &mut p); // a whole packet holding half a frame
    h.raw(&p);
    let (code, err) = h.finish();
    assert_ne!(code, Some(0));
    assert!(err.contains("middle of a frame"), "{err}");
    assert!(!root.join("dir").exists());
    outside_untouched(&outside);
}

#[test]
fn a_zstd_bomb_is_refused() {
    let (_d, root, outside) = setup();
    let mut h = Hostile::start(&root, true);
    let bomb = zstd_bomb();
    let mut p = Vec::new();
    frame::encode_zstd_packet(&bomb, 4096, &mut p);
    h.raw(&p);
    let (code, err) = h.finish();
    assert_ne!(code, Some(0));
    assert!(
        err.contains("compressed packet is corrupt or lies about its size"),
        "{err}"
    );
    outside_untouched(&outside);
}

/// 256 MiB of zeros in a few KB.
fn zstd_bomb() -> Vec<u8> {
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 19).unwrap();

    let zeros = vec![0u8; 1 << 20];
    for _ in 0..256 {
        enc.write_all(&zeros).unwrap();
    }
    enc.finish().unwrap()
}

#[test]
fn malformed_fields_are_refused() {
    let (_d, root, outside) = setup();
    let mut h = Hostile::start(&root, false);
    // A Mkdir whose path length claims 2^40 bytes.
    let mut payload = vec![7u8];
    let mut v: u64 = 1 << 40;
    while v >= 0x80 {
        payload.push((v as u8) | 0x80);
        v >>= 7;
    }
    payload.push(v as u8);
    let mut f = Vec::new();
    frame::encode_frame(0x50, &payload, &mut f);
    let mut p = Vec::new();
    frame::encode_raw_packet(&f, &mut p);
    h.raw(&p);
    let (code, err) = h.finish();
    assert_ne!(code, Some(0));
    assert!(err.contains("malformed Mkdir"), "{err}");
    outside_untouched(&outside);
}

/// A client that opens patches and signature requests without end: the
/// agent holds at most its limits (`MAX_PATCH_THREADS` patches on threads,
/// `MAX_PATCHES` in all, bounded signature bytes) and refuses the rest
/// with `Busy`, and still serves.
#[test]
fn work_in_flight_is_capped() {
    use deltasync_driver::agent::core::{MAX_PATCH_THREADS, MAX_PATCHES, MAX_SIGNATURE_BYTES};
    let (_d, root, outside) = setup();
    let mut h = Hostile::start(&root, false);
    let busy = |h: &mut Hostile, n: usize| {
        (0..n)
            .filter(|_| {
                matches!(
                    h.reply(),
                    Message::Reply {
                        rep: Reply::Error {
                            code: Code::Busy,
                            ..
                        },
                        ..
                    }
                )
            })
            .count()
    };
    // Patches of existing files that never end: each is a thread.
    let threaded = MAX_PATCH_THREADS as u64 + 10;
    for id in 1..=threaded {
        h.send(&call(id, patch(format!("p{id}").as_bytes())));
    }
    assert_eq!(
        busy(&mut h, 10),
        10,
        "threaded patches past their limit are refused"
    );
    // New files' patches that never end are held, with no thread, up to
    // the limit on all patches.
    let held = (MAX_PATCHES - MAX_PATCH_THREADS) as u64 + 20;
    for id in threaded + 1..=threaded + held {
        h.send(&call(
            id,
            Request::Patch {
                path: format!("p{id}").into_bytes(),
                resume_len: 0,
                expect: Expect::Absent,
                attrs: Attrs::default(),
                sparse: false,
                basis: None,
            },
        ));
    }
    assert_eq!(busy(&mut h, 20), 20, "patches past the limit are refused");
    // Signatures that never end: bounded bytes held.
    let chunk = vec![0u8; 60 << 10];
    let per = 64 << 20; // 64 MiB per request
    let requests = MAX_SIGNATURE_BYTES / per + 2;
    let mut refused = false;
    'outer: for r in 0..requests as u64 {
        let id = 10_000 + r;
        h.send(&call(
            id,
            Request::Delta {
                path: b"f".to_vec(),
                skip: None,
                prefix: None,
                plan: None,
            },
        ));
        for _ in 0..per / chunk.len() {
            h.send(&Message::Feed {
                id,
                feed: Feed::SigChunk(chunk.clone()),
            });
            if let Ok(m) = h.replies.try_recv() {
                assert!(
                    matches!(
                        m,
                        Message::Reply {
                            rep: Reply::Error {
                                code: Code::Busy,
                                ..
                            },
                            ..
                        }
                    ),
                    "{m:?}"
                );
                refused = true;
                break 'outer;
            }
        }
    }
    let refused = refused
        || matches!(
            h.replies.recv_timeout(Duration::from_secs(10)),
            Ok(Message::Reply {
                rep: Reply::Error {
                    code: Code::Busy,
                    ..
                },
                ..
            })
        );
    assert!(refused, "signature bytes past the limit are refused");
    // Still serving.
    let mkdir = call(
        50_000,
        Request::Mkdir {
            path: b"after".to_vec(),
            attrs: Attrs::default(),
        },
    );
    h.send(&mkdir);
    // Chunks sent after the refusal are refused too, one reply each.
    let answer = loop {
        let m = h.reply();
        if m.id() == Some(50_000) {
            break m;
        }
        assert!(
            matches!(
                m,
                Message::Reply {
                    rep: Reply::Error { .. },
                    ..
                }
            ),
            "{m:?}"
        );
    };
    assert!(done(&answer, 50_000), "{answer:?}");
    h.finish();
    outside_untouched(&outside);
}

#[test]
fn hostile_rounds_get_errors_or_harmless_answers() {
    let (_d, root, outside) = setup();
    write(&root, "f", &[7u8; 5000]);
    let mut h = Hostile::start(&root, false);
    // Spans past the end of the basis: it changed between rounds.
    let got = h.reply_to(call(
        1,
        Request::Signature {
            path: b"f".to_vec(),
            full_sums: false,
            resume: false,
            shape: SigShape::Spans {
                block_len: 128,
                spans: vec![Span {
                    start: 4000,
                    len: 1 << 40,
                }],
            },
        },
    ));
    assert!(
        matches!(
            &got,
            Message::Reply {
                id: 1,
                rep: Reply::Error {
                    code: Code::Changed,
                    ..
                }
            }
        ),
        "{got:?}"
    );
    // A round against garbage: a data error, not a crash.
    h.send(&call(
        2,
        Request::Match {
            path: b"f".to_vec(),
            spans: vec![Span {
                start: 0,
                len: 1 << 50,
            }],
            basis: Vec::new(),
        },
    ));
    h.send(&Message::Feed {
        id: 2,
        feed: Feed::SigChunk(b"not a signature".to_vec()),
    });
    let got = h.reply_to(Message::Feed {
        id: 2,
        feed: Feed::SigEnd,
    });
    assert!(
        matches!(
            &got,
            Message::Reply {
                id: 2,
                rep: Reply::Error {
                    code: Code::Data,
                    ..
                }
            }
        ),
        "{got:?}"
    );
    // A plan that claims copies from far past any basis: the source only
    // encodes what it was told, so its delta ends normally (the patch side
    // refuses the copies).
    h.send(&call(
        3,
        Request::Delta {
            path: b"f".to_vec(),
            skip: None,
            prefix: None,
            plan: Some(vec![Run {
                new_off: 10,
                basis_off: 1 << 60,
                len: 1 << 40,
            }]),
        },
    ));
    let mut replies = Vec::new();
    loop {
        let m = h.reply();
        let end = matches!(&m, Message::Reply { rep, .. } if rep.is_terminal());
        replies.push(m);
        if end {
            break;
        }
    }
    assert!(
        matches!(replies.last(), Some(Message::Reply { id: 3, rep: Reply::DeltaEnd { stat, literal: 10, matched: 4990, .. } }) if stat.size == 5000),
        "{replies:?}"
    );
    h.finish();
    outside_untouched(&outside);
}

fn put_file(path: &[u8], data: &[u8], blake3: [u8; 32]) -> PutFile {
    PutFile {
        path: path.to_vec(),
        expect: Expect::Absent,
        attrs: Attrs::default(),
        file: FileData {
            stat: FileStat {
                size: data.len() as u64,
                mtime: Mtime::new(0, 0),
                mode: 0o644,
            },
            blake3,
            data: data.to_vec(),
        },
    }
}

/// Batches: a `Read` or `Put` naming a path out of the root is refused
/// whole; a `Put` through a symlink out of the root, or whose bytes fail
/// their BLAKE3, places nothing (and says so for that file alone); one
/// over an existing file leaves it; nothing appears outside the root.
#[test]
fn hostile_batches_place_nothing_they_should_not() {
    let (_d, root, outside) = setup();
    write(&root, "taken", b"mine");
    write(&outside, "secret", b"s");
    let mut h = Hostile::start(&root, true);
    let good = |p: &[u8], d: &[u8]| put_file(p, d, *blake3::hash(d).as_bytes());
    for (id, path) in [(2, &b"../outside/pwned"[..]), (3, b"/etc/pwned")] {
        h.send(&call(
            id,
            Request::Put {
                files: vec![good(b"fine", b"x"), good(path, b"evil")],
            },
        ));
        let got = h.reply();
        assert!(error_to(&got, id), "{got:?}");
        h.send(&call(
            id + 10,
            Request::Read {
                paths: vec![b"taken".to_vec(), path.to_vec()],
            },
        ));
        let got = h.reply();
        assert!(error_to(&got, id + 10), "{got:?}");
    }
    assert!(
        !root.join("fine").exists(),
        "a refused batch placed nothing"
    );
    h.send(&call(
        4,
        Request::Put {
            files: vec![
                good(b"escape/pwned", b"evil"),
                put_file(b"bad", b"evil", [0; 32]),
                good(b"taken", b"evil"),
                good(b"new", b"welcome"),
            ],
        },
    ));
    let Message::Reply {
        id: 4,
        rep: Reply::Placed(placed),
    } = h.reply()
    else {
        panic!("a Placed for the batch");
    };
    assert_eq!(placed.len(), 4);
    assert!(placed[0].is_some(), "through the symlink: {placed:?}");
    assert_eq!(placed[1].as_ref().map(|f| f.code), Some(Code::Checksum));
    assert_eq!(placed[2].as_ref().map(|f| f.code), Some(Code::Changed));
    assert_eq!(placed[3], None);
    assert_eq!(read(&root.join("new")), b"welcome");
    assert_eq!(read(&root.join("taken")), b"mine");
    assert!(!root.join("bad").exists());
    // Reading through the symlink out of the root is refused per file.
    h.send(&call(
        5,
        Request::Read {
            paths: vec![b"escape/secret".to_vec(), b"new".to_vec()],
        },
    ));
    let Message::Reply {
        id: 5,
        rep: Reply::Files(files),
    } = h.reply()
    else {
        panic!("a Files for the read");
    };
    assert!(files[0].is_err(), "read through the symlink: {files:?}");
    assert_eq!(files[1].as_ref().unwrap().data, b"welcome");
    std::fs::remove_file(outside.join("secret")).unwrap();
    outside_untouched(&outside);
    h.finish();
}

/// Sends a patch of `path` that copies its first 9 bytes from `basis`;
/// returns the agent's answer.
fn copy_from_basis(h: &mut Hostile, id: u64, path: &[u8], basis: &[u8]) -> Message {
    // A delta that copies the basis's first 9 bytes ("untouched").
    let mut copy = 0x7273_0236u32.to_be_bytes().to_vec();
    copy.extend_from_slice(&[0x45, 0, 9, 0]);
    h.send(&call(
        id,
        Request::Patch {
            path: path.to_vec(),
            resume_len: 0,
            expect: Expect::Absent,
            attrs: Attrs::default(),
            sparse: false,
            basis: Some(basis.to_vec()),
        },
    ));
    h.send(&Message::Feed {
        id,
        feed: Feed::DeltaChunk(copy),
    });
    h.send(&Message::Feed {
        id,
        feed: Feed::DeltaEnd {
            stat: FileStat {
                size: 9,
                mtime: Mtime::new(0, 0),
                mode: 0o644,
            },
            blake3: *blake3::hash(b"untouched").as_bytes(),
        },
    });
    h.reply()
}

/// A patch whose basis (`--fuzzy`) lies out of the root, by name or
/// through a symlink, copies nothing from there: it is refused, or fails
/// for want of a basis, and nothing of the outside is read into the root.
#[test]
fn a_basis_out_of_the_root_is_never_read() {
    let (_d, root, outside) = setup();
    let mut h = Hostile::start(&root, false);
    let abs = outside.join("canary").display().to_string();
    for (id, basis) in [
        (2, &b"../outside/canary"[..]),
        (3, abs.as_bytes()),
        (4, b"escape/canary"),
    ] {
        let stolen = format!("stolen{id}");
        let got = copy_from_basis(&mut h, id, stolen.as_bytes(), basis);
        assert!(error_to(&got, id), "basis {basis:?}: {got:?}");
        assert!(!root.join(&stolen).exists());
    }
    // The same delta against a basis inside the root works: the refusals
    // above are the basis's, not the delta's.
    write(&root, "inside", b"untouched, and more");
    let got = copy_from_basis(&mut h, 5, b"copied", b"inside");
    assert!(done(&got, 5), "{got:?}");
    assert_eq!(read(&root.join("copied")), b"untouched");
    assert_eq!(read(&root.join("inside")), b"untouched, and more");
    outside_untouched(&outside);
    h.finish();
}
