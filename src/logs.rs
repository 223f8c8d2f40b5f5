//! `--log-file`, `--log-format` and `--keep-logging`: what a run prints,
//! also appended to a file with the time on each line (tracing, with
//! tracing-appender's file writer), as text or one JSON object per line.
//! The console emits tracing events; without a log file nobody listens.

use std::path::Path;

use tracing::Dispatch;
use tracing_subscriber::fmt::time::ChronoUtc;

use crate::cli::{LogFormatArg, UnattendedArgs};

/// The log for one pair's run, if it asks for one. A file that cannot be
/// opened is a warning, not a failed sync.
pub fn dispatch(u: &UnattendedArgs) -> Option<Dispatch> {
    let path = u.log_file.as_deref()?;
    match writer(path) {
        Ok(w) => {
            let b = tracing_subscriber::fmt()
                .with_writer(w)
                .with_ansi(false)
                .with_target(false)
                .with_timer(ChronoUtc::rfc_3339());
            Some(match u.log_format {
                LogFormatArg::Text => Dispatch::new(b.finish()),
                LogFormatArg::Json => Dispatch::new(b.json().finish()),
            })
        }
        Err(e) => {
            eprintln!("deltasync: log file {}: {e}", path.display());
            None
        }
    }
}

/// An appending writer for `path` (its folder is made if missing).
fn writer(path: &Path) -> std::io::Result<tracing_appender::rolling::RollingFileAppender> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("names a folder, not a file"))?;
    tracing_appender::rolling::RollingFileAppender::builder()
        .filename_prefix(name.to_string_lossy().into_owned())
        .rotation(tracing_appender::rolling::Rotation::NEVER)
        .build(dir)
        .map_err(std::io::Error::other)
}
