//! Any bytes as a signature: parse, and if it parses, index it and scan a
//! small buffer with it. Must never panic, hang or over-allocate.
#![no_main]

use deltasync_engine::{DeltaOptions, IndexedSignature, Limits, read_signature, write_delta};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_block_len: 1 << 16, max_blocks: 1 << 16, max_output: 1 << 20 };
    if let Ok(sig) = read_signature(data, &limits) {
        let index = IndexedSignature::new(sig);
        let probe: Vec<u8> = data.iter().rev().copied().collect();
        let _ = write_delta(&index, &probe[..], std::io::sink(), &DeltaOptions::default());
    }
});
