//! Consuming: [`Broker::subscribe`] attaches a consumer to a queue (competing consumers) or gives
//! a topic subscriber a transient queue of its own, and returns the [`Subscription`] through which
//! its deliveries are settled. Dropping the subscription detaches it: its unsettled messages go
//! back to their queue. Connections report written auto-ack deliveries with [`Broker::written`].

use std::sync::Arc;

use stampede_store::Ticket;

use crate::delivery::{AckMode, AutoAck, Outbox};
use crate::effects::Effects;
use crate::ids::{message_id, DeliveryTag};
use crate::publish::SettleOp;
use crate::queue::{ConsumerId, ConsumerSpec, Queue};
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
    /// Where the queue's dead letters go from now on (RabbitMQ's `x-dead-letter-routing-key`).
    pub dead_letter_queue: Option<String>,
}

/// One consumer attached to a queue; see the module docs.
pub struct Subscription {
    broker: Arc<Broker>,
    consumer: ConsumerId,
    queue: Arc<Queue>,
    /// Set for topic subscriptions, whose transient queue leaves the topic with them.
    topic: Option<Arc<Topic>>,
    ack: AckMode,
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
        let consumer_spec = ConsumerSpec {
            id: consumer,
            subscription: spec.name.clone(),
            destination: spec.destination_name.clone(),
            principal: Arc::from(who.name()),
            ack: spec.ack,
            prefetch: spec.prefetch.unwrap_or(self.config.default_prefetch),
            outbox,
        };
        let mut fx = Effects::new();
        let (queue, topic) = match &spec.destination {
            Destination::Queue(name) => {
                let queue = self.attach(name, consumer_spec, &mut fx);
                if let Some(dlq) = &spec.dead_letter_queue {
                    drop(self.set_dead_letter_queue(&queue, dlq, &mut fx));
                }
                (queue, None)
            }
            Destination::Topic(name) => {
                let own = self.transient_queue(name);
                let topic = self.attach_subscriber(name, own.clone());
                // A transient queue is never removed, so attaching cannot fail.
                let _ = own.add_consumer(consumer_spec, &mut fx);
                (own, Some(topic))
            }
        };
        drop(self.apply(fx));
        Ok(Subscription {
            broker: self.clone(),
            consumer,
            queue,
            topic,
            ack: spec.ack,
        })
    }

    /// Attaches to durable queue `name`, or to the one made anew when it was removed meanwhile.
    fn attach(&self, name: &str, spec: ConsumerSpec, fx: &mut Effects) -> Arc<Queue> {
        loop {
            let queue = self.queue(name);
            if queue.add_consumer(spec.clone(), fx).is_ok() {
                return queue;
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
    }
}
