//! The executor's side of batches (`batch.rs` forms them, this asks): a
//! closed batch goes to the source as one `Read`; its `Files` go to the
//! destination as one `Put`; its `Placed` ends each transfer as a patch's
//! `Done` or error would. A file the source could not put in the batch
//! (it changed while read, or grew past what a batch carries) goes again
//! the usual way; one that failed its check at the destination too.
//!
//! At most `MAX_PUTS` batches are between their `Read` and their
//! `Placed` at once, so the destination's limit is never met and the
//! client holds at most that many batches' bytes.

use deltasync_wire::{Code, Failed, FileData, Message, PutFile, Reply, Request};

use super::{Exec, Sent};
use crate::agent::core::MAX_PUTS;
use crate::error::DriverError;

impl Exec<'_> {
    /// Sends closed batches to the source while fewer than `MAX_PUTS` are
    /// out.
    pub(super) fn send_batches(&mut self) -> Result<(), DriverError> {
        while self.reads.len() + self.puts.len() < MAX_PUTS {
            let Some(batch) = self.batches.ready.pop_front() else {
                break;
            };
            // (Every transfer of a batch is still open: only its `Files`
            // or `Placed` ends it. Kept to what is, all the same.)
            let (batch, paths): (Vec<usize>, Vec<Vec<u8>>) = batch
                .into_iter()
                .filter_map(|i| self.xfers.get(&i).map(|x| (i, x.src.as_bytes().to_vec())))
                .unzip();
            if batch.is_empty() {
                continue;
            }
            let id = self.src.start(Request::Read { paths })?;
            self.reads.insert(id, batch);
        }
        Ok(())
    }

    /// The source's answer to a `Read`: what it read goes on as a `Put`.
    pub(super) fn on_files(&mut self, batch: Vec<usize>, rep: Reply) -> Result<(), DriverError> {
        let files = match rep {
            Reply::Files(files) if files.len() == batch.len() => files,
            Reply::Error { code, message, .. } => {
                return self.all_failed(&batch, code, message, true);
            }
            other => return Err(violation("source", &other)),
        };
        let mut put = Vec::with_capacity(batch.len());
        let mut sent = Vec::with_capacity(batch.len());
        for (i, got) in batch.into_iter().zip(files) {
            match got {
                Ok(file) => {
                    let Some(x) = self.xfers.get_mut(&i) else {
                        continue;
                    };
                    x.sent = Some(sent_of(&file));
                    let size = file.stat.size;
                    self.observer.progress(&x.dst, size, size);
                    put.push(PutFile {
                        path: x.dst.as_bytes().to_vec(),
                        expect: x.expect,
                        attrs: x.attrs.clone(),
                        file,
                    });
                    sent.push(i);
                }
                Err(Failed { code, message }) => self.finish(i, Some((code, message)), true)?,
            }
        }
        if !put.is_empty() {
            let id = self.dst.next_id();
            self.out.control(Message::Call {
                id,
                req: Request::Put { files: put },
            });
            self.puts.insert(id, sent);
        }
        self.send_batches()
    }

    /// The destination's answer to a `Put`.
    pub(super) fn on_placed(&mut self, batch: Vec<usize>, rep: Reply) -> Result<(), DriverError> {
        let placed = match rep {
            Reply::Placed(placed) if placed.len() == batch.len() => placed,
            Reply::Error { code, message, .. } => {
                return self.all_failed(&batch, code, message, false);
            }
            other => return Err(violation("destination", &other)),
        };
        for (i, p) in batch.into_iter().zip(placed) {
            self.finish(i, p.map(|f| (f.code, f.message)), false)?;
        }
        self.send_batches()
    }

    /// A whole batch refused (an agent at a limit, say): each file ends
    /// as that error, which `finish` may retry the usual way.
    fn all_failed(
        &mut self,
        batch: &[usize],
        code: Code,
        message: String,
        from_src: bool,
    ) -> Result<(), DriverError> {
        for &i in batch {
            self.finish(i, Some((code, message.clone())), from_src)?;
        }
        self.send_batches()
    }
}

/// What a batched file moved: all of it, as literal bytes.
fn sent_of(f: &FileData) -> Sent {
    Sent {
        stat: f.stat,
        blake3: f.blake3,
        literal: f.stat.size,
        matched: 0,
    }
}

fn violation(from: &str, rep: &Reply) -> DriverError {
    let mut shown = format!("{rep:?}");
    shown.truncate(120);
    DriverError::Wire(deltasync_wire::WireError::Violation(format!(
        "the {from} agent answered a batch with {shown}"
    )))
}
