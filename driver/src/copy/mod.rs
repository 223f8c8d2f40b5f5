//! `deltasync copy SRC DST`: one-way, rsync-like.
//!
//! 1. Start a read-only agent on the source side, rooted so that the
//!    trailing-slash rule works: `src/` copies the contents of `src`, `src`
//!    copies the directory itself (rooted at its parent, listing `src`).
//! 2. List the source; start the destination agent; list the destination.
//! 3. [`plan`] the difference (pure); print it for `--dry-run`, or
//!    [`execute`](crate::exec::execute) it through the two agents.
//!
//! Both sides may be local or remote; a local side is a child `serve`.

mod listing;
pub mod plan;

use std::time::{Duration, Instant};

use deltasync_wire::{Code, EntryKind, Expect, ListWants};

use crate::client::{self, Agent, AgentSpec, ConnectOptions};
use crate::error::DriverError;
use crate::exec::{self, ExecOptions, Observer, Op, Outcome};
use crate::location::Location;
use crate::path::RelPath;
pub use plan::{Item, Itemize, Plan, PlanOptions, Step};

/// What a copy should do.
#[derive(Clone, Debug)]
pub struct CopyOptions {
    /// Planning choices (`--delete`, `--checksum`).
    pub plan: PlanOptions,
    /// Only print what would be done.
    pub dry_run: bool,
    /// Send whole files, no delta.
    pub whole_file: bool,
    /// Write runs of zeros as holes (`-S`).
    pub sparse: bool,
    /// `--exclude` patterns (gitignore syntax).
    pub excludes: Vec<String>,
    /// Files in flight at once.
    pub window: usize,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            plan: PlanOptions::default(),
            dry_run: false,
            whole_file: false,
            sparse: false,
            excludes: Vec::new(),
            window: 1024,
        }
    }
}

/// A copy to run.
#[derive(Clone, Debug)]
pub struct CopyJob {
    /// Where from.
    pub src: Location,
    /// Where to.
    pub dst: Location,
    /// How.
    pub options: CopyOptions,
    /// How to reach the agents.
    pub connect: ConnectOptions,
}

/// Something worth telling the user while a copy runs.
#[derive(Debug)]
pub enum Event<'a> {
    /// The plan is made.
    Planned {
        /// Actions to run.
        actions: usize,
        /// Files to transfer.
        transfers: usize,
        /// Bytes of those files.
        bytes: u64,
    },
    /// An action completed: its rsync `-i` line.
    Item {
        /// The itemized line.
        line: &'a str,
        /// The destination path.
        path: &'a RelPath,
    },
    /// Delta bytes of a file sent so far.
    Progress {
        /// The destination path.
        path: &'a RelPath,
        /// Delta bytes sent.
        done: u64,
        /// The file's size.
        total: u64,
    },
    /// A file failed or needed a retry.
    Warning(&'a str),
}

/// Receives [`Event`]s; the CLI renders them.
pub trait Reporter: Send {
    /// Handles one event.
    fn event(&mut self, e: Event<'_>);
}

/// Reports a plan of `actions` steps whose transfers have these sizes.
pub(crate) fn report_planned(
    reporter: &mut dyn Reporter,
    actions: usize,
    sizes: impl Iterator<Item = u64>,
) {
    let (transfers, bytes) = sizes.fold((0, 0), |(n, b), s| (n + 1, b + s));
    reporter.event(Event::Planned {
        actions,
        transfers,
        bytes,
    });
}

/// What a copy did.
#[derive(Clone, Debug, Default)]
pub struct CopySummary {
    /// Source entries considered.
    pub files: u64,
    /// Files whose contents were sent.
    pub transferred: u64,
    /// Bytes in those files.
    pub transferred_size: u64,
    /// Bytes in all source files.
    pub total_size: u64,
    /// Bytes sent as literal data.
    pub literal: u64,
    /// Bytes reproduced from the old files (or kept prefixes).
    pub matched: u64,
    /// Entries deleted.
    pub deleted: u64,
    /// Bytes written to the network (or pipes, for a local copy).
    pub sent: u64,
    /// Bytes read from it.
    pub received: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Paths that failed.
    pub failed: Vec<String>,
    /// Source paths that vanished.
    pub vanished: Vec<String>,
    /// Nothing was changed.
    pub dry_run: bool,
}

/// Runs a copy. Per-file failures end in `DriverError::Partial` with the
/// summary's lists filled; the summary is returned alongside.
pub fn copy(job: &CopyJob, reporter: &mut dyn Reporter) -> (CopySummary, Result<(), DriverError>) {
    let started = Instant::now();
    let mut summary = CopySummary {
        dry_run: job.options.dry_run,
        ..CopySummary::default()
    };
    let mut agents = Vec::new();
    let result = run(job, reporter, &mut summary, &mut agents);
    // Count bytes on remote links when there are any, else on the pipes.
    let any_remote = agents.iter().any(|a| a.remote);
    for a in agents.iter().filter(|a| a.remote || !any_remote) {
        summary.sent += a.stats.sent.load(std::sync::atomic::Ordering::Relaxed);
        summary.received += a.stats.received.load(std::sync::atomic::Ordering::Relaxed);
    }
    let closed: Result<(), DriverError> = if result.is_ok() {
        agents.into_iter().try_for_each(Agent::close)
    } else {
        agents.into_iter().for_each(Agent::kill);
        Ok(())
    };
    summary.elapsed = started.elapsed();
    let mut result = result.and(closed);
    if result.is_ok() && !(summary.failed.is_empty() && summary.vanished.is_empty()) {
        result = Err(DriverError::Partial {
            failed: summary.failed.len(),
            vanished: summary.vanished.len(),
        });
    }
    (summary, result)
}

/// Splits a path argument into (root to serve, entry under it to copy).
fn split_root(text: &str, contents: bool) -> (String, RelPath) {
    if contents {
        return (
            if text.is_empty() {
                ".".into()
            } else {
                text.to_string()
            },
            RelPath::root(),
        );
    }
    let trimmed = text.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some((parent, name)) => {
            let parent = if parent.is_empty() { "/" } else { parent };
            (
                parent.to_string(),
                RelPath::parse(name.as_bytes()).unwrap_or_default(),
            )
        }
        None => (
            ".".into(),
            RelPath::parse(trimmed.as_bytes()).unwrap_or_default(),
        ),
    }
}

fn run(
    job: &CopyJob,
    reporter: &mut dyn Reporter,
    summary: &mut CopySummary,
    agents: &mut Vec<Agent>,
) -> Result<(), DriverError> {
    let o = &job.options;
    let src_text = job.src.path_text();
    let (src_root, from) = split_root(&src_text, job.src.trailing_slash());
    if !job.src.trailing_slash() && from.is_root() {
        return Err(DriverError::Usage(format!(
            "cannot copy {src_text:?}: add a trailing slash to copy its contents"
        )));
    }
    agents.push(client::open(
        &job.src,
        &AgentSpec {
            root: src_root,
            read_only: true,
            mkdir: false,
        },
        &job.connect,
        true,
    )?);
    let src_entries = listing::list("source", &agents[0], &from, &o.excludes, wants(o), reporter)?
        .count_unlisted(summary);
    let single_file = !from.is_root()
        && src_entries
            .first()
            .is_some_and(|e| e.kind == EntryKind::File);

    // Where it lands: a tree goes into DST (made if missing); a single file
    // goes into DST if that is a directory, else becomes DST.
    let dst_text = job.dst.path_text();
    let (dst_spec, mut to) = if !single_file || job.dst.trailing_slash() {
        let root = if dst_text.is_empty() {
            ".".to_string()
        } else {
            dst_text.clone()
        };
        (
            AgentSpec {
                root,
                read_only: o.dry_run,
                mkdir: !o.dry_run,
            },
            from.clone(),
        )
    } else {
        let (root, name) = split_root(&dst_text, false);
        (
            AgentSpec {
                root,
                read_only: o.dry_run,
                mkdir: false,
            },
            name,
        )
    };
    if !single_file && !job.src.trailing_slash() {
        to = from.clone();
    } else if !single_file {
        to = RelPath::root();
    }
    agents.push(client::open(&job.dst, &dst_spec, &job.connect, false)?);
    let dst = &agents[1];
    let mut dst_entries =
        listing::list_or_empty("destination", dst, &to, &o.excludes, wants(o), reporter)?
            .count_unlisted(summary);
    if single_file
        && !job.dst.trailing_slash()
        && dst_entries
            .first()
            .is_some_and(|e| e.kind == EntryKind::Dir)
    {
        to = to.join(from.file_name());
        dst_entries =
            listing::list_or_empty("destination", dst, &to, &o.excludes, wants(o), reporter)?
                .count_unlisted(summary);
    }

    let direction = if job.dst_is_remote() { '<' } else { '>' };
    let plan = plan::plan(&src_entries, &dst_entries, &from, &to, o.plan, direction);
    summary.files = plan.files;
    summary.total_size = plan.total_size;
    let sizes = plan.steps.iter().filter_map(|s| match &s.op {
        Op::Transfer { size, .. } => Some(*size),
        _ => None,
    });
    report_planned(reporter, plan.steps.len(), sizes);
    if o.dry_run {
        for s in &plan.steps {
            if let Some(line) = plan::itemize_line(s) {
                reporter.event(Event::Item {
                    line: &line,
                    path: s.op.path(),
                });
            }
        }
        return Ok(());
    }
    let ops: Vec<Op> = plan.steps.iter().map(|s| s.op.clone()).collect();
    let mut watch = Watch {
        plan: &plan,
        summary,
        reporter,
    };
    exec::execute(
        &ops,
        &agents[0],
        &agents[1],
        &ExecOptions {
            whole_file: o.whole_file,
            sparse: o.sparse,
            window: o.window,
            ..ExecOptions::default()
        },
        &mut watch,
    )
}

/// Turns the executor's outcomes into the copy's lines and counts.
struct Watch<'a> {
    plan: &'a Plan,
    summary: &'a mut CopySummary,
    reporter: &'a mut dyn Reporter,
}

impl Observer for Watch<'_> {
    fn outcome(&mut self, index: usize, op: &Op, outcome: &Outcome) {
        let step = &self.plan.steps[index];
        match outcome {
            Outcome::Done | Outcome::Sent(_) => {
                if let Outcome::Sent(sent) = outcome {
                    self.summary.transferred += 1;
                    self.summary.literal += sent.literal;
                    self.summary.matched += sent.matched;
                    self.summary.transferred_size += sent.stat.size;
                }
                if matches!(op, Op::Remove { .. }) {
                    self.summary.deleted += 1;
                }
                if let Some(line) = plan::itemize_line(step) {
                    self.reporter.event(Event::Item {
                        line: &line,
                        path: op.path(),
                    });
                }
            }
            // A folder that still holds excluded entries stays, as rsync
            // keeps it: a warning, not a failure.
            Outcome::Failed {
                code: Code::Changed,
                ..
            } if matches!(
                op,
                Op::Remove {
                    expect: Expect::EmptyDir,
                    ..
                }
            ) => {}
            Outcome::Failed {
                code: Code::Vanished,
                ..
            } if matches!(op, Op::Transfer { .. }) => {
                if let Op::Transfer { src, .. } = op {
                    self.summary.vanished.push(src.display());
                }
            }
            Outcome::Failed { .. } => self.summary.failed.push(op.path().display()),
        }
    }

    fn progress(&mut self, path: &RelPath, done: u64, total: u64) {
        self.reporter.event(Event::Progress { path, done, total });
    }

    fn warning(&mut self, text: &str) {
        self.reporter.event(Event::Warning(text));
    }
}

impl CopyJob {
    fn dst_is_remote(&self) -> bool {
        matches!(self.dst, Location::Remote(_))
    }
}

/// What a copy asks of every listing.
fn wants(o: &CopyOptions) -> ListWants {
    ListWants {
        checksum: o.plan.checksum,
        owner: o.plan.owner,
        hard_links: o.plan.hard_links,
        xattrs: o.plan.xattrs,
        acls: o.plan.xattrs,
    }
}
