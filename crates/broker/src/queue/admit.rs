//! Taking messages in: capacity reservations, staging (the store op a message needs) and
//! publishing (making it visible once its put is submitted).
//!
//! Admission is two-phase so that a transaction can check everything before it changes anything:
//! [`Queue::reserve`] claims room under the queue's limits (counted with what other admitted,
//! not yet published messages hold, so concurrent producers and the several SENDs of one
//! transaction cannot overfill the queue together), and cannot fail later; [`Queue::stage`] and
//! [`Queue::publish`] then run without a fallible step.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use stampede_store::{MessageRecord, Op, QueueId};

use super::state::{Entry, State};
use super::{Dropped, Full, Queue, QueueKind, QueueStats};
use crate::effects::{Effects, Staged};

/// Room claimed in a queue for messages admitted and not yet published. Dropping it (the
/// transaction failed, or the message was discarded) gives the room back.
#[derive(Debug)]
pub(crate) struct Reservation {
    queue: Arc<Queue>,
    messages: u64,
    bytes: u64,
}

impl Reservation {
    /// Gives the room back with the queue's lock already held.
    fn release(mut self, st: &mut State) {
        st.reserved.messages = st.reserved.messages.saturating_sub(self.messages);
        st.reserved.bytes = st.reserved.bytes.saturating_sub(self.bytes);
        self.messages = 0;
        self.bytes = 0;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.messages == 0 && self.bytes == 0 {
            return;
        }
        let mut st = self.queue.lock();
        st.reserved.messages = st.reserved.messages.saturating_sub(self.messages);
        st.reserved.bytes = st.reserved.bytes.saturating_sub(self.bytes);
    }
}

impl Queue {
    /// Claims room for one message of `size` bytes, or says which limit it would break.
    pub fn reserve(self: &Arc<Self>, size: u64) -> Result<Reservation, Full> {
        let mut st = self.lock();
        let s = &st.settings;
        if let Some(max) = s.max_messages {
            let held = (st.ready_len() + st.inflight_len()) as u64 + st.paged.count;
            if held + st.reserved.messages >= max {
                return Err(Full {
                    limit: "max_messages",
                    value: max,
                });
            }
        }
        if let Some(max) = s.max_bytes {
            if st.bytes + st.reserved.bytes + size > max {
                return Err(Full {
                    limit: "max_bytes",
                    value: max,
                });
            }
        }
        st.reserved.messages += 1;
        st.reserved.bytes += size;
        Ok(Reservation {
            queue: self.clone(),
            messages: 1,
            bytes: size,
        })
    }

    /// Stages a message in `fx`: its put (for a durable queue) and its publication once the put is
    /// submitted. A non-persistent message (`persistent == false`) skips the store while the
    /// queue's backlog fits its memory window, so it is gone after a restart; beyond the window it
    /// is stored like any other, because only stored messages may wait outside memory.
    pub fn stage(
        self: &Arc<Self>,
        record: Arc<MessageRecord>,
        persistent: bool,
        reservation: Option<Reservation>,
        fx: &mut Effects,
    ) -> Result<(), Dropped> {
        let mut st = self.lock();
        if st.dropped {
            return Err(Dropped);
        }
        let store_id = st.store_id;
        let stored = self.is_durable() && (persistent || self.beyond_window(&st));
        let seq = self.next_seq();
        if stored {
            // Its put is submitted before it is published: a store read in between must not
            // take it for a paged message.
            st.unpublished.insert(seq);
        }
        drop(st);
        if let (true, Some(id)) = (stored, store_id) {
            fx.ops.push(Op::Put {
                queue: id,
                seq,
                record: record.clone(),
            });
        }
        fx.publish.push(Staged {
            queue: self.clone(),
            seq,
            record,
            stored,
            store_id,
            reservation,
        });
        Ok(())
    }

    /// Publishes a copy into a transient queue (a topic subscriber's): nothing to store, so it
    /// is made visible at once, under one lock.
    pub fn publish_transient(self: &Arc<Self>, record: Arc<MessageRecord>, fx: &mut Effects) {
        debug_assert!(!self.is_durable());
        let seq = self.next_seq();
        self.publish_at(seq, record, false, None, None, fx);
    }

    fn beyond_window(&self, st: &State) -> bool {
        st.paged.count > 0
            || st.ready_len() >= self.env.window.messages
            || st.memory_bytes() >= self.env.window.bytes
    }

    /// Makes a staged message visible and dispatches it if a consumer has credit. Beyond the
    /// memory window a durable queue keeps only the count of stored messages: they are read back
    /// from the store when the queue has drained enough. A message staged before the queue was
    /// purged or dropped is not published: the store no longer holds it either.
    pub fn publish(self: &Arc<Self>, staged: Staged, fx: &mut Effects) {
        let Staged {
            seq,
            record,
            stored,
            store_id,
            reservation,
            ..
        } = staged;
        self.publish_at(seq, record, stored, store_id, reservation, fx);
    }

    fn publish_at(
        self: &Arc<Self>,
        seq: u64,
        record: Arc<MessageRecord>,
        stored: bool,
        store_id: Option<QueueId>,
        reservation: Option<Reservation>,
        fx: &mut Effects,
    ) {
        let mut st = self.lock();
        if stored {
            st.unpublished.remove(&seq);
        }
        if let Some(r) = reservation {
            r.release(&mut st);
        }
        if st.dropped || (stored && st.store_id != store_id) {
            QueueStats::add(&self.stats.purged, 1);
            return;
        }
        QueueStats::add(&self.stats.enqueued, 1);
        self.next_seq.fetch_max(seq + 1, Ordering::Relaxed);
        let size = record.size() as u64;
        st.bytes += size;
        let scanned_past = !st.paged.scanned.is_empty()
            && seq > st.paged.cursor
            && crate::channel::of(&record)
                .and_then(|c| st.paged.scanned.get(c))
                .is_some_and(|to| seq <= *to);
        if scanned_past {
            // Late: its channel's scan already went past it, and would never look here again;
            // it joins memory as the scan would have brought it in.
            st.paged.taken.insert(seq);
            st.insert_ready(seq, Entry::new(record, stored && self.is_durable()));
            self.dispatch(&mut st, fx);
            return;
        }
        // Only messages newer than everything in memory may stay on disk: page-in reads above
        // the cursor. Sequence numbers are allocated before publishing, so an older one can
        // arrive late; it joins memory (the window stretches by the few in transit). A message
        // that was not stored joins memory too, unless messages older than it are paged out:
        // then it must wait on disk behind them (its put is committed by the same apply, before
        // any page-in it triggers), or it would raise the cursor above them and they would
        // never be read back.
        let behind_paged = self.is_durable() && st.paged.count > 0;
        if (behind_paged || (stored && self.beyond_window(&st))) && seq > st.paged.cursor {
            if let (false, Some(id)) = (stored, st.store_id) {
                fx.ops.push(Op::Put {
                    queue: id,
                    seq,
                    record,
                });
            }
            st.paged.count += 1;
            st.paged.bytes += size;
            st.paged.last = st.paged.last.max(seq);
            // A long poll for a channel is woken by its message only once that is read back.
            let wanted = st.waiting_channels();
            self.maybe_page_in(&mut st, &wanted, fx);
            return;
        }
        st.insert_ready(seq, Entry::new(record, stored && self.is_durable()));
        st.paged.cursor = st.paged.cursor.max(seq);
        if let QueueKind::Transient { max_ready } = self.kind {
            let ctx = self.ctx();
            while st.ready_len() > max_ready {
                if let Some((seq, entry)) = st.take_ready() {
                    st.forget(&ctx, seq, &entry, fx);
                    QueueStats::add(&self.stats.dropped, 1);
                }
            }
        }
        self.dispatch(&mut st, fx);
    }
}
