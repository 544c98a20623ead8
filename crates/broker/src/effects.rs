//! What a queue operation leaves for its caller to carry out: store ops to commit and messages to
//! dead-letter. Operations only record effects (under the queue's lock); [`Broker::apply`] then
//! stages the dead letters into their queues, submits everything as one store commit (atomic, so a
//! transaction's COMMIT or a NACK-to-DLQ is all or nothing on disk), and only then publishes.
//!
//! [`Broker::apply`]: crate::Broker::apply

use std::sync::Arc;

use stampede_store::{MessageRecord, Op};

use crate::queue::Queue;

/// Why a message left its queue for a dead-letter queue (`x-death-reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeathReason {
    /// NACK with `requeue: false`.
    Nack,
    /// Delivered `max_deliveries` times without an ACK.
    MaxDeliveries,
    /// Its `expires` time passed.
    Expired,
}

impl DeathReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeathReason::Nack => "nack",
            DeathReason::MaxDeliveries => "max-deliveries",
            DeathReason::Expired => "expired",
        }
    }
}

/// A message removed from `source` that belongs in `dead_letter_queue`.
#[derive(Debug)]
pub struct DeadLetter {
    pub source: Arc<str>,
    pub dead_letter_queue: String,
    pub record: Arc<MessageRecord>,
    pub reason: DeathReason,
}

/// A message whose store op is in `ops` and that becomes visible once they are submitted.
pub type Staged = (Arc<Queue>, u64, Arc<MessageRecord>);

/// A queue asks for its next waiting messages from the store.
#[derive(Debug)]
pub struct PageIn {
    pub queue: Arc<Queue>,
    pub after: u64,
    pub max: usize,
}

/// Accumulated effects of one or more queue operations.
#[derive(Debug, Default)]
pub struct Effects {
    pub ops: Vec<Op>,
    pub dead: Vec<DeadLetter>,
    pub publish: Vec<Staged>,
    pub page_in: Vec<PageIn>,
}

impl Effects {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
            && self.dead.is_empty()
            && self.publish.is_empty()
            && self.page_in.is_empty()
    }
}
