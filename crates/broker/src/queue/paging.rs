//! The part of a durable queue's backlog kept only in the store: recovery of the head at start-up,
//! and reading the next batch back once the in-memory head has drained below half the window.
//! Reads are queued behind every commit submitted so far, so they see every message the queue
//! counted as paged.

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
            let size = m.record.size() as u64;
            st.paged.cursor = m.seq;
            st.paged.count = st.paged.count.saturating_sub(1);
            st.paged.bytes = st.paged.bytes.saturating_sub(size);
            st.insert_ready(m.seq, Entry::stored(m.record, m.deliveries));
        }
        self.dispatch(&mut st, fx);
    }

    /// Asks for the next paged messages once the in-memory head has drained below half the window.
    pub(super) fn maybe_page_in(self: &Arc<Self>, st: &mut State, fx: &mut Effects) {
        let low = st.ready_len() < self.env.window.messages / 2
            && st.memory_bytes() < self.env.window.bytes / 2;
        if st.paged.count == 0 || st.paged.reading || !low {
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
        st.paged.reading = true;
        st.paged.retry_at = None;
        fx.page_in.push(PageIn {
            queue: self.clone(),
            store_id,
            after: st.paged.cursor,
            max: self.env.window.messages - st.ready_len(),
        });
    }
}
