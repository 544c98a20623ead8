//! One queue's state machine: ready (FIFO by sequence number) → in flight (delivered to one
//! consumer, awaiting ACK/NACK) → settled. Dispatch is credit-based: a consumer receives at most
//! `prefetch` messages it has not settled.
//!
//! Each queue has its own lock; no operation takes a broker-wide lock. The lock is never held
//! across an `.await`: dispatch only pushes onto unbounded outboxes, which never blocks.
//!
//! Durability ordering: a message's `Put` is submitted to the store before [`Queue::publish`] makes
//! it visible, so no consumer can ACK (and `Delete`) a message whose `Put` is not yet queued ahead.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use stampede_proto::AckMode;
use stampede_store::{MessageRecord, Op};

use crate::delivery::{AutoSettle, Delivery, Outbox, Outgoing};

#[cfg(test)]
mod tests;

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

/// A message waiting or in flight.
#[derive(Debug, Clone)]
struct Entry {
    record: Arc<MessageRecord>,
    /// Deliveries so far; the next delivery is number `deliveries + 1`.
    deliveries: u32,
}

#[derive(Debug)]
struct Inflight {
    entry: Entry,
    consumer: ConsumerId,
    /// Position in the consumer's delivery order, for cumulative (client-mode) ACKs.
    dispatch_no: u64,
}

#[derive(Debug)]
struct Consumer {
    spec: ConsumerSpec,
    credit: u32,
    next_dispatch: u64,
    /// Unsettled deliveries in the order they were made: dispatch number → sequence number.
    unacked: BTreeMap<u64, u64>,
}

#[derive(Debug, Default)]
struct State {
    ready: BTreeMap<u64, Entry>,
    inflight: HashMap<u64, Inflight>,
    consumers: Vec<Consumer>,
    /// Round-robin position among consumers.
    cursor: usize,
}

/// Counters a queue keeps for observability.
#[derive(Debug, Default)]
pub struct QueueStats {
    pub enqueued: AtomicU64,
    pub delivered: AtomicU64,
    pub acked: AtomicU64,
    pub dropped: AtomicU64,
}

/// A named FIFO queue.
#[derive(Debug)]
pub struct Queue {
    name: Arc<str>,
    /// Short numeric id that prefixes message ids, so an ACK names its queue without a lookup.
    id: u64,
    kind: QueueKind,
    next_seq: AtomicU64,
    state: Mutex<State>,
    pub stats: QueueStats,
}

/// Outcome of a NACK: the store ops to commit and the messages to dead-letter.
#[derive(Debug, Default)]
pub struct NackOutcome {
    pub ops: Vec<Op>,
    pub dead: Vec<Arc<MessageRecord>>,
}

/// A settle request named a message this consumer does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotInFlight;

impl Queue {
    pub fn new(name: &str, id: u64, kind: QueueKind) -> Arc<Queue> {
        Arc::new(Queue {
            name: Arc::from(name),
            id,
            kind,
            next_seq: AtomicU64::new(1),
            state: Mutex::new(State::default()),
            stats: QueueStats::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn is_durable(&self) -> bool {
        self.kind == QueueKind::Durable
    }

    /// Allocates the sequence number of the next message; pair with [`Queue::publish`].
    pub fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// The store op that persists message `seq`, if this queue is durable.
    pub fn put_op(&self, seq: u64, record: &Arc<MessageRecord>) -> Option<Op> {
        self.is_durable().then(|| Op::Put {
            queue: self.name.clone(),
            seq,
            record: record.clone(),
        })
    }

    fn delete_op(&self, seq: u64) -> Option<Op> {
        self.is_durable().then(|| Op::Delete {
            queue: self.name.clone(),
            seq,
        })
    }

    /// Makes message `seq` visible and dispatches it if a consumer has credit.
    pub fn publish(self: &Arc<Self>, seq: u64, record: Arc<MessageRecord>) {
        self.restore(seq, record, 0);
    }

    /// Makes a message visible with the deliveries it already had (recovery, requeue).
    pub fn restore(self: &Arc<Self>, seq: u64, record: Arc<MessageRecord>, deliveries: u32) {
        self.next_seq.fetch_max(seq + 1, Ordering::Relaxed);
        self.stats.enqueued.fetch_add(1, Ordering::Relaxed);
        let mut st = self.state.lock();
        st.ready.insert(seq, Entry { record, deliveries });
        if let QueueKind::Transient { max_ready } = self.kind {
            while st.ready.len() > max_ready {
                st.ready.pop_first();
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.dispatch(&mut st);
    }

    /// Attaches a consumer and hands it what it has credit for.
    pub fn add_consumer(self: &Arc<Self>, spec: ConsumerSpec) {
        let mut st = self.state.lock();
        st.consumers.push(Consumer {
            credit: spec.prefetch.max(1),
            spec,
            next_dispatch: 0,
            unacked: BTreeMap::new(),
        });
        self.dispatch(&mut st);
    }

    /// Detaches a consumer. Its unsettled messages return to the queue at their original position
    /// (ahead of newer ones) and will be flagged redelivered.
    pub fn remove_consumer(self: &Arc<Self>, id: ConsumerId) {
        let mut st = self.state.lock();
        let Some(pos) = st.consumers.iter().position(|c| c.spec.id == id) else {
            return;
        };
        let consumer = st.consumers.remove(pos);
        for seq in consumer.unacked.into_values() {
            if let Some(inflight) = st.inflight.remove(&seq) {
                st.ready.insert(seq, inflight.entry);
            }
        }
        if st.cursor >= st.consumers.len() {
            st.cursor = 0;
        }
        self.dispatch(&mut st);
    }

    /// Settles message `seq` held by `consumer` (and, when `cumulative`, every message delivered to
    /// it before). Returns the store ops that delete them.
    pub fn ack(
        self: &Arc<Self>,
        consumer: ConsumerId,
        seq: u64,
        cumulative: bool,
    ) -> Result<Vec<Op>, NotInFlight> {
        let mut st = self.state.lock();
        let settled = take_settled(&mut st, consumer, seq, cumulative)?;
        self.stats
            .acked
            .fetch_add(settled.len() as u64, Ordering::Relaxed);
        let ops = settled
            .iter()
            .filter_map(|(seq, _)| self.delete_op(*seq))
            .collect();
        self.dispatch(&mut st);
        Ok(ops)
    }

    /// Returns message `seq` (and, when `cumulative`, earlier ones) to the queue at once, or with
    /// `requeue == false` removes them for dead-lettering.
    pub fn nack(
        self: &Arc<Self>,
        consumer: ConsumerId,
        seq: u64,
        cumulative: bool,
        requeue: bool,
    ) -> Result<NackOutcome, NotInFlight> {
        let mut st = self.state.lock();
        let settled = take_settled(&mut st, consumer, seq, cumulative)?;
        let mut out = NackOutcome::default();
        for (seq, entry) in settled {
            if requeue {
                st.ready.insert(seq, entry);
            } else {
                out.ops.extend(self.delete_op(seq));
                out.dead.push(entry.record);
            }
        }
        self.dispatch(&mut st);
        Ok(out)
    }

    /// Settles auto-ack deliveries once the connection has written them.
    pub fn settle_written(self: &Arc<Self>, consumer: ConsumerId, seqs: &[u64]) -> Vec<Op> {
        let mut st = self.state.lock();
        let mut ops = Vec::new();
        for &seq in seqs {
            if let Ok(settled) = take_settled(&mut st, consumer, seq, false) {
                self.stats.acked.fetch_add(1, Ordering::Relaxed);
                ops.extend(settled.iter().filter_map(|(s, _)| self.delete_op(*s)));
            }
        }
        self.dispatch(&mut st);
        ops
    }

    /// The messages an ACK or NACK of `seq` by `consumer` would settle, without settling them:
    /// `seq` alone, or with `cumulative` every message delivered to `consumer` up to it.
    pub fn settle_preview(
        &self,
        consumer: ConsumerId,
        seq: u64,
        cumulative: bool,
    ) -> Result<Vec<u64>, NotInFlight> {
        let st = self.state.lock();
        let dispatch_no = match st.inflight.get(&seq) {
            Some(i) if i.consumer == consumer => i.dispatch_no,
            _ => return Err(NotInFlight),
        };
        let c = st
            .consumers
            .iter()
            .find(|c| c.spec.id == consumer)
            .ok_or(NotInFlight)?;
        Ok(if cumulative {
            c.unacked.range(..=dispatch_no).map(|(_, s)| *s).collect()
        } else {
            vec![seq]
        })
    }

    /// Delivery count of message `seq` if it is in flight to `consumer`.
    pub fn inflight_count(&self, consumer: ConsumerId, seq: u64) -> Option<u32> {
        let st = self.state.lock();
        st.inflight
            .get(&seq)
            .filter(|i| i.consumer == consumer)
            .map(|i| i.entry.deliveries)
    }

    /// (waiting, in flight, consumers) right now.
    pub fn depth(&self) -> (usize, usize, usize) {
        let st = self.state.lock();
        (st.ready.len(), st.inflight.len(), st.consumers.len())
    }

    /// Hands ready messages to consumers with credit, round-robin, until one side runs out.
    fn dispatch(self: &Arc<Self>, st: &mut State) {
        while !st.ready.is_empty() {
            let n = st.consumers.len();
            let Some(idx) = (0..n)
                .map(|i| (st.cursor + i) % n)
                .find(|&i| st.consumers[i].credit > 0)
            else {
                return;
            };
            st.cursor = (idx + 1) % n;
            let Some((seq, mut entry)) = st.ready.pop_first() else {
                return;
            };
            entry.deliveries += 1;
            let consumer = &mut st.consumers[idx];
            let delivery = self.delivery(consumer, seq, &entry);
            if consumer
                .spec
                .outbox
                .send(Outgoing::Message(delivery))
                .is_err()
            {
                // The connection is gone and will detach this consumer; until then it gets nothing.
                consumer.credit = 0;
                entry.deliveries -= 1;
                st.ready.insert(seq, entry);
                continue;
            }
            consumer.credit -= 1;
            let dispatch_no = consumer.next_dispatch;
            consumer.next_dispatch += 1;
            consumer.unacked.insert(dispatch_no, seq);
            let id = consumer.spec.id;
            self.stats.delivered.fetch_add(1, Ordering::Relaxed);
            st.inflight.insert(
                seq,
                Inflight {
                    entry,
                    consumer: id,
                    dispatch_no,
                },
            );
        }
    }

    fn delivery(self: &Arc<Self>, consumer: &Consumer, seq: u64, entry: &Entry) -> Delivery {
        let spec = &consumer.spec;
        let auto = spec.ack == AckMode::Auto;
        Delivery {
            subscription: spec.subscription.clone(),
            destination: spec.destination.clone(),
            message_id: message_id(self.id, seq),
            ack_id: (!auto).then(|| format!("{}-{seq}-{}", self.id, entry.deliveries)),
            record: entry.record.clone(),
            delivery_count: entry.deliveries,
            auto_settle: auto.then(|| AutoSettle {
                queue: self.clone(),
                consumer: spec.id,
                seq,
            }),
        }
    }
}

/// The `message-id` of message `seq` in queue `queue_id`: `<queue id>-<seq>`.
pub fn message_id(queue_id: u64, seq: u64) -> String {
    format!("{queue_id}-{seq}")
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

/// Removes `seq` (and earlier deliveries when `cumulative`) from `consumer`'s unsettled set and
/// from the in-flight table, restoring the consumer's credit.
fn take_settled(
    st: &mut State,
    consumer: ConsumerId,
    seq: u64,
    cumulative: bool,
) -> Result<Vec<(u64, Entry)>, NotInFlight> {
    let dispatch_no = match st.inflight.get(&seq) {
        Some(i) if i.consumer == consumer => i.dispatch_no,
        _ => return Err(NotInFlight),
    };
    let c = st
        .consumers
        .iter_mut()
        .find(|c| c.spec.id == consumer)
        .ok_or(NotInFlight)?;
    let seqs: Vec<u64> = if cumulative {
        let rest = c.unacked.split_off(&(dispatch_no + 1));
        std::mem::replace(&mut c.unacked, rest)
            .into_values()
            .collect()
    } else {
        c.unacked.remove(&dispatch_no);
        vec![seq]
    };
    c.credit += seqs.len() as u32;
    Ok(seqs
        .into_iter()
        .filter_map(|s| st.inflight.remove(&s).map(|i| (s, i.entry)))
        .collect())
}
