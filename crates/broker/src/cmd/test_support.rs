//! Helpers shared by the command tests: a broker on a memory store and frames to feed it.

use std::sync::Arc;

use bytes::Bytes;
use stampede_proto::{AckMode, AckRequest, Headers, SendFrame, Subscribe};
pub use stampede_store::{MemoryStore, Store};
use tokio::sync::mpsc;

use crate::{Broker, BrokerConfig, Delivery, Effects, ManualClock, Outgoing, QueuePolicy, Session};

pub fn broker() -> (Arc<Broker>, Arc<MemoryStore>) {
    broker_with(|_| {})
}

/// A broker whose queue policy `tune` adjusts.
pub fn broker_with(tune: impl FnOnce(&mut QueuePolicy)) -> (Arc<Broker>, Arc<MemoryStore>) {
    let (broker, _, store) = broker_with_clock(tune);
    (broker, store)
}

/// A broker keeping at most `messages` waiting messages per queue in memory.
pub fn broker_with_window(messages: usize) -> (Arc<Broker>, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let config = BrokerConfig {
        window: crate::Window {
            messages,
            bytes: u64::MAX,
        },
        ..BrokerConfig::default()
    };
    let broker = Broker::new(
        config,
        QueuePolicy::default(),
        store.clone(),
        Arc::new(ManualClock::new(1_000_000)),
    );
    (broker, store)
}

/// Like [`broker_with`], on a clock the test moves.
pub fn broker_with_clock(
    tune: impl FnOnce(&mut QueuePolicy),
) -> (Arc<Broker>, Arc<ManualClock>, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(1_000_000));
    let mut policy = QueuePolicy::default();
    tune(&mut policy);
    let broker = Broker::new(
        BrokerConfig::default(),
        policy,
        store.clone(),
        clock.clone(),
    );
    (broker, clock, store)
}

pub fn session(broker: &Arc<Broker>) -> (Session, mpsc::UnboundedReceiver<Outgoing>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (broker.session(tx), rx)
}

pub fn send_frame(destination: &str, body: &str) -> SendFrame {
    let mut headers = Headers::new();
    headers.push("destination", destination);
    SendFrame {
        destination: destination.to_owned(),
        transaction: None,
        headers,
        body: Bytes::copy_from_slice(body.as_bytes()),
    }
}

pub fn sub_frame(destination: &str, id: &str, ack: AckMode) -> Subscribe {
    Subscribe {
        destination: destination.to_owned(),
        id: id.to_owned(),
        ack,
        prefetch: None,
        headers: Headers::new(),
    }
}

pub fn ack_req(id: &str) -> AckRequest {
    AckRequest {
        id: id.to_owned(),
        subscription: None,
        transaction: None,
        requeue: true,
    }
}

pub fn deliveries(rx: &mut mpsc::UnboundedReceiver<Outgoing>) -> Vec<Delivery> {
    let mut out = Vec::new();
    while let Ok(item) = rx.try_recv() {
        if let Outgoing::Message(d) = item {
            out.push(*d);
        }
    }
    out
}

/// Bodies delivered so far; auto-ack deliveries are settled as a writer would after writing.
pub fn bodies(rx: &mut mpsc::UnboundedReceiver<Outgoing>) -> Vec<String> {
    deliveries(rx)
        .into_iter()
        .map(|d| {
            if let Some(s) = &d.auto_settle {
                s.queue
                    .settle_written(s.consumer, &[s.seq], &mut Effects::new());
            }
            String::from_utf8(d.record.body.to_vec()).unwrap()
        })
        .collect()
}

/// Messages the store holds, over all queues.
pub fn stored(store: &MemoryStore) -> usize {
    store
        .recover(0)
        .unwrap()
        .iter()
        .map(|q| q.messages as usize)
        .sum()
}
