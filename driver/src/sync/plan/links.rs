//! `-H` in a sync: files that are one file under several names on the side
//! they come from arrive as one file with several names.

use std::collections::HashMap;

use super::{Planner, Side, idx};
use crate::exec::Op;
use crate::path::RelPath;

impl Planner<'_> {
    /// Turns the copies of a hard-linked group, all but the first name,
    /// into links to the first. The executor runs links after every
    /// transfer of the same side, so the first name is in place by then.
    pub(super) fn link_copies(&mut self) {
        // (side copied to, dev, ino) -> the first name copied.
        let mut first: HashMap<(usize, u64, u64), RelPath> = HashMap::new();
        let mut seen: Vec<(usize, usize, (usize, u64, u64))> = Vec::new();
        for (ci, c) in self.plan.changes.iter().enumerate() {
            for (si, step) in c.steps.iter().enumerate() {
                let Op::Transfer { src, path, .. } = &step.op else {
                    continue;
                };
                let from: Side = step.side.other();
                let Some(e) = self.entry(from, src) else {
                    continue;
                };
                let Some(l) = e.links else { continue };
                let key = (idx(step.side), l.dev, e.ino);
                let f = first.entry(key).or_insert_with(|| path.clone());
                if path < f {
                    *f = path.clone();
                }
                seen.push((ci, si, key));
            }
        }
        for (ci, si, key) in seen {
            let step = &mut self.plan.changes[ci].steps[si];
            let Op::Transfer { path, expect, .. } = &step.op else {
                continue;
            };
            let existing = &first[&key];
            if path != existing {
                step.op = Op::Link {
                    path: path.clone(),
                    existing: existing.clone(),
                    expect: *expect,
                };
            }
        }
    }
}
