//! `--bwlimit`: a cap on the bytes written to the transport, after
//! compression, enforced with governor's GCRA in 1 KiB cells.
//!
//! Writes are cut into pieces of 25 ms of data at the current rate (at least
//! one cell) and each piece waits for its cells before it goes out. The
//! limiter's burst capacity is one piece, so after an idle spell at most
//! 25 ms of data leaves at once (100 ms at the lowest rates, where a piece
//! is a single cell), and over any second the rate stays within a piece of
//! the cap instead of rsync's sleep-and-burst pattern. A timetable (`"08:00,512K 18:00,off"`)
//! is re-read once a second, so a run that crosses 18:00 speeds up there.

use std::io::{self, Write};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};

const CELL: u64 = 1024;

/// A rate, or no cap.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rate {
    /// No cap.
    Off,
    /// Bytes per second.
    BytesPerSec(f64),
}

/// A bandwidth cap: one rate, or rates by time of day.
#[derive(Clone, Debug, PartialEq)]
pub struct BwLimit {
    /// `(minute of the day, rate from then on)`, sorted; never empty.
    slots: Vec<(u32, Rate)>,
}

impl BwLimit {
    /// No cap at all.
    pub fn off() -> BwLimit {
        BwLimit {
            slots: vec![(0, Rate::Off)],
        }
    }

    /// Parses rsync's syntax: `RATE` (no suffix: KiB/s; `K`, `M`, `G` and
    /// `KiB`… are 1024-based, `KB`, `MB`, `GB` 1000-based, `B` bytes;
    /// fractions allowed; `0` or `off`: no cap), or a timetable of
    /// `HH:MM,RATE` pairs separated by spaces.
    pub fn parse(text: &str) -> Result<BwLimit, String> {
        let text = text.trim();
        if !text.contains(':') {
            return Ok(BwLimit {
                slots: vec![(0, parse_rate(text)?)],
            });
        }
        let mut slots = Vec::new();
        for item in text.split_whitespace() {
            let (time, rate) = item
                .split_once(',')
                .ok_or_else(|| format!("timetable entry {item:?} is not HH:MM,RATE"))?;
            slots.push((parse_time(time)?, parse_rate(rate)?));
        }
        slots.sort_by_key(|s| s.0);
        if slots.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err("timetable names the same time twice".into());
        }
        Ok(BwLimit { slots })
    }

    /// The rate in force at `minute` of the day: the latest slot at or
    /// before it, or else the day's last slot (still in force from yesterday).
    pub fn rate_at(&self, minute: u32) -> Rate {
        self.slots
            .iter()
            .rev()
            .find(|s| s.0 <= minute)
            .or(self.slots.last())
            .map_or(Rate::Off, |s| s.1)
    }

    /// True when no slot caps anything.
    pub fn is_off(&self) -> bool {
        self.slots.iter().all(|s| s.1 == Rate::Off)
    }
}

fn parse_time(t: &str) -> Result<u32, String> {
    let (h, m) = t
        .split_once(':')
        .ok_or_else(|| format!("time {t:?} is not HH:MM"))?;
    let h: u32 = h.parse().map_err(|_| format!("bad hour in {t:?}"))?;
    let m: u32 = m.parse().map_err(|_| format!("bad minute in {t:?}"))?;
    if h > 23 || m > 59 {
        return Err(format!("time {t:?} is out of range"));
    }
    Ok(h * 60 + m)
}

fn parse_rate(r: &str) -> Result<Rate, String> {
    let r = r.trim();
    if r.eq_ignore_ascii_case("off") {
        return Ok(Rate::Off);
    }
    let split = r
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(r.len());
    let (num, suffix) = r.split_at(split);
    let value: f64 = num.parse().map_err(|_| format!("bad rate {r:?}"))?;
    let unit = match suffix.to_ascii_lowercase().as_str() {
        "" | "k" | "kib" => 1024.0,
        "b" => 1.0,
        "kb" => 1000.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "mb" => 1e6,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "gb" => 1e9,
        _ => return Err(format!("unknown rate suffix {suffix:?} in {r:?}")),
    };
    let bytes = value * unit;
    if !bytes.is_finite() || bytes < 0.0 {
        return Err(format!("bad rate {r:?}"));
    }
    Ok(if bytes == 0.0 {
        Rate::Off
    } else {
        Rate::BytesPerSec(bytes.max(CELL as f64))
    })
}

/// The minute of the local day, for timetables.
pub fn local_minute() -> u32 {
    use chrono::Timelike;
    let now = chrono::Local::now();
    now.hour() * 60 + now.minute()
}

type Limiter = RateLimiter<governor::state::NotKeyed, governor::state::InMemoryState, DefaultClock>;

/// A writer that holds its output to a [`BwLimit`].
pub struct Throttled<W> {
    inner: W,
    limit: BwLimit,
    clock: Box<dyn Fn() -> u32 + Send>,
    current: Option<Active>,
    checked: Option<Instant>,
}

struct Active {
    rate: f64,
    limiter: Limiter,
    piece: usize,
    /// Bytes already paid for and not yet written.
    credit: u64,
}

impl<W> std::fmt::Debug for Throttled<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttled")
            .field("limit", &self.limit)
            .finish()
    }
}

impl<W: Write> Throttled<W> {
    /// Caps `inner` at `limit`, reading the local clock for timetables.
    pub fn new(inner: W, limit: BwLimit) -> Self {
        Throttled::with_clock(inner, limit, Box::new(local_minute))
    }

    /// As [`Throttled::new`], with the minute of the day from `clock` (tests).
    pub fn with_clock(inner: W, limit: BwLimit, clock: Box<dyn Fn() -> u32 + Send>) -> Self {
        Throttled {
            inner,
            limit,
            clock,
            current: None,
            checked: None,
        }
    }

    /// Picks up a timetable change, at most once a second.
    fn refresh(&mut self) {
        if self
            .checked
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.checked = Some(Instant::now());
        match self.limit.rate_at((self.clock)()) {
            Rate::Off => self.current = None,
            Rate::BytesPerSec(rate) => {
                if self.current.as_ref().is_some_and(|a| a.rate == rate) {
                    return;
                }
                // One piece is 25 ms of data, in whole cells.
                let cells_per_piece = ((rate / 40.0) / CELL as f64).floor().max(1.0) as u32;
                let burst = NonZeroU32::new(cells_per_piece).unwrap_or(NonZeroU32::MIN);
                let period = Duration::from_secs_f64(CELL as f64 / rate);
                let Some(quota) = Quota::with_period(period) else {
                    return;
                };
                self.current = Some(Active {
                    rate,
                    limiter: RateLimiter::direct(quota.allow_burst(burst)),
                    piece: cells_per_piece as usize * CELL as usize,
                    credit: 0,
                });
            }
        }
    }
}

impl<W: Write> Write for Throttled<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.refresh();
        let Some(active) = &mut self.current else {
            return self.inner.write(buf);
        };
        let n = buf.len().min(active.piece);
        while active.credit < n as u64 {
            let need = (n as u64 - active.credit).div_ceil(CELL) as u32;
            let cells = NonZeroU32::new(need).unwrap_or(NonZeroU32::MIN);
            match active.limiter.check_n(cells) {
                Ok(Ok(())) => active.credit += u64::from(need) * CELL,
                Ok(Err(not_until)) => {
                    std::thread::sleep(not_until.wait_time_from(DefaultClock::default().now()))
                }
                // Cannot happen: a piece never needs more cells than the burst.
                Err(_) => active.credit += u64::from(need) * CELL,
            }
        }
        let written = self.inner.write(&buf[..n])?;
        active.credit -= written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsync_rate_syntax() {
        let r = |s: &str| BwLimit::parse(s).unwrap().rate_at(0);
        assert_eq!(r("100"), Rate::BytesPerSec(102_400.0));
        assert_eq!(r("1.5K"), Rate::BytesPerSec(1536.0));
        assert_eq!(r("2M"), Rate::BytesPerSec(2_097_152.0));
        assert_eq!(r("2MB"), Rate::BytesPerSec(2_000_000.0));
        assert_eq!(r("1G"), Rate::BytesPerSec(1_073_741_824.0));
        assert_eq!(r("250KB"), Rate::BytesPerSec(250_000.0));
        assert_eq!(r("0"), Rate::Off);
        assert!(BwLimit::parse("fast").is_err());
        assert!(BwLimit::parse("10X").is_err());
    }

    #[test]
    fn timetable_picks_the_slot_in_force() {
        let t = BwLimit::parse("08:00,512K 18:00,off").unwrap();
        assert_eq!(
            t.rate_at(7 * 60 + 59),
            Rate::Off,
            "before 08:00 yesterday's 18:00 slot holds"
        );
        assert_eq!(t.rate_at(8 * 60), Rate::BytesPerSec(524_288.0));
        assert_eq!(t.rate_at(17 * 60 + 59), Rate::BytesPerSec(524_288.0));
        assert_eq!(t.rate_at(18 * 60), Rate::Off);
        assert!(BwLimit::parse("25:00,1M").is_err());
        assert!(BwLimit::parse("08:00").is_err());
    }

    /// Records when each write arrived.
    struct Stamps(Vec<(Instant, usize)>);
    impl Write for Stamps {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.push((Instant::now(), b.len()));
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn holds_the_rate_evenly() {
        let rate = 512.0 * 1024.0;
        let mut t = Throttled::new(Stamps(Vec::new()), BwLimit::parse("512K").unwrap());
        let start = Instant::now();
        let chunk = vec![0u8; 300_000];
        while start.elapsed() < Duration::from_millis(4200) {
            t.write_all(&chunk).unwrap();
        }
        let stamps = &t.inner.0;
        assert!(
            stamps.iter().all(|s| s.1 as f64 <= rate / 10.0 + 1.0),
            "a write carried over 100 ms of data"
        );
        // Every 1-second window starting after the first second.
        let mut from = start + Duration::from_secs(1);
        while from + Duration::from_secs(1) <= start + Duration::from_secs(4) {
            let bytes: usize = stamps
                .iter()
                .filter(|s| s.0 >= from && s.0 < from + Duration::from_secs(1))
                .map(|s| s.1)
                .sum();
            let ratio = bytes as f64 / rate;
            assert!(
                (0.95..=1.05).contains(&ratio),
                "window at {:?}: {ratio:.3} of the cap",
                from - start
            );
            from += Duration::from_millis(250);
        }
    }

    #[test]
    fn timetable_change_applies_mid_run() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU32, Ordering};
        let minute = Arc::new(AtomicU32::new(8 * 60));
        let m = minute.clone();
        let limit = BwLimit::parse("08:00,100K 18:00,off").unwrap();
        let mut t = Throttled::with_clock(
            Stamps(Vec::new()),
            limit,
            Box::new(move || m.load(Ordering::Relaxed)),
        );
        let start = Instant::now();
        t.write_all(&vec![0u8; 150 * 1024]).unwrap();
        assert!(
            start.elapsed() >= Duration::from_millis(1300),
            "capped at 100K/s while 08:00 holds"
        );
        minute.store(18 * 60, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(1100)); // the timetable is re-read once a second
        let start = Instant::now();
        t.write_all(&vec![0u8; 10 << 20]).unwrap();
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "uncapped after 18:00"
        );
    }
}
