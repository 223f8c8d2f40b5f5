//! One round's search: the ordinary delta scan over the searched spans,
//! read as one stream, with its commands turned into runs instead of bytes.

use std::io::{self, Read, Write};

use super::map::{SpanMap, map_copy};
use super::{Run, Span};
use crate::command::{self, Command};
use crate::error::DeltaError;
use crate::{DeltaOptions, IndexedSignature, write_delta};

/// The runs found by scanning `new` (the spans `new_spans` of the new
/// file, end to end) against `index` (a signature of the spans
/// `basis_spans` of the basis, end to end), in real offsets of both files,
/// sorted, at most `max_runs` of them. Literal bytes are counted and
/// dropped, so memory does not grow with the data scanned.
pub fn find_runs(
    index: &IndexedSignature,
    new: impl Read + Send,
    new_spans: &[Span],
    basis_spans: &[Span],
    max_runs: usize,
) -> Result<Vec<Run>, DeltaError> {
    let mut sink = RunSink {
        header: Vec::new(),
        magic_left: 4,
        skip: 0,
        at: 0,
        copies: Vec::new(),
        max: max_runs,
    };
    write_delta(index, new, &mut sink, &DeltaOptions::default())?;
    let (new_map, basis_map) = (SpanMap::new(new_spans), SpanMap::new(basis_spans));
    let mut runs = Vec::new();
    for (new_at, basis_at, len) in sink.copies {
        map_copy(&new_map, &basis_map, new_at, basis_at, len, &mut runs);
    }
    runs.truncate(max_runs);
    Ok(runs)
}

/// Parses a delta stream as it is written, keeping only where its copies go.
struct RunSink {
    /// Bytes of a command header not yet complete.
    header: Vec<u8>,
    magic_left: usize,
    /// Literal bytes still to pass over.
    skip: u64,
    /// The new-stream offset the next command covers.
    at: u64,
    /// `(new offset, basis offset, len)`, virtual.
    copies: Vec<(u64, u64, u64)>,
    max: usize,
}

impl Write for RunSink {
    fn write(&mut self, all: &[u8]) -> io::Result<usize> {
        let mut buf = all;
        while !buf.is_empty() {
            if self.magic_left > 0 {
                let t = self.magic_left.min(buf.len());
                self.magic_left -= t;
                buf = &buf[t..];
                continue;
            }
            if self.skip > 0 {
                let t = self.skip.min(buf.len() as u64) as usize;
                self.skip -= t as u64;
                buf = &buf[t..];
                continue;
            }
            // The longest command header is 17 bytes.
            let had = self.header.len();
            let take = (17 - had).min(buf.len());
            self.header.extend_from_slice(&buf[..take]);
            let parsed = command::decode(&self.header, self.at)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let Some((cmd, used)) = parsed else {
                buf = &buf[take..];
                continue;
            };
            buf = &buf[used - had..];
            self.header.clear();
            match cmd {
                Command::End => {}
                Command::Literal(n) => {
                    self.skip = n;
                    self.at += n;
                }
                Command::Copy { offset, len } => {
                    if self.copies.len() < self.max {
                        self.copies.push((self.at, offset, len));
                    }
                    self.at += len;
                }
            }
        }
        Ok(all.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rounds::round_params;
    use crate::signature::Signature;

    #[test]
    fn runs_name_real_offsets_in_both_files() {
        let basis: Vec<u8> = (0..4096u32).map(|i| (i * 31 % 253) as u8).collect();
        // The new file holds basis[1024..2048] at 3000, inside its span 2900..4100.
        let mut new = vec![7u8; 5000];
        new[3000..4024].copy_from_slice(&basis[1024..2048]);
        let basis_spans = [Span {
            start: 512,
            len: 2048,
        }];
        let new_spans = [Span {
            start: 2900,
            len: 1200,
        }];
        let signed = &basis[512..2560];
        let index = IndexedSignature::new(Signature::generate(signed, round_params(2048, 256)));
        let searched = &new[2900..4100];
        let runs = find_runs(&index, searched, &new_spans, &basis_spans, 100).unwrap();
        assert_eq!(
            runs,
            [Run {
                new_off: 3000,
                basis_off: 1024,
                len: 1024
            }]
        );
        let none = find_runs(&index, searched, &new_spans, &basis_spans, 0).unwrap();
        assert!(none.is_empty());
    }
}
