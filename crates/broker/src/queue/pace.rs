//! Producer pacing: a producer to a queue whose backlog nears its memory window waits while that
//! queue's consumers drain it, so a producer faster than its consumers keeps the backlog in
//! memory instead of burying them under a backlog paged out to disk. The wait is an async one on
//! tokio's clock (tests pause it); the queue's own timekeeping stays on the injected `Clock`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::Queue;

impl Queue {
    /// True while a producer should wait before adding to this queue: its backlog has reached
    /// three quarters of the memory window and consumers are attached that have been taking
    /// messages. Pacing starts below the window so that producers racing past the check do not
    /// push the queue into paging (once anything is paged, every new message goes to disk until
    /// the paged ones are read back). Producers resume once the backlog is below half the window
    /// (see `dispatch`), so each wake-up lets a run of messages through rather than one. A
    /// backlog already twice the window is a bulk load being drained (or a stall that has passed):
    /// pacing would hold producers for the whole drain, so they go on and it stays on disk.
    pub fn crowded(&self) -> bool {
        if !self.is_durable() || self.stalled.load(Ordering::Relaxed) {
            return false;
        }
        let st = self.lock();
        let waiting = st.waiting();
        let (high, high_bytes) = (
            self.env.window.messages - self.env.window.messages / 4,
            self.env.window.bytes - self.env.window.bytes / 4,
        );
        !st.consumers.is_empty()
            && (waiting >= high || st.waiting_bytes() >= high_bytes)
            && waiting < 2 * self.env.window.messages
    }

    /// Waits while the queue is crowded. A wait lasts `stall` at most: consumers that do not bring
    /// the backlog down to half the window in that time (stuck, or just slow — then reading the
    /// backlog back from disk costs them nothing that matters) stop pacing producers, who go on
    /// while the backlog goes to the store, until the consumers have caught up. A slow consumer
    /// thus never holds a producer for long. Returns whether it waited.
    pub async fn pace(&self, stall: Duration) -> bool {
        // Counted before the check, so a dispatch that drains the queue between the check and
        // the wait sees a waiter and wakes it.
        let _pacer = Pacer::new(&self.pacers);
        let mut waited = false;
        loop {
            let progress = self.progress.notified();
            tokio::pin!(progress);
            progress.as_mut().enable();
            if !self.crowded() {
                return waited;
            }
            waited = true;
            if tokio::time::timeout(stall, progress).await.is_err() {
                tracing::debug!(queue = %self.name, "consumers too slow to pace by; producers no longer wait for them");
                self.stalled.store(true, Ordering::Relaxed);
                return waited;
            }
        }
    }
}

/// Counts a producer waiting in [`Queue::pace`] for as long as it lives, cancelled or not.
struct Pacer<'a>(&'a AtomicUsize);

impl<'a> Pacer<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Pacer(count)
    }
}

impl Drop for Pacer<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
