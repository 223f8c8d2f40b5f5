//! The executor's side of a transfer in rounds (`rounds.rs` decides, this
//! asks): a round's signature goes to the source as a `Match`, and its
//! `Matched` runs lead to the next round's `Signature` on the destination
//! or to the final `Delta` with the runs as its plan.

use deltasync_wire::{Code, Feed, FileStat, MAX_CHUNK, Message, Request, Run, SigShape, WireError};

use super::rounds::{ChangedBetweenRounds, Mode, Next};
use super::{AtDst, Exec};
use crate::error::DriverError;

impl Exec<'_> {
    /// A round's signature is in: ask the source to search its gaps.
    pub(super) fn ask_match(&mut self, i: usize) -> Result<(), DriverError> {
        let Some(x) = self.xfers.get_mut(&i) else {
            return Ok(());
        };
        let Mode::Rounds(r) = &x.mode else {
            return Ok(());
        };
        let (spans, basis) = r.searched();
        let req = Request::Match {
            path: x.src.as_bytes().to_vec(),
            spans,
            basis,
        };
        let sig = std::mem::take(&mut x.sig);
        let id = self.ask_src(i, req)?;
        for piece in sig.chunks(MAX_CHUNK) {
            self.src.feed(id, Feed::SigChunk(piece.to_vec()))?;
        }
        self.src.feed(id, Feed::SigEnd)
    }

    /// A round's runs are in: ask for the next round, or the delta.
    pub(super) fn on_matched(
        &mut self,
        i: usize,
        stat: FileStat,
        runs: Vec<Run>,
    ) -> Result<(), DriverError> {
        let Some(x) = self.xfers.get_mut(&i) else {
            return Ok(());
        };
        let Mode::Rounds(r) = &mut x.mode else {
            return Err(DriverError::Wire(WireError::Violation(
                "the source sent runs for a transfer not in rounds".into(),
            )));
        };
        match r.found(stat, &runs) {
            Ok(Next::Round { block_len, basis }) => {
                let id = self.dst.next_id();
                self.out.control(Message::Call {
                    id,
                    req: Request::Signature {
                        path: x.basis_path().as_bytes().to_vec(),
                        full_sums: false,
                        resume: false,
                        shape: SigShape::Spans {
                            block_len,
                            spans: basis,
                        },
                    },
                });
                self.at_dst.insert(id, AtDst::Signature(i));
                Ok(())
            }
            Ok(Next::Plan(runs)) => {
                let req = Request::Delta {
                    path: x.src.as_bytes().to_vec(),
                    skip: r.partial,
                    prefix: None,
                    plan: Some(runs),
                };
                self.ask_src(i, req).map(|_| ())
            }
            Err(ChangedBetweenRounds) => self.finish(
                i,
                Some((Code::Changed, "file changed between rounds".into())),
                true,
            ),
        }
    }
}
