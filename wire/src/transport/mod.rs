//! The byte pipes a connection runs over.
//!
//! - [`spawn`]: a local child process (`deltasync serve` for local paths, or
//!   an `--rsh` command such as `ssh -p 2222 host deltasync serve ...`);
//! - [`ssh::connect`]: an SSH exec channel opened with the ssh2 crate.
//!
//! Every transport ends up as a [`Transport`]: a reader, a writer and a
//! handle that shuts the far end down. Reads go through a pump thread and a
//! channel, so `--timeout` works the same way on all of them: no byte for
//! that long is an `io::ErrorKind::TimedOut` error.

pub mod ssh;
pub mod ssh_config;
mod ssh_pump;

use std::io::{self, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crossbeam::channel::{Receiver, RecvTimeoutError, bounded};

/// A connected byte pipe.
pub struct Transport {
    /// Bytes from the far end.
    pub reader: Box<dyn Read + Send>,
    /// Bytes to the far end.
    pub writer: Box<dyn Write + Send>,
    /// What the far end is, for messages.
    pub description: String,
    /// The far side's stderr, where we can hold it back (SSH).
    pub stderr: Option<StderrTap>,
    end: End,
}

enum End {
    Child(Child),
    Ssh(ssh::SshEnd),
    /// Nothing to stop: an in-process peer ends when its input closes.
    Nothing,
}

/// The far side's stderr on an SSH transport. It starts held back: a probe
/// for a deltasync that is not there (`command not found`) or a refusal by
/// a forced command must not reach the user as noise, but may explain a
/// failed greeting. Once the greeting succeeds, [`StderrTap::release`]
/// prints what was held and lets the rest through, prefixed `remote:`.
#[derive(Clone, Debug, Default)]
pub struct StderrTap(std::sync::Arc<std::sync::Mutex<Option<Vec<u8>>>>);

/// Most stderr bytes held back before the greeting.
const HELD_STDERR: usize = 64 << 10;

impl StderrTap {
    /// A tap that holds back what arrives.
    pub fn holding() -> StderrTap {
        StderrTap(std::sync::Arc::new(std::sync::Mutex::new(Some(Vec::new()))))
    }

    /// Takes bytes from the far side's stderr.
    pub fn push(&self, bytes: &[u8]) {
        let Ok(mut held) = self.0.lock() else { return };
        match held.as_mut() {
            Some(buf) => {
                let room = HELD_STDERR.saturating_sub(buf.len());
                buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
            }
            None => {
                for line in String::from_utf8_lossy(bytes).lines() {
                    eprintln!("remote: {line}");
                }
            }
        }
    }

    /// Prints what was held and lets the rest through.
    pub fn release(&self) {
        let Ok(mut held) = self.0.lock() else { return };
        if let Some(buf) = held.take() {
            for line in String::from_utf8_lossy(&buf).lines() {
                eprintln!("remote: {line}");
            }
        }
    }

    /// What was held back, as text (trimmed).
    pub fn held_text(&self) -> String {
        let Ok(held) = self.0.lock() else {
            return String::new();
        };
        held.as_ref()
            .map(|b| String::from_utf8_lossy(b).trim().to_string())
            .unwrap_or_default()
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("description", &self.description)
            .finish()
    }
}

impl Transport {
    /// A transport over two pipes to a peer in this process (tests, and
    /// the in-memory harness): nothing to kill, nothing to wait for.
    pub fn pipes(
        reader: Box<dyn Read + Send>,
        writer: Box<dyn Write + Send>,
        description: String,
    ) -> Transport {
        Transport {
            reader,
            writer,
            description,
            stderr: None,
            end: End::Nothing,
        }
    }

    /// Splits off the two directions, keeping the handle that ends the far side.
    pub fn split(self) -> (Box<dyn Read + Send>, Box<dyn Write + Send>, EndHandle) {
        (
            self.reader,
            self.writer,
            EndHandle {
                end: self.end,
                description: self.description,
            },
        )
    }
}

/// Ends the far side of a transport.
pub struct EndHandle {
    end: End,
    /// What the far end is.
    pub description: String,
}

impl std::fmt::Debug for EndHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndHandle")
            .field("description", &self.description)
            .finish()
    }
}

impl EndHandle {
    /// Waits for the far side to exit (after we closed our writer); its exit
    /// status when known.
    pub fn wait(self) -> io::Result<Option<i32>> {
        match self.end {
            End::Child(mut c) => Ok(c.wait()?.code()),
            End::Ssh(s) => s.wait(),
            End::Nothing => Ok(None),
        }
    }

    /// Stops the far side now (used on errors and signals).
    pub fn kill(self) {
        match self.end {
            End::Child(mut c) => {
                let _ = c.kill();
                let _ = c.wait();
            }
            End::Ssh(s) => s.kill(),
            End::Nothing => {}
        }
    }

    /// The child's process id, for a local or `--rsh` transport.
    pub fn pid(&self) -> Option<u32> {
        match &self.end {
            End::Child(c) => Some(c.id()),
            End::Ssh(_) | End::Nothing => None,
        }
    }
}

/// Starts `command` with piped stdin and stdout (stderr is passed through,
/// so the far side's messages reach the user).
pub fn spawn(mut command: Command, timeout: Option<Duration>) -> io::Result<Transport> {
    let description = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot start {description}: {e}")))?;
    let (Some(stdout), Some(stdin)) = (child.stdout.take(), child.stdin.take()) else {
        return Err(io::Error::other("child pipes missing"));
    };
    Ok(Transport {
        reader: Box::new(TimeoutReader::spawn(stdout, timeout)),
        writer: Box::new(stdin),
        description,
        stderr: None,
        end: End::Child(child),
    })
}

/// A reader fed by a pump thread, with an optional inactivity timeout.
pub struct TimeoutReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    pending: Vec<u8>,
    at: usize,
    timeout: Option<Duration>,
    done: bool,
}

impl std::fmt::Debug for TimeoutReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeoutReader")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl TimeoutReader {
    /// Pumps `inner` on a thread of its own.
    pub fn spawn(
        mut inner: impl Read + Send + 'static,
        timeout: Option<Duration>,
    ) -> TimeoutReader {
        let (tx, rx) = bounded(16);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match inner.read(&mut buf) {
                    Ok(0) => {
                        let _ = tx.send(Ok(Vec::new()));
                        return;
                    }
                    Ok(n) => {
                        if tx.send(Ok(buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
        });
        TimeoutReader::from_channel(rx, timeout)
    }

    /// Reads chunks from `rx`; an empty chunk or a closed channel is the end.
    pub(crate) fn from_channel(
        rx: Receiver<io::Result<Vec<u8>>>,
        timeout: Option<Duration>,
    ) -> TimeoutReader {
        TimeoutReader {
            rx,
            pending: Vec::new(),
            at: 0,
            timeout,
            done: false,
        }
    }
}

impl Read for TimeoutReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.pending.len() {
            if self.done {
                return Ok(0);
            }
            let next = match self.timeout {
                Some(t) => self.rx.recv_timeout(t).map_err(|e| match e {
                    RecvTimeoutError::Timeout => {
                        io::Error::new(io::ErrorKind::TimedOut, "no data from the peer")
                    }
                    RecvTimeoutError::Disconnected => {
                        io::Error::new(io::ErrorKind::BrokenPipe, "reader stopped")
                    }
                })?,
                None => self
                    .rx
                    .recv()
                    .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "reader stopped"))?,
            };
            let chunk = next?;
            if chunk.is_empty() {
                self.done = true;
                return Ok(0);
            }
            self.pending = chunk;
            self.at = 0;
        }
        let n = buf.len().min(self.pending.len() - self.at);
        buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Builds the command for `-e/--rsh`: the rsh words (shell-style quoting),
/// then `[user@]host`, then the remote command as one word, as rsync does.
pub fn rsh_command(
    rsh: &str,
    user: Option<&str>,
    host: &str,
    port: Option<u16>,
    remote: &str,
) -> io::Result<Command> {
    let words = shell_words::split(rsh)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("--rsh {rsh:?}: {e}")))?;
    let (program, args) = words
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "--rsh is empty"))?;
    let mut cmd = Command::new(program);
    cmd.args(args);
    if let Some(p) = port {
        cmd.arg("-p").arg(p.to_string());
    }
    match user {
        Some(u) => cmd.arg(format!("{u}@{host}")),
        None => cmd.arg(host),
    };
    cmd.arg(remote);
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_reader_times_out_and_ends() {
        let (tx, rx) = bounded(4);
        let mut r = TimeoutReader::from_channel(rx, Some(Duration::from_millis(50)));
        tx.send(Ok(b"abc".to_vec())).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(r.read(&mut buf).unwrap(), 3);
        assert_eq!(
            r.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
        tx.send(Ok(Vec::new())).unwrap();
        assert_eq!(r.read(&mut buf).unwrap(), 0);
    }

    #[test]
    fn rsh_words_are_split_like_a_shell() {
        let cmd = rsh_command(
            "ssh -p 2222 -o 'ProxyCommand=nc %h %p'",
            Some("me"),
            "box",
            None,
            "deltasync serve --root /x",
        )
        .unwrap();
        let args: Vec<_> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(cmd.get_program(), "ssh");
        assert_eq!(
            args,
            [
                "-p",
                "2222",
                "-o",
                "ProxyCommand=nc %h %p",
                "me@box",
                "deltasync serve --root /x"
            ]
        );
    }
}
