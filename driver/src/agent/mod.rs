//! `deltasync serve`: the agent that runs beside a replica, speaks the wire
//! protocol on stdin/stdout, and never touches anything outside its root.
//!
//! The main loop reads requests and answers the quick ones itself (listing,
//! mkdir, remove…). Signatures and deltas go to two worker lanes, one for
//! files of 1 MiB and more and one for smaller files, so many small files
//! never wait behind a large one. Each patch runs on a thread of its own,
//! fed by the main loop. All replies leave through one outbox thread.

mod jobs;
mod list;
mod ops;
mod root;

pub use jobs::partial_name;
pub use list::{excluded, matcher};
pub use root::{Root, system_time};

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use crossbeam::channel::{Sender, bounded, unbounded};
use deltasync_wire::{Connection, DELTA_WINDOW, Message, Partial};

use crate::error::DriverError;
use crate::link::{Credit, Outbox, code};
use crate::path::RelPath;
use jobs::{PatchFeed, error};

/// Files this large or larger go to the big-file lane.
const BIG_FILE: u64 = 1 << 20;
/// Most bytes of signature a delta request may carry.
const MAX_SIGNATURE: usize = 256 << 20;

/// How to run the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeOptions {
    /// The replica root.
    pub root: PathBuf,
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
/// refused, and a forced `--read-only` cannot be lifted.
pub fn forced_options(forced: &ServeOptions, original: &str) -> Result<ServeOptions, String> {
    let words = shell_words::split(original)
        .map_err(|e| format!("cannot parse the requested command: {e}"))?;
    let at = words.iter().position(|w| w == "serve").ok_or_else(|| {
        format!("only `deltasync serve` is allowed with this key, not {original:?}")
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
            other => return Err(format!("option {other:?} is not allowed with this key")),
        }
    }
    let asked = asked.unwrap_or(".");
    let asked_path = std::path::Path::new(asked);
    let rel = if asked_path.is_absolute() {
        asked_path
            .strip_prefix(&forced.root)
            .map_err(|_| {
                format!(
                    "{asked} is outside the allowed root {}",
                    forced.root.display()
                )
            })?
            .to_path_buf()
    } else {
        asked_path.to_path_buf()
    };
    let mut root = forced.root.clone();
    for c in rel.components() {
        match c {
            std::path::Component::Normal(n) => root.push(n),
            std::path::Component::CurDir => {}
            _ => {
                return Err(format!(
                    "{asked} is outside the allowed root {}",
                    forced.root.display()
                ));
            }
        }
    }
    let mkdir = mkdir && root != forced.root;
    Ok(ServeOptions {
        root,
        read_only,
        mkdir,
    })
}

/// A queued signature or delta job.
enum Job {
    Signature {
        id: u64,
        path: RelPath,
        full_sums: bool,
        resume: bool,
    },
    Delta {
        id: u64,
        path: RelPath,
        skip: Option<Partial>,
        sig: Vec<u8>,
        credit: Arc<Credit>,
    },
}

/// A request still receiving messages.
enum Pending {
    Sig {
        path: RelPath,
        skip: Option<Partial>,
        sig: Vec<u8>,
    },
    Patch {
        chunks: Sender<Option<Vec<u8>>>,
        end: Sender<(deltasync_wire::FileStat, [u8; 32])>,
    },
}

/// Serves one client on `input`/`output` until it says goodbye or hangs up.
pub fn serve(
    options: &ServeOptions,
    input: impl Read + Send + 'static,
    output: impl Write + Send + 'static,
) -> Result<(), DriverError> {
    let mut conn = Connection::new(input, output);
    conn.server_handshake(&crate::program_version())?;
    let Connection {
        mut reader, writer, ..
    } = conn;
    let outbox = Outbox::spawn(writer, 256);
    let out = outbox.sender();
    // Greet first, then open the root: a root we cannot open is an answer
    // to every request, not a silent hang-up the client would mistake for
    // a missing deltasync.
    if options.mkdir && !options.read_only && !options.root.exists() {
        let _ = std::fs::create_dir(&options.root);
    }
    let root = match Root::open(&options.root, options.read_only) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            let why = e.to_string();
            let result = loop {
                match reader.recv() {
                    Ok(Some(Message::Bye)) | Ok(None) => break Ok(()),
                    Ok(Some(m)) => {
                        let _ = out.send(Message::Error {
                            id: m.id().unwrap_or(0),
                            code: code::FILE_IO,
                            path: Vec::new(),
                            message: why.clone(),
                        });
                    }
                    Err(e) => break Err(DriverError::from(e)),
                }
            };
            drop(out);
            let flushed = outbox.finish();
            result?;
            return flushed.map_err(DriverError::from);
        }
    };

    let (big_tx, big_rx) = unbounded::<Job>();
    let (small_tx, small_rx) = unbounded::<Job>();
    let mut lanes = Vec::new();
    for rx in [big_rx, small_rx] {
        let (root, out) = (root.clone(), out.clone());
        lanes.push(std::thread::spawn(move || {
            for job in rx {
                match job {
                    Job::Signature {
                        id,
                        path,
                        full_sums,
                        resume,
                    } => jobs::signature(&root, id, &path, full_sums, resume, &out),
                    Job::Delta {
                        id,
                        path,
                        skip,
                        sig,
                        credit,
                    } => jobs::delta(&root, id, &path, skip, &sig, credit, &out),
                }
            }
        }));
    }
    let lane_for = |path: &RelPath| match root.lstat(path) {
        Ok(Some(m)) if m.len() >= BIG_FILE => &big_tx,
        _ => &small_tx,
    };

    let mut pending: HashMap<u64, Pending> = HashMap::new();
    let mut credits: HashMap<u64, Arc<Credit>> = HashMap::new();
    let mut patches: Vec<std::thread::JoinHandle<()>> = Vec::new();
    let result = loop {
        let msg = match reader.recv() {
            Ok(Some(Message::Bye)) | Ok(None) => break Ok(()),
            Ok(Some(m)) => m,
            Err(e) => break Err(DriverError::from(e)),
        };
        let reply = |m: Message| {
            let _ = out.send(m);
        };
        // Shape-check the path of every request before anything else.
        let path_of = |id: u64, raw: &[u8]| {
            RelPath::parse(raw)
                .map_err(|e| {
                    reply(Message::Error {
                        id,
                        code: code::REFUSED,
                        path: raw.to_vec(),
                        message: e.to_string(),
                    })
                })
                .ok()
        };
        match msg {
            Message::List {
                id,
                under,
                filters,
                checksum,
                if_digest,
            } => {
                let Some(under) = path_of(id, &under) else {
                    continue;
                };
                match list::matcher(&filters) {
                    Err(e) => reply(error(id, code::REFUSED, &under, e)),
                    Ok(m) => {
                        match list::send_listing(&root, &under, &m, checksum, if_digest, id, &out) {
                            Ok(()) => {}
                            Err(e) => reply(error(
                                id,
                                if e.kind() == std::io::ErrorKind::NotFound {
                                    code::VANISHED
                                } else {
                                    code::FILE_IO
                                },
                                &under,
                                e,
                            )),
                        }
                    }
                }
            }
            Message::SigRequest {
                id,
                path,
                full_sums,
                resume,
            } => {
                let Some(path) = path_of(id, &path) else {
                    continue;
                };
                let _ = lane_for(&path).send(Job::Signature {
                    id,
                    path,
                    full_sums,
                    resume,
                });
            }
            Message::DeltaRequest { id, path, skip } => {
                let Some(path) = path_of(id, &path) else {
                    continue;
                };
                pending.insert(
                    id,
                    Pending::Sig {
                        path,
                        skip,
                        sig: Vec::new(),
                    },
                );
            }
            Message::SigChunk { id, data } => match pending.get_mut(&id) {
                Some(Pending::Sig { sig, path, .. }) => {
                    if sig.len() + data.len() > MAX_SIGNATURE {
                        reply(error(
                            id,
                            code::DATA,
                            path,
                            format!("signature larger than {MAX_SIGNATURE} bytes"),
                        ));
                        pending.remove(&id);
                    } else {
                        sig.extend_from_slice(&data);
                    }
                }
                _ => reply(Message::Error {
                    id,
                    code: code::REFUSED,
                    path: Vec::new(),
                    message: "signature chunk for no delta request".into(),
                }),
            },
            Message::SigEnd { id, .. } => match pending.remove(&id) {
                Some(Pending::Sig { path, skip, sig }) => {
                    let credit = Credit::new(DELTA_WINDOW);
                    // Finished deltas' credits are dropped now and then.
                    credits.retain(|_, c| Arc::strong_count(c) > 1);
                    credits.insert(id, credit.clone());
                    let _ = lane_for(&path).send(Job::Delta {
                        id,
                        path,
                        skip,
                        sig,
                        credit,
                    });
                }
                other => {
                    if let Some(p) = other {
                        pending.insert(id, p);
                    }
                    reply(Message::Error {
                        id,
                        code: code::REFUSED,
                        path: Vec::new(),
                        message: "signature end for no delta request".into(),
                    });
                }
            },
            Message::PatchRequest {
                id,
                path,
                resume_len,
                expect,
            } => {
                let Some(path) = path_of(id, &path) else {
                    continue;
                };
                let (chunks, chunks_rx) = bounded(64);
                let (end, end_rx) = bounded(1);
                pending.insert(id, Pending::Patch { chunks, end });
                let feed = PatchFeed {
                    chunks: chunks_rx,
                    end: end_rx,
                };
                let (root, out) = (root.clone(), out.clone());
                // A finished thread keeps its stack until joined or
                // detached: drop (detach) the finished ones, or a run of
                // 100,000 files would hold 100,000 dead stacks.
                patches.retain(|h| !h.is_finished());
                patches.push(std::thread::spawn(move || {
                    jobs::patch(root, id, path, resume_len, expect, feed, out)
                }));
            }
            Message::DeltaChunk { id, data } => {
                if let Some(Pending::Patch { chunks, .. }) = pending.get(&id) {
                    if chunks.send(Some(data)).is_err() {
                        pending.remove(&id); // the patch failed and already replied
                    }
                }
            }
            Message::DeltaEnd {
                id, stat, blake3, ..
            } => {
                if let Some(Pending::Patch { chunks, end }) = pending.remove(&id) {
                    let _ = end.send((stat, blake3));
                    let _ = chunks.send(None);
                }
            }
            // The client abandons a request: a patch keeps its prefix, a
            // delta stops at its next chunk.
            Message::Error { id, .. } => {
                pending.remove(&id);
                if let Some(c) = credits.remove(&id) {
                    c.cancel();
                }
            }
            Message::Credit { id, bytes } => {
                if let Some(c) = credits.get(&id) {
                    c.grant(bytes);
                }
            }
            other => match ops::handle(&root, &other) {
                Some(answer) => reply(answer),
                None => reply(Message::Error {
                    id: other.id().unwrap_or(0),
                    code: code::REFUSED,
                    path: Vec::new(),
                    message: format!("unexpected message {other:?}"),
                }),
            },
        }
    };
    // Unfinished patches see their channels close and keep their prefixes;
    // deltas waiting for credit give up.
    pending.clear();
    for c in credits.values() {
        c.cancel();
    }
    drop((big_tx, small_tx));
    for t in lanes.into_iter().chain(patches) {
        let _ = t.join();
    }
    drop(out);
    let flushed = outbox.finish();
    result?;
    flushed.map_err(DriverError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forced_command_confines_the_request() {
        let forced = ServeOptions {
            root: "/srv/share".into(),
            read_only: false,
            mkdir: false,
        };
        let ok = |cmd: &str| forced_options(&forced, cmd);
        assert_eq!(
            ok("deltasync serve --root .").unwrap().root,
            PathBuf::from("/srv/share")
        );
        assert_eq!(
            ok("deltasync serve --root docs/x --mkdir").unwrap(),
            ServeOptions {
                root: "/srv/share/docs/x".into(),
                read_only: false,
                mkdir: true
            }
        );
        assert_eq!(
            ok("\"$HOME\"/bin/deltasync serve --root /srv/share/a")
                .unwrap()
                .root,
            PathBuf::from("/srv/share/a")
        );
        assert!(ok("deltasync serve --root ../etc").is_err());
        assert!(ok("deltasync serve --root /etc").is_err());
        assert!(ok("rm -rf /").is_err());
        assert!(ok("deltasync serve --root . --evil").is_err());
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
}
