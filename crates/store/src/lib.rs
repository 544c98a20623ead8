//! Persistence for Stampede: the [`Store`] trait every backend implements, the ops it applies, the
//! [`Ticket`] that says when they are durable, and [`MemoryStore`], the backend of an ephemeral
//! broker. The sled backend lives in `stampede-store-sled`; [`conformance`] is the suite every
//! backend must pass.
//!
//! The broker describes every durable change as [`Op`]s and hands them to a store in one
//! [`Store::submit`] call; the store decides how to make them durable (group commit, fsync) and
//! completes the commit's ticket once they are. This crate knows nothing of STOMP: a message is an
//! opaque [`MessageRecord`], a queue's attributes and every metadata value are opaque bytes the
//! broker encodes.
//!
//! ### Invariants
//! - The ops of one commit are applied atomically: after a crash either all or none of them are
//!   visible to [`Store::recover`] (a transaction's COMMIT and a NACK to a dead-letter queue rely on
//!   this).
//! - Commits are applied in submission order, so a `Delete` submitted after the `Put` of the same
//!   message never resurrects it, and the ops of later commits see the effects of earlier ones.
//! - When a ticket resolves `Ok`, its commit and every commit submitted before it survive a process
//!   kill (and, for disk stores, power loss): a RECEIPT is released only after that.
//! - A queue exists from the `PutQueue` that creates it until the `DropQueue` that removes it.
//!   Message ops naming a queue that does not exist (never created, or dropped) are ignored:
//!   dropping a queue removes every message in it at once, including puts still on their way.
//!   A `PutQueue` naming a dropped id creates it anew, empty.
//! - `recover` reports a `next_queue_id` above the highest id ever created, dropped ones included,
//!   so a broker that allocates from it never reuses one.
//! - The broker keeps to its side: a `Delete` names a stored message and carries its size, a `Put`
//!   names a sequence number not stored yet. Stores may trust this (sled does, to save a lookup
//!   per ACK); otherwise the queue's totals are undefined.
//! - `recover` returns, per queue, its attributes, the oldest messages put and not deleted (up to
//!   the head size asked for), in sequence order, with the last delivery count written for each,
//!   plus the number and bytes of all of them and a `next_seq` above every sequence number the
//!   queue has used (deleted messages included) and at least the `next_seq` of its `PutQueue`. A
//!   commit whose ticket never resolved may or may not be there — never half of one.
//! - `read` sees every commit submitted before it, whether or not its ticket has resolved yet.
//! - `flush` resolves only after every commit submitted before it has resolved.
//! - Metadata values are small (a binding, a subscription): stores need not handle large ones
//!   well.

mod backlog;
pub mod conformance;
mod error;
mod memory;
mod record;
pub mod snapshot;
mod ticket;

pub use backlog::{op_bytes, Backlog};
pub use error::StoreError;
pub use memory::MemoryStore;
pub use record::MessageRecord;
pub use ticket::{Completer, Ticket};

use std::sync::Arc;

use bytes::Bytes;

/// A queue's number in the store: allocated by the broker, never reused.
pub type QueueId = u64;

/// One durable change.
#[derive(Debug, Clone)]
pub enum Op {
    /// Creates queue `id` named `name`, or replaces the name and attributes of an existing one.
    /// `attrs` is opaque to the store. Sequence numbers below `next_seq` are never handed out to
    /// this queue again (recovery reports at least this).
    PutQueue {
        id: QueueId,
        name: Arc<str>,
        attrs: Bytes,
        next_seq: u64,
    },
    /// Removes queue `id` and every message it holds, at once.
    DropQueue { id: QueueId },
    /// Stores message `seq` of queue `queue`.
    Put {
        queue: QueueId,
        seq: u64,
        record: Arc<MessageRecord>,
    },
    /// Removes message `seq` (ACK, expiry, dead-lettering out of it). `bytes` is its
    /// [`MessageRecord::size`], for the queue's stored totals; `counted` says a `SetDeliveries`
    /// may have been stored for it (so the store need not look for one otherwise).
    Delete {
        queue: QueueId,
        seq: u64,
        bytes: u64,
        counted: bool,
    },
    /// Records how often message `seq` was delivered, so the count survives restarts.
    SetDeliveries {
        queue: QueueId,
        seq: u64,
        count: u32,
    },
    /// Sets metadata entry `key` (topic bindings, durable subscriptions: the broker's keys and
    /// encoding).
    PutMeta { key: Arc<str>, value: Bytes },
    /// Removes metadata entry `key`, if present.
    DeleteMeta { key: Arc<str> },
}

/// A stored message, as recovery and reads return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub seq: u64,
    pub record: Arc<MessageRecord>,
    pub deliveries: u32,
}

/// One queue as [`Store::recover`] finds it.
#[derive(Debug, Clone)]
pub struct RecoveredQueue {
    pub id: QueueId,
    pub name: Arc<str>,
    /// What its last `PutQueue` stored.
    pub attrs: Bytes,
    /// The oldest stored messages, in sequence order.
    pub head: Vec<StoredMessage>,
    /// All stored messages, `head` included.
    pub messages: u64,
    /// Their total [`MessageRecord::size`].
    pub bytes: u64,
    /// Above every sequence number the queue has used (see the crate's invariants).
    pub next_seq: u64,
}

/// Everything the store holds, as it was when recovery began.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    pub queues: Vec<RecoveredQueue>,
    /// Every metadata entry, in key order.
    pub meta: Vec<(Arc<str>, Bytes)>,
    /// One above the highest queue id ever created (dropped queues included).
    pub next_queue_id: QueueId,
}

/// Receives the result of a [`Store::read`]. It may run on a thread of the store's own, so it must
/// not block.
pub type ReadDone = Box<dyn FnOnce(Result<Vec<StoredMessage>, StoreError>) + Send>;

/// Told about every commit round, so the server can export group-commit metrics without the store
/// knowing about them.
pub trait StoreObserver: Send + Sync + 'static {
    /// A round applied `commits` commits holding `ops` ops; `flush` is how long making them durable
    /// took (segment sync, batch, fsync).
    fn round(&self, commits: usize, ops: usize, flush: std::time::Duration);
}

/// Durable storage of queues, messages and metadata. Implementations never block the caller on
/// i/o: `submit` only enqueues work; see the crate's invariants for what they promise.
pub trait Store: Send + Sync + 'static {
    /// Applies `ops` atomically and durably, then completes `done` (with the error if it failed).
    fn submit(&self, ops: Vec<Op>, done: Completer);

    /// [`Store::submit`] with a fresh ticket.
    fn commit(&self, ops: Vec<Op>) -> Ticket {
        let (ticket, done) = Ticket::pending();
        self.submit(ops, done);
        ticket
    }

    /// Everything the store holds, with at most `head` of each queue's oldest messages. Called
    /// once, at start-up, before any commit; it may block.
    fn recover(&self, head: usize) -> Result<Recovery, StoreError>;

    /// Reads up to `max` messages of `queue` with a sequence number above `after`, in order, and
    /// hands them to `done` (none for a queue that does not exist). Sees every commit submitted
    /// before the call.
    fn read(&self, queue: QueueId, after: u64, max: usize, done: ReadDone);

    /// Resolves once everything committed before the call is durable; used at shutdown.
    fn flush(&self) -> Ticket {
        self.commit(Vec::new())
    }

    /// Message bytes committed and not yet durable.
    fn backlog(&self) -> &Backlog;

    /// Hands everything the store holds to `sink` (see [`snapshot`]) as it is between two
    /// commits: every commit submitted before the call, and no commit applied while it runs
    /// (sled may include commits that were already on their way in one round with the call).
    /// Commits, and on sled reads, wait meanwhile. Blocks until the sink has finished; call from
    /// a blocking context. A store that failed earlier refuses.
    fn snapshot(&self, sink: Box<dyn snapshot::Sink>) -> Result<snapshot::Summary, StoreError>;

    /// Why the store no longer accepts writes, if it has failed.
    fn failure(&self) -> Option<String> {
        None
    }
}
