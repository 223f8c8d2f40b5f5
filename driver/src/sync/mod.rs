//! `deltasync sync A B`: two-way sync with a state database.
//!
//! A run:
//!
//! 1. opens the pair's state database and starts an agent on each side
//!    (a child `serve` for a local side, SSH for a remote one);
//! 2. takes both replicas' locks, and checks their replica ids against
//!    the state (a swapped disk or a wrong path is a safety stop);
//! 3. lists both sides, each in one stream (or, when nothing changed
//!    since the last sync, just a digest of it), and hashes only the files
//!    whose size or mtime moved;
//! 4. [`plan`](plan::plan)s, pure; checks the safety stops; prints the
//!    plan for `--dry-run`;
//! 5. applies it in two phases per side (moves and stashes, then
//!    creations and transfers), through the executor copy uses too,
//!    committing each change's state as soon as all its steps are done
//!    (and journaling them before), so a run killed at any point converges
//!    and the user's next edit is never taken for a conflict;
//! 6. records each changed side's listing digest, purges old stashed
//!    versions, and releases the locks.

mod apply;
mod pair;
pub mod plan;
mod replicas;
mod run;
mod scoped;
mod session;
pub mod space;

use std::path::PathBuf;
use std::time::Duration;

pub use pair::{pair_id, reset, state_path};
pub use plan::{ConflictPolicy, Side, Step, SyncOptions};
pub(crate) use run::what_to_list;
pub(crate) use session::partial;
pub use session::{Scope, Session, sync};

use crate::client::ConnectOptions;
use crate::location::Location;

/// Local time as `YYYYmmdd-HHMMSS`: the stamp in keep-both names.
pub fn stamp_now() -> String {
    chrono::Local::now().format("%Y%m%d-%H%M%S").to_string()
}

/// How a run behaves, beyond the plan's choices.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Print the plan; change nothing.
    pub dry_run: bool,
    /// Hash every file, not only those whose size or mtime moved.
    pub checksum: bool,
    /// `--exclude` patterns (gitignore syntax); excluded paths are never deleted.
    pub excludes: Vec<String>,
    /// Leave dotfiles alone.
    pub ignore_hidden: bool,
    /// Stop if a side would lose more than this percentage of its files.
    pub max_delete_pct: u32,
    /// Override `max_delete_pct`.
    pub force: bool,
    /// Override the emptied-replica stop.
    pub allow_empty: bool,
    /// Take locks even if held.
    pub force_unlock: bool,
    /// Stop cleanly after this long.
    pub max_time: Option<Duration>,
    /// Purge stashed versions older than this many days (0: keep forever).
    pub retention_days: u32,
    /// Where the state database lives (default: `A/.deltasync/state/`).
    pub state_dir: Option<PathBuf>,
    /// Files in flight at once.
    pub window: usize,
    /// Write runs of zeros as holes (`-S`).
    pub sparse: bool,
    /// For tests: stop committing state after this many commits, as if
    /// the process were killed between applying changes and recording them.
    pub commit_limit: Option<usize>,
    /// Stop (exit 54) unless each side keeps this much free after writing.
    pub min_free: Option<space::MinFree>,
    /// Set by a signal: the transfers in flight are parked and the pass
    /// ends with `DriverError::Interrupted`.
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            dry_run: false,
            checksum: false,
            excludes: Vec::new(),
            ignore_hidden: false,
            max_delete_pct: 50,
            force: false,
            allow_empty: false,
            force_unlock: false,
            max_time: None,
            retention_days: 30,
            state_dir: None,
            window: 1024,
            sparse: false,
            commit_limit: None,
            min_free: None,
            stop: None,
        }
    }
}

/// A sync to run.
#[derive(Clone, Debug)]
pub struct SyncJob {
    /// Replica A.
    pub a: Location,
    /// Replica B.
    pub b: Location,
    /// Planning choices.
    pub plan: SyncOptions,
    /// Run choices.
    pub run: RunOptions,
    /// How to reach the agents.
    pub connect: ConnectOptions,
}

/// What a sync did.
#[derive(Clone, Debug, Default)]
pub struct SyncSummary {
    /// Files (and links) copied from A to B.
    pub copied_ab: u64,
    /// From B to A.
    pub copied_ba: u64,
    /// Entries moved instead of sent again.
    pub moved: u64,
    /// Entries deleted for real (`--no-soft-delete`).
    pub deleted: u64,
    /// Entries moved into `.deltasync/deleted/`.
    pub soft_deleted: u64,
    /// Conflicts settled by the policy.
    pub conflicts: u64,
    /// Conflicts left alone (`--conflict skip`).
    pub conflicts_skipped: u64,
    /// Bytes written to the network (or to the local agents' pipes).
    pub sent: u64,
    /// Bytes read from it.
    pub received: u64,
    /// Literal bytes in deltas.
    pub literal: u64,
    /// Bytes reproduced from old versions.
    pub matched: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Changes that failed or were left for the next run.
    pub failed: Vec<String>,
    /// The changes, one line each (also for `--dry-run`).
    pub lines: Vec<String>,
    /// Nothing was changed.
    pub dry_run: bool,
    /// The state database used.
    pub state_path: PathBuf,
}
