//! `deltasync sync` and `deltasync reset`: clap arguments in, a driver
//! `SyncJob` out; one line per change, a closing summary, `--progress`
//! bars or one `--json` object.

use std::time::Duration;

use anyhow::{Result, bail};
use deltasync_driver::DriverError;
use deltasync_driver::copy::{Event, Reporter};
use deltasync_driver::location::Location;
use deltasync_driver::sync::{
    self, ConflictPolicy, RunOptions, Side, SyncJob, SyncOptions, SyncSummary,
};

use crate::cli::{ConflictArg, EmptyDirsArg, ResetArgs, SideArg, SyncArgs};
use crate::console::{Console, group, out};
use crate::copy::read_excludes;

pub fn sync(args: &SyncArgs) -> Result<()> {
    let side = |s: SideArg| if s == SideArg::A { Side::A } else { Side::B };
    let plan = SyncOptions {
        conflict: match args.conflict {
            ConflictArg::Newest => ConflictPolicy::Newest,
            ConflictArg::KeepBoth => ConflictPolicy::KeepBoth,
            ConflictArg::PreferA => ConflictPolicy::PreferA,
            ConflictArg::PreferB => ConflictPolicy::PreferB,
            ConflictArg::Skip => ConflictPolicy::Skip,
        },
        prefer: side(args.prefer),
        skip_deletion_a: args.skip_deletion.contains(&SideArg::A),
        skip_deletion_b: args.skip_deletion.contains(&SideArg::B),
        soft_delete: !args.no_soft_delete,
        remove_empty_dirs: args.empty_dirs == EmptyDirsArg::Remove,
        stamp: sync::stamp_now(),
        owner: crate::copy::keeps_owner(&args.attrs, true),
        numeric_ids: args.attrs.numeric_ids,
        xattrs: args.attrs.xattrs || args.attrs.acls,
        hard_links: args.attrs.hard_links,
    };
    let max_time = match &args.max_time {
        Some(text) => {
            Some(parse_duration(text).map_err(|e| DriverError::Usage(format!("--max-time: {e}")))?)
        }
        None => None,
    };
    if args.max_delete > 100 {
        bail!(DriverError::Usage(format!(
            "--max-delete is a percentage (0 to 100), not {}",
            args.max_delete
        )));
    }
    let run = RunOptions {
        dry_run: args.dry_run,
        checksum: args.checksum,
        excludes: read_excludes(&args.exclude, &args.exclude_from)?,
        ignore_hidden: args.ignore_hidden,
        max_delete_pct: args.max_delete,
        force: args.force,
        allow_empty: args.allow_empty,
        force_unlock: args.force_unlock,
        max_time,
        retention_days: args.retention_days,
        state_dir: args.state_dir.clone(),
        sparse: args.attrs.sparse,
        ..RunOptions::default()
    };
    let job = SyncJob {
        a: Location::parse(&args.a).map_err(|e| DriverError::Usage(format!("A: {e}")))?,
        b: Location::parse(&args.b).map_err(|e| DriverError::Usage(format!("B: {e}")))?,
        plan,
        run,
        connect: crate::connect::connect_options(&args.ssh, &args.transfer)?,
    };
    let mut out = Output {
        console: Console::new(args.quiet, args.json, args.progress),
    };
    let (summary, result) = sync::sync(&job, &mut out);
    out.finish(&summary, result.as_ref().err().map(|e| e.to_string()));
    result?;
    Ok(())
}

pub fn reset(args: &ResetArgs) -> Result<()> {
    let a = Location::parse(&args.a).map_err(|e| DriverError::Usage(format!("A: {e}")))?;
    let b = Location::parse(&args.b).map_err(|e| DriverError::Usage(format!("B: {e}")))?;
    let connect = crate::connect::connect_options(&args.ssh, &args.transfer)?;
    let path = sync::reset(&a, &b, args.state_dir.as_deref(), &connect)?;
    out!(
        "forgot the pair's state ({}); the next sync is a first sync",
        path.display()
    );
    Ok(())
}

/// `90`, `90s`, `30m`, `2h`, `1h30m`, `1d`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => {
                return Err(format!(
                    "{text:?}: unknown unit {c:?} (use s, m, h or d, e.g. 90s, 30m, 1h30m)"
                ));
            }
        };
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("{text:?}: a number must come before {c:?}"))?;
        total = total.saturating_add(n.saturating_mul(unit));
        digits.clear();
    }
    if !digits.is_empty() {
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("{text:?}: not a number"))?;
        total = total.saturating_add(n);
    }
    if total == 0 {
        return Err(format!("{text:?}: the budget must be at least one second"));
    }
    Ok(Duration::from_secs(total))
}

/// Renders sync events for people (or machines, with --json).
struct Output {
    console: Console,
}

impl Output {
    fn finish(&mut self, s: &SyncSummary, error: Option<String>) {
        self.console.finish();
        if self.console.json {
            let v = serde_json::json!({
                "ok": error.is_none(),
                "error": error,
                "dry_run": s.dry_run,
                "changes": s.lines,
                "copied_a_to_b": s.copied_ab,
                "copied_b_to_a": s.copied_ba,
                "moved": s.moved,
                "deleted": s.deleted,
                "soft_deleted": s.soft_deleted,
                "conflicts": s.conflicts,
                "conflicts_skipped": s.conflicts_skipped,
                "sent_bytes": s.sent,
                "received_bytes": s.received,
                "literal_bytes": s.literal,
                "matched_bytes": s.matched,
                "elapsed_secs": s.elapsed.as_secs_f64(),
                "failed": s.failed,
                "state": s.state_path.display().to_string(),
            });
            out!("{v}");
            return;
        }
        if self.console.quiet {
            return;
        }
        let dry = if s.dry_run { " (DRY RUN)" } else { "" };
        out!(
            "copied {} a->b, {} b->a; moved {}; deleted {} ({} soft); conflicts {} settled, {} skipped{dry}",
            group(s.copied_ab),
            group(s.copied_ba),
            group(s.moved),
            group(s.deleted + s.soft_deleted),
            group(s.soft_deleted),
            group(s.conflicts),
            group(s.conflicts_skipped),
        );
        out!(
            "sent {} bytes  received {} bytes  literal {} bytes  matched {} bytes  in {:.2} s",
            group(s.sent),
            group(s.received),
            group(s.literal),
            group(s.matched),
            s.elapsed.as_secs_f64()
        );
    }
}

impl Reporter for Output {
    fn event(&mut self, e: Event<'_>) {
        match e {
            Event::Planned {
                bytes, transfers, ..
            } => self.console.planned(transfers, bytes),
            Event::Item { line, .. } => {
                self.console.say(line);
                self.console.file_done();
            }
            Event::Progress { path, done, total } => {
                self.console.progress(&path.display(), done, total)
            }
            Event::Warning(w) => self.console.warn(w),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("0s").is_err());
    }
}
