//! One thread that owns an SSH session and moves bytes both ways.
//!
//! libssh2 serialises everything on a session, so a blocking read in one
//! thread would stall writes from another and a pipelined protocol would
//! deadlock. Instead the session runs non-blocking on this pump: it writes
//! queued bytes, reads what arrived, forwards the remote's stderr, sends
//! keepalives, and sleeps in `poll(2)` on the socket (in the directions
//! libssh2 is waiting for) and on a wake-up socket the writer pokes.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender, TryRecvError, TrySendError, bounded};
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use ssh2::{BlockDirections, Channel, Session};

use super::TimeoutReader;
use super::ssh::SshEnd;

/// Bytes handed to the pump in pieces of about this size.
const PIECE: usize = 64 * 1024;

/// The writing end the connection uses.
pub(super) struct PumpWriter {
    buf: Vec<u8>,
    tx: Option<Sender<Vec<u8>>>,
    wake: UnixStream,
}

impl PumpWriter {
    fn push(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE));
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| io::Error::from(io::ErrorKind::BrokenPipe))?;
        tx.send(piece)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "ssh connection closed"))?;
        let _ = (&self.wake).write(&[1]); // a full wake socket already means "wake up"
        Ok(())
    }
}

impl Write for PumpWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PIECE {
            self.push()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.push()
    }
}

impl Drop for PumpWriter {
    fn drop(&mut self) {
        let _ = self.push();
        self.tx = None; // the pump sees the hang-up and sends EOF
        let _ = (&self.wake).write(&[1]);
    }
}

pub(super) fn start(
    session: Session,
    channel: Channel,
    socket: std::net::TcpStream,
    timeout: Option<Duration>,
    stderr: super::StderrTap,
    busy: Arc<AtomicBool>,
) -> io::Result<(TimeoutReader, PumpWriter, SshEnd)> {
    let (out_tx, out_rx) = bounded::<Vec<u8>>(8);
    let (in_tx, in_rx) = bounded::<io::Result<Vec<u8>>>(16);
    let (wake_w, wake_r) = UnixStream::pair()?;
    wake_w.set_nonblocking(true)?;
    wake_r.set_nonblocking(true)?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let join = std::thread::spawn(move || {
        let mut pump = Pump {
            session,
            channel,
            socket,
            wake: wake_r,
            out_rx,
            in_tx,
            stop: stop2,
            stderr,
        };
        let result = pump.run();
        if let Err(e) = &result {
            let _ = pump
                .in_tx
                .send(Err(io::Error::new(e.kind(), e.to_string())));
        }
        // The channel is freed while the session is still non-blocking: on
        // a stalled link a blocking free would wait for ever. Only then is
        // the session idle (its next user sets blocking mode itself).
        drop(pump);
        busy.store(false, Ordering::Release);
        result
    });
    let poke = wake_w.try_clone()?;
    let writer = PumpWriter {
        buf: Vec::with_capacity(PIECE),
        tx: Some(out_tx),
        wake: wake_w,
    };
    Ok((
        TimeoutReader::from_channel(in_rx, timeout),
        writer,
        SshEnd {
            join: Some(join),
            stop,
            poke,
        },
    ))
}

struct Pump {
    session: Session,
    channel: Channel,
    socket: std::net::TcpStream,
    wake: UnixStream,
    out_rx: Receiver<Vec<u8>>,
    in_tx: Sender<io::Result<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    stderr: super::StderrTap,
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl Pump {
    fn run(&mut self) -> io::Result<Option<i32>> {
        self.session.set_blocking(false);
        let mut out: Vec<u8> = Vec::new();
        let mut out_at = 0;
        let mut out_closed = false;
        let mut eof_sent = false;
        let mut held: Option<Vec<u8>> = None; // read but not yet accepted by the reader
        let mut in_eof = false;
        let mut buf = vec![0u8; 64 * 1024];
        let mut next_keepalive = Instant::now() + Duration::from_secs(15);
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let mut progress = false;
            let mut drain = [0u8; 64];
            while matches!((&self.wake).read(&mut drain), Ok(n) if n > 0) {}

            // Outgoing.
            if out_at == out.len() && !out_closed {
                match self.out_rx.try_recv() {
                    Ok(piece) => {
                        out = piece;
                        out_at = 0;
                    }
                    Err(TryRecvError::Empty) => {}
                    Err(TryRecvError::Disconnected) => out_closed = true,
                }
            }
            if out_at < out.len() {
                match self.channel.write(&out[out_at..]) {
                    Ok(n) => {
                        out_at += n;
                        progress |= n > 0;
                    }
                    Err(e) if would_block(&e) => {}
                    Err(e) => return Err(e),
                }
            }
            if out_closed && out_at == out.len() && !eof_sent {
                match self.channel.send_eof() {
                    Ok(()) => {
                        eof_sent = true;
                        progress = true;
                    }
                    Err(e) if e.code() == ssh2::ErrorCode::Session(-37) => {}
                    Err(e) => return Err(io::Error::other(e)),
                }
            }

            // Incoming: stderr first. Any libssh2 read takes every packet
            // waiting on the socket into its own queues, stdout's too; were
            // stdout read first, data that came in between would sit there
            // unseen while we slept until the next keepalive.
            match self.channel.stderr().read(&mut buf) {
                Ok(n) if n > 0 => {
                    self.stderr.push(&buf[..n]);
                    progress = true;
                }
                _ => {}
            }
            if let Some(chunk) = held.take() {
                match self.in_tx.try_send(Ok(chunk)) {
                    Ok(()) => progress = true,
                    Err(TrySendError::Full(Ok(c))) => held = Some(c),
                    Err(_) => in_eof = true, // the reader is gone; drop what comes
                }
            }
            if held.is_none() && !in_eof {
                match self.channel.read(&mut buf) {
                    Ok(0) if self.channel.eof() => {
                        in_eof = true;
                        let _ = self.in_tx.send(Ok(Vec::new()));
                        progress = true;
                    }
                    Ok(0) => {}
                    Ok(n) => {
                        held = Some(buf[..n].to_vec());
                        progress = true;
                    }
                    Err(e) if would_block(&e) => {}
                    Err(e) => return Err(e),
                }
            }
            if Instant::now() >= next_keepalive {
                match self.session.keepalive_send() {
                    Ok(secs) => {
                        next_keepalive =
                            Instant::now() + Duration::from_secs(u64::from(secs.max(1)));
                        // It may have read packets too: look again first.
                        progress = true;
                    }
                    Err(e) if e.code() == ssh2::ErrorCode::Session(-37) => {}
                    Err(e) => return Err(io::Error::other(e)),
                }
            }
            if in_eof && eof_sent && held.is_none() {
                return self.close();
            }
            if !progress {
                let busy = held.is_some() || out_at < out.len();
                self.wait(busy, next_keepalive)?;
            }
        }
    }

    /// Sleeps until the socket can move bytes in the directions libssh2
    /// wants, the writer pokes us, or a short tick passes.
    fn wait(&self, busy: bool, keepalive: Instant) -> io::Result<()> {
        let mut flags = PollFlags::empty();
        match self.session.block_directions() {
            BlockDirections::Inbound => flags |= PollFlags::IN,
            BlockDirections::Outbound => flags |= PollFlags::OUT,
            BlockDirections::Both => flags |= PollFlags::IN | PollFlags::OUT,
            BlockDirections::None => flags |= PollFlags::IN,
        }
        // Idle, sleep until the next keepalive: the socket, the writer or
        // a stop (which pokes the wake socket too) wakes us before that.
        let tick = if busy {
            Duration::from_millis(5)
        } else {
            keepalive
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(5))
        };
        let ts = Timespec {
            tv_sec: tick.as_secs() as i64,
            tv_nsec: i64::from(tick.subsec_nanos()),
        };
        let mut fds = [
            PollFd::new(&self.socket, flags),
            PollFd::new(&self.wake, PollFlags::IN),
        ];
        match poll(&mut fds, Some(&ts)) {
            Ok(_) => Ok(()),
            Err(rustix::io::Errno::INTR) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn close(&mut self) -> io::Result<Option<i32>> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.channel.wait_close() {
                Ok(()) => return Ok(self.channel.exit_status().ok()),
                Err(e)
                    if e.code() == ssh2::ErrorCode::Session(-37) && Instant::now() < deadline =>
                {
                    self.wait(true, Instant::now())?;
                }
                Err(_) => return Ok(None),
            }
        }
    }
}
