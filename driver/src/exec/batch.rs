//! Which transfers go in batches, and how batches form. Pure bookkeeping.
//!
//! A new file small enough (at most [`FILE_MAX`] as listed, so it may
//! still grow a little before it is read) goes with others: one `Read` to
//! the source for up to `MAX_BATCH_FILES` of them, one `Put` of what it
//! answers to the destination (see `agent/batch.rs`). A batch closes when
//! the next file would pass the file count, [`DATA_MAX`] listed bytes or
//! [`META_MAX`] bytes of paths and attributes, so a `Put` always fits one
//! frame: the source reads at most `MAX_BATCH_DATA` bytes, whatever the
//! files have grown to, and the rest is bounded here.

use std::collections::VecDeque;

use deltasync_wire::{Attrs, MAX_BATCH_DATA, MAX_BATCH_FILE, MAX_BATCH_FILES, MAX_FRAME, PutFile};

/// Largest file, as listed, that goes in a batch.
pub(super) const FILE_MAX: u64 = MAX_BATCH_FILE / 2;
/// Most listed bytes in one batch (the source may find up to
/// `MAX_BATCH_DATA` when it reads them).
const DATA_MAX: u64 = (MAX_BATCH_DATA as u64) * 3 / 4;
/// Most bytes of paths and attributes in one batch's `Put`.
const META_MAX: usize = 256 << 10;
/// A file whose path and attributes take more than this goes alone.
const FILE_META_MAX: usize = 16 << 10;

const _: () = assert!(MAX_BATCH_DATA + META_MAX + 1024 <= MAX_FRAME as usize);

/// What a file costs a batch besides its data: its `Put` entry's bound,
/// and its path at the source, which the `Read` carries.
pub(super) fn meta(src: &[u8], path: &[u8], attrs: &Attrs) -> usize {
    PutFile::meta_bound(path, attrs) + src.len() + 8
}

/// True if a new file of `size` bytes costing `meta` (see [`meta`]) may go
/// in a batch.
pub(super) fn fits(size: u64, meta: usize) -> bool {
    size <= FILE_MAX && meta <= FILE_META_MAX
}

/// Batches forming and formed, as transfer indexes.
#[derive(Debug, Default)]
pub(super) struct Batcher {
    forming: Vec<usize>,
    data: u64,
    meta: usize,
    /// Closed batches not yet sent.
    pub(super) ready: VecDeque<Vec<usize>>,
}

impl Batcher {
    /// Adds transfer `i` (one that [`fits`]); closes the batch forming if
    /// `i` would take it past a limit.
    pub(super) fn add(&mut self, i: usize, size: u64, meta: usize) {
        if self.forming.len() == MAX_BATCH_FILES
            || self.data + size > DATA_MAX
            || self.meta + meta > META_MAX
        {
            self.close();
        }
        self.forming.push(i);
        self.data += size;
        self.meta += meta;
    }

    /// Closes the batch forming, if it has anything.
    pub(super) fn close(&mut self) {
        if !self.forming.is_empty() {
            self.ready.push_back(std::mem::take(&mut self.forming));
        }
        self.data = 0;
        self.meta = 0;
    }

    /// True if nothing is forming or waiting.
    pub(super) fn is_empty(&self) -> bool {
        self.forming.is_empty() && self.ready.is_empty()
    }

    /// Forgets everything (the run stops).
    pub(super) fn clear(&mut self) {
        *self = Batcher::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltasync_wire::Xattr;

    /// Batches close at the file count, the listed bytes and the bytes of
    /// paths and attributes, whichever comes first; files too big, or
    /// with too many attributes, never join one.
    #[test]
    fn batches_close_at_each_limit() {
        let none = Attrs::default();
        let mut b = Batcher::default();
        for i in 0..MAX_BATCH_FILES + 1 {
            b.add(i, 1, meta(b"f", b"f", &none));
        }
        b.close();
        let sizes: Vec<usize> = b.ready.iter().map(Vec::len).collect();
        assert_eq!(sizes, [MAX_BATCH_FILES, 1]);

        let mut b = Batcher::default();
        let per = DATA_MAX / 3;
        for i in 0..4 {
            b.add(i, per, meta(b"f", b"f", &none));
        }
        b.close();
        let sizes: Vec<usize> = b.ready.iter().map(Vec::len).collect();
        assert_eq!(sizes, [3, 1], "closed at the listed bytes");

        let heavy = Attrs {
            xattrs: Some(vec![Xattr {
                name: b"user.x".to_vec(),
                value: vec![0; 12 << 10],
            }]),
            ..Attrs::default()
        };
        assert!(fits(FILE_MAX, meta(b"f", b"f", &heavy)));
        assert!(!fits(FILE_MAX + 1, meta(b"f", b"f", &none)));
        let mut b = Batcher::default();
        let each = meta(b"f", b"f", &heavy);
        let n = META_MAX / each;
        for i in 0..=n {
            b.add(i, 0, each);
        }
        b.close();
        let sizes: Vec<usize> = b.ready.iter().map(Vec::len).collect();
        assert_eq!(sizes, [n, 1], "closed at the bytes of attributes");
        let bloated = Attrs {
            xattrs: Some(vec![Xattr {
                name: b"user.x".to_vec(),
                value: vec![0; 64 << 10],
            }]),
            ..Attrs::default()
        };
        assert!(!fits(1, meta(b"f", b"f", &bloated)));
        let long = vec![b'p'; 4096];
        assert!(
            !fits(1, meta(&long, &long, &heavy)),
            "a long path at both ends counts twice"
        );
    }
}
