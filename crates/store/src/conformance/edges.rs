//! The edges: ops on queues that do not exist, large bodies, odd headers, flush, concurrency.

use super::*;

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
