//! The two rolling checksums librsync uses, bit for bit.
//!
//! Both are pure functions of the bytes in the window, whether the state was
//! built from scratch or rolled along; the delta scanner leans on that (see
//! `delta/trace.rs`). The from-scratch sums are written as chunked dot
//! products so the compiler can vectorise them: signatures and the parallel
//! scanner compute one per block.

/// A rolling checksum over a window of bytes.
pub(crate) trait Rolling: Copy + Send + Sync {
    /// The sum of `data`, from an empty window.
    fn of(data: &[u8]) -> Self;
    /// Slides the window one byte: `out` leaves at the front, `inb` enters at the back.
    fn rotate(&mut self, out: u8, inb: u8);
    /// Shrinks the window by one byte at the front.
    fn rollout(&mut self, out: u8);
    /// The 32-bit value stored in signatures.
    fn digest(&self) -> u32;
}

/// librsync's character offset, which makes runs of zero bytes sum to non-zero.
const CHAR_OFFSET: u32 = 31;

/// The Adler-style rollsum: `s1` is the sum of the bytes (+31 each), `s2` the
/// sum of the running `s1`. Only the low 16 bits of each reach the digest,
/// so wrapping `u32` arithmetic gives the same answer as librsync's wider types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rollsum {
    count: u32,
    s1: u32,
    s2: u32,
}

impl Rolling for Rollsum {
    fn of(data: &[u8]) -> Self {
        let (s1, s2) = crate::simd::rollsum_sums(data);
        let n = data.len() as u32;
        let offset_tri = (u64::from(n) * (u64::from(n) + 1) / 2) as u32;
        Rollsum {
            count: n,
            s1: s1.wrapping_add(n.wrapping_mul(CHAR_OFFSET)),
            s2: s2.wrapping_add(offset_tri.wrapping_mul(CHAR_OFFSET)),
        }
    }

    #[inline]
    fn rotate(&mut self, out: u8, inb: u8) {
        self.s1 = self
            .s1
            .wrapping_add(u32::from(inb))
            .wrapping_sub(u32::from(out));
        self.s2 = self.s2.wrapping_add(self.s1).wrapping_sub(
            self.count
                .wrapping_mul(u32::from(out).wrapping_add(CHAR_OFFSET)),
        );
    }

    #[inline]
    fn rollout(&mut self, out: u8) {
        let o = u32::from(out).wrapping_add(CHAR_OFFSET);
        self.s1 = self.s1.wrapping_sub(o);
        self.s2 = self.s2.wrapping_sub(self.count.wrapping_mul(o));
        self.count -= 1;
    }

    #[inline]
    fn digest(&self) -> u32 {
        ((self.s2 & 0xffff) << 16) | (self.s1 & 0xffff)
    }
}

/// The RabinKarp multiplier librsync uses.
pub(crate) const RK_MULT: u32 = 0x0810_4225;
/// Its inverse modulo 2^32, for rolling out.
const RK_INV: u32 = 0x98f0_09ad;
/// `RK_MULT - 1`: rolling out must also remove one power of the seed.
const RK_ADJ: u32 = 0x0810_4224;
/// The hash of the empty window.
const RK_SEED: u32 = 1;

/// Powers `M^(63-j)` for the 64-byte chunked dot product, and `M^64`.
pub(crate) const RK_POW: ([u32; 64], u32) = {
    let mut pows = [0u32; 64];
    let mut p: u32 = 1;
    let mut j = 64;
    while j > 0 {
        j -= 1;
        pows[j] = p;
        p = p.wrapping_mul(RK_MULT);
    }
    (pows, p)
};

/// The polynomial hash `M^n + Σ b_i·M^(n-1-i)` (mod 2^32), with `mult = M^n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RabinKarp {
    hash: u32,
    mult: u32,
}

impl Rolling for RabinKarp {
    fn of(data: &[u8]) -> Self {
        let (hash, mult) = crate::simd::rabinkarp_sums(data, RK_SEED);
        RabinKarp { hash, mult }
    }

    #[inline]
    fn rotate(&mut self, out: u8, inb: u8) {
        self.hash = self
            .hash
            .wrapping_mul(RK_MULT)
            .wrapping_add(u32::from(inb))
            .wrapping_sub(self.mult.wrapping_mul(u32::from(out).wrapping_add(RK_ADJ)));
    }

    #[inline]
    fn rollout(&mut self, out: u8) {
        self.mult = self.mult.wrapping_mul(RK_INV);
        self.hash = self
            .hash
            .wrapping_sub(self.mult.wrapping_mul(u32::from(out).wrapping_add(RK_ADJ)));
    }

    #[inline]
    fn digest(&self) -> u32 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte-at-a-time reference sums, written as librsync writes them.
    fn rollsum_ref(data: &[u8]) -> u32 {
        let (mut s1, mut s2) = (0u64, 0u64);
        for &b in data {
            s1 += u64::from(b) + 31;
            s2 += s1;
        }
        (((s2 & 0xffff) << 16) | (s1 & 0xffff)) as u32
    }

    fn rk_ref(data: &[u8]) -> u32 {
        data.iter().fold(1u32, |h, &b| {
            h.wrapping_mul(RK_MULT).wrapping_add(u32::from(b))
        })
    }

    fn sample(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| (i * 7919 % 251) as u8 ^ (i >> 3) as u8)
            .collect()
    }

    #[test]
    fn inverse_is_inverse() {
        assert_eq!(RK_MULT.wrapping_mul(RK_INV), 1);
    }

    #[test]
    fn from_scratch_matches_reference() {
        for n in [0, 1, 63, 64, 65, 127, 128, 1000, 4097] {
            let d = sample(n);
            assert_eq!(Rollsum::of(&d).digest(), rollsum_ref(&d), "rollsum n={n}");
            assert_eq!(RabinKarp::of(&d).digest(), rk_ref(&d), "rabinkarp n={n}");
        }
    }

    fn rolling_agrees<R: Rolling + std::fmt::Debug + PartialEq>() {
        let d = sample(3000);
        let w = 700;
        let mut r = R::of(&d[..w]);
        for p in 0..d.len() - w {
            r.rotate(d[p], d[p + w]);
            assert_eq!(
                r.digest(),
                R::of(&d[p + 1..p + 1 + w]).digest(),
                "rotate at {p}"
            );
        }
        let start = d.len() - w;
        for p in start..d.len() {
            r.rollout(d[p]);
            assert_eq!(r.digest(), R::of(&d[p + 1..]).digest(), "rollout at {p}");
        }
    }

    #[test]
    fn rotate_and_rollout_equal_from_scratch() {
        rolling_agrees::<Rollsum>();
        rolling_agrees::<RabinKarp>();
    }
}
