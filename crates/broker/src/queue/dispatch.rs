//! Dispatch: hands waiting messages to consumers with credit, round-robin, until one side runs
//! out. Client-ack deliveries of stored messages record their delivery count first and carry the
//! ticket of the commit that makes it durable, so a message a client has seen is never handed out
//! again after a crash as if it were new.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use stampede_store::Op;

use super::state::{Consumer, Entry, Holder, Inflight, State};
use super::{Queue, QueueStats};
use crate::delivery::{AckMode, AutoAck, Delivery};
use crate::effects::{DeathReason, Effects};

impl Queue {
    /// Dispatches what it can, asks for paged messages if the head ran low, wakes paced
    /// producers once the backlog is below the low-water mark, wakes long polls for what is left
    /// waiting, and re-arms the queue's timer.
    pub(super) fn dispatch(self: &Arc<Self>, st: &mut State, fx: &mut Effects) {
        let mut starved = self.dispatch_ready(st, fx);
        if st.paged.count > 0 {
            // Long polls for a channel wait for it as a channel's consumer does.
            for c in st.waiting_channels() {
                if !starved.contains(&c) {
                    starved.push(c);
                }
            }
        }
        self.maybe_page_in(st, &starved, fx);
        if st.waiting() < self.env.window.messages / 2
            && st.waiting_bytes() < self.env.window.bytes / 2
        {
            self.stalled.store(false, Ordering::Relaxed);
            if self.pacers.load(Ordering::Acquire) > 0 {
                self.progress.notify_waiters();
            }
        }
        if !st.pull_waiters.is_empty() {
            self.wake_pullers(st);
        }
        self.schedule(st);
    }

    /// Returns the channels whose consumers had credit and found nothing of theirs in memory
    /// while messages are paged out, for [`Queue::maybe_page_in`] to look for on disk.
    fn dispatch_ready(self: &Arc<Self>, st: &mut State, fx: &mut Effects) -> Vec<Arc<str>> {
        let mut starved: Vec<Arc<str>> = Vec::new();
        if st.consumers.is_empty() || st.ready_len() == 0 {
            // With nothing in memory the next sequential read comes anyway.
            return starved;
        }
        let now = self.env.clock.now_ms();
        let visibility = st.settings.visibility_timeout.map(|v| v.as_millis() as u64);
        loop {
            let n = st.consumers.len();
            // The next consumer in turn with credit and a message it may take: a channel's
            // consumer takes only that channel's messages.
            let mut found = None;
            for i in 0..n {
                let idx = (st.cursor + i) % n;
                if !st.consumers[idx].has_room() {
                    continue;
                }
                let channel = st.consumers[idx].spec.channel.clone();
                match self.next_live(st, now, channel.as_deref(), fx) {
                    Some(message) => {
                        found = Some((idx, message));
                        break;
                    }
                    // Nothing waits at all: nobody can be served.
                    None if channel.is_none() => return starved,
                    None => {
                        if let Some(c) = channel
                            .filter(|c| st.paged.count > 0 && !starved.iter().any(|s| s == c))
                        {
                            starved.push(c);
                        }
                    }
                }
            }
            let Some((idx, (seq, mut entry))) = found else {
                return starved;
            };
            st.cursor = (idx + 1) % n;
            entry.deliveries += 1;
            let consumer = &mut st.consumers[idx];
            let mut delivery = self.delivery(consumer, seq, &entry);
            let client_ack = consumer.spec.ack != AckMode::Auto;
            if entry.stored && client_ack {
                delivery.durable = Some(fx.gate());
            }
            if !consumer.spec.outbox.deliver(Box::new(delivery)) {
                // The connection is gone and will detach this consumer; until then it gets nothing.
                consumer.credit = 0;
                entry.deliveries -= 1;
                st.insert_ready(seq, entry);
                continue;
            }
            consumer.credit -= 1;
            consumer.unacked_bytes += entry.size();
            let dispatch_no = consumer.next_dispatch;
            consumer.next_dispatch += 1;
            consumer.unacked.insert(dispatch_no, seq);
            let holder = Holder::Consumer {
                id: consumer.spec.id,
                dispatch_no,
            };
            if client_ack {
                self.record_delivery(st, seq, &mut entry, fx);
            } else {
                self.count_delivery(&entry);
            }
            st.insert_inflight(
                seq,
                Inflight {
                    entry,
                    holder,
                    deadline: visibility.map(|v| now + v),
                },
            );
        }
    }

    fn delivery(self: &Arc<Self>, consumer: &Consumer, seq: u64, entry: &Entry) -> Delivery {
        let spec = &consumer.spec;
        let auto = spec.ack == AckMode::Auto;
        Delivery {
            consumer: spec.id,
            subscription: spec.subscription.clone(),
            // A wildcard subscription's messages name the topic each was sent to, and a whole
            // OCID queue's the channel (a bare `<OCID>/<channel>`, never a `/topic/...`).
            destination: match (spec.pattern
                || (spec.channel.is_none() && crate::channel::possible(&self.name)))
            .then(|| entry.record.header(crate::publish::PUBLISHED_TO))
            .flatten()
            {
                Some(sent_to) if spec.pattern || !sent_to.starts_with('/') => Arc::from(sent_to),
                _ => spec.destination.clone(),
            },
            queue_number: self.number,
            seq,
            delivery_count: entry.deliveries,
            client_ack: !auto,
            record: entry.record.clone(),
            auto_ack: auto.then(|| AutoAck {
                queue: self.clone(),
                consumer: spec.id,
                seq,
            }),
            durable: None,
        }
    }

    /// The next waiting message (of `channel`, if given) that has not expired; expired ones met
    /// on the way are removed.
    pub(super) fn next_live(
        &self,
        st: &mut State,
        now: u64,
        channel: Option<&str>,
        fx: &mut Effects,
    ) -> Option<(u64, Entry)> {
        let retention = st.settings.retention.as_millis() as u64;
        let ctx = self.ctx();
        loop {
            let (seq, entry) = match channel {
                None => st.take_ready()?,
                Some(c) => st.take_ready_in(c)?,
            };
            if entry.record.expires_at_ms.is_some_and(|at| at <= now) {
                QueueStats::add(&self.stats.expired, 1);
                st.dead_letter(&ctx, seq, entry, DeathReason::Expired, fx);
            } else if entry.record.enqueued_at_ms.saturating_add(retention) <= now {
                QueueStats::add(&self.stats.expired, 1);
                st.forget(&ctx, seq, &entry, fx);
            } else {
                return Some((seq, entry));
            }
        }
    }

    /// Persists a delivery count, so `max_deliveries` holds across restarts.
    pub(super) fn record_delivery(
        &self,
        st: &State,
        seq: u64,
        entry: &mut Entry,
        fx: &mut Effects,
    ) {
        self.count_delivery(entry);
        if let (true, Some(id)) = (entry.stored, st.store_id) {
            entry.counted = true;
            fx.ops.push(Op::SetDeliveries {
                queue: id,
                seq,
                count: entry.deliveries,
            });
        }
    }

    pub(super) fn count_delivery(&self, entry: &Entry) {
        QueueStats::add(&self.stats.delivered, 1);
        if entry.deliveries > 1 {
            QueueStats::add(&self.stats.redelivered, 1);
        }
    }
}
