//! `deltasync watch A B | NAME`: options in (the same layers as `sync` and
//! `run`), the driver's watch loop, its news out as log lines and the
//! status file. SIGTERM and SIGINT stop it, SIGHUP reloads the options.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use clap::ArgMatches;
use crossbeam::channel::{Receiver, unbounded};
use deltasync_driver::DriverError;
use deltasync_driver::copy::{Event, Reporter};
use deltasync_driver::watch::{self, Control, Ended, Note, WatchOptions, WatchReporter};
use serde_json::json;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::cli::WatchArgs;
use crate::console::Console;
use crate::pair::PairSpec;
use crate::status::Status;
use crate::sync::{Output, duration};

/// `--timeout` for a watch that was given none.
const SILENT_LINK: std::time::Duration = std::time::Duration::from_secs(300);

pub fn watch(args: &WatchArgs, m: &ArgMatches) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let control = signals(stop.clone())?;
    loop {
        let spec = resolve(args, m)?;
        let mut job = crate::sync::job(&spec.opts, &spec.a, &spec.b)?;
        job.run.stop = Some(stop.clone());
        // A link that goes silent in the middle of a sync is lost after
        // this long without a byte, unless --timeout says otherwise (idle,
        // the keepalive finds it much sooner).
        job.connect.timeout.get_or_insert(SILENT_LINK);
        let o = WatchOptions {
            settle: duration("--settle", &args.settle)?,
            full_every: duration("--full-every", &args.full_every)?,
            scan_every: duration("--scan-every", &args.scan_every)?,
            keepalive: duration("--keepalive", &args.keepalive)?,
            ..WatchOptions::default()
        };
        let pair_id = deltasync_driver::sync::pair_id(&job.a, &job.b);
        let mut out = WatchOutput {
            sync: Output {
                console: Console::new(spec.opts.quiet, false, false),
            },
            status: Status::new(&spec.name, &spec.a, &spec.b, &pair_id),
        };
        out.status_set("state", json!("connecting"));
        let ended = watch::watch(&job, &o, &control, &mut out);
        let state = match &ended {
            Ok(Ended::Stopped) => json!("stopped"),
            Ok(Ended::Reload) => json!("reloading"),
            Err(_) => json!("failed"),
        };
        if let Err(e) = &ended {
            out.status.doc["last_error"] = json!(e.to_string());
        }
        out.status_set("state", state);
        match ended? {
            Ended::Stopped => {
                out.log("stopped; locks released");
                return Ok(());
            }
            Ended::Reload => out.log("reloading the options"),
        }
    }
}

/// The pair to watch: A and B from the command line over the environment,
/// or a named pair of the config file under both.
fn resolve(args: &WatchArgs, m: &ArgMatches) -> Result<PairSpec, DriverError> {
    let Some(b) = &args.b else {
        let file =
            crate::config::load(args.config.config.as_deref()).map_err(DriverError::Usage)?;
        let (pair, resolved) =
            crate::config::resolve_pair(&file, &args.a, Some(m)).map_err(DriverError::Usage)?;
        let opts = resolved
            .opts()
            .map_err(|e| DriverError::Usage(format!("pair {}: {e}", args.a)))?;
        return Ok(PairSpec {
            name: pair.name,
            a: pair.a,
            b: pair.b,
            opts,
        });
    };
    let keys = crate::config::keys::all();
    let mut r = crate::config::Resolved::default();
    r.layer(crate::config::env_layer(&keys).map_err(DriverError::Usage)?);
    r.layer(crate::config::cli_layer(&keys, m));
    Ok(PairSpec {
        name: String::new(),
        a: args.a.clone(),
        b: b.clone(),
        opts: r.opts().map_err(DriverError::Usage)?,
    })
}

/// SIGTERM and SIGINT as `Stop` (and `stop` set, which parks the
/// transfers in flight), SIGHUP as `Reload`.
fn signals(stop: Arc<AtomicBool>) -> Result<Receiver<Control>> {
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let (tx, rx) = unbounded();
    std::thread::spawn(move || {
        for s in signals.forever() {
            let c = if s == SIGHUP {
                Control::Reload
            } else {
                stop.store(true, Ordering::Relaxed);
                Control::Stop
            };
            if tx.send(c).is_err() {
                return;
            }
        }
    });
    Ok(rx)
}

/// Change lines as `sync` prints them, the watch's news with a time
/// stamp, and the status file.
struct WatchOutput {
    sync: Output,
    status: Status,
}

impl WatchOutput {
    fn log(&self, line: &str) {
        let now = chrono::Local::now().format("%Y-%m-%d %H:%M:%S");
        self.sync.console.say(&format!("{now} {line}"));
    }

    fn status_set(&mut self, key: &str, value: serde_json::Value) {
        if let Some(w) = self.status.set(key, value) {
            self.sync.console.warn(&w);
        }
    }
}

impl Reporter for WatchOutput {
    fn event(&mut self, e: Event<'_>) {
        // The plan's size is a full sync's news, not every small pass's.
        if !matches!(e, Event::Planned { .. }) {
            self.sync.event(e);
        }
    }
}

impl WatchReporter for WatchOutput {
    fn note(&mut self, n: Note<'_>) {
        let now = json!(chrono::Local::now().to_rfc3339());
        match n {
            Note::Connected => {
                self.log("connected; both replicas locked; full sync");
                self.status_set("state", json!("syncing"));
            }
            Note::Unwatched { side, why, every } => {
                self.sync.console.warn(&format!(
                    "replica {side:?} cannot be watched ({why}); scanning it every {}s instead",
                    every.as_secs()
                ));
            }
            Note::Passed {
                full,
                paths,
                summary,
                error,
            } => {
                let what = if full {
                    "full sync".to_string()
                } else {
                    format!("{paths} changed path(s)")
                };
                // A pass that found only our own writes echoed back says nothing.
                let did = summary.copied_ab
                    + summary.copied_ba
                    + summary.moved
                    + summary.deleted
                    + summary.soft_deleted
                    + summary.conflicts;
                if full || did > 0 || error.is_some() {
                    let line =
                        crate::sync::one_line(summary, error.map(|e| e.to_string()).as_deref());
                    self.log(&format!("{what}: {line}"));
                }
                self.status.doc["last_sync"] = now.clone();
                if full {
                    self.status.doc["last_full_sync"] = now;
                }
                let syncs = self.status.doc["syncs"].as_u64().unwrap_or(0) + 1;
                self.status.doc["syncs"] = json!(syncs);
                self.status.doc["last_error"] = match error {
                    Some(e) => json!(e.to_string()),
                    None => serde_json::Value::Null,
                };
                self.status.doc["pending"] = json!(0);
                self.status_set("state", json!("watching"));
            }
            Note::Waiting { pending } => {
                if self.status.doc["pending"] != json!(pending) {
                    self.status.doc["pending"] = json!(pending);
                    self.status_set("state", json!("watching"));
                }
            }
            Note::Lost { error, wait } => {
                self.log(&format!(
                    "{error}; trying again in {:.1} s",
                    wait.as_secs_f64()
                ));
                self.status.doc["last_error"] = json!(error.to_string());
                self.status_set("state", json!("reconnecting"));
            }
        }
    }
}
