//! The STOMP session: one connection's subscriptions (by SUBSCRIBE `id`) and open transactions
//! (by `transaction`), adapting STOMP commands to the broker's protocol-neutral operations. It
//! owns what is STOMP's own — subscription ids, ack tokens in `id`/`message-id`, which
//! subscription an un-named ACK meant — and nothing else; the broker decides.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

use stampede_broker::{
    AckMode, Broker, BrokerError, ConsumerId, DeliveryTag, Destination, NewMessage, Outbox,
    Outcome, Principal, SubscribeSpec, Subscription, Ticket, Transaction,
};
use stampede_proto::{AckCommand, SendCommand, SubscribeCommand};

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
    outbox: Arc<dyn Outbox>,
    subs: HashMap<String, Subscription>,
    transactions: HashMap<String, Transaction>,
}

impl Session {
    pub fn new(broker: Arc<Broker>, principal: Principal, outbox: Arc<dyn Outbox>) -> Session {
        Session {
            id: broker.session_id(),
            broker,
            principal,
            outbox,
            subs: HashMap::new(),
            transactions: HashMap::new(),
        }
    }

    /// Broker-unique session number, for the CONNECTED `session` header and logs.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// SEND: into its transaction, or published at once, or — when producer flow control holds
    /// it back — a boxed future that publishes it once it may. A connection's task holds the
    /// largest future it may await for as long as it lives, so the waiting one exists only while a
    /// producer waits.
    pub fn send(&mut self, cmd: SendCommand) -> Result<Sent, BrokerError> {
        let to = Destination::parse(&cmd.destination)?;
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

    pub fn subscribe(&mut self, cmd: SubscribeCommand) -> Result<(), BrokerError> {
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
        let spec = SubscribeSpec {
            destination: Destination::parse(&cmd.destination)?,
            destination_name: Arc::from(cmd.destination.as_str()),
            name: Arc::from(cmd.id.as_str()),
            ack: match cmd.ack {
                stampede_proto::AckMode::Auto => AckMode::Auto,
                stampede_proto::AckMode::Client => AckMode::Client,
                stampede_proto::AckMode::ClientIndividual => AckMode::ClientIndividual,
            },
            prefetch: cmd.prefetch,
            dead_letter_queue,
        };
        let sub = self
            .broker
            .subscribe(&self.principal, spec, self.outbox.clone())?;
        self.subs.insert(cmd.id, sub);
        Ok(())
    }

    /// The consumer behind subscription `id`, if it exists.
    pub fn consumer_of(&self, id: &str) -> Option<ConsumerId> {
        self.subs.get(id).map(|s| s.consumer())
    }

    pub fn unsubscribe(&mut self, id: &str) -> Result<(), BrokerError> {
        self.subs
            .remove(id)
            .map(drop)
            .ok_or_else(|| BrokerError::UnknownSubscription(id.to_owned()))
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
    /// unsettled messages return to their queues for redelivery.
    pub fn close(&mut self) {
        self.transactions.clear();
        self.subs.clear();
    }
}
