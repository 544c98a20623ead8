//! Errors of the routing core. Each is a client mistake, a refusal (a full queue, a full disk) or a
//! storage failure; a front end turns any of them into its own error (a STOMP `ERROR` frame, an
//! HTTP status) whose text is the `Display` text.

use stampede_store::StoreError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BrokerError {
    #[error("invalid destination {0:?}: expected /queue/NAME, /topic/NAME or a bare queue name")]
    InvalidDestination(String),
    #[error("invalid destination {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error(
        "exchange {0:?} is not supported: only /exchange/amq.topic/KEY (the same as /topic/KEY)"
    )]
    UnknownExchange(String),
    #[error("durable subscription {name:?} needs a client-id header (on CONNECT or SUBSCRIBE)")]
    MissingClientId { name: String },
    #[error("durable subscription {name:?} of client {client:?} already has a subscriber")]
    DurableSubscriptionActive { client: String, name: String },
    #[error("queue {0:?} is exclusive to another connection")]
    ExclusiveQueue(String),
    #[error("temporary topic {0:?} belongs to another connection")]
    TemporaryElsewhere(String),
    #[error("subscription id {0:?} is already in use on this connection")]
    DuplicateSubscription(String),
    #[error("no subscription with id {0:?} on this connection")]
    UnknownSubscription(String),
    #[error("no unacknowledged message with id {0:?} on this connection")]
    UnknownMessage(String),
    #[error("transaction {0:?} is already open on this connection")]
    DuplicateTransaction(String),
    #[error("no open transaction {0:?} on this connection")]
    UnknownTransaction(String),
    #[error("no queue named {0:?}")]
    UnknownQueue(String),
    #[error("queue {0:?} is no dead-letter queue: no queue sends its dead letters there (name a target to move its messages)")]
    NotADeadLetterQueue(String),
    #[error("queue {queue:?} has {consumers} consumer(s) attached; it can be deleted once they are gone")]
    QueueInUse { queue: String, consumers: usize },
    #[error("queue {queue:?} is full ({limit} = {value})")]
    QueueFull {
        queue: String,
        limit: &'static str,
        value: u64,
    },
    /// The user lacks `permission` on `destination` (as the permission patterns spell it).
    #[error("permission denied: {user:?} may not {permission} {destination}")]
    Denied {
        user: String,
        permission: &'static str,
        destination: String,
    },
    #[error("storage is nearly full ({0}); messages are refused until space is freed")]
    StorageFull(String),
    #[error("message could not be stored: {0}")]
    Store(#[from] StoreError),
}

impl BrokerError {
    /// True for refusals caused by storage (a full disk, a failed store) rather than the request.
    pub fn is_storage(&self) -> bool {
        matches!(self, BrokerError::Store(_) | BrokerError::StorageFull(_))
    }

    /// True for a permission refusal.
    pub fn is_denied(&self) -> bool {
        matches!(self, BrokerError::Denied { .. })
    }
}
