//! The fields of batches (see `docs/protocol.md`, "Batches"): many small
//! new files in one message each way. The client asks the source to
//! `Read` up to [`MAX_BATCH_FILES`] files whole; the source answers one
//! `Files` with each file's bytes (or why not); the client hands them to
//! the destination in one `Put`, answered by one `Placed`. Every count,
//! every file and the sum of their bytes are checked before use, so a
//! batch always fits one frame.

use super::fields::{get_attrs, get_expect, get_stat, put_attrs, put_expect, put_stat};
use super::{Attrs, Code, Expect, FileStat, MAX_PATH, MAX_TEXT};
use crate::codec::{Dec, Enc};
use crate::error::WireError;

/// Most files in one `Read`, `Files`, `Put` or `Placed`.
pub const MAX_BATCH_FILES: usize = 256;
/// Largest file a batch carries.
pub const MAX_BATCH_FILE: u64 = 64 << 10;
/// Most file bytes in one `Files` or `Put`, all files together.
pub const MAX_BATCH_DATA: usize = 512 << 10;

/// Why one file of a batch was not read or not placed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failed {
    /// Why, as in an `Error` reply.
    pub code: Code,
    /// The agent's message.
    pub message: String,
}

/// One file as the source read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileData {
    /// Its size (the data's length), mtime and mode, as read.
    pub stat: FileStat,
    /// BLAKE3 of the data.
    pub blake3: [u8; 32],
    /// The whole file.
    pub data: Vec<u8>,
}

/// One file for the destination to place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutFile {
    /// Where.
    pub path: Vec<u8>,
    /// What must be at `path` when the file replaces it.
    pub expect: Expect,
    /// Owner and extended attributes.
    pub attrs: Attrs,
    /// Its contents, stat and BLAKE3, as the source read them.
    pub file: FileData,
}

impl PutFile {
    /// At least as many bytes as a `PutFile` for `path` with `attrs` takes
    /// on the wire besides its data: what a client sums to keep a `Put`
    /// within one frame.
    pub fn meta_bound(path: &[u8], attrs: &Attrs) -> usize {
        let owner = attrs
            .owner
            .as_ref()
            .map_or(0, |o| o.user.len() + o.group.len() + 32);
        let xattrs = attrs.xattrs.as_ref().map_or(0, |x| {
            x.iter()
                .map(|x| x.name.len() + x.value.len() + 20)
                .sum::<usize>()
                + 10
        });
        // Lengths, expect, stat, BLAKE3, flags, mode and mtime.
        path.len() + owner + xattrs + 128
    }
}

fn too_many(what: &'static str, n: u64) -> WireError {
    WireError::malformed(
        what,
        format!("{n} files exceed the limit of {MAX_BATCH_FILES}"),
    )
}

fn count(d: &mut Dec<'_>, what: &'static str) -> Result<usize, WireError> {
    let n = d.varint()?;
    if n > MAX_BATCH_FILES as u64 {
        return Err(too_many(what, n));
    }
    Ok(n as usize)
}

/// Counts a file's bytes into a batch's total, refusing a file or a total
/// past the limits, or data that is not as long as its stat says.
fn checked(what: &'static str, f: &FileData, total: &mut usize) -> Result<(), WireError> {
    let len = f.data.len() as u64;
    if len > MAX_BATCH_FILE {
        return Err(WireError::malformed(
            what,
            format!("a file of {len} bytes exceeds the limit of {MAX_BATCH_FILE}"),
        ));
    }
    if f.stat.size != len {
        return Err(WireError::malformed(
            what,
            format!("a file's stat says {} bytes, its data {len}", f.stat.size),
        ));
    }
    *total += f.data.len();
    if *total > MAX_BATCH_DATA {
        return Err(WireError::malformed(
            what,
            format!("the files' bytes exceed the limit of {MAX_BATCH_DATA}"),
        ));
    }
    Ok(())
}

fn put_file(e: &mut Enc, f: &FileData) {
    put_stat(e, &f.stat);
    e.hash(&f.blake3).bytes(&f.data);
}

fn get_file(d: &mut Dec<'_>) -> Result<FileData, WireError> {
    Ok(FileData {
        stat: get_stat(d)?,
        blake3: d.hash()?,
        data: d.bytes(MAX_BATCH_FILE as usize)?.to_vec(),
    })
}

fn put_failed(e: &mut Enc, f: &Failed) {
    e.varint(u64::from(f.code.number())).str(&f.message);
}

fn get_failed(d: &mut Dec<'_>) -> Result<Failed, WireError> {
    Ok(Failed {
        code: Code::from_number(d.u32()?),
        message: d.string(MAX_TEXT)?,
    })
}

pub(super) fn put_paths(e: &mut Enc, paths: &[Vec<u8>]) {
    e.varint(paths.len() as u64);
    for p in paths {
        e.bytes(p);
    }
}

pub(super) fn get_paths(d: &mut Dec<'_>) -> Result<Vec<Vec<u8>>, WireError> {
    let n = count(d, "Read")?;
    let mut paths = Vec::with_capacity(n);
    for _ in 0..n {
        paths.push(d.bytes(MAX_PATH)?.to_vec());
    }
    Ok(paths)
}

pub(super) fn put_files(e: &mut Enc, files: &[Result<FileData, Failed>]) {
    e.varint(files.len() as u64);
    for f in files {
        match f {
            Ok(f) => {
                e.u8(1);
                put_file(e, f);
            }
            Err(f) => {
                e.u8(0);
                put_failed(e, f);
            }
        }
    }
}

pub(super) fn get_files(d: &mut Dec<'_>) -> Result<Vec<Result<FileData, Failed>>, WireError> {
    let n = count(d, "Files")?;
    let mut files = Vec::with_capacity(n);
    let mut total = 0;
    for _ in 0..n {
        files.push(if d.bool()? {
            let f = get_file(d)?;
            checked("Files", &f, &mut total)?;
            Ok(f)
        } else {
            Err(get_failed(d)?)
        });
    }
    Ok(files)
}

pub(super) fn put_puts(e: &mut Enc, files: &[PutFile]) {
    e.varint(files.len() as u64);
    for f in files {
        e.bytes(&f.path);
        put_expect(e, &f.expect);
        put_attrs(e, &f.attrs);
        put_file(e, &f.file);
    }
}

pub(super) fn get_puts(d: &mut Dec<'_>) -> Result<Vec<PutFile>, WireError> {
    let n = count(d, "Put")?;
    let mut files = Vec::with_capacity(n);
    let mut total = 0;
    for _ in 0..n {
        let f = PutFile {
            path: d.bytes(MAX_PATH)?.to_vec(),
            expect: get_expect(d)?,
            attrs: get_attrs(d)?,
            file: get_file(d)?,
        };
        checked("Put", &f.file, &mut total)?;
        files.push(f);
    }
    Ok(files)
}

pub(super) fn put_placed(e: &mut Enc, placed: &[Option<Failed>]) {
    e.varint(placed.len() as u64);
    for p in placed {
        match p {
            None => {
                e.u8(1);
            }
            Some(f) => {
                e.u8(0);
                put_failed(e, f);
            }
        }
    }
}

pub(super) fn get_placed(d: &mut Dec<'_>) -> Result<Vec<Option<Failed>>, WireError> {
    let n = count(d, "Placed")?;
    let mut placed = Vec::with_capacity(n);
    for _ in 0..n {
        placed.push(if d.bool()? {
            None
        } else {
            Some(get_failed(d)?)
        });
    }
    Ok(placed)
}
