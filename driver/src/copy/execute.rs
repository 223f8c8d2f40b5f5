//! Carrying out a copy plan through two agents: `src` (which has the new
//! contents) and `dst` (which has the old ones).
//!
//! For each file the data path is: `dst` sums its old file (SigRequest →
//! SigChunk… SigEnd), we pass the signature to `src` (DeltaRequest), `src`
//! streams the delta (DeltaStart, DeltaChunk…, DeltaEnd) and we relay it to
//! `dst` (PatchRequest…), which rebuilds, checks and commits the file
//! (Done). Up to `window` files are in flight at once, so a copy of N files
//! costs a few round trips in all, not a few per file.
//!
//! One thread runs this loop over both agents' incoming queues, so the
//! state needs no locks. Every request gets its own id; replies for ids we
//! have given up on (after a retry) are ignored.

use std::collections::{HashMap, VecDeque};

use crossbeam::channel::Select;
use deltasync_wire::{Expect, MAX_CHUNK, Message, WireError};

use super::plan::{Action, Plan, itemize_line};
use super::{CopySummary, Event, Reporter};
use crate::client::Agent;
use crate::error::DriverError;
use crate::link::code;
use crate::path::RelPath;

/// A file in flight.
#[derive(Clone, Debug)]
struct Xfer {
    /// The action's index in the plan, for `Applied`/`Failed` events.
    index: usize,
    /// What the destination path must hold when the new file replaces it.
    expect: Expect,
    /// The new file's BLAKE3, from the source's `DeltaEnd`.
    blake3: Option<[u8; 32]>,
    src: RelPath,
    dst: RelPath,
    size: u64,
    code: String,
    full_sums: bool,
    attempt: u8,
    sig: Vec<u8>,
    patching: bool,
    sent: u64,
    literal: u64,
    matched: u64,
}

enum Op {
    Simple {
        index: usize,
        line: Option<String>,
        path: RelPath,
        delete: bool,
        /// The first of an action's two messages (a symlink, then its
        /// mtime): its success is not yet the action's.
        part: bool,
    },
    Xfer(Xfer),
}

struct Exec<'a> {
    src: &'a Agent,
    dst: &'a Agent,
    whole_file: bool,
    window: usize,
    /// The id of the last request started.
    last_id: u64,
    ops: HashMap<u64, Op>,
    queue: VecDeque<Xfer>,
    active: usize,
    summary: &'a mut CopySummary,
    reporter: &'a mut dyn Reporter,
    /// The index of the action being started.
    current: usize,
    /// `--max-time`: stop cleanly here.
    deadline: Option<std::time::Instant>,
    /// Messages for the destination that go first (creations, deletions,
    /// signature requests), in order.
    control: VecDeque<Message>,
    /// Each file's patch messages for the destination, in order.
    data: HashMap<u64, VecDeque<Message>>,
    /// Files with patch messages waiting, served round-robin.
    turns: VecDeque<u64>,
}

/// Runs `plan`; per-file failures are counted in the summary, a broken
/// connection is an error.
pub fn execute(
    plan: &Plan,
    src: &Agent,
    dst: &Agent,
    o: &ExecOptions,
    summary: &mut CopySummary,
    reporter: &mut dyn Reporter,
) -> Result<(), DriverError> {
    let mut x = Exec {
        deadline: o.deadline,
        src,
        dst,
        whole_file: o.whole_file,
        window: o.window.max(1),
        last_id: 0,
        ops: HashMap::new(),
        queue: VecDeque::new(),
        active: 0,
        summary,
        reporter,
        control: VecDeque::new(),
        data: HashMap::new(),
        turns: VecDeque::new(),
        current: 0,
    };
    // Directory mtimes wait until everything inside them is written.
    let last = |a: &Action| matches!(a, Action::SetAttr { code, .. } if code.is_empty());
    for pass_last in [false, true] {
        for (i, a) in plan.actions.iter().enumerate() {
            if last(a) == pass_last {
                x.current = i;
                x.start(a)?;
            }
        }
        x.run()?;
    }
    Ok(())
}

/// How [`execute`] runs.
#[derive(Clone, Copy, Debug)]
pub struct ExecOptions {
    /// Send whole files, no deltas.
    pub whole_file: bool,
    /// Files in flight at once.
    pub window: usize,
    /// `--max-time`: stop cleanly here.
    pub deadline: Option<std::time::Instant>,
}

fn send(agent: &Agent, m: Message) -> Result<(), DriverError> {
    agent.out.send(m).map_err(|_| {
        DriverError::Wire(WireError::Truncated {
            what: "conversation (the agent hung up)",
        })
    })
}

impl Exec<'_> {
    fn id(&mut self) -> u64 {
        // Unique for the whole process, not just this plan: a reply that
        // trails an abandoned transfer (an abort crosses its last chunks on
        // the wire) must never be taken for a later request's.
        self.last_id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.last_id
    }

    fn start(&mut self, a: &Action) -> Result<(), DriverError> {
        let line = itemize_line(a);
        match a {
            Action::Transfer {
                src,
                path,
                size,
                code,
                expect,
            } => {
                self.queue.push_back(Xfer {
                    index: self.current,
                    expect: *expect,
                    blake3: None,
                    src: src.clone(),
                    dst: path.clone(),
                    size: *size,
                    code: code.clone(),
                    full_sums: false,
                    attempt: 0,
                    sig: Vec::new(),
                    patching: false,
                    sent: 0,
                    literal: 0,
                    matched: 0,
                });
                self.pump()
            }
            Action::Delete { path, expect, .. } => {
                let m = Message::Remove {
                    id: 0,
                    path: path.as_bytes().to_vec(),
                    expect: *expect,
                };
                self.simple(m, path, line, true)
            }
            Action::Stash { path, area, expect } => {
                let m = Message::Stash {
                    id: 0,
                    path: path.as_bytes().to_vec(),
                    area: *area,
                    expect: *expect,
                };
                self.simple(m, path, line, *area == 0)
            }
            Action::Move { from, to, expect } => {
                let m = Message::Rename {
                    id: 0,
                    from: from.as_bytes().to_vec(),
                    to: to.as_bytes().to_vec(),
                    expect: *expect,
                };
                self.simple(m, to, line, false)
            }
            Action::Mkdir { path, mode } => {
                let m = Message::Mkdir {
                    id: 0,
                    path: path.as_bytes().to_vec(),
                    mode: *mode,
                };
                self.simple(m, path, line, false)
            }
            Action::Symlink {
                path,
                target,
                mtime_ns,
                ..
            } => {
                // Create it, then set the link's own mtime (never its target's).
                let m = Message::Symlink {
                    id: 0,
                    path: path.as_bytes().to_vec(),
                    target: target.clone(),
                };
                self.simple(m, path, None, false)?;
                if let Some(Op::Simple { part, .. }) = self.ops.get_mut(&self.last_id) {
                    *part = true;
                }
                let m = Message::SetAttr {
                    id: 0,
                    path: path.as_bytes().to_vec(),
                    mode: None,
                    mtime_ns: Some(*mtime_ns),
                    expect: Expect::Symlink,
                };
                self.simple(m, path, line, false)
            }
            Action::SetAttr {
                path,
                mode,
                mtime_ns,
                expect,
                ..
            } => {
                let m = Message::SetAttr {
                    id: 0,
                    path: path.as_bytes().to_vec(),
                    mode: *mode,
                    mtime_ns: *mtime_ns,
                    expect: *expect,
                };
                self.simple(m, path, line, false)
            }
        }
    }

    /// Sends a one-message request to the destination under a fresh id.
    fn simple(
        &mut self,
        mut m: Message,
        path: &RelPath,
        line: Option<String>,
        delete: bool,
    ) -> Result<(), DriverError> {
        let id = self.id();
        match &mut m {
            Message::Remove { id: i, .. }
            | Message::Stash { id: i, .. }
            | Message::Rename { id: i, .. }
            | Message::Mkdir { id: i, .. }
            | Message::Symlink { id: i, .. }
            | Message::SetAttr { id: i, .. } => *i = id,
            _ => {}
        }
        self.control.push_back(m);
        self.ops.insert(
            id,
            Op::Simple {
                index: self.current,
                line,
                path: path.clone(),
                delete,
                part: false,
            },
        );
        Ok(())
    }

    /// Starts queued transfers while the window has room.
    fn pump(&mut self) -> Result<(), DriverError> {
        while self.active < self.window {
            let Some(x) = self.queue.pop_front() else {
                break;
            };
            self.active += 1;
            self.begin(x)?;
        }
        Ok(())
    }

    fn begin(&mut self, x: Xfer) -> Result<(), DriverError> {
        let id = self.id();
        self.control.push_back(Message::SigRequest {
            id,
            path: x.dst.as_bytes().to_vec(),
            full_sums: x.full_sums,
            resume: !x.full_sums,
        });
        self.ops.insert(id, Op::Xfer(x));
        Ok(())
    }

    /// Ends transfer `id`: counted, reported, and its slot freed.
    /// `from_src` tells whose error it is: a source that changed while
    /// read is retried, a destination that changed since the plan is not.
    fn finish(
        &mut self,
        id: u64,
        failure: Option<(u32, String)>,
        from_src: bool,
    ) -> Result<(), DriverError> {
        let Some(Op::Xfer(x)) = self.ops.remove(&id) else {
            return Ok(());
        };
        self.active -= 1;
        self.data.remove(&id); // anything still queued for a failed patch
        match failure {
            None => {
                self.summary.transferred += 1;
                self.summary.literal += x.literal;
                self.summary.matched += x.matched;
                self.summary.transferred_size += x.size;
                self.reporter.event(Event::Applied {
                    index: x.index,
                    blake3: x.blake3,
                });
                self.reporter.event(Event::Item {
                    line: &format!("{} {}", x.code, x.dst.display()),
                    path: &x.dst,
                });
            }
            Some((c, _)) if c == code::CHANGED && from_src && x.attempt < 2 => {
                self.reporter.event(Event::Warning(&format!(
                    "{}: changed while being read; trying again",
                    x.src.display()
                )));
                self.queue.push_front(Xfer {
                    attempt: x.attempt + 1,
                    sig: Vec::new(),
                    patching: false,
                    ..x
                });
            }
            Some((c, _)) if c == code::CHECKSUM && !x.full_sums => {
                self.reporter.event(Event::Warning(&format!(
                    "{}: whole-file check failed; redoing with full-length sums",
                    x.dst.display()
                )));
                self.queue.push_front(Xfer {
                    full_sums: true,
                    attempt: x.attempt + 1,
                    sig: Vec::new(),
                    patching: false,
                    ..x
                });
            }
            Some((c, msg)) if c == code::VANISHED => {
                self.reporter.event(Event::Failed {
                    index: x.index,
                    code: c,
                    message: &msg,
                });
                self.reporter.event(Event::Warning(&format!(
                    "file has vanished: {} ({msg})",
                    x.src.display()
                )));
                self.summary.vanished.push(x.src.display());
            }
            Some((c, msg)) => {
                self.reporter.event(Event::Failed {
                    index: x.index,
                    code: c,
                    message: &msg,
                });
                self.reporter
                    .event(Event::Warning(&format!("{}: {msg}", x.dst.display())));
                self.summary.failed.push(x.dst.display());
            }
        }
        self.pump()
    }

    fn run(&mut self) -> Result<(), DriverError> {
        // Our own handles, so the selection borrows nothing of `self`.
        let (src_in, dst_in, dst_out) = (
            self.src.incoming.clone(),
            self.dst.incoming.clone(),
            self.dst.out.clone(),
        );
        while !self.ops.is_empty() || !self.queue.is_empty() || self.has_outgoing() {
            let mut sel = Select::new();
            let from_src = sel.recv(&src_in);
            let from_dst = sel.recv(&dst_in);
            // Offer the destination a message only when one is waiting, and
            // choose which one only when it can be taken: so a large file's
            // chunks never sit in a queue ahead of a small file's.
            let to_dst = self.has_outgoing().then(|| sel.send(&dst_out));
            let oper = match self.deadline {
                None => sel.select(),
                Some(d) => match sel.select_deadline(d) {
                    Ok(op) => op,
                    Err(_) => return self.out_of_time(),
                },
            };
            let i = oper.index();
            if Some(i) == to_dst {
                let (m, credit) = self.next_outgoing();
                oper.send(&dst_out, m).map_err(|_| {
                    DriverError::Wire(WireError::Truncated {
                        what: "conversation (the agent hung up)",
                    })
                })?;
                if let Some((id, bytes)) = credit {
                    send(self.src, Message::Credit { id, bytes })?;
                }
                continue;
            }
            let (got, is_src) = if i == from_src {
                (oper.recv(&src_in), true)
            } else {
                debug_assert_eq!(i, from_dst);
                (oper.recv(&dst_in), false)
            };
            let msg = match got {
                Ok(Ok(m)) => m,
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => {
                    return Err(DriverError::Wire(WireError::Truncated {
                        what: "conversation",
                    }));
                }
            };
            if is_src {
                self.on_src(msg)?
            } else {
                self.on_dst(msg)?
            }
        }
        Ok(())
    }

    /// True if a message for the destination is waiting. Drops turns of
    /// files whose queues were discarded, so `next_outgoing` always has one.
    /// The deadline passed: abandon what is in flight (a patch keeps its
    /// verified prefix for the next run) and report the budget reached.
    fn out_of_time(&mut self) -> Result<(), DriverError> {
        let ids: Vec<u64> = self
            .ops
            .iter()
            .filter(|(_, op)| matches!(op, Op::Xfer(_)))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let abort = Message::Error {
                id,
                code: code::ABORTED,
                path: Vec::new(),
                message: String::new(),
            };
            let _ = send(self.src, abort.clone());
            let _ = send(self.dst, abort);
        }
        self.queue.clear();
        let secs = self
            .deadline
            .map(|d| {
                d.saturating_duration_since(std::time::Instant::now())
                    .as_secs()
            })
            .unwrap_or(0);
        Err(DriverError::TimeBudget { secs })
    }

    fn has_outgoing(&mut self) -> bool {
        let data = &self.data;
        self.turns
            .retain(|id| data.get(id).is_some_and(|q| !q.is_empty()));
        !self.control.is_empty() || !self.turns.is_empty()
    }

    /// Queues a patch message of file `id`.
    fn queue_data(&mut self, id: u64, m: Message) {
        let q = self.data.entry(id).or_default();
        if q.is_empty() {
            self.turns.push_back(id);
        }
        q.push_back(m);
    }

    /// The next message for the destination: control first, then one
    /// message from each file in turn. A forwarded delta chunk earns the
    /// source that much more credit for the file.
    /// Call only after `has_outgoing()` returned true.
    fn next_outgoing(&mut self) -> (Message, Option<(u64, u64)>) {
        if let Some(m) = self.control.pop_front() {
            return (m, None);
        }
        let id = self
            .turns
            .pop_front()
            .expect("has_outgoing() guarantees a turn");
        let q = self
            .data
            .get_mut(&id)
            .expect("has_outgoing() guarantees a queue");
        let m = q.pop_front().expect("has_outgoing() guarantees a message");
        if q.is_empty() {
            self.data.remove(&id);
        } else {
            self.turns.push_back(id);
        }
        let credit = match &m {
            Message::DeltaChunk { data, .. } => Some((id, data.len() as u64)),
            _ => None,
        };
        (m, credit)
    }

    fn on_dst(&mut self, msg: Message) -> Result<(), DriverError> {
        match msg {
            Message::SigChunk { id, data } => {
                if let Some(Op::Xfer(x)) = self.ops.get_mut(&id) {
                    x.sig.extend_from_slice(&data);
                }
            }
            Message::SigEnd { id, partial, .. } => {
                let Some(Op::Xfer(x)) = self.ops.get_mut(&id) else {
                    return Ok(());
                };
                let sig = std::mem::take(&mut x.sig);
                let sig = if self.whole_file {
                    empty_signature()
                } else {
                    sig
                };
                let skip = if x.full_sums { None } else { partial };
                let src = x.src.as_bytes().to_vec();
                send(
                    self.src,
                    Message::DeltaRequest {
                        id,
                        path: src,
                        skip,
                    },
                )?;
                for piece in sig.chunks(MAX_CHUNK) {
                    send(
                        self.src,
                        Message::SigChunk {
                            id,
                            data: piece.to_vec(),
                        },
                    )?;
                }
                send(
                    self.src,
                    Message::SigEnd {
                        id,
                        basis: None,
                        partial: None,
                    },
                )?;
            }
            Message::Done { id } => match self.ops.get(&id) {
                Some(Op::Xfer(_)) => self.finish(id, None, false)?,
                Some(Op::Simple { .. }) => {
                    if let Some(Op::Simple {
                        index,
                        line,
                        path,
                        delete,
                        part,
                    }) = self.ops.remove(&id)
                    {
                        if delete {
                            self.summary.deleted += 1;
                        }
                        if !part {
                            self.reporter.event(Event::Applied {
                                index,
                                blake3: None,
                            });
                        }
                        if let Some(l) = line {
                            self.reporter.event(Event::Item {
                                line: &l,
                                path: &path,
                            });
                        }
                    }
                }
                None => {}
            },
            Message::Error {
                id, code, message, ..
            } => match self.ops.get(&id) {
                Some(Op::Xfer(_)) => {
                    // The patch (or its signature) failed: stop the sender
                    // too. It may be streaming, or about to start; an
                    // abort for a request it has finished is ignored.
                    let _ = send(
                        self.src,
                        Message::Error {
                            id,
                            code: code::ABORTED,
                            path: Vec::new(),
                            message: String::new(),
                        },
                    );
                    self.finish(id, Some((code, message)), false)?;
                }
                Some(Op::Simple { .. }) => {
                    if let Some(Op::Simple { index, path, .. }) = self.ops.remove(&id) {
                        self.reporter.event(Event::Failed {
                            index,
                            code,
                            message: &message,
                        });
                        self.reporter
                            .event(Event::Warning(&format!("{}: {message}", path.display())));
                        self.summary.failed.push(path.display());
                    }
                }
                None => {}
            },
            other => {
                return Err(DriverError::Wire(WireError::Violation(format!(
                    "unexpected reply from the destination: {other:?}"
                ))));
            }
        }
        Ok(())
    }

    fn on_src(&mut self, msg: Message) -> Result<(), DriverError> {
        match msg {
            Message::DeltaStart { id, skipped } => {
                let Some(Op::Xfer(x)) = self.ops.get_mut(&id) else {
                    return Ok(());
                };
                x.patching = true;
                let dst = x.dst.as_bytes().to_vec();
                let shown = x.dst.display();
                let expect = x.expect;
                self.queue_data(
                    id,
                    Message::PatchRequest {
                        id,
                        path: dst,
                        resume_len: skipped,
                        expect,
                    },
                );
                if skipped > 0 {
                    self.reporter.event(Event::Warning(&format!(
                        "{shown}: resuming after {skipped} bytes kept from an interrupted transfer"
                    )));
                }
            }
            Message::DeltaChunk { id, data } => {
                let Some(Op::Xfer(x)) = self.ops.get_mut(&id) else {
                    return Ok(());
                };
                x.sent += data.len() as u64;
                let (path, done, total) = (x.dst.clone(), x.sent, x.size);
                self.queue_data(id, Message::DeltaChunk { id, data });
                self.reporter.event(Event::Progress {
                    path: &path,
                    done,
                    total,
                });
            }
            Message::DeltaEnd {
                id,
                stat,
                blake3,
                skipped,
                literal,
                matched,
            } => {
                let Some(Op::Xfer(x)) = self.ops.get_mut(&id) else {
                    return Ok(());
                };
                x.literal = literal;
                x.matched = matched + skipped;
                x.blake3 = Some(blake3);
                self.queue_data(
                    id,
                    Message::DeltaEnd {
                        id,
                        stat,
                        blake3,
                        skipped,
                        literal,
                        matched,
                    },
                );
            }
            Message::Error {
                id, code, message, ..
            } => {
                if let Some(Op::Xfer(x)) = self.ops.get(&id) {
                    if x.patching {
                        // Tell the destination to drop this patch (it keeps the prefix).
                        // Drop what was queued, and tell the destination.
                        self.data.remove(&id);
                        self.control.push_back(Message::Error {
                            id,
                            code: code::ABORTED,
                            path: Vec::new(),
                            message: String::new(),
                        });
                    }
                    self.finish(id, Some((code, message)), true)?;
                }
            }
            other => {
                return Err(DriverError::Wire(WireError::Violation(format!(
                    "unexpected reply from the source: {other:?}"
                ))));
            }
        }
        Ok(())
    }
}

/// Request ids, above the small fixed ids of one-off requests (sync's
/// locks, listings and hashes).
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1 << 32);

/// A signature with no blocks: the delta becomes pure literal data.
fn empty_signature() -> Vec<u8> {
    use crate::engine::{Signature, SignatureParams};
    let mut params = SignatureParams::native(0);
    params.block_len = 1 << 16;
    Signature::generate(&[], params).to_bytes()
}
