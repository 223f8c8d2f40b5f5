//! Patch threads, kept for reuse.
//!
//! Each patch needs a thread of its own while it runs: it blocks on its
//! feed, and feeds arrive interleaved, so a fixed pool could wait on a
//! file whose bytes sit behind a queued one. But a new thread per file
//! costs a `clone`, fresh stack pages and an `munmap` (with a TLB flush on
//! every core) per file. So a finished patch thread waits for the next
//! patch, and a new thread starts only when none is idle: a job never
//! waits in a queue, and there are never more threads than patches that
//! ran at once (at most `MAX_PATCHES`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use crossbeam::channel::{Receiver, Sender, unbounded};

type Job = Box<dyn FnOnce() + Send>;

/// Threads that run one job each at a time and wait for the next.
pub struct Pool {
    jobs: Sender<Job>,
    queue: Receiver<Job>,
    /// Threads waiting for a job and not yet promised one.
    idle: Arc<AtomicUsize>,
}

impl Pool {
    pub fn new() -> Pool {
        let (jobs, queue) = unbounded();
        Pool {
            jobs,
            queue,
            idle: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Runs `job` now: on an idle thread, or on a new one (returned, for
    /// the caller to join).
    pub fn run(&self, job: impl FnOnce() + Send + 'static) -> Option<JoinHandle<()>> {
        // Promise the job to one idle thread; each promise is one thread
        // that has not yet taken a job, so the job never waits.
        let claimed = self
            .idle
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        let mut job: Job = Box::new(job);
        if claimed {
            match self.jobs.send(job) {
                Ok(()) => return None,
                Err(back) => job = back.0,
            }
        }
        let (queue, idle) = (self.queue.clone(), self.idle.clone());
        Some(crate::link::spawn("agent-patch", move || {
            job();
            loop {
                idle.fetch_add(1, Ordering::AcqRel);
                match queue.recv() {
                    Ok(next) => next(),
                    Err(_) => return,
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam::channel::bounded;
    use std::time::Duration;

    /// Jobs that block until all of them run need a thread each: none may
    /// wait in the queue. Later jobs reuse the finished threads, and the
    /// threads end when the pool is dropped.
    #[test]
    fn every_job_runs_at_once_and_threads_are_reused() {
        let pool = Pool::new();
        let mut handles = Vec::new();
        let n = 16;
        for round in 0..3 {
            let (started, all) = bounded(n);
            let (go_tx, go) = bounded::<()>(0);
            for _ in 0..n {
                let (started, go) = (started.clone(), go.clone());
                handles.extend(pool.run(move || {
                    started.send(()).unwrap();
                    let _ = go.recv(); // blocks until every job has started
                }));
            }
            for _ in 0..n {
                all.recv_timeout(Duration::from_secs(10))
                    .unwrap_or_else(|_| panic!("round {round}: a job waited in the queue"));
            }
            drop(go_tx);
            // Wait until every thread is idle again before the next round.
            while pool.idle.load(Ordering::Acquire) < n {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        assert_eq!(handles.len(), n, "threads were started again, not reused");
        drop(pool);
        for h in handles {
            h.join().unwrap();
        }
    }
}
