//! What the watchers reported and no pass has taken yet: pure, with the
//! clock passed in, so the debounce is tested without waiting.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::path::RelPath;

/// Most distinct paths held; past it, the next pass is a full one.
pub const MAX_PATHS: usize = 65_536;

/// Changed paths, each with the time of its latest event.
#[derive(Debug, Default)]
pub struct Pending {
    paths: BTreeMap<RelPath, Instant>,
    /// Too many to tell, or a watcher lost events: list everything.
    pub overflow: bool,
}

impl Pending {
    /// Notes that `p` changed at `now` (a later event restarts its quiet time).
    pub fn add(&mut self, p: RelPath, now: Instant) {
        if self.overflow {
            return;
        }
        self.paths.insert(p, now);
        if self.paths.len() > MAX_PATHS {
            self.paths.clear();
            self.overflow = true;
        }
    }

    /// How many paths wait.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty() && !self.overflow
    }

    /// Takes the paths that have been quiet for `settle` at `now`.
    pub fn take_settled(&mut self, now: Instant, settle: Duration) -> Vec<RelPath> {
        let settled: Vec<RelPath> = self
            .paths
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(**t) >= settle)
            .map(|(p, _)| p.clone())
            .collect();
        for p in &settled {
            self.paths.remove(p);
        }
        settled
    }

    /// Forgets everything (a full pass covers it), overflow included.
    pub fn clear(&mut self) {
        self.paths.clear();
        self.overflow = false;
    }

    /// When the next path will have been quiet for `settle`.
    pub fn next_due(&self, settle: Duration) -> Option<Instant> {
        self.paths.values().min().map(|t| *t + settle)
    }
}

/// Waits between reconnects: 1 s doubling to 60 s, each with up to a
/// quarter more of jitter so many watchers do not come back in step.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    /// From `min`, doubling up to `max`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            next: min,
            min,
            max,
        }
    }

    /// The next wait; `jitter` in [0, 1) picks the extra.
    pub fn wait(&mut self, jitter: f64) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        base + base.mul_f64(jitter.clamp(0.0, 1.0) / 4.0)
    }

    /// After a good connection, start again from `min`.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rp(s: &str) -> RelPath {
        RelPath::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn a_burst_is_taken_once_after_it_has_been_quiet() {
        let t0 = Instant::now();
        let settle = Duration::from_secs(2);
        let mut p = Pending::default();
        for ms in [0, 500, 1000, 1500] {
            p.add(rp("f"), t0 + Duration::from_millis(ms));
        }
        p.add(rp("g"), t0);
        assert_eq!(p.len(), 2);
        assert_eq!(p.next_due(settle), Some(t0 + settle));
        assert_eq!(p.take_settled(t0 + settle, settle), [rp("g")]);
        // f's last write was at 1.5 s: it is due at 3.5 s, not before.
        assert!(
            p.take_settled(t0 + Duration::from_millis(3400), settle)
                .is_empty()
        );
        assert_eq!(p.next_due(settle), Some(t0 + Duration::from_millis(3500)));
        assert_eq!(
            p.take_settled(t0 + Duration::from_millis(3500), settle),
            [rp("f")]
        );
        assert!(p.is_empty() && p.next_due(settle).is_none());
    }

    #[test]
    fn too_many_paths_turn_into_one_full_pass() {
        let t0 = Instant::now();
        let mut p = Pending::default();
        for i in 0..=MAX_PATHS {
            p.add(rp(&format!("f{i}")), t0);
        }
        assert!(p.overflow && p.next_due(Duration::ZERO).is_none() && !p.is_empty());
        p.clear();
        assert!(p.is_empty());
    }

    #[test]
    fn backoff_doubles_to_its_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let waits: Vec<u64> = (0..8).map(|_| b.wait(0.0).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(b.wait(0.999).as_millis(), 74_985);
        b.reset();
        assert_eq!(b.wait(0.5), Duration::from_millis(1125));
    }
}
