//! Stampede's routing core: it owns every destination, queue, topic and subscription, and turns
//! typed client commands into queue operations and deliveries. It has no sockets: a connection
//! drives a [`Session`], and receives what the broker sends it through its [`Outbox`].
//!
//! Flow: server connection → [`Session`] (per connection: subscriptions, transactions) →
//! [`Broker`] (registry of queues and topics, store) → [`Queue`] (state machine, dispatch) →
//! the subscriber connection's outbox.

mod clock;
mod cmd;
mod delivery;
mod destination;
mod error;
mod queue;
mod session;
mod topic;

pub use clock::{Clock, ManualClock, SystemClock};
pub use delivery::{AutoSettle, Delivery, Outbox, Outgoing};
pub use destination::Destination;
pub use error::BrokerError;
pub use queue::{message_id, ConsumerId, ConsumerSpec, Queue, QueueKind};
pub use session::Session;
pub use topic::Topic;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use stampede_store::{MessageRecord, Op, Store, Ticket};

/// Broker-wide settings.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Unsettled messages per subscription when the client names no prefetch.
    pub default_prefetch: u32,
    /// Waiting messages kept per non-durable topic subscriber before the oldest are dropped.
    pub topic_subscriber_buffer: usize,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            default_prefetch: 1000,
            topic_subscriber_buffer: 100_000,
        }
    }
}

/// The registry of destinations. Lookups go through sharded maps; each queue then has its own lock,
/// so no operation serialises the whole broker.
pub struct Broker {
    config: BrokerConfig,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    queues: DashMap<String, Arc<Queue>>,
    topics: DashMap<String, Arc<Topic>>,
    next_queue_id: AtomicU64,
    next_consumer_id: AtomicU64,
    next_session_id: AtomicU64,
}

/// What recovery found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovery {
    pub queues: usize,
    pub messages: usize,
}

impl Broker {
    pub fn new(config: BrokerConfig, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Arc<Broker> {
        Arc::new(Broker {
            config,
            store,
            clock,
            queues: DashMap::new(),
            topics: DashMap::new(),
            next_queue_id: AtomicU64::new(1),
            next_consumer_id: AtomicU64::new(1),
            next_session_id: AtomicU64::new(1),
        })
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// Rebuilds queues from the store. Call before accepting connections.
    pub fn recover(&self) -> Result<Recovery, BrokerError> {
        let mut found = Recovery::default();
        for (name, messages) in self.store.recover()? {
            let queue = self.queue(&name);
            found.queues += 1;
            found.messages += messages.len();
            for m in messages {
                queue.restore(m.seq, m.record, m.deliveries);
            }
        }
        Ok(found)
    }

    /// The durable queue `name`, created on first use.
    pub fn queue(&self, name: &str) -> Arc<Queue> {
        if let Some(q) = self.queues.get(name) {
            return q.clone();
        }
        self.queues
            .entry(name.to_owned())
            .or_insert_with(|| Queue::new(name, self.queue_id(), QueueKind::Durable))
            .clone()
    }

    /// An existing queue, without creating it.
    pub fn find_queue(&self, name: &str) -> Option<Arc<Queue>> {
        self.queues.get(name).map(|q| q.clone())
    }

    /// The topic `name`, created on first use.
    pub fn topic(&self, name: &str) -> Arc<Topic> {
        if let Some(t) = self.topics.get(name) {
            return t.clone();
        }
        self.topics
            .entry(name.to_owned())
            .or_insert_with(|| Topic::new(name))
            .clone()
    }

    /// A fresh session for a new connection; deliveries go to `outbox`.
    pub fn session(self: &Arc<Self>, outbox: Outbox) -> Session {
        let id = self.next_session_id.fetch_add(1, Ordering::Relaxed);
        Session::new(self.clone(), id, outbox)
    }

    pub fn queue_names(&self) -> Vec<String> {
        self.queues.iter().map(|e| e.key().clone()).collect()
    }

    pub(crate) fn queue_id(&self) -> u64 {
        self.next_queue_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn consumer_id(&self) -> ConsumerId {
        ConsumerId(self.next_consumer_id.fetch_add(1, Ordering::Relaxed))
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub(crate) fn commit(&self, ops: Vec<Op>) -> Ticket {
        if ops.is_empty() {
            return Ticket::ready(Ok(()));
        }
        self.store.commit(ops)
    }

    /// Delivers `record` to `destination`: stored then published for a queue, copied to the current
    /// subscribers for a topic. The ticket resolves when the message is durable.
    pub(crate) fn route(&self, destination: &Destination, record: Arc<MessageRecord>) -> Ticket {
        match destination {
            Destination::Queue(name) => {
                let queue = self.queue(name);
                let seq = queue.next_seq();
                let ticket = self.commit(queue.put_op(seq, &record).into_iter().collect());
                queue.publish(seq, record);
                ticket
            }
            Destination::Topic(name) => {
                if let Some(topic) = self.topics.get(name).map(|t| t.clone()) {
                    topic.publish(&record);
                }
                Ticket::ready(Ok(()))
            }
        }
    }

    /// Resolves once everything committed so far is durable; part of graceful shutdown.
    pub fn flush(&self) -> Ticket {
        self.store.flush()
    }
}
