//! The compression level, adapted to what the connection waits on.
//!
//! zstd's higher levels save 10–25% more on text but cost several times
//! the CPU. Which pays depends on the link: at 8 Mbit/s the writer spends
//! most of its time blocked on the transport (or the `--bwlimit` gate), so
//! harder compression is free; on a fast link it would become the
//! bottleneck. So the writer times each packet's compression and its
//! write, and [`Adapt`] moves the level after each packet: up while
//! writing takes over twice as long as compressing (by up to four steps
//! at once, more the larger the gap, so a short transfer gets there too),
//! down a step while compressing takes longer than writing, never below
//! the agreed level nor above [`MAX_ADAPTED`]. The transport queues what
//! is written, so compressing the next packet overlaps sending this one
//! as long as it is the quicker of the two. Each packet is compressed on its own, so the
//! level may change at any packet; the reader needs nothing.

use std::time::Duration;

/// The highest level the writer climbs to: zstd compresses text at about
/// 6 MB/s there on one core, 18% smaller than at level 3 on logs; beyond
/// it, the gain is small and the cost doubles.
pub const MAX_ADAPTED: i32 = 15;

/// The level controller. Pure: the writer feeds it timings.
#[derive(Debug, Clone)]
pub struct Adapt {
    floor: i32,
    level: i32,
    /// Moving averages of the two timings, in seconds.
    compress: f64,
    write: f64,
}

impl Adapt {
    /// A controller starting at, and never going below, `floor`.
    pub fn new(floor: i32) -> Adapt {
        Adapt {
            floor,
            level: floor,
            compress: 0.0,
            write: 0.0,
        }
    }

    /// The level to compress the next packet at.
    pub fn level(&self) -> i32 {
        self.level
    }

    /// Takes one packet's timings; returns the new level if it changed.
    pub fn observe(&mut self, compress: Duration, write: Duration) -> Option<i32> {
        const KEEP: f64 = 0.75;
        self.compress = KEEP * self.compress + (1.0 - KEEP) * compress.as_secs_f64();
        self.write = KEEP * self.write + (1.0 - KEEP) * write.as_secs_f64();
        let top = MAX_ADAPTED.max(self.floor);
        let next = if self.write > 2.0 * self.compress && self.level < top {
            let gap = self.write / (2.0 * self.compress).max(1e-9);
            let step = (gap.log2().floor() as i32).clamp(1, 4);
            (self.level + step).min(top)
        } else if self.compress > self.write && self.level > self.floor {
            self.level - 1
        } else {
            return None;
        };
        self.level = next;
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_slow_link_raises_the_level_and_a_busy_cpu_lowers_it() {
        let mut a = Adapt::new(3);
        // The link is the bottleneck by far: up four steps per packet, to the top.
        assert_eq!(a.observe(MS, 40 * MS), Some(7));
        for _ in 0..3 {
            a.observe(MS, 40 * MS);
        }
        assert_eq!(a.level(), MAX_ADAPTED);
        // Now compressing is the bottleneck: back down to the floor.
        for _ in 0..40 {
            a.observe(20 * MS, MS);
        }
        assert_eq!(a.level(), 3);
        // Balanced: it stays.
        assert_eq!(a.observe(20 * MS, 30 * MS), None);
    }

    #[test]
    fn a_floor_above_the_top_is_kept() {
        let mut a = Adapt::new(19);
        for _ in 0..10 {
            a.observe(MS, 20 * MS);
            a.observe(20 * MS, MS);
        }
        assert_eq!(a.level(), 19);
    }
}

#[cfg(test)]
mod writer_tests {
    use std::io::{self, Write};
    use std::sync::Arc;

    use super::*;
    use crate::{Message, MessageReader, MessageWriter, Reply, WireStats};

    /// A transport that takes 5 ms per write, like a slow link's full queue.
    struct Slow(Vec<u8>);

    impl Write for Slow {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            std::thread::sleep(Duration::from_millis(5));
            self.0.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_writer_on_a_slow_transport_compresses_harder_and_still_reads_back() {
        let mut w = MessageWriter::new(Slow(Vec::new()), Arc::new(WireStats::default()));
        w.set_compression(3).unwrap();
        let text: Vec<u8> = (0..60_000u32)
            .flat_map(|i| {
                format!(
                    "line {} of the log, id={:x}\n",
                    i,
                    i.wrapping_mul(2654435761)
                )
                .into_bytes()
            })
            .collect();
        let chunks: Vec<&[u8]> = text.chunks(60_000).collect();
        for (i, c) in chunks.iter().enumerate() {
            w.send(&Message::Reply {
                id: i as u64,
                rep: Reply::DeltaChunk(c.to_vec()),
            })
            .unwrap();
        }
        w.flush().unwrap();
        assert!(w.compression_level() > 3, "level {}", w.compression_level());
        let wire = w.into_inner().0;
        let mut r = MessageReader::new(&wire[..], Arc::new(WireStats::default()));
        r.allow_zstd().unwrap();
        for (i, c) in chunks.iter().enumerate() {
            let got = r.recv().unwrap().expect("a message");
            assert_eq!(
                got,
                Message::Reply {
                    id: i as u64,
                    rep: Reply::DeltaChunk(c.to_vec())
                }
            );
        }
    }
}
