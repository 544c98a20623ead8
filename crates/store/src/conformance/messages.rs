//! Messages: ordering, atomic commits across queues, totals and delivery counts, sequence
//! numbers.

use super::*;

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
