//! What a queue operation leaves for its caller to carry out: store ops to commit and messages to
//! dead-letter. Operations only record effects (under the queue's lock); [`Broker::apply`] then
//! stages the dead letters into their queues, submits everything as one store commit (atomic, so a
//! transaction's COMMIT or a NACK-to-DLQ is all or nothing on disk), and only then publishes.
//!
//! [`Broker::apply`]: crate::Broker::apply

use std::sync::Arc;

use parking_lot::Mutex;
use stampede_store::{MessageRecord, Op, Ticket};
use tokio::sync::Notify;

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

/// A message that becomes visible once `ops` (which hold its put, when `stored`) are submitted.
#[derive(Debug)]
pub struct Staged {
    pub queue: Arc<Queue>,
    pub seq: u64,
    pub record: Arc<MessageRecord>,
    pub stored: bool,
}

/// A queue asks for its next waiting messages from the store.
#[derive(Debug)]
pub struct PageIn {
    pub queue: Arc<Queue>,
    pub after: u64,
    pub max: usize,
}

/// Holds deliveries back until the delivery counts recorded with them are durable, so a message a
/// client has seen is never handed out again after a crash as if it were new. Created by the
/// dispatch that records the counts, armed by [`Broker::apply`] with a ticket for the commit that
/// carries them, awaited by the connection writer before it writes those deliveries.
///
/// [`Broker::apply`]: crate::Broker::apply
#[derive(Default)]
pub struct DurableGate {
    state: Mutex<GateState>,
    changed: Notify,
}

#[derive(Default)]
enum GateState {
    #[default]
    Unarmed,
    Armed(Ticket),
    /// One waiter is awaiting the ticket; the others wait for it to finish.
    Awaiting,
    Open,
}

impl std::fmt::Debug for DurableGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DurableGate")
    }
}

impl DurableGate {
    pub(crate) fn arm(&self, ticket: Ticket) {
        let mut st = self.state.lock();
        if matches!(*st, GateState::Unarmed) {
            *st = GateState::Armed(ticket);
        }
        drop(st);
        self.changed.notify_waiters();
    }

    /// Resolves once the counts are durable (or the store has failed, which its own errors
    /// report; holding deliveries forever would help nobody).
    pub async fn wait(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let ticket = {
                let mut st = self.state.lock();
                match std::mem::replace(&mut *st, GateState::Awaiting) {
                    GateState::Open => {
                        *st = GateState::Open;
                        return;
                    }
                    GateState::Armed(ticket) => Some(ticket),
                    other => {
                        *st = other;
                        None
                    }
                }
            };
            if let Some(ticket) = ticket {
                let _ = ticket.await;
                *self.state.lock() = GateState::Open;
                self.changed.notify_waiters();
                return;
            }
            changed.await;
        }
    }
}

/// Accumulated effects of one or more queue operations.
#[derive(Debug, Default)]
pub struct Effects {
    pub ops: Vec<Op>,
    pub dead: Vec<DeadLetter>,
    pub publish: Vec<Staged>,
    pub page_in: Vec<PageIn>,
    /// Set when deliveries were made that must wait for `ops` to be durable.
    pub gate: Option<Arc<DurableGate>>,
}

impl Drop for Effects {
    fn drop(&mut self) {
        // Effects dropped without being applied must not hold deliveries back for ever.
        if let Some(gate) = self.gate.take() {
            gate.arm(Ticket::ready(Ok(())));
        }
    }
}

impl Effects {
    pub fn new() -> Self {
        Self::default()
    }

    /// The gate for deliveries made under these effects.
    pub fn gate(&mut self) -> Arc<DurableGate> {
        self.gate.get_or_insert_with(Default::default).clone()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
            && self.dead.is_empty()
            && self.publish.is_empty()
            && self.page_in.is_empty()
    }
}
