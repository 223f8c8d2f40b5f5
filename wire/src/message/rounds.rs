//! The fields of multi-round deltas (see `docs/protocol.md`, "Rounds"):
//! which blocks a signature covers, the spans a round signs or searches,
//! and the runs it finds. Spans and runs are encoded as gaps from the
//! previous one's end, so a decoded list is sorted and apart by
//! construction; counts and sums are checked before use.

use super::{MAX_RUNS, MAX_SPANS};
use crate::codec::{Dec, Enc};
use crate::error::WireError;

/// A range of bytes of one file (a round signs or searches these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: u64,
    /// Bytes.
    pub len: u64,
}

impl Span {
    /// One past the last byte (saturating).
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }
}

/// `len` bytes of the new file at `new_off` equal the basis at `basis_off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// Offset in the new file.
    pub new_off: u64,
    /// Offset in the basis.
    pub basis_off: u64,
    /// Bytes.
    pub len: u64,
}

/// Which blocks a `Signature` request signs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SigShape {
    /// The whole file, with the native block length for its size.
    Native,
    /// The whole file, with the first round's coarse blocks
    /// (`rounds::coarse_block_len`).
    Coarse,
    /// The spans (sorted, apart, none empty, each inside the file), read
    /// end to end, in blocks of `block_len`.
    Spans {
        /// Bytes per block.
        block_len: u32,
        /// What to sign.
        spans: Vec<Span>,
    },
}

pub(super) fn put_shape(e: &mut Enc, s: &SigShape) {
    match s {
        SigShape::Native => {
            e.u8(0);
        }
        SigShape::Coarse => {
            e.u8(1);
        }
        SigShape::Spans { block_len, spans } => {
            e.u8(2).varint(u64::from(*block_len));
            put_spans(e, spans);
        }
    }
}

pub(super) fn get_shape(d: &mut Dec<'_>) -> Result<SigShape, WireError> {
    Ok(match d.u8()? {
        0 => SigShape::Native,
        1 => SigShape::Coarse,
        2 => {
            let block_len = d.varint()?;
            if !(1..=MAX_ROUND_BLOCK).contains(&block_len) {
                return Err(WireError::malformed(
                    "Signature",
                    format!("block length {block_len} outside 1..={MAX_ROUND_BLOCK}"),
                ));
            }
            SigShape::Spans {
                block_len: block_len as u32,
                spans: get_spans(d, "Signature")?,
            }
        }
        t => {
            return Err(WireError::malformed(
                "Signature",
                format!("unknown signature shape {t}"),
            ));
        }
    })
}

/// Largest block a round may ask for: the coarse rule's largest.
const MAX_ROUND_BLOCK: u64 = 1 << 20;

/// Spans as gaps from the previous span's end and lengths, so they are
/// sorted and apart by construction.
pub(super) fn put_spans(e: &mut Enc, spans: &[Span]) {
    e.varint(spans.len() as u64);
    let mut end = 0u64;
    for s in spans {
        e.varint(s.start.saturating_sub(end)).varint(s.len);
        end = s.end();
    }
}

pub(super) fn get_spans(d: &mut Dec<'_>, name: &'static str) -> Result<Vec<Span>, WireError> {
    let n = d.varint()?;
    if n > MAX_SPANS as u64 {
        return Err(WireError::malformed(
            name,
            format!("{n} spans exceed the limit of {MAX_SPANS}"),
        ));
    }
    let mut spans = Vec::new();
    let mut end = 0u64;
    for _ in 0..n {
        let start = end.checked_add(d.varint()?);
        let len = d.varint()?;
        match start.and_then(|s| s.checked_add(len)) {
            Some(e) if len > 0 => {
                spans.push(Span {
                    start: e - len,
                    len,
                });
                end = e;
            }
            _ => return Err(WireError::malformed(name, "a span is empty or overflows")),
        }
    }
    Ok(spans)
}

/// Runs as gaps on the new side, moves on the basis side and lengths.
pub(super) fn put_runs(e: &mut Enc, runs: &[Run]) {
    e.varint(runs.len() as u64);
    let (mut new_end, mut basis_end) = (0u64, 0u64);
    for r in runs {
        e.varint(r.new_off.saturating_sub(new_end))
            .ivarint(r.basis_off.wrapping_sub(basis_end) as i64)
            .varint(r.len);
        new_end = r.new_off + r.len;
        basis_end = r.basis_off + r.len;
    }
}

pub(super) fn get_runs(d: &mut Dec<'_>, name: &'static str) -> Result<Vec<Run>, WireError> {
    let n = d.varint()?;
    if n > MAX_RUNS as u64 {
        return Err(WireError::malformed(
            name,
            format!("{n} runs exceed the limit of {MAX_RUNS}"),
        ));
    }
    let mut runs = Vec::new();
    let (mut new_end, mut basis_end) = (0u64, 0u64);
    for _ in 0..n {
        let new_off = new_end.checked_add(d.varint()?);
        let basis_off = basis_end.checked_add_signed(d.ivarint()?);
        let len = d.varint()?;
        let ends = new_off
            .zip(basis_off)
            .and_then(|(n, b)| Some((n.checked_add(len)?, b.checked_add(len)?)));
        match (new_off, basis_off, ends) {
            (Some(new_off), Some(basis_off), Some((n, b))) if len > 0 => {
                runs.push(Run {
                    new_off,
                    basis_off,
                    len,
                });
                (new_end, basis_end) = (n, b);
            }
            _ => return Err(WireError::malformed(name, "a run is empty or overflows")),
        }
    }
    Ok(runs)
}
