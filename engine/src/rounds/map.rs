//! Spans: the parts of a file a round signs or searches, read end to end
//! as one virtual file, and the way back from virtual offsets to real ones.

use std::io::{self, Read, Seek, SeekFrom};

use super::{Run, Span};

/// Virtual offsets (into the spans read end to end) to real offsets.
#[derive(Clone, Debug)]
pub struct SpanMap {
    spans: Vec<Span>,
    /// The virtual offset where each span starts.
    starts: Vec<u64>,
    total: u64,
}

impl SpanMap {
    /// The map of `spans`, in the order given.
    pub fn new(spans: &[Span]) -> SpanMap {
        let mut starts = Vec::with_capacity(spans.len());
        let mut total = 0u64;
        for s in spans {
            starts.push(total);
            total = total.saturating_add(s.len);
        }
        SpanMap {
            spans: spans.to_vec(),
            starts,
            total,
        }
    }

    /// Bytes of all the spans together.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The real offset of virtual offset `v`, and the bytes left in its span.
    fn locate(&self, v: u64) -> Option<(u64, u64)> {
        let i = self.starts.partition_point(|&s| s <= v).checked_sub(1)?;
        let into = v - self.starts[i];
        let s = self.spans[i];
        (into < s.len).then(|| (s.start + into, s.len - into))
    }
}

/// Appends the runs of a copy found between two virtual files: `len` bytes
/// at virtual `new` equal the virtual basis at `basis`. A copy that crosses
/// a span boundary on either side becomes one run per piece. Parts that
/// fall outside either map (hostile or stale numbers) are dropped.
pub(crate) fn map_copy(
    new_map: &SpanMap,
    basis_map: &SpanMap,
    mut new: u64,
    mut basis: u64,
    mut len: u64,
    out: &mut Vec<Run>,
) {
    while len > 0 {
        let (Some((rn, an)), Some((rb, ab))) = (new_map.locate(new), basis_map.locate(basis))
        else {
            return;
        };
        let step = len.min(an).min(ab);
        match out.last_mut() {
            Some(last) if last.new_off + last.len == rn && last.basis_off + last.len == rb => {
                last.len += step;
            }
            _ => out.push(Run {
                new_off: rn,
                basis_off: rb,
                len: step,
            }),
        }
        new += step;
        basis += step;
        len -= step;
    }
}

/// The parts of `0..len` that no run covers on the new side, at least
/// `min_len` long, at most `max` of them, in order. `runs` are sorted by
/// new offset.
pub fn new_gaps(runs: &[Run], len: u64, min_len: u64, max: usize) -> Vec<Span> {
    complement(runs.iter().map(|r| (r.new_off, r.len)), len, min_len, max)
}

/// The parts of `0..len` of the basis that no run copies from, at least
/// `min_len` long, at most `max` of them, in order.
pub fn basis_gaps(runs: &[Run], len: u64, min_len: u64, max: usize) -> Vec<Span> {
    let mut used: Vec<(u64, u64)> = runs.iter().map(|r| (r.basis_off, r.len)).collect();
    used.sort_unstable();
    complement(used.into_iter(), len, min_len, max)
}

/// The gaps between sorted `(start, len)` ranges (which may overlap).
fn complement(
    used: impl Iterator<Item = (u64, u64)>,
    len: u64,
    min_len: u64,
    max: usize,
) -> Vec<Span> {
    let mut out = Vec::new();
    let mut at = 0u64;
    let push = |start: u64, end: u64, out: &mut Vec<Span>| {
        if end > start && end - start >= min_len.max(1) && out.len() < max {
            out.push(Span {
                start,
                len: end - start,
            });
        }
    };
    for (start, n) in used {
        let start = start.min(len);
        push(at, start, &mut out);
        at = at.max(start.saturating_add(n).min(len));
    }
    push(at, len, &mut out);
    out
}

#[derive(Debug)]
/// Reads the spans of a file end to end, as one stream. A file shorter
/// than the spans ends the stream early.
pub struct SpanReader<R> {
    inner: R,
    spans: Vec<Span>,
    /// The span being read, and bytes of it read so far.
    at: usize,
    into: u64,
    seeked: bool,
}

impl<R: Read + Seek> SpanReader<R> {
    /// A reader of `spans` of `inner`, in order.
    pub fn new(inner: R, spans: &[Span]) -> SpanReader<R> {
        SpanReader {
            inner,
            spans: spans.to_vec(),
            at: 0,
            into: 0,
            seeked: false,
        }
    }
}

impl<R: Read + Seek> Read for SpanReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some(s) = self.spans.get(self.at) {
            if self.into >= s.len {
                self.at += 1;
                self.into = 0;
                self.seeked = false;
                continue;
            }
            if !self.seeked {
                self.inner.seek(SeekFrom::Start(s.start + self.into))?;
                self.seeked = true;
            }
            let want = (s.len - self.into).min(buf.len() as u64) as usize;
            let n = self.inner.read(&mut buf[..want])?;
            if n == 0 {
                self.spans.clear(); // the file is shorter than its spans
                return Ok(0);
            }
            self.into += n as u64;
            return Ok(n);
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: u64, len: u64) -> Span {
        Span { start, len }
    }

    #[test]
    fn a_copy_across_boundaries_splits_into_runs() {
        let new = SpanMap::new(&[span(10, 5), span(100, 10)]);
        let basis = SpanMap::new(&[span(0, 8), span(50, 20)]);
        let mut out = Vec::new();
        map_copy(&new, &basis, 2, 0, 12, &mut out);
        let want = [(12, 0, 3), (100, 3, 5), (105, 50, 4)];
        let got: Vec<_> = out
            .iter()
            .map(|r| (r.new_off, r.basis_off, r.len))
            .collect();
        assert_eq!(got, want);
        // Past either map's end: dropped.
        let mut out = Vec::new();
        map_copy(&new, &basis, 14, 27, 50, &mut out);
        assert_eq!(out.iter().map(|r| r.len).sum::<u64>(), 1);
    }

    #[test]
    fn gaps_are_the_uncovered_parts_long_enough() {
        let runs = [
            Run {
                new_off: 0,
                basis_off: 50,
                len: 10,
            },
            Run {
                new_off: 30,
                basis_off: 0,
                len: 10,
            },
            Run {
                new_off: 45,
                basis_off: 55,
                len: 10,
            },
        ];
        assert_eq!(
            new_gaps(&runs, 100, 1, 10),
            [span(10, 20), span(40, 5), span(55, 45)]
        );
        assert_eq!(new_gaps(&runs, 100, 6, 10), [span(10, 20), span(55, 45)]);
        assert_eq!(new_gaps(&runs, 100, 6, 1), [span(10, 20)]);
        assert_eq!(basis_gaps(&runs, 80, 1, 10), [span(10, 40), span(65, 15)]);
    }

    #[test]
    fn the_reader_reads_spans_end_to_end_and_stops_at_the_end_of_the_file() {
        let data: Vec<u8> = (0..100).collect();
        let mut r = SpanReader::new(io::Cursor::new(&data), &[span(5, 3), span(90, 20)]);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, [5, 6, 7, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99]);
    }
}
