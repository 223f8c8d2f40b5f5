//! Property tests of the engine: random files and edits round-trip through
//! signature, delta and patch in every format; the parallel scanner equals
//! the serial one byte for byte; and the decoders survive any input.

use deltasync_engine::{
    DeltaOptions, IndexedSignature, Limits, PatchError, SigFormat, Signature, SignatureParams,
    apply_delta, patch, read_signature, write_delta,
};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Edit {
    Overwrite(usize, Vec<u8>),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
    Append(Vec<u8>),
}

fn apply_edits(base: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut v = base.to_vec();
    for e in edits {
        let n = v.len();
        match e {
            Edit::Overwrite(at, bytes) if n > 0 => {
                let at = at % n;
                let end = (at + bytes.len()).min(n);
                v[at..end].copy_from_slice(&bytes[..end - at]);
            }
            Edit::Insert(at, bytes) => {
                let at = if n == 0 { 0 } else { at % (n + 1) };
                v.splice(at..at, bytes.iter().copied());
            }
            Edit::Delete(at, len) if n > 0 => {
                let at = at % n;
                let end = (at + len).min(n);
                v.drain(at..end);
            }
            Edit::Truncate(len) => v.truncate(len % (n + 1)),
            Edit::Append(bytes) => v.extend_from_slice(bytes),
            _ => {}
        }
    }
    v
}

fn edit() -> impl Strategy<Value = Edit> {
    let bytes = prop::collection::vec(any::<u8>(), 0..300);
    prop_oneof![
        (any::<usize>(), bytes.clone()).prop_map(|(a, b)| Edit::Overwrite(a, b)),
        (any::<usize>(), bytes.clone()).prop_map(|(a, b)| Edit::Insert(a, b)),
        (any::<usize>(), 0usize..3000).prop_map(|(a, l)| Edit::Delete(a, l)),
        any::<usize>().prop_map(Edit::Truncate),
        bytes.prop_map(Edit::Append),
    ]
}

/// Base files with structure: random runs, repeats and constant runs, so
/// identical blocks and periodic data are common.
fn base() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..2000),
            (any::<u8>(), 0usize..3000).prop_map(|(b, n)| vec![b; n]),
            (prop::collection::vec(any::<u8>(), 1..40), 1usize..100)
                .prop_map(|(unit, n)| unit.repeat(n)),
        ],
        0..8,
    )
    .prop_map(|parts| parts.concat())
}

fn format() -> impl Strategy<Value = SigFormat> {
    prop::sample::select(SigFormat::ALL.to_vec())
}

fn params(format: SigFormat) -> impl Strategy<Value = SignatureParams> {
    params_from(format, 1)
}

/// Truncated strong sums can collide and rebuild the wrong bytes (the wire
/// catches that with a whole-file hash); round trips use at least 8 bytes.
fn safe_params(format: SigFormat) -> impl Strategy<Value = SignatureParams> {
    params_from(format, 8)
}

fn params_from(format: SigFormat, min_strong: u32) -> impl Strategy<Value = SignatureParams> {
    let max = format.strong().max_len();
    (1u32..600, min_strong..=max).prop_map(move |(block_len, strong_len)| SignatureParams {
        format,
        block_len,
        strong_len,
    })
}

fn delta_with(sig: &IndexedSignature, new: &[u8], options: &DeltaOptions) -> Vec<u8> {
    let mut out = Vec::new();
    write_delta(sig, new, &mut out, options).expect("in-memory delta");
    out
}

fn serial() -> DeltaOptions {
    DeltaOptions {
        threads: 1,
        ..DeltaOptions::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn round_trip(base in base(), edits in prop::collection::vec(edit(), 0..6),
                  params in format().prop_flat_map(safe_params)) {
        let new = apply_edits(&base, &edits);
        let sig = Signature::generate(&base, params);
        // The serialized signature parses back to itself.
        let parsed = read_signature(&sig.to_bytes()[..], &Limits::default()).expect("own signature parses");
        prop_assert_eq!(&parsed, &sig);
        let index = IndexedSignature::new(parsed);
        let d = delta_with(&index, &new, &serial());
        prop_assert_eq!(patch(&base, &d).expect("own delta applies"), new);
    }

    #[test]
    fn parallel_scan_equals_serial(base in base(), edits in prop::collection::vec(edit(), 0..6),
                                   params in format().prop_flat_map(params),
                                   threads in 2usize..5, region in 1usize..5000, segment in 1usize..700) {
        let new = apply_edits(&base, &edits);
        let index = IndexedSignature::new(Signature::generate(&base, params));
        let one = delta_with(&index, &new, &serial());
        let many = delta_with(&index, &new, &DeltaOptions { threads, region_len: region, min_segment: segment });
        prop_assert!(one == many, "parallel delta differs from serial");
    }

    #[test]
    fn signature_reader_survives_anything(bytes in prop::collection::vec(any::<u8>(), 0..400),
                                          magic in format()) {
        // Raw bytes, and raw bytes behind a valid magic so the header checks run too.
        let _ = read_signature(&bytes[..], &Limits::default());
        let mut with_magic = magic.magic().to_be_bytes().to_vec();
        with_magic.extend_from_slice(&bytes);
        let _ = read_signature(&with_magic[..], &Limits::default());
    }

    #[test]
    fn patch_survives_anything(basis in prop::collection::vec(any::<u8>(), 0..300),
                               body in prop::collection::vec(any::<u8>(), 0..400)) {
        let mut delta = deltasync_engine::DELTA_MAGIC.to_be_bytes().to_vec();
        delta.extend_from_slice(&body);
        let limits = Limits { max_output: 1 << 20, ..Limits::default() };
        let mut out = Vec::new();
        match apply_delta(&basis[..], &delta[..], &mut out, &limits) {
            Ok(stats) => prop_assert_eq!(stats.written as usize, out.len()),
            Err(PatchError::Io(e)) => prop_assert!(false, "no I/O here, got {}", e),
            Err(_) => {}
        }
        prop_assert!(out.len() <= 1 << 20);
    }

    #[test]
    fn patch_survives_mutated_deltas(base in base(), edits in prop::collection::vec(edit(), 0..4),
                                     flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        let new = apply_edits(&base, &edits);
        let params = SignatureParams { format: SigFormat::Blake2RabinKarp, block_len: 64, strong_len: 8 };
        let index = IndexedSignature::new(Signature::generate(&base, params));
        let mut d = delta_with(&index, &new, &DeltaOptions::default());
        for (at, x) in flips {
            let i = at % d.len();
            d[i] ^= x | 1;
        }
        let limits = Limits { max_output: 1 << 22, ..Limits::default() };
        let _ = apply_delta(&base[..], &d[..], &mut Vec::new(), &limits);
    }
}

/// Bigger structured files for the rounds: the structured parts above,
/// repeated with a per-copy salt, so coarse blocks exist and finer rounds
/// have work.
fn big_base() -> impl Strategy<Value = Vec<u8>> {
    (base(), 1usize..12, any::<u8>()).prop_map(|(b, copies, salt)| {
        let mut out = Vec::new();
        for c in 0..copies {
            out.extend(b.iter().map(|x| x.wrapping_add(salt.wrapping_mul(c as u8))));
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// The multi-round delta rebuilds the new file, for random edits and
    /// any number of rounds, and never costs more than one coarse round
    /// plus the runs' share of headers.
    #[test]
    fn rounds_round_trip(base in big_base(), edits in prop::collection::vec(edit(), 0..8),
                         rounds in 1usize..7) {
        let new = apply_edits(&base, &edits);
        let d = deltasync_engine::rounds::delta_in_rounds(&base, &new, rounds);
        prop_assert_eq!(patch(&base, &d).expect("own delta applies"), new.clone());
        let one = deltasync_engine::rounds::delta_in_rounds(&base, &new, 1);
        prop_assert!(d.len() <= one.len() + 64, "{} rounds: {} bytes, one round: {}", rounds, d.len(), one.len());
    }

    /// Runs from a peer are checked, and a plan of any runs rebuilds the
    /// file when its runs are true, or is refused.
    #[test]
    fn planned_delta_takes_any_runs(raw in prop::collection::vec((0u64..5000, 0u64..5000, 0u64..600), 0..20),
                                    new in prop::collection::vec(any::<u8>(), 0..4000)) {
        use deltasync_engine::rounds::{Run, write_planned_delta};
        let runs: Vec<Run> = raw.iter().map(|&(n, b, l)| Run { new_off: n, basis_off: b, len: l }).collect();
        let mut d = Vec::new();
        if write_planned_delta(&runs, 0, &new[..], &mut d).is_ok() {
            // Whatever the runs claimed, the copies point where they said.
            let basis = vec![0u8; 6000];
            let limits = Limits { max_output: 1 << 22, ..Limits::default() };
            let mut out = Vec::new();
            apply_delta(&basis[..], &d[..], &mut out, &limits).expect("a planned delta applies");
            prop_assert_eq!(out.len(), new.len());
        }
    }
}
