//! A hostile client speaks crafted frames to `deltasync serve`: escaping
//! paths, symlink escapes, huge lengths, truncated frames, a zstd bomb and
//! a signature with block_len 0. Each must be refused, nothing may be
//! written outside the root, and the agent must never panic or hang.

mod common;

use common::*;
use deltasync_driver::wire::frame;
use deltasync_driver::wire::{Connection, Expect, FileStat, Hello, Message, PROTOCOL_VERSION};
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
    h.send(&Message::PatchRequest {
        id,
        path: path.to_vec(),
        resume_len: 0,
        expect: Expect::Any,
    });
    h.send(&Message::DeltaChunk {
        id,
        data: literal_delta(data),
    });
    let stat = FileStat {
        size: data.len() as u64,
        mtime_ns: 0,
        mode: 0o644,
    };
    h.send(&Message::DeltaEnd {
        id,
        stat,
        blake3: *blake3::hash(data).as_bytes(),
        skipped: 0,
        literal: 0,
        matched: 0,
    });
    h.reply()
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
        match try_patch(&mut h, id, bad, b"evil") {
            Message::Error { id: got, .. } => assert_eq!(got, id),
            other => panic!("{:?} was accepted: {other:?}", String::from_utf8_lossy(bad)),
        }
    }
    // Other requests through the same doors.
    for m in [
        Message::Mkdir {
            id: 50,
            path: b"escape/newdir".to_vec(),
            mode: 0o755,
        },
        Message::Remove {
            id: 51,
            path: b"escape/canary".to_vec(),
            expect: Expect::Any,
        },
        Message::Remove {
            id: 52,
            path: b"../outside/canary".to_vec(),
            expect: Expect::Any,
        },
        Message::Remove {
            id: 53,
            path: Vec::new(),
            expect: Expect::Any,
        },
        Message::SetAttr {
            id: 54,
            path: b"escape/canary".to_vec(),
            mode: Some(0o777),
            mtime_ns: Some(0),
            expect: Expect::Any,
        },
        Message::SigRequest {
            id: 55,
            path: b"escape/canary".to_vec(),
            full_sums: false,
            resume: false,
        },
        Message::DeltaRequest {
            id: 56,
            path: b"../outside/canary".to_vec(),
            skip: None,
        },
    ] {
        let want = m.id().unwrap();
        match h.reply_to(m) {
            Message::Error { id, .. } => assert_eq!(id, want),
            other => panic!("accepted: {other:?}"),
        }
    }
    // A symlink may point anywhere (it is only text), but nothing goes through it.
    h.send(&Message::Symlink {
        id: 60,
        path: b"s".to_vec(),
        target: outside.display().to_string().into_bytes(),
    });
    assert!(matches!(h.reply(), Message::Done { id: 60 }));
    assert!(matches!(
        try_patch(&mut h, 61, b"s/pwned", b"evil"),
        Message::Error { id: 61, .. }
    ));
    // And a good request still works.
    assert!(matches!(
        try_patch(&mut h, 62, b"fine.txt", b"ok"),
        Message::Done { id: 62 }
    ));
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
    h.send(&Message::DeltaRequest {
        id: 1,
        path: b"f".to_vec(),
        skip: None,
    });
    h.send(&Message::SigChunk { id: 1, data: sig });
    h.send(&Message::SigEnd {
        id: 1,
        basis: None,
        partial: None,
    });
    match h.reply() {
        Message::Error { id: 1, message, .. } => {
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
    let (kind, payload) = Message::Mkdir {
        id: 9,
        path: b"dir".to_vec(),
        mode: 0o755,
    }
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
