//! The suite every [`Store`] backend must pass: the crate's invariants, checked through the trait
//! only. A backend's tests implement [`Backend`] (open the store over the backend's state again
//! after the previous instance was dropped) and call [`run`] inside a Tokio runtime with timers
//! enabled (`#[tokio::test]` has them). Each check starts on queue ids above everything stored
//! before and its own metadata keys, and cleans up after itself, so they share one backend.
//!
//! A dropped store is a clean shutdown, not a crash: [`crash`] holds the two halves of a real one,
//! for backends that can run a child process and kill it.
//!
//! Recovery follows the contract: every check reads state with one [`Store::recover`] right after
//! [`Backend::open`], before committing anything.
//!
//! The checks are in `messages` (ordering, atomicity, totals, sequence numbers), `state`
//! (recovery, metadata, dropping queues) and `edges` (unknown queues, large bodies, odd headers,
//! flush, concurrency), `snapshot` (backups and restores); `crash` holds the crash halves.

pub mod crash;
mod edges;
mod messages;
mod snapshot;
mod state;

pub use edges::*;
pub use messages::*;
pub use snapshot::*;
pub use state::*;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::{MessageRecord, Op, QueueId, RecoveredQueue, Recovery, Store, StoredMessage, Ticket};

/// A backend under test: where its state lives.
pub trait Backend {
    /// Opens the store over this backend's state; called again after the previous instance was
    /// dropped (a restart).
    fn open(&mut self) -> Arc<dyn Store>;

    /// A store of the same backend over new, empty state (a restore's target).
    fn open_empty(&mut self) -> Arc<dyn Store>;
}

/// Runs every in-process check; panics naming the check and what differed.
pub async fn run(backend: &mut dyn Backend) {
    ordering(backend).await;
    atomic_commits(backend).await;
    totals_and_deliveries(backend).await;
    next_seq(backend).await;
    recovery(backend).await;
    metadata(backend).await;
    drop_queue(backend).await;
    unknown_queues(backend).await;
    large_bodies(backend).await;
    headers_and_expiry(backend).await;
    flush(backend).await;
    concurrent_commits(backend).await;
    snapshots(backend).await;
}

/// Messages per queue that every `recover` of the suite asks for: more than any check stores.
const HEAD: usize = 100_000;
/// How long a commit, read or flush may take before the check calls the store hung.
const WAIT: Duration = Duration::from_secs(60);

/// Reads and panics on the backend's errors, naming the check.
#[derive(Clone, Copy)]
struct Check(&'static str);

impl Check {
    fn start(self, backend: &mut dyn Backend) -> (Arc<dyn Store>, Recovery) {
        self.start_with_head(backend, HEAD)
    }

    fn start_with_head(self, backend: &mut dyn Backend, head: usize) -> (Arc<dyn Store>, Recovery) {
        let store = backend.open();
        let rec = store
            .recover(head)
            .unwrap_or_else(|e| panic!("{}: recover failed: {e}", self.0));
        self.shape(&rec, head);
        (store, rec)
    }

    /// Drops the store (every other handle must be gone) and opens it again.
    fn restart(
        self,
        backend: &mut dyn Backend,
        store: Arc<dyn Store>,
    ) -> (Arc<dyn Store>, Recovery) {
        drop(store);
        self.start(backend)
    }

    async fn wait<T>(self, what: &str, fut: impl Future<Output = T>) -> T {
        match tokio::time::timeout(WAIT, fut).await {
            Ok(v) => v,
            Err(_) => panic!("{}: {what} did not finish within {WAIT:?}", self.0),
        }
    }

    async fn settle(self, ticket: Ticket) {
        if let Err(e) = self.wait("a commit", ticket).await {
            panic!("{}: a commit failed: {e}", self.0);
        }
    }

    async fn commit(self, store: &dyn Store, ops: Vec<Op>) {
        self.settle(store.commit(ops)).await;
    }

    async fn read(
        self,
        store: &dyn Store,
        queue: QueueId,
        after: u64,
        max: usize,
    ) -> Vec<StoredMessage> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        store.read(
            queue,
            after,
            max,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        match self.wait("a read", rx).await {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => panic!("{}: read of queue {queue} failed: {e}", self.0),
            Err(_) => panic!("{}: read of queue {queue} never answered", self.0),
        }
    }

    fn queue(self, rec: &Recovery, id: QueueId) -> &RecoveredQueue {
        rec.queues
            .iter()
            .find(|q| q.id == id)
            .unwrap_or_else(|| panic!("{}: queue {id} is missing after recovery", self.0))
    }

    fn absent(self, rec: &Recovery, id: QueueId) {
        assert!(
            rec.queues.iter().all(|q| q.id != id),
            "{}: queue {id} should not exist after recovery",
            self.0
        );
    }

    /// What holds for any recovery: order, ids below `next_queue_id`, sequence numbers below
    /// `next_seq`, and totals matching the messages when all of them were returned.
    fn shape(self, rec: &Recovery, head: usize) {
        let c = self.0;
        assert!(rec.next_queue_id >= 1, "{c}: next_queue_id is 0");
        for w in rec.queues.windows(2) {
            assert!(w[0].id < w[1].id, "{c}: queues not sorted by id");
        }
        for w in rec.meta.windows(2) {
            assert!(
                w[0].0 < w[1].0,
                "{c}: metadata not in key order at {:?}",
                w[1].0
            );
        }
        for q in &rec.queues {
            let id = q.id;
            assert!(id < rec.next_queue_id, "{c}: queue {id} >= next_queue_id");
            assert!(
                q.head.len() <= head,
                "{c}: queue {id} head over the size asked"
            );
            assert!(
                q.head.len() as u64 <= q.messages,
                "{c}: queue {id} head over its count"
            );
            for w in q.head.windows(2) {
                assert!(w[0].seq < w[1].seq, "{c}: queue {id} head out of order");
            }
            if let Some(last) = q.head.last() {
                assert!(
                    q.next_seq > last.seq,
                    "{c}: queue {id} next_seq <= a stored seq"
                );
            }
            if q.head.len() as u64 == q.messages {
                let bytes: u64 = q.head.iter().map(|m| m.record.size() as u64).sum();
                assert_eq!(q.bytes, bytes, "{c}: queue {id} bytes total");
            }
        }
    }
}

fn seqs(messages: &[StoredMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

fn record(body: impl Into<Bytes>) -> Arc<MessageRecord> {
    Arc::new(MessageRecord {
        headers: vec![("kind".into(), "conformance".into())],
        body: body.into(),
        enqueued_at_ms: 1_700_000_000_000,
        expires_at_ms: None,
    })
}

/// Message `seq`'s record: its body names it, its size varies with it.
fn numbered(seq: u64) -> Arc<MessageRecord> {
    record(format!("message {seq} {}", "x".repeat((seq % 7) as usize)))
}

fn put_queue(id: QueueId, name: &str) -> Op {
    Op::PutQueue {
        id,
        name: Arc::from(name),
        attrs: Bytes::new(),
        next_seq: 1,
    }
}

fn put(queue: QueueId, seq: u64) -> Op {
    put_record(queue, seq, numbered(seq))
}

fn put_record(queue: QueueId, seq: u64, record: Arc<MessageRecord>) -> Op {
    Op::Put { queue, seq, record }
}

/// Deletes a message stored with [`put`].
fn delete(queue: QueueId, seq: u64, counted: bool) -> Op {
    Op::Delete {
        queue,
        seq,
        bytes: numbered(seq).size() as u64,
        counted,
    }
}

fn deliveries(queue: QueueId, seq: u64, count: u32) -> Op {
    Op::SetDeliveries { queue, seq, count }
}

fn put_meta(key: &str, value: &[u8]) -> Op {
    Op::PutMeta {
        key: Arc::from(key),
        value: Bytes::copy_from_slice(value),
    }
}

fn delete_meta(key: &str) -> Op {
    Op::DeleteMeta {
        key: Arc::from(key),
    }
}

fn meta<'a>(rec: &'a Recovery, key: &str) -> Option<&'a Bytes> {
    rec.meta.iter().find(|(k, _)| &**k == key).map(|(_, v)| v)
}

fn bodies(messages: &[StoredMessage]) -> Vec<(u64, Bytes, u32)> {
    messages
        .iter()
        .map(|m| (m.seq, m.record.body.clone(), m.deliveries))
        .collect()
}

fn msg(seq: u64, deliveries: u32) -> StoredMessage {
    StoredMessage {
        seq,
        record: numbered(seq),
        deliveries,
    }
}
