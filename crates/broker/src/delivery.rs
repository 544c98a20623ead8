//! What the broker hands to a consumer's connection: [`Delivery`]s, through the [`Outbox`] the
//! connection gave when it subscribed. The broker never sees a socket; the connection reports back
//! which auto-ack deliveries it has written ([`crate::Broker::written`]).

use std::sync::Arc;

use stampede_store::{MessageRecord, Ticket};

use crate::queue::{ConsumerId, Queue};

/// How a subscription acknowledges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    /// Settled as soon as the connection has written the message.
    Auto,
    /// A settle covers the named message and every earlier one of the same subscription.
    Client,
    /// A settle covers only the named message.
    ClientIndividual,
}

impl AckMode {
    /// As the STOMP `ack` header spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            AckMode::Auto => "auto",
            AckMode::Client => "client",
            AckMode::ClientIndividual => "client-individual",
        }
    }
}

/// One message on its way to one subscription.
#[derive(Debug)]
pub struct Delivery {
    /// The consumer it was dispatched to; the connection skips deliveries of a consumer it is
    /// cancelling (the queue takes those back).
    pub consumer: ConsumerId,
    /// The subscription's name (STOMP: the SUBSCRIBE `id`).
    pub subscription: Arc<str>,
    /// The destination as the subscriber named it.
    pub destination: Arc<str>,
    /// With `seq`, the message id ([`crate::message_id`]), stable across redeliveries and
    /// restarts.
    pub queue_number: u64,
    pub seq: u64,
    /// 1 on the first delivery.
    pub delivery_count: u32,
    /// The subscription settles explicitly, with the delivery's tag ([`crate::ack_token`]).
    pub client_ack: bool,
    pub record: Arc<MessageRecord>,
    /// For auto-ack subscriptions: hand it back through [`crate::Broker::written`] once the
    /// message is written.
    pub auto_ack: Option<AutoAck>,
    /// Set when the delivery count must be durable before the message is written: the ticket of
    /// the commit that carries it.
    pub durable: Option<Ticket>,
}

impl Delivery {
    pub fn redelivered(&self) -> bool {
        self.delivery_count > 1
    }

    pub fn message_id(&self) -> String {
        crate::ids::message_id(self.queue_number, self.seq)
    }

    /// The tag a client settles this delivery with; `None` for auto-ack subscriptions.
    pub fn ack_id(&self) -> Option<String> {
        self.client_ack
            .then(|| crate::ids::ack_token(self.queue_number, self.seq, self.delivery_count))
    }
}

/// An auto-ack delivery to settle once written; opaque to the connection.
#[derive(Debug)]
pub struct AutoAck {
    pub(crate) queue: Arc<Queue>,
    pub(crate) consumer: ConsumerId,
    pub(crate) seq: u64,
}

/// Where a subscription's deliveries go: a connection's writer, or any other consumer of them.
/// Deliveries are bounded by the subscription's credit (prefetch), so an outbox need not bound
/// itself.
pub trait Outbox: Send + Sync + 'static {
    /// Hands a delivery over; false when the connection is gone (the queue keeps the message).
    fn deliver(&self, delivery: Box<Delivery>) -> bool;
}
