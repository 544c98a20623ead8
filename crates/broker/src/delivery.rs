//! What the broker hands to a connection: deliveries and control frames, through the connection's
//! outbox. The connection writer turns them into bytes; the broker never sees a socket.

use std::sync::Arc;

use stampede_proto::Frame;
use stampede_store::MessageRecord;
use tokio::sync::mpsc;

use crate::queue::{ConsumerId, Queue};

/// One message on its way to one subscription.
#[derive(Debug)]
pub struct Delivery {
    /// The consumer it was dispatched to; the connection skips deliveries of a consumer it is
    /// cancelling (the queue returns those to the queue).
    pub consumer: ConsumerId,
    /// The `subscription` header: the client's id for its SUBSCRIBE.
    pub subscription: Arc<str>,
    /// The `destination` header, as the subscriber named it.
    pub destination: Arc<str>,
    /// Stable across redeliveries of the same message.
    pub message_id: String,
    /// Per-delivery token for the 1.2 `ack` header; `None` for auto-ack subscriptions.
    pub ack_id: Option<String>,
    pub record: Arc<MessageRecord>,
    /// 1 on the first delivery.
    pub delivery_count: u32,
    /// Set for auto-ack subscriptions: the writer settles the message once it is on the socket.
    pub auto_settle: Option<AutoSettle>,
    /// Set when the delivery count must be durable before the message is written.
    pub durable: Option<Arc<crate::effects::DurableGate>>,
}

impl Delivery {
    pub fn redelivered(&self) -> bool {
        self.delivery_count > 1
    }
}

/// Where an auto-acked delivery is settled after the writer has written it.
#[derive(Debug, Clone)]
pub struct AutoSettle {
    pub queue: Arc<Queue>,
    pub consumer: ConsumerId,
    pub seq: u64,
}

/// Items a connection's writer drains, in order. Boxed, so the item is pointer-sized: every
/// connection's outbox channel allocates its slots in blocks up front, idle or not.
#[derive(Debug)]
pub enum Outgoing {
    Message(Box<Delivery>),
    Frame(Box<Frame>),
    /// Answered by the writer once everything queued before it is written (and auto-ack
    /// deliveries among it settled), so the connection can cancel a subscription without
    /// requeueing messages the client already has.
    Barrier(tokio::sync::oneshot::Sender<()>),
}

/// Sending half of a connection's outbox. Its depth is bounded by subscription credit (every
/// delivery takes one credit until acked or written) plus the replies to frames the reader has
/// processed, so an unbounded channel does not grow without bound.
pub type Outbox = mpsc::UnboundedSender<Outgoing>;
