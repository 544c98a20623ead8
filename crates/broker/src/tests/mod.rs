//! Tests of the façade: what a front end sees when it publishes, subscribes, settles, commits,
//! pulls and administers, on a memory store, with a clock the tests move.

mod admin;
mod flow;
mod metadata;
mod publish;
mod pull;
mod routing;
mod subscribe;
mod transaction;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use stampede_store::{Completer, MemoryStore, Op, QueueId, ReadDone, Recovery, Store, StoreError};
use tokio::sync::mpsc;

use crate::{
    AckMode, Broker, BrokerConfig, Delivery, DeliveryTag, Destination, ManualClock, NewMessage,
    Outbox, Outcome, Principal, QueuePolicy, Redrive, SubscribeSpec, Subscription, Ticket,
};

pub(crate) const T0: u64 = 1_000_000;

/// A memory store that counts the commits it is given (empty ones included).
#[derive(Default)]
pub(crate) struct CountingStore {
    pub inner: MemoryStore,
    pub commits: AtomicUsize,
}

impl CountingStore {
    pub fn commits(&self) -> usize {
        self.commits.load(Ordering::SeqCst)
    }

    /// Messages the store holds, over all queues.
    pub fn stored(&self) -> usize {
        self.inner
            .recover(0)
            .unwrap()
            .queues
            .iter()
            .map(|q| q.messages as usize)
            .sum()
    }
}

impl Store for CountingStore {
    fn submit(&self, ops: Vec<Op>, done: Completer) {
        self.commits.fetch_add(1, Ordering::SeqCst);
        self.inner.submit(ops, done)
    }
    fn recover(&self, head: usize) -> Result<Recovery, StoreError> {
        self.inner.recover(head)
    }
    fn read(&self, queue: QueueId, after: u64, max: usize, done: ReadDone) {
        self.inner.read(queue, after, max, done)
    }
    fn backlog(&self) -> &stampede_store::Backlog {
        self.inner.backlog()
    }
    fn snapshot(
        &self,
        sink: Box<dyn stampede_store::snapshot::Sink>,
    ) -> Result<stampede_store::snapshot::Summary, StoreError> {
        self.inner.snapshot(sink)
    }
}

pub(crate) struct Env {
    pub broker: Arc<Broker>,
    pub store: Arc<CountingStore>,
    pub clock: Arc<ManualClock>,
    pub config: BrokerConfig,
    pub policy: QueuePolicy,
}

impl Env {
    pub fn new() -> Env {
        Env::with(|_, _| {})
    }

    /// A broker whose configuration and queue policy `tune` adjusts.
    pub fn with(tune: impl FnOnce(&mut BrokerConfig, &mut QueuePolicy)) -> Env {
        let mut config = BrokerConfig::default();
        let mut policy = QueuePolicy::default();
        tune(&mut config, &mut policy);
        let store = Arc::new(CountingStore::default());
        let clock = Arc::new(ManualClock::new(T0));
        let broker = Broker::new(config.clone(), policy.clone(), store.clone(), clock.clone());
        Env {
            broker,
            store,
            clock,
            config,
            policy,
        }
    }

    /// A broker keeping at most `messages` waiting messages per queue in memory.
    pub fn with_window(messages: usize) -> Env {
        Env::with(|c, _| {
            c.window = crate::Window {
                messages,
                bytes: u64::MAX,
            }
        })
    }

    /// A new broker over the same store, as after a restart; recovered.
    pub fn restart(&self) -> Arc<Broker> {
        let broker = Broker::new(
            self.config.clone(),
            self.policy.clone(),
            self.store.clone(),
            self.clock.clone(),
        );
        broker.recover().unwrap();
        broker
    }

    pub fn conn(&self) -> Conn {
        Conn::new(&self.broker)
    }

    pub fn stored(&self) -> usize {
        self.store.stored()
    }

    /// (waiting, in flight, consumers) of queue `name`; zeros if it does not exist.
    pub fn depth(&self, name: &str) -> (u64, u64, usize) {
        depth(&self.broker, name)
    }

    /// Moves the clock and runs the timer, as the server's tick does.
    pub fn advance(&self, ms: u64) {
        self.clock.advance(ms);
        self.broker.tick();
    }
}

pub(crate) fn depth(broker: &Broker, name: &str) -> (u64, u64, usize) {
    broker
        .queue_view(name)
        .map_or((0, 0, 0), |v| (v.visible, v.in_flight, v.consumers.len()))
}

pub(crate) struct ChannelOutbox(mpsc::UnboundedSender<Box<Delivery>>);

impl Outbox for ChannelOutbox {
    fn deliver(&self, d: Box<Delivery>) -> bool {
        self.0.send(d).is_ok()
    }
}

/// What a connection holds: its outbox and subscriptions by name.
pub(crate) struct Conn {
    pub broker: Arc<Broker>,
    pub outbox: Arc<dyn Outbox>,
    pub rx: mpsc::UnboundedReceiver<Box<Delivery>>,
    pub subs: HashMap<String, Subscription>,
}

impl Conn {
    pub fn new(broker: &Arc<Broker>) -> Conn {
        let (tx, rx) = mpsc::unbounded_channel();
        Conn {
            broker: broker.clone(),
            outbox: Arc::new(ChannelOutbox(tx)),
            rx,
            subs: HashMap::new(),
        }
    }

    pub fn subscribe(&mut self, destination: &str, id: &str, ack: AckMode) {
        self.subscribe_with(destination, id, ack, |_| {});
    }

    pub fn subscribe_with(
        &mut self,
        destination: &str,
        id: &str,
        ack: AckMode,
        tune: impl FnOnce(&mut SubscribeSpec),
    ) {
        let mut spec = SubscribeSpec::new(
            Destination::parse(destination).unwrap(),
            destination,
            id,
            ack,
        );
        tune(&mut spec);
        let sub = self
            .broker
            .subscribe(&Principal::new("tester"), spec, self.outbox.clone())
            .unwrap();
        self.subs.insert(id.to_owned(), sub);
    }

    pub fn unsubscribe(&mut self, id: &str) {
        self.subs.remove(id).expect("subscribed");
    }

    /// Deliveries so far, taken out of the outbox.
    pub fn deliveries(&mut self) -> Vec<Delivery> {
        let mut out = Vec::new();
        while let Ok(d) = self.rx.try_recv() {
            out.push(*d);
        }
        out
    }

    /// Bodies delivered so far; auto-ack deliveries are reported written, as a writer would.
    pub fn bodies(&mut self) -> Vec<String> {
        let mut written = Vec::new();
        let out = self
            .deliveries()
            .into_iter()
            .map(|mut d| {
                written.extend(d.auto_ack.take());
                String::from_utf8(d.record.body.to_vec()).unwrap()
            })
            .collect();
        self.broker.written(&mut written);
        out
    }

    /// Settles `d` through the subscription it came to.
    pub fn settle(&self, d: &Delivery, outcome: Outcome) -> Result<Ticket, crate::BrokerError> {
        let tag = DeliveryTag::parse(&d.ack_id().unwrap()).unwrap();
        self.subs[&*d.subscription].settle(&tag, outcome)
    }
}

pub(crate) fn message(body: &str) -> NewMessage {
    NewMessage::new(Bytes::copy_from_slice(body.as_bytes()))
}

pub(crate) fn to(destination: &str) -> Destination {
    Destination::parse(destination).unwrap()
}

/// Publishes `body` to `destination` and waits until it is durable.
pub(crate) async fn send(broker: &Broker, destination: &str, body: &str) {
    broker
        .publish(&to(destination), message(body))
        .await
        .unwrap()
        .await
        .unwrap();
}
