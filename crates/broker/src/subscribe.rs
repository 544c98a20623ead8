//! Consuming: [`Broker::subscribe`] attaches a consumer to a queue (competing consumers) or, for a
//! topic, to the queue that keeps the subscriber's copies — a transient queue of its own, a named
//! durable queue bound to the topic (RabbitMQ's `x-queue-name`) or a durable subscription's queue
//! — and returns the [`Subscription`] through which its deliveries are settled. Dropping the
//! subscription detaches it: its unsettled messages go back to their queue, and an auto-delete
//! queue left without consumers goes. Connections report written auto-ack deliveries with
//! [`Broker::written`].

use std::sync::Arc;

use stampede_store::Ticket;

use crate::delivery::{AckMode, AutoAck, Outbox};
use crate::effects::Effects;
use crate::ids::{message_id, DeliveryTag};
use crate::publish::SettleOp;
use crate::queue::{ConsumerId, ConsumerSpec, Queue, Refused};
use crate::settle::Outcome;
use crate::topic::Topic;
use crate::{Broker, BrokerError, Destination};

/// Who is acting: the authenticated user of a connection or request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal(Arc<str>);

impl Principal {
    pub fn new(name: &str) -> Principal {
        Principal(Arc::from(name))
    }

    /// A connection that did not log in. Shared: most connections are anonymous in open mode,
    /// and each would otherwise hold a copy of the name.
    pub fn anonymous() -> Principal {
        static ANONYMOUS: std::sync::OnceLock<Principal> = std::sync::OnceLock::new();
        ANONYMOUS
            .get_or_init(|| Principal::new("anonymous"))
            .clone()
    }

    pub fn name(&self) -> &str {
        &self.0
    }
}

/// Where a topic subscription's copies wait for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TopicQueue {
    /// A queue of the subscriber's own, in memory, gone with the subscription.
    #[default]
    Own,
    /// Durable queue `queue`, bound to the topic (created with the spec's [`Lifecycle`]).
    Named(String),
    /// Durable subscription `name` of client `client` (see [`Broker::durable_subscription`]);
    /// `sole`: at most one live subscriber (ActiveMQ's rule), otherwise competing consumers.
    Durable {
        client: String,
        name: String,
        sole: bool,
    },
}

/// How a queue a subscription creates lives (RabbitMQ's queue flags). An existing queue keeps
/// its own: the first declaration wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifecycle {
    /// Survives a restart of the broker.
    pub durable: bool,
    /// Removed, with its messages, when its last consumer leaves.
    pub auto_delete: bool,
    /// Only the subscribing session may consume it; removed when that session's consumer leaves
    /// (and at a restart).
    pub exclusive: bool,
}

impl Lifecycle {
    /// An ordinary queue: kept until deleted.
    pub const DURABLE: Lifecycle = Lifecycle {
        durable: true,
        auto_delete: false,
        exclusive: false,
    };
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle::DURABLE
    }
}

/// What to subscribe to, and how.
#[derive(Debug, Clone)]
pub struct SubscribeSpec {
    pub destination: Destination,
    /// The destination as the subscriber wrote it, for the deliveries' `destination`.
    pub destination_name: Arc<str>,
    /// The subscription's name within its connection (STOMP: the SUBSCRIBE `id`).
    pub name: Arc<str>,
    pub ack: AckMode,
    /// Most unsettled deliveries at once; `None` takes the broker's default.
    pub prefetch: Option<u32>,
    /// Most unsettled message bytes at once (beside `prefetch`; whichever is reached first
    /// stops delivery); `Some(0)` one message at a time; `None` unbounded. A message larger
    /// than the window is still delivered when nothing else is unsettled.
    pub window_bytes: Option<u64>,
    /// Where the queue's dead letters go from now on (RabbitMQ's `x-dead-letter-routing-key`).
    pub dead_letter_queue: Option<String>,
    /// For a topic: which queue keeps the subscriber's copies.
    pub topic_queue: TopicQueue,
    /// How a queue this subscription creates lives.
    pub lifecycle: Lifecycle,
    /// The subscribing session (connection), which an exclusive queue belongs to.
    pub session: u64,
    /// Of a queue, only this OCI channel's messages (see [`crate::channel`]).
    pub channel: Option<String>,
}

impl SubscribeSpec {
    /// Subscription `name` to `destination` (spelt `destination_name` by the subscriber), with
    /// the defaults for everything else: the broker's prefetch, a topic subscriber's own queue,
    /// an ordinary durable queue if one is created.
    pub fn new(destination: Destination, destination_name: &str, name: &str, ack: AckMode) -> Self {
        SubscribeSpec {
            destination,
            destination_name: Arc::from(destination_name),
            name: Arc::from(name),
            ack,
            prefetch: None,
            window_bytes: None,
            dead_letter_queue: None,
            topic_queue: TopicQueue::Own,
            lifecycle: Lifecycle::DURABLE,
            session: 0,
            channel: None,
        }
    }
}

/// One consumer attached to a queue; see the module docs.
pub struct Subscription {
    broker: Arc<Broker>,
    consumer: ConsumerId,
    queue: Arc<Queue>,
    /// Set for topic subscriptions, whose transient queue leaves the topic with them.
    topic: Option<Arc<Topic>>,
    ack: AckMode,
    /// The commit that made a binding or durable subscription, which a receipt waits for.
    made: Option<Ticket>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("consumer", &self.consumer)
            .field("queue", &self.queue.name())
            .finish()
    }
}

impl Broker {
    /// Attaches a consumer for `who`; deliveries go to `outbox`, starting with what the queue
    /// holds now.
    pub fn subscribe(
        self: &Arc<Self>,
        who: &crate::Principal,
        spec: SubscribeSpec,
        outbox: Arc<dyn Outbox>,
    ) -> Result<Subscription, BrokerError> {
        let consumer = ConsumerId(
            self.next_consumer_id
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        );
        let mut consumer_spec = ConsumerSpec {
            id: consumer,
            session: spec.session,
            sole: false,
            pattern: matches!(&spec.destination, Destination::Topic(t) if crate::wildcard::is_pattern(t)),
            subscription: spec.name.clone(),
            destination: spec.destination_name.clone(),
            principal: Arc::from(who.name()),
            ack: spec.ack,
            prefetch: spec.prefetch.unwrap_or(self.config.default_prefetch),
            window_bytes: spec.window_bytes,
            channel: match &spec.destination {
                Destination::Queue(_) => spec.channel.as_deref().map(Arc::from),
                Destination::Topic(_) => None,
            },
            outbox,
        };
        if let Destination::Topic(topic) = &spec.destination {
            self.check_temp_topic(topic, spec.session)?;
        }
        let mut fx = Effects::new();
        let mut made = None;
        let (queue, topic) = match (&spec.destination, &spec.topic_queue) {
            (Destination::Queue(name), _) if crate::temp::is_temp(name) => {
                let queue = self
                    .temp(name)
                    .ok_or_else(|| BrokerError::UnknownQueue(name.clone()))?;
                match queue.add_consumer(consumer_spec, &mut fx) {
                    Ok(()) => (queue, None),
                    Err(Refused::Dropped) => return Err(BrokerError::UnknownQueue(name.clone())),
                    Err(_) => return Err(BrokerError::ExclusiveQueue(name.clone())),
                }
            }
            (Destination::Queue(name), _) => {
                let queue = self.attach(name, spec.lifecycle, consumer_spec, &mut fx)?;
                (queue, None)
            }
            (Destination::Topic(name), TopicQueue::Own) => {
                let own = self.transient_queue(name, None);
                let topic = self.attach_subscriber(name, own.clone());
                // A transient queue is never removed or shared, so attaching cannot fail.
                let _ = own.add_consumer(consumer_spec, &mut fx);
                (own, Some(topic))
            }
            (Destination::Topic(topic), TopicQueue::Named(queue)) => {
                crate::Destination::check_name(queue)?;
                crate::Destination::check_name(topic)?;
                // Attached before it is bound: a refused consumer (an exclusive queue of another
                // session) must not leave a binding behind. With both names checked, binding
                // cannot fail.
                let q = self.attach(queue, spec.lifecycle, consumer_spec, &mut fx)?;
                made = Some(self.bind_queue(topic, &q)?);
                (q, None)
            }
            (Destination::Topic(topic), TopicQueue::Durable { client, name, sole }) => {
                // Refused before anything changes: a second live subscriber must not move the
                // subscription to its topic first.
                if *sole && self.durable_in_use(client, name) {
                    return Err(BrokerError::DurableSubscriptionActive {
                        client: client.clone(),
                        name: name.clone(),
                    });
                }
                let (queue, ticket) = self.durable_subscription(client, name, topic)?;
                made = Some(ticket);
                consumer_spec.sole = *sole;
                let attached = self.attach(&queue, Lifecycle::DURABLE, consumer_spec, &mut fx);
                let queue = attached.map_err(|e| match e {
                    BrokerError::DurableSubscriptionActive { .. } => {
                        BrokerError::DurableSubscriptionActive {
                            client: client.clone(),
                            name: name.clone(),
                        }
                    }
                    e => e,
                })?;
                (queue, None)
            }
        };
        if let (Some(dlq), None) = (&spec.dead_letter_queue, &topic) {
            drop(self.set_dead_letter_queue(&queue, dlq, &mut fx));
        }
        drop(self.apply(fx));
        Ok(Subscription {
            broker: self.clone(),
            consumer,
            queue,
            topic,
            ack: spec.ack,
            made,
        })
    }

    /// Attaches to durable queue `name` (declared with `life` if missing), or to the one made
    /// anew when it was removed meanwhile.
    fn attach(
        &self,
        name: &str,
        life: Lifecycle,
        spec: ConsumerSpec,
        fx: &mut Effects,
    ) -> Result<Arc<Queue>, BrokerError> {
        loop {
            let queue = self.declare(name, life, spec.session);
            match queue.add_consumer(spec.clone(), fx) {
                Ok(()) => return Ok(queue),
                Err(Refused::Dropped) => continue,
                Err(Refused::Exclusive) => {
                    return Err(BrokerError::ExclusiveQueue(name.to_owned()))
                }
                Err(Refused::Busy) => {
                    return Err(BrokerError::DurableSubscriptionActive {
                        client: String::new(),
                        name: name.to_owned(),
                    })
                }
            }
        }
    }

    /// Routes `queue`'s dead letters to `dlq` from now on, and remembers it.
    fn set_dead_letter_queue(&self, queue: &Arc<Queue>, dlq: &str, fx: &mut Effects) -> Ticket {
        if dlq == queue.name() || queue.dead_letter_queue().as_deref() == Some(dlq) {
            return Ticket::ready(Ok(()));
        }
        let change = crate::SettingsOverride {
            dead_letter_queue: Some(dlq.to_owned()),
            ..Default::default()
        };
        self.change_settings(queue, &change, fx)
    }

    /// Settles auto-ack deliveries the connection has written, one queue call per run of the same
    /// queue and consumer. Nobody is owed a receipt for these, so nothing waits for the commit.
    pub fn written(&self, acks: &mut Vec<AutoAck>) {
        if acks.is_empty() {
            return;
        }
        let mut fx = Effects::new();
        let mut seqs = Vec::new();
        let mut iter = acks.drain(..).peekable();
        while let Some(a) = iter.next() {
            seqs.clear();
            seqs.push(a.seq);
            while let Some(next) =
                iter.next_if(|n| Arc::ptr_eq(&n.queue, &a.queue) && n.consumer == a.consumer)
            {
                seqs.push(next.seq);
            }
            a.queue.settle_written(a.consumer, &seqs, &mut fx);
        }
        drop(self.apply(fx));
    }
}

impl Subscription {
    pub fn consumer(&self) -> ConsumerId {
        self.consumer
    }

    /// The commit that made this subscription's binding or durable subscription, if it made one:
    /// what a receipt for the subscribe waits for. Taken once.
    pub fn take_made(&mut self) -> Option<Ticket> {
        self.made.take()
    }

    /// The queue it consumes (a topic subscriber's own queue is named after the topic).
    pub fn queue_name(&self) -> &str {
        self.queue.name()
    }

    pub fn ack_mode(&self) -> AckMode {
        self.ack
    }

    /// True if the delivery `tag` names is held by this subscription (or was, until its
    /// visibility timeout took it back).
    pub fn holds(&self, tag: &DeliveryTag) -> bool {
        tag.queue == self.queue.number()
            && (self.queue.inflight_count(self.consumer, tag.seq).is_some()
                || self.queue.timed_out_from(self.consumer, tag.seq))
    }

    /// Settles the delivery `tag` names (and, in `client` mode, every earlier one). A delivery this
    /// subscription held until its visibility timeout took it back settles nothing and is no
    /// error: the consumer was slow, not wrong, and the message is on its way to another delivery.
    pub fn settle(&self, tag: &DeliveryTag, outcome: Outcome) -> Result<Ticket, BrokerError> {
        let Some(op) = self.resolve(tag, outcome)? else {
            return Ok(Ticket::ready(Ok(())));
        };
        let mut fx = Effects::new();
        if op.apply(&mut fx).is_err() {
            // Taken back by its visibility timeout between the check and now: late, as above.
            drop(self.broker.apply(fx));
            return Ok(Ticket::ready(Ok(())));
        }
        Ok(self.broker.apply(fx))
    }

    /// The settle `tag` asks for, `None` when it is late, or the error for a delivery this
    /// subscription never held (or a token of an earlier delivery of a redelivered message).
    pub(crate) fn resolve(
        &self,
        tag: &DeliveryTag,
        outcome: Outcome,
    ) -> Result<Option<SettleOp>, BrokerError> {
        let unknown = || BrokerError::UnknownMessage(message_id(tag.queue, tag.seq));
        if tag.queue != self.queue.number() {
            return Err(unknown());
        }
        match self.queue.inflight_count(self.consumer, tag.seq) {
            Some(count) if tag.count.is_none_or(|c| c == count) => Ok(Some(SettleOp {
                queue: self.queue.clone(),
                consumer: self.consumer,
                seq: tag.seq,
                count: Some(count),
                cumulative: self.ack == AckMode::Client,
                outcome,
            })),
            _ if self.queue.timed_out_from(self.consumer, tag.seq) => {
                tracing::debug!(
                    message = %message_id(tag.queue, tag.seq),
                    "late settle of a delivery whose visibility timed out"
                );
                Ok(None)
            }
            _ => Err(unknown()),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut fx = Effects::new();
        if let Some(topic) = &self.topic {
            self.broker.detach_subscriber(topic, &self.queue);
        }
        self.queue.remove_consumer(self.consumer, &mut fx);
        drop(self.broker.apply(fx));
        if self.queue.is_durable() && self.queue.auto_delete() && self.queue.consumer_count() == 0 {
            // Refused when a consumer attached meanwhile: then the queue is still in use.
            if let Ok(ticket) = self.broker.remove_queue(&self.queue) {
                drop(ticket);
            }
        }
    }
}
