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
use crate::effects::{Effects, PageIn, Scan};

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
        scan: Option<Scan>,
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
        match scan {
            None => self.took_batch(&mut st, messages),
            Some(scan) => self.took_scan(&mut st, messages, scan),
        }
        if st.paged.count == 0 {
            st.paged.scanned.clear();
        }
        self.dispatch(&mut st, fx);
    }

    /// A sequential read: everything above the cursor, except what channel scans took.
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
            // Taken by a scan, or not published yet (its publication, finding it below the
            // cursor, puts it in memory).
            if st.paged.taken.contains(&m.seq) || st.holds(m.seq) || st.unpublished.contains(&m.seq)
            {
                continue;
            }
            Self::bring_in(st, m);
        }
        let cursor = st.paged.cursor;
        st.paged.taken = st.paged.taken.split_off(&(cursor + 1));
        st.paged.scanned.retain(|_, to| *to > cursor);
    }

    /// A scan for one channel: its messages join memory (a quota of them at most, so that
    /// memory stays near the window), the others stay paged, and how far the scan got is kept.
    fn took_scan(&self, st: &mut State, messages: Vec<StoredMessage>, scan: Scan) {
        let Scan { channel, max, last } = scan;
        let cursor = st.paged.cursor;
        let mut to = st
            .paged
            .scanned
            .get(&channel)
            .copied()
            .unwrap_or(0)
            .max(cursor);
        let reached_end = messages.len() < max;
        let (quota, quota_bytes) = scan_quota(&self.env.window);
        let (mut kept, mut kept_bytes, mut stopped) = (0, 0, false);
        for m in messages {
            let seq = m.seq;
            let theirs = crate::channel::of(&m.record) == Some(&*channel);
            let free =
                !st.paged.taken.contains(&seq) && !st.holds(seq) && !st.unpublished.contains(&seq);
            if theirs && seq > cursor && free {
                if kept >= quota || kept_bytes >= quota_bytes {
                    // The scan resumes at this one next time.
                    stopped = true;
                    break;
                }
                kept += 1;
                kept_bytes += m.record.size() as u64;
                st.paged.taken.insert(m.seq);
                Self::bring_in(st, m);
            }
            // Every message of the channel up to here is in memory or gone.
            to = to.max(seq);
        }
        if reached_end && !stopped {
            // Nothing above was in the store when the read ran; what was paged since lies
            // above the `last` it was asked with.
            to = to.max(last);
        }
        st.paged.scanned.insert(channel, to);
        if st.paged.scanned.len() > MAX_SCANNED {
            // Forgetting a scan only means scanning again; keep the furthest.
            if let Some(lowest) = st
                .paged
                .scanned
                .iter()
                .min_by_key(|(_, to)| **to)
                .map(|(c, _)| c.clone())
            {
                st.paged.scanned.remove(&lowest);
            }
        }
    }

    fn bring_in(st: &mut State, m: StoredMessage) {
        let size = m.record.size() as u64;
        st.paged.count = st.paged.count.saturating_sub(1);
        st.paged.bytes = st.paged.bytes.saturating_sub(size);
        st.insert_ready(m.seq, Entry::stored(m.record, m.deliveries));
    }

    /// Asks for the next paged messages once the in-memory head has drained below half the
    /// window; else, when a channel in `starved` had a consumer find nothing of it in memory,
    /// for a scan of the store for the first of them that an earlier scan has not already taken
    /// past every paged message. One read at a time.
    pub(super) fn maybe_page_in(
        self: &Arc<Self>,
        st: &mut State,
        starved: &[Arc<str>],
        fx: &mut Effects,
    ) {
        let window = &self.env.window;
        let low = st.ready_len() < window.messages / 2 && st.memory_bytes() < window.bytes / 2;
        if st.paged.count == 0 || st.paged.reading || (!low && starved.is_empty()) {
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
        let (after, max, scan) = if low {
            (st.paged.cursor, window.messages - st.ready_len(), None)
        } else {
            let from = |c: &Arc<str>| {
                let to = st.paged.scanned.get(c).copied().unwrap_or(0);
                to.max(st.paged.cursor)
            };
            let Some(channel) = starved.iter().find(|c| from(c) < st.paged.last) else {
                return;
            };
            // A window's worth of records (by count and, from the paged average, by bytes), of
            // every channel; the scan keeps its own.
            let average = (st.paged.bytes / st.paged.count.max(1)).max(1);
            let by_bytes = usize::try_from(window.bytes / average).unwrap_or(usize::MAX);
            let max = window.messages.min(by_bytes).max(1);
            let scan = Scan {
                channel: channel.clone(),
                max,
                last: st.paged.last,
            };
            (from(channel), max, Some(scan))
        };
        st.paged.reading = true;
        st.paged.retry_at = None;
        fx.page_in.push(PageIn {
            queue: self.clone(),
            store_id,
            after,
            max,
            scan,
        });
    }
}

/// Channels whose scan positions a queue remembers at most.
const MAX_SCANNED: usize = 1024;

/// What one scan may bring into memory beyond the window: a quarter of it.
fn scan_quota(window: &crate::Window) -> (usize, u64) {
    ((window.messages / 4).max(1), (window.bytes / 4).max(1))
}
