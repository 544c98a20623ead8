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
mod effects;
mod error;
mod policy;
mod queue;
mod session;
mod topic;

pub use clock::{Clock, ManualClock, SystemClock};
pub use delivery::{AutoSettle, Delivery, Outbox, Outgoing};
pub use destination::Destination;
pub use effects::{DeadLetter, DeathReason, DurableGate, Effects};
pub use error::BrokerError;
pub use policy::{glob_match, QueuePolicy, QueueSettings, SettingsOverride};
pub use queue::{
    message_id, ConsumerId, ConsumerSpec, Pulled, Queue, QueueKind, QueueSnapshot, QueueStats,
    Window,
};
pub use session::Session;
pub use topic::Topic;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use dashmap::DashMap;
use stampede_store::{MessageRecord, Op, Store, Ticket};
use tracing::info;

/// Broker-wide settings.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Unsettled messages per subscription when the client names no prefetch.
    pub default_prefetch: u32,
    /// Waiting messages kept per non-durable topic subscriber before the oldest are dropped.
    pub topic_subscriber_buffer: usize,
    /// Waiting messages a durable queue keeps in memory; the rest are read from the store.
    pub window: Window,
    /// Message bytes accepted but not yet durable above which producers wait.
    pub max_pending_writes: u64,
    /// How long a producer waits for a crowded queue's consumers to take anything before they
    /// count as stalled (see [`Queue::pace`]).
    pub consumer_stall: std::time::Duration,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            default_prefetch: 1000,
            topic_subscriber_buffer: 100_000,
            window: Window::default(),
            max_pending_writes: 32 * 1024 * 1024,
            consumer_stall: std::time::Duration::from_millis(200),
        }
    }
}

/// What [`Broker::flow_control`] waited for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowWait {
    /// A crowded queue's consumers.
    pub consumers: bool,
    /// The store's write backlog.
    pub store: bool,
}

/// The registry of destinations. Lookups go through sharded maps; each queue then has its own lock,
/// so no operation serialises the whole broker.
pub struct Broker {
    /// Handed to store reads, whose completion re-enters the broker from the store's thread.
    me: Weak<Broker>,
    config: BrokerConfig,
    policy: QueuePolicy,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    queues: DashMap<String, Arc<Queue>>,
    topics: DashMap<String, Arc<Topic>>,
    next_queue_id: AtomicU64,
    next_consumer_id: AtomicU64,
    next_session_id: AtomicU64,
    /// Set while the data directory is short of free space: durable SENDs are refused then,
    /// before the store runs into ENOSPC (which sled does not survive).
    storage_alarm: parking_lot::Mutex<Option<String>>,
    storage_alarm_on: std::sync::atomic::AtomicBool,
}

/// What recovery found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovery {
    pub queues: usize,
    pub messages: usize,
}

impl Broker {
    pub fn new(
        config: BrokerConfig,
        policy: QueuePolicy,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Arc<Broker> {
        Arc::new_cyclic(|me| Broker {
            me: me.clone(),
            config,
            policy,
            store,
            clock,
            queues: DashMap::new(),
            topics: DashMap::new(),
            next_queue_id: AtomicU64::new(1),
            next_consumer_id: AtomicU64::new(1),
            next_session_id: AtomicU64::new(1),
            storage_alarm: parking_lot::Mutex::new(None),
            storage_alarm_on: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// Rebuilds queues from the store: messages become visible again (in-flight ones too) with
    /// their delivery counts. Call before accepting connections.
    pub fn recover(&self) -> Result<Recovery, BrokerError> {
        let mut found = Recovery::default();
        let mut fx = Effects::new();
        for stored in self.store.recover(self.config.window.messages)? {
            let queue = self.queue(&stored.name);
            found.queues += 1;
            found.messages += stored.messages as usize;
            queue.recover(stored, &mut fx);
        }
        drop(self.apply(fx));
        Ok(found)
    }

    /// The durable queue `name`, created on first use with the settings its name selects.
    pub fn queue(&self, name: &str) -> Arc<Queue> {
        if let Some(q) = self.queues.get(name) {
            return q.clone();
        }
        self.queues
            .entry(name.to_owned())
            .or_insert_with(|| {
                let (settings, pattern) = self.policy.settings_for(name);
                info!(
                    queue = name,
                    pattern,
                    visibility_timeout_ms =
                        settings.visibility_timeout.map(|d| d.as_millis() as u64),
                    max_deliveries = settings.max_deliveries,
                    dead_letter_queue = settings.dead_letter_queue_of(name),
                    retention_s = settings.retention.as_secs(),
                    max_messages = settings.max_messages,
                    max_bytes = settings.max_bytes,
                    "queue created"
                );
                Queue::new(
                    name,
                    self.queue_id(),
                    QueueKind::Durable,
                    settings,
                    self.config.window,
                    self.clock.clone(),
                )
            })
            .clone()
    }

    /// A queue private to one topic subscription.
    pub(crate) fn transient_queue(&self, name: &str) -> Arc<Queue> {
        let kind = QueueKind::Transient {
            max_ready: self.config.topic_subscriber_buffer,
        };
        let settings = QueueSettings {
            visibility_timeout: None,
            max_deliveries: None,
            ..QueueSettings::default()
        };
        Queue::new(
            name,
            self.queue_id(),
            kind,
            settings,
            Window::default(),
            self.clock.clone(),
        )
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

    /// Every durable queue, for metrics and the admin API.
    pub fn queues(&self) -> Vec<Arc<Queue>> {
        self.queues.iter().map(|e| e.value().clone()).collect()
    }

    /// Message bytes accepted and not yet durable.
    pub fn pending_writes(&self) -> u64 {
        self.store.backlog().bytes()
    }

    /// Why the store refuses writes, if it has failed.
    pub fn store_failure(&self) -> Option<String> {
        self.store.failure()
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

    /// Carries out `fx`: dead letters are staged into their queues, every store op is submitted as
    /// one commit, and only then do staged messages become visible. Publishing can have effects of
    /// its own (delivery counts, expired messages), applied the same way; dead-letter queues do not
    /// dead-letter, so this ends. The ticket covers the first commit: the one a receipt waits for.
    pub fn apply(&self, mut fx: Effects) -> Ticket {
        let mut first: Option<Ticket> = None;
        loop {
            for dead in std::mem::take(&mut fx.dead) {
                let dlq = self.queue(&dead.dead_letter_queue);
                let mut headers = dead.record.headers.clone();
                headers.retain(|(k, _)| k != "x-original-destination" && k != "x-death-reason");
                headers.push((
                    "x-original-destination".into(),
                    format!("/queue/{}", dead.source),
                ));
                headers.push(("x-death-reason".into(), dead.reason.as_str().into()));
                // The DLQ keeps the message until someone deals with it: its own expiry (the
                // reason it may be here) must not end it there too.
                let record = Arc::new(MessageRecord {
                    headers,
                    expires_at_ms: None,
                    ..(*dead.record).clone()
                });
                if let Some(source) = self.find_queue(&dead.source) {
                    source.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                }
                let seq = dlq.next_seq();
                dlq.stage(seq, record, true, &mut fx);
            }
            let ticket = self.commit(std::mem::take(&mut fx.ops));
            if first.is_none() {
                first = Some(ticket);
            }
            if let Some(gate) = fx.gate.take() {
                // The store resolves commits in order: this empty one completes with the above.
                gate.arm(self.store.flush());
            }
            for page in std::mem::take(&mut fx.page_in) {
                self.page_in(page);
            }
            let publish = std::mem::take(&mut fx.publish);
            if publish.is_empty() {
                break;
            }
            for m in publish {
                m.queue.publish(m.seq, m.record, m.stored, &mut fx);
            }
            if fx.is_empty() {
                break;
            }
        }
        first.unwrap_or_else(|| Ticket::ready(Ok(())))
    }

    /// Raises (`Some(reason)`) or clears (`None`) the low-disk alarm.
    pub fn set_storage_alarm(&self, reason: Option<String>) {
        let on = reason.is_some();
        let was = self.storage_alarm_on.swap(on, Ordering::Relaxed);
        match (&reason, was) {
            (Some(r), false) => tracing::warn!(reason = %r, "storage alarm: refusing messages"),
            (None, true) => info!("storage alarm cleared: accepting messages again"),
            _ => {}
        }
        *self.storage_alarm.lock() = reason;
    }

    fn check_storage(&self) -> Result<(), BrokerError> {
        if !self.storage_alarm_on.load(Ordering::Relaxed) {
            return Ok(());
        }
        match self.storage_alarm.lock().clone() {
            Some(reason) => Err(BrokerError::StorageFull(reason)),
            None => Ok(()),
        }
    }

    /// Reads a queue's next waiting messages from the store; the read is queued behind every
    /// commit submitted so far, so it sees each message the queue counted as paged.
    fn page_in(&self, page: effects::PageIn) {
        let me = self.me.clone();
        let queue = page.queue.clone();
        let done = Box::new(move |read| {
            let Some(broker) = me.upgrade() else {
                return;
            };
            let mut fx = Effects::new();
            queue.paged_in(read, &mut fx);
            drop(broker.apply(fx));
        });
        let name: Arc<str> = Arc::from(page.queue.name());
        self.store.read(name, page.after, page.max, done);
    }

    /// Stages `record` for `destination` in `fx`: a put and a publish for a queue (refused when
    /// the queue is full), a copy to every current subscriber for a topic.
    pub(crate) fn route(
        &self,
        destination: &Destination,
        record: Arc<MessageRecord>,
        fx: &mut Effects,
    ) -> Result<(), BrokerError> {
        match destination {
            Destination::Queue(name) => {
                self.check_storage()?;
                let queue = self.queue(name);
                queue
                    .check_capacity(record.size())
                    .map_err(|full| BrokerError::QueueFull {
                        queue: name.clone(),
                        limit: full.limit,
                        value: full.value,
                    })?;
                let seq = queue.next_seq();
                let persistent = !record
                    .header("persistent")
                    .is_some_and(|v| v.eq_ignore_ascii_case("false"));
                queue.stage(seq, record, persistent, fx);
            }
            Destination::Topic(name) => {
                if let Some(topic) = self.topics.get(name).map(|t| t.clone()) {
                    topic.publish(&record, fx);
                }
            }
        }
        Ok(())
    }

    /// Producer flow control, before a SEND to `destination` is taken in: waits while that
    /// queue's consumers are behind (see [`Queue::pace`]), then while the store holds more than
    /// `max_pending_writes` not yet durable. The connection reads nothing meanwhile, so TCP
    /// pushes back on the producer.
    pub async fn flow_control(&self, destination: &str) -> FlowWait {
        let mut waited = FlowWait::default();
        if let Ok(Destination::Queue(name)) = Destination::parse(destination) {
            if let Some(queue) = self.find_queue(&name) {
                waited.consumers = queue.pace(self.config.consumer_stall).await;
            }
        }
        waited.store = self
            .store
            .backlog()
            .room(self.config.max_pending_writes)
            .await;
        waited
    }

    /// Applies timeouts, expiry and retention on every queue. The server calls this on a timer.
    pub fn tick(&self) {
        let queues: Vec<Arc<Queue>> = self.queues.iter().map(|e| e.value().clone()).collect();
        for queue in queues {
            let mut fx = Effects::new();
            queue.tick(&mut fx);
            if !fx.is_empty() {
                drop(self.apply(fx));
            }
        }
    }

    /// Resolves once everything committed so far is durable; part of graceful shutdown.
    pub fn flush(&self) -> Ticket {
        self.store.flush()
    }
}
