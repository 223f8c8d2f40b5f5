//! The operation model that copy and sync share: what a plan asks of a
//! destination replica ([`Op`]), and what became of it ([`Outcome`]).

use deltasync_wire::{Attrs, Code, Expect, FileStat, Partial, Request, StashArea};

use crate::path::RelPath;

/// One step on the destination replica. Every change that could overwrite
/// or remove something carries an `Expect`: what the plan saw there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Remove an entry, a directory with all it holds (unless `expect` is
    /// `EmptyDir`, which removes only an empty one).
    Remove {
        /// What to remove.
        path: RelPath,
        /// What must be there.
        expect: Expect,
    },
    /// Move an entry into the work directory.
    Stash {
        /// What to stash.
        path: RelPath,
        /// Where to.
        area: StashArea,
        /// What must be there.
        expect: Expect,
    },
    /// Rename within the destination (`to`'s parents are made).
    Move {
        /// The old path.
        from: RelPath,
        /// The new path (must be free).
        to: RelPath,
        /// What must be at `from`.
        expect: Expect,
    },
    /// Create a directory (fine if one is there) with these attributes.
    Mkdir {
        /// Where.
        path: RelPath,
        /// Mode, owner, attributes (a directory's mtime is set late).
        attrs: Attrs,
    },
    /// Create or repoint a symlink.
    Symlink {
        /// Where.
        path: RelPath,
        /// Its target (text; never followed).
        target: Vec<u8>,
        /// Its own mtime and owner.
        attrs: Attrs,
    },
    /// Send a file's contents from the source's `src`: a delta against
    /// what is at `path`, or the whole file.
    Transfer {
        /// The source path.
        src: RelPath,
        /// The destination path.
        path: RelPath,
        /// The source's size as listed (for progress).
        size: u64,
        /// What must be at `path` when the new file replaces it.
        expect: Expect,
        /// Owner and extended attributes for the new file (its mode and
        /// mtime are the source's, as read).
        attrs: Attrs,
        /// What the file at `path` is known to hold (length and BLAKE3),
        /// when a sync's state says so: a source that starts with exactly
        /// that is sent as its tail alone, with no signature round.
        known: Option<Partial>,
        /// A similar file already at the destination to diff against when
        /// `path` has none (`--fuzzy`); only read.
        basis: Option<RelPath>,
    },
    /// Make `path` another name of the file at `existing` (hard links).
    /// Runs late, once every transfer is done.
    Link {
        /// The new name.
        path: RelPath,
        /// The file it names.
        existing: RelPath,
        /// What must be at `path`.
        expect: Expect,
    },
    /// Set attributes of an entry whose contents are right.
    SetAttr {
        /// Where.
        path: RelPath,
        /// What to set.
        attrs: Attrs,
        /// What must be there.
        expect: Expect,
        /// Run after everything else (a directory's mtime, which any
        /// change inside it would move again).
        late: bool,
    },
}

impl Op {
    /// The destination path the step changes (the new path of a move).
    pub fn path(&self) -> &RelPath {
        match self {
            Op::Remove { path, .. }
            | Op::Stash { path, .. }
            | Op::Mkdir { path, .. }
            | Op::Symlink { path, .. }
            | Op::Transfer { path, .. }
            | Op::Link { path, .. }
            | Op::SetAttr { path, .. } => path,
            Op::Move { to, .. } => to,
        }
    }

    /// True if the step waits until every other step has run.
    pub fn is_late(&self) -> bool {
        self.phase() > 0
    }

    /// When the step runs: 0 with the others, 1 (hard links) once every
    /// file is in place, 2 (a directory's closing mtime) last of all, once
    /// nothing more is created in it.
    pub fn phase(&self) -> u8 {
        match self {
            Op::Link { .. } => 1,
            Op::SetAttr { late: true, .. } => 2,
            _ => 0,
        }
    }

    /// The one request that carries out a step (`None` for a transfer,
    /// which is a conversation with both agents).
    pub(crate) fn request(&self) -> Option<Request> {
        let b = |p: &RelPath| p.as_bytes().to_vec();
        Some(match self {
            Op::Remove { path, expect } => Request::Remove {
                path: b(path),
                expect: *expect,
            },
            Op::Stash { path, area, expect } => Request::Stash {
                path: b(path),
                area: *area,
                expect: *expect,
            },
            Op::Move { from, to, expect } => Request::Rename {
                from: b(from),
                to: b(to),
                expect: *expect,
            },
            Op::Mkdir { path, attrs } => Request::Mkdir {
                path: b(path),
                attrs: attrs.clone(),
            },
            Op::Symlink {
                path,
                target,
                attrs,
            } => Request::Symlink {
                path: b(path),
                target: target.clone(),
                attrs: attrs.clone(),
            },
            Op::Link {
                path,
                existing,
                expect,
            } => Request::Link {
                path: b(path),
                existing: b(existing),
                expect: *expect,
            },
            Op::SetAttr {
                path,
                attrs,
                expect,
                ..
            } => Request::SetAttr {
                path: b(path),
                attrs: attrs.clone(),
                expect: *expect,
            },
            Op::Transfer { .. } => return None,
        })
    }
}

/// What a transfer moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The source file as it was read (its size, mtime and mode; the
    /// destination got the same). This, not the listing, is what a state
    /// records: the file may have changed between listing and sending.
    pub stat: FileStat,
    /// BLAKE3 of what was sent.
    pub blake3: [u8; 32],
    /// Bytes sent as literal data.
    pub literal: u64,
    /// Bytes reproduced from the old file or a kept prefix.
    pub matched: u64,
}

/// What became of one step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Done,
    /// A transfer placed its file.
    Sent(Sent),
    /// It failed (and was reported as a warning); the destination path is
    /// as it was.
    Failed {
        /// Why, in the agent's terms.
        code: Code,
        /// The agent's message.
        message: String,
    },
}

/// Receives what an execution does, as it does it: the caller renders
/// lines, counts, and (for a sync) commits state.
pub trait Observer {
    /// Step `index` of the list ended.
    fn outcome(&mut self, index: usize, op: &Op, outcome: &Outcome);
    /// Bytes of a transfer's delta forwarded so far.
    fn progress(&mut self, _path: &RelPath, _done: u64, _total: u64) {}
    /// Something worth telling the user (a retry, a resume).
    fn warning(&mut self, _text: &str) {}
    /// Nothing has arrived and the executor is about to wait, or it is
    /// about to return: a good time to record what has ended, in one go.
    fn idle(&mut self) {}
}
