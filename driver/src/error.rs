//! The driver's typed errors.
//!
//! Policy: an error names the file it concerns and the cause, in one line.
//! The CLI maps each variant to an rsync-style exit code through
//! [`DriverError::exit_code`]; nothing below the CLI chooses exit codes
//! any other way.

use std::path::PathBuf;

use crate::engine::{DeltaError, PatchError, SignatureError};

/// rsync's exit code for a usage error.
pub const EXIT_USAGE: i32 = 1;
/// rsync's exit code for a file I/O error.
pub const EXIT_FILE_IO: i32 = 11;
/// rsync's exit code for an error in the data stream.
pub const EXIT_STREAM: i32 = 12;

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
        }
    }
}
