//! Settling deliveries: ACK and NACK from subscriptions (cumulative for `client` mode), auto-ack
//! deliveries once written, and what time does — visibility deadlines, `expires` times and
//! retention, run when the broker's timer wakes the queue.

use std::sync::Arc;

use super::state::{Back, Holder};
use super::{ConsumerId, NotInFlight, Queue, QueueStats};
use crate::effects::{DeathReason, Effects};
use crate::settle::Outcome;

impl Queue {
    /// Settles message `seq` held by `consumer` — in its `count`th delivery, when a count is given
    /// — and, when `cumulative`, every message delivered to it before: ACK deletes, NACK returns
    /// them at once (each return counts as a delivery) or, with `requeue: false`, dead-letters
    /// them.
    pub fn settle(
        self: &Arc<Self>,
        consumer: ConsumerId,
        seq: u64,
        count: Option<u32>,
        cumulative: bool,
        outcome: Outcome,
        fx: &mut Effects,
    ) -> Result<(), NotInFlight> {
        let mut st = self.lock();
        let settled = st.take_settled(consumer, seq, count, cumulative)?;
        let n = settled.len() as u64;
        let ctx = self.ctx();
        match outcome {
            Outcome::Ack => QueueStats::add(&self.stats.acked, n),
            Outcome::Nack { .. } | Outcome::RetryAfter(_) => QueueStats::add(&self.stats.nacked, n),
        }
        let now = self.env.clock.now_ms();
        for (seq, entry) in settled {
            match outcome {
                Outcome::Ack => st.forget(&ctx, seq, &entry, fx),
                Outcome::Nack { requeue: true } => {
                    st.requeue(&ctx, seq, entry, Back::Failed { now, wait: None }, fx)
                }
                Outcome::RetryAfter(wait) => {
                    let back = Back::Failed {
                        now,
                        wait: Some(wait),
                    };
                    st.requeue(&ctx, seq, entry, back, fx)
                }
                Outcome::Nack { requeue: false } => {
                    st.dead_letter(&ctx, seq, entry, DeathReason::Nack, fx)
                }
            }
        }
        self.dispatch(&mut st, fx);
        Ok(())
    }

    /// What a settle would cover, without settling (a transaction validates before COMMIT).
    pub fn settle_preview(
        &self,
        consumer: ConsumerId,
        seq: u64,
        count: Option<u32>,
        cumulative: bool,
    ) -> Result<Vec<u64>, NotInFlight> {
        self.lock().settle_preview(consumer, seq, count, cumulative)
    }

    /// Settles auto-ack deliveries once the connection has written them.
    pub fn settle_written(self: &Arc<Self>, consumer: ConsumerId, seqs: &[u64], fx: &mut Effects) {
        let mut st = self.lock();
        let ctx = self.ctx();
        for &seq in seqs {
            if let Ok(settled) = st.take_settled(consumer, seq, None, false) {
                QueueStats::add(&self.stats.acked, 1);
                for (seq, entry) in settled {
                    st.forget(&ctx, seq, &entry, fx);
                }
            }
        }
        self.dispatch(&mut st, fx);
    }

    /// Delivery count of message `seq` if it is in flight to `consumer`.
    pub fn inflight_count(&self, consumer: ConsumerId, seq: u64) -> Option<u32> {
        let st = self.lock();
        st.inflight(seq)
            .filter(|i| matches!(i.holder, Holder::Consumer { id, .. } if id == consumer))
            .map(|i| i.entry.deliveries)
    }

    /// True if `consumer` held `seq` until its visibility timeout took it back: a late ACK of it is
    /// a slow consumer, not a protocol error.
    pub fn timed_out_from(&self, consumer: ConsumerId, seq: u64) -> bool {
        let st = self.lock();
        st.consumers
            .iter()
            .find(|c| c.spec.id == consumer)
            .is_some_and(|c| c.expired.contains(&seq))
    }

    /// Applies what time has done: visibility deadlines that passed, `expires` times and retention.
    /// The timer calls it when the queue's earliest deadline (`deadline`) has come.
    pub fn tick(self: &Arc<Self>, deadline: Option<u64>, fx: &mut Effects) {
        let now = self.env.clock.now_ms();
        let mut st = self.lock();
        if deadline.is_some() && st.armed == deadline {
            st.armed = None;
        }
        let retention = st.settings.retention.as_millis() as u64;
        let ctx = self.ctx();
        while let Some(seq) = st.pop_due_deadline(now) {
            if let Some(entry) = st.expire_delivery(seq) {
                QueueStats::add(&self.stats.timed_out, 1);
                st.requeue(&ctx, seq, entry, Back::Failed { now, wait: None }, fx);
            }
        }
        while let Some(seq) = st.pop_due_expiry(now) {
            if let Some(entry) = st.remove_ready(seq) {
                QueueStats::add(&self.stats.expired, 1);
                st.dead_letter(&ctx, seq, entry, DeathReason::Expired, fx);
            }
        }
        while let Some((seq, enqueued)) =
            st.first_ready().map(|(s, e)| (s, e.record.enqueued_at_ms))
        {
            if enqueued.saturating_add(retention) > now {
                break;
            }
            if let Some(entry) = st.remove_ready(seq) {
                QueueStats::add(&self.stats.expired, 1);
                st.forget(&ctx, seq, &entry, fx);
            }
        }
        st.release_due(now);
        if st.paged.retry_at.is_some_and(|at| at <= now) {
            st.paged.retry_at = None;
        }
        self.dispatch(&mut st, fx);
    }
}
