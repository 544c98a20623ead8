//! What outlives a restart besides messages, and dropping queues: recovery, metadata, drops.

use super::*;

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
