//! The driver's typed errors.
//!
//! Policy: an error names the file it concerns and the cause, in one line.
//! The CLI maps each variant to an rsync-style exit code through
//! [`DriverError::exit_code`]; nothing below the CLI chooses exit codes
//! any other way.

use std::path::PathBuf;

use crate::engine::{DeltaError, PatchError, SignatureError};
use deltasync_wire::WireError;
use deltasync_wire::transport::ssh::SshError;

/// rsync's exit code for a usage error.
pub const EXIT_USAGE: i32 = 1;
/// rsync's exit code for a file I/O error.
pub const EXIT_FILE_IO: i32 = 11;
/// rsync's exit code for an error in the data stream.
pub const EXIT_STREAM: i32 = 12;
/// rsync's exit code for a protocol version mismatch.
pub const EXIT_PROTOCOL: i32 = 2;
/// rsync's exit code for failing to start or log in to the far side.
pub const EXIT_STARTUP: i32 = 5;
/// rsync's exit code for connection I/O errors.
pub const EXIT_CONNECTION: i32 = 10;
/// rsync's exit code for a partial transfer (some files failed).
pub const EXIT_PARTIAL: i32 = 23;
/// rsync's exit code when some source files vanished.
pub const EXIT_VANISHED: i32 = 24;
/// rsync's exit code for a timeout.
pub const EXIT_TIMEOUT: i32 = 30;
/// Ours: another run holds a replica's lock.
pub const EXIT_LOCKED: i32 = 50;
/// Ours: a safety stop; nothing was changed.
pub const EXIT_SAFETY: i32 = 51;
/// Ours: `--max-time` was reached; the next run resumes.
pub const EXIT_TIME_BUDGET: i32 = 52;
/// Ours: a pre hook failed, so the sync was skipped.
pub const EXIT_HOOK: i32 = 53;
/// Ours: a side would not keep `--min-free-space`; nothing changed.
pub const EXIT_NO_SPACE: i32 = 54;
/// Stopped by a signal (rsync's code for SIGINT/SIGTERM).
pub const EXIT_SIGNAL: i32 = 20;

/// Something the driver could not do.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The output exists and `--force` was not given.
    #[error("{}: file exists (use --force to overwrite)", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// A signature was refused.
    #[error("{}: {source}", path.display())]
    Signature {
        /// The signature (or basis) file.
        path: PathBuf,
        /// The cause.
        source: SignatureError,
    },
    /// A delta could not be made.
    #[error("{}: {source}", path.display())]
    Delta {
        /// The new file.
        path: PathBuf,
        /// The cause.
        source: DeltaError,
    },
    /// A delta could not be applied.
    #[error("{}: {source}", path.display())]
    Patch {
        /// The delta file.
        path: PathBuf,
        /// The cause.
        source: PatchError,
    },
    /// The request itself makes no sense.
    #[error("{0}")]
    Usage(String),
    /// The far side could not be started.
    #[error("{0}")]
    Startup(String),
    /// The far side runs, but refused this request (a forced command in
    /// `authorized_keys`, a `--read-only` agent).
    #[error("{0}")]
    Refused(String),
    /// The connection failed.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// SSH could not connect or log in.
    #[error(transparent)]
    Ssh(#[from] SshError),
    /// Another run holds a lock.
    #[error("{0}")]
    LockHeld(String),
    /// A safety stop fired before any change.
    #[error("safety stop, nothing changed: {0}")]
    SafetyStop(String),
    /// A side would not keep its `--min-free-space`.
    #[error("not enough free space, nothing changed: {0}")]
    NoSpace(String),
    /// `--max-time` was reached.
    #[error(
        "time budget reached after {secs} s; finished changes are recorded, the next run resumes"
    )]
    TimeBudget {
        /// The budget.
        secs: u64,
    },
    /// A signal asked us to stop: what was in flight is parked (a patch
    /// keeps its verified prefix), finished changes are recorded.
    #[error("stopped by a signal; finished changes are recorded, the next run resumes")]
    Interrupted,
    /// The state database failed.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// Some files were not transferred; each was reported as it failed.
    #[error("{failed} file(s) could not be transferred, {vanished} vanished")]
    Partial {
        /// Files that failed.
        failed: usize,
        /// Files that vanished before they could be read.
        vanished: usize,
    },
}

impl DriverError {
    /// The process exit code for this error, following rsync's table.
    pub fn exit_code(&self) -> i32 {
        match self {
            DriverError::Usage(_) => EXIT_USAGE,
            DriverError::Io { .. } | DriverError::Exists { .. } => EXIT_FILE_IO,
            DriverError::Signature {
                source: SignatureError::Io(_),
                ..
            }
            | DriverError::Delta {
                source: DeltaError::Io(_),
                ..
            }
            | DriverError::Patch {
                source: PatchError::Io(_),
                ..
            } => EXIT_FILE_IO,
            DriverError::Signature { .. }
            | DriverError::Delta { .. }
            | DriverError::Patch { .. } => EXIT_STREAM,
            DriverError::Startup(_) | DriverError::Refused(_) => EXIT_STARTUP,
            DriverError::Wire(w) => match w {
                WireError::Timeout { .. } => EXIT_TIMEOUT,
                WireError::Mismatch(_) => EXIT_PROTOCOL,
                WireError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => EXIT_TIMEOUT,
                WireError::Io(_) | WireError::Truncated { .. } => EXIT_CONNECTION,
                _ => EXIT_STREAM,
            },
            DriverError::Ssh(e) if e.is_startup() => EXIT_STARTUP,
            DriverError::Ssh(_) => EXIT_CONNECTION,
            DriverError::LockHeld(_) => EXIT_LOCKED,
            DriverError::SafetyStop(_) => EXIT_SAFETY,
            DriverError::NoSpace(_) => EXIT_NO_SPACE,
            DriverError::TimeBudget { .. } => EXIT_TIME_BUDGET,
            DriverError::Interrupted => EXIT_SIGNAL,
            DriverError::State(_) => EXIT_FILE_IO,
            DriverError::Partial { failed: 0, .. } => EXIT_VANISHED,
            DriverError::Partial { .. } => EXIT_PARTIAL,
        }
    }
}
