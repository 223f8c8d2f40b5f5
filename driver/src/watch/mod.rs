//! `deltasync watch`: one long-running sync that follows both replicas.
//!
//! The watch opens a sync [`Session`] (agents, state, locks) and keeps it:
//!
//! 1. it asks each agent to `Watch` its replica; the changes stream back
//!    on the same connection as everything else (a subscription, apart
//!    from the request traffic) into one [`Pending`] set;
//! 2. it runs one full pass;
//! 3. then it sleeps until something is due: a path quiet for `settle`
//!    gets a pass over the settled paths only ([`Scope::Paths`]); a lost
//!    event or too many paths gets a full pass; so does every
//!    `full_every`; a side that cannot be watched (the kernel's watch
//!    limit) is covered by a full pass every `scan_every`;
//! 4. every `keepalive` of quiet it asks each agent a one-line question,
//!    so a dead link shows up within twice `keepalive` (the answer may
//!    take as long as `keepalive`, 2 s to 15 s).
//!
//! Passes are sync's own, so the two-way rules, the safety stops and the
//! state per change all hold. When the link or an agent dies, the session
//! is dropped (a dead agent's lock goes with it) and the watch reconnects
//! with [`Backoff`], then runs a full pass, which finds whatever changed
//! on either side meanwhile. A control message stops it (SIGTERM, SIGINT:
//! the caller also sets the job's `stop` flag, so the transfers in flight
//! are parked, their verified prefixes kept; then the locks are released)
//! or asks for a reload (SIGHUP), which the caller carries out.

mod pending;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender, bounded, select};
use deltasync_wire::{Code, Reply, Request};

pub use pending::{Backoff, Pending};

use crate::copy::Reporter;
use crate::error::DriverError;
use crate::path::RelPath;
use crate::sync::{Scope, Session, Side, SyncJob, SyncSummary};

/// How a watch paces itself.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// A changed path is synced once it has been quiet this long.
    pub settle: Duration,
    /// A full pass this often, for whatever the watchers missed.
    pub full_every: Duration,
    /// A full pass this often while a side cannot be watched.
    pub scan_every: Duration,
    /// Ask the agents a question after this long without traffic.
    pub keepalive: Duration,
    /// The first and the longest wait between reconnects.
    pub backoff: (Duration, Duration),
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            settle: Duration::from_secs(2),
            full_every: Duration::from_secs(3600),
            scan_every: Duration::from_secs(60),
            keepalive: Duration::from_secs(30),
            backoff: (Duration::from_secs(1), Duration::from_secs(60)),
        }
    }
}

/// What the caller asks of a running watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Finish the pass in flight, release the locks, and return.
    Stop,
    /// Return so the caller can reload its configuration and start again.
    Reload,
}

/// How a watch ended, when it ended well.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// Told to stop.
    Stopped,
    /// Told to reload.
    Reload,
}

/// What a watch tells its caller, for logs and the status file.
#[derive(Debug)]
#[allow(missing_docs)] // each variant says what its fields are
pub enum Note<'a> {
    /// Connected, both locks held; a full pass follows.
    Connected,
    /// A side cannot be watched; it is scanned every `every` instead.
    Unwatched {
        side: Side,
        why: &'a str,
        every: Duration,
    },
    /// A pass ended: over everything (`paths` = 0) or over `paths` paths.
    Passed {
        full: bool,
        paths: usize,
        summary: &'a SyncSummary,
        error: Option<&'a DriverError>,
    },
    /// Changes wait to settle.
    Waiting { pending: usize },
    /// The link or an agent is gone (or could not be reached): the next
    /// try is after `wait`.
    Lost {
        error: &'a DriverError,
        wait: Duration,
    },
}

/// A reporter that also hears the watch's own news.
pub trait WatchReporter: Reporter {
    /// Handles one note.
    fn note(&mut self, n: Note<'_>);
}

/// What the two watchers have said, shared with the connection threads.
#[derive(Debug, Default)]
struct Heard {
    pending: Pending,
    /// A side's watch ended on its own: why.
    unwatched: [Option<String>; 2],
    /// Whether the caller has heard of it.
    told: [bool; 2],
    /// The connection ended: why.
    lost: Option<String>,
}

/// What one turn of the loop takes from [`Heard`].
struct Turn {
    /// Paths quiet for `settle`, taken out of the pending set.
    settled: Vec<RelPath>,
    /// The connection ended: why.
    lost: Option<String>,
    /// Paths still settling.
    waiting: usize,
    /// A watcher lost events: a full pass is wanted.
    overflowed: bool,
    /// When the next waiting path will have settled.
    due: Option<Instant>,
    /// Sides that stopped watching since the last turn, and why.
    news: Vec<(usize, String)>,
    /// Some side cannot be watched.
    unwatched: bool,
}

impl Heard {
    fn turn(&mut self, now: Instant, settle: Duration) -> Turn {
        let settled = self.pending.take_settled(now, settle);
        let mut news = Vec::new();
        for i in 0..2 {
            if let (Some(why), false) = (&self.unwatched[i], self.told[i]) {
                news.push((i, why.clone()));
                self.told[i] = true;
            }
        }
        Turn {
            settled,
            lost: self.lost.take(),
            waiting: self.pending.len(),
            overflowed: self.pending.overflow,
            due: self.pending.next_due(settle),
            news,
            unwatched: self.unwatched.iter().any(Option::is_some),
        }
    }
}

/// Runs the watch until `control` says otherwise or a problem needs a
/// person (a safety stop, a refused login, a bad option).
pub fn watch(
    job: &SyncJob,
    o: &WatchOptions,
    control: &Receiver<Control>,
    reporter: &mut dyn WatchReporter,
) -> Result<Ended, DriverError> {
    let mut backoff = Backoff::new(o.backoff.0, o.backoff.1);
    loop {
        let error = match Session::open_watching(job) {
            Ok(session) => match follow(job, o, session, control, reporter, &mut backoff)? {
                Some(ended) => return Ok(ended),
                None => continue, // lost, and the wait is over
            },
            Err(e) if retryable(&e) => e,
            Err(e) => return Err(e),
        };
        let wait = backoff.wait(jitter());
        reporter.note(Note::Lost {
            error: &error,
            wait,
        });
        if let Some(c) = wait_for(control, wait) {
            return Ok(ended(c));
        }
    }
}

/// True for what trying again later can fix: a link, a host, a lock.
fn retryable(e: &DriverError) -> bool {
    matches!(
        e,
        DriverError::Wire(_)
            | DriverError::Ssh(_)
            | DriverError::Startup(_)
            | DriverError::LockHeld(_)
    )
}

fn ended(c: Control) -> Ended {
    match c {
        Control::Stop => Ended::Stopped,
        Control::Reload => Ended::Reload,
    }
}

/// Sleeps `wait` unless a control message comes first.
fn wait_for(control: &Receiver<Control>, wait: Duration) -> Option<Control> {
    control.recv_timeout(wait).ok()
}

fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1000) / 1000.0
}

/// Follows one session. `Some` when the watch is over; `None` when the
/// session was lost and the backoff wait has passed.
fn follow(
    job: &SyncJob,
    o: &WatchOptions,
    mut session: Session,
    control: &Receiver<Control>,
    reporter: &mut dyn WatchReporter,
    backoff: &mut Backoff,
) -> Result<Option<Ended>, DriverError> {
    reporter.note(Note::Connected);
    let heard = Arc::new(Mutex::new(Heard::default()));
    let (wake, woken) = bounded::<()>(1);
    let subscribed: Result<Vec<u64>, DriverError> = (0..2)
        .map(|i| {
            let subscriber = listen(i, heard.clone(), wake.clone());
            session.sides()[i].subscribe(Request::Watch, subscriber)
        })
        .collect();
    if let Err(e) = subscribed {
        return lost(session, e, control, reporter, backoff);
    }
    let filter =
        crate::agent::matcher(&crate::sync::what_to_list(job).0).map_err(DriverError::Usage)?;
    let mut scope = Some(Scope::Full);
    let mut last_full = Instant::now();
    let mut last_traffic = Instant::now();
    loop {
        // Heard before any pass, so no run of passes can delay a stop.
        if let Ok(c) = control.try_recv() {
            session.close(true, &mut SyncSummary::default())?;
            return Ok(Some(ended(c)));
        }
        if let Some(scope) = scope.take() {
            let mut summary = SyncSummary::default();
            let result = session.pass(job, &scope, reporter, &mut summary);
            let result = crate::sync::partial(result, &summary);
            let full = scope == Scope::Full;
            let paths = match &scope {
                Scope::Paths(p) => p.len(),
                _ => 0,
            };
            reporter.note(Note::Passed {
                full,
                paths,
                summary: &summary,
                error: result.as_ref().err(),
            });
            // A full pass that ended, well or partly, restarts the clock:
            // a file that keeps failing must not make every turn a full pass.
            if full && !result.as_ref().is_err_and(retryable) {
                last_full = Instant::now();
            }
            match result {
                Ok(()) => {
                    if full {
                        backoff.reset();
                    }
                }
                Err(e) if retryable(&e) => return lost(session, e, control, reporter, backoff),
                // The loop goes on; a signal's `Stop` is waiting for it.
                Err(
                    DriverError::Partial { .. }
                    | DriverError::NoSpace(_)
                    | DriverError::TimeBudget { .. }
                    | DriverError::Interrupted,
                ) => {}
                Err(e) => {
                    let _ = session.close(false, &mut SyncSummary::default());
                    return Err(e);
                }
            }
            last_traffic = Instant::now();
        }
        // Sleep until something is due.
        let now = Instant::now();
        // What the watchers said, read under one lock.
        let Turn {
            settled,
            lost: lost_why,
            waiting,
            overflowed,
            due,
            news,
            unwatched,
        } = heard
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .turn(now, o.settle);
        if let Some(why) = lost_why {
            let e = DriverError::Wire(deltasync_wire::WireError::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                why,
            )));
            return lost(session, e, control, reporter, backoff);
        }
        for (i, why) in &news {
            let side = if *i == 0 { Side::A } else { Side::B };
            reporter.note(Note::Unwatched {
                side,
                why,
                every: o.scan_every,
            });
        }
        let scan = if unwatched {
            o.scan_every.min(o.full_every)
        } else {
            o.full_every
        };
        // An overflow asks for a full pass, but at most one per `settle`:
        // a flood of events (or a hostile agent) cannot keep us relisting.
        let overflow_at = last_full + o.settle;
        if (overflowed && now >= overflow_at) || now >= last_full + scan {
            heard
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pending
                .clear();
            scope = Some(Scope::Full);
            continue;
        }
        let settled: BTreeSet<RelPath> = settled
            .into_iter()
            .filter(|p| !crate::agent::excluded(&filter, p, false))
            .collect();
        if !settled.is_empty() {
            scope = Some(Scope::Paths(settled));
            continue;
        }
        if waiting > 0 {
            reporter.note(Note::Waiting { pending: waiting });
        }
        if now >= last_traffic + o.keepalive {
            if let Err(e) = ping(&session, o.keepalive) {
                return lost(session, e, control, reporter, backoff);
            }
            last_traffic = Instant::now();
        }
        let next = [
            due,
            overflowed.then_some(overflow_at),
            Some(last_full + scan),
            Some(last_traffic + o.keepalive),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now + o.keepalive);
        let wait = next.saturating_duration_since(Instant::now());
        select! {
            recv(control) -> c => {
                let c = c.unwrap_or(Control::Stop);
                session.close(true, &mut SyncSummary::default())?;
                return Ok(Some(ended(c)));
            }
            recv(woken) -> _ => {}
            default(wait) => {}
        }
    }
}

/// The subscriber for side `i`'s watch: its replies into `heard`, and a
/// wake-up for the loop.
fn listen(i: usize, heard: Arc<Mutex<Heard>>, wake: Sender<()>) -> crate::client::Subscriber {
    Box::new(move |rep| {
        let now = Instant::now();
        let mut h = heard.lock().unwrap_or_else(|e| e.into_inner());
        match rep {
            Ok(Reply::Changed { paths, overflow }) => {
                if overflow {
                    h.pending.overflow = true;
                }
                for p in paths {
                    // A path that breaks the rules is not ours to follow;
                    // the next full pass sees whatever is really there.
                    match RelPath::parse(&p) {
                        Ok(p) => h.pending.add(p, now),
                        Err(_) => h.pending.overflow = true,
                    }
                }
            }
            Ok(Reply::Error { code, message, .. }) => {
                let why = match code {
                    Code::Busy => message,
                    _ => format!("the watch ended: {message}"),
                };
                h.unwatched[i] = Some(why);
            }
            Ok(other) => {
                h.unwatched[i] = Some(format!("the watch ended: {other:?}"));
            }
            Err(e) => h.lost = Some(e.to_string()),
        }
        drop(h);
        let _ = wake.try_send(());
    })
}

/// One short question to each agent, answered within `keepalive` (2 s
/// to 15 s), or the link is lost.
fn ping(session: &Session, keepalive: Duration) -> Result<(), DriverError> {
    let wait = keepalive.clamp(Duration::from_secs(2), Duration::from_secs(15));
    for a in session.sides() {
        a.call_within(Request::Space, wait)?;
    }
    Ok(())
}

/// Drops a lost session, reports it, waits out the backoff.
fn lost(
    session: Session,
    error: DriverError,
    control: &Receiver<Control>,
    reporter: &mut dyn WatchReporter,
    backoff: &mut Backoff,
) -> Result<Option<Ended>, DriverError> {
    session.abandon();
    let wait = backoff.wait(jitter());
    reporter.note(Note::Lost {
        error: &error,
        wait,
    });
    Ok(wait_for(control, wait).map(ended))
}
