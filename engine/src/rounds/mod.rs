//! Multi-round deltas: coarse blocks first, finer blocks only where the
//! file changed.
//!
//! rsync's single round must choose one block size for the whole file.
//! Large blocks make a small signature but cost a whole block of literal
//! data per edit; small blocks cost the opposite. Rounds get both
//! (Langford's multiround rsync):
//!
//! 1. The basis side signs its whole file with large blocks
//!    ([`coarse_block_len`], about 512 of them).
//! 2. The new side finds which of its bytes those blocks cover
//!    ([`find_runs`]): each found block is a [`Run`].
//! 3. What is left uncovered on the new side ([`new_gaps`]) can only come
//!    from basis bytes no run used ([`basis_gaps`]). The basis side signs
//!    just those bytes, end to end as one *virtual* file ([`SpanReader`]),
//!    with blocks eight or more times smaller ([`next_block_len`]); the new side
//!    searches just its gaps, also read end to end, and [`SpanMap`] maps
//!    what it finds back to real offsets in both files.
//! 4. Repeat down to [`FLOOR`]-byte blocks, then send one ordinary
//!    `rs\x026` delta built from the runs ([`write_planned_delta`]): copies
//!    where a run says so, literal bytes everywhere else.
//!
//! A 1 KiB edit in a 128 MiB file then costs about 1 KiB of literals and a
//! few kilobytes of signatures, instead of one 11 KiB rsync block and a
//! 150 KiB signature. The final delta is an ordinary delta, so any patcher
//! applies it. Short sums may collide in any round; the whole-file BLAKE3
//! check after the patch catches it, and the caller redoes the file in one
//! round with full sums.
//!
//! Every function here is pure computation over readers and lists, so the
//! rounds can be tested in memory ([`delta_in_rounds`]) and the wire code
//! carries only the lists.

mod map;
mod planned;
mod runs;

pub use map::{SpanMap, SpanReader, basis_gaps, new_gaps};
pub use planned::{check_runs, write_planned_delta};
pub use runs::find_runs;

use crate::signature::Signature;
use crate::{IndexedSignature, SignatureParams};

/// The block length of the last round: edits cost literals rounded to about this.
pub const FLOOR: u32 = 128;
/// Most runs one round or one plan may carry (each costs a few bytes on the wire).
pub const MAX_RUNS: usize = 16_384;
/// Most spans one round may search or sign.
pub const MAX_SPANS: usize = 16_384;
/// Files smaller than this go in one ordinary round: the extra round
/// trips would cost more than they save.
pub const MIN_LEN: u64 = 16 << 10;

/// `len` bytes of the new file at `new_off` equal the basis at `basis_off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// Offset in the new file.
    pub new_off: u64,
    /// Offset in the basis.
    pub basis_off: u64,
    /// Bytes.
    pub len: u64,
}

/// A range of bytes of one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: u64,
    /// Bytes.
    pub len: u64,
}

impl Span {
    /// One past the last byte (saturating, for hostile input).
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }
}

/// The first round's block length for a basis of `basis_len` bytes: a power
/// of two giving about 512 blocks, from 1 KiB to 1 MiB.
pub fn coarse_block_len(basis_len: u64) -> u32 {
    (basis_len / 512)
        .max(1)
        .next_power_of_two()
        .clamp(1 << 10, 1 << 20) as u32
}

/// The block length of the round after one at `block_len`: at least
/// eight times smaller, reaching [`FLOOR`] in as few rounds as that
/// allows (each round costs a round trip); `None` at the floor.
///
/// From 128 KiB: 8 KiB, 1 KiB, 128 (16×, 8×, 8×), where shrinking by
/// exactly eight would take a fifth round for a last step of two.
pub fn next_block_len(block_len: u32) -> Option<u32> {
    if block_len <= FLOOR {
        return None;
    }
    // Powers of two above the floor, and the rounds left at 8× or more.
    let e = (block_len / FLOOR).ilog2();
    if e < 3 {
        return Some(FLOOR);
    }
    Some((block_len >> e.div_ceil(e / 3)).max(FLOOR))
}

/// The parameters a round signs with: deltasync's native format with
/// `block_len`, and rsync's strong-sum rule for `signed_len` bytes.
pub fn round_params(signed_len: u64, block_len: u32) -> SignatureParams {
    let mut p = SignatureParams::native(signed_len);
    p.block_len = block_len;
    p.strong_len = crate::native_strong_len(signed_len, block_len);
    p
}

/// Merges `more` into `runs`, keeping them sorted by new offset (the
/// two lists never overlap: `more` was found only in `runs`' gaps).
pub fn merge_runs(runs: &mut Vec<Run>, more: Vec<Run>) {
    runs.extend(more);
    runs.sort_unstable_by_key(|r| r.new_off);
}

/// The whole multi-round delta of `new` against `basis`, in memory, with
/// at most `max_rounds` rounds (0 or 1 is a single coarse round): what
/// the two agents compute between them over the wire, for tests and fuzzing.
///
/// ```
/// use deltasync_engine::{patch, rounds};
/// let basis: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
/// let mut new = basis.clone();
/// new[100_000..100_010].copy_from_slice(b"0123456789");
/// let d = rounds::delta_in_rounds(&basis, &new, 8);
/// assert_eq!(patch(&basis, &d)?, new);
/// assert!(d.len() < 1_000, "{} bytes", d.len());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn delta_in_rounds(basis: &[u8], new: &[u8], max_rounds: usize) -> Vec<u8> {
    let (basis_len, new_len) = (basis.len() as u64, new.len() as u64);
    let mut block_len = coarse_block_len(basis_len);
    let whole = |len| vec![Span { start: 0, len }];
    let (mut basis_spans, mut new_spans) = (whole(basis_len), whole(new_len));
    let mut runs = Vec::new();
    for round in 0..max_rounds.max(1) {
        let signed_map = SpanMap::new(&basis_spans);
        let signed = read_all(basis, &basis_spans);
        let sig = Signature::generate(&signed, round_params(signed_map.total(), block_len));
        let index = IndexedSignature::new(sig);
        let searched = read_all(new, &new_spans);
        let found = find_runs(&index, &searched[..], &new_spans, &basis_spans, MAX_RUNS)
            .expect("reading memory cannot fail");
        merge_runs(&mut runs, found);
        let Some(next) = next_block_len(block_len) else {
            break;
        };
        if round + 1 == max_rounds.max(1) {
            break;
        }
        block_len = next;
        new_spans = new_gaps(&runs, new_len, u64::from(block_len), MAX_SPANS);
        basis_spans = basis_gaps(&runs, basis_len, u64::from(block_len), MAX_SPANS);
        if new_spans.is_empty() || basis_spans.is_empty() {
            break;
        }
    }
    let mut out = Vec::new();
    write_planned_delta(&runs, 0, new, &mut out).expect("writing memory cannot fail");
    out
}

fn read_all(data: &[u8], spans: &[Span]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in spans {
        out.extend_from_slice(&data[s.start as usize..s.end() as usize]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_shrinks_by_eight_or_more_to_the_floor() {
        assert_eq!(coarse_block_len(0), 1024);
        assert_eq!(coarse_block_len(64 << 20), 128 << 10);
        assert_eq!(coarse_block_len(1 << 40), 1 << 20);
        let mut b = coarse_block_len(64 << 20);
        let mut seen = vec![b];
        while let Some(n) = next_block_len(b) {
            b = n;
            seen.push(b);
        }
        assert_eq!(seen, [131072, 8192, 1024, 128]);
        let schedule = |mut b: u32| {
            let mut seen = vec![b];
            while let Some(n) = next_block_len(b) {
                assert!(n <= b / 8 || n == FLOOR, "{b} -> {n}");
                b = n;
                seen.push(b);
            }
            seen
        };
        assert_eq!(schedule(1 << 20), [1 << 20, 1 << 16, 1 << 13, 1 << 10, 128]);
        assert_eq!(schedule(32 << 10), [32 << 10, 2048, 128]);
        assert_eq!(schedule(1024), [1024, 128]);
        assert_eq!(schedule(FLOOR), [FLOOR]);
        // Hostile sizes from a peer still end at the floor.
        for b in [129, 1000, 4097, u32::MAX] {
            assert_eq!(*schedule(b).last().unwrap(), FLOOR, "{b}");
        }
    }

    #[test]
    fn a_small_edit_in_a_big_file_costs_about_its_own_size() {
        let basis: Vec<u8> = (0..(8u64 << 20))
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let mut new = basis.clone();
        for k in 0..10 {
            let at = 700_000 * k + 333;
            new[at..at + 100].fill(b'x');
        }
        let one = delta_in_rounds(&basis, &new, 1);
        let many = delta_in_rounds(&basis, &new, 8);
        assert_eq!(crate::patch(&basis, &one).unwrap(), new);
        assert_eq!(crate::patch(&basis, &many).unwrap(), new);
        // 10 edits of 100 bytes: at most two floor blocks of literals each.
        let literal = many.len();
        assert!(literal < 10 * (100 + 2 * FLOOR as usize) + 600, "{literal}");
        assert!(
            one.len() > 10 * (8 << 10),
            "one coarse round sends whole blocks"
        );
    }
}
