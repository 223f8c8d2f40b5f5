//! `deltasync serve`: the agent that runs beside a replica, speaks the wire
//! protocol on stdin/stdout, and never touches anything outside its root.
//!
//! [`serve`] is four phases: greet the client, open the root, run the
//! session, shut down. The session is a loop that feeds every incoming
//! message, and every job that ends, to the sans-IO [`Core`](core::Core),
//! which keeps the books (open requests, in-flight limits) and says what to
//! do. One-message requests (listings, hashes, mkdir…) are answered on the
//! loop's thread. Signatures and deltas go to two worker lanes, one for
//! files of 1 MiB and more and one for smaller files, so many small files
//! never wait behind a large one. A patch for a new file is held in the
//! loop until it is whole and run by one writer thread ([`held`]); any
//! other patch runs on a thread of its own (threads are reused,
//! [`pool`]), fed by the loop. Small new files are then made durable and
//! renamed in groups by one commit thread ([`commit`]). All replies leave
//! through one outbox thread. A `Watch` request starts one watcher thread
//! ([`watch`]) that streams the replica's changes until it is cancelled.
//!
//! When the client says goodbye or goes away, open patches keep their
//! verified prefixes, deltas waiting for credit give up, and the agent
//! exits after at most [`SHUTDOWN_GRACE`] whatever its workers are doing:
//! an agent never outlives its client for long.

mod attrs;
mod batch;
mod commit;
pub mod core;
mod held;
mod ids;
mod jobs;
mod list;
mod lock;
mod ops;
mod patch;
mod pool;
mod root;
mod watch;

pub use jobs::partial_name;
pub use list::{excluded, matcher};
pub use root::Root;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender, bounded, unbounded};
use deltasync_wire::{
    Code, Connection, DELTA_WINDOW, FileStat, Message, MessageReader, Partial, Reply, SigShape,
    Span, WireError,
};

use self::core::{Action, Core, Input};
use crate::error::DriverError;
use crate::link::{Credit, Outbox};
use crate::path::RelPath;
use patch::{PatchFeed, PatchJob, Patched};
use pool::Pool;

/// Files this large or larger go to the big-file lane.
const BIG_FILE: u64 = 1 << 20;
/// The longest an agent waits for its workers once the client is gone.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How to run the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeOptions {
    /// The replica root; beneath `jail` when that is set.
    pub root: PathBuf,
    /// Under a forced command, the directory the root must resolve beneath.
    pub jail: Option<PathBuf>,
    /// Refuse every request that would change the replica.
    pub read_only: bool,
    /// Create the root (one level) if it is missing.
    pub mkdir: bool,
}

/// Under an `authorized_keys` forced command (`command="deltasync serve
/// --root /srv/share"`), OpenSSH runs our forced command and puts what the
/// client asked for in `SSH_ORIGINAL_COMMAND`. As rrsync does, we honour the
/// client's request only inside the forced root: its `--root X` is taken
/// relative to the forced root (an absolute X must lie under it), `..` is
/// refused, and a forced `--read-only` cannot be lifted. The result is
/// jailed: [`serve`] resolves the sub-root beneath the forced root, so a
/// symlink inside it cannot lead out.
pub fn forced_options(forced: &ServeOptions, original: &str) -> Result<ServeOptions, String> {
    let refused = |why: String| format!("refused by the forced command on this key: {why}");
    let split = |text: &str| {
        shell_words::split(text)
            .map_err(|e| refused(format!("cannot parse the requested command: {e}")))
    };
    let mut words = split(original)?;
    // Our launch script (`sh -c '…; exec … serve --root X ; …'`): the
    // request is its first `serve` command. Nothing of it runs but ours.
    if words.len() == 3 && words[0] == "sh" && words[1] == "-c" {
        words = split(&words[2])?;
    }
    let at = words.iter().position(|w| w == "serve").ok_or_else(|| {
        refused(format!(
            "only `deltasync serve` is allowed, not {original:?}"
        ))
    })?;
    let mut asked: Option<&str> = None;
    let mut read_only = forced.read_only;
    let mut mkdir = false;
    let mut it = words[at + 1..].iter();
    while let Some(w) = it.next() {
        match w.as_str() {
            "--root" => asked = it.next().map(String::as_str),
            "--read-only" => read_only = true,
            "--mkdir" => mkdir = true,
            other if other.starts_with('-') => {
                return Err(refused(format!("option {other:?} is not allowed")));
            }
            _ => break, // the end of the serve command (`;`)
        }
    }
    let outside = |asked: &str| {
        refused(format!(
            "{asked} is outside the allowed root {}",
            forced.root.display()
        ))
    };
    let asked = asked.unwrap_or(".");
    let asked_path = Path::new(asked);
    let rel = if asked_path.is_absolute() {
        asked_path
            .strip_prefix(&forced.root)
            .map_err(|_| outside(asked))?
            .to_path_buf()
    } else {
        asked_path.to_path_buf()
    };
    let mut sub = PathBuf::new();
    for c in rel.components() {
        match c {
            std::path::Component::Normal(n) => sub.push(n),
            std::path::Component::CurDir => {}
            _ => return Err(outside(asked)),
        }
    }
    let mkdir = mkdir && !sub.as_os_str().is_empty();
    Ok(ServeOptions {
        root: sub,
        jail: Some(forced.root.clone()),
        read_only,
        mkdir,
    })
}

/// Serves one client on `input`/`output` until it says goodbye or hangs up.
pub fn serve(
    options: &ServeOptions,
    input: impl Read + Send + 'static,
    output: impl Write + Send + 'static,
) -> Result<(), DriverError> {
    let (reader, outbox) = greet(input, output)?;
    match open_root(options) {
        Ok(root) => Session::start(Arc::new(root), reader, outbox).run(),
        Err(e) => refuse_everything(reader, outbox, jobs::io_code(&e), &e.to_string()),
    }
}

/// Phase 1: the handshake, then an outbox thread for every reply.
fn greet(
    input: impl Read + Send + 'static,
    output: impl Write + Send + 'static,
) -> Result<(MessageReader<Box<dyn Read + Send>>, Outbox), DriverError> {
    let mut conn = Connection::new(
        Box::new(input) as Box<dyn Read + Send>,
        Box::new(output) as Box<dyn Write + Send>,
    );
    conn.server_handshake(&crate::program_version())?;
    let Connection { reader, writer, .. } = conn;
    Ok((reader, Outbox::spawn(writer, 256)))
}

/// Phase 2: the root, made first if asked (one level).
fn open_root(o: &ServeOptions) -> std::io::Result<Root> {
    match &o.jail {
        Some(jail) => Root::open_beneath(jail, &o.root, o.read_only, o.mkdir),
        None => {
            if o.mkdir && !o.read_only && !o.root.exists() {
                let _ = std::fs::create_dir(&o.root);
            }
            Root::open(&o.root, o.read_only)
        }
    }
}

/// A root we cannot open is an answer to every request, not a silent
/// hang-up the client would mistake for a missing deltasync.
fn refuse_everything(
    mut reader: MessageReader<Box<dyn Read + Send>>,
    outbox: Outbox,
    code: Code,
    why: &str,
) -> Result<(), DriverError> {
    let out = outbox.sender();
    let result = loop {
        match reader.recv() {
            Ok(Some(Message::Bye)) | Ok(None) => break Ok(()),
            Ok(Some(Message::Call { id, .. })) => {
                let _ = out.send(Message::Reply {
                    id,
                    rep: Reply::error(code, b"", why),
                });
            }
            Ok(Some(_)) => {}
            Err(e) => break Err(DriverError::from(e)),
        }
    };
    drop(out);
    let flushed = outbox.finish();
    result?;
    flushed.map_err(DriverError::from)
}

/// What reaches the session loop.
enum Event {
    Input(Input),
    /// The client hung up (`None`) or its stream broke.
    Gone(Option<WireError>),
}

/// A queued signature or delta job.
enum Job {
    Signature {
        id: u64,
        path: RelPath,
        full_sums: bool,
        resume: bool,
        shape: SigShape,
    },
    Delta {
        id: u64,
        path: RelPath,
        skip: Option<Partial>,
        sig: Vec<u8>,
        plan: Option<jobs::Planned>,
        credit: Arc<Credit>,
    },
    Match {
        id: u64,
        path: RelPath,
        spans: Vec<Span>,
        basis: Vec<Span>,
        sig: Vec<u8>,
    },
    Read {
        id: u64,
        paths: Vec<RelPath>,
    },
}

impl Job {
    fn id(&self) -> u64 {
        match self {
            Job::Signature { id, .. }
            | Job::Delta { id, .. }
            | Job::Match { id, .. }
            | Job::Read { id, .. } => *id,
        }
    }
}

/// The feed of a running patch.
struct Feeding {
    chunks: Sender<Option<Vec<u8>>>,
    end: Sender<(FileStat, [u8; 32])>,
}

/// Phase 3's state: the core and the threads and channels it drives.
struct Session {
    root: Arc<Root>,
    core: Core,
    out: Sender<Message>,
    outbox: Outbox,
    events: Receiver<Event>,
    finished: Sender<Event>,
    big: Sender<Job>,
    small: Sender<Job>,
    /// Small checked files, to the group commit.
    commit: Sender<commit::Work>,
    /// Patch threads, reused.
    patches: Pool,
    /// Patches running on those threads now (at most `MAX_PATCH_THREADS`).
    running: Arc<AtomicUsize>,
    /// Small new patches, held until they are whole…
    holding: held::Holding,
    /// …then run one after another by the writer thread, as are `Put`s.
    wholes: Sender<held::Write>,
    /// Jobs sent to the writer and not yet handed on to the commit.
    writing: Arc<AtomicUsize>,
    feeds: HashMap<u64, Feeding>,
    credits: HashMap<u64, Arc<Credit>>,
    threads: Vec<JoinHandle<()>>,
    watch: Option<watch::Watching>,
}

impl Session {
    fn start(
        root: Arc<Root>,
        mut reader: MessageReader<Box<dyn Read + Send>>,
        outbox: Outbox,
    ) -> Session {
        let out = outbox.sender();
        let (events_tx, events) = unbounded::<Event>();
        let finished = events_tx.clone();
        // The reader: the client's messages, then how the stream ended.
        // Bounded by the socket: it waits for the loop only through the
        // unbounded channel, which the loop drains faster than a link fills.
        crate::link::spawn("agent-reader", move || {
            loop {
                match reader.recv() {
                    Ok(Some(m)) => {
                        if events_tx
                            .send(Event::Input(Input::Message(Box::new(m))))
                            .is_err()
                        {
                            return;
                        }
                    }
                    Ok(None) => {
                        let _ = events_tx.send(Event::Gone(None));
                        return;
                    }
                    Err(e) => {
                        let _ = events_tx.send(Event::Gone(Some(e)));
                        return;
                    }
                }
            }
        });
        let (big, big_rx) = unbounded::<Job>();
        let (small, small_rx) = unbounded::<Job>();
        let mut threads = Vec::new();
        for rx in [big_rx, small_rx] {
            let (root, out, done) = (root.clone(), out.clone(), finished.clone());
            threads.push(crate::link::spawn("agent-lane", move || {
                lane(&root, rx, &out, &done)
            }));
        }
        let writing = Arc::new(AtomicUsize::new(0));
        let (commit, commit_rx) = unbounded::<commit::Work>();
        let (r, o, done, w) = (root.clone(), out.clone(), finished.clone(), writing.clone());
        threads.push(crate::link::spawn("agent-commit", move || {
            commit::run(&r, commit_rx, &w, &o, |id| {
                let _ = done.send(Event::Input(Input::Finished(id)));
            });
        }));
        let (wholes, wholes_rx) = unbounded::<held::Write>();
        let (r, ended, to_commit, w) = (
            root.clone(),
            on_end(out.clone(), finished.clone(), commit.clone()),
            commit.clone(),
            writing.clone(),
        );
        threads.push(crate::link::spawn("agent-writer", move || {
            held::writer(&r, wholes_rx, &w, ended, |w| {
                // Gone only while shutting down: the files stay in partial/.
                let _ = to_commit.send(w);
            })
        }));
        Session {
            root,
            core: Core::new(),
            out,
            outbox,
            events,
            finished,
            big,
            small,
            commit,
            patches: Pool::new(),
            running: Arc::new(AtomicUsize::new(0)),
            holding: held::Holding::default(),
            wholes,
            writing,
            feeds: HashMap::new(),
            credits: HashMap::new(),
            threads,
            watch: None,
        }
    }

    /// Phase 3, then phase 4.
    fn run(mut self) -> Result<(), DriverError> {
        let result = loop {
            let input = match self.events.recv() {
                Ok(Event::Input(i)) => i,
                Ok(Event::Gone(None)) | Err(_) => break Ok(()),
                Ok(Event::Gone(Some(e))) => break Err(DriverError::from(e)),
            };
            let mut stop = false;
            for action in self.core.handle(input) {
                stop |= self.act(action);
            }
            if stop {
                break Ok(());
            }
        };
        let all_done = self.shut_down();
        let Session { out, outbox, .. } = self;
        drop(out);
        if !all_done {
            // A worker is stuck (and holds a sender): the outbox would wait
            // for it. What is queued is flushed by the outbox's own thread
            // while the process ends.
            return result;
        }
        let flushed = outbox.finish();
        result?;
        flushed.map_err(DriverError::from)
    }

    /// Carries out one action; true means stop.
    fn act(&mut self, action: Action) -> bool {
        match action {
            Action::Reply(id, rep) => {
                let _ = self.out.send(Message::Reply { id, rep });
            }
            Action::Run(id, req) => ops::run(&self.root, id, req, &self.out),
            Action::Signature {
                id,
                path,
                full_sums,
                resume,
                shape,
            } => {
                let lane = self.lane_for(&path);
                let _ = lane.send(Job::Signature {
                    id,
                    path,
                    full_sums,
                    resume,
                    shape,
                });
            }
            Action::Delta {
                id,
                path,
                skip,
                sig,
                plan,
            } => {
                let credit = Credit::new(DELTA_WINDOW);
                self.credits.insert(id, credit.clone());
                let lane = self.lane_for(&path);
                let _ = lane.send(Job::Delta {
                    id,
                    path,
                    skip,
                    sig,
                    plan,
                    credit,
                });
            }
            Action::Match {
                id,
                path,
                spans,
                basis,
                sig,
            } => {
                let lane = self.lane_for(&path);
                let _ = lane.send(Job::Match {
                    id,
                    path,
                    spans,
                    basis,
                    sig,
                });
            }
            Action::Read { id, paths } => {
                let _ = self.small.send(Job::Read { id, paths });
            }
            Action::Put { id, files } => {
                self.writing.fetch_add(1, Ordering::AcqRel);
                let _ = self.wholes.send(held::Write::Put { id, files });
            }
            Action::StartPatch {
                id,
                path,
                resume_len,
                expect,
                attrs,
                sparse,
                basis,
            } => {
                let job = PatchJob {
                    id,
                    path,
                    resume_len,
                    expect,
                    attrs,
                    sparse,
                    basis,
                };
                if let Some(job) = self.holding.start(job) {
                    self.spawn_patch(job, Vec::new());
                }
            }
            Action::PatchChunk { id, data } => match self.holding.chunk(id, data) {
                held::Chunk::Held => {}
                held::Chunk::Spill(job, chunks) => self.spawn_patch(*job, chunks),
                held::Chunk::NotHeld(data) => {
                    if let Some(f) = self.feeds.get(&id) {
                        if f.chunks.send(Some(data)).is_err() {
                            self.feeds.remove(&id); // the patch failed and already replied
                        }
                    }
                }
            },
            Action::PatchEnd { id, stat, blake3 } => {
                if let Some(whole) = self.holding.end(id, stat, blake3) {
                    self.writing.fetch_add(1, Ordering::AcqRel);
                    let _ = self.wholes.send(held::Write::Patch(Box::new(whole)));
                } else if let Some(f) = self.feeds.remove(&id) {
                    let _ = f.end.send((stat, blake3));
                    let _ = f.chunks.send(None);
                }
            }
            Action::Grant { id, bytes } => {
                if let Some(c) = self.credits.get(&id) {
                    c.grant(bytes);
                }
            }
            Action::Watch { id } => {
                let done = self.finished.clone();
                self.watch = Some(watch::start(
                    self.root.handle_path(),
                    id,
                    self.out.clone(),
                    move || {
                        let _ = done.send(Event::Input(Input::Finished(id)));
                    },
                ));
            }
            Action::Cancel { id } if self.watch.as_ref().is_some_and(|w| w.id == id) => {
                if let Some(w) = self.watch.take() {
                    w.stop();
                }
            }
            Action::Cancel { id } => {
                if let Some(path) = self.holding.cancel(id) {
                    // Held, so nothing was written: free the slot, then say so.
                    let _ = self.finished.send(Event::Input(Input::Finished(id)));
                    let _ = self.out.send(held::cancelled(id, &path));
                }
                // A patch sees its feed close and keeps its prefix; a delta
                // stops at its next chunk.
                self.feeds.remove(&id);
                if let Some(c) = self.credits.remove(&id) {
                    c.cancel();
                }
            }
            Action::Stop => return true,
        }
        // Credits of deltas that have ended are dropped now and then.
        if self.credits.len() > 64 {
            self.credits.retain(|_, c| Arc::strong_count(c) > 1);
        }
        false
    }

    /// Runs `job` on a patch thread of its own, fed `first` (what was held
    /// of it), then whatever comes.
    fn spawn_patch(&mut self, job: PatchJob, first: Vec<Vec<u8>>) {
        let id = job.id;
        // Only this thread adds to `running`, so the check holds.
        if self.running.load(Ordering::Acquire) >= core::MAX_PATCH_THREADS {
            let busy = Reply::error(
                Code::Busy,
                job.path.as_bytes(),
                format!(
                    "{} patches already run on threads of their own",
                    core::MAX_PATCH_THREADS
                ),
            );
            let _ = self.finished.send(Event::Input(Input::Finished(id)));
            let _ = self.out.send(Message::Reply { id, rep: busy });
            return;
        }
        self.running.fetch_add(1, Ordering::AcqRel);
        let running = self.running.clone();
        let (chunks, chunks_rx) = bounded(64);
        let (end, end_rx) = bounded(1);
        let feed = PatchFeed {
            chunks: chunks_rx,
            end: end_rx,
        };
        let (root, ended) = (self.root.clone(), self.ended());
        let started = self.patches.run(move || {
            let patched = patch::patch(&root, job, feed);
            running.fetch_sub(1, Ordering::AcqRel);
            ended(id, patched)
        });
        self.threads.extend(started);
        // The thread runs: it takes these as they go in.
        for c in first {
            let _ = chunks.send(Some(c));
        }
        self.feeds.insert(id, Feeding { chunks, end });
    }

    /// What to do when a patch ends, on a thread of its own.
    fn ended(&self) -> impl Fn(u64, Patched) + Send + 'static {
        on_end(self.out.clone(), self.finished.clone(), self.commit.clone())
    }

    fn lane_for(&self, path: &RelPath) -> &Sender<Job> {
        match self.root.lstat(path) {
            Ok(Some(m)) if m.len() >= BIG_FILE => &self.big,
            _ => &self.small,
        }
    }

    /// Phase 4: unfinished patches see their feeds close and keep their
    /// prefixes; deltas waiting for credit give up; the lanes drain. We
    /// wait for the workers at most `SHUTDOWN_GRACE`. True if they all ended.
    fn shut_down(&mut self) -> bool {
        if let Some(w) = self.watch.take() {
            w.stop();
        }
        self.feeds.clear();
        for c in self.credits.values() {
            c.cancel();
        }
        let Session {
            big,
            small,
            commit,
            patches,
            holding,
            wholes,
            ..
        } = self;
        *holding = held::Holding::default(); // nothing of them was written
        *wholes = bounded(0).0;
        // Replacing the senders with dead ones closes the lanes, and the
        // commit once the patches still running are done.
        *big = bounded(0).0;
        *small = bounded(0).0;
        *commit = bounded(0).0;
        *patches = Pool::new(); // idle patch threads end
        let until = Instant::now() + SHUTDOWN_GRACE;
        while self.threads.iter().any(|t| !t.is_finished()) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut all = true;
        for t in std::mem::take(&mut self.threads) {
            if t.is_finished() {
                let _ = t.join();
            } else {
                all = false; // detached: the process ends without it
            }
        }
        all
    }
}

/// What to do when a patch ends, wherever it ran.
fn on_end(
    out: Sender<Message>,
    done: Sender<Event>,
    commit: Sender<commit::Work>,
) -> impl Fn(u64, Patched) + Send + 'static {
    move |id, patched| match patched {
        Patched::Reply(reply) => {
            // The slot is freed before the client hears of it, so a client
            // that starts the next patch on this reply never finds the
            // agent still counting this one.
            let _ = done.send(Event::Input(Input::Finished(id)));
            let _ = out.send(reply);
        }
        // The commit frees the slot and replies. If it is gone (shutting
        // down), the checked new version stays in partial/ for the next run.
        Patched::Ready(ready) => {
            let _ = commit.send(commit::Work::One(ready));
        }
    }
}

/// A worker lane: runs signature and delta jobs in order.
fn lane(root: &Root, jobs: Receiver<Job>, out: &Sender<Message>, done: &Sender<Event>) {
    for job in jobs {
        let id = job.id();
        match job {
            Job::Signature {
                path,
                full_sums,
                resume,
                shape,
                ..
            } => jobs::signature(root, id, &path, full_sums, resume, &shape, out),
            Job::Delta {
                path,
                skip,
                sig,
                plan,
                credit,
                ..
            } => {
                let against = match &plan {
                    Some(planned) => jobs::Against::Plan(planned),
                    None => jobs::Against::Signature(&sig),
                };
                jobs::delta(root, id, &path, skip, against, credit, out)
            }
            Job::Match {
                path,
                spans,
                basis,
                sig,
                ..
            } => jobs::matches(root, id, &path, &spans, &basis, &sig, out),
            Job::Read { paths, .. } => batch::read(root, id, &paths, out),
        }
        let _ = done.send(Event::Input(Input::Finished(id)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forced_command_confines_the_request() {
        let forced = ServeOptions {
            root: "/srv/share".into(),
            jail: None,
            read_only: false,
            mkdir: false,
        };
        let ok = |cmd: &str| forced_options(&forced, cmd);
        let jailed = |root: &str, mkdir| ServeOptions {
            root: root.into(),
            jail: Some("/srv/share".into()),
            read_only: false,
            mkdir,
        };
        assert_eq!(ok("deltasync serve --root .").unwrap(), jailed("", false));
        assert_eq!(
            ok("deltasync serve --root docs/x --mkdir").unwrap(),
            jailed("docs/x", true)
        );
        assert_eq!(
            ok("\"$HOME\"/bin/deltasync serve --root /srv/share/a").unwrap(),
            jailed("a", false)
        );
        // The client's one-exec launch script asks the same.
        let script = "sh -c 'b=\"$HOME\"/.cache/d; if [ -x \"$b\" ]; then exec \"$b\" serve --root docs --mkdir ; fi; exit 127'";
        assert_eq!(ok(script).unwrap(), jailed("docs", true));
        for bad in [
            "sh -c 'exec deltasync serve --root ../etc ; fi'",
            "deltasync serve --root ../etc",
            "deltasync serve --root /etc",
            "rm -rf /",
            "deltasync serve --root . --evil",
        ] {
            let e = ok(bad).unwrap_err();
            assert!(e.starts_with("refused by the forced command"), "{e}");
        }
        let ro = ServeOptions {
            read_only: true,
            ..forced.clone()
        };
        assert!(
            forced_options(&ro, "deltasync serve --root a")
                .unwrap()
                .read_only
        );
    }

    /// A symlink inside the jail cannot become the root, whatever the
    /// request says: `etc -> /etc` and `esc -> /outside` are refused.
    #[test]
    fn a_jailed_root_never_resolves_through_a_symlink_out() {
        let t = tempfile::tempdir().unwrap();
        let jail = t.path().join("jail");
        let outside = t.path().join("outside");
        std::fs::create_dir_all(jail.join("inner")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, jail.join("esc")).unwrap();
        std::os::unix::fs::symlink("inner", jail.join("ok")).unwrap();
        std::os::unix::fs::symlink("../outside", jail.join("rel")).unwrap();
        let forced = ServeOptions {
            root: jail.clone(),
            jail: None,
            read_only: false,
            mkdir: false,
        };
        for sub in ["esc", "rel", "esc/new"] {
            let o =
                forced_options(&forced, &format!("deltasync serve --root {sub} --mkdir")).unwrap();
            assert!(open_root(&o).is_err(), "{sub} opened");
        }
        assert!(!outside.join("new").exists());
        let o = forced_options(&forced, "deltasync serve --root ok").unwrap();
        assert_eq!(open_root(&o).unwrap().shown(), jail.join("ok"));
    }
}
