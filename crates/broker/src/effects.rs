//! What a queue operation leaves for the broker to carry out: store ops to commit, messages to
//! dead-letter, staged messages to publish once their puts are submitted, page-in reads, and the
//! ticket that client-ack deliveries made meanwhile wait on. Operations only record effects (under
//! their queue's lock); the broker's `apply` carries them out once the lock is released.
//!
//! `Effects` is `#[must_use]`, and dropping one that still holds store ops is a bug caught in debug
//! builds: the in-memory half of a transition has happened, and its durable half would be lost.

use std::sync::Arc;

use stampede_store::{Completer, MessageRecord, Op, QueueId, Ticket};

use crate::queue::{Queue, Reservation};

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
pub(crate) struct DeadLetter {
    pub source: Arc<str>,
    pub dead_letter_queue: Arc<str>,
    pub record: Arc<MessageRecord>,
    pub reason: DeathReason,
}

/// A message that becomes visible once `ops` (which hold its put, when `stored`) are submitted.
#[derive(Debug)]
pub(crate) struct Staged {
    pub queue: Arc<Queue>,
    pub seq: u64,
    pub record: Arc<MessageRecord>,
    pub stored: bool,
    /// The queue's store id when its put was staged.
    pub store_id: Option<QueueId>,
    /// The room it holds under the queue's limits until published.
    pub reservation: Option<Reservation>,
}

/// A queue asks for its next waiting messages from the store.
#[derive(Debug)]
pub(crate) struct PageIn {
    pub queue: Arc<Queue>,
    pub store_id: QueueId,
    pub after: u64,
    pub max: usize,
    /// A scan for one channel's messages (see `Paged::scanned`); `None`: the next batch.
    pub scan: Option<Scan>,
}

/// What a channel scan was asked with.
#[derive(Debug, Clone)]
pub(crate) struct Scan {
    pub channel: Arc<str>,
    /// Records asked for: fewer back means the scan reached the end of the store.
    pub max: usize,
    /// `Paged::last` when the read was asked for: what a scan that reached the end has passed.
    pub last: u64,
}

/// Accumulated effects of one or more queue operations.
#[derive(Default)]
#[must_use = "effects must be applied by the broker, or their store ops are lost"]
pub(crate) struct Effects {
    pub ops: Vec<Op>,
    pub dead: Vec<DeadLetter>,
    pub publish: Vec<Staged>,
    pub page_in: Vec<PageIn>,
    /// Set when deliveries were made that must wait for `ops` to be durable: the ticket they
    /// carry, and its completer, which the commit of `ops` takes.
    pub gate: Option<(Ticket, Completer)>,
}

impl std::fmt::Debug for Effects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Effects")
            .field("ops", &self.ops.len())
            .field("dead", &self.dead.len())
            .field("publish", &self.publish.len())
            .field("page_in", &self.page_in.len())
            .field("gated", &self.gate.is_some())
            .finish()
    }
}

impl Effects {
    pub fn new() -> Self {
        Self::default()
    }

    /// The ticket deliveries made under these effects wait on: the one of the commit that will
    /// carry their delivery counts.
    pub fn gate(&mut self) -> Ticket {
        self.gate.get_or_insert_with(Ticket::pending).0.clone()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
            && self.dead.is_empty()
            && self.publish.is_empty()
            && self.page_in.is_empty()
            && self.gate.is_none()
    }
}

impl Drop for Effects {
    fn drop(&mut self) {
        debug_assert!(
            self.ops.is_empty() || std::thread::panicking(),
            "effects dropped with {} store ops not applied",
            self.ops.len()
        );
    }
}
