//! How a consumer settles a delivery.

/// The outcome a consumer reports for a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done with it: it leaves the queue.
    Ack,
    /// Give it back: visible again at once (counting a delivery), or, with `requeue: false`,
    /// straight to the dead-letter queue.
    Nack { requeue: bool },
}
