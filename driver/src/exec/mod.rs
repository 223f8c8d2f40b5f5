//! Carrying out a list of [`Op`]s through two agents: `src` (which has the
//! new contents) and `dst` (the replica the steps change). Copy and sync
//! both run their plans through here; each observes the [`Outcome`]s and
//! does its own bookkeeping (a sync commits state per change).
//!
//! For each file the data path is: `dst` sums its old file (`Signature` →
//! `SigChunk`… `SigEnd`), we feed the signature to a `Delta` request on
//! `src`, `src` streams the delta (`DeltaStart`, `DeltaChunk`…,
//! `DeltaEnd`) and we feed it to a `Patch` request on `dst`, which
//! rebuilds, checks and places the file (`Done`). Up to `window` files are
//! in flight at once, so a copy of N files costs a few round trips in all,
//! not a few per file; at most [`MAX_PATCHES`](crate::agent::core::MAX_PATCHES) patches are open on `dst`,
//! and at most [`MAX_PATCH_THREADS`](crate::agent::core::MAX_PATCH_THREADS)
//! of those that `dst` runs on threads (all but small new files), the
//! agent's own limits.
//!
//! A file of [`rounds::MIN_LEN`](deltasync_engine::rounds::MIN_LEN) or
//! more goes in rounds instead (`rounds.rs`): `dst` signs coarse blocks,
//! `src` answers `Matched` with the runs it found, `dst` signs only the
//! unused parts of its basis in smaller blocks, and so on; the last step
//! is a `Delta` with the runs as its plan, patched as any other.
//!
//! A file whose `Op` says what `dst` holds (`known`, from a sync's state)
//! and that has grown is first asked of `src` as an append: a `Delta` whose
//! plan copies that prefix, only if `src` starts with it (`Mode::Append`);
//! a `NotPrefix` answer sends it the usual way.
//!
//! One thread runs this loop over both agents' incoming queues, so the
//! state needs no locks. Each agent numbers its own requests; a reply to a
//! request we cancelled finds nothing and is dropped.

mod batch;
mod in_batches;
mod in_rounds;
mod op;
mod outbox;
mod rounds;

use batch::Batcher;
pub use op::{Observer, Op, Outcome, Sent};
use outbox::Outbox;
use rounds::{Mode, Rounds};

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam::channel::Select;
use deltasync_wire::{
    Attrs, Code, Expect, Feed, MAX_CHUNK, Message, Partial, Reply, Request, Run, SigShape,
    WireError,
};

use crate::client::Agent;
use crate::error::DriverError;
use crate::path::RelPath;

/// New files smaller than this are sent without asking the destination
/// first; larger ones ask, since it may hold a prefix from an interrupted
/// transfer (the agents' big-file lane starts here too).
const ASK_PARTIAL_FROM: u64 = 1 << 20;

/// How [`execute`] runs.
#[derive(Clone, Debug)]
pub struct ExecOptions {
    /// Send whole files, no deltas.
    pub whole_file: bool,
    /// Use multi-round deltas for files large enough (see `rounds.rs`).
    /// On unless `DELTASYNC_SINGLE_ROUND` is set, which benchmarks use to
    /// measure what the rounds save.
    pub rounds: bool,
    /// Send small new files in batches (see `batch.rs`). On unless
    /// `DELTASYNC_NO_BATCH` is set, which benchmarks use to measure what
    /// batches save.
    pub batches: bool,
    /// Write runs of zeros as holes (`-S`).
    pub sparse: bool,
    /// Files in flight at once.
    pub window: usize,
    /// `--max-time`: stop cleanly here.
    pub deadline: Option<Instant>,
    /// Set (by a signal): stop as at the deadline, within a tenth of a
    /// second, with [`DriverError::Interrupted`].
    pub stop: Option<Arc<AtomicBool>>,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            whole_file: false,
            rounds: std::env::var_os("DELTASYNC_SINGLE_ROUND").is_none(),
            batches: std::env::var_os("DELTASYNC_NO_BATCH").is_none(),
            sparse: false,
            window: 1024,
            deadline: None,
            stop: None,
        }
    }
}

/// Runs `ops` phase by phase (see [`Op::phase`]); per-step failures are
/// outcomes, a broken connection or the deadline is an error.
pub fn execute(
    ops: &[Op],
    src: &Agent,
    dst: &Agent,
    o: &ExecOptions,
    observer: &mut dyn Observer,
) -> Result<(), DriverError> {
    let mut x = Exec {
        src,
        dst,
        o: o.clone(),
        ops,
        observer,
        xfers: HashMap::new(),
        at_dst: HashMap::new(),
        at_src: HashMap::new(),
        queue: VecDeque::new(),
        active: 0,
        out: Outbox::default(),
        batches: Batcher::default(),
        reads: HashMap::new(),
        puts: HashMap::new(),
    };
    let mut phases = || {
        for phase in 0..=2 {
            for (i, op) in ops.iter().enumerate().filter(|(_, op)| op.phase() == phase) {
                x.start(i, op)?;
            }
            x.run()?;
        }
        Ok(())
    };
    let result = phases();
    // What ended is recorded even when the run stops on an error.
    x.observer.idle();
    result
}

/// A file in flight, keyed by its step's index.
#[derive(Debug)]
struct Xfer {
    src: RelPath,
    dst: RelPath,
    size: u64,
    expect: Expect,
    attrs: Attrs,
    full_sums: bool,
    mode: Mode,
    attempt: u8,
    sig: Vec<u8>,
    /// What the destination's file is known to hold, until an append is
    /// tried with it.
    known: Option<Partial>,
    /// A similar file at the destination to diff against (`--fuzzy`).
    basis: Option<RelPath>,
    /// The source's delta request, once asked.
    delta: Option<u64>,
    /// The destination's patch request, once asked.
    patch: Option<u64>,
    /// The patch request has gone out (it counts toward `MAX_PATCHES`).
    patch_sent: bool,
    /// The patch runs on a thread of its own on the destination (it counts
    /// toward `MAX_PATCH_THREADS` too): all but a small new file's.
    threaded: bool,
    /// Sent in a batch (so not counted in the window).
    batched: bool,
    forwarded: u64,
    /// Forwarded bytes not yet granted back to the source as credit.
    ungranted: u64,
    sent: Option<Sent>,
}

impl Xfer {
    /// The destination file the delta is made against.
    fn basis_path(&self) -> &RelPath {
        self.basis.as_ref().unwrap_or(&self.dst)
    }
}

/// Credit goes back to the source in steps of this many forwarded bytes.
const GRANT_STEP: u64 = deltasync_wire::DELTA_WINDOW / 4;

/// What a destination request id stands for.
#[derive(Clone, Copy, Debug)]
enum AtDst {
    /// A one-message step.
    Step(usize),
    /// Transfer `usize`'s signature.
    Signature(usize),
    /// Transfer `usize`'s patch.
    Patch(usize),
    /// A patch of an attempt that ended (failed, or retried): cancelled,
    /// and still open on the destination (so still counted against
    /// `MAX_PATCHES`, and if threaded `MAX_PATCH_THREADS`) until its reply
    /// comes.
    Abandoned { threaded: bool },
}

struct Exec<'a> {
    src: &'a Agent,
    dst: &'a Agent,
    o: ExecOptions,
    ops: &'a [Op],
    observer: &'a mut dyn Observer,
    xfers: HashMap<usize, Xfer>,
    at_dst: HashMap<u64, AtDst>,
    /// Source delta request id -> transfer.
    at_src: HashMap<u64, usize>,
    /// Transfers waiting for a slot in the window.
    queue: VecDeque<usize>,
    /// Transfers in the window.
    active: usize,
    /// What goes to the destination, in what order.
    out: Outbox,
    /// Small new files, in batches not yet sent.
    batches: Batcher,
    /// Batches read by the source (its `Read` request id -> transfers)…
    reads: HashMap<u64, Vec<usize>>,
    /// …and placed by the destination (its `Put` request id).
    puts: HashMap<u64, Vec<usize>>,
}

fn hung_up() -> DriverError {
    DriverError::Wire(WireError::Truncated {
        what: "conversation (the agent hung up)",
    })
}

impl Exec<'_> {
    fn start(&mut self, i: usize, op: &Op) -> Result<(), DriverError> {
        match (op, op.request()) {
            (
                Op::Transfer {
                    src,
                    path,
                    size,
                    expect,
                    attrs,
                    known,
                    basis,
                },
                _,
            ) => {
                self.xfers.insert(
                    i,
                    Xfer {
                        src: src.clone(),
                        dst: path.clone(),
                        size: *size,
                        expect: *expect,
                        attrs: attrs.clone(),
                        full_sums: false,
                        known: *known,
                        basis: basis.clone(),
                        mode: Mode::Single,
                        attempt: 0,
                        sig: Vec::new(),
                        delta: None,
                        patch: None,
                        patch_sent: false,
                        threaded: false,
                        batched: false,
                        forwarded: 0,
                        ungranted: 0,
                        sent: None,
                    },
                );
                self.queue.push_back(i);
                self.pump()?;
            }
            (_, Some(req)) => {
                let id = self.dst.next_id();
                self.out.control(Message::Call { id, req });
                self.at_dst.insert(id, AtDst::Step(i));
            }
            (_, None) => unreachable!("every step but a transfer is one request"),
        }
        Ok(())
    }

    /// Starts queued transfers while the window has room; small new files
    /// join batches, which the window does not limit.
    fn pump(&mut self) -> Result<(), DriverError> {
        while let Some(&i) = self.queue.front() {
            let Some(x) = self.xfers.get_mut(&i) else {
                self.queue.pop_front();
                continue;
            };
            let batchable = self.o.batches
                && !self.o.sparse
                && x.basis.is_none()
                && x.expect == Expect::Absent
                && x.attempt == 0;
            let meta = batchable.then(|| batch::meta(x.src.as_bytes(), x.dst.as_bytes(), &x.attrs));
            if let Some(meta) = meta.filter(|m| batch::fits(x.size, *m)) {
                self.queue.pop_front();
                x.batched = true;
                self.batches.add(i, x.size, meta);
                continue;
            }
            if self.active >= self.o.window.max(1) {
                break;
            }
            self.queue.pop_front();
            self.active += 1;
            if x.expect == Expect::Absent && x.size < ASK_PARTIAL_FROM && x.basis.is_none() {
                // New at the destination: no basis to sum, so no round
                // trip to ask; the delta is the file's bytes. Should a file
                // appear meanwhile, the patch's guard refuses it. (A large
                // one still asks: a kept partial prefix may spare a resend.)
                x.mode = Mode::Single;
                self.ask_delta(i, None)?;
                continue;
            }
            let whole_file = self.o.whole_file;
            let known = x.known.take();
            if let Some(known) = known.filter(|k| k.len < x.size && !x.full_sums && !whole_file) {
                // Grown, with the destination's content known: maybe an
                // append. The source checks; no signature either way.
                // (`--whole-file` asks for no delta at all, so not then.)
                x.mode = Mode::Append;
                let req = Request::Delta {
                    path: x.src.as_bytes().to_vec(),
                    skip: None,
                    prefix: Some(known),
                    plan: Some(vec![Run {
                        new_off: 0,
                        basis_off: 0,
                        len: known.len,
                    }]),
                };
                self.ask_src(i, req)?;
                continue;
            }
            self.ask_signature(i);
        }
        Ok(())
    }

    /// Asks the destination to sum transfer `i`'s basis: coarsely for the
    /// rounds, else in native blocks.
    fn ask_signature(&mut self, i: usize) {
        let in_rounds = self.o.rounds && !self.o.whole_file;
        let Some(x) = self.xfers.get_mut(&i) else {
            return;
        };
        let coarse = in_rounds && !x.full_sums && x.size >= crate::engine::rounds::MIN_LEN;
        x.mode = if coarse { Mode::Coarse } else { Mode::Single };
        let id = self.dst.next_id();
        self.out.control(Message::Call {
            id,
            req: Request::Signature {
                path: x.basis_path().as_bytes().to_vec(),
                full_sums: x.full_sums,
                // A similar file's kept prefix is no prefix of this one.
                resume: !x.full_sums && x.basis.is_none(),
                shape: if coarse {
                    SigShape::Coarse
                } else {
                    SigShape::Native
                },
            },
        });
        self.at_dst.insert(id, AtDst::Signature(i));
    }

    fn busy(&self) -> bool {
        !self.at_dst.is_empty()
            || !self.at_src.is_empty()
            || !self.queue.is_empty()
            || !self.batches.is_empty()
            || !self.reads.is_empty()
            || !self.puts.is_empty()
    }

    fn run(&mut self) -> Result<(), DriverError> {
        // Our own handles, so the selection borrows nothing of `self`.
        let (src_in, dst_in, dst_out) = (
            self.src.incoming().clone(),
            self.dst.incoming().clone(),
            self.dst.outgoing().clone(),
        );
        while self.busy() || self.has_outgoing() {
            if self.queue.is_empty() {
                // Every transfer has started or joined a batch: the last
                // batch need not wait for more.
                self.batches.close();
            }
            self.send_batches()?;
            // Looked at on every turn: while data flows, a select never
            // times out, so its timeout alone would never see them.
            if self
                .o
                .stop
                .as_ref()
                .is_some_and(|s| s.load(Ordering::Relaxed))
            {
                self.park_all();
                return Err(DriverError::Interrupted);
            }
            if self.o.deadline.is_some_and(|d| Instant::now() >= d) {
                self.park_all();
                return Err(DriverError::TimeBudget { secs: 0 });
            }
            let mut sel = Select::new();
            let from_src = sel.recv(&src_in);
            let from_dst = sel.recv(&dst_in);
            // Offer the destination a message only when one is waiting, and
            // choose which one only when it can be taken: so a large file's
            // chunks never sit in a queue ahead of a small file's.
            let to_dst = self.has_outgoing().then(|| sel.send(&dst_out));
            // With a stop flag, look at it every tenth of a second.
            let tick = self
                .o
                .stop
                .as_ref()
                .map(|_| Instant::now() + Duration::from_millis(100));
            let limit = match (self.o.deadline, tick) {
                (Some(d), Some(t)) => Some(d.min(t)),
                (d, t) => d.or(t),
            };
            let oper = match sel.try_select() {
                Ok(op) => op,
                Err(_) => {
                    self.observer.idle();
                    match limit {
                        None => sel.select(),
                        Some(l) => match sel.select_deadline(l) {
                            Ok(op) => op,
                            Err(_) => continue, // the checks at the top of the loop decide
                        },
                    }
                }
            };
            let i = oper.index();
            if Some(i) == to_dst {
                let (m, credit) = self.next_outgoing();
                oper.send(&dst_out, m).map_err(|_| hung_up())?;
                if let Some((id, bytes)) = credit {
                    self.src.feed(id, Feed::Credit(bytes))?;
                }
                continue;
            }
            let (got, from) = if i == from_src {
                (oper.recv(&src_in), "source")
            } else {
                debug_assert_eq!(i, from_dst);
                (oper.recv(&dst_in), "destination")
            };
            let (id, rep) = match got {
                Ok(Ok(Message::Reply { id, rep })) => (id, rep),
                Ok(Ok(other)) => {
                    return Err(DriverError::Wire(WireError::Violation(format!(
                        "the {from} agent sent a client's message: {other:?}"
                    ))));
                }
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => return Err(hung_up()),
            };
            if i == from_src {
                self.on_src(id, rep)?
            } else {
                self.on_dst(id, rep)?
            }
        }
        Ok(())
    }

    /// The deadline passed or a signal came: abandon what is in flight (a
    /// patch keeps its verified prefix for the next run).
    fn park_all(&mut self) {
        for id in self.at_src.keys() {
            self.src.cancel(*id);
        }
        for (id, what) in &self.at_dst {
            if matches!(what, AtDst::Patch(_)) {
                self.dst.cancel(*id);
            }
        }
        self.queue.clear();
        self.batches.clear();
        // A batch's reply, should it come, finds nothing and is dropped.
        self.reads.clear();
        self.puts.clear();
    }

    /// True if a message for the destination can go now.
    fn has_outgoing(&mut self) -> bool {
        self.out.ready()
    }

    /// The next message for the destination (see `outbox.rs`). A forwarded
    /// delta chunk earns the source that much more credit for the file.
    /// Call only after `has_outgoing()` returned true.
    fn next_outgoing(&mut self) -> (Message, Option<(u64, u64)>) {
        let (i, m) = self.out.next().expect("has_outgoing() found a message");
        let Some(i) = i else {
            return (m, None);
        };
        let x = self.xfers.get_mut(&i);
        let credit = match (&m, x) {
            (Message::Call { .. }, Some(x)) => {
                x.patch_sent = true;
                None
            }
            (
                Message::Feed {
                    feed: Feed::DeltaChunk(data),
                    ..
                },
                Some(x),
            ) => {
                x.forwarded += data.len() as u64;
                x.ungranted += data.len() as u64;
                let (path, done, total) = (x.dst.clone(), x.forwarded, x.size);
                self.observer.progress(&path, done, total);
                // Granted in steps, not per chunk: a small file needs no
                // grant at all. The source stops only with a whole window
                // ungranted, and by then a step is due, so it never waits
                // for a grant that will not come.
                if x.ungranted >= GRANT_STEP {
                    let bytes = std::mem::take(&mut x.ungranted);
                    x.delta.map(|d| (d, bytes))
                } else {
                    None
                }
            }
            _ => None,
        };
        (m, credit)
    }

    fn on_dst(&mut self, id: u64, rep: Reply) -> Result<(), DriverError> {
        if let Some(batch) = self.puts.remove(&id) {
            return self.on_placed(batch, rep);
        }
        let Some(&what) = self.at_dst.get(&id) else {
            return Ok(()); // a request we gave up on
        };
        if rep.is_terminal() {
            self.at_dst.remove(&id);
        }
        match (what, rep) {
            (AtDst::Step(i), Reply::Error { code, message, .. }) => {
                self.step_failed(i, code, message)
            }
            (AtDst::Step(i), _) => {
                self.observer.outcome(i, &self.ops[i], &Outcome::Done);
            }
            (AtDst::Signature(i), Reply::SigChunk(data)) => {
                if let Some(x) = self.xfers.get_mut(&i) {
                    x.sig.extend_from_slice(&data);
                }
            }
            (AtDst::Signature(i), Reply::SigEnd { basis, partial }) => {
                let Some(x) = self.xfers.get_mut(&i) else {
                    return Ok(());
                };
                match &x.mode {
                    Mode::Coarse => match basis {
                        Some(b) if b.size > 0 => {
                            x.mode = Mode::Rounds(Box::new(Rounds::start(b.size, partial)));
                            self.ask_match(i)?;
                        }
                        // No basis: a literal delta.
                        _ => self.ask_delta(i, partial)?,
                    },
                    Mode::Rounds(_) => self.ask_match(i)?,
                    Mode::Single | Mode::Append => self.ask_delta(i, partial)?,
                }
            }
            (AtDst::Signature(i), Reply::Error { code, message, .. }) => {
                self.finish(i, Some((code, message)), false)?
            }
            (AtDst::Patch(i), Reply::Done) => self.finish(i, None, false)?,
            (AtDst::Patch(i), Reply::Error { code, message, .. }) => {
                self.finish(i, Some((code, message)), false)?;
            }
            (AtDst::Abandoned { threaded }, _) => self.out.closed(threaded),
            (_, other) => {
                return Err(DriverError::Wire(WireError::Violation(format!(
                    "unexpected reply from the destination: {other:?}"
                ))));
            }
        }
        Ok(())
    }

    fn step_failed(&mut self, i: usize, code: Code, message: String) {
        let path = self.ops[i].path().display();
        self.observer.warning(&format!("{path}: {message}"));
        self.observer
            .outcome(i, &self.ops[i], &Outcome::Failed { code, message });
    }

    /// The destination's signature is in: ask the source for the delta.
    fn ask_delta(
        &mut self,
        i: usize,
        partial: Option<deltasync_wire::Partial>,
    ) -> Result<(), DriverError> {
        let whole_file = self.o.whole_file;
        let Some(x) = self.xfers.get_mut(&i) else {
            return Ok(());
        };
        let sig = std::mem::take(&mut x.sig);
        // No basis (a new file, or none wanted): the whole file, asked as a
        // plan with no runs, in one message with no signature to feed.
        let whole = whole_file || sig.is_empty();
        let req = Request::Delta {
            path: x.src.as_bytes().to_vec(),
            skip: if x.full_sums { None } else { partial },
            prefix: None,
            plan: whole.then(Vec::new),
        };
        let id = self.ask_src(i, req)?;
        if whole {
            return Ok(());
        }
        for piece in sig.chunks(MAX_CHUNK) {
            self.src.feed(id, Feed::SigChunk(piece.to_vec()))?;
        }
        self.src.feed(id, Feed::SigEnd)
    }

    /// Sends `req` (transfer `i`'s delta or match) to the source; its
    /// replies come back to `i`.
    fn ask_src(&mut self, i: usize, req: Request) -> Result<u64, DriverError> {
        let id = self.src.start(req)?;
        if let Some(x) = self.xfers.get_mut(&i) {
            x.delta = Some(id);
        }
        self.at_src.insert(id, i);
        Ok(id)
    }

    fn on_src(&mut self, id: u64, rep: Reply) -> Result<(), DriverError> {
        if let Some(batch) = self.reads.remove(&id) {
            return self.on_files(batch, rep);
        }
        let Some(&i) = self.at_src.get(&id) else {
            return Ok(()); // a delta we cancelled
        };
        if rep.is_terminal() {
            self.at_src.remove(&id);
        }
        let sparse = self.o.sparse;
        let Some(x) = self.xfers.get_mut(&i) else {
            return Ok(());
        };
        match rep {
            Reply::DeltaStart { skipped } => {
                let patch = self.dst.next_id();
                x.patch = Some(patch);
                // As the agent decides: a new file's patch is held until
                // whole, unless its bytes pass `HOLD_MAX` (with room for the
                // delta's own few bytes).
                x.threaded = !(crate::agent::core::is_held(x.expect, skipped, x.basis.is_some())
                    && x.size + 1024 <= crate::agent::core::HOLD_MAX as u64);
                let req = Request::Patch {
                    path: x.dst.as_bytes().to_vec(),
                    resume_len: skipped,
                    expect: x.expect,
                    attrs: x.attrs.clone(),
                    sparse,
                    basis: x.basis.as_ref().map(|b| b.as_bytes().to_vec()),
                };
                self.at_dst.insert(patch, AtDst::Patch(i));
                if skipped > 0 {
                    let shown = x.dst.display();
                    self.observer.warning(&format!(
                        "{shown}: resuming after {skipped} bytes kept from an interrupted transfer"
                    ));
                }
                self.out
                    .open(i, Message::Call { id: patch, req }, x.threaded);
            }
            Reply::DeltaChunk(data) => {
                if let Some(patch) = x.patch {
                    self.out.data(
                        i,
                        Message::Feed {
                            id: patch,
                            feed: Feed::DeltaChunk(data),
                        },
                    );
                }
            }
            Reply::DeltaEnd {
                stat,
                blake3,
                skipped,
                literal,
                matched,
            } => {
                x.sent = Some(Sent {
                    stat,
                    blake3,
                    literal,
                    matched: matched + skipped,
                });
                if let Some(patch) = x.patch {
                    self.out.data(
                        i,
                        Message::Feed {
                            id: patch,
                            feed: Feed::DeltaEnd { stat, blake3 },
                        },
                    );
                }
            }
            Reply::Matched { stat, runs } => self.on_matched(i, stat, runs)?,
            Reply::Error {
                code: Code::NotPrefix,
                ..
            } if matches!(x.mode, Mode::Append) => {
                // Not an append after all: the usual way, from its signature.
                x.delta = None;
                self.ask_signature(i);
            }
            Reply::Error { code, message, .. } => {
                self.finish(i, Some((code, message)), true)?;
            }
            other => {
                return Err(DriverError::Wire(WireError::Violation(format!(
                    "unexpected reply from the source: {other:?}"
                ))));
            }
        }
        Ok(())
    }

    /// Lets go of what attempt `x` (of transfer `i`) still has open, so nothing of it is
    /// waited for and none of its late replies is taken for a retry's: a
    /// delta still streaming is cancelled; a patch still open is cancelled
    /// (it keeps its prefix) and counted until it replies; one never sent
    /// is dropped with its queued data.
    fn abandon(&mut self, i: usize, x: &Xfer) {
        self.out.discard(i);
        if let Some(d) = x.delta {
            if self.at_src.remove(&d).is_some() {
                self.src.cancel(d);
            }
        }
        let Some(p) = x.patch else { return };
        match (x.patch_sent, self.at_dst.get_mut(&p)) {
            (true, Some(open)) => {
                *open = AtDst::Abandoned {
                    threaded: x.threaded,
                };
                self.out.control(Message::Cancel { id: p });
            }
            (true, None) => self.out.closed(x.threaded), // it has replied
            (false, _) => {
                self.at_dst.remove(&p);
            }
        }
    }

    /// Ends transfer `i`: reported, and its slot freed. `from_src` tells
    /// whose error it is: a source that changed while read is retried, a
    /// destination that changed since the plan is not.
    fn finish(
        &mut self,
        i: usize,
        failure: Option<(Code, String)>,
        from_src: bool,
    ) -> Result<(), DriverError> {
        let Some(x) = self.xfers.remove(&i) else {
            return Ok(());
        };
        if !x.batched {
            self.active -= 1;
        }
        self.abandon(i, &x);
        let retry = |x: Xfer, full_sums: bool| Xfer {
            full_sums,
            mode: Mode::Single,
            attempt: x.attempt + 1,
            sig: Vec::new(),
            delta: None,
            patch: None,
            patch_sent: false,
            batched: false,
            forwarded: 0,
            ungranted: 0,
            sent: None,
            ..x
        };
        match failure {
            None => {
                let outcome = match x.sent {
                    Some(s) => Outcome::Sent(s),
                    None => Outcome::Done,
                };
                self.observer.outcome(i, &self.ops[i], &outcome);
            }
            Some((Code::Changed, _)) if from_src && x.attempt < 2 => {
                self.observer.warning(&format!(
                    "{}: changed while being read; trying again",
                    x.src.display()
                ));
                self.xfers.insert(i, retry(x, false));
                self.queue.push_front(i);
            }
            Some((Code::Checksum, _)) if !x.full_sums => {
                self.observer.warning(&format!(
                    "{}: whole-file check failed; redoing with full-length sums",
                    x.dst.display()
                ));
                self.xfers.insert(i, retry(x, true));
                self.queue.push_front(i);
            }
            Some((Code::Data | Code::FileIo | Code::Checksum, _))
                if x.basis.is_some() && !from_src && x.attempt < 3 =>
            {
                // The similar file changed or went while it served: send
                // the file without it.
                self.observer.warning(&format!(
                    "{}: its similar file changed while it served as the basis; sending it whole",
                    x.dst.display()
                ));
                let mut again = retry(x, false);
                again.basis = None;
                self.xfers.insert(i, again);
                self.queue.push_front(i);
            }
            Some((Code::Busy, _)) if x.attempt < 3 => {
                // An agent at one of its limits (another client sharing it,
                // or a file grown past what was listed): later, behind the rest.
                let full_sums = x.full_sums;
                self.xfers.insert(i, retry(x, full_sums));
                self.queue.push_back(i);
            }
            Some((code, message)) => {
                let shown = if code == Code::Vanished {
                    format!("file has vanished: {} ({message})", x.src.display())
                } else {
                    format!("{}: {message}", x.dst.display())
                };
                self.observer.warning(&shown);
                self.observer
                    .outcome(i, &self.ops[i], &Outcome::Failed { code, message });
            }
        }
        self.pump()
    }
}

#[cfg(test)]
mod tests;
