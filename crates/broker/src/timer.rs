//! The broker's timer: a heap of (deadline, queue) wake-ups, so the periodic tick visits only the
//! queues that have something due — a visibility deadline, an `expires` time, a retention limit —
//! and an idle queue costs nothing between its deadlines, however many queues there are.
//!
//! A queue asks to be woken at its earliest deadline whenever that moves earlier (see
//! `Queue::schedule`); a wake-up that finds nothing due (the deadline moved later, the message was
//! settled) just re-arms the queue for what is next. Entries hold the queue weakly, so a removed
//! queue's wake-ups lapse on their own.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::queue::Queue;

struct Wake {
    at: u64,
    queue: Weak<Queue>,
}

impl PartialEq for Wake {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Wake {}

impl PartialOrd for Wake {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Wake {
    fn cmp(&self, other: &Self) -> Ordering {
        self.at.cmp(&other.at)
    }
}

/// Pending wake-ups; see the module docs.
#[derive(Default)]
pub(crate) struct Timer {
    heap: Mutex<BinaryHeap<Reverse<Wake>>>,
}

impl Timer {
    /// Wakes `queue` at `at` (ms since the epoch). Called with the queue's lock held: the timer's
    /// own lock is only ever taken inside a queue's, never the other way round.
    pub fn wake_at(&self, at: u64, queue: &Arc<Queue>) {
        self.heap.lock().push(Reverse(Wake {
            at,
            queue: Arc::downgrade(queue),
        }));
    }

    /// Takes every wake-up due at `now`, with the deadline each was armed for.
    pub fn due(&self, now: u64) -> Vec<(u64, Arc<Queue>)> {
        let mut heap = self.heap.lock();
        let mut out = Vec::new();
        while heap.peek().is_some_and(|w| w.0.at <= now) {
            if let Some(Reverse(w)) = heap.pop() {
                if let Some(q) = w.queue.upgrade() {
                    out.push((w.at, q));
                }
            }
        }
        out
    }

    /// Wake-ups pending, stale ones included.
    pub fn len(&self) -> usize {
        self.heap.lock().len()
    }
}
