//! Dropping a queue: its data leaves the disk (keys and segment files) after the drop, a restart
//! in the middle of that finishes it without ever showing the dropped messages, and an id created
//! again while its old data is still there starts empty.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use stampede_store::{MessageRecord, Op, Store};
use stampede_store_sled::{SledOptions, SledStore};

const DOOMED: u64 = 1;
const KEPT: u64 = 2;
const MESSAGES: u64 = 10_000;
const LARGE: u64 = 20;

fn options(sweep_keys: usize) -> SledOptions {
    SledOptions {
        inline_limit: 1024,
        sweep_keys,
        ..SledOptions::default()
    }
}

fn small() -> Arc<MessageRecord> {
    rec("small body", "v")
}

fn large() -> Arc<MessageRecord> {
    rec(vec![3u8; 4096], "v")
}

/// Queue DOOMED with 10,000 small messages, some delivery counts and 20 bodies in segments, and
/// queue KEPT with one message; then DOOMED is dropped.
async fn fill_and_drop(s: &SledStore) {
    s.commit(vec![put_queue(DOOMED, "doomed"), put_queue(KEPT, "kept")])
        .await
        .unwrap();
    for chunk in 0..MESSAGES / 1000 {
        let ops = (chunk * 1000 + 1..=(chunk + 1) * 1000)
            .flat_map(|seq| {
                let count = (seq % 10 == 0).then_some(Op::SetDeliveries {
                    queue: DOOMED,
                    seq,
                    count: 1,
                });
                std::iter::once(put(DOOMED, seq, &small())).chain(count)
            })
            .collect();
        s.commit(ops).await.unwrap();
    }
    let mut ops: Vec<Op> = (1..=LARGE)
        .map(|n| put(DOOMED, MESSAGES + n, &large()))
        .collect();
    ops.push(put(KEPT, 1, &small()));
    s.commit(ops).await.unwrap();
    assert_eq!(
        s.segment_usage().unwrap().0,
        1,
        "the large bodies are in a segment"
    );
    s.commit(vec![Op::DropQueue { id: DOOMED }]).await.unwrap();
    assert!(read(s, DOOMED, 0, 100).await.is_empty());
}

/// Flush rounds (each carries a sweep step) until the store reports no sweep left; bounded.
async fn sweep_to_the_end(s: &SledStore) {
    for _ in 0..1000 {
        if s.queues_being_swept() == 0 {
            s.flush().await.unwrap();
            return;
        }
        s.flush().await.unwrap();
    }
    panic!("the sweep did not finish within 1000 rounds");
}

/// On disk, once closed: nothing of DOOMED is left, KEPT is whole.
fn assert_swept(dir: &Path) {
    for tag in [b'M', b'D', b'S'] {
        assert_eq!(
            count_keys(dir, &queue_key(tag, DOOMED)),
            0,
            "{} keys of the dropped queue left",
            tag as char
        );
    }
    for tag in [b'Q', b'C', b'X'] {
        assert_eq!(
            count_keys(dir, &queue_key(tag, DOOMED)),
            0,
            "{}",
            tag as char
        );
    }
    assert_eq!(count_keys(dir, &queue_key(b'M', KEPT)), 1);
}

fn assert_only_kept(s: &SledStore, what: &str) {
    let rec = s.recover(usize::MAX).unwrap();
    let ids: Vec<u64> = rec.queues.iter().map(|q| q.id).collect();
    assert_eq!(ids, [KEPT], "{what}: the dropped queue is gone");
    assert_eq!(rec.next_queue_id, KEPT + 1, "{what}: ids stay used");
    assert_eq!(seqs(&rec.queues[0].head), [1], "{what}: the other queue");
}

#[tokio::test]
async fn a_dropped_queue_is_swept_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SledStore::open(dir.path(), options(256)).unwrap();
        fill_and_drop(&s).await;
        sweep_to_the_end(&s).await;
        assert_eq!(s.segment_usage().unwrap(), (0, 0), "segment files left");
        assert!(read(&s, DOOMED, 0, 100).await.is_empty());
    }
    assert_swept(dir.path());
    let s = SledStore::open(dir.path(), options(256)).unwrap();
    assert_eq!(s.queues_being_swept(), 0);
    assert_only_kept(&s, "after the sweep");
}

#[tokio::test]
async fn a_restart_mid_sweep_finishes_it_and_never_shows_the_dropped_data() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SledStore::open(dir.path(), options(0)).unwrap();
        fill_and_drop(&s).await;
        s.flush().await.unwrap();
        assert_eq!(s.queues_being_swept(), 1, "sweeping is off");
    }
    // Dropped in the tree (queue record gone, tombstone there), data still on disk.
    assert_eq!(count_keys(dir.path(), &queue_key(b'Q', DOOMED)), 0);
    assert_eq!(count_keys(dir.path(), &queue_key(b'X', DOOMED)), 1);
    let left = count_keys(dir.path(), &queue_key(b'M', DOOMED));
    assert_eq!(left as u64, MESSAGES + LARGE);
    {
        let s = SledStore::open(dir.path(), options(0)).unwrap();
        assert_only_kept(&s, "unswept");
        assert!(read(&s, DOOMED, 0, 100).await.is_empty());
        assert_eq!(
            s.segment_usage().unwrap().0,
            1,
            "still referenced by the dropped queue"
        );
    }
    // A few slow sweep steps, then a restart with part of the data still there.
    {
        let s = SledStore::open(dir.path(), options(64)).unwrap();
        assert_only_kept(&s, "restarted mid-sweep");
        for _ in 0..3 {
            s.flush().await.unwrap();
            assert!(read(&s, DOOMED, 0, 100).await.is_empty());
        }
    }
    let part = count_keys(dir.path(), &queue_key(b'M', DOOMED));
    assert!(
        part < left,
        "the sweep made progress: {part} of {left} left"
    );
    let s = SledStore::open(dir.path(), options(256)).unwrap();
    assert_only_kept(&s, "restarted again");
    sweep_to_the_end(&s).await;
    assert_eq!(s.segment_usage().unwrap(), (0, 0), "segment files left");
    drop(s);
    assert_swept(dir.path());
}

#[tokio::test]
async fn an_id_created_again_before_its_sweep_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    let r = small();
    {
        let s = SledStore::open(dir.path(), options(0)).unwrap();
        let mut ops = vec![put_queue(DOOMED, "first")];
        ops.extend((1..=100).map(|seq| put(DOOMED, seq, &r)));
        ops.push(put(DOOMED, 101, &large()));
        s.commit(ops).await.unwrap();
        s.commit(vec![Op::DropQueue { id: DOOMED }]).await.unwrap();
        // Created, filled, dropped and created again within one commit, too.
        s.commit(vec![
            put_queue(KEPT, "brief"),
            put(KEPT, 1, &r),
            put(KEPT, 2, &large()),
            Op::DropQueue { id: KEPT },
            put_queue(KEPT, "again"),
            put(KEPT, 3, &r),
        ])
        .await
        .unwrap();
        s.commit(vec![put_queue(DOOMED, "second"), put(DOOMED, 200, &r)])
            .await
            .unwrap();
        assert_eq!(seqs(&read(&s, DOOMED, 0, 1000).await), [200]);
        assert_eq!(s.queues_being_swept(), 0, "nothing left to sweep");
    }
    assert_eq!(count_keys(dir.path(), &queue_key(b'M', DOOMED)), 1);
    assert_eq!(count_keys(dir.path(), &queue_key(b'X', DOOMED)), 0);
    let s = SledStore::open(dir.path(), options(0)).unwrap();
    let rec = s.recover(usize::MAX).unwrap();
    let got: Vec<_> = rec
        .queues
        .iter()
        .map(|q| (q.id, q.name.to_string(), seqs(&q.head), q.messages))
        .collect();
    assert_eq!(
        got,
        [
            (DOOMED, "second".into(), vec![200], 1),
            (KEPT, "again".into(), vec![3], 1),
        ]
    );
    assert_eq!(rec.queues[0].bytes, r.size() as u64);
    assert_eq!(
        s.segment_usage().unwrap(),
        (0, 0),
        "the old bodies' segment is gone"
    );
}
