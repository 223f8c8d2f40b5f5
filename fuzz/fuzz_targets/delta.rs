//! Round trip on fuzzer-chosen files: the first bytes choose the format and
//! sizes, the rest split into basis and new file. The rebuilt file must
//! equal the new one, and the parallel delta the serial one.
#![no_main]

use deltasync_engine::{
    DeltaOptions, IndexedSignature, SigFormat, Signature, SignatureParams, patch, write_delta,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let format = SigFormat::ALL[data[0] as usize % SigFormat::ALL.len()];
    let block_len = u32::from(data[1]) + 1;
    let strong_len = u32::from(data[2]) % format.strong().max_len() + 1;
    let rest = &data[4..];
    let split = (usize::from(data[3]) * rest.len()) / 256;
    let (basis, new) = rest.split_at(split);
    let index = IndexedSignature::new(Signature::generate(basis, SignatureParams { format, block_len, strong_len }));
    let mut serial = Vec::new();
    let one = DeltaOptions { threads: 1, ..DeltaOptions::default() };
    write_delta(&index, new, &mut serial, &one).expect("in memory");
    let mut parallel = Vec::new();
    let many = DeltaOptions { threads: 3, region_len: 97, min_segment: 5 };
    write_delta(&index, new, &mut parallel, &many).expect("in memory");
    assert!(serial == parallel, "parallel delta differs");
    // A truncated strong sum can collide; only full sums promise a rebuild.
    if strong_len == format.strong().max_len() {
        assert_eq!(patch(basis, &serial).expect("own delta applies"), new);
    }
});
