//! What the admin API does to a queue: purge, peek, take messages to move them elsewhere, change
//! settings at run time, and the snapshot its views are built from.

use std::sync::Arc;

use stampede_store::{MessageRecord, Op, QueueId};

use super::state::Extras;
use super::{Queue, QueueStats};
use crate::effects::Effects;
use crate::meta::QueueAttrs;
use crate::policy::QueueSettings;
use crate::view::{ChannelView, ConsumerView, QueueCounters, QueueView};

/// Messages taken out of a queue: to be put into another, or handed out once.
pub(crate) struct Moved {
    pub taken: Vec<Peeked>,
}

/// A waiting message as the admin API shows it.
#[derive(Debug, Clone)]
pub struct Peeked {
    pub seq: u64,
    pub record: Arc<MessageRecord>,
    pub deliveries: u32,
}

/// The waiting messages of a queue that are only in the store.
#[derive(Debug)]
pub struct PagedRest {
    pub store_id: QueueId,
    /// They lie above this sequence number...
    pub after: u64,
    /// ...except these, which are in memory (waiting or in flight).
    pub held: Vec<u64>,
}

impl Queue {
    /// Removes every waiting message, in memory and paged out. In-flight messages stay with their
    /// holders, to be settled as usual. The queue moves to store id `new_id` in the same commit:
    /// `create` (the `PutQueue` of `new_id`) first, then the in-flight messages put again under
    /// it, then the old id dropped — one commit, however many messages were waiting, and a message
    /// staged under the old id meanwhile is discarded when it is published (it was dropped with
    /// the old id). Returns how many messages were purged.
    pub fn purge(self: &Arc<Self>, new_id: QueueId, create: Op, fx: &mut Effects) -> u64 {
        let mut st = self.lock();
        if st.dropped {
            return 0;
        }
        let purged = (st.waiting() + st.delayed_len()) as u64;
        let mut dropped = st.drain_ready();
        dropped.extend(st.drain_delayed());
        for (_, entry) in dropped {
            st.bytes = st.bytes.saturating_sub(entry.size());
        }
        st.bytes = st.bytes.saturating_sub(st.paged.bytes);
        st.paged.count = 0;
        st.paged.bytes = 0;
        st.paged.reading = false;
        st.paged.retry_at = None;
        st.paged.scanned.clear();
        // The in-flight messages scans took are put again under the new id, above the cursor: a
        // later read must still skip them.
        let in_flight: std::collections::BTreeSet<u64> = st
            .paged
            .taken
            .iter()
            .copied()
            .filter(|s| st.holds(*s))
            .collect();
        st.paged.taken = in_flight;
        if let Some(old) = st.store_id {
            fx.ops.push(create);
            for (seq, inflight) in st.inflight_iter() {
                let entry = &inflight.entry;
                if !entry.stored {
                    continue;
                }
                fx.ops.push(Op::Put {
                    queue: new_id,
                    seq,
                    record: entry.record.clone(),
                });
                if entry.deliveries > 0 {
                    fx.ops.push(Op::SetDeliveries {
                        queue: new_id,
                        seq,
                        count: entry.deliveries,
                    });
                }
            }
            fx.ops.push(Op::DropQueue { id: old });
            st.store_id = Some(new_id);
        }
        QueueStats::add(&self.stats.purged, purged);
        self.dispatch(&mut st, fx);
        purged
    }

    /// Up to `max` waiting messages in memory, oldest first, and how many more wait in the store
    /// (with the store id and sequence number to read them after, and the sequence numbers above
    /// that which a channel scan brought into memory, which a read there must skip).
    pub fn peek_ready(&self, max: usize) -> (Vec<Peeked>, Option<PagedRest>) {
        let st = self.lock();
        let out: Vec<Peeked> = st
            .ready()
            .take(max)
            .map(|(seq, e)| Peeked {
                seq,
                record: e.record.clone(),
                deliveries: e.deliveries,
            })
            .collect();
        let rest = match (st.paged.count, st.store_id) {
            (0, _) | (_, None) => None,
            (_, Some(id)) => {
                let cursor = st.paged.cursor;
                let held = st
                    .ready()
                    .map(|(s, _)| s)
                    .chain(st.inflight_iter().map(|(s, _)| s))
                    .chain(st.paged.taken.iter().copied())
                    .filter(|s| *s > cursor)
                    .collect();
                Some(PagedRest {
                    store_id: id,
                    after: cursor,
                    held,
                })
            }
        };
        (out, rest)
    }

    /// Takes out of memory up to `max` of the waiting messages `pick` chooses (it sees each one's
    /// sequence number and record, oldest first), deleting them here.
    pub fn take_waiting(
        self: &Arc<Self>,
        max: usize,
        mut pick: impl FnMut(u64, &MessageRecord) -> bool,
        fx: &mut Effects,
    ) -> Moved {
        let mut st = self.lock();
        let ctx = self.ctx();
        let chosen: Vec<u64> = st
            .ready()
            .filter(|(seq, e)| pick(*seq, &e.record))
            .take(max)
            .map(|(seq, _)| seq)
            .collect();
        let mut taken = Vec::with_capacity(chosen.len());
        for seq in chosen {
            if let Some(entry) = st.remove_ready(seq) {
                st.forget(&ctx, seq, &entry, fx);
                taken.push(Peeked {
                    seq,
                    deliveries: entry.deliveries,
                    record: entry.record,
                });
            }
        }
        self.dispatch(&mut st, fx);
        Moved { taken }
    }

    /// Replaces the queue's settings (changed at run time).
    pub fn set_settings(self: &Arc<Self>, settings: Arc<QueueSettings>, fx: &mut Effects) {
        let mut st = self.lock();
        st.settings = settings;
        // A shorter retention or timeout may make something due at once.
        st.armed = None;
        self.dispatch(&mut st, fx);
    }

    /// Marks the queue removed: nothing attaches to it or enters it from now on. Refused while
    /// consumers are attached.
    pub fn mark_dropped(&self) -> Result<Option<QueueId>, usize> {
        let mut st = self.lock();
        if !st.consumers.is_empty() {
            return Err(st.consumers.len());
        }
        st.dropped = true;
        // Long polls end rather than wait on a queue nobody can put to.
        for w in st.pull_waiters.drain(..) {
            w.wake.notify_one();
        }
        Ok(st.store_id.take())
    }

    /// The attributes to store for this queue, with `change` applied to them first (a run-time
    /// settings change, new labels).
    pub fn attrs(&self, change: impl FnOnce(&mut QueueAttrs)) -> QueueAttrs {
        let mut st = self.lock();
        let extras = st.extras.as_deref().cloned().unwrap_or_default();
        let mut attrs = QueueAttrs {
            number: self.number,
            created_at_ms: st.created_at_ms,
            overrides: extras.overrides,
            labels: extras.labels,
            auto_delete: extras.auto_delete,
            temporary: extras.temporary,
        };
        change(&mut attrs);
        st.extras = Some(Box::new(Extras {
            overrides: attrs.overrides.clone(),
            labels: attrs.labels.clone(),
            auto_delete: attrs.auto_delete,
            temporary: attrs.temporary,
            owner: extras.owner,
        }));
        attrs
    }

    /// True when the queue goes once its last consumer leaves: RabbitMQ's `auto-delete`, and
    /// an exclusive queue, which lives only as long as its owner's subscription.
    pub fn auto_delete(&self) -> bool {
        self.lock()
            .extras
            .as_ref()
            .is_some_and(|e| e.auto_delete || e.owner.is_some())
    }

    /// The session an exclusive (or temporary) queue belongs to.
    pub fn owner(&self) -> Option<u64> {
        self.lock().extras.as_ref().and_then(|e| e.owner)
    }

    pub fn consumer_count(&self) -> usize {
        self.lock().consumers.len()
    }

    pub fn dead_letter_queue(&self) -> Option<String> {
        self.lock().dead_letter_queue(&self.ctx())
    }

    pub fn settings(&self) -> Arc<QueueSettings> {
        self.lock().settings.clone()
    }

    /// The queue as it is now, under one lock.
    pub fn view(&self) -> QueueView {
        let st = self.lock();
        let extras = st.extras.as_deref();
        let consumers = st
            .consumers
            .iter()
            .map(|c| ConsumerView {
                session: c.spec.session,
                subscription: c.spec.subscription.clone(),
                principal: c.spec.principal.clone(),
                ack: c.spec.ack,
                prefetch: c.spec.prefetch,
                unacked: c.unacked.len() as u64,
            })
            .collect();
        QueueView {
            name: self.name.clone(),
            number: self.number,
            visible: st.waiting() as u64,
            in_flight: st.inflight_len() as u64,
            delayed: st.delayed_len() as u64,
            bytes: st.bytes,
            settings: (*st.settings).clone(),
            dead_letter_queue: st.dead_letter_queue(&self.ctx()).map(Arc::from),
            created_at_ms: st.created_at_ms,
            lifecycle: crate::Lifecycle {
                durable: extras.is_none_or(|e| !e.temporary),
                auto_delete: extras.is_some_and(|e| e.auto_delete),
                exclusive: extras.is_some_and(|e| e.owner.is_some()),
            },
            consumers,
            long_polls: st.pull_waiters.len() as u64,
            counters: self.counters(),
            oldest_enqueued_at_ms: st.first_ready().map(|(_, e)| e.record.enqueued_at_ms),
        }
    }

    /// Counts of one channel's messages (of those in memory: a channel's paged-out backlog is
    /// not counted until read back, which OCI's approximate statistics allow).
    pub fn channel_view(&self, channel: &str) -> ChannelView {
        let st = self.lock();
        let mut view = ChannelView::default();
        for entry in st.ready_in(channel) {
            view.visible += 1;
            view.bytes += entry.size();
        }
        for (_, i) in st.inflight_iter() {
            if crate::channel::of(&i.entry.record) == Some(channel) {
                view.in_flight += 1;
                view.bytes += i.entry.size();
            }
        }
        view
    }

    /// The channels that hold a message, waiting or in flight (in memory), sorted.
    pub fn channels(&self) -> Vec<String> {
        let st = self.lock();
        let mut out: std::collections::BTreeSet<String> =
            st.ready_channels().map(|(c, _)| c.to_string()).collect();
        for (_, i) in st.inflight_iter() {
            if let Some(c) = crate::channel::of(&i.entry.record) {
                out.insert(c.to_owned());
            }
        }
        out.into_iter().collect()
    }

    pub(crate) fn counters(&self) -> QueueCounters {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &self.stats;
        QueueCounters {
            enqueued: s.enqueued.load(Relaxed),
            delivered: s.delivered.load(Relaxed),
            redelivered: s.redelivered.load(Relaxed),
            acked: s.acked.load(Relaxed),
            nacked: s.nacked.load(Relaxed),
            timed_out: s.timed_out.load(Relaxed),
            dead_lettered: s.dead_lettered.load(Relaxed),
            expired: s.expired.load(Relaxed),
            dropped: s.dropped.load(Relaxed),
            purged: s.purged.load(Relaxed),
        }
    }
}
