//! A greeted agent, seen from the client: requests out, replies in.
//!
//! Every request gets its id from the agent's own allocator, so no caller
//! numbers requests by hand and no reply can be taken for another
//! request's. Three ways to talk:
//!
//! - [`Agent::call`]: one request, its one terminal reply (`Done`,
//!   `Value` or `Error`; an `Entry` is a stream's, so a `Hash` goes
//!   through `start` and `incoming`);
//! - [`Agent::stream`]: one request, its replies one by one up to the
//!   terminal one (a listing);
//! - [`Agent::start`], [`Agent::feed`], [`Agent::cancel`] and the
//!   [`Agent::incoming`] queue: many requests in flight at once, for the
//!   executor, which matches replies to requests itself;
//! - [`Agent::subscribe`]: a request that stays open while the others come
//!   and go (a watch). Its replies never enter `incoming`: the reader
//!   thread hands each to the subscriber's callback, and when the
//!   connection ends the callback hears why.
//!
//! `call` and `stream` pass over replies to other ids: they belong to
//! requests that were cancelled or given up on, and nothing else may be in
//! flight while they wait.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam::channel::{Receiver, Sender};
use deltasync_wire::transport::{EndHandle, StderrTap};
use deltasync_wire::{Feed, Message, Reply, Request, Settings, WireError, WireStats};

use crate::error::DriverError;
use crate::link::Outbox;

/// What a subscriber is handed: each reply, or why the connection ended.
pub type Subscriber = Box<dyn FnMut(Result<Reply, DriverError>) + Send>;

/// The subscribers, by request id; shared with the reader thread.
#[derive(Clone, Default)]
pub(super) struct Routes(Arc<Mutex<HashMap<u64, Subscriber>>>);

impl Routes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Subscriber>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands `m` to its subscriber, if its request has one (a terminal
    /// reply ends the subscription); gives it back otherwise.
    pub(super) fn deliver(&self, m: Message) -> Option<Message> {
        let Message::Reply { id, rep } = m else {
            return Some(m);
        };
        let mut routes = self.lock();
        let Some(subscriber) = routes.get_mut(&id) else {
            return Some(Message::Reply { id, rep });
        };
        let last = rep.is_terminal();
        subscriber(Ok(rep));
        if last {
            routes.remove(&id);
        }
        None
    }

    /// The connection ended: every subscriber hears it, once.
    pub(super) fn hang_up(&self, why: &WireError) {
        for (_, mut subscriber) in self.lock().drain() {
            subscriber(Err(DriverError::Wire(WireError::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                why.to_string(),
            )))));
        }
    }
}

/// A greeted agent: queues to and from it, and its far end.
pub struct Agent {
    pub(super) routes: Routes,
    pub(super) out: Sender<Message>,
    pub(super) incoming: Receiver<Result<Message, WireError>>,
    pub(super) ids: AtomicU64,
    /// Bytes moved on this connection.
    pub stats: Arc<WireStats>,
    /// What the handshake agreed.
    pub settings: Settings,
    /// True when the agent is on another machine.
    pub remote: bool,
    /// What it is, for messages.
    pub description: String,
    pub(super) outbox: Outbox,
    pub(super) reader: JoinHandle<()>,
    pub(super) end: EndHandle,
    pub(super) stderr: Option<StderrTap>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("description", &self.description)
            .finish()
    }
}

fn hung_up() -> DriverError {
    DriverError::Wire(WireError::Truncated {
        what: "conversation (the agent hung up)",
    })
}

/// The replies to one request, up to and including its terminal one.
#[derive(Debug)]
pub struct ReplyStream<'a> {
    agent: &'a Agent,
    id: u64,
    done: bool,
}

impl Iterator for ReplyStream<'_> {
    type Item = Result<Reply, DriverError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = self.agent.reply_to(self.id);
        self.done = !matches!(&r, Ok(rep) if !rep.is_terminal());
        Some(r)
    }
}

impl Agent {
    /// A fresh request id.
    pub fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends `req` under a fresh id, which it returns.
    pub fn start(&self, req: Request) -> Result<u64, DriverError> {
        let id = self.next_id();
        self.send(Message::Call { id, req })?;
        Ok(id)
    }

    /// Sends `req` under a fresh id, which it returns; its replies go to
    /// `subscriber` as they come, never to `incoming`.
    pub fn subscribe(&self, req: Request, subscriber: Subscriber) -> Result<u64, DriverError> {
        let id = self.next_id();
        self.routes.lock().insert(id, subscriber);
        self.send(Message::Call { id, req })?;
        Ok(id)
    }

    /// Sends more input for request `id`.
    pub fn feed(&self, id: u64, feed: Feed) -> Result<(), DriverError> {
        self.send(Message::Feed { id, feed })
    }

    /// Abandons request `id` (best effort: an agent that is gone needs no telling).
    pub fn cancel(&self, id: u64) {
        let _ = self.send(Message::Cancel { id });
    }

    /// Queues any message for the agent.
    pub fn send(&self, m: Message) -> Result<(), DriverError> {
        self.out.send(m).map_err(|_| hung_up())
    }

    /// The queue of everything the agent sends, for a caller that has many
    /// requests in flight and matches replies itself.
    pub fn incoming(&self) -> &Receiver<Result<Message, WireError>> {
        &self.incoming
    }

    /// The queue to the agent, for a caller that selects on it.
    pub fn outgoing(&self) -> &Sender<Message> {
        &self.out
    }

    /// The next reply to request `id`, passing over replies to others.
    fn reply_to(&self, id: u64) -> Result<Reply, DriverError> {
        loop {
            match self.incoming.recv() {
                Ok(Ok(Message::Reply { id: got, rep })) if got == id => return Ok(rep),
                Ok(Ok(Message::Reply { .. })) => continue,
                Ok(Ok(other)) => {
                    return Err(DriverError::Wire(WireError::Violation(format!(
                        "the agent sent a client's message: {other:?}"
                    ))));
                }
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => return Err(hung_up()),
            }
        }
    }

    /// Sends `req` and waits for its terminal reply. Replies that come
    /// before it (a stream's) are an error here: use [`Agent::stream`].
    pub fn call(&self, req: Request) -> Result<Reply, DriverError> {
        let id = self.start(req)?;
        self.answer(id)
    }

    /// Like [`Agent::call`], waiting at most `limit`: for goodbyes after an
    /// error, when replies to abandoned requests may still be queued and
    /// the agent may be stuck.
    pub fn call_within(
        &self,
        req: Request,
        limit: std::time::Duration,
    ) -> Result<Reply, DriverError> {
        let id = self.start(req)?;
        let until = std::time::Instant::now() + limit;
        while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
            match self.incoming.recv_timeout(left) {
                Ok(Ok(Message::Reply { id: got, rep })) if got == id => return Ok(rep),
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => break,
            }
        }
        Err(DriverError::Wire(WireError::Truncated {
            what: "reply (the agent did not answer in time)",
        }))
    }

    /// Sends `req` and returns its replies as they come.
    pub fn stream(&self, req: Request) -> Result<ReplyStream<'_>, DriverError> {
        let id = self.start(req)?;
        Ok(self.replies(id))
    }

    /// The replies to request `id`, already sent with [`Agent::start`], as
    /// they come. Replies to other requests that come first are passed
    /// over (lost): read pipelined requests in the order they were sent.
    pub fn replies(&self, id: u64) -> ReplyStream<'_> {
        ReplyStream {
            agent: self,
            id,
            done: false,
        }
    }

    /// The one reply to request `id`, already sent with [`Agent::start`];
    /// as [`Agent::replies`], replies to others that come first are lost.
    pub fn answer(&self, id: u64) -> Result<Reply, DriverError> {
        let rep = self.reply_to(id)?;
        if rep.is_terminal() {
            Ok(rep)
        } else {
            Err(DriverError::Wire(WireError::Violation(format!(
                "a stream answered a one-reply request: {rep:?}"
            ))))
        }
    }

    /// Says goodbye and waits for the agent to finish.
    pub fn close(self) -> Result<(), DriverError> {
        let _ = self.out.send(Message::Bye);
        drop(self.out);
        let flushed = self.outbox.finish();
        drain_then_join(&self.incoming, self.reader);
        let _ = self.end.wait();
        flushed.map_err(DriverError::from)
    }

    /// Stops the agent at once (on errors).
    pub fn kill(self) {
        drop(self.out);
        self.end.kill();
        let _ = self.outbox.finish();
        drain_then_join(&self.incoming, self.reader);
    }

    /// The local agent's process id (tests kill it to simulate crashes).
    pub fn pid(&self) -> Option<u32> {
        self.end.pid()
    }

    /// A short name for messages.
    pub fn description_short(&self) -> String {
        self.description.chars().take(120).collect()
    }

    /// What the far side printed on stderr and was held back (SSH only).
    pub fn held_stderr(&self) -> String {
        self.stderr
            .as_ref()
            .map(StderrTap::held_text)
            .unwrap_or_default()
    }
}

/// Reads and drops what the agent still sends until its reader thread
/// ends, then joins it. Replies nobody waits for (to abandoned requests,
/// or ones sent without waiting, as a sync's last `Unlock`) may fill a
/// bounded queue; a reader blocked on a full queue would never end.
fn drain_then_join(
    incoming: &crossbeam::channel::Receiver<Result<Message, WireError>>,
    reader: std::thread::JoinHandle<()>,
) {
    while incoming.recv().is_ok() {}
    let _ = reader.join();
}
