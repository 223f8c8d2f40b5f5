//! `Connection<R, W>`: messages over any byte stream.
//!
//! The writer batches frames into packets of up to `PACKET_TARGET` bytes
//! and, when compression was agreed, compresses each packet on its own with
//! zstd; a packet that does not shrink by at least 3% goes raw. Incompressible
//! data thus costs five header bytes per 128 KiB (zstd rejects it quickly).
//! Each packet stands alone, so sending one raw never desynchronises the
//! peer's decompressor, and the level may change at any packet: it climbs
//! while the transport, not the CPU, is what the writer waits on
//! (`adapt.rs`).
//!
//! The reader is the check-then-parse loop: it asks the frame and packet
//! decoders whether a whole unit is buffered, and reads more only when not.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::adapt::Adapt;
use crate::error::WireError;
use crate::frame::{self, FRAME_HEADER};
use crate::message::{FEATURE_ZSTD, Hello, Message};

/// Frames are batched into packets of about this size.
pub const PACKET_TARGET: usize = 128 * 1024;
/// Packets smaller than this are sent raw.
const SMALL_PACKET: usize = 4096;

/// The largest packet body accepted, raw or inflated.
pub const MAX_PACKET: u32 = 1 << 20;
/// The largest frame this build accepts.
pub const MAX_FRAME: u32 = 1 << 20;
/// Message payloads (chunks of signatures and deltas) stay below this.
/// Small enough that a large file's chunks interleave finely with small
/// files' on a slow link (64 KiB is a quarter second at 2 Mbit/s).
pub const MAX_CHUNK: usize = 64 * 1024;
/// How far a source may run ahead of the client on one file's delta
/// before it waits for `Credit`.
pub const DELTA_WINDOW: u64 = 2 << 20;
/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 6;

/// Bytes moved, shared between a connection's halves and whoever reports.
#[derive(Debug, Default)]
pub struct WireStats {
    /// Bytes written to the transport (after compression).
    pub sent: AtomicU64,
    /// Bytes read from the transport.
    pub received: AtomicU64,
    /// Bytes of frames before compression.
    pub sent_raw: AtomicU64,
}

/// The sending half.
pub struct MessageWriter<W: Write> {
    out: W,
    frames: Vec<u8>,
    packet: Vec<u8>,
    compressor: Option<(zstd::bulk::Compressor<'static>, Adapt)>,
    stats: Arc<WireStats>,
}

impl<W: Write> std::fmt::Debug for MessageWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageWriter")
            .field("buffered", &self.frames.len())
            .finish()
    }
}

impl<W: Write> MessageWriter<W> {
    /// A writer on `out`, uncompressed until [`MessageWriter::set_compression`].
    pub fn new(out: W, stats: Arc<WireStats>) -> Self {
        MessageWriter {
            out,
            frames: Vec::with_capacity(PACKET_TARGET * 2),
            packet: Vec::with_capacity(PACKET_TARGET + 64),
            compressor: None,
            stats,
        }
    }

    /// Compress outgoing packets at `level` or, while the transport is
    /// the bottleneck, harder (0 turns compression off).
    pub fn set_compression(&mut self, level: i32) -> Result<(), WireError> {
        self.compressor = if level == 0 {
            None
        } else {
            Some((zstd::bulk::Compressor::new(level)?, Adapt::new(level)))
        };
        Ok(())
    }

    /// The level the next packet is compressed at (0: off).
    pub fn compression_level(&self) -> i32 {
        self.compressor.as_ref().map_or(0, |(_, a)| a.level())
    }

    /// Queues a message; it reaches the wire on a full packet or a flush.
    pub fn send(&mut self, msg: &Message) -> Result<(), WireError> {
        let (kind, payload) = msg.encode();
        debug_assert!(payload.len() <= MAX_FRAME as usize);
        frame::encode_frame(kind, &payload, &mut self.frames);
        if self.frames.len() >= PACKET_TARGET {
            self.emit(false)?;
        }
        Ok(())
    }

    /// Writes everything queued and flushes the transport.
    pub fn flush(&mut self) -> Result<(), WireError> {
        self.emit(true)?;
        self.out.flush()?;
        Ok(())
    }

    /// The transport, for shutting it down.
    pub fn into_inner(self) -> W {
        self.out
    }

    fn emit(&mut self, all: bool) -> Result<(), WireError> {
        let mut start = 0;
        while self.frames.len() - start >= PACKET_TARGET || (all && start < self.frames.len()) {
            let end = (start + PACKET_TARGET).min(self.frames.len());
            self.write_packet(start, end)?;
            start = end;
        }
        self.frames.drain(..start);
        Ok(())
    }

    fn write_packet(&mut self, start: usize, end: usize) -> Result<(), WireError> {
        let body = &self.frames[start..end];
        self.packet.clear();
        let mut sent_compressed = false;
        let mut compress_time = None;
        // Tiny packets (a lone reply) are not worth compressing. Every other
        // packet is tried on its own: zstd turns down random data at about
        // 1.8 GB/s, so trying costs little, and a packet mixing text and
        // random chunks still gets the text's savings.
        if let (Some((c, _)), true) = (&mut self.compressor, body.len() >= SMALL_PACKET) {
            let began = Instant::now();
            let compressed = c.compress(body)?;
            compress_time = Some(began.elapsed());
            if compressed.len() + 4 < body.len() * 97 / 100 {
                frame::encode_zstd_packet(&compressed, body.len(), &mut self.packet);
                sent_compressed = true;
            }
        }
        if !sent_compressed {
            frame::encode_raw_packet(body, &mut self.packet);
        }
        let raw_len = body.len() as u64;
        let began = Instant::now();
        self.out.write_all(&self.packet)?;
        self.adapt(compress_time, began.elapsed())?;
        self.stats
            .sent
            .fetch_add(self.packet.len() as u64, Ordering::Relaxed);
        self.stats.sent_raw.fetch_add(raw_len, Ordering::Relaxed);
        Ok(())
    }
}

impl<W: Write> MessageWriter<W> {
    /// Moves the level after a compressed packet's timings.
    fn adapt(&mut self, compress: Option<Duration>, write: Duration) -> Result<(), WireError> {
        if let (Some((c, adapt)), Some(compress)) = (&mut self.compressor, compress) {
            if let Some(level) = adapt.observe(compress, write) {
                c.set_compression_level(level)?;
            }
        }
        Ok(())
    }
}

/// The receiving half.
pub struct MessageReader<R: Read> {
    input: R,
    raw: Vec<u8>,
    raw_lo: usize,
    frames: Vec<u8>,
    frames_lo: usize,
    /// Made when zstd is agreed.
    inflater: Option<zstd::bulk::Decompressor<'static>>,
    max_frame: u32,
    zstd_ok: bool,
    eof: bool,
    stats: Arc<WireStats>,
    timeout_secs: u64,
}

impl<R: Read> std::fmt::Debug for MessageReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageReader")
            .field("eof", &self.eof)
            .finish()
    }
}

impl<R: Read> MessageReader<R> {
    /// A reader on `input`, accepting only raw packets until told otherwise.
    pub fn new(input: R, stats: Arc<WireStats>) -> Self {
        MessageReader {
            input,
            raw: Vec::with_capacity(64 * 1024),
            raw_lo: 0,
            frames: Vec::with_capacity(64 * 1024),
            frames_lo: 0,
            inflater: None,
            max_frame: MAX_FRAME,
            zstd_ok: false,
            eof: false,
            stats,
            timeout_secs: 0,
        }
    }

    /// Accept zstd packets from now on.
    pub fn allow_zstd(&mut self) -> Result<(), WireError> {
        if self.inflater.is_none() {
            self.inflater = Some(zstd::bulk::Decompressor::new()?);
        }
        self.zstd_ok = true;
        Ok(())
    }

    /// Name the timeout in errors when the transport reports `TimedOut`.
    pub fn set_timeout_secs(&mut self, secs: u64) {
        self.timeout_secs = secs;
    }

    /// The next message; `Ok(None)` when the peer closed cleanly between messages.
    pub fn recv(&mut self) -> Result<Option<Message>, WireError> {
        loop {
            if let Some((kind, range)) =
                frame::check_frame(&self.frames[self.frames_lo..], self.max_frame)?
            {
                let base = self.frames_lo;
                let msg =
                    Message::decode(kind, &self.frames[base + range.start..base + range.end])?;
                self.frames_lo += range.end;
                if self.frames_lo == self.frames.len() {
                    self.frames.clear();
                    self.frames_lo = 0;
                }
                return Ok(Some(msg));
            }
            if !self.next_packet()? {
                let left = self.frames.len() - self.frames_lo;
                return if left == 0 {
                    Ok(None)
                } else {
                    Err(WireError::Truncated { what: "frame" })
                };
            }
        }
    }

    /// Reads until one packet is whole, then appends its body to the frame
    /// stream. False at a clean end of stream.
    fn next_packet(&mut self) -> Result<bool, WireError> {
        loop {
            let buf = &self.raw[self.raw_lo..];
            if let Some(h) = frame::check_packet(buf, MAX_PACKET, self.zstd_ok)? {
                if self.frames_lo > 0 {
                    self.frames.drain(..self.frames_lo);
                    self.frames_lo = 0;
                }
                frame::decode_packet(buf, &h, self.inflater.as_mut(), &mut self.frames)?;
                self.raw_lo += h.header_len + h.stored;
                if self.frames.len() - self.frames_lo
                    > FRAME_HEADER + self.max_frame as usize + MAX_PACKET as usize
                {
                    return Err(WireError::Violation(
                        "frame data piles up without a whole frame".into(),
                    ));
                }
                return Ok(true);
            }
            if self.eof {
                return if self.raw_lo == self.raw.len() {
                    Ok(false)
                } else {
                    Err(WireError::Truncated { what: "packet" })
                };
            }
            // Compact, then read more.
            self.raw.drain(..self.raw_lo);
            self.raw_lo = 0;
            let start = self.raw.len();
            self.raw.resize(start + 64 * 1024, 0);
            let n = loop {
                match self.input.read(&mut self.raw[start..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                        return Err(WireError::Timeout {
                            secs: self.timeout_secs,
                        });
                    }
                    Err(e) => return Err(e.into()),
                }
            };
            self.raw.truncate(start + n);
            self.stats.received.fetch_add(n as u64, Ordering::Relaxed);
            if n == 0 {
                self.eof = true;
            }
        }
    }
}

/// Both halves of a conversation, before or after the handshake.
#[derive(Debug)]
pub struct Connection<R: Read, W: Write> {
    /// The receiving half.
    pub reader: MessageReader<R>,
    /// The sending half.
    pub writer: MessageWriter<W>,
    /// Byte counters for both halves.
    pub stats: Arc<WireStats>,
}

/// What the handshake agreed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// zstd level both ways (0: off).
    pub compress_level: i32,
    /// The peer's program version.
    pub peer_program: String,
}

impl<R: Read, W: Write> Connection<R, W> {
    /// A connection over a byte stream's two directions.
    pub fn new(input: R, output: W) -> Self {
        let stats = Arc::new(WireStats::default());
        Connection {
            reader: MessageReader::new(input, stats.clone()),
            writer: MessageWriter::new(output, stats.clone()),
            stats,
        }
    }

    /// The client's side of the handshake: say hello with the compression
    /// level we want (0: none), and read the agent's hello. The agent says
    /// its hello as it starts, without waiting for ours, so the greeting
    /// costs no round trip of its own.
    pub fn client_handshake(
        &mut self,
        program: &str,
        compress_level: i32,
    ) -> Result<Settings, WireError> {
        self.writer
            .send(&Message::Hello(our_hello(program, compress_level)))?;
        self.writer.flush()?;
        let theirs = self.expect_hello()?;
        let level = shared_level(&theirs, compress_level);
        self.apply(theirs, level)
    }

    /// The agent's side: say hello at once, then read the client's, whose
    /// level is the one both sides use when both can read zstd.
    pub fn server_handshake(&mut self, program: &str) -> Result<Settings, WireError> {
        self.writer.send(&Message::Hello(our_hello(program, 0)))?;
        self.writer.flush()?;
        let theirs = self.expect_hello()?;
        let level = shared_level(&theirs, theirs.compress_level);
        self.apply(theirs, level)
    }

    fn expect_hello(&mut self) -> Result<Hello, WireError> {
        match self.reader.recv()? {
            Some(Message::Hello(h)) if h.version == PROTOCOL_VERSION => Ok(h),
            Some(Message::Hello(h)) => Err(WireError::Mismatch(format!(
                "the peer ({}) speaks protocol version {}, we speak {}",
                h.program, h.version, PROTOCOL_VERSION
            ))),
            Some(other) => Err(WireError::Mismatch(format!(
                "expected a greeting, got {other:?}"
            ))),
            None => Err(WireError::Mismatch(
                "the peer closed the connection before greeting (is deltasync installed there?)"
                    .into(),
            )),
        }
    }

    fn apply(&mut self, theirs: Hello, level: i32) -> Result<Settings, WireError> {
        if theirs.features & FEATURE_ZSTD != 0 {
            self.reader.allow_zstd()?;
        }
        // We never send a frame over MAX_CHUNK plus a small header.
        let needed = (MAX_CHUNK + 4096) as u32;
        if theirs.max_frame < needed {
            return Err(WireError::Mismatch(format!(
                "the peer accepts frames of at most {} bytes; we need {needed}",
                theirs.max_frame
            )));
        }
        self.writer.set_compression(level)?;
        Ok(Settings {
            compress_level: level,
            peer_program: theirs.program,
        })
    }
}

/// The level both sides use: the client's, when the peer can read zstd
/// (we always can), else none.
fn shared_level(theirs: &Hello, client_level: i32) -> i32 {
    if theirs.features & FEATURE_ZSTD != 0 {
        client_level
    } else {
        0
    }
}

fn our_hello(program: &str, compress_level: i32) -> Hello {
    Hello {
        version: PROTOCOL_VERSION,
        program: program.to_string(),
        features: FEATURE_ZSTD,
        max_frame: MAX_FRAME,
        compress_level,
    }
}
