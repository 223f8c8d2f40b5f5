//! Small I/O helpers shared by the streaming paths.

use std::io::{self, Read};

/// Reads until `buf` is full or the stream ends; returns the bytes read.
/// A short count means end of stream, never "try again".
pub(crate) fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads a stream ahead on a helper thread, so reading overlaps the work.
///
/// Each buffer it hands out keeps `head` spare bytes in front of the data,
/// so the consumer can carry a short tail from the previous buffer over
/// without copying the whole chunk. Spent buffers come back through
/// [`Prefetch::recycle`]; at most three exist at once.
pub(crate) struct Prefetch {
    full: std::sync::mpsc::Receiver<io::Result<Chunk>>,
    empty: std::sync::mpsc::SyncSender<Vec<u8>>,
}

/// One buffer from [`Prefetch`]: data in `buf[head..]`.
pub(crate) struct Chunk {
    pub(crate) buf: Vec<u8>,
    /// True for the stream's last chunk (it may be empty).
    pub(crate) last: bool,
}

impl Prefetch {
    /// Starts reading `input` in `chunk`-byte pieces on a thread of `scope`.
    pub(crate) fn start<'scope, R: Read + Send + 'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        mut input: R,
        head: usize,
        chunk: usize,
    ) -> Prefetch {
        let (full_tx, full) = std::sync::mpsc::sync_channel(1);
        let (empty, empty_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(3);
        for _ in 0..2 {
            let _ = empty.send(Vec::new());
        }
        scope.spawn(move || {
            // Stops when the consumer hangs up (a send or receive fails) or at the end.
            while let Ok(mut buf) = empty_rx.recv() {
                // A recycled buffer keeps its old bytes: they are read over
                // (and cut off after a short read), so only growth is zeroed.
                buf.resize(head + chunk, 0);
                let result = read_full(&mut input, &mut buf[head..]).map(|n| {
                    buf.truncate(head + n);
                    Chunk {
                        buf,
                        last: n < chunk,
                    }
                });
                let stop = !matches!(&result, Ok(c) if !c.last);
                if full_tx.send(result).is_err() || stop {
                    return;
                }
            }
        });
        Prefetch { full, empty }
    }

    /// The next chunk, waiting for it if need be.
    pub(crate) fn next(&self) -> io::Result<Chunk> {
        self.full
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("read-ahead thread stopped")))
    }

    /// Gives a spent buffer back for reuse.
    pub(crate) fn recycle(&self, buf: Vec<u8>) {
        let _ = self.empty.try_send(buf);
    }
}
