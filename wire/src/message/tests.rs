//! Round trips and truncation for every message.

use super::*;

fn samples() -> Vec<Message> {
    let entry = Entry {
        path: b"dir/f\xffile".to_vec(),
        kind: EntryKind::Symlink,
        size: 1 << 40,
        mtime_ns: -5,
        mode: 0o755,
        target: b"../x".to_vec(),
        blake3: Some([9; 32]),
        ino: 77,
    };
    let stat = FileStat {
        size: 3,
        mtime_ns: 1_700_000_000_000_000_000,
        mode: 0o644,
    };
    let partial = Partial {
        len: 12,
        blake3: [1; 32],
    };
    vec![
        Message::Hello(Hello {
            version: 1,
            program: "deltasync 0.1".into(),
            features: 1,
            max_frame: 1 << 20,
            compress_level: -3,
        }),
        Message::Error {
            id: 1,
            code: 11,
            path: b"a".to_vec(),
            message: "nope".into(),
        },
        Message::Bye,
        Message::List {
            id: 2,
            under: b"sub".to_vec(),
            filters: vec!["*.o".into(), "/target/".into()],
            checksum: true,
            if_digest: Some([3; 32]),
        },
        Message::DeltaStart {
            id: 4,
            skipped: 100,
        },
        Message::Entry { id: 2, entry },
        Message::ListEnd {
            id: 2,
            count: 7,
            digest: [4; 32],
        },
        Message::ListSame {
            id: 2,
            count: 7,
            digest: [4; 32],
        },
        Message::SigRequest {
            id: 3,
            path: b"f".to_vec(),
            full_sums: true,
            resume: false,
        },
        Message::SigChunk {
            id: 3,
            data: vec![1, 2, 3],
        },
        Message::SigEnd {
            id: 3,
            basis: Some(stat),
            partial: Some(partial),
        },
        Message::DeltaRequest {
            id: 4,
            path: b"f".to_vec(),
            skip: None,
        },
        Message::DeltaChunk {
            id: 4,
            data: vec![],
        },
        Message::DeltaEnd {
            id: 4,
            stat,
            blake3: [2; 32],
            skipped: 0,
            literal: 5,
            matched: 6,
        },
        Message::PatchRequest {
            id: 5,
            path: b"f".to_vec(),
            resume_len: 9,
            expect: Expect::File {
                size: 3,
                mtime_ns: -1,
            },
        },
        Message::Done { id: 5 },
        Message::Mkdir {
            id: 6,
            path: b"d".to_vec(),
            mode: 0o700,
        },
        Message::Symlink {
            id: 7,
            path: b"l".to_vec(),
            target: b"/etc".to_vec(),
        },
        Message::SetAttr {
            id: 8,
            path: b"f".to_vec(),
            mode: None,
            mtime_ns: Some(4),
            expect: Expect::File {
                size: 3,
                mtime_ns: -2,
            },
        },
        Message::Remove {
            id: 9,
            path: b"f".to_vec(),
            expect: Expect::Absent,
        },
        Message::Remove {
            id: 9,
            path: b"d".to_vec(),
            expect: Expect::EmptyDir,
        },
        Message::ReplicaId {
            id: 10,
            create: true,
        },
        Message::Value {
            id: 10,
            text: "abc".into(),
        },
        Message::Hash {
            id: 11,
            path: b"f".to_vec(),
        },
        Message::Stash {
            id: 12,
            path: b"f".to_vec(),
            area: 1,
            expect: Expect::Dir,
        },
        Message::Rename {
            id: 13,
            from: b"a".to_vec(),
            to: b"b/c".to_vec(),
            expect: Expect::Symlink,
        },
        Message::Lock {
            id: 14,
            owner: "host 12 now".into(),
            force: false,
        },
        Message::Unlock { id: 15 },
        Message::Purge { id: 16, days: 30 },
        Message::Pair {
            id: 17,
            pair: "p1".into(),
            set: Some("other".into()),
        },
        Message::Pair {
            id: 18,
            pair: "p1".into(),
            set: None,
        },
    ]
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
        if !matches!(m, Message::SigChunk { .. } | Message::DeltaChunk { .. }) {
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
