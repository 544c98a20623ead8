//! Persistence for queue messages. The broker describes every durable change as [`Op`]s and hands
//! them to a [`Store`] in one [`Store::commit`] call; the store decides how to make them durable
//! (group commit, fsync) and resolves the returned [`Ticket`] once they are.
//!
//! This crate knows nothing of STOMP: a message is an opaque [`MessageRecord`].
//!
//! ### Invariants
//! - The ops of one `commit` call are applied atomically: after a crash either all or none of them
//!   are visible to [`Store::recover`] (a transaction's COMMIT relies on this).
//! - Commits to the same queue are applied in call order, so a `Delete` submitted after the `Put`
//!   of the same message never resurrects it.
//! - When a `Ticket` resolves `Ok`, the ops survive a process kill (and, for disk stores, power
//!   loss): a RECEIPT is released only after that.
//! - `recover` returns, per queue, the oldest messages put and not deleted (up to the head size
//!   asked for), in sequence order, with the last delivery count written for each, plus the number
//!   and bytes of all of them. A message put or deleted by a commit whose ticket never resolved may
//!   or may not be there (never half of one commit).
//! - `read` sees every commit submitted before it, whether or not its ticket has resolved yet.

mod backlog;
mod memory;
mod record;
mod sled;

pub use backlog::{op_bytes, Backlog};
pub use memory::MemoryStore;
pub use record::MessageRecord;
pub use sled::{SledOptions, SledStore};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use thiserror::Error;
use tokio::sync::oneshot;

/// Errors of the storage layer.
#[derive(Debug, Error, Clone)]
pub enum StoreError {
    #[error("storage is closed")]
    Closed,
    #[error("storage i/o failed: {0}")]
    Io(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// One durable change.
#[derive(Debug, Clone)]
pub enum Op {
    /// Stores message `seq` of `queue`.
    Put {
        queue: Arc<str>,
        seq: u64,
        record: Arc<MessageRecord>,
    },
    /// Removes message `seq` of `queue` (ACK, expiry, dead-lettering out of it). `bytes` is its
    /// [`MessageRecord::size`], for the queue's stored totals; `counted` says a `SetDeliveries`
    /// may have been stored for it (so the store need not look for one otherwise).
    Delete {
        queue: Arc<str>,
        seq: u64,
        bytes: u64,
        counted: bool,
    },
    /// Records how often message `seq` was delivered, so the count survives restarts.
    SetDeliveries {
        queue: Arc<str>,
        seq: u64,
        count: u32,
    },
}

/// A message found at recovery.
#[derive(Debug, Clone)]
pub struct Recovered {
    pub seq: u64,
    pub record: Arc<MessageRecord>,
    pub deliveries: u32,
}

/// One queue as [`Store::recover`] finds it.
#[derive(Debug, Clone, Default)]
pub struct RecoveredQueue {
    pub name: String,
    /// The oldest stored messages, in sequence order.
    pub head: Vec<Recovered>,
    /// All stored messages, `head` included.
    pub messages: u64,
    /// Their total [`MessageRecord::size`].
    pub bytes: u64,
    /// One past the highest sequence number ever stored for the queue.
    pub next_seq: u64,
}

/// Every queue the store knows.
pub type RecoveredQueues = Vec<RecoveredQueue>;

/// Receives the result of a [`Store::read`]; runs on the store's own thread, so it must not block.
pub type ReadDone = Box<dyn FnOnce(Result<Vec<Recovered>, StoreError>) + Send>;

/// Resolves when a commit is durable (or failed). A commit that needs no waiting is born ready.
pub struct Ticket(TicketInner);

enum TicketInner {
    Ready(Option<Result<(), StoreError>>),
    Pending(oneshot::Receiver<Result<(), StoreError>>),
}

impl Ticket {
    pub fn ready(result: Result<(), StoreError>) -> Ticket {
        Ticket(TicketInner::Ready(Some(result)))
    }

    /// A ticket and the sender its committer completes.
    pub fn pending() -> (Ticket, oneshot::Sender<Result<(), StoreError>>) {
        let (tx, rx) = oneshot::channel();
        (Ticket(TicketInner::Pending(rx)), tx)
    }
}

impl Future for Ticket {
    type Output = Result<(), StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            TicketInner::Ready(r) => Poll::Ready(r.take().unwrap_or(Err(StoreError::Closed))),
            TicketInner::Pending(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or(Err(StoreError::Closed))),
        }
    }
}

/// Told about every commit round, so the server can export group-commit metrics without the store
/// knowing about them.
pub trait StoreObserver: Send + Sync + 'static {
    /// A round applied `commits` commits holding `ops` ops; `flush` is how long making them durable
    /// took (segment sync, batch, fsync).
    fn round(&self, commits: usize, ops: usize, flush: std::time::Duration);
}

/// Durable storage of queue messages. Implementations must never block the caller on i/o:
/// `commit` only enqueues work and returns a [`Ticket`].
pub trait Store: Send + Sync + 'static {
    /// Applies `ops` atomically and durably; see the crate's invariants.
    fn commit(&self, ops: Vec<Op>) -> Ticket;

    /// Every queue the store knows, with at most `head` of its oldest messages. Called once, at
    /// start-up, before any commit.
    fn recover(&self, head: usize) -> Result<RecoveredQueues, StoreError>;

    /// Reads up to `max` messages of `queue` with a sequence number above `after`, in order, and
    /// hands them to `done`. Sees every commit submitted before the call.
    fn read(&self, queue: Arc<str>, after: u64, max: usize, done: ReadDone);

    /// Resolves once everything committed before the call is durable; used at shutdown.
    fn flush(&self) -> Ticket;

    /// Message bytes committed and not yet durable.
    fn backlog(&self) -> &Backlog;

    /// Why the store no longer accepts writes, if it has failed.
    fn failure(&self) -> Option<String> {
        None
    }
}
