//! Applying a delta: streaming, bounded, and suspicious of every number.
//!
//! The delta is read through a fixed buffer and decoded command by command
//! (check, then parse). Copies are checked against the basis length and the
//! output limit before a byte moves; a literal that runs past the end of the
//! stream is reported with both numbers. Memory stays at two buffers,
//! whatever the delta claims.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use crate::command::{self, Command};
use crate::error::PatchError;
use crate::format::DELTA_MAGIC;
use crate::io_util::read_full;
use crate::params::Limits;

const DELTA_BUF: usize = 256 * 1024;
/// The delta buffer starts this small and doubles as the stream proves
/// long: a small file's patch should not zero 256 KiB.
const FIRST_BUF: usize = 16 * 1024;
const COPY_BUF: usize = 1 << 20;

/// Random access to the basis a delta copies from.
pub trait Basis {
    /// The basis length; copies beyond it are refused.
    fn len(&self) -> u64;
    /// True for an empty basis.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Fills `buf` from `offset`, which the caller has checked is in range.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// The basis as an open file, when it is one: lets a file-to-file patch
    /// copy inside the kernel.
    fn as_file(&self) -> Option<&File> {
        None
    }
}

impl Basis for [u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let at = offset as usize;
        buf.copy_from_slice(&self[at..at + buf.len()]);
        Ok(())
    }
}

/// A basis file, read with positioned reads (no shared cursor, no mapping).
#[derive(Debug)]
pub struct FileBasis {
    file: File,
    len: u64,
}

impl FileBasis {
    /// Opens `file`, taking its length now: a basis that changes while we
    /// patch is caught by the whole-file check the caller makes afterwards.
    pub fn new(file: File) -> io::Result<FileBasis> {
        let len = file.metadata()?.len();
        Ok(FileBasis { file, len })
    }
}

impl Basis for FileBasis {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.read_exact_at(buf, offset)
    }
    fn as_file(&self) -> Option<&File> {
        Some(&self.file)
    }
}

/// What a patch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PatchStats {
    /// Bytes written.
    pub written: u64,
    /// Of which came from literals.
    pub literal_bytes: u64,
    /// Of which were copied from the basis.
    pub copy_bytes: u64,
    /// Bytes of delta read.
    pub delta_len: u64,
}

/// Streams `delta` applied to `basis` into `out`.
pub fn apply_delta<B: Basis + ?Sized>(
    basis: &B,
    delta: impl Read,
    out: impl Write,
    limits: &Limits,
) -> Result<PatchStats, PatchError> {
    apply(
        basis,
        delta,
        &mut WriteSink {
            out,
            scratch: Vec::new(),
        },
        limits,
    )
}

/// Where patched bytes go: any writer, or a file that basis bytes can be
/// copied into without passing through user space.
trait Sink {
    fn literal(&mut self, bytes: &[u8]) -> io::Result<()>;
    fn copy<B: Basis + ?Sized>(&mut self, basis: &B, offset: u64, len: u64) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;
}

struct WriteSink<W> {
    out: W,
    scratch: Vec<u8>,
}

impl<W: Write> Sink for WriteSink<W> {
    fn literal(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)
    }
    fn copy<B: Basis + ?Sized>(&mut self, basis: &B, offset: u64, len: u64) -> io::Result<()> {
        copy_from_basis(basis, offset, len, &mut self.out, &mut self.scratch)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Copies of at least this many bytes go file to file in the kernel.
const KERNEL_COPY_MIN: u64 = 32 * 1024;

/// A file output. Large copies from a file basis use `copy_file_range`:
/// one copy inside the kernel instead of a read into user space and a write
/// back out.
///
/// When the output must be confirmed by a whole-file hash, every byte passes
/// through the hasher instead, so the check costs no second read.
struct FileSink<'f> {
    out: io::BufWriter<&'f File>,
    scratch: Vec<u8>,
    hasher: Option<blake3::Hasher>,
}

impl Sink for FileSink<'_> {
    fn literal(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some(h) = &mut self.hasher {
            h.update(bytes);
        }
        self.out.write_all(bytes)
    }
    fn copy<B: Basis + ?Sized>(
        &mut self,
        basis: &B,
        mut offset: u64,
        mut len: u64,
    ) -> io::Result<()> {
        if let Some(h) = &mut self.hasher {
            while len > 0 {
                let n = len.min(COPY_BUF as u64) as usize;
                self.scratch.resize(n, 0);
                basis.read_at(offset, &mut self.scratch)?;
                h.update(&self.scratch);
                self.out.write_all(&self.scratch)?;
                offset += n as u64;
                len -= n as u64;
            }
            return Ok(());
        }
        match basis.as_file() {
            Some(file) if len >= KERNEL_COPY_MIN => self.kernel_copy(file, offset, len),
            _ => copy_from_basis(basis, offset, len, &mut self.out, &mut self.scratch),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl FileSink<'_> {
    /// Copies inside the kernel: std's `io::copy` between two files is
    /// `copy_file_range`. (Splitting a copy across threads was measured and
    /// does not help: writes to one file serialise on its inode lock.)
    fn kernel_copy(&mut self, mut basis: &File, offset: u64, len: u64) -> io::Result<()> {
        use std::io::{Seek, SeekFrom};
        // The basis's cursor is ours alone: every other read is positioned.
        basis.seek(SeekFrom::Start(offset))?;
        let copied = io::copy(&mut basis.take(len), &mut self.out)?;
        if copied != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("basis shrank while patching: copied {copied} of {len} bytes at {offset}"),
            ));
        }
        Ok(())
    }
}

fn apply<B: Basis + ?Sized, S: Sink>(
    basis: &B,
    delta: impl Read,
    out: &mut S,
    limits: &Limits,
) -> Result<PatchStats, PatchError> {
    let mut input = DeltaReader::new(delta);
    let magic = input.take_magic()?;
    if magic != DELTA_MAGIC {
        return Err(PatchError::BadMagic { found: magic });
    }
    let mut stats = PatchStats::default();
    loop {
        let at = input.offset();
        let cmd = input.next_command()?;
        let len = match cmd {
            Command::End => break,
            Command::Literal(len) | Command::Copy { len, .. } => len,
        };
        if stats
            .written
            .checked_add(len)
            .is_none_or(|n| n > limits.max_output)
        {
            return Err(PatchError::OutputTooLarge {
                limit: limits.max_output,
            });
        }
        match cmd {
            Command::Literal(len) => {
                input.copy_literal(len, at, out)?;
                stats.literal_bytes += len;
            }
            Command::Copy { offset, len } => {
                if offset.checked_add(len).is_none_or(|end| end > basis.len()) {
                    return Err(PatchError::CopyOutOfBounds {
                        at,
                        offset,
                        len,
                        basis_len: basis.len(),
                    });
                }
                out.copy(basis, offset, len)?;
                stats.copy_bytes += len;
            }
            Command::End => {} // left the loop above
        }
        stats.written += len;
    }
    input.expect_eof()?;
    stats.delta_len = input.offset();
    out.flush()?;
    Ok(stats)
}

/// Applies `delta` to `basis` in memory.
pub fn patch(basis: &[u8], delta: &[u8]) -> Result<Vec<u8>, PatchError> {
    let mut out = Vec::new();
    apply_delta(basis, delta, &mut out, &Limits::default())?;
    Ok(out)
}

/// How `patch_file` treats the output file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatchFileOptions {
    /// fsync the new file before it replaces the old one.
    pub fsync: bool,
    /// Limits on the delta.
    pub limits: Limits,
    /// The BLAKE3 hash the new file must have. On a mismatch (a collision of
    /// truncated sums, or a basis that changed since its signature) the new
    /// file is discarded and [`PatchError::ChecksumMismatch`] returned; the
    /// caller can then redo it with full-length sums.
    pub expected_blake3: Option<[u8; 32]>,
}

impl Default for PatchFileOptions {
    fn default() -> Self {
        PatchFileOptions {
            fsync: true,
            limits: Limits::default(),
            expected_blake3: None,
        }
    }
}

/// Patches `basis` with `delta` into `new`: written to a temporary file in
/// `new`'s directory, optionally checked against a whole-file BLAKE3,
/// optionally fsynced, then renamed over `new`. On any error the temporary
/// file is removed and `new` is untouched. `new` may be the basis itself.
pub fn patch_file(
    basis: &Path,
    delta: impl Read,
    new: &Path,
    options: &PatchFileOptions,
) -> Result<PatchStats, PatchError> {
    let basis = FileBasis::new(File::open(basis)?)?;
    let dir = match new.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".deltasync-patch.")
        .tempfile_in(dir)?;
    let mut sink = FileSink {
        out: io::BufWriter::with_capacity(COPY_BUF, tmp.as_file()),
        scratch: Vec::new(),
        hasher: options.expected_blake3.map(|_| blake3::Hasher::new()),
    };
    let stats = apply(&basis, delta, &mut sink, &options.limits)?;
    if let (Some(expected), Some(hasher)) = (options.expected_blake3, &sink.hasher) {
        let actual = *hasher.finalize().as_bytes();
        if actual != expected {
            return Err(PatchError::ChecksumMismatch {
                expected: hex(&expected),
                actual: hex(&actual),
            });
        }
    }
    drop(sink);
    if options.fsync {
        tmp.as_file().sync_all()?;
    }
    tmp.persist(new).map_err(|e| PatchError::Io(e.error))?;
    Ok(stats)
}

/// Lower-case hex, for hashes in messages.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn copy_from_basis<B: Basis + ?Sized>(
    basis: &B,
    mut offset: u64,
    mut len: u64,
    out: &mut impl Write,
    scratch: &mut Vec<u8>,
) -> io::Result<()> {
    while len > 0 {
        let n = len.min(COPY_BUF as u64) as usize;
        scratch.resize(n, 0);
        basis.read_at(offset, &mut scratch[..n])?;
        out.write_all(&scratch[..n])?;
        offset += n as u64;
        len -= n as u64;
    }
    Ok(())
}

/// The delta stream behind a buffer that grows to `DELTA_BUF`.
struct DeltaReader<R> {
    input: R,
    buf: Vec<u8>,
    lo: usize,
    hi: usize,
    /// Stream offset of `buf[lo]`.
    at: u64,
    eof: bool,
}

impl<R: Read> DeltaReader<R> {
    fn new(input: R) -> Self {
        DeltaReader {
            input,
            buf: vec![0u8; FIRST_BUF],
            lo: 0,
            hi: 0,
            at: 0,
            eof: false,
        }
    }

    fn offset(&self) -> u64 {
        self.at
    }

    /// Moves unread bytes to the front and reads more. False at end of stream.
    fn refill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        self.buf.copy_within(self.lo..self.hi, 0);
        self.hi -= self.lo;
        self.lo = 0;
        let n = read_full(&mut self.input, &mut self.buf[self.hi..])?;
        self.hi += n;
        if self.hi < self.buf.len() {
            self.eof = true;
        } else if self.buf.len() < DELTA_BUF {
            // A long stream: read more at a time from now on.
            self.buf.resize((self.buf.len() * 2).min(DELTA_BUF), 0);
        }
        Ok(n > 0)
    }

    fn consume(&mut self, n: usize) {
        self.lo += n;
        self.at += n as u64;
    }

    fn take_magic(&mut self) -> Result<u32, PatchError> {
        while self.hi - self.lo < 4 {
            if !self.refill()? {
                return Err(PatchError::TruncatedMagic {
                    len: self.hi - self.lo,
                });
            }
        }
        let b = &self.buf[self.lo..self.lo + 4];
        let magic = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        self.consume(4);
        Ok(magic)
    }

    fn next_command(&mut self) -> Result<Command, PatchError> {
        loop {
            if let Some((cmd, n)) = command::decode(&self.buf[self.lo..self.hi], self.at)? {
                self.consume(n);
                return Ok(cmd);
            }
            if !self.refill()? {
                let have = self.hi - self.lo;
                if have == 0 {
                    return Err(PatchError::MissingEnd { offset: self.at });
                }
                let opcode = self.buf[self.lo];
                return Err(PatchError::TruncatedCommand {
                    opcode,
                    offset: self.at,
                    need: command::param_len(opcode),
                    have: have - 1,
                });
            }
        }
    }

    fn copy_literal(&mut self, len: u64, at: u64, out: &mut impl Sink) -> Result<(), PatchError> {
        let mut left = len;
        while left > 0 {
            if self.lo == self.hi && !self.refill()? {
                return Err(PatchError::LiteralTruncated {
                    offset: at,
                    len,
                    available: len - left,
                });
            }
            let n = (self.hi - self.lo).min(left.min(usize::MAX as u64) as usize);
            out.literal(&self.buf[self.lo..self.lo + n])?;
            self.consume(n);
            left -= n as u64;
        }
        Ok(())
    }

    fn expect_eof(&mut self) -> Result<(), PatchError> {
        let end = self.at - 1;
        if self.lo < self.hi || self.refill()? {
            return Err(PatchError::TrailingData { offset: end });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta_of(cmds: &[u8]) -> Vec<u8> {
        let mut d = DELTA_MAGIC.to_be_bytes().to_vec();
        d.extend_from_slice(cmds);
        d
    }

    #[test]
    fn hostile_deltas_fail_with_numbers() {
        let basis = b"0123456789";
        let p = |cmds: &[u8]| patch(basis, &delta_of(cmds));
        assert!(matches!(
            patch(basis, b"rs\x02"),
            Err(PatchError::TruncatedMagic { len: 3 })
        ));
        assert!(matches!(
            patch(basis, b"xxxx\0"),
            Err(PatchError::BadMagic { .. })
        ));
        assert!(matches!(p(&[]), Err(PatchError::MissingEnd { offset: 4 })));
        assert!(matches!(
            p(&[0x45, 0]),
            Err(PatchError::TruncatedCommand {
                opcode: 0x45,
                need: 2,
                have: 1,
                ..
            })
        ));
        assert!(matches!(
            p(&[0x45, 8, 5, 0]),
            Err(PatchError::CopyOutOfBounds {
                offset: 8,
                len: 5,
                basis_len: 10,
                ..
            })
        ));
        assert!(matches!(
            p(&[
                0x54, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 2, 0
            ]),
            Err(PatchError::CopyOutOfBounds { .. })
        ));
        assert!(matches!(
            p(&[0x45, 0, 0, 0]),
            Err(PatchError::ZeroLengthCopy { .. })
        ));
        assert!(matches!(
            p(&[3, b'a']),
            Err(PatchError::LiteralTruncated {
                len: 3,
                available: 1,
                ..
            })
        ));
        assert!(matches!(
            p(&[0x44, 0xff, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(PatchError::LiteralTruncated { .. })
        ));
        assert!(matches!(
            p(&[0x60]),
            Err(PatchError::UnknownOpcode {
                opcode: 0x60,
                offset: 4
            })
        ));
        assert!(matches!(
            p(&[1, b'a', 0, 7]),
            Err(PatchError::TrailingData { offset: 6 })
        ));
        let limits = Limits {
            max_output: 3,
            ..Limits::default()
        };
        let mut out = Vec::new();
        assert!(matches!(
            apply_delta(
                &basis[..],
                &delta_of(&[0x45, 0, 4, 0])[..],
                &mut out,
                &limits
            ),
            Err(PatchError::OutputTooLarge { limit: 3 })
        ));
        assert_eq!(p(&[0x45, 2, 3, 2, b'x', b'y', 0]).unwrap(), b"234xy");
    }
}

#[cfg(test)]
mod file_tests {
    use super::*;
    use crate::{DeltaOptions, IndexedSignature, Signature, SignatureParams, write_delta};

    #[test]
    fn whole_file_check_catches_a_changed_basis() {
        let dir = tempfile::tempdir().expect("tempdir");
        let basis_path = dir.path().join("basis");
        let new_path = dir.path().join("new");
        let basis: Vec<u8> = (0..200_000u32)
            .map(|i| (i % 251) as u8 ^ (i >> 9) as u8)
            .collect();
        let mut new = basis.clone();
        new[100_000..100_010].fill(7);
        std::fs::write(&basis_path, &basis).expect("write");
        std::fs::write(&new_path, b"old contents").expect("write");
        let params = SignatureParams::native(basis.len() as u64);
        let index = IndexedSignature::new(Signature::generate(&basis, params));
        let mut delta = Vec::new();
        write_delta(&index, &new[..], &mut delta, &DeltaOptions::default()).expect("delta");
        let expected = *blake3::hash(&new).as_bytes();
        let options = PatchFileOptions {
            expected_blake3: Some(expected),
            ..PatchFileOptions::default()
        };

        // The basis changes after its signature was taken: the copies now
        // fetch the wrong bytes, and the hash says so.
        let mut changed = basis.clone();
        changed[5] ^= 1;
        std::fs::write(&basis_path, &changed).expect("write");
        let err = patch_file(&basis_path, &delta[..], &new_path, &options).expect_err("mismatch");
        assert!(matches!(err, PatchError::ChecksumMismatch { .. }), "{err}");
        assert_eq!(
            std::fs::read(&new_path).expect("read"),
            b"old contents",
            "the old file is untouched"
        );

        std::fs::write(&basis_path, &basis).expect("write");
        patch_file(&basis_path, &delta[..], &new_path, &options).expect("patch");
        assert_eq!(std::fs::read(&new_path).expect("read"), new);
    }
}
