//! `--min-free-space`: before a sync writes anything, each side that will
//! be written to asks its agent how much room its file system has
//! (statvfs), and the run stops (exit 54, nothing changed) unless the
//! bytes it will write there still leave the margin free.
//!
//! A new file is written beside the old one and renamed over it, so the
//! whole new size counts even where it replaces an old version.

use deltasync_wire::{Reply, Request};

use super::plan::{Plan, Side};
use super::replicas::side_name;
use crate::client::Agent;
use crate::error::DriverError;
use crate::exec::Op;

/// The margin to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MinFree {
    /// This many bytes.
    Bytes(u64),
    /// This percentage of the file system's size.
    Percent(u8),
}

impl MinFree {
    /// `2G`, `500M`, `1024` (bytes; K, M, G, T are 1024-based), or `5%`.
    pub fn parse(text: &str) -> Result<MinFree, String> {
        let t = text.trim();
        if let Some(pct) = t.strip_suffix('%') {
            return match pct.trim().parse::<u8>() {
                Ok(p) if p <= 100 => Ok(MinFree::Percent(p)),
                _ => Err(format!("{text:?}: a percentage is 0% to 100%")),
            };
        }
        let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("{text:?}: expected a size such as 2G or 500M, or 5%"))?;
        let shift = match unit
            .trim()
            .to_ascii_uppercase()
            .trim_end_matches("IB")
            .trim_end_matches('B')
        {
            "" => 0,
            "K" => 10,
            "M" => 20,
            "G" => 30,
            "T" => 40,
            _ => {
                return Err(format!(
                    "{text:?}: unknown unit {unit:?} (use K, M, G or T)"
                ));
            }
        };
        n.checked_mul(1u64 << shift)
            .map(MinFree::Bytes)
            .ok_or_else(|| format!("{text:?}: too large"))
    }

    /// The margin in bytes on a file system of `total` bytes.
    pub fn bytes(self, total: u64) -> u64 {
        match self {
            MinFree::Bytes(b) => b,
            MinFree::Percent(p) => total / 100 * u64::from(p),
        }
    }
}

/// The bytes `plan` writes to each side: `[a, b]`.
pub fn bytes_written(plan: &Plan) -> [u64; 2] {
    let mut out = [0u64; 2];
    for step in plan.changes.iter().flat_map(|c| &c.steps) {
        if let Op::Transfer { size, .. } = &step.op {
            let i = usize::from(step.side == Side::B);
            out[i] = out[i].saturating_add(*size);
        }
    }
    out
}

/// Stops the run unless every side written to keeps `min` free.
pub fn check(plan: &Plan, sides: [&Agent; 2], min: MinFree) -> Result<(), DriverError> {
    let need = bytes_written(plan);
    for (i, side) in [(0, Side::A), (1, Side::B)] {
        let (avail, total) = space(sides[i])?;
        let margin = min.bytes(total);
        if need[i].saturating_add(margin) > avail {
            return Err(DriverError::NoSpace(format!(
                "replica {} has {} free; this sync writes {} there and --min-free-space keeps {}",
                side_name(side),
                human(avail),
                human(need[i]),
                human(margin)
            )));
        }
    }
    Ok(())
}

/// Asks an agent for its root's (available, total) bytes.
fn space(agent: &Agent) -> Result<(u64, u64), DriverError> {
    match agent.call(Request::Space)? {
        Reply::Value(v) => {
            let mut it = v.split(' ').map(str::parse::<u64>);
            match (it.next(), it.next()) {
                (Some(Ok(a)), Some(Ok(t))) => Ok((a, t)),
                _ => Err(bad(&v)),
            }
        }
        Reply::Error { message, .. } => Err(DriverError::Startup(format!(
            "cannot read the free space: {message}"
        ))),
        other => Err(bad(&format!("{other:?}"))),
    }
}

fn bad(what: &str) -> DriverError {
    DriverError::Wire(deltasync_wire::WireError::Violation(format!(
        "bad answer to a space request: {what}"
    )))
}

/// `1.5 GiB`, `200 MiB`, `12 KiB`, `100 B`.
fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::MinFree;

    #[test]
    fn margins_parse_as_sizes_or_percentages() {
        assert_eq!(MinFree::parse("2G"), Ok(MinFree::Bytes(2 << 30)));
        assert_eq!(MinFree::parse("500M"), Ok(MinFree::Bytes(500 << 20)));
        assert_eq!(MinFree::parse("1024"), Ok(MinFree::Bytes(1024)));
        assert_eq!(MinFree::parse("3GiB"), Ok(MinFree::Bytes(3 << 30)));
        assert_eq!(MinFree::parse("5%"), Ok(MinFree::Percent(5)));
        assert!(MinFree::parse("101%").is_err());
        assert!(MinFree::parse("2X").is_err());
        assert!(MinFree::parse("G").is_err());
        assert!(MinFree::parse("99999999999T").is_err());
        assert_eq!(MinFree::Percent(10).bytes(1000), 100);
    }
}
