//! Producing: [`Broker::publish`] for one message, [`Broker::commit`] for a [`Transaction`] of
//! messages and settles that apply together or not at all.
//!
//! Both run in two phases. `prepare` does everything that can fail — the storage alarm, capacity
//! (reserved, so the messages of one transaction and concurrent producers are counted together),
//! checking that every settle names a delivery still held — and changes nothing a failure would
//! have to undo. `execute` then cannot fail: it stages, settles (a delivery whose visibility
//! timed out meanwhile is back in its queue, and its settle is dropped, as a late ACK is), submits
//! one commit and publishes. A failed COMMIT therefore leaves every message where it was.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use stampede_store::{MessageRecord, Ticket};

use crate::effects::Effects;
use crate::ids::{message_id, DeliveryTag};
use crate::queue::{ConsumerId, Full, Queue, Reservation};
use crate::settle::Outcome;
use crate::subscribe::Subscription;
use crate::temp::is_temp;
use crate::topic::Topic;
use crate::wildcard::is_pattern;
use crate::{Broker, BrokerError, Destination};

/// The record header naming the topic a message was published to, kept when a wildcard pattern
/// matched it; deliveries to pattern subscriptions carry it as their `destination`.
pub(crate) const PUBLISHED_TO: &str = "destination";

/// A message a producer hands to the broker, its protocol's conventions already parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewMessage {
    /// Forwarded to consumers as they are.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Milliseconds since the Unix epoch after which the message is dropped.
    pub expires_at_ms: Option<u64>,
    /// False: may skip the store while its queue's backlog fits in memory (lost on restart).
    pub persistent: bool,
    /// The OCI channel it is sent to, within a queue (see [`crate::channel`]).
    pub channel: Option<String>,
}

impl NewMessage {
    /// A persistent message with no headers.
    pub fn new(body: impl Into<Bytes>) -> NewMessage {
        NewMessage {
            body: body.into(),
            persistent: true,
            ..NewMessage::default()
        }
    }

    fn into_record(self, now_ms: u64) -> Arc<MessageRecord> {
        Arc::new(MessageRecord {
            headers: self.headers,
            body: self.body,
            enqueued_at_ms: now_ms,
            // 0 would read back as "no expiry" from a store; it means the epoch, long past.
            expires_at_ms: self.expires_at_ms.map(|at| at.max(1)),
        })
    }
}

/// Sends and settles held until they are committed together; see the module docs.
#[derive(Debug, Default)]
pub struct Transaction {
    ops: Vec<TxOp>,
}

#[derive(Debug)]
enum TxOp {
    Publish(Destination, NewMessage),
    Settle(SettleOp),
}

/// A settle of a delivery a subscription holds.
#[derive(Debug)]
pub(crate) struct SettleOp {
    pub queue: Arc<Queue>,
    pub consumer: ConsumerId,
    pub seq: u64,
    /// The delivery it names, when the settle names one (a delivery tag, not a message id).
    pub count: Option<u32>,
    pub cumulative: bool,
    pub outcome: Outcome,
}

impl SettleOp {
    /// Settles what it names; `Err` when that is no longer in flight (its visibility timed out
    /// meanwhile: the settle is late and does nothing).
    pub fn apply(&self, fx: &mut Effects) -> Result<(), crate::queue::NotInFlight> {
        self.queue.settle(
            self.consumer,
            self.seq,
            self.count,
            self.cumulative,
            self.outcome,
            fx,
        )
    }
}

impl Transaction {
    pub fn new() -> Transaction {
        Transaction::default()
    }

    /// Adds a message for `to`, invisible until the commit.
    pub fn publish(&mut self, to: Destination, message: NewMessage) {
        self.ops.push(TxOp::Publish(to, message));
    }

    /// Adds a settle of the delivery `tag` names, which `sub` must hold now. A delivery `sub` held
    /// until its visibility timeout took it back is no error: its settle is simply not added.
    pub fn settle(
        &mut self,
        sub: &Subscription,
        tag: &DeliveryTag,
        outcome: Outcome,
    ) -> Result<(), BrokerError> {
        if let Some(op) = sub.resolve(tag, outcome)? {
            self.ops.push(TxOp::Settle(op));
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A transaction op that passed every check.
pub(crate) enum ReadyOp {
    Queue {
        queue: Arc<Queue>,
        record: Arc<MessageRecord>,
        persistent: bool,
        reservation: Reservation,
    },
    Topic {
        topic: Option<Arc<Topic>>,
        /// The wildcard patterns matching it.
        patterns: Vec<Arc<Topic>>,
        bound: Vec<(Arc<Queue>, Reservation)>,
        record: Arc<MessageRecord>,
        persistent: bool,
    },
    Settle(SettleOp),
    /// For a temporary queue: in memory, bounded like a topic subscriber's.
    Temp {
        queue: Arc<Queue>,
        record: Arc<MessageRecord>,
    },
    /// For a temporary queue that is gone.
    Dropped,
}

impl Broker {
    /// Publishes one message to `to`. Producer flow control comes first: the call waits while the
    /// destination queue's consumers are behind or the store's write backlog is full (the caller
    /// reads nothing meanwhile, so the producer is pushed back on). The ticket resolves once the
    /// message is durable.
    pub async fn publish(
        &self,
        to: &Destination,
        message: NewMessage,
    ) -> Result<Ticket, BrokerError> {
        if let Some(name) = to.durable_queue() {
            let queue = self.queue(name);
            // Boxed, and only when a wait is likely: a connection's task holds the future of
            // whatever it may await, idle or not, and the wait's timer is most of this one.
            if queue.crowded() && Box::pin(queue.pace(self.config.consumer_stall)).await {
                self.stats.count_wait_for_consumers();
            }
        }
        self.wait_for_store().await;
        self.publish_checked(to, message)
    }

    /// Checks, then publishes one message (no transaction around it).
    fn publish_checked(
        &self,
        to: &Destination,
        message: NewMessage,
    ) -> Result<Ticket, BrokerError> {
        let ready = self.prepare_publish(to, message, self.now_ms())?;
        let mut fx = Effects::new();
        self.execute_op(ready, &mut fx);
        Ok(self.apply(fx))
    }

    /// [`Broker::publish`] without waiting: publishes when producer flow control would not hold
    /// the message back, and hands it back (`Ok(Err(message))`) when it would — then call
    /// `publish`. A front end that serves many connections uses this first, so that the
    /// waiting future exists only while a producer actually waits.
    pub fn publish_now(
        &self,
        to: &Destination,
        message: NewMessage,
    ) -> Result<Result<Ticket, NewMessage>, BrokerError> {
        let crowded = to
            .durable_queue()
            .is_some_and(|name| self.queue(name).crowded());
        if crowded || self.store.backlog().bytes() >= self.config.max_pending_writes {
            return Ok(Err(message));
        }
        self.publish_checked(to, message).map(Ok)
    }

    /// Puts a batch of messages into queue `name`, all of them or — when a check fails — none
    /// (OCI's PutMessages). Returns each message's sequence number (its OCI id) and record, in
    /// order, and the ticket that resolves once all are durable.
    pub async fn put_messages(
        &self,
        name: &str,
        messages: Vec<NewMessage>,
    ) -> Result<(Vec<(u64, Arc<MessageRecord>)>, Ticket), BrokerError> {
        Destination::check_name(name)?;
        let to = Destination::Queue(name.to_owned());
        if is_temp(name) {
            return Err(BrokerError::InvalidName {
                name: name.to_owned(),
                reason: "a temporary queue takes no batch puts",
            });
        }
        let queue = self.queue(name);
        if queue.crowded() && Box::pin(queue.pace(self.config.consumer_stall)).await {
            self.stats.count_wait_for_consumers();
        }
        self.wait_for_store().await;
        let now = self.now_ms();
        let ready = messages
            .into_iter()
            .map(|m| self.prepare_publish(&to, m, now))
            .collect::<Result<Vec<_>, _>>()?;
        let mut fx = Effects::new();
        for op in ready {
            self.execute_op(op, &mut fx);
        }
        let put = fx
            .publish
            .iter()
            .map(|s| (s.seq, s.record.clone()))
            .collect();
        Ok((put, self.apply(fx)))
    }

    /// Commits `tx`: all of it, or — when a check fails — none of it, with nothing changed.
    pub async fn commit(&self, tx: Transaction) -> Result<Ticket, BrokerError> {
        if tx.ops.iter().any(|op| matches!(op, TxOp::Publish(..))) {
            self.wait_for_store().await;
        }
        let ready = self.prepare(tx)?;
        Ok(self.execute(ready))
    }

    /// Waits while the store holds more than `max_pending_writes` of message data not yet durable.
    async fn wait_for_store(&self) {
        let (backlog, limit) = (self.store.backlog(), self.config.max_pending_writes);
        // Boxed for the same reason as the pacing wait.
        if backlog.bytes() >= limit && Box::pin(backlog.room(limit)).await {
            self.stats.count_wait_for_store();
        }
    }

    pub(crate) fn prepare(&self, tx: Transaction) -> Result<Vec<ReadyOp>, BrokerError> {
        let now = self.now_ms();
        let mut claimed: HashSet<(u64, u64)> = HashSet::new();
        let mut ready = Vec::with_capacity(tx.ops.len());
        for op in tx.ops {
            ready.push(match op {
                TxOp::Publish(to, message) => self.prepare_publish(&to, message, now)?,
                TxOp::Settle(op) => {
                    let unknown =
                        || BrokerError::UnknownMessage(message_id(op.queue.number(), op.seq));
                    let covered =
                        match op
                            .queue
                            .settle_preview(op.consumer, op.seq, op.count, op.cumulative)
                        {
                            Ok(seqs) => seqs,
                            // Taken back by its visibility timeout since it was added: a late settle.
                            Err(_) if op.queue.timed_out_from(op.consumer, op.seq) => continue,
                            Err(_) => return Err(unknown()),
                        };
                    // A repeat, or a message an earlier cumulative settle already covers.
                    if claimed.contains(&(op.queue.number(), op.seq)) {
                        return Err(unknown());
                    }
                    claimed.extend(covered.into_iter().map(|s| (op.queue.number(), s)));
                    ReadyOp::Settle(op)
                }
            });
        }
        Ok(ready)
    }

    /// Every check a message for `to` must pass, with its room reserved.
    fn prepare_publish(
        &self,
        to: &Destination,
        message: NewMessage,
        now: u64,
    ) -> Result<ReadyOp, BrokerError> {
        let persistent = message.persistent;
        Ok(match to {
            Destination::Queue(name) if is_temp(name) => match self.temp(name) {
                Some(queue) => ReadyOp::Temp {
                    queue,
                    record: message.into_record(now),
                },
                None => ReadyOp::Dropped,
            },
            Destination::Queue(name) => {
                self.check_storage()?;
                let queue = self.queue(name);
                let mut message = message;
                if let Some(channel) = message.channel.take() {
                    message
                        .headers
                        .push(crate::channel::sent_to(name, &channel));
                }
                let record = message.into_record(now);
                let reservation = reserve(&queue, &record)?;
                ReadyOp::Queue {
                    queue,
                    record,
                    persistent,
                    reservation,
                }
            }
            Destination::Topic(name) => {
                if is_pattern(name) {
                    return Err(BrokerError::InvalidName {
                        name: name.clone(),
                        reason: "a wildcard names many topics; a message is sent to one",
                    });
                }
                let (topic, patterns) = self.topics_for(name);
                let matched_pattern = !patterns.is_empty();
                let mut bound_queues = topic.as_ref().map(|t| t.bound()).unwrap_or_default();
                // A queue bound to the topic and to a pattern matching it takes one copy.
                for pattern in &patterns {
                    for q in pattern.bound() {
                        if !bound_queues.iter().any(|b| Arc::ptr_eq(b, &q)) {
                            bound_queues.push(q);
                        }
                    }
                }
                if !bound_queues.is_empty() {
                    self.check_storage()?;
                }
                let mut message = message;
                if matched_pattern {
                    // A pattern's subscribers are told which topic each message was sent to.
                    message
                        .headers
                        .push((PUBLISHED_TO.to_owned(), format!("/topic/{name}")));
                }
                let record = message.into_record(now);
                let mut bound = Vec::with_capacity(bound_queues.len());
                for queue in bound_queues {
                    let r = reserve(&queue, &record)?;
                    bound.push((queue, r));
                }
                ReadyOp::Topic {
                    topic,
                    patterns,
                    bound,
                    record,
                    persistent,
                }
            }
        })
    }

    pub(crate) fn execute(&self, ready: Vec<ReadyOp>) -> Ticket {
        let mut fx = Effects::new();
        for op in ready {
            self.execute_op(op, &mut fx);
        }
        self.apply(fx)
    }

    /// Carries out one checked op; nothing here can fail.
    fn execute_op(&self, op: ReadyOp, fx: &mut Effects) {
        match op {
            ReadyOp::Queue {
                queue,
                record,
                persistent,
                reservation,
            } => self.stage(&queue, record, persistent, Some(reservation), fx),
            ReadyOp::Topic {
                topic,
                patterns,
                bound,
                record,
                persistent,
            } => {
                for (queue, reservation) in bound {
                    self.stage(&queue, record.clone(), persistent, Some(reservation), fx);
                }
                // Subscribers' copies are in memory only and need no commit to wait for: they
                // are delivered now.
                for topic in topic.iter().chain(&patterns) {
                    topic.each_subscriber(|queue| queue.publish_transient(record.clone(), fx));
                }
            }
            ReadyOp::Temp { queue, record } => queue.publish_transient(record, fx),
            ReadyOp::Dropped => self.stats.count_temp_dropped(),
            ReadyOp::Settle(op) => {
                // Not in flight any more: its visibility timed out since `prepare` (it is
                // waiting again), so this settle is late and does nothing.
                let _ = op.apply(fx);
            }
        }
    }

    /// Stages into `queue`, or into the queue made anew under its name when it was removed since
    /// it was looked up.
    fn stage(
        &self,
        queue: &Arc<Queue>,
        record: Arc<MessageRecord>,
        persistent: bool,
        reservation: Option<Reservation>,
        fx: &mut Effects,
    ) {
        if queue
            .stage(record.clone(), persistent, reservation, fx)
            .is_err()
        {
            let again = self.queue(queue.name());
            let _ = again.stage(record, persistent, None, fx);
        }
    }
}

fn reserve(queue: &Arc<Queue>, record: &MessageRecord) -> Result<Reservation, BrokerError> {
    queue
        .reserve(record.size() as u64)
        .map_err(|Full { limit, value }| BrokerError::QueueFull {
            queue: queue.name().to_owned(),
            limit,
            value,
        })
}
