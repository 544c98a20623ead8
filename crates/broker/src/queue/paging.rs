//! The part of a durable queue's backlog kept only in the store: recovery of the head at start-up,
//! reading the next batch back once the in-memory head has drained below half the window, and
//! scanning ahead for one channel's messages when that channel's consumer finds none in memory
//! while the window is full of others' (a channel is served from any depth, as on OCI). Reads
//! are queued behind every commit submitted so far, so they see every message the queue counted
//! as paged, and no message settled before the read was asked for.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use stampede_store::{QueueId, RecoveredQueue, StoreError, StoredMessage};

use super::state::{Entry, State};
use super::Queue;
use crate::effects::{Effects, PageIn};

/// How long to wait before reading again after a store read failed.
const READ_RETRY_MS: u64 = 1000;

impl Queue {
    /// Rebuilds the queue at start-up from the head the store returned and its totals.
    pub fn recover(self: &Arc<Self>, stored: RecoveredQueue, fx: &mut Effects) {
        self.next_seq.fetch_max(stored.next_seq, Ordering::Relaxed);
        let mut st = self.lock();
        let mut head_bytes = 0;
        for m in &stored.head {
            head_bytes += m.record.size() as u64;
            st.paged.cursor = st.paged.cursor.max(m.seq);
        }
        st.bytes = stored.bytes.max(head_bytes);
        st.paged.count = stored.messages.saturating_sub(stored.head.len() as u64);
        st.paged.bytes = st.bytes - head_bytes;
        if st.paged.count > 0 {
            st.paged.last = stored.next_seq.saturating_sub(1);
        }
        for m in stored.head {
            st.insert_ready(m.seq, Entry::stored(m.record, m.deliveries));
        }
        self.dispatch(&mut st, fx);
    }

    /// Takes in what a [`PageIn`] read from the store of queue `from` (the queue's store id when
    /// the read was asked for: a purge meanwhile makes it stale).
    pub fn paged_in(
        self: &Arc<Self>,
        from: QueueId,
        read: Result<Vec<StoredMessage>, StoreError>,
        channel: Option<Arc<str>>,
        fx: &mut Effects,
    ) {
        let mut st = self.lock();
        if st.store_id != Some(from) {
            return;
        }
        st.paged.reading = false;
        let messages = match read {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(queue = %self.name, error = %e, "reading waiting messages from the store failed");
                st.paged.retry_at = Some(self.env.clock.now_ms() + READ_RETRY_MS);
                self.schedule(&mut st);
                return;
            }
        };
        match channel {
            None => self.took_batch(&mut st, messages),
            Some(channel) => Self::took_scan(&mut st, messages, channel),
        }
        self.dispatch(&mut st, fx);
    }

    /// A sequential read: everything above the cursor, except what a channel scan brought in.
    fn took_batch(&self, st: &mut State, messages: Vec<StoredMessage>) {
        if messages.is_empty() && st.paged.count > 0 {
            tracing::warn!(queue = %self.name, missing = st.paged.count, "store holds fewer waiting messages than counted");
            st.bytes = st.bytes.saturating_sub(st.paged.bytes);
            st.paged.count = 0;
            st.paged.bytes = 0;
        }
        for m in messages {
            if m.seq <= st.paged.cursor {
                continue;
            }
            st.paged.cursor = m.seq;
            if st.holds(m.seq) {
                // A channel scan brought it in already (it may be in flight by now).
                continue;
            }
            Self::bring_in(st, m);
        }
        let cursor = st.paged.cursor;
        st.paged.scanned.retain(|_, to| *to > cursor);
    }

    /// A scan for `channel`: its messages join memory, the others stay paged.
    fn took_scan(st: &mut State, messages: Vec<StoredMessage>, channel: Arc<str>) {
        let mut to = st.paged.scanned.get(&channel).copied().unwrap_or(0);
        if messages.is_empty() {
            // Nothing at all above where the scan started.
            to = st.paged.last;
        }
        for m in messages {
            to = to.max(m.seq);
            let theirs = crate::channel::of(&m.record) == Some(&*channel);
            if m.seq <= st.paged.cursor || !theirs || st.holds(m.seq) {
                continue;
            }
            Self::bring_in(st, m);
        }
        st.paged.scanned.insert(channel, to.max(st.paged.cursor));
    }

    fn bring_in(st: &mut State, m: StoredMessage) {
        let size = m.record.size() as u64;
        st.paged.count = st.paged.count.saturating_sub(1);
        st.paged.bytes = st.paged.bytes.saturating_sub(size);
        st.insert_ready(m.seq, Entry::stored(m.record, m.deliveries));
    }

    /// Asks for the next paged messages once the in-memory head has drained below half the
    /// window; else, when `starved` names a channel whose consumer found nothing in memory, for a
    /// scan of the store for that channel, unless an earlier scan already went past every paged
    /// message. One read at a time.
    pub(super) fn maybe_page_in(
        self: &Arc<Self>,
        st: &mut State,
        starved: Option<&str>,
        fx: &mut Effects,
    ) {
        let low = st.ready_len() < self.env.window.messages / 2
            && st.memory_bytes() < self.env.window.bytes / 2;
        if st.paged.count == 0 || st.paged.reading || !(low || starved.is_some()) {
            return;
        }
        if st
            .paged
            .retry_at
            .is_some_and(|at| at > self.env.clock.now_ms())
        {
            return;
        }
        let Some(store_id) = st.store_id else {
            return;
        };
        let (after, max, channel) = match (low, starved) {
            (true, _) | (false, None) => (
                st.paged.cursor,
                self.env.window.messages - st.ready_len(),
                None,
            ),
            (false, Some(channel)) => {
                let from = st.paged.scanned.get(channel).copied().unwrap_or(0);
                let from = from.max(st.paged.cursor);
                if from >= st.paged.last {
                    return;
                }
                // Reads a window's worth of records, of every channel, and keeps its own.
                (from, self.env.window.messages, Some(Arc::from(channel)))
            }
        };
        st.paged.reading = true;
        st.paged.retry_at = None;
        fx.page_in.push(PageIn {
            queue: self.clone(),
            store_id,
            after,
            max,
            channel,
        });
    }
}
