//! How a consumer settles a delivery.

/// The outcome a consumer reports for a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done with it: it leaves the queue.
    Ack,
    /// Give it back: visible again at once (counting a delivery), or, with `requeue: false`,
    /// straight to the dead-letter queue.
    Nack { requeue: bool },
    /// Give it back, visible again after this wait instead of the queue's redelivery delay
    /// (a NACK's `x-delay`).
    RetryAfter(std::time::Duration),
}
