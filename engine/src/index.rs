//! The lookup table the delta scanner probes at every byte offset.
//!
//! Open addressing with linear probing over `(weak, block)` pairs, sized to a
//! load of at most one half. Blocks with the same weak *and* strong sum are
//! stored once, the first one kept: that is librsync's rule, and it decides
//! which of several identical basis blocks a copy command names.

use crate::format::StrongKind;
use crate::signature::Signature;
use crate::strong::{self, Digest};

const EMPTY: u32 = u32::MAX;

/// A signature made ready for matching.
#[derive(Debug)]
pub struct IndexedSignature {
    sig: Signature,
    shift: u32,
    /// `(weak sum, block index)`; `block == EMPTY` marks a free slot.
    slots: Vec<(u32, u32)>,
}

/// A lazily computed strong hash of the window being matched: it is needed
/// only when some block's weak sum agrees, and then at most once.
pub(crate) struct Candidate<'d> {
    data: &'d [u8],
    digest: Option<Digest>,
}

impl<'d> Candidate<'d> {
    pub(crate) fn new(data: &'d [u8]) -> Self {
        Candidate { data, digest: None }
    }

    /// Supplies a digest computed elsewhere (the batched SIMD path).
    pub(crate) fn with_digest(data: &'d [u8], digest: Digest) -> Self {
        Candidate {
            data,
            digest: Some(digest),
        }
    }

    fn digest(&mut self, kind: StrongKind) -> &Digest {
        let data = self.data;
        self.digest
            .get_or_insert_with(|| strong::hash_one(kind, data))
    }
}

impl IndexedSignature {
    /// Indexes `sig`. Costs one pass over the blocks.
    pub fn new(sig: Signature) -> IndexedSignature {
        let want = (sig.len() * 2).max(16).next_power_of_two();
        let bits = want.trailing_zeros();
        let mut index = IndexedSignature {
            shift: 32 - bits,
            slots: vec![(0, EMPTY); want],
            sig,
        };
        for block in 0..index.sig.len() {
            index.insert(block as u32);
        }
        index
    }

    /// The indexed signature.
    pub fn signature(&self) -> &Signature {
        &self.sig
    }

    #[inline]
    fn home(&self, weak: u32) -> usize {
        // Fibonacci hashing: the rollsum's low bits are poorly spread.
        (weak.wrapping_mul(0x9E37_79B1) >> self.shift) as usize
    }

    fn insert(&mut self, block: u32) {
        let weak = self.sig.weak(block as usize);
        let mask = self.slots.len() - 1;
        let mut at = self.home(weak);
        loop {
            let (w, b) = self.slots[at];
            if b == EMPTY {
                self.slots[at] = (weak, block);
                return;
            }
            if w == weak && self.sig.strong(b as usize) == self.sig.strong(block as usize) {
                return; // a duplicate: the earlier block answers for both
            }
            at = (at + 1) & mask;
        }
    }

    /// True if some block has this weak sum: the cheap test before hashing.
    #[inline]
    pub(crate) fn has_weak(&self, weak: u32) -> bool {
        let mask = self.slots.len() - 1;
        let mut at = self.home(weak);
        loop {
            let (w, b) = self.slots[at];
            if b == EMPTY {
                return false;
            }
            if w == weak {
                return true;
            }
            at = (at + 1) & mask;
        }
    }

    /// The block whose weak and strong sums match the candidate window.
    #[inline]
    pub(crate) fn find(&self, weak: u32, candidate: &mut Candidate<'_>) -> Option<u32> {
        let mask = self.slots.len() - 1;
        let strong_len = self.sig.params().strong_len as usize;
        let kind = self.sig.format().strong();
        let mut at = self.home(weak);
        loop {
            let (w, b) = self.slots[at];
            if b == EMPTY {
                return None;
            }
            if w == weak && candidate.digest(kind)[..strong_len] == *self.sig.strong(b as usize) {
                return Some(b);
            }
            at = (at + 1) & mask;
        }
    }
}
