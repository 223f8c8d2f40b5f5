//! Plumbing shared by the agent and the client: a writer thread that owns
//! the sending half of a connection, and a `Write` that turns a byte stream
//! into chunk messages.
//!
//! The outbox batches: it writes every message waiting in its queue and
//! flushes when the queue has stayed dry for 2 ms (at most 10 ms after the
//! first unflushed message), so a burst of small messages becomes one
//! packet. Its queue is bounded, so a producer faster than the link waits
//! (back-pressure).

use std::io::{self, Read, Write};
use std::thread::JoinHandle;

use crossbeam::channel::{Receiver, Sender, bounded};
use deltasync_wire::{MAX_CHUNK, Message, MessageWriter, WireError};

/// How long the outbox waits for one more message before it flushes.
const LINGER: std::time::Duration = std::time::Duration::from_millis(2);
/// The longest it holds a flush back, however fast messages keep coming.
const LINGER_MAX: std::time::Duration = std::time::Duration::from_millis(10);

/// The sending side of a connection, on a thread of its own.
pub struct Outbox {
    tx: Sender<Message>,
    join: JoinHandle<Result<(), WireError>>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outbox")
    }
}

/// Starts a thread named `name` (as `top -H`, `perf` and core dumps show
/// it; Linux keeps 15 bytes), or panics as `std::thread::spawn` does.
pub(crate) fn spawn<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .unwrap_or_else(|e| panic!("cannot start thread {name}: {e}"))
}

impl Outbox {
    /// Moves `writer` onto a thread fed by a queue of `depth` messages.
    pub fn spawn<W: Write + Send + 'static>(mut writer: MessageWriter<W>, depth: usize) -> Outbox {
        let (tx, rx): (Sender<Message>, Receiver<Message>) = bounded(depth);
        let join = spawn("outbox", move || {
            while let Ok(first) = rx.recv() {
                writer.send(&first)?;
                // Linger briefly before flushing, as TCP_CORK would: replies
                // and listing entries come microseconds apart, and sent
                // together they share packets (and compress) instead of
                // paying SSH and TCP overhead one by one on a slow link.
                let deadline = std::time::Instant::now() + LINGER_MAX;
                loop {
                    let next = match rx.try_recv() {
                        Ok(m) => m,
                        Err(_) => {
                            let left =
                                deadline.saturating_duration_since(std::time::Instant::now());
                            match rx.recv_timeout(left.min(LINGER)) {
                                Ok(m) => m,
                                Err(_) => break,
                            }
                        }
                    };
                    writer.send(&next)?;
                }
                writer.flush()?;
            }

            writer.flush()?;
            // Dropping the writer closes our direction: the peer sees end of stream.
            drop(writer.into_inner());
            Ok(())
        });
        Outbox { tx, join }
    }

    /// A handle to queue messages with.
    pub fn sender(&self) -> Sender<Message> {
        self.tx.clone()
    }

    /// Closes the queue, waits for everything to be written.
    pub fn finish(self) -> Result<(), WireError> {
        drop(self.tx);
        self.join
            .join()
            .unwrap_or_else(|_| Err(WireError::Violation("outbox thread panicked".into())))
    }
}

/// A `Write` that sends what is written as chunk messages of at most
/// `MAX_CHUNK` bytes, made by `wrap(data)`.
pub struct ChunkWriter<F: Fn(Vec<u8>) -> Message> {
    buf: Vec<u8>,
    tx: Sender<Message>,
    wrap: F,
    gate: Option<std::sync::Arc<Credit>>,
    /// Bytes sent so far.
    pub sent: u64,
}

impl<F: Fn(Vec<u8>) -> Message> std::fmt::Debug for ChunkWriter<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkWriter")
            .field("sent", &self.sent)
            .finish()
    }
}

impl<F: Fn(Vec<u8>) -> Message> ChunkWriter<F> {
    /// Sends through `tx`.
    pub fn new(tx: Sender<Message>, wrap: F) -> Self {
        ChunkWriter {
            buf: Vec::with_capacity(MAX_CHUNK),
            tx,
            wrap,
            gate: None,
            sent: 0,
        }
    }

    /// Sends only as far as `credit` allows.
    pub fn gated(mut self, credit: std::sync::Arc<Credit>) -> Self {
        self.gate = Some(credit);
        self
    }

    fn push(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if let Some(gate) = &self.gate {
            gate.wait_until(self.sent + self.buf.len() as u64)?;
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(MAX_CHUNK));
        self.sent += data.len() as u64;
        self.tx
            .send((self.wrap)(data))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "connection closed"))
    }
}

impl<F: Fn(Vec<u8>) -> Message> Write for ChunkWriter<F> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(MAX_CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == MAX_CHUNK {
            self.push()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.push()
    }
}

/// A `Read` over chunks arriving on a channel: what a patch reads its delta
/// from. A `None` marks the end; a closed channel means the transfer was
/// abandoned, which is an error, not an end.
#[derive(Debug)]
pub struct ChunkReader {
    rx: Receiver<Option<Vec<u8>>>,
    cur: Vec<u8>,
    at: usize,
    ended: bool,
}

impl ChunkReader {
    /// Reads from `rx`.
    pub fn new(rx: Receiver<Option<Vec<u8>>>) -> Self {
        ChunkReader {
            rx,
            cur: Vec::new(),
            at: 0,
            ended: false,
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.cur.len() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Some(chunk)) => {
                    self.cur = chunk;
                    self.at = 0;
                }
                Ok(None) => self.ended = true,
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "transfer abandoned",
                    ));
                }
            }
        }
        let n = buf.len().min(self.cur.len() - self.at);
        buf[..n].copy_from_slice(&self.cur[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Flow-control credit for one stream: how many bytes the peer allows.
#[derive(Debug)]
pub struct Credit {
    state: std::sync::Mutex<(u64, bool)>,
    cv: std::sync::Condvar,
}

impl Credit {
    /// A stream allowed `initial` bytes before any grant.
    pub fn new(initial: u64) -> std::sync::Arc<Credit> {
        std::sync::Arc::new(Credit {
            state: std::sync::Mutex::new((initial, false)),
            cv: std::sync::Condvar::new(),
        })
    }

    /// The peer allows `bytes` more.
    pub fn grant(&self, bytes: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.0 = s.0.saturating_add(bytes);
            self.cv.notify_all();
        }
    }

    /// The peer gave up on the stream: waiters fail.
    pub fn cancel(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.1 = true;
            self.cv.notify_all();
        }
    }

    /// Waits until `total` bytes in all are allowed.
    pub fn wait_until(&self, total: u64) -> io::Result<()> {
        let aborted = || {
            io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the client abandoned this transfer",
            )
        };
        let mut s = self.state.lock().map_err(|_| aborted())?;
        while s.0 < total && !s.1 {
            s = self.cv.wait(s).map_err(|_| aborted())?;
        }
        if s.1 { Err(aborted()) } else { Ok(()) }
    }
}
