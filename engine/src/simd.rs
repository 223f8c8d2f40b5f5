//! The from-scratch weak sums, compiled twice: once for the baseline target
//! and once with AVX2, chosen at run time.
//!
//! Both sums are dot products of the bytes with fixed weights. The baseline
//! x86-64 target has no 32-bit vector multiply, so without AVX2 the compiler
//! cannot vectorise them; with it, eight lanes at a time. The source is the
//! same generic code either way, so the two builds cannot disagree.
//!
//! This is the engine's only `unsafe`: calling a `#[target_feature]`
//! function is sound once the feature has been detected on this CPU.

#![allow(unsafe_code)]

use crate::weak::{RK_MULT, RK_POW};

/// `(Σ b_i, Σ (n - i)·b_i)` over `data` (mod 2^32): the rollsum's raw sums.
pub(crate) fn rollsum_sums(data: &[u8]) -> (u32, u32) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present, checked on the line above.
        return unsafe { rollsum_sums_avx2(data) };
    }
    rollsum_sums_generic(data)
}

/// `(hash, M^n)` of `data` from `seed`: RabinKarp's `seed·M^n + Σ b_i·M^(n-1-i)`.
pub(crate) fn rabinkarp_sums(data: &[u8], seed: u32) -> (u32, u32) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present, checked on the line above.
        return unsafe { rabinkarp_sums_avx2(data, seed) };
    }
    rabinkarp_sums_generic(data, seed)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn rollsum_sums_avx2(data: &[u8]) -> (u32, u32) {
    rollsum_sums_generic(data)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn rabinkarp_sums_avx2(data: &[u8], seed: u32) -> (u32, u32) {
    rabinkarp_sums_generic(data, seed)
}

#[inline(always)]
fn rollsum_sums_generic(data: &[u8]) -> (u32, u32) {
    // s1 = Σ b_i and s2 = Σ (n - i)·b_i, 64 bytes at a time.
    const LANES: usize = 64;
    let mut s1: u32 = 0;
    let mut s2: u32 = 0;
    let mut chunks = data.chunks_exact(LANES);
    for chunk in &mut chunks {
        let mut sum: u32 = 0;
        let mut weighted: u32 = 0;
        for (j, &b) in chunk.iter().enumerate() {
            sum = sum.wrapping_add(u32::from(b));
            weighted = weighted.wrapping_add((LANES - j) as u32 * u32::from(b));
        }
        s2 = s2
            .wrapping_add(s1.wrapping_mul(LANES as u32))
            .wrapping_add(weighted);
        s1 = s1.wrapping_add(sum);
    }
    for &b in chunks.remainder() {
        s1 = s1.wrapping_add(u32::from(b));
        s2 = s2.wrapping_add(s1);
    }
    (s1, s2)
}

#[inline(always)]
fn rabinkarp_sums_generic(data: &[u8], seed: u32) -> (u32, u32) {
    // Byte j of every 64-byte chunk goes to lane j, itself a RabinKarp hash
    // in steps of M^64; the lanes are weighted by M^(63-j) and summed once
    // at the end. No horizontal sum per chunk: 64 independent lanes, eight
    // AVX2 vectors, three times the speed of a dot product per chunk.
    let (pows, pow64) = RK_POW;
    let mut lanes = [0u32; 64];
    let mut mult: u32 = 1;
    let mut chunks = data.chunks_exact(64);
    for chunk in &mut chunks {
        for (lane, &b) in lanes.iter_mut().zip(chunk) {
            *lane = lane.wrapping_mul(pow64).wrapping_add(u32::from(b));
        }
        mult = mult.wrapping_mul(pow64);
    }
    let mut hash = seed.wrapping_mul(mult);
    for (&lane, &p) in lanes.iter().zip(pows.iter()) {
        hash = hash.wrapping_add(lane.wrapping_mul(p));
    }
    for &b in chunks.remainder() {
        hash = hash.wrapping_mul(RK_MULT).wrapping_add(u32::from(b));
        mult = mult.wrapping_mul(RK_MULT);
    }
    (hash, mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatched_equals_generic() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for n in [0, 1, 63, 64, 65, 1000, 10_000] {
            assert_eq!(rollsum_sums(&data[..n]), rollsum_sums_generic(&data[..n]));
            assert_eq!(
                rabinkarp_sums(&data[..n], 1),
                rabinkarp_sums_generic(&data[..n], 1)
            );
        }
    }
}
