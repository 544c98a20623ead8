//! Errors of the routing core. Each is a client mistake or a storage failure; the server turns any
//! of them into a STOMP `ERROR` frame whose `message` is the `Display` text.

use stampede_store::StoreError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BrokerError {
    #[error("invalid destination {0:?}: expected /queue/NAME, /topic/NAME or a bare queue name")]
    InvalidDestination(String),
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
    #[error("queue {queue:?} is full ({limit} = {value})")]
    QueueFull {
        queue: String,
        limit: &'static str,
        value: u64,
    },
    #[error("storage is nearly full ({0}); messages are refused until space is freed")]
    StorageFull(String),
    #[error("message could not be stored: {0}")]
    Store(#[from] StoreError),
}
