//! The sled store against a real data directory, beyond the conformance suite: disk use under
//! churn, damaged or unusable directories, the failure rule, the lock, and round reports.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use stampede_store::{Store, StoreError, StoreObserver};
use stampede_store_sled::{SledOptions, SledStore};

#[tokio::test]
async fn headers_and_expiry_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SledStore::open(dir.path(), SledOptions::default()).unwrap();
        let r = rec(Bytes::from_static(b"b\0dy"), "a:b\nc");
        s.commit(vec![put_queue(1, "q"), put(1, 1, &r)])
            .await
            .unwrap();
    }
    let s = SledStore::open(dir.path(), SledOptions::default()).unwrap();
    let got = s.recover(10).unwrap();
    let r = &got.queues[0].head[0].record;
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
    let r = rec(vec![7u8; 256 * 1024], "v");
    let s = SledStore::open(dir.path(), options).unwrap();
    s.commit(vec![put_queue(1, "big")]).await.unwrap();
    // Depth 100, then 1,000 enqueue/ack pairs: 256 MiB written, 25 MiB live.
    for seq in 0..100 {
        s.commit(vec![put(1, seq, &r)]).await.unwrap();
    }
    for seq in 100..1100 {
        s.commit(vec![put(1, seq, &r), del(1, seq - 100, &r)])
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
    let q = &got.queues[0];
    assert_eq!((q.head.len(), q.head[0].seq, q.messages), (100, 1000, 100));
    assert!(q.head.iter().all(|m| m.record.body == r.body));
    s.commit((1000..1100).map(|seq| del(1, seq, &r)).collect())
        .await
        .unwrap();
    // Emptied segments are deleted right after the round's commits complete; the next round
    // comes after that.
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
    assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
    assert!(err.io_kind().is_some(), "the io::Error is kept: {err:?}");
}

#[test]
fn a_directory_in_use_is_reported_as_locked() {
    let dir = tempfile::tempdir().unwrap();
    let _first = SledStore::open(dir.path(), SledOptions::default()).unwrap();
    let err = SledStore::open(dir.path(), SledOptions::default())
        .err()
        .expect("must fail");
    assert!(
        matches!(&err, StoreError::Locked(d) if d == &dir.path().display().to_string()),
        "{err:?}"
    );
}

#[tokio::test]
async fn corrupt_record_is_reported_not_ignored() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SledStore::open(dir.path(), SledOptions::default()).unwrap();
        s.commit(vec![put_queue(1, "q"), put(1, 1, &rec("ok", "v"))])
            .await
            .unwrap();
    }
    with_raw_tree(dir.path(), |tree| {
        tree.insert(message_key(b'M', 1, 1), &b"\x09garbage"[..])
            .unwrap()
    });
    let s = SledStore::open(dir.path(), SledOptions::default()).unwrap();
    let err = s.recover(10).expect_err("must fail");
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
}

#[tokio::test]
async fn a_truncated_database_is_refused_instead_of_starting_short() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SledStore::open(dir.path(), SledOptions::default()).unwrap();
        s.commit(vec![put_queue(1, "q")]).await.unwrap();
        for n in 1..=20 {
            s.commit(vec![put(1, n, &rec("m", "v"))]).await.unwrap();
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
        matches!(&err, StoreError::Corrupt(m) if m.contains("round")),
        "{err:?}"
    );
}

/// A failed round fails its commits with the cause; every later commit fails at once with
/// `Failed` naming it, and dropping the store does not hang on sled.
#[tokio::test]
async fn after_a_failed_round_every_commit_fails_with_the_first_error() {
    let dir = tempfile::tempdir().unwrap();
    let options = SledOptions {
        inline_limit: 16,
        ..SledOptions::default()
    };
    let s = SledStore::open(dir.path(), options).unwrap();
    s.commit(vec![put_queue(1, "q"), put(1, 1, &rec("small", "v"))])
        .await
        .unwrap();
    assert_eq!(s.failure(), None);
    // The next large body needs a new segment file, in a directory that is gone.
    std::fs::remove_dir_all(dir.path().join("segments")).unwrap();
    let big = rec(vec![1u8; 1024], "v");
    let err = s
        .commit(vec![put(1, 2, &big)])
        .await
        .expect_err("must fail");
    assert_eq!(err.io_kind(), Some(std::io::ErrorKind::NotFound), "{err:?}");
    let later = s
        .commit(vec![put(1, 3, &rec("small", "v"))])
        .await
        .expect_err("refused");
    assert!(
        matches!(&later, StoreError::Failed(first) if first.io_kind() == err.io_kind()),
        "{later:?}"
    );
    assert!(
        s.flush().await.is_err(),
        "a flush after the failure fails too"
    );
    assert!(s.failure().is_some_and(|f| f.contains("segment")));
    assert_eq!(s.backlog().bytes(), 0, "failed commits leave the backlog");
    assert_eq!(seqs(&read(&s, 1, 0, 10).await), [1], "reads still work");
    drop(s);
}

#[derive(Default)]
struct Rounds {
    commits: AtomicUsize,
    ops: AtomicUsize,
}

impl StoreObserver for Rounds {
    fn round(&self, commits: usize, ops: usize, _flush: Duration) {
        self.commits.fetch_add(commits, Ordering::Relaxed);
        self.ops.fetch_add(ops, Ordering::Relaxed);
    }
}

#[tokio::test]
async fn the_observer_is_told_of_every_round_with_ops() {
    let dir = tempfile::tempdir().unwrap();
    let rounds = Arc::new(Rounds::default());
    let observer: Arc<dyn StoreObserver> = rounds.clone();
    let s = SledStore::open_observed(dir.path(), SledOptions::default(), Some(observer)).unwrap();
    let r = rec("m", "v");
    s.commit(vec![put_queue(1, "q"), put(1, 1, &r)])
        .await
        .unwrap();
    s.commit(vec![put(1, 2, &r)]).await.unwrap();
    s.flush().await.unwrap();
    assert_eq!(
        rounds.commits.load(Ordering::Relaxed),
        2,
        "flushes are not reported"
    );
    assert_eq!(rounds.ops.load(Ordering::Relaxed), 3);
}

/// sled lets go of its lock only after its own background jobs end; a dropped store waits for
/// that, so the directory opens again at once, however busy sled was just before.
#[tokio::test]
async fn a_dropped_store_can_be_opened_again_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // Enough churn that sled frees (and truncates, in the background) its own log segments.
    let r = rec(vec![5u8; 20_000], "v");
    for round in 0..40u64 {
        let s = SledStore::open(dir.path(), SledOptions::default())
            .unwrap_or_else(|e| panic!("reopen {round}: {e}"));
        let base = round * 200;
        let mut ops = vec![put_queue(1, "q")];
        ops.extend((base..base + 200).map(|seq| put(1, seq, &r)));
        s.commit(ops).await.unwrap();
        if round > 0 {
            let old = base - 200;
            s.commit((old..base).map(|seq| del(1, seq, &r)).collect())
                .await
                .unwrap();
        }
    }
}
