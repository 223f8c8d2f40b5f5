//! The multi-round delta on fuzzer-chosen files: the first byte chooses
//! the number of rounds, the second where basis and new file split. The
//! rebuilt file must equal the new one. Then the rest, read as runs, is
//! handed to the planned-delta writer as a hostile plan: it must refuse
//! it or write a delta that applies.
#![no_main]

use deltasync_engine::rounds::{Run, delta_in_rounds, write_planned_delta};
use deltasync_engine::{Limits, apply_delta, patch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let rounds = usize::from(data[0] % 8);
    let rest = &data[2..];
    // Repeat the input so the coarse 1 KiB blocks have something to find.
    let rest = rest.repeat(1 + 4096 / (rest.len() + 1));
    let split = (usize::from(data[1]) * rest.len()) / 256;
    let (basis, new) = rest.split_at(split);
    let d = delta_in_rounds(basis, new, rounds);
    assert_eq!(patch(basis, &d).expect("own delta applies"), new);

    let runs: Vec<Run> = data[2..]
        .chunks_exact(6)
        .map(|c| Run {
            new_off: u64::from(u16::from_le_bytes([c[0], c[1]])),
            basis_off: u64::from(u16::from_le_bytes([c[2], c[3]])),
            len: u64::from(u16::from_le_bytes([c[4], c[5]])),
        })
        .collect();
    let mut plan = Vec::new();
    if write_planned_delta(&runs, 0, new, &mut plan).is_ok() {
        let basis = vec![0u8; 1 << 17];
        let limits = Limits { max_output: 1 << 22, ..Limits::default() };
        let mut out = Vec::new();
        apply_delta(&basis[..], &plan[..], &mut out, &limits).expect("a planned delta applies");
        assert_eq!(out.len(), new.len());
    }
});
