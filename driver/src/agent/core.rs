//! The agent's request bookkeeping, with no I/O: which requests are open,
//! what each waits for, and the limits on work in flight.
//!
//! The shell (`agent::serve`) feeds every incoming message and every
//! finished job to [`Core::handle`], and carries out the [`Action`]s it
//! returns: replies, one-message operations, jobs for the worker lanes,
//! patch feeds. Everything a hostile client could make grow is counted
//! here and refused past its limit with a `Busy` or `Data` error naming
//! the numbers, so no sequence of messages can make the agent start
//! unbounded threads or hold unbounded signature bytes.

use std::collections::HashMap;

use deltasync_engine::rounds::check_runs;
use deltasync_wire::{
    Attrs, Code, Expect, Feed, FileData, FileStat, Message, Partial, PutFile, Reply, Request,
    SigShape, Span,
};

use super::jobs::Planned;
use crate::path::RelPath;

/// A new file's patch holds at most this many delta bytes in memory before
/// it is spilled to a thread of its own.
pub const HOLD_MAX: usize = 64 << 10;
/// True for a patch the agent holds in memory until it is whole: one that
/// makes a new file from nothing (no basis to copy, not even a similar
/// file's, nothing kept to resume), so its file is no bigger than its
/// delta.
pub fn is_held(expect: Expect, resume_len: u64, basis: bool) -> bool {
    expect == Expect::Absent && resume_len == 0 && !basis
}

/// Most patches open at once. A new file's patch is held in memory (at
/// most [`HOLD_MAX`] bytes, no thread, no descriptor) until it is
/// whole; first syncs of many small files need hundreds of them in flight
/// to keep the destination busy while earlier ones wait for their group
/// commit.
pub const MAX_PATCHES: usize = 1024;
/// Most patches running on threads of their own at once (updates, resumed
/// transfers, and new files past [`HOLD_MAX`]), each with a thread and
/// a descriptor or two. A patch past this is refused (`Busy`), which a
/// client that counts them as [`crate::exec`] does never meets.
pub const MAX_PATCH_THREADS: usize = 256;
/// Most signature and delta jobs open at once (queued, gathering their
/// signature, or running).
pub const MAX_JOBS: usize = 4096;
/// Most `Put` batches open at once, each holding at most
/// [`MAX_BATCH_DATA`](deltasync_wire::MAX_BATCH_DATA) bytes of files until
/// they are written.
pub const MAX_PUTS: usize = 32;
/// Most bytes of signature one delta request may carry.
pub const MAX_SIGNATURE: usize = 256 << 20;
/// Most signature bytes held at once, over all delta requests.
pub const MAX_SIGNATURE_BYTES: usize = 512 << 20;

/// What the core is told.
#[derive(Debug)]
pub enum Input {
    /// A message from the client (boxed: a request is large, and inputs
    /// pass through a channel).
    Message(Box<Message>),
    /// A job (signature, delta or patch) of request `id` has ended and
    /// sent its last reply.
    Finished(u64),
}

/// What the shell must do. Field names follow the requests they come
/// from (`docs/protocol.md`).
#[derive(Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Action {
    /// Send this reply.
    Reply(u64, Reply),
    /// Answer this one-message request (listing, hash, mkdir, …) now.
    Run(u64, Request),
    /// Queue a signature job.
    Signature {
        id: u64,
        path: RelPath,
        full_sums: bool,
        resume: bool,
        shape: SigShape,
    },
    /// Queue a delta job against a complete signature, or a plan.
    Delta {
        id: u64,
        path: RelPath,
        skip: Option<Partial>,
        sig: Vec<u8>,
        plan: Option<Planned>,
    },
    /// Queue one round's search against a complete signature.
    Match {
        id: u64,
        path: RelPath,
        spans: Vec<Span>,
        basis: Vec<Span>,
        sig: Vec<u8>,
    },
    /// Queue a job that reads these files whole, for one `Files` reply.
    Read { id: u64, paths: Vec<RelPath> },
    /// Write these new versions and place them, for one `Placed` reply.
    Put { id: u64, files: Vec<Placing> },
    /// Start a patch job; its delta follows as `PatchChunk`s and a `PatchEnd`.
    StartPatch {
        id: u64,
        path: RelPath,
        resume_len: u64,
        expect: Expect,
        attrs: Attrs,
        sparse: bool,
        basis: Option<RelPath>,
    },
    /// More delta for patch `id`.
    PatchChunk { id: u64, data: Vec<u8> },
    /// The end of patch `id`'s delta.
    PatchEnd {
        id: u64,
        stat: FileStat,
        blake3: [u8; 32],
    },
    /// The client can take `bytes` more of delta `id`.
    Grant { id: u64, bytes: u64 },
    /// Start watching the root; changes go out as `Changed` replies to `id`.
    Watch { id: u64 },
    /// Stop job `id` (a delta at its next chunk; a patch keeps its prefix;
    /// a watch ends with `Done`).
    Cancel { id: u64 },
    /// The client said goodbye.
    Stop,
}

/// One file of a `Put`, its path checked.
#[derive(Debug, PartialEq, Eq)]
pub struct Placing {
    /// Where.
    pub path: RelPath,
    /// What must be there when the file replaces it.
    pub expect: Expect,
    /// Owner and extended attributes.
    pub attrs: Attrs,
    /// Its contents, stat and BLAKE3, as the source read them.
    pub file: FileData,
}

/// One open request.
#[derive(Debug)]
enum Open {
    /// A batch read queued or running.
    Read,
    /// A batch being placed.
    Put,
    /// A signature job queued or running.
    Signature,
    /// A delta or match request gathering its signature; `held` counts
    /// what its spans take, besides the signature.
    Gathering {
        path: RelPath,
        then: Then,
        sig: Vec<u8>,
        held: usize,
    },
    /// A delta or match job queued or running, holding `bytes` of signature.
    Delta { bytes: usize },
    /// A patch taking its delta.
    Patch,
    /// The watch on the root (at most one).
    Watch,
}

/// What a gathered signature is for.
#[derive(Debug)]
enum Then {
    /// A delta, after this verified prefix.
    Delta(Option<Partial>),
    /// One round's search.
    Match { spans: Vec<Span>, basis: Vec<Span> },
}

/// The agent's open requests and what they hold.
#[derive(Debug, Default)]
pub struct Core {
    open: HashMap<u64, Open>,
    /// Signature and delta requests open.
    jobs: usize,
    /// Patches open.
    patches: usize,
    /// `Put` batches open.
    puts: usize,
    /// Signature bytes held by gathering and running delta requests.
    sig_bytes: usize,
}

fn refuse(id: u64, code: Code, path: &[u8], message: impl std::fmt::Display) -> Action {
    Action::Reply(id, Reply::error(code, path, message))
}

impl Core {
    /// A core with nothing open.
    pub fn new() -> Core {
        Core::default()
    }

    /// Requests still open (for tests and the shell's shutdown).
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Takes one input; returns what to do, in order.
    pub fn handle(&mut self, input: Input) -> Vec<Action> {
        match input {
            Input::Finished(id) => {
                self.close(id);
                Vec::new()
            }
            Input::Message(m) => match *m {
                Message::Call { id, req } => self.call(id, req),
                Message::Feed { id, feed } => self.feed(id, feed),
                Message::Cancel { id } => self.cancel(id),
                Message::Bye => vec![Action::Stop],
                other => vec![refuse(
                    other.id().unwrap_or(0),
                    Code::Refused,
                    b"",
                    format!("unexpected message from a client: {}", short(&other)),
                )],
            },
        }
    }

    fn close(&mut self, id: u64) {
        match self.open.remove(&id) {
            Some(Open::Signature | Open::Read) => self.jobs -= 1,
            Some(Open::Put) => self.puts -= 1,
            Some(Open::Gathering { sig, held, .. }) => {
                self.jobs -= 1;
                self.sig_bytes -= sig.len() + held;
            }
            Some(Open::Delta { bytes }) => {
                self.jobs -= 1;
                self.sig_bytes -= bytes;
            }
            Some(Open::Patch) => self.patches -= 1,
            Some(Open::Watch) | None => {}
        }
    }

    fn call(&mut self, id: u64, req: Request) -> Vec<Action> {
        if self.open.contains_key(&id) {
            return vec![refuse(
                id,
                Code::Refused,
                b"",
                format!("request id {id} is already in use"),
            )];
        }
        if req == Request::Watch {
            if self.open.values().any(|o| matches!(o, Open::Watch)) {
                return vec![refuse(
                    id,
                    Code::Busy,
                    b"",
                    "this connection already watches the replica",
                )];
            }
            self.open.insert(id, Open::Watch);
            return vec![Action::Watch { id }];
        }
        let req = match req {
            Request::Read { paths } => return self.read(id, paths),
            Request::Put { files } => return self.put(id, files),
            other => other,
        };
        let (raw, stream) = match &req {
            Request::Signature { path, .. }
            | Request::Delta { path, .. }
            | Request::Match { path, .. } => (path, true),
            Request::Patch { path, .. } => (path, true),
            _ => return vec![Action::Run(id, req)],
        };
        let path = match RelPath::parse(raw) {
            Ok(p) => p,
            Err(e) => return vec![refuse(id, Code::Refused, raw, e)],
        };
        debug_assert!(stream);
        match req {
            Request::Signature {
                full_sums,
                resume,
                shape,
                ..
            } => {
                if self.jobs >= MAX_JOBS {
                    return vec![self.busy(id, &path, "signature and delta jobs", MAX_JOBS)];
                }
                self.jobs += 1;
                self.open.insert(id, Open::Signature);
                vec![Action::Signature {
                    id,
                    path,
                    full_sums,
                    resume,
                    shape,
                }]
            }
            Request::Delta {
                skip, prefix, plan, ..
            } => {
                if self.jobs >= MAX_JOBS {
                    return vec![self.busy(id, &path, "signature and delta jobs", MAX_JOBS)];
                }
                if prefix.is_some() && plan.is_none() {
                    return vec![refuse(
                        id,
                        Code::Data,
                        path.as_bytes(),
                        "a delta's prefix comes with a plan",
                    )];
                }
                if let Some(runs) = plan {
                    // A plan needs no signature: the job starts now. Its
                    // runs count as signature bytes held.
                    if let Err(e) = check_runs(&crate::runs::runs_in(&runs)) {
                        return vec![refuse(id, Code::Data, path.as_bytes(), e)];
                    }
                    let bytes = std::mem::size_of_val(runs.as_slice());
                    if let Some(busy) = self.over_budget(id, &path, bytes) {
                        return vec![busy];
                    }
                    self.jobs += 1;
                    self.sig_bytes += bytes;
                    self.open.insert(id, Open::Delta { bytes });
                    return vec![Action::Delta {
                        id,
                        path,
                        skip,
                        sig: Vec::new(),
                        plan: Some(Planned { runs, prefix }),
                    }];
                }
                self.gather(id, path, Then::Delta(skip), 0)
            }
            Request::Match { spans, basis, .. } => {
                if self.jobs >= MAX_JOBS {
                    return vec![self.busy(id, &path, "signature and delta jobs", MAX_JOBS)];
                }
                let held = std::mem::size_of_val(spans.as_slice())
                    + std::mem::size_of_val(basis.as_slice());
                if let Some(busy) = self.over_budget(id, &path, held) {
                    return vec![busy];
                }
                self.sig_bytes += held;
                self.gather(id, path, Then::Match { spans, basis }, held)
            }
            Request::Patch {
                resume_len,
                expect,
                attrs,
                sparse,
                basis,
                ..
            } => {
                let basis = match basis.map(|b| RelPath::parse(&b).map_err(|e| (b, e))) {
                    None => None,
                    Some(Ok(b)) => Some(b),
                    Some(Err((b, e))) => return vec![refuse(id, Code::Refused, &b, e)],
                };
                if self.patches >= MAX_PATCHES {
                    return vec![self.busy(id, &path, "patches", MAX_PATCHES)];
                }
                self.patches += 1;
                self.open.insert(id, Open::Patch);
                vec![Action::StartPatch {
                    id,
                    path,
                    resume_len,
                    expect,
                    attrs,
                    sparse,
                    basis,
                }]
            }
            _ => unreachable!("only streaming requests get here"),
        }
    }

    /// A batch read: one job, for many files.
    fn read(&mut self, id: u64, raw: Vec<Vec<u8>>) -> Vec<Action> {
        let mut paths = Vec::with_capacity(raw.len());
        for p in raw {
            match RelPath::parse(&p) {
                Ok(path) => paths.push(path),
                Err(e) => return vec![refuse(id, Code::Refused, &p, e)],
            }
        }
        if self.jobs >= MAX_JOBS {
            return vec![self.busy(id, &RelPath::root(), "signature and delta jobs", MAX_JOBS)];
        }
        self.jobs += 1;
        self.open.insert(id, Open::Read);
        vec![Action::Read { id, paths }]
    }

    /// A batch of new versions to place.
    fn put(&mut self, id: u64, raw: Vec<PutFile>) -> Vec<Action> {
        let mut files = Vec::with_capacity(raw.len());
        let mut seen = std::collections::HashSet::new();
        for f in raw {
            // One partial file per path: a path twice would place one
            // file's bytes under the other's reply.
            if !seen.insert(f.path.clone()) {
                return vec![refuse(
                    id,
                    Code::Refused,
                    &f.path,
                    "named twice in one batch",
                )];
            }
            match RelPath::parse(&f.path) {
                Ok(path) => files.push(Placing {
                    path,
                    expect: f.expect,
                    attrs: f.attrs,
                    file: f.file,
                }),
                Err(e) => return vec![refuse(id, Code::Refused, &f.path, e)],
            }
        }
        if self.puts >= MAX_PUTS {
            return vec![self.busy(id, &RelPath::root(), "batches", MAX_PUTS)];
        }
        self.puts += 1;
        self.open.insert(id, Open::Put);
        vec![Action::Put { id, files }]
    }

    /// Opens a request that gathers its signature before its job runs
    /// (`held` bytes of it are already counted).
    fn gather(&mut self, id: u64, path: RelPath, then: Then, held: usize) -> Vec<Action> {
        self.jobs += 1;
        self.open.insert(
            id,
            Open::Gathering {
                path,
                then,
                sig: Vec::new(),
                held,
            },
        );
        Vec::new()
    }

    /// A `Busy` refusal if holding `bytes` more would pass
    /// `MAX_SIGNATURE_BYTES`.
    fn over_budget(&self, id: u64, path: &RelPath, bytes: usize) -> Option<Action> {
        let total = self.sig_bytes + bytes;
        (total > MAX_SIGNATURE_BYTES).then(|| {
            refuse(
                id,
                Code::Busy,
                path.as_bytes(),
                format!(
                    "{total} bytes of signatures and runs would be held at once, over the limit of {MAX_SIGNATURE_BYTES}"
                ),
            )
        })
    }

    fn busy(&self, id: u64, path: &RelPath, what: &str, max: usize) -> Action {
        refuse(
            id,
            Code::Busy,
            path.as_bytes(),
            format!("the agent already has {max} {what} open, its limit"),
        )
    }

    fn feed(&mut self, id: u64, feed: Feed) -> Vec<Action> {
        match (self.open.get_mut(&id), feed) {
            (Some(Open::Gathering { sig, path, .. }), Feed::SigChunk(data)) => {
                let (len, total) = (sig.len() + data.len(), self.sig_bytes + data.len());
                let over = if len > MAX_SIGNATURE {
                    Some((
                        Code::Data,
                        format!("signature larger than {MAX_SIGNATURE} bytes"),
                    ))
                } else if total > MAX_SIGNATURE_BYTES {
                    Some((
                        Code::Busy,
                        format!(
                            "{total} bytes of signatures would be held at once, over the limit of {MAX_SIGNATURE_BYTES}"
                        ),
                    ))
                } else {
                    None
                };
                match over {
                    Some((code, why)) => {
                        let path = path.as_bytes().to_vec();
                        self.close(id);
                        vec![refuse(id, code, &path, why)]
                    }
                    None => {
                        sig.extend_from_slice(&data);
                        self.sig_bytes += data.len();
                        Vec::new()
                    }
                }
            }
            (Some(Open::Gathering { .. }), Feed::SigEnd) => {
                let Some(Open::Gathering {
                    path,
                    then,
                    sig,
                    held,
                }) = self.open.remove(&id)
                else {
                    return Vec::new();
                };
                self.open.insert(
                    id,
                    Open::Delta {
                        bytes: sig.len() + held,
                    },
                );
                vec![match then {
                    Then::Delta(skip) => Action::Delta {
                        id,
                        path,
                        skip,
                        sig,
                        plan: None,
                    },
                    Then::Match { spans, basis } => Action::Match {
                        id,
                        path,
                        spans,
                        basis,
                        sig,
                    },
                }]
            }
            (Some(Open::Patch), Feed::DeltaChunk(data)) => vec![Action::PatchChunk { id, data }],
            (Some(Open::Patch), Feed::DeltaEnd { stat, blake3 }) => {
                vec![Action::PatchEnd { id, stat, blake3 }]
            }
            (Some(Open::Delta { .. }), Feed::Credit(bytes)) => vec![Action::Grant { id, bytes }],
            // Trailing input for a request that already ended (a patch that
            // failed, a delta that was cancelled) is dropped.
            (None, Feed::DeltaChunk(_) | Feed::DeltaEnd { .. } | Feed::Credit(_)) => Vec::new(),
            (_, f @ (Feed::SigChunk(_) | Feed::SigEnd)) => vec![refuse(
                id,
                Code::Refused,
                b"",
                format!("{} for no delta request", short_feed(&f)),
            )],
            (Some(_), f) => vec![refuse(
                id,
                Code::Refused,
                b"",
                format!("{} does not belong to this request", short_feed(&f)),
            )],
        }
    }

    fn cancel(&mut self, id: u64) -> Vec<Action> {
        match self.open.get(&id) {
            Some(Open::Gathering { .. }) => {
                self.close(id);
                Vec::new()
            }
            // The job ends (and reports it) on its own; it is closed then.
            Some(Open::Delta { .. } | Open::Patch | Open::Watch) => vec![Action::Cancel { id }],
            // A batch ends, and replies, on its own.
            Some(Open::Signature | Open::Read | Open::Put) | None => Vec::new(),
        }
    }
}

fn short(m: &Message) -> String {
    let mut s = format!("{m:?}");
    s.truncate(80);
    s
}

fn short_feed(f: &Feed) -> &'static str {
    match f {
        Feed::SigChunk(_) => "a signature chunk",
        Feed::SigEnd => "a signature end",
        Feed::DeltaChunk(_) => "a delta chunk",
        Feed::DeltaEnd { .. } => "a delta end",
        Feed::Credit(_) => "a credit",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(id: u64, req: Request) -> Input {
        Input::Message(Box::new(Message::Call { id, req }))
    }

    fn feed(id: u64, feed: Feed) -> Input {
        Input::Message(Box::new(Message::Feed { id, feed }))
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

    fn is_error(a: &[Action], want: Code) -> bool {
        matches!(a, [Action::Reply(_, Reply::Error { code, .. })] if *code == want)
    }

    #[test]
    fn patches_past_the_limit_are_refused_until_one_finishes() {
        let mut c = Core::new();
        for id in 0..MAX_PATCHES as u64 {
            assert!(matches!(
                c.handle(call(id, patch(b"f")))[..],
                [Action::StartPatch { .. }]
            ));
        }
        assert!(is_error(&c.handle(call(1 << 20, patch(b"f"))), Code::Busy));
        c.handle(Input::Finished(3));
        assert!(matches!(
            c.handle(call((1 << 20) + 1, patch(b"f")))[..],
            [Action::StartPatch { .. }]
        ));
    }

    #[test]
    fn signature_bytes_are_bounded_per_request_and_in_all() {
        let mut c = Core::new();
        let chunk = vec![0u8; 64 << 10];
        let delta = |p: &[u8]| Request::Delta {
            path: p.to_vec(),
            skip: None,
            prefix: None,
            plan: None,
        };
        // One request may not pass MAX_SIGNATURE.
        c.handle(call(1, delta(b"a")));
        let mut refused = None;
        for n in 0.. {
            let a = c.handle(feed(1, Feed::SigChunk(chunk.clone())));
            if !a.is_empty() {
                refused = Some((n, a));
                break;
            }
        }
        let (n, a) = refused.unwrap();
        assert_eq!(n, MAX_SIGNATURE / chunk.len());
        assert!(is_error(&a, Code::Data));
        assert_eq!(c.sig_bytes, 0, "a refused request holds nothing");
        // Many requests together may not pass MAX_SIGNATURE_BYTES.
        let per = MAX_SIGNATURE / 2;
        let mut total = 0;
        let mut id = 10;
        loop {
            c.handle(call(id, delta(b"b")));
            let mut a = Vec::new();
            for _ in 0..per / chunk.len() {
                a = c.handle(feed(id, Feed::SigChunk(chunk.clone())));
                if !a.is_empty() {
                    break;
                }
                total += chunk.len();
            }
            if !a.is_empty() {
                assert!(is_error(&a, Code::Busy), "{a:?}");
                break;
            }
            id += 1;
        }
        assert!(total <= MAX_SIGNATURE_BYTES);
        assert!(c.sig_bytes <= MAX_SIGNATURE_BYTES);
        // Cancelling releases what a gathering request held.
        c.handle(Input::Message(Box::new(Message::Cancel { id: 10 })));
        assert!(c.sig_bytes <= MAX_SIGNATURE_BYTES - per);
    }

    #[test]
    fn jobs_are_bounded_and_ids_are_not_reused_while_open() {
        let mut c = Core::new();
        let sig = |p: &[u8]| Request::Signature {
            path: p.to_vec(),
            full_sums: false,
            resume: false,
            shape: SigShape::Native,
        };
        for id in 0..MAX_JOBS as u64 {
            c.handle(call(id, sig(b"f")));
        }
        assert!(is_error(&c.handle(call(1 << 40, sig(b"f"))), Code::Busy));
        assert!(is_error(&c.handle(call(5, patch(b"f"))), Code::Refused));
        assert!(is_error(
            &c.handle(call(1 << 41, sig(b"../x"))),
            Code::Refused
        ));
        c.handle(Input::Finished(5));
        assert_eq!(c.open_count(), MAX_JOBS - 1);
    }

    #[test]
    fn a_prefix_without_a_plan_is_refused() {
        let mut c = Core::new();
        let a = c.handle(call(
            1,
            Request::Delta {
                path: b"f".to_vec(),
                skip: None,
                prefix: Some(Partial {
                    len: 10,
                    blake3: [0; 32],
                }),
                plan: None,
            },
        ));
        assert!(is_error(&a, Code::Data), "{a:?}");
        assert_eq!(c.open_count(), 0);
    }

    /// Batches are counted: `Put`s past `MAX_PUTS` are refused until one
    /// ends; a bad path refuses the whole batch; a `Read` is a job.
    #[test]
    fn batches_are_counted_and_their_paths_checked() {
        use deltasync_wire::{FileData, Mtime, PutFile};
        let put = |path: &[u8]| Request::Put {
            files: vec![PutFile {
                path: path.to_vec(),
                expect: Expect::Absent,
                attrs: Attrs::default(),
                file: FileData {
                    stat: FileStat {
                        size: 0,
                        mtime: Mtime::new(0, 0),
                        mode: 0o644,
                    },
                    blake3: [0; 32],
                    data: Vec::new(),
                },
            }],
        };
        let mut c = Core::new();
        for id in 0..MAX_PUTS as u64 {
            let a = c.handle(call(id, put(b"f")));
            assert!(matches!(&a[..], [Action::Put { .. }]), "{a:?}");
        }
        let a = c.handle(call(100, put(b"f")));
        assert!(is_error(&a, Code::Busy), "{a:?}");
        c.handle(Input::Finished(0));
        let a = c.handle(call(101, put(b"f")));
        assert!(matches!(&a[..], [Action::Put { .. }]), "{a:?}");
        let a = c.handle(call(102, put(b"../f")));
        assert!(is_error(&a, Code::Refused), "{a:?}");
        let twice = Request::Put {
            files: [put(b"g"), put(b"g")]
                .into_iter()
                .flat_map(|r| match r {
                    Request::Put { files } => files,
                    _ => unreachable!(),
                })
                .collect(),
        };
        let a = c.handle(call(105, twice));
        assert!(is_error(&a, Code::Refused), "a path twice: {a:?}");
        let a = c.handle(call(
            103,
            Request::Read {
                paths: vec![b"a".to_vec(), b"/etc/passwd".to_vec()],
            },
        ));
        assert!(is_error(&a, Code::Refused), "{a:?}");
        let a = c.handle(call(
            104,
            Request::Read {
                paths: vec![b"a".to_vec()],
            },
        ));
        assert!(matches!(&a[..], [Action::Read { .. }]), "{a:?}");
        assert_eq!(c.open_count(), MAX_PUTS + 1);
    }

    #[test]
    fn plans_and_spans_count_against_the_signature_budget() {
        use deltasync_wire::{Run, Span};
        let mut c = Core::new();
        let runs: Vec<Run> = (0..16_384u64)
            .map(|i| Run {
                new_off: i * 10,
                basis_off: 0,
                len: 5,
            })
            .collect();
        let per = std::mem::size_of_val(runs.as_slice());
        let mut refused = None;
        for id in 0..MAX_JOBS as u64 {
            let a = c.handle(call(
                id,
                Request::Delta {
                    path: b"f".to_vec(),
                    skip: None,
                    prefix: None,
                    plan: Some(runs.clone()),
                },
            ));
            if is_error(&a, Code::Busy) {
                refused = Some(id);
                break;
            }
        }
        let refused = refused.expect("a plan is refused before MAX_JOBS");
        assert_eq!(refused as usize, MAX_SIGNATURE_BYTES / per);
        // A finished plan frees its share; spans of a round count too.
        c.handle(Input::Finished(0));
        let spans = vec![Span { start: 0, len: 1 }; 2 * per / std::mem::size_of::<Span>()];
        let a = c.handle(call(
            1 << 40,
            Request::Match {
                path: b"f".to_vec(),
                spans,
                basis: Vec::new(),
            },
        ));
        assert!(is_error(&a, Code::Busy), "{a:?}");
        assert!(c.sig_bytes <= MAX_SIGNATURE_BYTES);
    }

    #[test]
    fn feeds_for_nothing_are_refused_or_dropped() {
        let mut c = Core::new();
        assert!(is_error(
            &c.handle(feed(7, Feed::SigChunk(vec![1]))),
            Code::Refused
        ));
        assert!(c.handle(feed(7, Feed::DeltaChunk(vec![1]))).is_empty());
        assert!(c.handle(feed(7, Feed::Credit(5))).is_empty());
        assert_eq!(
            c.handle(Input::Message(Box::new(Message::Bye))),
            vec![Action::Stop]
        );
    }
}
