//! [`Broker`]: the one door into Stampede's core, for every front end alike — the STOMP session,
//! the admin API, the OCI REST API. Each operation applies its own effects and returns what the
//! caller awaits (a [`Ticket`] for durability); nothing behind the door is public.
//!
//! The operations live in sibling files by subject: `registry` (queues, topics, bindings, durable
//! subscriptions), `publish` (producing, transactions), `subscribe` (consuming), `pull` (the
//! receipt front end), `admin` (views, peek, purge, move, settings, removal) and `recovery`; this
//! file holds the struct and its lifecycle (the timer tick, the storage alarm, shutdown flush).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use dashmap::DashMap;
use stampede_store::{Store, Ticket};
use tracing::info;

use crate::clock::Clock;
use crate::effects::Effects;
use crate::meta::DurableSub;
use crate::policy::QueuePolicy;
use crate::queue::{Queue, QueueEnv, Window};
use crate::timer::Timer;
use crate::topic::Topic;
use crate::view::BrokerStats;
use crate::BrokerError;
use crate::QueueSettings;

/// Broker-wide settings.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Unsettled messages per subscription when the client names no prefetch.
    pub default_prefetch: u32,
    /// Waiting messages kept per non-durable topic subscriber before the oldest are dropped.
    pub topic_subscriber_buffer: usize,
    /// Waiting messages a durable queue keeps in memory; the rest are read from the store.
    pub window: Window,
    /// Message bytes accepted but not yet durable above which producers wait.
    pub max_pending_writes: u64,
    /// How long a producer waits for a crowded queue's consumers to take anything before they
    /// count as stalled (see the queue's pacing).
    pub consumer_stall: std::time::Duration,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            default_prefetch: 1000,
            topic_subscriber_buffer: 100_000,
            window: Window::default(),
            max_pending_writes: 32 * 1024 * 1024,
            consumer_stall: std::time::Duration::from_millis(200),
        }
    }
}

/// The broker core; see the module docs. Lookups go through sharded maps and each queue has its
/// own lock, so no operation serialises the whole broker.
pub struct Broker {
    /// Handed to store reads, whose completion re-enters the broker from the store's thread.
    pub(crate) me: Weak<Broker>,
    pub(crate) config: BrokerConfig,
    pub(crate) policy: QueuePolicy,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) timer: Arc<Timer>,
    /// What durable queues share, and what topic subscribers' transient queues share.
    pub(crate) durable_env: Arc<QueueEnv>,
    pub(crate) transient_env: Arc<QueueEnv>,
    /// Resolved settings by configuration pattern, shared by the queues without run-time changes.
    pub(crate) settings_cache: parking_lot::Mutex<HashMap<Option<String>, Arc<QueueSettings>>>,
    /// Transient queues keep nothing in flight past their subscription and never dead-letter.
    pub(crate) transient_settings: Arc<QueueSettings>,
    pub(crate) queues: DashMap<Arc<str>, Arc<Queue>>,
    /// Every topic by name, wildcard patterns included.
    pub(crate) topics: DashMap<Arc<str>, Arc<Topic>>,
    /// The wildcard patterns among them, for publishing (lock order: a topic's map entry, then
    /// this).
    pub(crate) patterns: parking_lot::RwLock<crate::wildcard::Trie>,
    /// Temporary queues by name (`temp.rs`), apart from the durable ones.
    pub(crate) temps: DashMap<Arc<str>, Arc<Queue>>,
    instance: u64,
    /// Durable subscriptions by `client\tname`.
    pub(crate) durable: DashMap<Arc<str>, DurableSub>,
    /// Store ids and queue numbers: one counter, never reused (recovery starts it above every id
    /// the store has seen).
    pub(crate) next_queue_id: AtomicU64,
    pub(crate) next_consumer_id: AtomicU64,
    pub(crate) next_session_id: AtomicU64,
    /// Set while the data directory is short of free space: durable SENDs are refused then,
    /// before the store runs into ENOSPC (which sled does not survive).
    storage_alarm: parking_lot::Mutex<Option<String>>,
    storage_alarm_on: AtomicBool,
    pub(crate) stats: BrokerStats,
}

impl Broker {
    pub fn new(
        config: BrokerConfig,
        policy: QueuePolicy,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Arc<Broker> {
        let timer = Arc::new(Timer::default());
        let env = |window| {
            Arc::new(QueueEnv {
                window,
                clock: clock.clone(),
                timer: timer.clone(),
            })
        };
        let durable_env = env(config.window);
        let transient_env = env(Window::default());
        Arc::new_cyclic(|me| Broker {
            me: me.clone(),
            config,
            policy,
            store,
            clock,
            timer,
            durable_env,
            transient_env,
            settings_cache: parking_lot::Mutex::new(HashMap::new()),
            transient_settings: Arc::new(QueueSettings {
                visibility_timeout: None,
                max_deliveries: None,
                ..QueueSettings::default()
            }),
            queues: DashMap::new(),
            topics: DashMap::new(),
            patterns: Default::default(),
            temps: DashMap::new(),
            instance: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            durable: DashMap::new(),
            next_queue_id: AtomicU64::new(1),
            next_consumer_id: AtomicU64::new(1),
            next_session_id: AtomicU64::new(1),
            storage_alarm: parking_lot::Mutex::new(None),
            storage_alarm_on: AtomicBool::new(false),
            stats: BrokerStats::default(),
        })
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// A broker-unique number for a new connection (logs, the CONNECTED `session` header).
    pub fn session_id(&self) -> u64 {
        self.next_session_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A number for this run of the broker (its start time in nanoseconds): with a session id it
    /// names what must not outlive the run, such as a temporary queue, so that a name from an
    /// earlier run never reaches a session of this one.
    pub fn instance(&self) -> u64 {
        self.instance
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Applies what time has done to the queues whose next deadline has come (visibility
    /// timeouts, `expires`, retention). The server calls this on a timer; queues with nothing due
    /// are not visited.
    pub fn tick(&self) {
        for (deadline, queue) in self.timer.due(self.now_ms()) {
            let mut fx = Effects::new();
            queue.tick(Some(deadline), &mut fx);
            drop(self.apply(fx));
        }
    }

    /// Wake-ups the timer holds (for tests and the admin view).
    pub fn pending_wakeups(&self) -> usize {
        self.timer.len()
    }

    /// Raises (`Some(reason)`) or clears (`None`) the low-disk alarm.
    pub fn set_storage_alarm(&self, reason: Option<String>) {
        let on = reason.is_some();
        let was = self.storage_alarm_on.swap(on, Ordering::Relaxed);
        match (&reason, was) {
            (Some(r), false) => tracing::warn!(reason = %r, "storage alarm: refusing messages"),
            (None, true) => info!("storage alarm cleared: accepting messages again"),
            _ => {}
        }
        *self.storage_alarm.lock() = reason;
    }

    pub(crate) fn check_storage(&self) -> Result<(), BrokerError> {
        if !self.storage_alarm_on.load(Ordering::Relaxed) {
            return Ok(());
        }
        match self.storage_alarm.lock().clone() {
            Some(reason) => Err(BrokerError::StorageFull(reason)),
            None => Ok(()),
        }
    }

    /// Message bytes accepted and not yet durable.
    pub fn pending_writes(&self) -> u64 {
        self.store.backlog().bytes()
    }

    /// Why the store refuses writes, if it has failed.
    pub fn store_failure(&self) -> Option<String> {
        self.store.failure()
    }

    /// Hands everything stored to `sink` at one instant between two commits: what a `kill -9`
    /// then would leave (non-persistent messages are not in it). Blocks; writes wait meanwhile.
    pub fn snapshot(
        &self,
        sink: Box<dyn stampede_store::snapshot::Sink>,
    ) -> Result<stampede_store::snapshot::Summary, stampede_store::StoreError> {
        self.store.snapshot(sink)
    }

    /// Resolves once everything committed so far is durable; part of graceful shutdown.
    pub fn flush(&self) -> Ticket {
        self.store.flush()
    }
}
