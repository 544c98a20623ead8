//! Read-only views of the broker for metrics, the admin API and the console: plain values copied
//! out under each queue's lock, so a reader never holds a lock while it formats.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::delivery::AckMode;
use crate::policy::QueueSettings;

/// One queue as it is now.
#[derive(Debug, Clone)]
pub struct QueueView {
    pub name: Arc<str>,
    /// The prefix of its message ids; stable across restarts.
    pub number: u64,
    /// Waiting messages, in memory or in the store.
    pub visible: u64,
    pub in_flight: u64,
    /// Given back and waiting out a redelivery delay: not visible yet.
    pub delayed: u64,
    pub bytes: u64,
    pub settings: QueueSettings,
    /// Where its dead letters go (`None`: it is itself a dead-letter queue, or a transient one).
    pub dead_letter_queue: Option<Arc<str>>,
    /// When it was made, in ms since the epoch (0: before the broker kept it).
    pub created_at_ms: u64,
    /// How it lives: durable, auto-delete, exclusive (RabbitMQ's queue flags).
    pub lifecycle: crate::Lifecycle,
    pub consumers: Vec<ConsumerView>,
    /// Pull consumers waiting in a long poll (OCI GetMessages).
    pub long_polls: u64,
    pub counters: QueueCounters,
    /// When the oldest message waiting in memory was enqueued (ms since the epoch).
    pub oldest_enqueued_at_ms: Option<u64>,
}

/// A topic with its current subscribers and the durable queues bound to it.
#[derive(Debug, Clone)]
pub struct TopicView {
    pub name: Arc<str>,
    pub subscribers: usize,
    pub bound: Vec<BoundQueue>,
}

/// A durable queue bound to a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundQueue {
    pub queue: Arc<str>,
    /// A virtual topic's consumer queue (`Consumer.X.VirtualTopic.T`): bound by its name alone,
    /// for as long as it exists; nothing stored can undo it.
    pub by_name: bool,
}

/// One OCI channel's share of a queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelView {
    pub visible: u64,
    pub in_flight: u64,
    pub bytes: u64,
}

/// A consumer attached to a queue.
#[derive(Debug, Clone)]
pub struct ConsumerView {
    /// The subscribing session (STOMP: the CONNECTED `session` number).
    pub session: u64,
    pub subscription: Arc<str>,
    pub principal: Arc<str>,
    pub ack: AckMode,
    pub prefetch: u32,
    pub unacked: u64,
}

/// A queue's counters since the broker started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounters {
    pub enqueued: u64,
    pub delivered: u64,
    /// Deliveries of a message that had been delivered before.
    pub redelivered: u64,
    pub acked: u64,
    pub nacked: u64,
    /// Deliveries whose visibility timeout passed.
    pub timed_out: u64,
    pub dead_lettered: u64,
    /// Removed by retention or `expires`.
    pub expired: u64,
    /// Dropped from a transient queue over its bound.
    pub dropped: u64,
    /// Removed by a purge.
    pub purged: u64,
}

/// Broker-wide counters.
#[derive(Debug, Default)]
pub struct BrokerStats {
    waits_consumers: AtomicU64,
    waits_store: AtomicU64,
    temp_dropped: AtomicU64,
}

impl BrokerStats {
    pub(crate) fn count_temp_dropped(&self) {
        self.temp_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Messages sent to a temporary queue that no longer exists, dropped.
    pub fn dropped_for_gone_temp_queues(&self) -> u64 {
        self.temp_dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn count_wait_for_consumers(&self) {
        self.waits_consumers.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_wait_for_store(&self) {
        self.waits_store.fetch_add(1, Ordering::Relaxed);
    }

    /// Publishes held back by producer flow control because a crowded queue's consumers were
    /// behind.
    pub fn waits_for_consumers(&self) -> u64 {
        self.waits_consumers.load(Ordering::Relaxed)
    }

    /// Publishes held back because the store's write backlog was full.
    pub fn waits_for_store(&self) -> u64 {
        self.waits_store.load(Ordering::Relaxed)
    }
}

/// A waiting message, for peeking.
#[derive(Debug, Clone)]
pub struct MessageView {
    pub seq: u64,
    pub message_id: String,
    pub record: Arc<stampede_store::MessageRecord>,
    pub deliveries: u32,
}
