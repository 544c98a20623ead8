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

/// Heads and reads come in sequence order, whatever the order of the commits, and reads see
/// every commit submitted before them before its ticket resolves.
pub async fn ordering(backend: &mut dyn Backend) {
    let c = Check("ordering");
    let (store, rec) = c.start(backend);
    let q = rec.next_queue_id;
    c.commit(&*store, vec![put_queue(q, "conformance/ordering")])
        .await;
    // Connections may commit sequence numbers out of order.
    let late = store.commit((11..=20).rev().map(|s| put(q, s)).collect());
    let early = store.commit((1..=10).map(|s| put(q, s)).collect());
    assert_eq!(
        seqs(&c.read(&*store, q, 0, 3).await),
        [1, 2, 3],
        "ordering: first page"
    );
    let rest = c.read(&*store, q, 3, 100).await;
    assert_eq!(
        seqs(&rest),
        (4..=20).collect::<Vec<_>>(),
        "ordering: read after 3"
    );
    assert_eq!(
        rest[0].record,
        numbered(4),
        "ordering: the record read back"
    );
    assert!(
        c.read(&*store, q, 20, 10).await.is_empty(),
        "ordering: read past the end"
    );
    assert!(
        c.read(&*store, q, 0, 0).await.is_empty(),
        "ordering: read of max 0"
    );
    // A Delete submitted right after the Put it undoes, neither awaited.
    let put21 = store.commit(vec![put(q, 21)]);
    let undo = store.commit(vec![delete(q, 21, false), delete(q, 5, false)]);
    assert_eq!(
        seqs(&c.read(&*store, q, 19, 10).await),
        [20],
        "ordering: deleted after put"
    );
    assert_eq!(
        seqs(&c.read(&*store, q, 4, 1).await),
        [6],
        "ordering: read skips a delete"
    );
    for t in [late, early, put21, undo] {
        c.settle(t).await;
    }
    let want: Vec<u64> = (1..=20).filter(|&s| s != 5).collect();
    let (store, rec) = c.restart(backend, store);
    let got = c.queue(&rec, q);
    assert_eq!(seqs(&got.head), want, "ordering: recovered head");
    assert_eq!(
        (got.messages, got.name.as_ref()),
        (19, "conformance/ordering")
    );
    drop(store);
    let (store, rec) = c.start_with_head(backend, 5);
    let got = c.queue(&rec, q);
    assert_eq!(seqs(&got.head), want[..5], "ordering: a head of 5");
    assert_eq!(got.messages, 19, "ordering: count beyond the head");
    c.commit(&*store, vec![Op::DropQueue { id: q }]).await;
}

/// One commit spanning queues and metadata is applied whole and in op order.
pub async fn atomic_commits(backend: &mut dyn Backend) {
    let c = Check("atomic_commits");
    let (store, rec) = c.start(backend);
    let (a, b) = (rec.next_queue_id, rec.next_queue_id + 1);
    let key = |k: &str| format!("conformance/atomic/{a}/{k}");
    let first = store.commit(vec![
        put_queue(a, "conformance/atomic/a"),
        put_queue(b, "conformance/atomic/b"),
        put(a, 1),
        put(b, 1),
        put(b, 2),
        deliveries(a, 1, 2),
        put_meta(&key("one"), b"1"),
        put_meta(&key("two"), b"2"),
    ]);
    let seen = c.read(&*store, b, 0, 10).await;
    assert_eq!(
        seqs(&seen),
        [1, 2],
        "atomic_commits: read before the ticket"
    );
    assert_eq!(
        c.read(&*store, a, 0, 10).await[0].deliveries,
        2,
        "atomic_commits: count"
    );
    c.settle(first).await;
    c.commit(
        &*store,
        vec![
            delete(a, 1, true),
            put(a, 2),
            delete(b, 1, false),
            deliveries(b, 2, 1),
            delete_meta(&key("one")),
            put_meta(&key("three"), b"3"),
            // In op order: put then delete is gone, delete then put stays.
            put(a, 3),
            delete(a, 3, false),
            put_meta(&key("gone"), b"x"),
            delete_meta(&key("gone")),
            delete_meta(&key("back")),
            put_meta(&key("back"), b"b"),
        ],
    )
    .await;
    let (store, rec) = c.restart(backend, store);
    let (qa, qb) = (c.queue(&rec, a), c.queue(&rec, b));
    assert_eq!(
        bodies(&qa.head),
        bodies(&[msg(2, 0)]),
        "atomic_commits: queue a"
    );
    assert_eq!(
        bodies(&qb.head),
        bodies(&[msg(2, 1)]),
        "atomic_commits: queue b"
    );
    assert_eq!((qa.messages, qb.messages), (1, 1), "atomic_commits: counts");
    let found: Vec<&str> = ["one", "two", "three", "gone", "back"]
        .into_iter()
        .filter(|k| meta(&rec, &key(k)).is_some())
        .collect();
    assert_eq!(found, ["two", "three", "back"], "atomic_commits: metadata");
    let mut cleanup = vec![Op::DropQueue { id: a }, Op::DropQueue { id: b }];
    cleanup.extend(["two", "three", "back"].map(|k| delete_meta(&key(k))));
    c.commit(&*store, cleanup).await;
}

fn msg(seq: u64, deliveries: u32) -> StoredMessage {
    StoredMessage {
        seq,
        record: numbered(seq),
        deliveries,
    }
}

/// Puts, deletes and delivery counts, and the totals that follow them.
pub async fn totals_and_deliveries(backend: &mut dyn Backend) {
    let c = Check("totals_and_deliveries");
    let (store, rec) = c.start(backend);
    let q = rec.next_queue_id;
    let mut ops = vec![put_queue(q, "conformance/totals")];
    ops.extend((1..=6).map(|s| put(q, s)));
    c.commit(&*store, ops).await;
    c.commit(
        &*store,
        vec![
            deliveries(q, 2, 1),
            deliveries(q, 4, 7),
            deliveries(q, 4, 9),
        ],
    )
    .await;
    c.commit(&*store, vec![deliveries(q, 2, 3)]).await;
    c.commit(
        &*store,
        vec![delete(q, 1, false), delete(q, 2, true), delete(q, 6, false)],
    )
    .await;
    // A count for a deleted message does not bring it back.
    c.commit(&*store, vec![deliveries(q, 6, 4)]).await;
    let want = [msg(3, 0), msg(4, 9), msg(5, 0)];
    let read = c.read(&*store, q, 0, 10).await;
    assert_eq!(bodies(&read), bodies(&want), "totals_and_deliveries: read");
    let (store, rec) = c.restart(backend, store);
    let got = c.queue(&rec, q);
    assert_eq!(
        bodies(&got.head),
        bodies(&want),
        "totals_and_deliveries: recovered"
    );
    let bytes: u64 = [3, 4, 5].map(|s| numbered(s).size() as u64).iter().sum();
    assert_eq!(
        (got.messages, got.bytes),
        (3, bytes),
        "totals_and_deliveries: totals"
    );
    // A recovered queue takes further changes.
    c.commit(&*store, vec![delete(q, 4, true), put(q, 7)]).await;
    let (store, rec) = c.restart(backend, store);
    let got = c.queue(&rec, q);
    assert_eq!(
        bodies(&got.head),
        bodies(&[msg(3, 0), msg(5, 0), msg(7, 0)])
    );
    let bytes: u64 = [3, 5, 7].map(|s| numbered(s).size() as u64).iter().sum();
    assert_eq!(
        (got.messages, got.bytes),
        (3, bytes),
        "totals_and_deliveries: after more"
    );
    c.commit(&*store, vec![Op::DropQueue { id: q }]).await;
}

/// `next_seq` stays above every sequence number used, deleted ones included, and at least the
/// `next_seq` of the queue's `PutQueue`.
pub async fn next_seq(backend: &mut dyn Backend) {
    let c = Check("next_seq");
    let (store, rec) = c.start(backend);
    let (q, r) = (rec.next_queue_id, rec.next_queue_id + 1);
    let with_next = |id, next_seq| Op::PutQueue {
        id,
        name: Arc::from("conformance/next_seq"),
        attrs: Bytes::new(),
        next_seq,
    };
    c.commit(&*store, vec![with_next(q, 100), with_next(r, 1), put(r, 7)])
        .await;
    let (store, rec) = c.restart(backend, store);
    assert!(c.queue(&rec, q).next_seq >= 100, "next_seq: from PutQueue");
    assert!(c.queue(&rec, r).next_seq >= 8, "next_seq: above a put");
    let mut ops: Vec<Op> = (100..=104).map(|s| put(q, s)).collect();
    ops.extend((100..=104).map(|s| delete(q, s, false)));
    ops.push(delete(r, 7, false));
    c.commit(&*store, ops).await;
    let (store, rec) = c.restart(backend, store);
    let (got, other) = (c.queue(&rec, q), c.queue(&rec, r));
    assert_eq!((got.messages, other.messages), (0, 0), "next_seq: drained");
    assert!(
        got.next_seq >= 105,
        "next_seq: {} reuses deleted seqs",
        got.next_seq
    );
    assert!(
        other.next_seq >= 8,
        "next_seq: {} reuses a deleted seq",
        other.next_seq
    );
    // A PutQueue with a lower next_seq (an attribute change) does not lower it.
    c.commit(&*store, vec![with_next(q, 3), with_next(r, 500)])
        .await;
    let (store, rec) = c.restart(backend, store);
    assert!(
        c.queue(&rec, q).next_seq >= 105,
        "next_seq: lowered by PutQueue"
    );
    assert!(
        c.queue(&rec, r).next_seq >= 500,
        "next_seq: raised by PutQueue"
    );
    c.commit(
        &*store,
        vec![Op::DropQueue { id: q }, Op::DropQueue { id: r }],
    )
    .await;
}

/// Reopening restores names, attributes, messages with their counts and metadata, as often as
/// it is done, and the last `PutQueue` wins.
pub async fn recovery(backend: &mut dyn Backend) {
    let c = Check("recovery");
    let (store, rec) = c.start(backend);
    let base = rec.next_queue_id;
    let long_name = format!("conformance/recovery/{}", "n".repeat(1000));
    let queues: [(QueueId, &str, Bytes); 3] = [
        (
            base,
            "conformance/recovery/π",
            Bytes::from_static(b"\0\x01attrs\xff"),
        ),
        (base + 1, "conformance/recovery/plain", Bytes::new()),
        (base + 2, &long_name, Bytes::from(vec![0xa5; 10 * 1024])),
    ];
    let key = format!("conformance/recovery/{base}");
    let mut ops = vec![put_meta(&key, b"kept")];
    for (id, name, attrs) in &queues {
        ops.push(Op::PutQueue {
            id: *id,
            name: Arc::from(*name),
            attrs: attrs.clone(),
            next_seq: 1,
        });
        ops.extend([
            put(*id, 1),
            put(*id, 2),
            deliveries(*id, 2, *id as u32 % 50 + 1),
        ]);
    }
    c.commit(&*store, ops).await;
    let (mut store, mut rec) = c.restart(backend, store);
    for round in 0..2 {
        for (id, name, attrs) in &queues {
            let q = c.queue(&rec, *id);
            assert_eq!(
                (&*q.name, &q.attrs),
                (*name, attrs),
                "recovery: queue {id} record"
            );
            let want = [msg(1, 0), msg(2, *id as u32 % 50 + 1)];
            assert_eq!(
                bodies(&q.head),
                bodies(&want),
                "recovery: queue {id} messages"
            );
            assert_eq!(
                seqs(&c.read(&*store, *id, 0, 10).await),
                [1, 2],
                "recovery: read"
            );
        }
        assert_eq!(meta(&rec, &key).map(|v| &v[..]), Some(&b"kept"[..]));
        if round == 0 {
            (store, rec) = c.restart(backend, store);
        }
    }
    let renamed = Op::PutQueue {
        id: base,
        name: Arc::from("conformance/recovery/renamed"),
        attrs: Bytes::from_static(b"v2"),
        next_seq: 1,
    };
    c.commit(&*store, vec![renamed, put(base, 3)]).await;
    let (store, rec) = c.restart(backend, store);
    let q = c.queue(&rec, base);
    assert_eq!(
        (&*q.name, &q.attrs[..]),
        ("conformance/recovery/renamed", &b"v2"[..])
    );
    assert_eq!(
        (seqs(&q.head), q.messages),
        (vec![1, 2, 3], 3),
        "recovery: kept messages"
    );
    let mut cleanup: Vec<Op> = queues
        .iter()
        .map(|(id, ..)| Op::DropQueue { id: *id })
        .collect();
    cleanup.push(delete_meta(&key));
    c.commit(&*store, cleanup).await;
}

/// Metadata entries: put, replace, delete, and recovered in key order.
pub async fn metadata(backend: &mut dyn Backend) {
    let c = Check("metadata");
    let (store, rec) = c.start(backend);
    let prefix = format!("conformance/meta/{}/", rec.next_queue_id);
    let k = |s: &str| format!("{prefix}{s}");
    let ours = |rec: &Recovery| -> Vec<(String, Vec<u8>)> {
        rec.meta
            .iter()
            .filter(|(key, _)| key.starts_with(&prefix))
            .map(|(key, v)| (key[prefix.len()..].to_owned(), v.to_vec()))
            .collect()
    };
    let keys = ["a", "a/b", "ab", "é", "\u{10FFFF}", "", "b"];
    let mut ops: Vec<Op> = keys.iter().map(|s| put_meta(&k(s), s.as_bytes())).collect();
    ops.push(put_meta(&k("nul"), b"x\0y"));
    ops.push(put_meta(&k("empty"), b""));
    c.commit(&*store, ops).await;
    let (store, rec) = c.restart(backend, store);
    let mut want: Vec<(String, Vec<u8>)> = keys
        .iter()
        .map(|s| (s.to_string(), s.as_bytes().to_vec()))
        .chain([("nul".into(), b"x\0y".to_vec()), ("empty".into(), vec![])])
        .collect();
    want.sort();
    assert_eq!(ours(&rec), want, "metadata: as put, in key order");
    c.commit(
        &*store,
        vec![
            put_meta(&k("a"), b"replaced"),
            delete_meta(&k("ab")),
            delete_meta(&k("never-stored")),
        ],
    )
    .await;
    let (store, rec) = c.restart(backend, store);
    want.retain(|(key, _)| key != "ab");
    if let Some(entry) = want.iter_mut().find(|(key, _)| key == "a") {
        entry.1 = b"replaced".to_vec();
    }
    assert_eq!(ours(&rec), want, "metadata: after replace and delete");
    c.commit(
        &*store,
        want.iter().map(|(key, _)| delete_meta(&k(key))).collect(),
    )
    .await;
    let (_store, rec) = c.restart(backend, store);
    assert_eq!(ours(&rec), [], "metadata: all deleted");
}

/// A dropped queue vanishes with its messages at once; ops naming it afterwards, in the same
/// commit or later, are ignored; its id is never handed out again.
pub async fn drop_queue(backend: &mut dyn Backend) {
    let c = Check("drop_queue");
    let (store, rec) = c.start(backend);
    let (q, keep, brief, top) = (
        rec.next_queue_id,
        rec.next_queue_id + 1,
        rec.next_queue_id + 2,
        rec.next_queue_id + 3,
    );
    let mut ops = vec![
        put_queue(q, "conformance/drop"),
        put_queue(keep, "conformance/keep"),
    ];
    ops.extend((1..=50).map(|s| put(q, s)));
    ops.push(put_record(q, 51, record(vec![0u8; 200 * 1024])));
    ops.extend([deliveries(q, 3, 2), put(keep, 1)]);
    c.commit(&*store, ops).await;
    let dropping = store.commit(vec![
        Op::DropQueue { id: q },
        put(q, 52),
        deliveries(q, 4, 1),
        delete(q, 5, false),
        put(keep, 2),
    ]);
    assert!(
        c.read(&*store, q, 0, 100).await.is_empty(),
        "drop_queue: read after drop"
    );
    c.settle(dropping).await;
    c.commit(&*store, vec![put(q, 53), delete(q, 6, false)])
        .await;
    assert!(
        c.read(&*store, q, 0, 100).await.is_empty(),
        "drop_queue: read later"
    );
    // Created and dropped in one commit.
    c.commit(
        &*store,
        vec![
            put_queue(brief, "conformance/brief"),
            put(brief, 1),
            Op::DropQueue { id: brief },
        ],
    )
    .await;
    c.commit(&*store, vec![put_queue(top, "conformance/top")])
        .await;
    c.commit(&*store, vec![Op::DropQueue { id: top }]).await;
    let (store, rec) = c.restart(backend, store);
    for id in [q, brief, top] {
        c.absent(&rec, id);
    }
    assert!(
        rec.next_queue_id > top,
        "drop_queue: next_queue_id {} reuses {top}",
        rec.next_queue_id
    );
    let kept = c.queue(&rec, keep);
    assert_eq!(seqs(&kept.head), [1, 2], "drop_queue: the other queue");
    let bytes = (numbered(1).size() + numbered(2).size()) as u64;
    assert_eq!(
        (kept.messages, kept.bytes),
        (2, bytes),
        "drop_queue: its totals"
    );
    let next = rec.next_queue_id;
    c.commit(&*store, vec![Op::DropQueue { id: keep }]).await;
    let (_store, rec) = c.restart(backend, store);
    c.absent(&rec, keep);
    assert!(
        rec.next_queue_id >= next,
        "drop_queue: next_queue_id went down"
    );
}

/// Message ops on ids that were never created are ignored, and create nothing.
pub async fn unknown_queues(backend: &mut dyn Backend) {
    let c = Check("unknown_queues");
    let (store, rec) = c.start(backend);
    let base = rec.next_queue_id;
    let (u, v) = (base + 5, base);
    c.commit(
        &*store,
        vec![put(u, 1), deliveries(u, 1, 3), delete(u, 1, true)],
    )
    .await;
    assert!(
        c.read(&*store, u, 0, 10).await.is_empty(),
        "unknown_queues: read"
    );
    // Applied in op order: a put before its queue's PutQueue is lost.
    c.commit(
        &*store,
        vec![put(v, 1), put_queue(v, "conformance/unknown"), put(v, 2)],
    )
    .await;
    let (store, rec) = c.restart(backend, store);
    c.absent(&rec, u);
    assert_eq!(
        rec.next_queue_id,
        v + 1,
        "unknown_queues: message ops created an id"
    );
    let got = c.queue(&rec, v);
    assert_eq!(
        (seqs(&got.head), got.messages),
        (vec![2], 1),
        "unknown_queues: put before"
    );
    c.commit(&*store, vec![Op::DropQueue { id: v }]).await;
}

fn patterned(len: usize, salt: u8) -> Bytes {
    (0..len)
        .map(|i| {
            if i % 3 == 0 {
                0
            } else {
                (i % 251) as u8 ^ salt
            }
        })
        .collect()
}

/// Bodies of up to 1 MiB, NUL bytes included, come back whole from reads and recovery.
pub async fn large_bodies(backend: &mut dyn Backend) {
    let c = Check("large_bodies");
    let (store, rec) = c.start(backend);
    let q = rec.next_queue_id;
    let sizes = [10, 64 * 1024, 64 * 1024 + 1, 256 * 1024, 1024 * 1024];
    let records: Vec<Arc<MessageRecord>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| record(patterned(n, i as u8)))
        .collect();
    let mut ops = vec![put_queue(q, "conformance/large")];
    ops.extend(
        records
            .iter()
            .enumerate()
            .map(|(i, r)| put_record(q, i as u64 + 1, r.clone())),
    );
    c.commit(&*store, ops).await;
    let same = |got: &[StoredMessage], want: &[usize], what: &str| {
        let got: Vec<(u64, &Bytes)> = got.iter().map(|m| (m.seq, &m.record.body)).collect();
        let want: Vec<(u64, &Bytes)> = want
            .iter()
            .map(|&i| (i as u64 + 1, &records[i].body))
            .collect();
        assert!(got == want, "large_bodies: {what} differ (sizes {sizes:?})");
    };
    same(
        &c.read(&*store, q, 0, 10).await,
        &[0, 1, 2, 3, 4],
        "bodies read",
    );
    let (store, rec) = c.restart(backend, store);
    same(&c.queue(&rec, q).head, &[0, 1, 2, 3, 4], "bodies recovered");
    let big = records[3].size() as u64;
    c.commit(
        &*store,
        vec![Op::Delete {
            queue: q,
            seq: 4,
            bytes: big,
            counted: false,
        }],
    )
    .await;
    let (store, rec) = c.restart(backend, store);
    let got = c.queue(&rec, q);
    same(&got.head, &[0, 1, 2, 4], "bodies left after a delete");
    let bytes: u64 = [0, 1, 2, 4].map(|i| records[i].size() as u64).iter().sum();
    assert_eq!(got.bytes, bytes, "large_bodies: bytes");
    same(
        &c.read(&*store, q, 3, 10).await,
        &[4],
        "bodies read after restart",
    );
    c.commit(&*store, vec![Op::DropQueue { id: q }]).await;
}

/// Headers with separators, escapes and non-ASCII text, duplicates in order, and timestamps
/// come back exactly.
pub async fn headers_and_expiry(backend: &mut dyn Backend) {
    let c = Check("headers_and_expiry");
    let (store, rec) = c.start(backend);
    let q = rec.next_queue_id;
    let headers: Vec<(String, String)> = [
        ("a:b", "c\nd"),
        ("", ""),
        ("dup", "1"),
        ("dup", "2"),
        ("ünï", "\\r\\n:\\c"),
        ("nul", "x\0y"),
        ("sp ace", " lead and trail "),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let records = [
        MessageRecord {
            headers: headers.clone(),
            body: Bytes::from_static(b"b\0dy"),
            enqueued_at_ms: 7,
            expires_at_ms: Some(9),
        },
        MessageRecord {
            headers: vec![],
            body: Bytes::new(),
            enqueued_at_ms: 0,
            expires_at_ms: None,
        },
        MessageRecord {
            headers,
            body: Bytes::from_static(b"x"),
            enqueued_at_ms: u64::MAX / 2,
            expires_at_ms: Some(u64::MAX / 2 + 1),
        },
    ]
    .map(Arc::new);
    let mut ops = vec![put_queue(q, "conformance/headers")];
    ops.extend(
        records
            .iter()
            .enumerate()
            .map(|(i, r)| put_record(q, i as u64 + 1, r.clone())),
    );
    c.commit(&*store, ops).await;
    let check = |got: &[StoredMessage], what: &str| {
        let got: Vec<&MessageRecord> = got.iter().map(|m| &*m.record).collect();
        let want: Vec<&MessageRecord> = records.iter().map(|r| &**r).collect();
        assert_eq!(got, want, "headers_and_expiry: {what}");
    };
    check(&c.read(&*store, q, 0, 10).await, "read");
    let (store, rec) = c.restart(backend, store);
    check(&c.queue(&rec, q).head, "recovered");
    c.commit(&*store, vec![Op::DropQueue { id: q }]).await;
}

/// `flush` resolves after every commit submitted before it, and they are all kept.
pub async fn flush(backend: &mut dyn Backend) {
    let c = Check("flush");
    let (store, rec) = c.start(backend);
    let q = rec.next_queue_id;
    c.settle(store.flush()).await;
    let mut tickets = vec![store.commit(vec![put_queue(q, "conformance/flush")])];
    tickets.extend((1..=20).map(|s| store.commit(vec![put(q, s)])));
    c.settle(store.flush()).await;
    for (i, t) in tickets.iter().enumerate() {
        match t.outcome() {
            Some(Ok(())) => {}
            other => panic!("flush: commit {i} submitted before the flush is {other:?} after it"),
        }
    }
    let (store, rec) = c.restart(backend, store);
    assert_eq!(
        seqs(&c.queue(&rec, q).head),
        (1..=20).collect::<Vec<_>>(),
        "flush: kept"
    );
    c.commit(&*store, vec![Op::DropQueue { id: q }]).await;
}

/// 1,000 small commits from 8 tasks at once, half of them awaited one by one, all kept.
pub async fn concurrent_commits(backend: &mut dyn Backend) {
    const TASKS: u64 = 8;
    const EACH: u64 = 125;
    let c = Check("concurrent_commits");
    let (store, rec) = c.start(backend);
    let base = rec.next_queue_id;
    let key = |t: u64| format!("conformance/concurrent/{base}/{t}");
    c.commit(
        &*store,
        (0..TASKS)
            .map(|t| put_queue(base + t, "conformance/concurrent"))
            .collect(),
    )
    .await;
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let store = store.clone();
        let key = key(t);
        tasks.spawn(async move {
            let mut pending = Vec::new();
            for s in 1..=EACH {
                let mut ops = vec![put(base + t, s)];
                if s % 25 == 0 {
                    ops.push(put_meta(&key, &s.to_be_bytes()));
                }
                let ticket = store.commit(ops);
                if t % 2 == 0 {
                    c.settle(ticket).await;
                } else {
                    pending.push(ticket);
                    tokio::task::yield_now().await;
                }
            }
            for ticket in pending {
                c.settle(ticket).await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done {
            panic!("concurrent_commits: a committing task failed: {e}");
        }
    }
    let (store, rec) = c.restart(backend, store);
    for t in 0..TASKS {
        let got = c.queue(&rec, base + t);
        assert_eq!(
            seqs(&got.head),
            (1..=EACH).collect::<Vec<_>>(),
            "concurrent_commits: queue {t}"
        );
        assert_eq!(
            meta(&rec, &key(t)).map(|v| v.to_vec()),
            Some(EACH.to_be_bytes().to_vec())
        );
    }
    let mut cleanup: Vec<Op> = (0..TASKS).map(|t| Op::DropQueue { id: base + t }).collect();
    cleanup.extend((0..TASKS).map(|t| delete_meta(&key(t))));
    c.commit(&*store, cleanup).await;
}

/// The two halves of a crash test: a child process runs [`crash::write`] on a fresh store and is
/// killed (`abort`) right after; the parent opens the store again and runs [`crash::check`].
pub mod crash {
    use super::*;

    /// Commits awaited one by one before the unawaited ones.
    const AWAITED: u64 = 50;
    /// Commits submitted without waiting; the child dies with most of them in flight.
    const UNAWAITED: u64 = 200;
    /// The one unawaited commit whose ticket the child does await, before submitting the rest:
    /// it and everything submitted before it must survive.
    const DURABLE: u64 = UNAWAITED / 4;
    const GROUPS: u64 = UNAWAITED / 10;
    const BASE_KEY: &str = "conformance/crash/base";

    struct Ids(QueueId);

    impl Ids {
        fn a(&self) -> QueueId {
            self.0
        }
        fn b(&self) -> QueueId {
            self.0 + 1
        }
        fn c(&self) -> QueueId {
            self.0 + 2
        }
        /// Queues the unawaited commits drop.
        fn doomed(&self, group: u64) -> QueueId {
            self.0 + 3 + group
        }
        /// Queues the unawaited commits create.
        fn born(&self, group: u64) -> QueueId {
            self.0 + 3 + GROUPS + group
        }
    }

    fn key(kind: &str, i: u64) -> String {
        format!("conformance/crash/{kind}/{i:05}")
    }

    /// Unawaited commit `i`: five queues and metadata, all or nothing.
    fn unawaited(ids: &Ids, i: u64) -> Vec<Op> {
        let mut ops = vec![
            put(ids.a(), 1000 + i),
            deliveries(ids.a(), 1000 + i, i as u32 + 1),
            put(ids.b(), i + 1),
            delete(ids.c(), i + 1, false),
            put_meta(&key("unawaited", i), b"1"),
        ];
        match i % 10 {
            0 => ops.extend([
                put_queue(ids.born(i / 10), "crash/born"),
                put(ids.born(i / 10), 1),
            ]),
            5 => ops.push(Op::DropQueue {
                id: ids.doomed(i / 10),
            }),
            _ => {}
        }
        ops
    }

    /// Child side: commits a known set (awaiting each ticket), then submits more multi-queue
    /// commits without awaiting them (but one, midway), and returns once about half of those
    /// after it are durable, by the store's backlog; the caller then aborts the process without
    /// dropping the store. Give the store small rounds (or slow ones) to die mid-round.
    pub async fn write(store: &dyn Store) {
        let c = Check("crash::write");
        let rec = store
            .recover(0)
            .unwrap_or_else(|e| panic!("crash::write: recover: {e}"));
        let ids = Ids(rec.next_queue_id);
        let mut setup = vec![
            put_queue(ids.a(), "crash/a"),
            put_queue(ids.b(), "crash/b"),
            put_queue(ids.c(), "crash/c"),
            put_meta(BASE_KEY, &ids.0.to_be_bytes()),
        ];
        for g in 0..GROUPS {
            setup.extend([
                put_queue(ids.doomed(g), "crash/doomed"),
                put(ids.doomed(g), 1),
            ]);
        }
        setup.extend((1..=UNAWAITED).map(|s| put(ids.c(), s)));
        c.commit(store, setup).await;
        for i in 0..AWAITED {
            let ops = vec![
                put(ids.a(), i + 1),
                deliveries(ids.a(), i + 1, i as u32 + 1),
                put_meta(&key("awaited", i), b"1"),
            ];
            c.commit(store, ops).await;
        }
        for i in 0..UNAWAITED {
            let ticket = store.commit(unawaited(&ids, i));
            // Its predecessors are still in flight when it resolves; its successors are when
            // the caller aborts.
            if i == DURABLE {
                c.settle(ticket).await;
            }
        }
        // Return (to be killed) once about half of the rest is durable, so a store with several
        // rounds in flight dies in the middle of them.
        let pending = store.backlog().bytes();
        c.wait("the backlog", store.backlog().room(pending / 2 + 1))
            .await;
    }

    /// Parent side, after the child was killed: everything awaited is there, and each unawaited
    /// commit is there whole or not at all.
    pub async fn check(store: &dyn Store) {
        let c = Check("crash::check");
        let rec = store
            .recover(usize::MAX)
            .unwrap_or_else(|e| panic!("crash::check: recover: {e}"));
        c.shape(&rec, usize::MAX);
        let base = meta(&rec, BASE_KEY)
            .and_then(|v| v[..].try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or_else(|| panic!("crash::check: the first awaited commit is lost"));
        let ids = Ids(base);
        let (a, b, qc) = (
            c.queue(&rec, ids.a()),
            c.queue(&rec, ids.b()),
            c.queue(&rec, ids.c()),
        );
        let find = |q: &RecoveredQueue, seq: u64| q.head.iter().find(|m| m.seq == seq).cloned();
        for i in 0..AWAITED {
            let m = find(a, i + 1)
                .unwrap_or_else(|| panic!("crash::check: awaited message {} lost", i + 1));
            assert_eq!(
                m.deliveries,
                i as u32 + 1,
                "crash::check: awaited count of {}",
                i + 1
            );
            assert!(
                meta(&rec, &key("awaited", i)).is_some(),
                "crash::check: awaited meta {i} lost"
            );
        }
        let mut survived = 0;
        for i in 0..UNAWAITED {
            let applied = find(b, i + 1).is_some();
            let what =
                |part: &str| format!("crash::check: unawaited commit {i} is half there: {part}");
            assert!(
                applied || i > DURABLE,
                "crash::check: commit {i}, submitted before an awaited one, is lost"
            );
            assert_eq!(
                find(a, 1000 + i).map(|m| m.deliveries),
                applied.then_some(i as u32 + 1),
                "{}",
                what("put with count")
            );
            assert_eq!(find(qc, i + 1).is_none(), applied, "{}", what("delete"));
            assert_eq!(
                meta(&rec, &key("unawaited", i)).is_some(),
                applied,
                "{}",
                what("metadata")
            );
            let exists = |id| rec.queues.iter().any(|q| q.id == id);
            match i % 10 {
                0 => assert_eq!(
                    exists(ids.born(i / 10)),
                    applied,
                    "{}",
                    what("created queue")
                ),
                5 => assert_eq!(
                    !exists(ids.doomed(i / 10)),
                    applied,
                    "{}",
                    what("dropped queue")
                ),
                _ => {}
            }
            survived += u64::from(applied);
        }
        println!("crash::check: {survived} of {UNAWAITED} unawaited commits survived");
        // The store takes writes again.
        c.commit(store, vec![put(ids.b(), 10_000)]).await;
        assert_eq!(
            seqs(&c.read(store, ids.b(), 9_999, 1).await),
            [10_000],
            "crash::check: a write after"
        );
    }
}
