//! What copy and sync share on the terminal: lines that step around a
//! progress bar, warnings on stderr, the bar itself, and rsync's number
//! format.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// `println!` that never panics: once stdout is gone (`deltasync … | head -1`
/// closed the pipe), later lines are dropped and the run goes on quietly, so a
/// closed reader never leaves a sync half done.
macro_rules! out {
    () => {
        $crate::console::out_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::console::out_line(format_args!($($arg)*))
    };
}
pub(crate) use out;

/// Set once a write to stdout has failed.
static STDOUT_GONE: AtomicBool = AtomicBool::new(false);

/// One line on stdout, unless stdout has gone away (see [`out!`]).
pub fn out_line(line: std::fmt::Arguments) {
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        STDOUT_GONE.store(true, Ordering::Relaxed);
    }
}

/// Human output: change lines on stdout, warnings on stderr, an optional
/// bar (indicatif) that both print around.
pub struct Console {
    /// Print nothing but warnings and errors.
    pub quiet: bool,
    /// `--json`: stdout carries only the final object.
    pub json: bool,
    bar: Option<ProgressBar>,
    /// Bytes of the current file already counted on the bar.
    done_of_file: u64,
    /// `--keep-logging`: a progress line this often, and when the last was.
    keep_logging: Option<(std::time::Duration, std::time::Instant)>,
    /// Bytes through so far, and planned, for those lines.
    done: u64,
    total: u64,
}

impl Console {
    /// A console; `progress` asks for a bar (dropped under `quiet` or `json`).
    pub fn new(quiet: bool, json: bool, progress: bool) -> Console {
        Console {
            quiet,
            json,
            // Bars only for a person watching: stdout and stderr are terminals.
            bar: (progress && !json && !quiet && std::io::stdout().is_terminal())
                .then(ProgressBar::hidden),
            done_of_file: 0,
            keep_logging: None,
            done: 0,
            total: 0,
        }
    }

    /// Logs a progress line every `every` during long work.
    pub fn keep_logging(&mut self, every: std::time::Duration) {
        self.keep_logging = Some((every, std::time::Instant::now()));
    }

    /// A line on stdout (unless quiet or JSON).
    pub fn say(&self, line: &str) {
        tracing::info!("{line}");
        if self.json || self.quiet {
            return;
        }
        // A bar that is not drawn (stderr is no terminal) prints nothing.
        match self.bar.as_ref().filter(|b| !b.is_hidden()) {
            Some(b) => b.println(line),
            None => out!("{line}"),
        }
    }

    /// A warning on stderr, always.
    pub fn warn(&self, w: &str) {
        tracing::warn!("{w}");
        match self.bar.as_ref().filter(|b| !b.is_hidden()) {
            Some(b) => b.println(format!("deltasync: {w}")),
            None => eprintln!("deltasync: {w}"),
        }
    }

    /// The plan is known: show the bar for `bytes` in `transfers` files.
    pub fn planned(&mut self, transfers: usize, bytes: u64) {
        self.total = bytes;
        tracing::info!(
            "planned: {transfers} file(s) to send, {} bytes",
            group(bytes)
        );
        if let Some(b) = &self.bar {
            b.set_draw_target(ProgressDrawTarget::stderr());
            b.set_length(bytes);
            b.set_style(
                ProgressStyle::with_template(
                    "{msg}\n{bytes}/{total_bytes} {bar:30} {bytes_per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b.set_message(format!("{transfers} file(s) to send"));
        }
    }

    /// `done` of `total` bytes of the file `name` are through.
    pub fn progress(&mut self, name: &str, done: u64, total: u64) {
        let step = done.saturating_sub(self.done_of_file).min(total);
        self.done = self.done.saturating_add(step);
        self.done_of_file = done;
        if let Some((every, last)) = &mut self.keep_logging {
            if last.elapsed() >= *every {
                *last = std::time::Instant::now();
                let line = format!(
                    "progress: {} of {} bytes; now {name}",
                    group(self.done),
                    group(self.total)
                );
                tracing::info!("{line}");
                if self.bar.is_none() && !self.quiet && !self.json {
                    eprintln!("deltasync: {line}");
                }
            }
        }
        if let Some(b) = &self.bar {
            b.inc(step);
            let pct = (done * 100).checked_div(total).unwrap_or(100).min(100);
            b.set_message(format!("{name}  {pct}%"));
        }
    }

    /// A file is finished: the next progress counts from zero.
    pub fn file_done(&mut self) {
        self.done_of_file = 0;
    }

    /// Clears the bar before the closing lines.
    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

/// 1234567 as "1,234,567", as rsync prints.
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
