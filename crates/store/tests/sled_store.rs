//! The sled store against a real data directory: what a commit promises survives reopening, and
//! large bodies do not grow the disk under churn.

use std::sync::Arc;

use bytes::Bytes;
use stampede_store::{MessageRecord, Op, SledOptions, SledStore, Store};

fn rec(body: Bytes, header: &str) -> Arc<MessageRecord> {
    Arc::new(MessageRecord {
        headers: vec![("h".into(), header.into())],
        body,
        enqueued_at_ms: 7,
        expires_at_ms: Some(9),
    })
}

fn put(q: &str, seq: u64, body: &'static [u8]) -> Op {
    Op::Put {
        queue: Arc::from(q),
        seq,
        record: rec(Bytes::from_static(body), "v"),
    }
}

fn del(q: &str, seq: u64) -> Op {
    Op::Delete {
        queue: Arc::from(q),
        seq,
        bytes: 0,
        counted: true,
    }
}

type Summary = Vec<(String, Vec<(u64, Vec<u8>, u32)>)>;

fn summary(store: &SledStore) -> Summary {
    let mut got: Vec<_> = store
        .recover(usize::MAX)
        .unwrap()
        .into_iter()
        .map(|q| {
            let msgs = q
                .head
                .into_iter()
                .map(|m| (m.seq, m.record.body.to_vec(), m.deliveries))
                .collect();
            (q.name, msgs)
        })
        .collect();
    got.sort();
    got
}

#[tokio::test]
async fn committed_ops_survive_reopen_with_counts_and_order() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SledStore::open(dir.path(), SledOptions::default()).unwrap();
        assert!(s.recover(10).unwrap().is_empty());
        s.commit(vec![
            put("a", 1, b"one"),
            put("a", 2, b"two"),
            put("b", 1, b"x"),
        ])
        .await
        .unwrap();
        s.commit(vec![
            del("a", 1),
            Op::SetDeliveries {
                queue: Arc::from("a"),
                seq: 2,
                count: 3,
            },
            put("a", 3, b"three"),
        ])
        .await
        .unwrap();
    }
    let s = SledStore::open(dir.path(), SledOptions::default()).unwrap();
    assert_eq!(
        summary(&s),
        [
            (
                "a".into(),
                vec![(2, b"two".to_vec(), 3), (3, b"three".to_vec(), 0)]
            ),
            ("b".into(), vec![(1, b"x".to_vec(), 0)]),
        ]
    );
    let totals: Vec<_> = s
        .recover(1)
        .unwrap()
        .into_iter()
        .map(|q| (q.name, q.head.len(), q.messages, q.next_seq))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(totals, [("a".into(), 1, 2, 4), ("b".into(), 1, 1, 2)]);
}

#[tokio::test]
async fn read_sees_commits_submitted_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open(dir.path(), SledOptions::default()).unwrap();
    let ticket = s.commit((1..=5).map(|n| put("q", n, b"m")).collect());
    let (tx, rx) = std::sync::mpsc::channel();
    // Submitted before the commit's ticket is awaited: the read must still see all five.
    s.read(Arc::from("q"), 2, 2, Box::new(move |r| tx.send(r).unwrap()));
    ticket.await.unwrap();
    let got: Vec<u64> = rx.recv().unwrap().unwrap().iter().map(|m| m.seq).collect();
    assert_eq!(got, [3, 4]);
}

#[tokio::test]
async fn headers_and_expiry_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SledStore::open(dir.path(), SledOptions::default()).unwrap();
        s.commit(vec![Op::Put {
            queue: Arc::from("q"),
            seq: 1,
            record: rec(Bytes::from_static(b"b\0dy"), "a:b\nc"),
        }])
        .await
        .unwrap();
    }
    let s = SledStore::open(dir.path(), SledOptions::default()).unwrap();
    let got = s.recover(10).unwrap();
    let r = &got[0].head[0].record;
    assert_eq!(r.header("h"), Some("a:b\nc"));
    assert_eq!((r.enqueued_at_ms, r.expires_at_ms), (7, Some(9)));
    assert_eq!(&r.body[..], b"b\0dy");
}

#[tokio::test]
async fn large_bodies_live_in_segments_and_disk_stays_bounded_under_churn() {
    let dir = tempfile::tempdir().unwrap();
    let options = SledOptions {
        inline_limit: 1024,
        ..SledOptions::default()
    };
    let body = Bytes::from(vec![7u8; 256 * 1024]);
    let s = SledStore::open(dir.path(), options).unwrap();
    // Depth 100, then 1,000 enqueue/ack pairs: 256 MiB written, 25 MiB live.
    let q: Arc<str> = Arc::from("big");
    let putb = |seq| Op::Put {
        queue: q.clone(),
        seq,
        record: rec(body.clone(), "v"),
    };
    for seq in 0..100 {
        s.commit(vec![putb(seq)]).await.unwrap();
    }
    for seq in 100..1100 {
        s.commit(vec![
            putb(seq),
            Op::Delete {
                queue: q.clone(),
                seq: seq - 100,
                bytes: 0,
                counted: true,
            },
        ])
        .await
        .unwrap();
    }
    let (files, bytes) = s.segment_usage().unwrap();
    assert!(
        bytes <= 2 * 64 * 1024 * 1024 + 100 * 256 * 1024,
        "{files} segments, {bytes} bytes"
    );
    let sled_bytes = dir_size(&dir.path().join("sled"));
    assert!(
        sled_bytes < 64 * 1024 * 1024,
        "sled holds {sled_bytes} bytes: bodies leaked into it"
    );
    drop(s);
    let s = SledStore::open(dir.path(), options).unwrap();
    let got = s.recover(1000).unwrap();
    assert_eq!(got[0].head.len(), 100);
    assert_eq!(got[0].head[0].seq, 1000);
    assert!(got[0].head.iter().all(|m| m.record.body == body));
    let drain: Vec<Op> = (1000..1100)
        .map(|seq| Op::Delete {
            queue: q.clone(),
            seq,
            bytes: 0,
            counted: true,
        })
        .collect();
    s.commit(drain).await.unwrap();
    // Emptied segments are deleted right after the round's receipts; the next round follows that.
    s.flush().await.unwrap();
    assert_eq!(
        s.segment_usage().unwrap(),
        (0, 0),
        "an empty queue keeps no segment file"
    );
}

fn dir_size(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                dir_size(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

#[test]
fn a_data_dir_that_is_a_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = SledStore::open(&file, SledOptions::default())
        .err()
        .expect("must fail");
    assert!(matches!(err, stampede_store::StoreError::Io(_)), "{err:?}");
}

#[tokio::test]
async fn corrupt_record_is_reported_not_ignored() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SledStore::open(dir.path(), SledOptions::default()).unwrap();
        s.commit(vec![put("q", 1, b"ok")]).await.unwrap();
    }
    {
        let db = sled::open(dir.path().join("sled")).unwrap();
        let tree = db.open_tree("messages").unwrap();
        let key: Vec<u8> = tree.scan_prefix(b"M").next().unwrap().unwrap().0.to_vec();
        tree.insert(key, &b"\x09garbage"[..]).unwrap();
        db.flush().unwrap();
    }
    let s = SledStore::open(dir.path(), SledOptions::default()).unwrap();
    let err = s.recover(10).expect_err("must fail");
    assert!(
        matches!(err, stampede_store::StoreError::Corrupt(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_truncated_database_is_refused_instead_of_starting_short() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SledStore::open(dir.path(), SledOptions::default()).unwrap();
        for n in 1..=20 {
            s.commit(vec![put("q", n, b"m")]).await.unwrap();
        }
    }
    std::fs::File::options()
        .write(true)
        .open(dir.path().join("sled").join("db"))
        .unwrap()
        .set_len(0)
        .unwrap();
    let err = SledStore::open(dir.path(), SledOptions::default())
        .err()
        .expect("must refuse");
    assert!(
        matches!(&err, stampede_store::StoreError::Corrupt(m) if m.contains("round")),
        "{err:?}"
    );
}
