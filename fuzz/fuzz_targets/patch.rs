//! Any bytes as a delta against a small fixed basis. Must never panic, hang
//! or write past the output limit.
#![no_main]

use deltasync_engine::{Limits, apply_delta};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let basis: Vec<u8> = (0..4096u32).map(|i| (i * 31 % 251) as u8).collect();
    let limits = Limits { max_output: 1 << 20, ..Limits::default() };
    let mut out = Vec::new();
    if let Ok(stats) = apply_delta(&basis[..], data, &mut out, &limits) {
        assert_eq!(stats.written as usize, out.len());
    }
    assert!(out.len() <= 1 << 20);
});
