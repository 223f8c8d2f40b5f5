//! The arguments of `sync`, `run` and `config`: one set of options that
//! the command line, the environment and a config file's pairs all speak,
//! so a config key is always a `sync` flag spelled the same.

use std::path::PathBuf;

use clap::{ArgAction, Args, Subcommand, ValueEnum};

use super::{AttrArgs, FilterArgs, SshArgs, TransferArgs};

/// `--conflict`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ConflictArg {
    /// The newer mtime wins (ties: --prefer); the loser goes to conflicts/.
    Newest,
    /// Keep both: the loser is renamed beside the winner, on both sides.
    KeepBoth,
    /// A always wins; B's version goes to conflicts/.
    PreferA,
    /// B always wins; A's version goes to conflicts/.
    PreferB,
    /// Leave both as they are and report it (exit 23).
    Skip,
}

/// `a` or `b`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SideArg {
    /// The first replica.
    A,
    /// The second replica.
    B,
}

/// `--empty-dirs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EmptyDirsArg {
    /// Leave directories that become empty.
    Keep,
    /// Remove directories this run leaves empty on both sides.
    Remove,
}

/// Everything `sync` takes but its two replicas: also the keys of a config
/// file's pairs, and the overrides `run` takes.
#[derive(Debug, Args, Clone)]
pub struct SyncOpts {
    /// Show what would be done; change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// How conflicts are settled.
    #[arg(long, value_enum, default_value_t = ConflictArg::Newest)]
    pub conflict: ConflictArg,
    /// Which side wins a tie on mtime.
    #[arg(long, value_enum, default_value_t = SideArg::A)]
    pub prefer: SideArg,
    /// Deletions do not reach these sides: a, b or a,b.
    #[arg(long, value_name = "SIDES", value_delimiter = ',')]
    pub skip_deletion: Vec<SideArg>,
    /// Delete for real instead of moving into .deltasync/deleted/.
    #[arg(long)]
    pub no_soft_delete: bool,
    /// What to do with directories this run leaves empty.
    #[arg(long, value_enum, default_value_t = EmptyDirsArg::Keep)]
    pub empty_dirs: EmptyDirsArg,
    /// Leave dotfiles alone on both sides.
    #[arg(long)]
    pub ignore_hidden: bool,
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Compare contents by BLAKE3 for every file, not only those whose size or mtime moved.
    #[arg(short = 'c', long)]
    pub checksum: bool,
    /// For a file new to one side, look there for an older version under a
    /// similar name (same folder, a name alike at its start and end, a
    /// size within 2x) and send only what differs from it. The similar
    /// file is only read; one this run deletes or changes is never used.
    #[arg(short = 'y', long)]
    pub fuzzy: bool,
    /// Safety stop if a side would lose more than PCT percent of its files.
    #[arg(long, value_name = "PCT", default_value_t = 50)]
    pub max_delete: u32,
    /// Override the --max-delete stop (only that one).
    #[arg(long)]
    pub force: bool,
    /// Allow syncing a replica that was emptied (only that stop).
    #[arg(long)]
    pub allow_empty: bool,
    /// Take the replicas' locks even if another run seems to hold them.
    #[arg(long)]
    pub force_unlock: bool,
    /// Stop cleanly after this long (e.g. 90s, 30m, 2h); exit 52, the next
    /// run resumes. For `run`, the budget of the whole batch.
    #[arg(long, value_name = "DURATION")]
    pub max_time: Option<String>,
    /// Purge .deltasync/deleted and conflicts entries older than N days (0: keep forever).
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub retention_days: u32,
    /// Keep the state database here instead of A/.deltasync/state/.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Accepted for habit: sync prints each change unless -q is given.
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Print only errors and warnings.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Show progress.
    #[arg(long)]
    pub progress: bool,
    /// Print one JSON summary object on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub attrs: AttrArgs,
    #[command(flatten)]
    pub transfer: TransferArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
    #[command(flatten)]
    pub unattended: UnattendedArgs,
}

/// `deltasync sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub opts: SyncOpts,
    /// Replica A: a local path or [user@]host:path or ssh://[user@]host[:port]/path.
    pub a: String,
    /// Replica B, in the same forms.
    pub b: String,
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    /// Plain lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// What a run left alone needs: hooks, alerts, a free-space margin, logs.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Unattended runs")]
pub struct UnattendedArgs {
    /// Run CMD (with sh -c) before the sync. Its environment has
    /// DELTASYNC_PAIR, DELTASYNC_A, DELTASYNC_B and DELTASYNC_DRY_RUN.
    #[arg(long, value_name = "CMD")]
    pub pre_cmd: Option<String>,
    /// Run CMD after the sync, with DELTASYNC_EXIT and DELTASYNC_SUMMARY too.
    #[arg(long, value_name = "CMD")]
    pub post_cmd: Option<String>,
    /// Run CMD on the remote side before the sync, over SSH.
    #[arg(long, value_name = "CMD")]
    pub remote_pre_cmd: Option<String>,
    /// Run CMD on the remote side after the sync, over SSH.
    #[arg(long, value_name = "CMD")]
    pub remote_post_cmd: Option<String>,
    /// Kill a hook (its whole process group) that runs longer than this.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub hook_timeout: String,
    /// Skip the sync (exit 53) when a pre hook fails; with false, go on.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = ArgAction::Set)]
    pub stop_on_hook_error: bool,
    /// Run CMD once when the pair starts failing; the error is on its stdin.
    #[arg(long, value_name = "CMD")]
    pub on_failure: Option<String>,
    /// Run CMD once when a failing pair succeeds again.
    #[arg(long, value_name = "CMD")]
    pub on_recovery: Option<String>,
    /// Mail failures and recoveries to ADDR with the system's sendmail.
    #[arg(long, value_name = "ADDR")]
    pub mail_to: Option<String>,
    /// Stop (exit 54, nothing changed) unless each side keeps this much
    /// free after the sync writes: bytes with K, M, G, T (1024-based), or a
    /// percentage of the disk such as 5%.
    #[arg(long, value_name = "SIZE")]
    pub min_free_space: Option<String>,
    /// Append the run's lines, each with the time, to FILE.
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// How the log file's lines are written.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = LogFormatArg::Text)]
    pub log_format: LogFormatArg,
    /// On long runs, log a progress line this often (e.g. 1m).
    #[arg(long, value_name = "DURATION")]
    pub keep_logging: Option<String>,
}

/// `deltasync run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run every pair in the config file, in order.
    #[arg(long, conflicts_with = "names")]
    pub all: bool,
    /// Run a failed pair again at the end of the batch, up to N times.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub retries: u32,
    #[command(flatten)]
    pub config: ConfigFileArg,
    /// Any of sync's options: they override the config file for every pair.
    #[command(flatten)]
    pub opts: SyncOpts,
    /// The pairs to run, by name.
    #[arg(value_name = "NAME", required_unless_present = "all")]
    pub names: Vec<String>,
}

/// `--config`.
#[derive(Debug, Args, Clone)]
pub struct ConfigFileArg {
    /// The config file [default: $XDG_CONFIG_HOME/deltasync/config.toml, or
    /// ~/.config/deltasync/config.toml; as root with neither,
    /// /etc/deltasync/config.toml].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `deltasync config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub action: ConfigAction,
}

/// What `config` does.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Check the config file: every key, every value, every pair.
    Check(ConfigFileArg),
    /// Print a pair's resolved options and where each came from.
    Show {
        #[command(flatten)]
        config: ConfigFileArg,
        /// The pair.
        name: String,
    },
    /// Print the systemd drop-in that lets deltasync@NAME.service write the
    /// pair's local replicas, state and log (ReadWritePaths), and run this
    /// config file: systemctl edit deltasync@NAME.service, and paste it.
    Systemd {
        #[command(flatten)]
        config: ConfigFileArg,
        /// The pair.
        name: String,
    },
}

/// `deltasync completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

/// `deltasync watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Replica A (a path, or [user@]host:path), or the name of a pair in
    /// the config file when B is left out.
    #[arg(value_name = "A|NAME")]
    pub a: String,
    /// Replica B.
    #[arg(value_name = "B")]
    pub b: Option<String>,
    /// Sync a changed path once it has had no change for this long.
    #[arg(long, value_name = "DURATION", default_value = "2s")]
    pub settle: String,
    /// Run a full sync this often, for anything the watchers missed.
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub full_every: String,
    /// Where a side cannot be watched (the kernel's inotify limit), scan
    /// it this often instead.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub scan_every: String,
    /// Check the link after this long without traffic; a dead one is
    /// noticed and reconnected.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub keepalive: String,
    #[command(flatten)]
    pub config: ConfigFileArg,
    /// Any of sync's options (over the config file's, for a NAME).
    #[command(flatten)]
    pub opts: SyncOpts,
}

/// `deltasync status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// One JSON object per watch.
    #[arg(long)]
    pub json: bool,
}
