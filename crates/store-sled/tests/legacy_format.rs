//! A data directory written before queue ids came from the broker (queue records holding the bare
//! name, totals without `next_seq`, no queue id mark) still opens, and is rewritten in the current
//! format as it changes. The old records are built here byte by byte, as the old code wrote them.

mod common;

use bytes::Bytes;
use common::*;
use stampede_store::{MessageRecord, Op, Store};
use stampede_store_sled::{SledOptions, SledStore};

/// The message record format, unchanged since: version 1, enqueue time, expiry (0 = none),
/// headers, then an inline body.
fn old_record(headers: &[(&str, &str)], body: &[u8], enqueued: u64, expires: u64) -> Vec<u8> {
    let mut v = vec![1u8];
    v.extend_from_slice(&enqueued.to_be_bytes());
    v.extend_from_slice(&expires.to_be_bytes());
    v.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    for (k, val) in headers {
        for s in [k, val] {
            v.extend_from_slice(&(s.len() as u32).to_be_bytes());
            v.extend_from_slice(s.as_bytes());
        }
    }
    v.push(0);
    v.extend_from_slice(&(body.len() as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn old_totals(messages: u64, bytes: u64) -> Vec<u8> {
    let mut v = messages.to_be_bytes().to_vec();
    v.extend_from_slice(&bytes.to_be_bytes());
    v
}

fn size(headers: &[(&str, &str)], body: &[u8]) -> u64 {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    MessageRecord::size_of(&headers, body.len()) as u64
}

#[tokio::test]
async fn an_old_format_directory_recovers_and_is_upgraded_as_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let h = [("persistent", "true"), ("a:b", "c\nd")];
    let bytes = size(&h, b"five") + size(&h, b"six\0");
    with_raw_tree(dir.path(), |tree| {
        tree.insert(queue_key(b'Q', 3), &b"legacy/orders"[..])
            .unwrap();
        tree.insert(queue_key(b'C', 3), old_totals(2, bytes))
            .unwrap();
        tree.insert(message_key(b'M', 3, 5), old_record(&h, b"five", 10, 0))
            .unwrap();
        tree.insert(message_key(b'M', 3, 6), old_record(&h, b"six\0", 11, 99))
            .unwrap();
        tree.insert(message_key(b'D', 3, 6), &2u32.to_be_bytes()[..])
            .unwrap();
        tree.insert(queue_key(b'Q', 7), &b"legacy/drained"[..])
            .unwrap();
        tree.insert(queue_key(b'C', 7), old_totals(0, 0)).unwrap();
        tree.insert(&b"R"[..], &12u64.to_be_bytes()[..]).unwrap();
    });
    {
        let s = SledStore::open(dir.path(), SledOptions::default()).unwrap();
        let rec = s.recover(10).unwrap();
        assert_eq!(rec.next_queue_id, 8);
        assert!(rec.meta.is_empty());
        let ids: Vec<u64> = rec.queues.iter().map(|q| q.id).collect();
        assert_eq!(ids, [3, 7]);
        let (q, drained) = (&rec.queues[0], &rec.queues[1]);
        assert_eq!((&*q.name, q.attrs.is_empty()), ("legacy/orders", true));
        assert_eq!((q.messages, q.bytes, q.next_seq), (2, bytes, 7));
        let got: Vec<_> = q
            .head
            .iter()
            .map(|m| {
                (
                    m.seq,
                    m.record.body.clone(),
                    m.deliveries,
                    m.record.expires_at_ms,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (5, Bytes::from_static(b"five"), 0, None),
                (6, Bytes::from_static(b"six\0"), 2, Some(99)),
            ]
        );
        assert_eq!(q.head[1].record.header("a:b"), Some("c\nd"));
        assert_eq!((&*drained.name, drained.next_seq), ("legacy/drained", 1));
        let r = rec_of("new");
        s.commit(vec![
            put(3, 7, &r),
            Op::PutQueue {
                id: 7,
                name: "legacy/drained".into(),
                attrs: Bytes::from_static(b"attrs"),
                next_seq: 1,
            },
        ])
        .await
        .unwrap();
        assert_eq!(seqs(&read(&s, 3, 0, 10).await), [5, 6, 7]);
    }
    // The touched queues now hold current records; draining one keeps its next_seq.
    {
        let s = SledStore::open(dir.path(), SledOptions::default()).unwrap();
        let rec = s.recover(10).unwrap();
        assert_eq!((rec.queues[0].messages, rec.queues[0].next_seq), (3, 8));
        assert_eq!(&rec.queues[1].attrs[..], b"attrs");
        let ops = vec![
            Op::Delete {
                queue: 3,
                seq: 5,
                bytes: size(&h, b"five"),
                counted: false,
            },
            Op::Delete {
                queue: 3,
                seq: 6,
                bytes: size(&h, b"six\0"),
                counted: true,
            },
            del(3, 7, &rec_of("new")),
        ];
        s.commit(ops).await.unwrap();
    }
    let s = SledStore::open(dir.path(), SledOptions::default()).unwrap();
    let rec = s.recover(10).unwrap();
    let q = &rec.queues[0];
    assert_eq!((q.messages, q.bytes, q.next_seq), (0, 0, 8));
    assert_eq!(rec.next_queue_id, 8);
}

fn rec_of(body: &'static str) -> std::sync::Arc<MessageRecord> {
    rec(Bytes::from_static(body.as_bytes()), "v")
}
