//! The STOMP session: one connection's subscriptions (by SUBSCRIBE `id`), open transactions
//! (by `transaction`) and temporary destinations, adapting STOMP commands to the broker's
//! protocol-neutral operations. It owns what is STOMP's own — subscription ids, ack tokens in
//! `id`/`message-id`, which subscription an un-named ACK meant, what `/temp-queue/NAME` means on
//! this connection — and nothing else; the broker decides.
//!
//! Temporary destinations: `/temp-queue/NAME` is a queue private to this session (the broker's
//! temporary queue `<TEMP_PREFIX><session>.<run>.NAME`), removed with it; `/temp-topic/NAME` a
//! topic named the same way. A `reply-to` naming either is rewritten to a destination any
//! connection can SEND to (`/queue/...`, `/topic/...`), as RabbitMQ does, and a `reply-to`
//! temporary queue nobody here consumes gets a subscription with the `reply-to` as its id, in
//! `auto` mode (RabbitMQ's convention).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

use crate::auth::{canonical, Access, Identity, Permissions};
use crate::hub::{SubscriptionInfo, SubscriptionList};
use stampede_broker::{
    AckMode, Broker, BrokerError, ConsumerId, DeliveryTag, Destination, Lifecycle, NewMessage,
    Outbox, Outcome, Principal, SubscribeSpec, Subscription, Ticket, TopicQueue, Transaction,
    TEMP_PREFIX, TEMP_TOPIC_PREFIX,
};
use stampede_proto::{
    AckCommand, Dialect, QueueFlags, SendCommand, SubscribeCommand, UnsubscribeCommand,
};

const TEMP_QUEUE: &str = "/temp-queue/";
const TEMP_TOPIC: &str = "/temp-topic/";

/// A publish or commit that may have to wait for producer flow control.
pub type Publishing = Pin<Box<dyn Future<Output = Result<Ticket, BrokerError>> + Send>>;

/// What became of a SEND.
pub enum Sent {
    /// Held in its transaction until COMMIT.
    Held,
    Published(Ticket),
    /// Held back by producer flow control; published once the future is awaited.
    Paced(Publishing),
}

/// Bodies up to this size get an allocation of their own (see [`Session::send`]).
const OWN_COPY_BELOW: usize = 512;

/// Per-connection STOMP state; dropping it cancels every subscription (their unsettled messages
/// go back to their queues) and aborts open transactions.
pub struct Session {
    broker: Arc<Broker>,
    id: u64,
    principal: Principal,
    permissions: Arc<Permissions>,
    /// The CONNECT `client-id`, which scopes ActiveMQ and Artemis durable subscriptions.
    client_id: Option<String>,
    outbox: Arc<dyn Outbox>,
    subs: HashMap<String, Subscription>,
    transactions: HashMap<String, Transaction>,
    /// The temporary queues this session made, removed when it closes.
    temps: Vec<String>,
    /// Its subscriptions as the admin API lists them.
    listed: SubscriptionList,
}

impl Session {
    pub fn new(
        broker: Arc<Broker>,
        identity: Identity,
        client_id: Option<String>,
        outbox: Arc<dyn Outbox>,
    ) -> Session {
        Session {
            id: broker.session_id(),
            broker,
            principal: identity.principal,
            permissions: identity.permissions,
            client_id,
            outbox,
            subs: HashMap::new(),
            transactions: HashMap::new(),
            temps: Vec::new(),
            listed: SubscriptionList::default(),
        }
    }

    /// The broker destination `raw` names on this connection; a temporary queue is made on first
    /// use.
    fn resolve(&mut self, raw: &str) -> Result<Destination, BrokerError> {
        let temp = |name: &str, prefix: &str| {
            if name.is_empty() {
                return Err(BrokerError::InvalidDestination(raw.to_owned()));
            }
            Ok(self.broker.temp_name(prefix, self.id, name))
        };
        if let Some(name) = raw.strip_prefix(TEMP_QUEUE) {
            let queue = temp(name, TEMP_PREFIX)?;
            if !self.temps.contains(&queue) {
                self.broker.create_temp_queue(&queue, self.id)?;
                self.temps.push(queue.clone());
            }
            return Ok(Destination::Queue(queue));
        }
        if let Some(name) = raw.strip_prefix(TEMP_TOPIC) {
            return Ok(Destination::Topic(temp(name, TEMP_TOPIC_PREFIX)?));
        }
        Destination::parse(raw)
    }

    /// [`Session::resolve`], and the OCI channel `<queue OCID>/<channel>` names.
    fn resolve_channel(&mut self, raw: &str) -> Result<(Destination, Option<String>), BrokerError> {
        match stampede_broker::channel::split(raw) {
            Some(_) => Destination::parse_channel(raw),
            None => Ok((self.resolve(raw)?, None)),
        }
    }

    /// Refuses `access` to `destination` unless the user's permissions allow it. A session may
    /// always use its own temporary destinations.
    fn check(&self, access: Access, destination: &Destination) -> Result<(), BrokerError> {
        if self.permissions.is_all() || self.permissions.allows(access, destination) {
            return Ok(());
        }
        let own = match destination {
            Destination::Queue(q) => self.temps.contains(q),
            Destination::Topic(t) => {
                t.starts_with(&self.broker.temp_name(TEMP_TOPIC_PREFIX, self.id, ""))
            }
        };
        if own {
            return Ok(());
        }
        Err(BrokerError::Denied {
            user: self.principal.name().to_owned(),
            permission: access.as_str(),
            destination: canonical(destination),
        })
    }

    /// A `reply-to` naming a temporary destination, as another connection can send to it; a
    /// temporary queue gets its consumer here if it has none.
    fn routable_reply_to(&mut self, reply_to: &str) -> Result<String, BrokerError> {
        Ok(match self.resolve(reply_to)? {
            Destination::Queue(queue) => {
                if !self.subs.values().any(|s| s.queue_name() == queue) {
                    self.subscribe(SubscribeCommand {
                        destination: reply_to.to_owned(),
                        id: reply_to.to_owned(),
                        ack: stampede_proto::AckMode::Auto,
                        prefetch: None,
                        window_bytes: None,
                        dead_letter_queue: None,
                        durable: None,
                        queue_name: None,
                        flags: QueueFlags::default(),
                        client_id: None,
                    })?;
                }
                format!("/queue/{queue}")
            }
            Destination::Topic(topic) => format!("/topic/{topic}"),
        })
    }

    /// Broker-unique session number, for the CONNECTED `session` header and logs.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Its subscriptions, kept up to date, for the hub's listing.
    pub fn listing(&self) -> SubscriptionList {
        self.listed.clone()
    }

    /// SEND: into its transaction, or published at once, or — when producer flow control holds
    /// it back — a boxed future that publishes it once it may. A connection's task holds the
    /// largest future it may await for as long as it lives, so the waiting one exists only while a
    /// producer waits.
    pub fn send(&mut self, mut cmd: SendCommand) -> Result<Sent, BrokerError> {
        let (to, channel) = self.resolve_channel(&cmd.destination)?;
        self.check(Access::Write, &to)?;
        if let Some(reply_to) = cmd
            .reply_to
            .take()
            .filter(|r| r.starts_with(TEMP_QUEUE) || r.starts_with(TEMP_TOPIC))
        {
            let routable = self.routable_reply_to(&reply_to)?;
            for (k, v) in cmd.headers.iter_mut() {
                if k == "reply-to" && *v == reply_to {
                    v.clone_from(&routable);
                }
            }
        }
        // A small body is a slice of the connection's read buffer, shared with the frames read
        // with it: kept as it is, a message waiting in a queue would hold a share of that buffer
        // many times its own size. Small bodies are cheap to copy; large ones arrive in a buffer
        // sized to their frame and stay shared.
        let body = if cmd.body.len() <= OWN_COPY_BELOW {
            Bytes::copy_from_slice(&cmd.body)
        } else {
            cmd.body
        };
        let message = NewMessage {
            headers: cmd.headers,
            body,
            expires_at_ms: cmd.expires,
            persistent: cmd.persistent,
            channel,
        };
        if let Some(tx) = cmd.transaction {
            self.transaction(&tx)?.publish(to, message);
            return Ok(Sent::Held);
        }
        match self.broker.publish_now(&to, message)? {
            Ok(ticket) => Ok(Sent::Published(ticket)),
            Err(message) => {
                let broker = self.broker.clone();
                Ok(Sent::Paced(Box::pin(async move {
                    broker.publish(&to, message).await
                })))
            }
        }
    }

    /// SUBSCRIBE; the ticket, when there is one, is the commit of the binding or durable
    /// subscription it made (a receipt waits for it).
    pub fn subscribe(&mut self, cmd: SubscribeCommand) -> Result<Option<Ticket>, BrokerError> {
        if self.subs.contains_key(&cmd.id) {
            return Err(BrokerError::DuplicateSubscription(cmd.id));
        }
        // Only a queue can take dead letters; anything else in the header is ignored, as before.
        let dead_letter_queue = cmd
            .dead_letter_queue
            .and_then(|d| match Destination::parse(&d) {
                Ok(Destination::Queue(name)) => Some(name),
                _ => None,
            });
        let (destination, channel) = self.resolve_channel(&cmd.destination)?;
        self.check(Access::Read, &destination)?;
        if let Some(dlq) = &dead_letter_queue {
            // The queue's dead-letter queue changes for every consumer, and stays: a setting
            // of the queue; dead letters are then written there on its behalf.
            self.check(Access::Admin, &destination)?;
            self.check(Access::Write, &Destination::Queue(dlq.clone()))?;
        }
        let is_topic = matches!(destination, Destination::Topic(_));
        let topic_queue = if is_topic {
            self.topic_queue(cmd.durable, cmd.queue_name, cmd.client_id)?
        } else {
            TopicQueue::Own
        };
        self.check_topic_queue(&topic_queue, &destination)?;
        let mut spec = SubscribeSpec::new(
            destination,
            &cmd.destination,
            &cmd.id,
            match cmd.ack {
                stampede_proto::AckMode::Auto => AckMode::Auto,
                stampede_proto::AckMode::Client => AckMode::Client,
                stampede_proto::AckMode::ClientIndividual => AckMode::ClientIndividual,
            },
        );
        spec.prefetch = cmd.prefetch;
        spec.window_bytes = cmd.window_bytes;
        spec.dead_letter_queue = dead_letter_queue;
        spec.topic_queue = topic_queue;
        spec.lifecycle = lifecycle(cmd.flags, is_topic);
        spec.session = self.id;
        spec.channel = channel;
        let mut sub = self
            .broker
            .subscribe(&self.principal, spec, self.outbox.clone())?;
        let made = sub.take_made();
        self.listed.lock().push(SubscriptionInfo {
            id: cmd.id.clone(),
            destination: cmd.destination.clone(),
            ack: sub.ack_mode().as_str(),
        });
        self.subs.insert(cmd.id, sub);
        Ok(made)
    }

    /// What a durable subscription or a binding needs beyond `read` on its topic: it outlives the
    /// connection (`admin` on the topic); a binding reads its named queue and feeds it (`read` and
    /// `admin` on the queue); an existing durable subscription is taken over only by someone who
    /// may read and administer the topic it was made for.
    fn check_topic_queue(
        &self,
        topic_queue: &TopicQueue,
        topic: &Destination,
    ) -> Result<(), BrokerError> {
        match topic_queue {
            TopicQueue::Own => return Ok(()),
            TopicQueue::Named(queue) => {
                let queue = Destination::Queue(queue.clone());
                self.check(Access::Read, &queue)?;
                self.check(Access::Admin, &queue)?;
            }
            TopicQueue::Durable { client, name, .. } => {
                if let Some(old) = self.broker.durable_topic(client, name) {
                    let old = Destination::Topic(old);
                    self.check(Access::Read, &old)?;
                    self.check(Access::Admin, &old)?;
                }
            }
        }
        self.check(Access::Admin, topic)
    }

    /// Which queue keeps a topic subscriber's copies. An ActiveMQ or Artemis subscription name
    /// comes first (it is the most specific), then RabbitMQ's `x-queue-name`, then RabbitMQ's
    /// `durable` flags — django-stomp sends several of these at once, and each peer reads its own.
    fn topic_queue(
        &self,
        durable: Option<stampede_proto::DurableName>,
        queue_name: Option<String>,
        client_id: Option<String>,
    ) -> Result<TopicQueue, BrokerError> {
        Ok(match (durable, queue_name) {
            (Some(d), _) if d.dialect != Dialect::RabbitMq => {
                let client =
                    self.client_id
                        .clone()
                        .or(client_id)
                        .ok_or(BrokerError::MissingClientId {
                            name: d.name.clone(),
                        })?;
                TopicQueue::Durable {
                    client,
                    name: d.name,
                    sole: true,
                }
            }
            (_, Some(queue)) => TopicQueue::Named(queue),
            // RabbitMQ names the queue after the subscription id alone, shared by whoever
            // subscribes with that id.
            (Some(d), None) => TopicQueue::Durable {
                client: String::new(),
                name: d.name,
                sole: false,
            },
            (None, None) => TopicQueue::Own,
        })
    }

    /// The consumer behind subscription `id`, if it exists.
    pub fn consumer_of(&self, id: &str) -> Option<ConsumerId> {
        self.subs.get(id).map(|s| s.consumer())
    }

    /// UNSUBSCRIBE: ends subscription `id`; when the frame names a durable subscription the
    /// peer's way, that is removed too, with its queue (the ticket is that commit). Removing one
    /// needs no live subscription: ActiveMQ clients reconnect just to remove theirs.
    pub fn unsubscribe(&mut self, cmd: &UnsubscribeCommand) -> Result<Option<Ticket>, BrokerError> {
        let live = self.subs.remove(&cmd.id).is_some();
        self.listed.lock().retain(|s| s.id != cmd.id);
        let Some(d) = &cmd.durable else {
            return if live {
                Ok(None)
            } else {
                Err(BrokerError::UnknownSubscription(cmd.id.clone()))
            };
        };
        let client = match d.dialect {
            Dialect::RabbitMq => String::new(),
            Dialect::ActiveMq | Dialect::Artemis => match &self.client_id {
                Some(c) => c.clone(),
                None => {
                    return Err(BrokerError::MissingClientId {
                        name: d.name.clone(),
                    })
                }
            },
        };
        // Removing it deletes its stored messages: whoever may administer its topic may.
        if let Some(topic) = self.broker.durable_topic(&client, &d.name) {
            self.check(Access::Admin, &Destination::Topic(topic))?;
        }
        self.broker
            .drop_durable_subscription(&client, &d.name)
            .map(Some)
    }

    /// ACK (`Outcome::Ack`) or NACK: at once, or at COMMIT when it names a transaction.
    pub fn settle(&mut self, cmd: AckCommand, outcome: Outcome) -> Result<Ticket, BrokerError> {
        let unknown = || BrokerError::UnknownMessage(cmd.id.clone());
        let tag = DeliveryTag::parse(&cmd.id).ok_or_else(unknown)?;
        let sub = match &cmd.subscription {
            Some(id) => self.subs.get(id),
            // Several subscriptions may consume one queue: pick the one holding the message.
            None => self.subs.values().find(|s| s.holds(&tag)),
        }
        .ok_or_else(unknown)?;
        match &cmd.transaction {
            Some(tx) => {
                let tx = self
                    .transactions
                    .get_mut(tx)
                    .ok_or_else(|| BrokerError::UnknownTransaction(tx.clone()))?;
                tx.settle(sub, &tag, outcome)?;
                Ok(Ticket::ready(Ok(())))
            }
            None => sub.settle(&tag, outcome),
        }
    }

    pub fn begin(&mut self, tx: &str) -> Result<(), BrokerError> {
        if self.transactions.contains_key(tx) {
            return Err(BrokerError::DuplicateTransaction(tx.to_owned()));
        }
        self.transactions.insert(tx.to_owned(), Transaction::new());
        Ok(())
    }

    pub fn abort(&mut self, tx: &str) -> Result<(), BrokerError> {
        self.transactions
            .remove(tx)
            .map(drop)
            .ok_or_else(|| BrokerError::UnknownTransaction(tx.to_owned()))
    }

    /// COMMIT: the boxed future that commits the transaction (it may wait for the store).
    pub fn commit(&mut self, tx: &str) -> Result<Publishing, BrokerError> {
        let tx = self
            .transactions
            .remove(tx)
            .ok_or_else(|| BrokerError::UnknownTransaction(tx.to_owned()))?;
        let broker = self.broker.clone();
        Ok(Box::pin(async move { broker.commit(tx).await }))
    }

    fn transaction(&mut self, tx: &str) -> Result<&mut Transaction, BrokerError> {
        self.transactions
            .get_mut(tx)
            .ok_or_else(|| BrokerError::UnknownTransaction(tx.to_owned()))
    }

    /// Ends the session: open transactions are aborted and every subscription is cancelled, so its
    /// unsettled messages return to their queues for redelivery; its temporary queues go, with
    /// what they hold.
    pub fn close(&mut self) {
        self.transactions.clear();
        self.subs.clear();
        self.listed.lock().clear();
        for queue in self.temps.drain(..) {
            self.broker.remove_temp_queue(&queue);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close();
    }
}

/// RabbitMQ's queue flags with its defaults: a queue destination's queue is durable and kept; a
/// topic subscription's named queue is neither durable nor kept once its consumers leave, unless
/// the flags say so (django-stomp sends `durable: true`, `auto-delete: false`).
fn lifecycle(flags: QueueFlags, topic: bool) -> Lifecycle {
    Lifecycle {
        durable: flags.durable.unwrap_or(!topic),
        auto_delete: flags.auto_delete.unwrap_or(topic),
        exclusive: flags.exclusive.unwrap_or(false),
    }
}
