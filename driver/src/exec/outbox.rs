//! What goes to the destination next: control messages first (steps,
//! signature requests, cancels, in order), then one patch message per
//! transfer in turn. A message that opens a patch waits while
//! `MAX_PATCHES` patches are open there, or, for a patch the agent will run
//! on a thread of its own, while `MAX_PATCH_THREADS` of those are, so the
//! agent's limits are never hit; new patches and the feeds of open ones
//! take turns.
//!
//! Two queues of transfers, one whose next message is a feed and one whose
//! next message opens a patch, so choosing needs no scan. Either queue may
//! hold stale entries (a transfer abandoned or retried since): they are
//! dropped when they reach the front.

use std::collections::{HashMap, HashSet, VecDeque};

use deltasync_wire::Message;

use crate::agent::core::{MAX_PATCH_THREADS, MAX_PATCHES};

/// The destination's queues.
#[derive(Debug)]
pub(super) struct Outbox {
    control: VecDeque<Message>,
    /// Each transfer's patch messages, in order.
    data: HashMap<usize, VecDeque<Message>>,
    /// Transfers whose next patch message is a feed, served round-robin.
    feeding: VecDeque<usize>,
    /// Transfers whose next patch message opens the patch.
    opening: VecDeque<usize>,
    /// Whether a new patch goes before the next feed (they alternate).
    open_next: bool,
    /// Patches open on the destination (sent, not yet answered).
    pub(super) patches: usize,
    /// Transfers whose queued opening message is for a threaded patch.
    threaded: HashSet<usize>,
    /// Of the open patches, those running on threads of their own.
    pub(super) threaded_open: usize,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            control: VecDeque::new(),
            data: HashMap::new(),
            feeding: VecDeque::new(),
            opening: VecDeque::new(),
            open_next: true,
            patches: 0,
            threaded: HashSet::new(),
            threaded_open: 0,
        }
    }
}

impl Outbox {
    /// Queues a message that goes before every patch message.
    pub(super) fn control(&mut self, m: Message) {
        self.control.push_back(m);
    }

    /// Queues a patch message of transfer `i`.
    pub(super) fn data(&mut self, i: usize, m: Message) {
        let q = self.data.entry(i).or_default();
        if q.is_empty() {
            if matches!(m, Message::Call { .. }) {
                self.opening.push_back(i);
            } else {
                self.feeding.push_back(i);
            }
        }
        q.push_back(m);
    }

    /// Queues the message that opens transfer `i`'s patch; `threaded`
    /// if the agent will run it on a thread of its own.
    pub(super) fn open(&mut self, i: usize, m: Message, threaded: bool) {
        if threaded {
            self.threaded.insert(i);
        } else {
            self.threaded.remove(&i);
        }
        self.data(i, m);
    }

    /// A patch opened by [`Outbox::next`] has ended (its reply came).
    pub(super) fn closed(&mut self, threaded: bool) {
        self.patches -= 1;
        if threaded {
            self.threaded_open -= 1;
        }
    }

    /// Drops what transfer `i` still has queued.
    pub(super) fn discard(&mut self, i: usize) {
        self.data.remove(&i);
        self.threaded.remove(&i);
    }

    /// True if a message can go now.
    pub(super) fn ready(&mut self) -> bool {
        !self.control.is_empty() || self.turn(false).is_some()
    }

    /// The next message, and the transfer it belongs to (none for a
    /// control message). A patch message that opens a patch counts it.
    pub(super) fn next(&mut self) -> Option<(Option<usize>, Message)> {
        if let Some(m) = self.control.pop_front() {
            return Some((None, m));
        }
        let i = self.turn(true)?;
        let q = self.data.get_mut(&i)?;
        let m = q.pop_front()?;
        if q.is_empty() {
            self.data.remove(&i);
        } else {
            self.feeding.push_back(i);
        }
        if matches!(m, Message::Call { .. }) {
            self.patches += 1;
            if self.threaded.remove(&i) {
                self.threaded_open += 1;
            }
        }
        Some((Some(i), m))
    }

    /// The transfer whose message goes next; `take` removes it from its queue.
    fn turn(&mut self, take: bool) -> Option<usize> {
        let data = &self.data;
        let front_is_call = |i: &usize| {
            data.get(i)
                .and_then(|q| q.front())
                .map(|m| matches!(m, Message::Call { .. }))
        };
        while self
            .opening
            .front()
            .is_some_and(|i| front_is_call(i) != Some(true))
        {
            self.opening.pop_front();
        }
        while self
            .feeding
            .front()
            .is_some_and(|i| front_is_call(i) != Some(false))
        {
            self.feeding.pop_front();
        }
        let open_new = self.patches < MAX_PATCHES
            && self.opening.front().is_some_and(|i| {
                !self.threaded.contains(i) || self.threaded_open < MAX_PATCH_THREADS
            });
        let from = if open_new && (self.feeding.is_empty() || self.open_next) {
            &mut self.opening
        } else {
            &mut self.feeding
        };
        let i = *from.front()?;
        if take {
            from.pop_front();
            self.open_next = !self.open_next;
        }
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltasync_wire::{Attrs, Expect, Feed, Request};

    fn open(id: u64) -> Message {
        Message::Call {
            id,
            req: Request::Patch {
                path: b"f".to_vec(),
                resume_len: 0,
                expect: Expect::Any,
                attrs: Attrs::default(),
                sparse: false,
                basis: None,
            },
        }
    }

    fn chunk(id: u64) -> Message {
        Message::Feed {
            id,
            feed: Feed::DeltaChunk(vec![1]),
        }
    }

    #[test]
    fn control_first_then_turns_and_new_patches_wait_for_a_slot() {
        let mut o = Outbox::default();
        o.data(1, open(10));
        o.data(1, chunk(10));
        o.control(Message::Cancel { id: 99 });
        assert_eq!(o.next(), Some((None, Message::Cancel { id: 99 })));
        assert_eq!(o.next(), Some((Some(1), open(10))));
        o.patches = MAX_PATCHES;
        o.data(2, open(20));
        // Transfer 2 may not open a patch now; 1's feed still goes.
        assert_eq!(o.next(), Some((Some(1), chunk(10))));
        assert!(!o.ready());
        o.patches -= 1;
        assert_eq!(o.next(), Some((Some(2), open(20))));
    }

    #[test]
    fn a_threaded_patch_waits_for_a_thread_while_held_ones_still_open() {
        let mut o = Outbox {
            threaded_open: MAX_PATCH_THREADS,
            ..Outbox::default()
        };
        o.open(1, open(10), true);
        assert!(!o.ready(), "no thread free for transfer 1's patch");
        o.threaded_open -= 1; // one of them ended
        assert_eq!(o.next(), Some((Some(1), open(10))));
        assert_eq!((o.patches, o.threaded_open), (1, MAX_PATCH_THREADS));
        // A held patch opens while the threads are all taken.
        o.open(2, open(20), false);
        assert_eq!(o.next(), Some((Some(2), open(20))));
        assert_eq!((o.patches, o.threaded_open), (2, MAX_PATCH_THREADS));
        o.closed(true);
        o.closed(false);
        assert_eq!((o.patches, o.threaded_open), (0, MAX_PATCH_THREADS - 1));
    }

    #[test]
    fn a_discarded_transfer_is_skipped_and_its_retry_queues_again() {
        let mut o = Outbox::default();
        o.data(1, open(10));
        o.data(2, open(20));
        o.discard(1);
        o.data(1, open(11));
        // The retry goes in the old entry's place; the stale one is dropped.
        assert_eq!(o.next(), Some((Some(1), open(11))));
        assert_eq!(o.next(), Some((Some(2), open(20))));
        assert_eq!(o.next(), None);
    }
}
