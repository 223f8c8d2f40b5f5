//! The status file each watch keeps, and `deltasync status`, which reads
//! them all.
//!
//! One JSON file per watched pair, in `$STATE_DIRECTORY` (systemd's
//! `StateDirectory=`), else `$XDG_STATE_HOME/deltasync`, else
//! `~/.local/state/deltasync`, under `watch/`. It is replaced whole (write
//! then rename) on every change of state, so a reader never sees half of
//! one. A file whose process is gone reads as "not running".

use std::path::PathBuf;

use anyhow::Result;
use serde_json::{Value, json};

use crate::cli::StatusArgs;
use crate::console::out;

/// Where the status files live.
pub fn dir() -> PathBuf {
    let base = if let Some(d) = std::env::var_os("STATE_DIRECTORY") {
        let first = d
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or("")
            .to_string();
        PathBuf::from(first)
    } else if let Some(d) = std::env::var_os("XDG_STATE_HOME") {
        PathBuf::from(d).join("deltasync")
    } else {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        home.join(".local/state/deltasync")
    };
    base.join("watch")
}

/// A watch's status, as it goes.
#[derive(Debug)]
pub struct Status {
    path: PathBuf,
    pub doc: Value,
    warned: bool,
}

impl Status {
    /// The status of the pair `name` (A <-> B for a pair with no name).
    pub fn new(name: &str, a: &str, b: &str, pair_id: &str) -> Status {
        let shown = if name.is_empty() {
            format!("{a} <-> {b}")
        } else {
            name.to_string()
        };
        Status {
            path: dir().join(format!("{pair_id}.json")),
            doc: json!({
                "pair": shown,
                "a": a,
                "b": b,
                "pid": std::process::id(),
                "state": "starting",
                "last_sync": null,
                "last_full_sync": null,
                "pending": 0,
                "last_error": null,
                "syncs": 0,
            }),
            warned: false,
        }
    }

    /// Sets `key` and writes the file.
    pub fn set(&mut self, key: &str, value: Value) -> Option<String> {
        self.doc[key] = value;
        self.save()
    }

    /// Writes the file; the first failure is returned once, for a warning.
    pub fn save(&mut self) -> Option<String> {
        self.doc["updated"] = json!(chrono::Local::now().to_rfc3339());
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(dir())?;
            let tmp = self.path.with_extension("tmp");
            std::fs::write(&tmp, format!("{}\n", self.doc))?;
            std::fs::rename(&tmp, &self.path)
        };
        match write() {
            Ok(()) => None,
            Err(e) if !self.warned => {
                self.warned = true;
                Some(format!(
                    "cannot write the status file {}: {e}",
                    self.path.display()
                ))
            }
            Err(_) => None,
        }
    }
}

/// `deltasync status`.
pub fn status(args: &StatusArgs) -> Result<()> {
    let mut docs: Vec<Value> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir()) {
        for e in entries.flatten() {
            if e.path().extension().is_none_or(|x| x != "json") {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(e.path()) else {
                continue;
            };
            let Ok(mut doc) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            let alive = doc["pid"]
                .as_u64()
                .is_some_and(|pid| PathBuf::from(format!("/proc/{pid}")).exists());
            if !alive && doc["state"] != "stopped" {
                doc["state"] = json!("not running");
            }
            docs.push(doc);
        }
    }
    docs.sort_by(|a, b| a["pair"].as_str().cmp(&b["pair"].as_str()));
    if docs.is_empty() && !args.json {
        out!("no watches (status files are kept in {})", dir().display());
    }
    for d in &docs {
        if args.json {
            out!("{d}");
            continue;
        }
        let text = |k: &str| d[k].as_str().unwrap_or("-").to_string();
        out!(
            "{}: {}; last sync {}; {} pending; last error: {}",
            text("pair"),
            text("state"),
            text("last_sync"),
            d["pending"].as_u64().unwrap_or(0),
            text("last_error"),
        );
    }
    Ok(())
}
