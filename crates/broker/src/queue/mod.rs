//! One queue's state machine (the OCI Queue model): ready (FIFO by sequence number) → in flight
//! (delivered, hidden until its visibility deadline) → settled, or back to ready, or to the
//! dead-letter queue once `max_deliveries` is used up. STOMP subscriptions (pushed, credit-based)
//! and pull consumers (GetMessages-style receipts) are two front ends on the same machine.
//!
//! Each queue has its own lock; nothing here takes a broker-wide lock, and the lock is never held
//! across an `.await` (dispatch only pushes into outboxes). Operations record their consequences
//! in an [`Effects`] which the broker applies once the lock is released.
//!
//! The `impl Queue` blocks are split by job: `admit` (capacity, staging, publishing), `paging`
//! (the part of the backlog kept in the store), `dispatch`, `settle` (ACK, NACK, time), `pull` (the
//! receipt front end), `pace` (producer flow control) and `admin` (purge, peek, move, settings).
//!
//! Durability ordering: a message's `Put` is submitted to the store before [`Queue::publish`] makes
//! it visible, so no consumer can ACK (and `Delete`) a message whose `Put` is not queued ahead.

mod admin;
mod admit;
mod dispatch;
mod pace;
mod paging;
mod pull;
mod settle;
mod state;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_time;

pub(crate) use admit::Reservation;
pub(crate) use pull::PullOrWait;
pub use pull::Pulled;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use stampede_store::QueueId;

use crate::clock::Clock;
use crate::delivery::{AckMode, Outbox};
use crate::effects::Effects;
use crate::policy::QueueSettings;
use crate::timer::Timer;
use state::{Back, Consumer, Ctx, State};

/// Identifies one subscription's consumer across all queues; unique for the broker's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConsumerId(pub u64);

/// What a subscription attaches to a queue.
#[derive(Clone)]
pub(crate) struct ConsumerSpec {
    pub id: ConsumerId,
    /// The session subscribing, checked against an exclusive queue's owner.
    pub session: u64,
    /// Refuse to attach while another consumer is attached (an ActiveMQ durable subscription
    /// has one subscriber at a time).
    pub sole: bool,
    pub subscription: Arc<str>,
    pub destination: Arc<str>,
    /// Subscribed to a wildcard pattern: each delivery names the topic its message was sent to.
    pub pattern: bool,
    /// Who subscribed, for the admin view.
    pub principal: Arc<str>,
    pub ack: AckMode,
    /// Most unsettled messages this consumer may hold.
    pub prefetch: u32,
    /// Most unsettled message bytes it may hold (see [`crate::SubscribeSpec::window_bytes`]).
    pub window_bytes: Option<u64>,
    /// Only this channel's messages.
    pub channel: Option<Arc<str>>,
    pub outbox: Arc<dyn Outbox>,
}

impl std::fmt::Debug for ConsumerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerSpec")
            .field("id", &self.id)
            .field("subscription", &self.subscription)
            .finish()
    }
}

/// How a queue lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueueKind {
    /// Persisted through the store; outlives connections.
    Durable,
    /// In memory only (a non-durable topic subscription); keeps at most `max_ready` waiting
    /// messages and drops the oldest beyond that, so one stalled subscriber cannot exhaust memory.
    Transient { max_ready: usize },
}

/// How many waiting messages a durable queue keeps in memory; the rest stay in the store until
/// the queue drains below half of this ("heads in memory, the rest on disk").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub messages: usize,
    pub bytes: u64,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            messages: 10_000,
            bytes: 16 * 1024 * 1024,
        }
    }
}

/// Counters a queue keeps for observability; read through [`crate::QueueView`].
#[derive(Debug, Default)]
pub(crate) struct QueueStats {
    pub enqueued: AtomicU64,
    pub delivered: AtomicU64,
    /// Deliveries of a message that had been delivered before.
    pub redelivered: AtomicU64,
    pub acked: AtomicU64,
    pub nacked: AtomicU64,
    /// Deliveries whose visibility timeout passed.
    pub timed_out: AtomicU64,
    pub dead_lettered: AtomicU64,
    /// Removed by retention or `expires`.
    pub expired: AtomicU64,
    /// Dropped from a transient queue over its bound.
    pub dropped: AtomicU64,
    /// Removed by a purge.
    pub purged: AtomicU64,
}

impl QueueStats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// A settle request named a message this consumer does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotInFlight;

/// A queue refused a message because it is full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Full {
    pub limit: &'static str,
    pub value: u64,
}

/// The queue was removed from the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dropped;

/// Why a consumer could not attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The queue was removed meanwhile; look it up again.
    Dropped,
    /// Exclusive to another session.
    Exclusive,
    /// A sole consumer was asked for and another is attached.
    Busy,
}

/// A named FIFO queue.
pub(crate) struct Queue {
    name: Arc<str>,
    /// Stable number that prefixes message ids, so an ACK names its queue without a lookup. For a
    /// durable queue it is kept in its attributes and survives restarts (and purges, which change
    /// the queue's id in the store).
    number: u64,
    kind: QueueKind,
    /// What every queue of its kind shares: the memory window, the clock, the broker's timer.
    env: Arc<QueueEnv>,
    next_seq: AtomicU64,
    state: Mutex<State>,
    pub stats: QueueStats,
    /// Producer pacing (see [`Queue::pace`]): woken when consumers have taken the in-memory
    /// backlog below the low-water mark.
    progress: tokio::sync::Notify,
    /// Producers waiting in [`Queue::pace`], so dispatch only notifies when someone listens.
    pacers: AtomicUsize,
    /// The consumers took nothing while a producer waited: stop pacing until they catch up.
    stalled: AtomicBool,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name)
            .field("number", &self.number)
            .finish()
    }
}

/// What the queues of one kind share.
pub(crate) struct QueueEnv {
    pub window: Window,
    pub clock: Arc<dyn Clock>,
    /// Wakes a queue when its next deadline comes (see [`Queue::schedule`]).
    pub timer: Arc<Timer>,
}

/// How to build a [`Queue`].
pub(crate) struct QueueInit {
    pub name: Arc<str>,
    pub number: u64,
    pub kind: QueueKind,
    pub settings: Arc<QueueSettings>,
    pub store_id: Option<QueueId>,
    pub next_seq: u64,
    /// Its stored attributes (default for a transient queue).
    pub attrs: crate::meta::QueueAttrs,
    /// The session an exclusive queue belongs to.
    pub owner: Option<u64>,
    pub env: Arc<QueueEnv>,
}

impl Queue {
    pub fn new(init: QueueInit) -> Arc<Queue> {
        let channels = crate::channel::possible(&init.name);
        let mut state = State::new(init.settings, init.store_id, channels);
        state.created_at_ms = init.attrs.created_at_ms;
        let crate::meta::QueueAttrs {
            overrides,
            labels,
            auto_delete,
            temporary,
            ..
        } = init.attrs;
        if overrides != Default::default()
            || !labels.is_empty()
            || auto_delete
            || temporary
            || init.owner.is_some()
        {
            state.extras = Some(Box::new(state::Extras {
                overrides,
                labels,
                auto_delete,
                temporary,
                owner: init.owner,
            }));
        }
        Arc::new(Queue {
            name: init.name,
            number: init.number,
            kind: init.kind,
            env: init.env,
            next_seq: AtomicU64::new(init.next_seq.max(1)),
            state: Mutex::new(state),
            stats: QueueStats::default(),
            progress: tokio::sync::Notify::new(),
            pacers: AtomicUsize::new(0),
            stalled: AtomicBool::new(false),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn name_arc(&self) -> &Arc<str> {
        &self.name
    }

    pub fn number(&self) -> u64 {
        self.number
    }

    pub fn is_durable(&self) -> bool {
        self.kind == QueueKind::Durable
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            name: &self.name,
            durable: self.is_durable(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// The queue's id in the store right now (`None`: transient, or dropped).
    pub fn store_id(&self) -> Option<QueueId> {
        self.lock().store_id
    }

    /// Allocates the sequence number of the next message.
    pub fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// The sequence number the next message will get (nothing allocated).
    pub fn peek_next_seq(&self) -> u64 {
        self.next_seq.load(Ordering::Relaxed)
    }

    /// Attaches a consumer and hands it what it has credit for.
    pub fn add_consumer(
        self: &Arc<Self>,
        spec: ConsumerSpec,
        fx: &mut Effects,
    ) -> Result<(), Refused> {
        let mut st = self.lock();
        if st.dropped {
            return Err(Refused::Dropped);
        }
        if st
            .extras
            .as_ref()
            .and_then(|e| e.owner)
            .is_some_and(|owner| owner != spec.session)
        {
            return Err(Refused::Exclusive);
        }
        if spec.sole && !st.consumers.is_empty() {
            return Err(Refused::Busy);
        }
        st.consumers.push(Consumer {
            credit: spec.prefetch.max(1),
            spec,
            next_dispatch: 0,
            unacked: BTreeMap::new(),
            unacked_bytes: 0,
            expired: VecDeque::new(),
        });
        self.dispatch(&mut st, fx);
        Ok(())
    }

    /// Detaches a consumer. Its unsettled messages return to the queue at their original position
    /// (ahead of newer ones), flagged redelivered, or are dead-lettered if out of deliveries.
    pub fn remove_consumer(self: &Arc<Self>, id: ConsumerId, fx: &mut Effects) {
        let mut st = self.lock();
        let Some(pos) = st.consumers.iter().position(|c| c.spec.id == id) else {
            return;
        };
        let consumer = st.consumers.remove(pos);
        let ctx = self.ctx();
        for seq in consumer.unacked.into_values() {
            if let Some(inflight) = st.take_inflight(seq) {
                st.requeue(&ctx, seq, inflight.entry, Back::AtOnce, fx);
            }
        }
        if st.cursor >= st.consumers.len() {
            st.cursor = 0;
        }
        self.dispatch(&mut st, fx);
    }

    /// Asks the broker's timer to wake this queue at its next deadline, if that is earlier than
    /// the one already asked for. Called with the lock held after every change, so an idle queue
    /// costs nothing until something in it is due.
    fn schedule(self: &Arc<Self>, st: &mut State) {
        let Some(at) = st.next_deadline() else {
            return;
        };
        if st.armed.is_some_and(|armed| armed <= at) {
            return;
        }
        st.armed = Some(at);
        self.env.timer.wake_at(at, self);
    }
}
