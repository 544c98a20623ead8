//! One queue's state machine (the OCI Queue model): ready (FIFO by sequence number) → in flight
//! (delivered, hidden until its visibility deadline) → settled, or back to ready, or to the
//! dead-letter queue once `max_deliveries` is used up. STOMP subscriptions (pushed, credit-based)
//! and pull consumers (GetMessages-style receipts) are two front ends on the same machine.
//!
//! Each queue has its own lock; nothing here takes a broker-wide lock, and the lock is never held
//! across an `.await` (dispatch only pushes onto unbounded outboxes). Operations record their
//! consequences in an [`Effects`] which the caller applies once the lock is released.
//!
//! Durability ordering: a message's `Put` is submitted to the store before [`Queue::publish`] makes
//! it visible, so no consumer can ACK (and `Delete`) a message whose `Put` is not queued ahead.

mod state;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_time;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use stampede_proto::AckMode;
use stampede_store::{MessageRecord, Op};

use crate::clock::Clock;
use crate::delivery::{AutoSettle, Delivery, Outbox, Outgoing};
use crate::effects::{DeathReason, Effects, PageIn};
use crate::policy::QueueSettings;
use state::{Consumer, Ctx, Entry, Holder, Inflight, State};

/// Identifies one subscription's consumer across all queues; unique for the broker's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConsumerId(pub u64);

/// What a subscription attaches to a queue.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    pub id: ConsumerId,
    pub subscription: Arc<str>,
    pub destination: Arc<str>,
    pub ack: AckMode,
    /// Most unsettled messages this consumer may hold.
    pub prefetch: u32,
    pub outbox: Outbox,
}

/// How a queue lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    /// Persisted through the store; outlives connections.
    Durable,
    /// In memory only (a non-durable topic subscription); keeps at most `max_ready` waiting
    /// messages and drops the oldest beyond that, so one stalled subscriber cannot exhaust memory.
    Transient { max_ready: usize },
}

/// How many waiting messages a durable queue keeps in memory; the rest stay in the store until
/// the queue drains below half of this ("heads in memory, the rest on disk").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub messages: usize,
    pub bytes: u64,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            messages: 10_000,
            bytes: 16 * 1024 * 1024,
        }
    }
}

/// Counters a queue keeps for observability.
#[derive(Debug, Default)]
pub struct QueueStats {
    pub enqueued: AtomicU64,
    pub delivered: AtomicU64,
    /// Deliveries of a message that had been delivered before.
    pub redelivered: AtomicU64,
    pub acked: AtomicU64,
    pub nacked: AtomicU64,
    /// Deliveries whose visibility timeout passed.
    pub timed_out: AtomicU64,
    pub dead_lettered: AtomicU64,
    /// Removed by retention or `expires`.
    pub expired: AtomicU64,
    /// Dropped from a transient queue over its bound.
    pub dropped: AtomicU64,
}

/// A queue's size at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueSnapshot {
    pub visible: u64,
    pub in_flight: u64,
    pub consumers: u64,
    pub bytes: u64,
}

/// A message handed to a pull consumer.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub seq: u64,
    pub record: Arc<MessageRecord>,
    pub delivery_count: u32,
    /// Names this delivery for [`Queue::delete`] and [`Queue::extend`].
    pub receipt: String,
}

/// A settle request named a message this consumer does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotInFlight;

/// A queue refused a message because it is full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Full {
    pub limit: &'static str,
    pub value: u64,
}

/// A named FIFO queue.
pub struct Queue {
    name: Arc<str>,
    /// Short numeric id that prefixes message ids, so an ACK names its queue without a lookup.
    id: u64,
    kind: QueueKind,
    settings: QueueSettings,
    window: Window,
    clock: Arc<dyn Clock>,
    next_seq: AtomicU64,
    state: Mutex<State>,
    pub stats: QueueStats,
    /// Producer pacing (see [`Queue::pace`]): woken when consumers have taken the in-memory
    /// backlog below the low-water mark.
    progress: tokio::sync::Notify,
    /// Producers waiting in [`Queue::pace`], so dispatch only notifies when someone listens.
    pacers: AtomicUsize,
    /// The consumers took nothing while a producer waited: stop pacing until they catch up.
    stalled: AtomicBool,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name)
            .field("id", &self.id)
            .finish()
    }
}

impl Queue {
    pub fn new(
        name: &str,
        id: u64,
        kind: QueueKind,
        settings: QueueSettings,
        window: Window,
        clock: Arc<dyn Clock>,
    ) -> Arc<Queue> {
        let dead_letter_queue = match kind {
            QueueKind::Durable => settings.dead_letter_queue_of(name),
            QueueKind::Transient { .. } => None,
        };
        Arc::new(Queue {
            name: Arc::from(name),
            id,
            kind,
            settings,
            window,
            clock,
            next_seq: AtomicU64::new(1),
            state: Mutex::new(State {
                dead_letter_queue,
                ..State::default()
            }),
            stats: QueueStats::default(),
            progress: tokio::sync::Notify::new(),
            pacers: AtomicUsize::new(0),
            stalled: AtomicBool::new(false),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    pub fn is_durable(&self) -> bool {
        self.kind == QueueKind::Durable
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            name: &self.name,
            max_deliveries: self.settings.max_deliveries,
        }
    }

    /// Routes this queue's dead letters to `queue` instead (the `x-dead-letter-routing-key`
    /// SUBSCRIBE header). Ignored for transient queues and for a queue naming itself.
    pub fn set_dead_letter_queue(&self, queue: &str) {
        if self.is_durable() && queue != &*self.name {
            self.state.lock().dead_letter_queue = Some(queue.to_owned());
        }
    }

    /// Allocates the sequence number of the next message; pair with [`Queue::publish`].
    pub fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Refuses a message of `size` bytes if it would take the queue past a configured limit.
    pub fn check_capacity(&self, size: usize) -> Result<(), Full> {
        let st = self.state.lock();
        if let Some(max) = self.settings.max_messages {
            if (st.ready.len() + st.inflight.len()) as u64 + st.paged.count >= max {
                return Err(Full {
                    limit: "max_messages",
                    value: max,
                });
            }
        }
        if let Some(max) = self.settings.max_bytes {
            if st.bytes + size as u64 > max {
                return Err(Full {
                    limit: "max_bytes",
                    value: max,
                });
            }
        }
        Ok(())
    }

    /// Stages message `seq` in `fx`: its put (for a durable queue) and its publication once the
    /// put is submitted. A non-persistent message (`persistent == false`) skips the store while
    /// the queue's backlog fits its memory window, so it is gone after a restart; beyond the window
    /// it is stored like any other, because only stored messages may wait outside memory.
    pub fn stage(
        self: &Arc<Self>,
        seq: u64,
        record: Arc<MessageRecord>,
        persistent: bool,
        fx: &mut Effects,
    ) {
        let stored = self.is_durable() && (persistent || self.beyond_window(&self.state.lock()));
        if stored {
            fx.ops.push(Op::Put {
                queue: self.name.clone(),
                seq,
                record: record.clone(),
            });
        }
        fx.publish.push(crate::effects::Staged {
            queue: self.clone(),
            seq,
            record,
            stored,
        });
    }

    fn beyond_window(&self, st: &State) -> bool {
        st.paged.count > 0
            || st.ready.len() >= self.window.messages
            || st.memory_bytes() >= self.window.bytes
    }

    /// Makes message `seq` visible and dispatches it if a consumer has credit. Beyond the memory
    /// window a durable queue keeps only the count of stored messages: they are read back from
    /// the store when the queue has drained enough. `stored` says whether its put was committed.
    pub fn publish(
        self: &Arc<Self>,
        seq: u64,
        record: Arc<MessageRecord>,
        stored: bool,
        fx: &mut Effects,
    ) {
        self.stats.enqueued.fetch_add(1, Ordering::Relaxed);
        self.next_seq.fetch_max(seq + 1, Ordering::Relaxed);
        let mut st = self.state.lock();
        let size = record.size() as u64;
        st.bytes += size;
        // Only messages newer than everything in memory may stay on disk: page-in reads above
        // the cursor. Sequence numbers are allocated before publishing, so an older one can
        // arrive late; it joins memory (the window stretches by the few in transit). A message
        // that was not stored joins memory too, unless messages older than it are paged out:
        // then it must wait on disk behind them (its put is committed by the same apply, before
        // any page-in it triggers), or it would raise the cursor above them and they would
        // never be read back.
        let behind_paged = self.is_durable() && st.paged.count > 0;
        if (behind_paged || (stored && self.beyond_window(&st))) && seq > st.paged.cursor {
            if !stored {
                fx.ops.push(Op::Put {
                    queue: self.name.clone(),
                    seq,
                    record,
                });
            }
            st.paged.count += 1;
            st.paged.bytes += size;
            self.maybe_page_in(&mut st, fx);
            return;
        }
        st.insert_ready(seq, Entry::new(record, stored && self.is_durable()));
        st.paged.cursor = st.paged.cursor.max(seq);
        if let QueueKind::Transient { max_ready } = self.kind {
            while st.ready.len() > max_ready {
                if let Some((seq, entry)) = st.take_ready() {
                    st.forget(&self.ctx(), seq, &entry, fx);
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.dispatch(&mut st, fx);
    }

    /// Rebuilds the queue at start-up from the head the store returned and its totals.
    pub fn recover(self: &Arc<Self>, stored: stampede_store::RecoveredQueue, fx: &mut Effects) {
        self.next_seq.fetch_max(stored.next_seq, Ordering::Relaxed);
        let mut st = self.state.lock();
        let mut head_bytes = 0;
        for m in &stored.head {
            head_bytes += m.record.size() as u64;
            st.paged.cursor = st.paged.cursor.max(m.seq);
        }
        st.bytes = stored.bytes.max(head_bytes);
        st.paged.count = stored.messages.saturating_sub(stored.head.len() as u64);
        st.paged.bytes = st.bytes - head_bytes;
        for m in stored.head {
            let entry = Entry::stored(m.record, m.deliveries);
            st.insert_ready(m.seq, entry);
        }
        self.dispatch(&mut st, fx);
    }

    /// Takes in what a [`PageIn`] read from the store.
    pub fn paged_in(
        self: &Arc<Self>,
        read: Result<Vec<stampede_store::Recovered>, stampede_store::StoreError>,
        fx: &mut Effects,
    ) {
        let mut st = self.state.lock();
        st.paged.reading = false;
        let messages = match read {
            Ok(m) => m,
            Err(e) => {
                // Retried at the next dispatch or tick.
                tracing::error!(queue = %self.name, error = %e, "reading waiting messages from the store failed");
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
            let entry = Entry::stored(m.record, m.deliveries);
            st.insert_ready(m.seq, entry);
        }
        self.dispatch(&mut st, fx);
    }

    /// Asks for the next paged messages once the in-memory head has drained below half the window.
    fn maybe_page_in(self: &Arc<Self>, st: &mut State, fx: &mut Effects) {
        let low =
            st.ready.len() < self.window.messages / 2 && st.memory_bytes() < self.window.bytes / 2;
        if st.paged.count == 0 || st.paged.reading || !low {
            return;
        }
        st.paged.reading = true;
        fx.page_in.push(PageIn {
            queue: self.clone(),
            after: st.paged.cursor,
            max: self.window.messages - st.ready.len(),
        });
    }

    /// Attaches a consumer and hands it what it has credit for.
    pub fn add_consumer(self: &Arc<Self>, spec: ConsumerSpec, fx: &mut Effects) {
        let mut st = self.state.lock();
        st.consumers.push(Consumer {
            credit: spec.prefetch.max(1),
            spec,
            next_dispatch: 0,
            unacked: BTreeMap::new(),
            expired: VecDeque::new(),
        });
        self.dispatch(&mut st, fx);
    }

    /// Detaches a consumer. Its unsettled messages return to the queue at their original position
    /// (ahead of newer ones), flagged redelivered, or are dead-lettered if out of deliveries.
    pub fn remove_consumer(self: &Arc<Self>, id: ConsumerId, fx: &mut Effects) {
        let mut st = self.state.lock();
        let Some(pos) = st.consumers.iter().position(|c| c.spec.id == id) else {
            return;
        };
        let consumer = st.consumers.remove(pos);
        let ctx = self.ctx();
        for seq in consumer.unacked.into_values() {
            if let Some(inflight) = st.take_inflight(seq) {
                st.requeue(&ctx, seq, inflight.entry, fx);
            }
        }
        if st.cursor >= st.consumers.len() {
            st.cursor = 0;
        }
        self.dispatch(&mut st, fx);
    }

    /// Settles message `seq` held by `consumer` (and, when `cumulative`, every message delivered to
    /// it before).
    pub fn ack(
        self: &Arc<Self>,
        consumer: ConsumerId,
        seq: u64,
        cumulative: bool,
        fx: &mut Effects,
    ) -> Result<(), NotInFlight> {
        let mut st = self.state.lock();
        let settled = st.take_settled(consumer, seq, cumulative)?;
        self.stats
            .acked
            .fetch_add(settled.len() as u64, Ordering::Relaxed);
        let ctx = self.ctx();
        for (seq, entry) in settled {
            st.forget(&ctx, seq, &entry, fx);
        }
        self.dispatch(&mut st, fx);
        Ok(())
    }

    /// Returns message `seq` (and, when `cumulative`, earlier ones) to the queue at once — each
    /// return counts as a delivery — or with `requeue == false` dead-letters them.
    pub fn nack(
        self: &Arc<Self>,
        consumer: ConsumerId,
        seq: u64,
        cumulative: bool,
        requeue: bool,
        fx: &mut Effects,
    ) -> Result<(), NotInFlight> {
        let mut st = self.state.lock();
        let settled = st.take_settled(consumer, seq, cumulative)?;
        self.stats
            .nacked
            .fetch_add(settled.len() as u64, Ordering::Relaxed);
        let ctx = self.ctx();
        for (seq, entry) in settled {
            if requeue {
                st.requeue(&ctx, seq, entry, fx);
            } else {
                st.dead_letter(&ctx, seq, entry, DeathReason::Nack, fx);
            }
        }
        self.dispatch(&mut st, fx);
        Ok(())
    }

    /// What an ACK/NACK would settle, without settling (a transaction validates before COMMIT).
    pub fn settle_preview(
        &self,
        consumer: ConsumerId,
        seq: u64,
        cumulative: bool,
    ) -> Result<Vec<u64>, NotInFlight> {
        self.state.lock().settle_preview(consumer, seq, cumulative)
    }

    /// Settles auto-ack deliveries once the connection has written them.
    pub fn settle_written(self: &Arc<Self>, consumer: ConsumerId, seqs: &[u64], fx: &mut Effects) {
        let mut st = self.state.lock();
        let ctx = self.ctx();
        for &seq in seqs {
            if let Ok(settled) = st.take_settled(consumer, seq, false) {
                self.stats.acked.fetch_add(1, Ordering::Relaxed);
                for (seq, entry) in settled {
                    st.forget(&ctx, seq, &entry, fx);
                }
            }
        }
        self.dispatch(&mut st, fx);
    }

    /// Delivery count of message `seq` if it is in flight to `consumer`.
    pub fn inflight_count(&self, consumer: ConsumerId, seq: u64) -> Option<u32> {
        let st = self.state.lock();
        st.inflight
            .get(&seq)
            .filter(|i| matches!(i.holder, Holder::Consumer { id, .. } if id == consumer))
            .map(|i| i.entry.deliveries)
    }

    /// True if `consumer` held `seq` until its visibility timeout took it back: a late ACK of it is
    /// a slow consumer, not a protocol error.
    pub fn timed_out_from(&self, consumer: ConsumerId, seq: u64) -> bool {
        let st = self.state.lock();
        st.consumers
            .iter()
            .find(|c| c.spec.id == consumer)
            .is_some_and(|c| c.expired.contains(&seq))
    }

    /// Applies what time has done: visibility deadlines that passed, `expires` times and retention.
    pub fn tick(self: &Arc<Self>, fx: &mut Effects) {
        let now = self.clock.now_ms();
        let retention = self.settings.retention.as_millis() as u64;
        let mut st = self.state.lock();
        let ctx = self.ctx();
        let mut changed = false;
        while let Some(&(deadline, seq)) = st.deadlines.first() {
            if deadline > now {
                break;
            }
            if let Some(entry) = st.expire_delivery(seq) {
                self.stats.timed_out.fetch_add(1, Ordering::Relaxed);
                st.requeue(&ctx, seq, entry, fx);
                changed = true;
            }
        }
        while let Some(&(at, seq)) = st.expiring.first() {
            if at > now {
                break;
            }
            if let Some(entry) = st.remove_ready(seq) {
                self.stats.expired.fetch_add(1, Ordering::Relaxed);
                st.dead_letter(&ctx, seq, entry, DeathReason::Expired, fx);
            }
        }
        while let Some((&seq, entry)) = st.ready.first_key_value() {
            if entry.record.enqueued_at_ms.saturating_add(retention) > now {
                break;
            }
            if let Some(entry) = st.remove_ready(seq) {
                self.stats.expired.fetch_add(1, Ordering::Relaxed);
                st.forget(&ctx, seq, &entry, fx);
            }
        }
        if changed {
            self.dispatch(&mut st, fx);
        } else {
            self.maybe_page_in(&mut st, fx);
        }
    }

    /// Hands up to `max` visible messages to a pull consumer and hides them for `visibility` (the
    /// queue's own timeout when `None`). Each comes with a receipt for [`Queue::delete`].
    pub fn pull(
        self: &Arc<Self>,
        max: usize,
        visibility: Option<Duration>,
        fx: &mut Effects,
    ) -> Vec<Pulled> {
        let now = self.clock.now_ms();
        let visibility = visibility.or(self.settings.visibility_timeout);
        let mut st = self.state.lock();
        let mut out = Vec::new();
        while out.len() < max {
            let Some((seq, mut entry)) = self.next_live(&mut st, now, fx) else {
                break;
            };
            entry.deliveries += 1;
            self.record_delivery(seq, &mut entry, fx);
            out.push(Pulled {
                seq,
                record: entry.record.clone(),
                delivery_count: entry.deliveries,
                receipt: ack_token(self.id, seq, entry.deliveries),
            });
            let deadline = visibility.map(|v| now + v.as_millis() as u64);
            st.insert_inflight(
                seq,
                Inflight {
                    entry,
                    holder: Holder::Pull,
                    deadline,
                },
            );
        }
        self.maybe_page_in(&mut st, fx);
        out
    }

    /// Deletes a pulled message by its receipt.
    pub fn delete(&self, receipt: &str, fx: &mut Effects) -> Result<(), NotInFlight> {
        let mut st = self.state.lock();
        let seq = self.pulled_seq(&st, receipt)?;
        let inflight = st.take_inflight(seq).ok_or(NotInFlight)?;
        self.stats.acked.fetch_add(1, Ordering::Relaxed);
        st.forget(&self.ctx(), seq, &inflight.entry, fx);
        Ok(())
    }

    /// Hides a pulled message for `visibility` from now (0 makes it visible at the next tick).
    pub fn extend(&self, receipt: &str, visibility: Duration) -> Result<(), NotInFlight> {
        let now = self.clock.now_ms();
        let mut st = self.state.lock();
        let seq = self.pulled_seq(&st, receipt)?;
        let mut inflight = st.take_inflight(seq).ok_or(NotInFlight)?;
        inflight.deadline = Some(now + visibility.as_millis() as u64);
        st.insert_inflight(seq, inflight);
        Ok(())
    }

    fn pulled_seq(&self, st: &State, receipt: &str) -> Result<u64, NotInFlight> {
        let (qid, seq, count) = parse_ack_token(receipt).ok_or(NotInFlight)?;
        match st.inflight.get(&seq) {
            Some(i)
                if qid == self.id
                    && i.holder == Holder::Pull
                    && count.is_none_or(|c| c == i.entry.deliveries) =>
            {
                Ok(seq)
            }
            _ => Err(NotInFlight),
        }
    }

    fn count_delivery(&self, entry: &Entry) {
        self.stats.delivered.fetch_add(1, Ordering::Relaxed);
        if entry.deliveries > 1 {
            self.stats.redelivered.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waiting, in flight, consumers and bytes right now, for metrics.
    pub fn snapshot(&self) -> QueueSnapshot {
        let st = self.state.lock();
        QueueSnapshot {
            visible: st.ready.len() as u64 + st.paged.count,
            in_flight: st.inflight.len() as u64,
            consumers: st.consumers.len() as u64,
            bytes: st.bytes,
        }
    }

    /// (waiting, in flight, consumers) right now.
    pub fn depth(&self) -> (usize, usize, usize) {
        let st = self.state.lock();
        (
            st.ready.len() + st.paged.count as usize,
            st.inflight.len(),
            st.consumers.len(),
        )
    }

    /// The next waiting message that has not expired; expired ones met on the way are removed.
    fn next_live(&self, st: &mut State, now: u64, fx: &mut Effects) -> Option<(u64, Entry)> {
        let retention = self.settings.retention.as_millis() as u64;
        loop {
            let (seq, entry) = st.take_ready()?;
            if entry.record.expires_at_ms.is_some_and(|at| at <= now) {
                self.stats.expired.fetch_add(1, Ordering::Relaxed);
                st.dead_letter(&self.ctx(), seq, entry, DeathReason::Expired, fx);
            } else if entry.record.enqueued_at_ms.saturating_add(retention) <= now {
                self.stats.expired.fetch_add(1, Ordering::Relaxed);
                st.forget(&self.ctx(), seq, &entry, fx);
            } else {
                return Some((seq, entry));
            }
        }
    }

    /// Persists a delivery count, so `max_deliveries` holds across restarts.
    fn record_delivery(&self, seq: u64, entry: &mut Entry, fx: &mut Effects) {
        self.count_delivery(entry);
        if entry.stored {
            entry.counted = true;
            fx.ops.push(Op::SetDeliveries {
                queue: self.name.clone(),
                seq,
                count: entry.deliveries,
            });
        }
    }

    /// Hands waiting messages to consumers with credit, round-robin, until one side runs out.
    fn dispatch(self: &Arc<Self>, st: &mut State, fx: &mut Effects) {
        self.dispatch_ready(st, fx);
        self.maybe_page_in(st, fx);
        if st.waiting() < self.window.messages / 2 && st.waiting_bytes() < self.window.bytes / 2 {
            self.stalled.store(false, Ordering::Relaxed);
            if self.pacers.load(Ordering::Acquire) > 0 {
                self.progress.notify_waiters();
            }
        }
    }

    /// True while a producer should wait before adding to this queue: its backlog has reached
    /// three quarters of the memory window and consumers are attached that have been taking
    /// messages. Pacing starts below the window so that producers racing past the check do not
    /// push the queue into paging (once anything is paged, every new message goes to disk until
    /// the paged ones are read back). Producers resume once the backlog is below half the window
    /// (see `dispatch`), so each wake-up lets a run of messages through rather than one. A
    /// backlog already twice the window is a bulk load being drained (or a stall that has passed):
    /// pacing would hold producers for the whole drain, so they go on and it stays on disk.
    fn crowded(&self) -> bool {
        if !self.is_durable() || self.stalled.load(Ordering::Relaxed) {
            return false;
        }
        let st = self.state.lock();
        let waiting = st.waiting();
        let (high, high_bytes) = (
            self.window.messages - self.window.messages / 4,
            self.window.bytes - self.window.bytes / 4,
        );
        !st.consumers.is_empty()
            && (waiting >= high || st.waiting_bytes() >= high_bytes)
            && waiting < 2 * self.window.messages
    }

    /// Producer flow control: waits while the queue is crowded, so a producer faster than the
    /// consumers keeps the backlog in memory, where they take it without a disk round trip,
    /// instead of burying them under a backlog paged out to disk. A wait lasts `stall` at most:
    /// consumers that do not bring the backlog down to half the window in that time (stuck, or
    /// just slow — then reading the backlog back from disk costs them nothing that matters) stop
    /// pacing producers, who go on while the backlog goes to the store, until the consumers have
    /// caught up. A slow consumer thus never holds a producer for long. Returns whether it
    /// waited.
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

    fn dispatch_ready(self: &Arc<Self>, st: &mut State, fx: &mut Effects) {
        if st.consumers.is_empty() || st.ready.is_empty() {
            return;
        }
        let now = self.clock.now_ms();
        let visibility = self
            .settings
            .visibility_timeout
            .map(|v| v.as_millis() as u64);
        loop {
            let n = st.consumers.len();
            let Some(idx) = (0..n)
                .map(|i| (st.cursor + i) % n)
                .find(|&i| st.consumers[i].credit > 0)
            else {
                return;
            };
            let Some((seq, mut entry)) = self.next_live(st, now, fx) else {
                return;
            };
            st.cursor = (idx + 1) % n;
            entry.deliveries += 1;
            let consumer = &mut st.consumers[idx];
            let mut delivery = self.delivery(consumer, seq, &entry);
            if entry.stored && consumer.spec.ack != AckMode::Auto {
                delivery.durable = Some(fx.gate());
            }
            if consumer
                .spec
                .outbox
                .send(Outgoing::Message(Box::new(delivery)))
                .is_err()
            {
                // The connection is gone and will detach this consumer; until then it gets nothing.
                consumer.credit = 0;
                entry.deliveries -= 1;
                st.insert_ready(seq, entry);
                continue;
            }
            consumer.credit -= 1;
            let dispatch_no = consumer.next_dispatch;
            consumer.next_dispatch += 1;
            consumer.unacked.insert(dispatch_no, seq);
            let holder = Holder::Consumer {
                id: consumer.spec.id,
                dispatch_no,
            };
            if consumer.spec.ack != AckMode::Auto {
                self.record_delivery(seq, &mut entry, fx);
            } else {
                self.count_delivery(&entry);
            }
            let deadline = visibility.map(|v| now + v);
            st.insert_inflight(
                seq,
                Inflight {
                    entry,
                    holder,
                    deadline,
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
            destination: spec.destination.clone(),
            message_id: message_id(self.id, seq),
            ack_id: (!auto).then(|| ack_token(self.id, seq, entry.deliveries)),
            record: entry.record.clone(),
            delivery_count: entry.deliveries,
            auto_settle: auto.then(|| AutoSettle {
                queue: self.clone(),
                consumer: spec.id,
                seq,
            }),
            durable: None,
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

/// The `message-id` of message `seq` in queue `queue_id`: `<queue id>-<seq>`.
pub fn message_id(queue_id: u64, seq: u64) -> String {
    format!("{queue_id}-{seq}")
}

/// A per-delivery token: `<queue id>-<seq>-<delivery count>`.
pub fn ack_token(queue_id: u64, seq: u64, deliveries: u32) -> String {
    format!("{queue_id}-{seq}-{deliveries}")
}

/// Parses a `message-id` or `ack` token into (queue id, seq, delivery count if given).
pub fn parse_ack_token(token: &str) -> Option<(u64, u64, Option<u32>)> {
    let mut parts = token.split('-');
    let qid = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    let count = match parts.next() {
        Some(c) => Some(c.parse().ok()?),
        None => None,
    };
    parts.next().is_none().then_some((qid, seq, count))
}
