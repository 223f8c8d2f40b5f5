//! The rounds' spans and runs cross the wire as the wire's own types (the
//! wire crate depends on no other crate of ours, see
//! `docs/architecture.md`); the engine computes with its own. These
//! convert between the two, field for field.

use crate::engine::rounds as engine;
use deltasync_wire as wire;

const _: () = assert!(
    wire::message::MAX_RUNS == engine::MAX_RUNS && wire::message::MAX_SPANS == engine::MAX_SPANS,
    "the wire carries exactly what the engine allows"
);

/// Wire spans as the engine's.
pub fn spans_in(s: &[wire::Span]) -> Vec<engine::Span> {
    s.iter()
        .map(|s| engine::Span {
            start: s.start,
            len: s.len,
        })
        .collect()
}

/// Engine spans as the wire's.
pub fn spans_out(s: &[engine::Span]) -> Vec<wire::Span> {
    s.iter()
        .map(|s| wire::Span {
            start: s.start,
            len: s.len,
        })
        .collect()
}

/// Wire runs as the engine's.
pub fn runs_in(r: &[wire::Run]) -> Vec<engine::Run> {
    r.iter()
        .map(|r| engine::Run {
            new_off: r.new_off,
            basis_off: r.basis_off,
            len: r.len,
        })
        .collect()
}

/// Engine runs as the wire's.
pub fn runs_out(r: &[engine::Run]) -> Vec<wire::Run> {
    r.iter()
        .map(|r| wire::Run {
            new_off: r.new_off,
            basis_off: r.basis_off,
            len: r.len,
        })
        .collect()
}
