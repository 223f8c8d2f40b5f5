//! The lookup table the delta scanner probes at every byte offset.
//!
//! Open addressing with linear probing over `(weak, block)` pairs, sized to a
//! load of at most one half. In front of it, a bitmap of the weak sums
//! present (about 32 bits per block) answers the question asked at nearly
//! every offset, "could any block have this weak sum?", with one load and
//! no probing; only its few yeses reach the table. Blocks with the same weak *and* strong sum are
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
    /// One bit per hashed weak sum, set for every block's.
    filter: Vec<u64>,
    filter_shift: u32,
}

/// Fibonacci hashing: the rollsum's low bits are poorly spread.
#[inline]
fn spread(weak: u32) -> u32 {
    weak.wrapping_mul(0x9E37_79B1)
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
        // 32 bits per block: about 3% of offsets pass the filter in vain.
        let filter_bits = (sig.len() * 32).clamp(1 << 12, 1 << 26).next_power_of_two();
        let mut index = IndexedSignature {
            shift: 32 - bits,
            slots: vec![(0, EMPTY); want],
            filter: vec![0; filter_bits / 64],
            filter_shift: 32 - filter_bits.trailing_zeros(),
            sig,
        };
        for block in 0..index.sig.len() {
            index.insert(block as u32);
            let bit = index.filter_bit(index.sig.weak(block));
            index.filter[bit / 64] |= 1 << (bit % 64);
        }
        index
    }

    /// The indexed signature.
    pub fn signature(&self) -> &Signature {
        &self.sig
    }

    #[inline]
    fn home(&self, weak: u32) -> usize {
        (spread(weak) >> self.shift) as usize
    }

    #[inline]
    fn filter_bit(&self, weak: u32) -> usize {
        (spread(weak) >> self.filter_shift) as usize
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

    /// False if no block has this weak sum; true if one may (the filter's
    /// bit is set): the cheap test before [`find`](Self::find) and hashing.
    #[inline]
    pub(crate) fn may_have(&self, weak: u32) -> bool {
        let bit = self.filter_bit(weak);
        self.filter[bit / 64] & (1 << (bit % 64)) != 0
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SigFormat, SignatureParams};

    #[test]
    fn the_filter_passes_every_block_and_few_others() {
        let data: Vec<u8> = (0..(1u64 << 20))
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let params = SignatureParams::rdiff(
            SigFormat::Md4RabinKarp,
            Some(data.len() as u64),
            Some(1024),
            None,
        )
        .unwrap();
        let index = IndexedSignature::new(Signature::generate(&data, params));
        let blocks = index.signature().len();
        assert_eq!(blocks, 1024);
        for b in 0..blocks {
            assert!(index.may_have(index.signature().weak(b)), "block {b}");
        }
        // Sums no block has: at 32 filter bits per block, about 3% pass.
        let others = (0..100_000u32).map(|i| i.wrapping_mul(0x2545_F491) ^ 0x5bd1_e995);
        let passed = others.filter(|&w| index.may_have(w)).count();
        assert!(passed < 6_000, "{passed} of 100,000 passed the filter");
    }
}
