//! `deltasync sync` and `deltasync reset`: clap arguments in, a driver
//! `SyncJob` out; one line per change, a closing summary, `--progress`
//! bars or one `--json` object.

use std::time::Duration;

use anyhow::Result;
use clap::ArgMatches;
use deltasync_driver::DriverError;
use deltasync_driver::copy::{Event, Reporter};
use deltasync_driver::location::Location;
use deltasync_driver::sync::space::MinFree;
use deltasync_driver::sync::{
    self, ConflictPolicy, RunOptions, Side, SyncJob, SyncOptions, SyncSummary,
};

use crate::cli::{ConflictArg, EmptyDirsArg, ResetArgs, SideArg, SyncArgs, SyncOpts};
use crate::console::{Console, group, out};

/// `deltasync sync A B`: the command line over the environment; hooks and
/// alerts as for a config pair.
pub fn sync(args: &SyncArgs, m: &ArgMatches) -> Result<()> {
    let keys = crate::config::keys::all();
    let mut r = crate::config::Resolved::default();
    r.layer(crate::config::env_layer(&keys).map_err(DriverError::Usage)?);
    r.layer(crate::config::cli_layer(&keys, m));
    let opts = r.opts().map_err(DriverError::Usage)?;
    let spec = crate::pair::PairSpec {
        name: String::new(),
        a: args.a.clone(),
        b: args.b.clone(),
        opts,
    };
    let o = &spec.opts;
    let mut out = Output {
        console: Console::new(o.quiet, o.json, o.progress),
    };
    let done = crate::pair::run_pair(&spec, &mut out, None);
    crate::alerts::settle(&spec, &done);
    out.finish(&done.summary, done.error.clone());
    match done.failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Checks what can be checked of `o` before a run: durations, rates,
/// ranges. Nothing is read or started.
pub fn check(o: &SyncOpts) -> Result<(), DriverError> {
    options(o).map(|_| ())?;
    crate::connect::check(&o.ssh, &o.transfer)?;
    duration("--hook-timeout", &o.unattended.hook_timeout)?;
    if let Some(k) = &o.unattended.keep_logging {
        duration("--keep-logging", k)?;
    }
    Ok(())
}

/// A duration flag's value, or a usage error naming the flag.
pub fn duration(flag: &str, text: &str) -> Result<Duration, DriverError> {
    parse_duration(text).map_err(|e| DriverError::Usage(format!("{flag}: {e}")))
}

/// The driver's plan and run options for `o`, excludes still unread.
fn options(o: &SyncOpts) -> Result<(SyncOptions, RunOptions), DriverError> {
    let side = |s: SideArg| if s == SideArg::A { Side::A } else { Side::B };
    let plan = SyncOptions {
        conflict: match o.conflict {
            ConflictArg::Newest => ConflictPolicy::Newest,
            ConflictArg::KeepBoth => ConflictPolicy::KeepBoth,
            ConflictArg::PreferA => ConflictPolicy::PreferA,
            ConflictArg::PreferB => ConflictPolicy::PreferB,
            ConflictArg::Skip => ConflictPolicy::Skip,
        },
        prefer: side(o.prefer),
        skip_deletion_a: o.skip_deletion.contains(&SideArg::A),
        skip_deletion_b: o.skip_deletion.contains(&SideArg::B),
        soft_delete: !o.no_soft_delete,
        remove_empty_dirs: o.empty_dirs == EmptyDirsArg::Remove,
        stamp: sync::stamp_now(),
        owner: crate::copy::keeps_owner(&o.attrs, true),
        numeric_ids: o.attrs.numeric_ids,
        xattrs: o.attrs.xattrs || o.attrs.acls,
        hard_links: o.attrs.hard_links,
        fuzzy: o.fuzzy,
    };
    let max_time = match &o.max_time {
        Some(text) => Some(duration("--max-time", text)?),
        None => None,
    };
    if o.max_delete > 100 {
        return Err(DriverError::Usage(format!(
            "--max-delete is a percentage (0 to 100), not {}",
            o.max_delete
        )));
    }
    let min_free = match &o.unattended.min_free_space {
        Some(t) => Some(
            MinFree::parse(t).map_err(|e| DriverError::Usage(format!("--min-free-space: {e}")))?,
        ),
        None => None,
    };
    let run = RunOptions {
        dry_run: o.dry_run,
        checksum: o.checksum,
        ignore_hidden: o.ignore_hidden,
        max_delete_pct: o.max_delete,
        force: o.force,
        allow_empty: o.allow_empty,
        force_unlock: o.force_unlock,
        max_time,
        retention_days: o.retention_days,
        state_dir: o.state_dir.clone(),
        sparse: o.attrs.sparse,
        min_free,
        ..RunOptions::default()
    };
    Ok((plan, run))
}

/// The driver's job for replicas `a` and `b` with options `o`.
pub fn job(o: &SyncOpts, a: &str, b: &str) -> Result<SyncJob> {
    let (plan, mut run) = options(o)?;
    run.excludes = crate::filters::agent_patterns(&o.filters)?;
    Ok(SyncJob {
        a: Location::parse(a).map_err(|e| DriverError::Usage(format!("A: {e}")))?,
        b: Location::parse(b).map_err(|e| DriverError::Usage(format!("B: {e}")))?,
        plan,
        run,
        connect: crate::connect::connect_options(&o.ssh, &o.transfer)?,
    })
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

/// `90` (seconds), `500ms`, `90s`, `30m`, `2h`, `1h30m`, `1d` (humantime).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let d = match text.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(text).map_err(|e| {
            format!("{text:?}: {e} (use a number of seconds, or units: 500ms, 90s, 30m, 1h30m, 2d)")
        })?,
    };
    if d.is_zero() {
        return Err(format!("{text:?}: must be more than zero"));
    }
    Ok(d)
}

/// A run in one line: for `run`'s summary, hooks and alerts.
pub fn one_line(s: &SyncSummary, error: Option<&str>) -> String {
    let what = format!(
        "copied {} a->b, {} b->a; moved {}; deleted {}; conflicts {}; sent {} bytes in {:.1} s",
        s.copied_ab,
        s.copied_ba,
        s.moved,
        s.deleted + s.soft_deleted,
        s.conflicts,
        s.sent,
        s.elapsed.as_secs_f64()
    );
    match error {
        Some(e) => format!("failed: {e} ({what})"),
        None if s.dry_run => format!("ok (dry run): {what}"),
        None => format!("ok: {what}"),
    }
}

/// The `--json` object of a run.
pub fn json(s: &SyncSummary, error: Option<&str>) -> serde_json::Value {
    serde_json::json!({
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
    })
}

/// Renders sync events for people (or machines, with --json).
pub struct Output {
    pub console: Console,
}

impl Output {
    pub fn finish(&mut self, s: &SyncSummary, error: Option<String>) {
        self.console.finish();
        if self.console.json {
            out!("{}", json(s, error.as_deref()));
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
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
    }
}
