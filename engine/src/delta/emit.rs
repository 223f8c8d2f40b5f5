//! Turning a stream of match/miss decisions into delta commands, with
//! librsync's exact rules so our bytes equal rdiff's:
//!
//! - a copy that starts where the pending copy ends extends it, without limit;
//! - pending literal data is flushed as one command once it reaches 32 KiB
//!   and another miss arrives, or when a match arrives;
//! - each command uses the narrowest integer widths.

use std::io::{self, Write};

use crate::command;

/// librsync's literal flush point: three command bytes per 32 KiB, 0.01%.
pub(crate) const MAX_LITERAL: usize = 32 * 1024;
/// Encoded commands are handed to the writer in pieces about this large.
const OUT_BUF: usize = 256 * 1024;

/// What a delta holds, for `--stats` and the wire's accounting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeltaStats {
    /// Bytes of the new file.
    pub new_len: u64,
    /// Bytes sent as literal data.
    pub literal_bytes: u64,
    /// Bytes reproduced from the basis.
    pub copy_bytes: u64,
    /// Literal commands.
    pub literal_cmds: u64,
    /// Copy commands.
    pub copy_cmds: u64,
    /// Bytes of the encoded delta, magic and END included.
    pub delta_len: u64,
}

/// Accumulates decisions and writes commands.
pub(crate) struct Emitter<W: Write> {
    out: W,
    buf: Vec<u8>,
    literal: Vec<u8>,
    copy: Option<(u64, u64)>,
    stats: DeltaStats,
}

impl<W: Write> Emitter<W> {
    /// Starts a delta: writes the magic.
    pub(crate) fn new(out: W) -> Emitter<W> {
        let mut buf = Vec::with_capacity(OUT_BUF + MAX_LITERAL + 16);
        buf.extend_from_slice(&crate::format::DELTA_MAGIC.to_be_bytes());
        Emitter {
            out,
            buf,
            literal: Vec::with_capacity(MAX_LITERAL),
            copy: None,
            stats: DeltaStats::default(),
        }
    }

    /// Bytes that matched nothing, in order.
    pub(crate) fn miss(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.flush_copy()?;
        while !bytes.is_empty() {
            if self.literal.len() >= MAX_LITERAL {
                self.flush_literal()?;
            }
            let take = (MAX_LITERAL - self.literal.len()).min(bytes.len());
            self.literal.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        Ok(())
    }

    /// `len` bytes equal to the basis at `offset`.
    pub(crate) fn matched(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.flush_literal()?;
        match &mut self.copy {
            Some((o, l)) if *o + *l == offset => *l += len,
            _ => {
                self.flush_copy()?;
                self.copy = Some((offset, len));
            }
        }
        Ok(())
    }

    /// One literal command for all of `bytes`, bypassing the 32 KiB rule:
    /// rdiff's "slack" delta against an empty signature does this.
    pub(crate) fn literal_command(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.flush_copy()?;
        self.flush_literal()?;
        self.write_literal(bytes)
    }

    /// Flushes what is pending, writes END, and returns the writer.
    pub(crate) fn finish(mut self) -> io::Result<(W, DeltaStats)> {
        self.flush_copy()?;
        self.flush_literal()?;
        self.buf.push(command::OP_END);
        self.drain(true)?;
        self.out.flush()?;
        Ok((self.out, self.stats))
    }

    fn flush_copy(&mut self) -> io::Result<()> {
        if let Some((offset, len)) = self.copy.take() {
            command::encode_copy(&mut self.buf, offset, len);
            self.stats.copy_bytes += len;
            self.stats.copy_cmds += 1;
            self.drain(false)?;
        }
        Ok(())
    }

    fn flush_literal(&mut self) -> io::Result<()> {
        if !self.literal.is_empty() {
            let lit = std::mem::take(&mut self.literal);
            self.write_literal(&lit)?;
            self.literal = lit;
            self.literal.clear();
        }
        Ok(())
    }

    fn write_literal(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        command::encode_literal_header(&mut self.buf, bytes.len() as u64);
        self.stats.literal_bytes += bytes.len() as u64;
        self.stats.literal_cmds += 1;
        if bytes.len() > OUT_BUF {
            self.drain(true)?;
            self.stats.delta_len += bytes.len() as u64;
            return self.out.write_all(bytes);
        }
        self.buf.extend_from_slice(bytes);
        self.drain(false)
    }

    fn drain(&mut self, always: bool) -> io::Result<()> {
        if always || self.buf.len() >= OUT_BUF {
            self.out.write_all(&self.buf)?;
            self.stats.delta_len += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    /// Records the new file's length in the stats.
    pub(crate) fn set_new_len(&mut self, len: u64) {
        self.stats.new_len = len;
    }
}
