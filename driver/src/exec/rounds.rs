//! A transfer's multi-round delta, as the client steers it (see
//! `deltasync_engine::rounds` for the idea). The client holds the runs
//! found so far and decides each next round; the agents hold nothing
//! between rounds. Pure: `mod.rs` sends what this decides.
//!
//! ```text
//! dst: Signature{Coarse}            → the whole basis in ~512 blocks
//! src: Match{all, all} + that sig   → Matched{stat, runs}
//! dst: Signature{Spans{B/8, unused basis spans}}
//! src: Match{new gaps, those spans} → Matched{stat, more runs}
//! …                                   down to the engine's FLOOR
//! src: Delta{plan: runs}            → an ordinary delta for dst's Patch
//! ```

use deltasync_engine::rounds::{
    self, MAX_RUNS, MAX_SPANS, Run, Span, basis_gaps, check_runs, merge_runs, new_gaps,
};
use deltasync_wire::{self as wire, FileStat, Partial};

use crate::runs::{runs_in, runs_out, spans_out};

/// Where a transfer stands.
#[derive(Debug)]
pub(super) enum Mode {
    /// One round with native blocks (small files, retries with full sums,
    /// `--whole-file`).
    Single,
    /// The destination's file is known (the state's record of it): the
    /// source is asked for just the tail, if its file starts with all of
    /// it. No signature; a source that does not falls back to the rounds.
    Append,
    /// The coarse signature has been asked for.
    Coarse,
    /// Rounds under way.
    Rounds(Box<Rounds>),
}

/// What to do after a round.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// Ask the destination to sign `basis` in blocks of `block_len`, then
    /// the source to search its gaps against that.
    Round {
        block_len: u32,
        basis: Vec<wire::Span>,
    },
    /// Ask the source for the delta these runs make.
    Plan(Vec<wire::Run>),
}

/// The file changed between two rounds.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ChangedBetweenRounds;

/// The rounds of one transfer.
#[derive(Debug)]
pub(super) struct Rounds {
    basis_len: u64,
    block_len: u32,
    runs: Vec<Run>,
    /// The source file as the first round read it.
    stat: Option<FileStat>,
    /// What the round in flight searches (empty: the whole new file) and
    /// signed (empty: the whole basis).
    spans: Vec<Span>,
    basis: Vec<Span>,
    /// A prefix the destination kept from an interrupted transfer.
    pub(super) partial: Option<Partial>,
}

impl Rounds {
    /// Rounds over a basis of `basis_len` bytes whose coarse signature is in.
    pub(super) fn start(basis_len: u64, partial: Option<Partial>) -> Rounds {
        Rounds {
            basis_len,
            block_len: rounds::coarse_block_len(basis_len),
            runs: Vec::new(),
            stat: None,
            spans: Vec::new(),
            basis: Vec::new(),
            partial,
        }
    }

    /// The spans the round in flight searches, and the basis spans it signed.
    pub(super) fn searched(&self) -> (Vec<wire::Span>, Vec<wire::Span>) {
        (spans_out(&self.spans), spans_out(&self.basis))
    }

    /// Takes what a round found and decides the next step. Runs that do
    /// not fit with those found before (a confused or hostile source) end
    /// the rounds with what was found before.
    pub(super) fn found(
        &mut self,
        stat: FileStat,
        runs: &[wire::Run],
    ) -> Result<Next, ChangedBetweenRounds> {
        if *self.stat.get_or_insert(stat) != stat {
            return Err(ChangedBetweenRounds);
        }
        let mut merged = self.runs.clone();
        merge_runs(&mut merged, runs_in(runs));
        if check_runs(&merged).is_err() {
            return Ok(self.plan());
        }
        self.runs = merged;
        let Some(next) = rounds::next_block_len(self.block_len) else {
            return Ok(self.plan());
        };
        let min = u64::from(next);
        let spans = new_gaps(&self.runs, stat.size, min, MAX_SPANS);
        let basis = basis_gaps(&self.runs, self.basis_len, min, MAX_SPANS);
        if spans.is_empty() || basis.is_empty() || self.runs.len() >= MAX_RUNS {
            return Ok(self.plan());
        }
        self.block_len = next;
        self.spans = spans;
        self.basis = basis;
        Ok(Next::Round {
            block_len: next,
            basis: spans_out(&self.basis),
        })
    }

    fn plan(&mut self) -> Next {
        Next::Plan(runs_out(&std::mem::take(&mut self.runs)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltasync_wire::Mtime;

    fn stat(size: u64) -> FileStat {
        FileStat {
            size,
            mtime: Mtime::new(1, 0),
            mode: 0o644,
        }
    }

    fn run(new_off: u64, basis_off: u64, len: u64) -> wire::Run {
        wire::Run {
            new_off,
            basis_off,
            len,
        }
    }

    #[test]
    fn rounds_shrink_to_the_gaps_then_plan() {
        let mut r = Rounds::start(1 << 20, None);
        assert_eq!(r.block_len, 2048);
        // The middle block changed.
        let first = vec![run(0, 0, 500 << 10), run(502 << 10, 502 << 10, 522 << 10)];
        let Ok(Next::Round { block_len, basis }) = r.found(stat(1 << 20), &first) else {
            panic!("a second round");
        };
        // 2048 is 16 times the floor: one round of 16× reaches it.
        assert_eq!(block_len, 128);
        assert_eq!(
            basis,
            [wire::Span {
                start: 500 << 10,
                len: 2 << 10
            }]
        );
        assert_eq!(r.searched().0, basis);
        let Ok(Next::Plan(runs)) = r.found(stat(1 << 20), &[run(500 << 10, 500 << 10, 1024)])
        else {
            panic!("the floor ends the rounds");
        };
        assert_eq!(runs.len(), 3);
        check_runs(&runs_in(&runs)).unwrap();
    }

    #[test]
    fn a_changed_source_or_overlapping_runs_end_the_rounds() {
        let mut r = Rounds::start(1 << 20, None);
        r.found(stat(1 << 20), &[run(0, 0, 1000)]).unwrap();
        assert_eq!(r.found(stat(5), &[]), Err(ChangedBetweenRounds));
        let mut r = Rounds::start(1 << 20, None);
        r.found(stat(1 << 20), &[run(0, 0, 1000)]).unwrap();
        assert_eq!(
            r.found(stat(1 << 20), &[run(500, 0, 1000)]),
            Ok(Next::Plan(vec![run(0, 0, 1000)]))
        );
    }
}
