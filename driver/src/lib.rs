//! deltasync's driver: everything between the command line and the bytes.
//!
//! Today it runs the rdiff-compatible commands ([`rdiff::signature`],
//! [`rdiff::delta`], [`rdiff::patch`]) on top of the engine, which it
//! re-exports as [`engine`]. It will hold the one-way copy and the two-way
//! sync:
//!
//! - **scan**: walk a replica, stat each entry, hash only what changed;
//! - **state**: the SQLite database of last-synced entries (rusqlite, only
//!   under `state/`);
//! - **plan**: a pure function from state and two listings to a `Plan`
//!   value, printable for `--dry-run` and testable without a disk;
//! - **execute**: carry out a plan through the wire, committing state per
//!   item, with conflicts, soft delete, locks and safety stops.
//!
//! It uses both the engine and the wire; the CLI uses only this crate.
//! Errors are [`DriverError`], each naming its file and mapping to an
//! rsync-style exit code.
//!
//! ```no_run
//! use deltasync_driver::rdiff::{signature, Input, Output, SignatureJob};
//! use deltasync_driver::engine::SigFormat;
//! let job = SignatureJob {
//!     basis: Input::Path("old.bin".into()),
//!     output: Output::Path("old.sig".into()),
//!     format: SigFormat::Blake2RabinKarp,
//!     block_len: None,
//!     strong_len: None,
//!     force: false,
//! };
//! let report = signature(&job)?;
//! println!("{} bytes in blocks of {}", report.basis_len, report.params.block_len);
//! # Ok::<(), deltasync_driver::DriverError>(())
//! ```

#![deny(missing_docs)]

pub mod agent;
pub mod client;
pub mod copy;
mod error;
pub mod exec;
pub mod fuzzy;
pub mod link;
pub mod location;
pub mod path;
pub mod rdiff;
pub mod runs;
pub mod state;
pub mod sync;
pub mod watch;

pub use deltasync_engine as engine;
pub use deltasync_wire as wire;
pub use error::*;

/// True when this process runs as root (owners are then kept by default).
pub fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// This build's version string, sent in the handshake and used to name a
/// deployed binary.
pub fn program_version() -> String {
    format!("deltasync {}", env!("CARGO_PKG_VERSION"))
}
