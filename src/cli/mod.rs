//! The command line, as clap types. Nothing below `main.rs` sees these:
//! each command turns its arguments into a plain driver job.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod unattended;

pub use unattended::*;

/// deltasync keeps folders in step across slow links.
///
/// `sync` keeps two folders the same, both ways, with a state database,
/// conflict copies and soft deletes; `copy` sends one way, like rsync -a.
/// Either side may be local or remote over SSH. `signature`, `delta` and
/// `patch` read and write librsync 2.3's formats byte for byte, as rdiff.
#[derive(Debug, Parser)]
#[command(name = "deltasync", version, propagate_version = true)]
#[command(after_help = "Examples:\n  \
    deltasync sync ~/share office-b:/srv/share      two-way; run it from cron\n  \
    deltasync sync -n ~/share office-b:/srv/share   show what it would do\n  \
    deltasync copy -av src/ backup/                 one-way, like rsync -av\n  \
    deltasync signature old.bin old.sig             as rdiff\n\n\
    Exit codes: 0 ok, 1 usage, 2 protocol mismatch, 5 cannot start or log in,\n\
    10 connection I/O, 11 file I/O, 12 bad data, 23 partial, 24 vanished,\n\
    30 timeout, 50 lock held, 51 safety stop (nothing changed),\n\
    52 time budget reached (the next run resumes), 53 a pre hook failed\n\
    (nothing synced), 54 not enough free space (nothing changed).")]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write the signature of BASIS: the checksums a delta is computed against.
    ///
    /// Defaults are rdiff 2.3's: BLAKE2 + RabinKarp; the block size grows as the
    /// square root of the basis (256 bytes up to 64 KiB; 2048 when reading a
    /// pipe, whose size is unknown); full-length strong sums.
    Signature(SignatureArgs),
    /// Write the delta that turns the signature's basis into NEW.
    ///
    /// The output equals rdiff's byte for byte; it is computed on all cores.
    Delta(DeltaArgs),
    /// Copy SRC to DST, one way, sending only what changed (like rsync -a).
    ///
    /// Either side may be local or remote: [user@]host:path or
    /// ssh://[user@]host[:port]/path. A trailing slash on SRC copies its
    /// contents; without one, the directory itself. Files are compared by
    /// size and mtime (or --checksum) and sent as deltas against the old
    /// version; modes, mtimes and symlinks are kept. An interrupted file
    /// keeps its verified prefix in DST's .deltasync/partial/ and the next
    /// run resumes from there.
    Copy(Box<CopyArgs>),
    /// Two-way sync of A and B: every change on either side reaches the other.
    ///
    /// A change on one side propagates; the same change on both is recorded;
    /// different changes are a conflict, settled by --conflict with the losing
    /// version kept in .deltasync/conflicts/. Deletions propagate as soft
    /// deletes into .deltasync/deleted/. A file modified on one side and
    /// deleted on the other is restored. Moved files are moved, not resent.
    /// Safety stops (exit 51) make no change at all: more than --max-delete
    /// percent of a side's files would go, a side that had files is empty or
    /// missing, or a replica's id is not the one remembered.
    Sync(Box<SyncArgs>),
    /// Forget the state of the pair A B: the next sync is a first sync (a union).
    Reset(ResetArgs),
    /// Sync the pairs a config file names, unattended: hooks, alerts, retries.
    ///
    /// Each [pairs.NAME] section of the config file holds `a`, `b` and any
    /// of sync's long options, spelled the same (`bwlimit = "2M"`,
    /// `exclude = ["*.tmp"]`); [defaults] holds options for every pair.
    /// The environment overrides the file (DELTASYNC_ plus the option in
    /// upper case, `_` for `-`: DELTASYNC_MAX_DELETE=10) and the command
    /// line overrides both. Pairs run in order; a failed one is retried at
    /// the end (--retries); the exit code is the worst pair's.
    Run(Box<RunArgs>),
    /// Keep A and B in step continuously: one full sync, then each change on
    /// either side is synced once it has been quiet for --settle.
    ///
    /// Both sides are watched (inotify; a remote side watches itself and
    /// sends its changes over the same SSH connection). The locks are held
    /// for the life of the process. A lost link is retried with backoff (1 s
    /// to 60 s), then a full sync finds what changed meanwhile; a side silent
    /// for --timeout (default here: 5 min) in the middle of a sync counts as
    /// a lost link, and one silent when idle is found by --keepalive. A full sync
    /// also runs every --full-every. SIGTERM or Ctrl-C: the transfers in
    /// flight are parked (the next run resumes them), the locks are
    /// released, exit 0. SIGHUP: the config file is
    /// read again. `deltasync watch NAME` follows a pair of the config file.
    Watch(Box<WatchArgs>),
    /// What each running (or last) watch is doing: its state, last sync,
    /// pending changes and last error.
    Status(StatusArgs),
    /// Check the config file, or show a pair's resolved options.
    Config(ConfigArgs),
    /// Print a completion script: deltasync completions bash > /etc/bash_completion.d/deltasync
    Completions(CompletionsArgs),
    /// Print the man page (roff): deltasync man > deltasync.1
    Man,
    /// Serve a replica on stdin/stdout: the far end of copy and sync.
    ///
    /// Never reads, writes or deletes outside DIR. For an SSH key that may
    /// only sync one folder, put this in ~/.ssh/authorized_keys:
    ///   command="deltasync serve --root /srv/share",restrict ssh-ed25519 AAAA...
    /// The client's requested root is then taken relative to /srv/share.
    Serve(ServeArgs),
    /// Apply DELTA to BASIS, writing the new file.
    ///
    /// A named output is written to a temporary file beside it, fsynced and
    /// renamed into place: a failed patch never leaves a partial file.
    /// Every command in the delta is checked before it is applied.
    Patch(PatchArgs),
}

/// Options every rdiff-style command shares.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Overwrite an existing output file.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Print statistics to stderr when done.
    #[arg(short = 's', long = "statistics")]
    pub statistics: bool,
}

/// `deltasync signature`.
#[derive(Debug, Args)]
pub struct SignatureArgs {
    /// Block size in bytes; 0 for the recommended size.
    #[arg(short = 'b', long = "block-size", value_name = "BYTES")]
    pub block_size: Option<u32>,
    /// Strong-sum bytes per block: 0 for the full hash, -1 for rdiff's minimum.
    #[arg(
        short = 'S',
        long = "sum-size",
        value_name = "BYTES",
        allow_negative_numbers = true
    )]
    pub sum_size: Option<i64>,
    /// Strong hash. blake3 is deltasync's own and rdiff cannot read it.
    #[arg(short = 'H', long = "hash", value_enum, default_value_t = HashArg::Blake2)]
    pub hash: HashArg,
    /// Rolling checksum.
    #[arg(short = 'R', long = "rollsum", value_enum, default_value_t = RollArg::Rabinkarp)]
    pub rollsum: RollArg,
    #[command(flatten)]
    pub common: CommonArgs,
    /// The basis file; `-` or omitted reads stdin.
    pub basis: Option<PathBuf>,
    /// Where to write the signature; `-` or omitted writes stdout.
    pub signature: Option<PathBuf>,
}

/// `deltasync delta`.
#[derive(Debug, Args)]
pub struct DeltaArgs {
    /// Scanner threads (default: all cores). The output is the same for any count.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub common: CommonArgs,
    /// The basis's signature; `-` reads stdin.
    pub signature: PathBuf,
    /// The new file; `-` or omitted reads stdin.
    pub new: Option<PathBuf>,
    /// Where to write the delta; `-` or omitted writes stdout.
    pub delta: Option<PathBuf>,
}

/// `deltasync patch`.
#[derive(Debug, Args)]
pub struct PatchArgs {
    /// Skip the fsync before the new file is renamed into place (faster, less safe).
    #[arg(long)]
    pub no_fsync: bool,
    #[command(flatten)]
    pub common: CommonArgs,
    /// The basis file. It must be a regular file: copies seek in it.
    pub basis: PathBuf,
    /// The delta; `-` or omitted reads stdin.
    pub delta: Option<PathBuf>,
    /// Where to write the new file; `-` or omitted writes stdout.
    pub new: Option<PathBuf>,
}

/// `-H`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HashArg {
    /// MD4 (librsync 1.x; weak).
    Md4,
    /// BLAKE2b (rdiff's default).
    Blake2,
    /// BLAKE3 (deltasync's wire flavour; needs rabinkarp).
    Blake3,
}

/// `-R`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RollArg {
    /// librsync's Adler-style rollsum.
    Rollsum,
    /// librsync's RabinKarp (rdiff's default).
    Rabinkarp,
}

/// `deltasync serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The replica root; nothing outside it is touched.
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    /// Refuse every change.
    #[arg(long)]
    pub read_only: bool,
    /// Create the root (one level) if it is missing.
    #[arg(long)]
    pub mkdir: bool,
}

/// What beyond contents, modes, mtimes and symlinks is kept; shared by
/// copy and sync.
#[derive(Debug, Args, Clone)]
pub struct AttrArgs {
    /// Keep owners (as root; on by default for root with -a, and for sync).
    #[arg(short = 'o', long)]
    pub owner: bool,
    /// Keep groups (as -o: owner and group go together).
    #[arg(short = 'g', long)]
    pub group: bool,
    /// Do not keep owners and groups, even as root.
    #[arg(long, conflicts_with_all = ["owner", "group"])]
    pub no_owner: bool,
    /// Keep owners by uid/gid number, not by user and group name.
    #[arg(long)]
    pub numeric_ids: bool,
    /// Keep hard links: files that are one file under several names stay so.
    #[arg(short = 'H', long)]
    pub hard_links: bool,
    /// Keep extended attributes (user.*; trusted.* and security.* as root) and
    /// POSIX ACLs, which are stored as extended attributes.
    #[arg(short = 'X', long)]
    pub xattrs: bool,
    /// Keep POSIX ACLs: the same as -X here (ACLs travel as extended attributes).
    #[arg(short = 'A', long)]
    pub acls: bool,
    /// Write runs of zeros as holes, so sparse files stay sparse.
    #[arg(short = 'S', long)]
    pub sparse: bool,
}

/// Which paths a copy or sync takes; shared by both. As in rsync, the
/// rules are tried in the order given and the first that matches decides;
/// a path no rule matches is taken.
#[derive(Debug, Args, Clone)]
pub struct FilterArgs {
    /// Skip paths matching PATTERN (gitignore syntax; repeatable). Excluded
    /// paths are never deleted. A trailing / matches folders only.
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Take paths matching PATTERN, unless an earlier rule excluded them:
    /// `--include 'keep/' --include 'keep/**' --exclude '*'` takes only keep/.
    #[arg(long, value_name = "PATTERN")]
    pub include: Vec<String>,
    /// An rsync filter rule, in order with --include and --exclude:
    /// '+ PATTERN' includes, '- PATTERN' excludes.
    #[arg(short = 'f', long, value_name = "RULE")]
    pub filter: Vec<String>,
    /// Read rules from FILE, one per line, tried after all the others:
    /// a plain line excludes, '+ PATTERN' includes; blank lines and #
    /// comments are skipped.
    #[arg(long, value_name = "FILE")]
    pub exclude_from: Vec<PathBuf>,
}

/// How to reach a remote host; shared by every remote command.
#[derive(Debug, Args, Clone)]
pub struct SshArgs {
    /// Use this command for the connection instead of the built-in SSH, as
    /// rsync's -e: it gets [user@]host and the remote command appended.
    #[arg(short = 'e', long = "rsh", value_name = "COMMAND")]
    pub rsh: Option<String>,
    /// Private key to log in with (after ssh-agent).
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// known_hosts file to check host keys against [default: ~/.ssh/known_hosts].
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
    /// Record the key of a host not yet in known_hosts (a changed key is still refused).
    #[arg(long)]
    pub accept_new_host_key: bool,
    /// Command that prints the SSH password (or set DELTASYNC_SSH_PASSWORD).
    #[arg(long, value_name = "CMD")]
    pub password_cmd: Option<String>,
    /// Path of deltasync on the remote host.
    #[arg(long, value_name = "PATH")]
    pub remote_bin: Option<String>,
    /// Never upload our binary when the remote lacks deltasync or has another version.
    #[arg(long)]
    pub no_deploy: bool,
    /// Fail (exit 30) when no data moves for this many seconds.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// ssh config file [default: ~/.ssh/config].
    #[arg(long, value_name = "FILE", hide = true)]
    pub ssh_config: Option<PathBuf>,
}

/// Transfer tuning shared by copy and sync.
#[derive(Debug, Args, Clone)]
pub struct TransferArgs {
    /// Compress with zstd (the default for remote transfers).
    #[arg(short = 'z', long, overrides_with = "no_compress")]
    pub compress: bool,
    /// Do not compress.
    #[arg(long)]
    pub no_compress: bool,
    /// zstd level to start at, 1 (fast) to 19 (small). While the link, not the
    /// CPU, holds the transfer back, each side compresses harder, up to 15.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub compress_level: i32,
    /// Cap the bytes sent per second: rsync's syntax (no suffix: KiB/s; K, M, G are
    /// 1024-based, KB, MB, GB 1000-based; 0: no cap), or a timetable such as
    /// "08:00,512K 18:00,off".
    #[arg(long, value_name = "RATE")]
    pub bwlimit: Option<String>,
}

/// `deltasync copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Archive mode, as in rsync: copy always recurses and keeps modes,
    /// mtimes and symlinks; -a adds owners and groups when run as root.
    #[arg(short = 'a', long)]
    pub archive: bool,
    /// Print each file copied.
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Print only errors.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Show what would be done; change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Print rsync's 11-character change codes for every change.
    #[arg(short = 'i', long = "itemize-changes")]
    pub itemize: bool,
    /// Keep partial files and show progress (as rsync's -P; partial files are always kept).
    #[arg(short = 'P')]
    pub partial_progress: bool,
    /// Show progress: each file and the whole run, with rate and ETA.
    #[arg(long)]
    pub progress: bool,
    /// Print transfer statistics at the end.
    #[arg(long)]
    pub stats: bool,
    /// Print one JSON summary object on stdout (and nothing else there).
    #[arg(long)]
    pub json: bool,
    /// Delete files in DST that SRC does not have (excluded files are kept).
    #[arg(long)]
    pub delete: bool,
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Decide what changed by BLAKE3 of the contents, not size and mtime.
    #[arg(short = 'c', long)]
    pub checksum: bool,
    /// Send whole files instead of deltas.
    #[arg(short = 'W', long)]
    pub whole_file: bool,
    /// For a file new in DST, look there for an older version under a
    /// similar name (same folder, a name alike at its start and end, a
    /// size within 2x: report-v2.txt for report-v3.txt) and send only what
    /// differs from it. The similar file is only read; one this run
    /// deletes or changes is never used.
    #[arg(short = 'y', long)]
    pub fuzzy: bool,
    #[command(flatten)]
    pub attrs: AttrArgs,
    #[command(flatten)]
    pub transfer: TransferArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
    /// Source: a local path or [user@]host:path or ssh://[user@]host[:port]/path.
    pub src: String,
    /// Destination, in the same forms.
    pub dst: String,
}

/// `deltasync reset`.
#[derive(Debug, Args)]
pub struct ResetArgs {
    /// Where the state database is, if not in A/.deltasync/state/.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(flatten)]
    pub transfer: TransferArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
    /// Replica A.
    pub a: String,
    /// Replica B.
    pub b: String,
}
