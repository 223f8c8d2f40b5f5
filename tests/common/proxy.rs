//! A small TCP proxy on 127.0.0.1 that adds latency each way (netem is not
//! available on these kernels) and can be told to stall, for timeout tests.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A running proxy.
pub struct Proxy {
    pub port: u16,
    stalled: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    /// Bytes forwarded client to server.
    pub up: Arc<AtomicU64>,
    /// Bytes forwarded server to client.
    pub down: Arc<AtomicU64>,
}

impl Proxy {
    /// Forwards connections on a new port to `target`, delaying every chunk by `delay`.
    pub fn start(target: u16, delay: Duration) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let stalled = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (up, down) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (s, st, u, dn) = (stalled.clone(), stop.clone(), up.clone(), down.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let server =
                            TcpStream::connect(("127.0.0.1", target)).expect("connect target");
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        pipe(
                            client.try_clone().expect("clone"),
                            server.try_clone().expect("clone"),
                            delay,
                            s.clone(),
                            u.clone(),
                        );
                        pipe(server, client, delay, s.clone(), dn.clone());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy {
            port,
            stalled,
            stop,
            up,
            down,
        }
    }

    /// Stops forwarding (connections stay open, bytes stop moving).
    pub fn stall(&self) {
        self.stalled.store(true, Ordering::Relaxed);
    }

    /// Forwards again what waited and what comes.
    pub fn resume(&self) {
        self.stalled.store(false, Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Copies `from` to `to`, each chunk released `delay` after it arrived.
fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    delay: Duration,
    stalled: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
) {
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
    std::thread::spawn(move || {
        for (due, chunk) in rx {
            while stalled.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if to.write_all(&chunk).is_err() {
                return;
            }
            count.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}
