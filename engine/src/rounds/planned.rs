//! The last step of the rounds: an ordinary delta built from the runs.

use std::io::{self, Read, Write};

use super::{MAX_RUNS, Run};
use crate::DeltaStats;
use crate::delta::emit::Emitter;
use crate::error::DeltaError;

/// Checks runs from a peer: at most [`MAX_RUNS`], none empty, sorted by
/// new offset, not overlapping, no offset overflowing.
pub fn check_runs(runs: &[Run]) -> Result<(), DeltaError> {
    if runs.len() > MAX_RUNS {
        return Err(DeltaError::Plan(format!(
            "{} runs exceed the limit of {MAX_RUNS}",
            runs.len()
        )));
    }
    let mut end = 0u64;
    for (i, r) in runs.iter().enumerate() {
        let bad = |why: &str| DeltaError::Plan(format!("run {i} ({r:?}) {why}"));
        if r.len == 0 {
            return Err(bad("is empty"));
        }
        if r.new_off < end {
            return Err(bad("overlaps the run before it or is out of order"));
        }
        end = r
            .new_off
            .checked_add(r.len)
            .ok_or_else(|| bad("overflows"))?;
        r.basis_off
            .checked_add(r.len)
            .ok_or_else(|| bad("overflows"))?;
    }
    Ok(())
}

/// Streams the delta of `new` (the new file from offset `start` on) that
/// copies what `runs` say and sends every other byte as a literal. Runs
/// before `start` are dropped and one across it is trimmed; copy offsets
/// in the delta are the runs' basis offsets. Every byte of `new` is read,
/// so a reader that hashes sees the whole file.
pub fn write_planned_delta(
    runs: &[Run],
    start: u64,
    mut new: impl Read,
    out: impl Write,
) -> Result<DeltaStats, DeltaError> {
    check_runs(runs)?;
    let mut emitter = Emitter::new(out);
    // Small: a new small file's whole delta is a plan with no runs.
    let mut buf = vec![0u8; 64 << 10];
    let mut at = start;
    // Reads up to `len` bytes, feeding each piece to `use_it`; returns how
    // many there were (fewer at the end of the file).
    let mut pass = |len: u64, emitter: &mut Emitter<_>, matched: Option<u64>| -> io::Result<u64> {
        let mut done = 0u64;
        while done < len {
            let want = (len - done).min(buf.len() as u64) as usize;
            let n = new.read(&mut buf[..want])?;
            if n == 0 {
                break;
            }
            match matched {
                None => emitter.miss(&buf[..n])?,
                Some(basis) => emitter.matched(basis + done, n as u64)?,
            }
            done += n as u64;
        }
        Ok(done)
    };
    for r in runs {
        let (from, end) = (r.new_off.max(at), r.new_off + r.len);
        if end <= at {
            continue;
        }
        let gap = from - at;
        let got = pass(gap, &mut emitter, None)?;
        at += got;
        if got < gap {
            break;
        }
        let len = end - from;
        let got = pass(len, &mut emitter, Some(r.basis_off + (from - r.new_off)))?;
        at += got;
        if got < len {
            break;
        }
    }
    at += pass(u64::MAX - at, &mut emitter, None)?;
    emitter.set_new_len(at - start);
    let (_, stats) = emitter.finish()?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(new_off: u64, basis_off: u64, len: u64) -> Run {
        Run {
            new_off,
            basis_off,
            len,
        }
    }

    #[test]
    fn the_plan_rebuilds_the_file_from_any_start() {
        let basis: Vec<u8> = (0..1000u32).map(|i| (i % 241) as u8).collect();
        let mut new = basis[100..400].to_vec();
        new.extend_from_slice(b"literal bytes");
        new.extend_from_slice(&basis[0..50]);
        let runs = [run(0, 100, 300), run(313, 0, 50)];
        for start in [0u64, 1, 299, 300, 305, 313, 340, 363] {
            let mut d = Vec::new();
            let stats = write_planned_delta(&runs, start, &new[start as usize..], &mut d).unwrap();
            assert_eq!(stats.new_len, new.len() as u64 - start);
            let rebuilt = crate::patch(&basis, &d).unwrap();
            assert_eq!(rebuilt, &new[start as usize..], "start {start}");
        }
    }

    #[test]
    fn a_file_shorter_than_its_plan_gets_no_copies_past_its_end() {
        let basis = vec![9u8; 100];
        let runs = [run(0, 0, 50), run(60, 0, 40)];
        let new = vec![9u8; 70];
        let mut d = Vec::new();
        let stats = write_planned_delta(&runs, 0, &new[..], &mut d).unwrap();
        assert_eq!(stats.new_len, 70);
        assert_eq!(crate::patch(&basis, &d).unwrap(), new);
    }

    #[test]
    fn bad_plans_are_refused() {
        for runs in [
            vec![run(0, 0, 0)],
            vec![run(10, 0, 5), run(12, 0, 5)],
            vec![run(10, 0, 5), run(0, 0, 5)],
            vec![run(u64::MAX, 0, 5)],
            vec![run(0, u64::MAX, 5)],
        ] {
            assert!(
                matches!(check_runs(&runs), Err(DeltaError::Plan(_))),
                "{runs:?}"
            );
        }
    }
}
