//! `deltasync copy`: clap arguments in, a driver `CopyJob` out, and the
//! output rsync users expect: `-v` names, `-i` change codes, `--progress`
//! bars, `--stats` with rsync's closing lines, or one `--json` object.

use anyhow::Result;
use deltasync_driver::copy::{
    self, CopyJob, CopyOptions, CopySummary, Event, PlanOptions, Reporter,
};
use deltasync_driver::location::Location;

use crate::cli::CopyArgs;
use crate::console::{Console, group, out};

pub fn copy(args: &CopyArgs, m: &clap::ArgMatches) -> Result<()> {
    let mut filters = args.filters.clone();
    crate::filters::keep_typed_order(&mut filters, m);
    let excludes = crate::filters::agent_patterns(&filters)?;
    let job = CopyJob {
        src: Location::parse(&args.src).map_err(anyhow::Error::msg)?,
        dst: Location::parse(&args.dst).map_err(anyhow::Error::msg)?,
        options: CopyOptions {
            plan: PlanOptions {
                delete: args.delete,
                checksum: args.checksum,
                owner: keeps_owner(&args.attrs, args.archive),
                numeric_ids: args.attrs.numeric_ids,
                xattrs: args.attrs.xattrs || args.attrs.acls,
                hard_links: args.attrs.hard_links,
                fuzzy: args.fuzzy,
            },
            dry_run: args.dry_run,
            whole_file: args.whole_file,
            sparse: args.attrs.sparse,
            excludes,
            ..CopyOptions::default()
        },
        connect: crate::connect::connect_options(&args.ssh, &args.transfer)?,
    };
    let mut out = Output::new(args);
    let (summary, result) = copy::copy(&job, &mut out);
    out.finish(&summary, result.as_ref().err().map(|e| e.to_string()));
    result?;
    Ok(())
}

/// Whether owners and groups are kept: asked for with -o/-g, or implied
/// by archive mode when we run as root (rsync's rule), unless --no-owner.
pub fn keeps_owner(a: &crate::cli::AttrArgs, archive: bool) -> bool {
    !a.no_owner && (a.owner || a.group || (archive && deltasync_driver::running_as_root()))
}

/// Renders copy events for people (or machines, with --json).
struct Output {
    itemize: bool,
    verbose: bool,
    stats: bool,
    console: Console,
}

impl Output {
    fn new(args: &CopyArgs) -> Output {
        Output {
            itemize: args.itemize || args.dry_run,
            verbose: args.verbose,
            stats: args.stats,
            console: Console::new(
                args.quiet,
                args.json,
                args.progress || args.partial_progress,
            ),
        }
    }

    fn finish(&mut self, s: &CopySummary, error: Option<String>) {
        self.console.finish();
        if self.console.json {
            let v = serde_json::json!({
                "ok": error.is_none(),
                "error": error,
                "dry_run": s.dry_run,
                "files": s.files,
                "transferred": s.transferred,
                "transferred_size": s.transferred_size,
                "total_size": s.total_size,
                "literal_bytes": s.literal,
                "matched_bytes": s.matched,
                "deleted": s.deleted,
                "sent_bytes": s.sent,
                "received_bytes": s.received,
                "elapsed_secs": s.elapsed.as_secs_f64(),
                "failed": s.failed,
                "vanished": s.vanished,
            });
            out!("{v}");
            return;
        }
        if self.stats {
            out!();
            out!("Number of files: {}", group(s.files));
            out!(
                "Number of regular files transferred: {}",
                group(s.transferred)
            );
            out!("Number of deleted files: {}", group(s.deleted));
            out!("Total file size: {} bytes", group(s.total_size));
            out!(
                "Total transferred file size: {} bytes",
                group(s.transferred_size)
            );
            out!("Literal data: {} bytes", group(s.literal));
            out!("Matched data: {} bytes", group(s.matched));
            out!("Total bytes sent: {}", group(s.sent));
            out!("Total bytes received: {}", group(s.received));
        }
        if self.stats || self.verbose {
            let secs = s.elapsed.as_secs_f64().max(1e-3);
            let rate = (s.sent + s.received) as f64 / secs;
            let moved = (s.sent + s.received).max(1);
            out!();
            out!(
                "sent {} bytes  received {} bytes  {} bytes/sec",
                group(s.sent),
                group(s.received),
                group_f(rate)
            );
            let dry = if s.dry_run { " (DRY RUN)" } else { "" };
            out!(
                "total size is {}  speedup is {:.2}{dry}",
                group(s.total_size),
                s.total_size as f64 / moved as f64
            );
        }
    }
}

impl Reporter for Output {
    fn event(&mut self, e: Event<'_>) {
        match e {
            Event::Planned {
                bytes, transfers, ..
            } => self.console.planned(transfers, bytes),
            Event::Item { line, path } => {
                if self.itemize {
                    self.console.say(line);
                } else if self.verbose {
                    self.console.say(&path.display());
                }
                self.console.file_done();
            }
            Event::Progress { path, done, total } => {
                self.console.progress(&path.display(), done, total)
            }
            Event::Warning(w) => self.console.warn(w),
        }
    }
}

fn group_f(x: f64) -> String {
    format!(
        "{}.{:02}",
        group(x as u64),
        ((x.fract() * 100.0) as u64).min(99)
    )
}
