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
