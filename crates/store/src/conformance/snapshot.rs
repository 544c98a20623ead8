//! Snapshots: a store hands out exactly what it holds, commits submitted just before included,
//! and a snapshot restored into an empty store of the same backend recovers as the original does.

use parking_lot::Mutex;

use super::*;
use crate::snapshot::{self, Writer};

/// A `Write` whose bytes the check reads back after the store has taken the writer.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Takes a snapshot of `store` on a blocking thread; returns the file's bytes.
async fn take(c: Check, store: &Arc<dyn Store>) -> (Vec<u8>, snapshot::Summary) {
    let out = Shared::default();
    let writer = Writer::new(out.clone()).expect("a writer over memory");
    let store = store.clone();
    let summary = c
        .wait(
            "a snapshot",
            tokio::task::spawn_blocking(move || store.snapshot(Box::new(writer))),
        )
        .await
        .expect("the snapshot thread")
        .unwrap_or_else(|e| panic!("{}: snapshot failed: {e}", c.0));
    let bytes = std::mem::take(&mut *out.0.lock());
    (bytes, summary)
}

/// Queues with messages, delivery counts, attributes and metadata, a dropped queue above them,
/// and a commit whose ticket is not awaited before the snapshot: all of it comes back, exactly.
pub async fn snapshots(backend: &mut dyn Backend) {
    let c = Check("snapshots");
    let (store, rec) = c.start(backend);
    let base = rec.next_queue_id;
    let key = format!("conformance/snapshot/{base}");
    let mut ops = vec![
        Op::PutQueue {
            id: base,
            name: Arc::from("conformance/snapshot/a"),
            attrs: Bytes::from_static(b"\0attrs\xff"),
            next_seq: 40,
        },
        put_queue(base + 1, "conformance/snapshot/b"),
        put_queue(base + 2, "conformance/snapshot/dropped"),
        put_meta(&key, b"kept"),
    ];
    ops.extend((40..45).map(|s| put(base, s)));
    ops.extend([deliveries(base, 41, 3), put(base + 1, 1)]);
    ops.push(put_record(
        base + 1,
        2,
        Arc::new(MessageRecord {
            headers: vec![("h".into(), "v".into()), ("dup".into(), "1".into())],
            body: Bytes::from(vec![0xa5; 300 * 1024]),
            enqueued_at_ms: 1_700_000_000_123,
            expires_at_ms: Some(1_900_000_000_000),
        }),
    ));
    c.commit(&*store, ops).await;
    // The newest message deleted: only next_seq says 44 was used.
    let gone = vec![
        delete(base, 40, false),
        delete(base, 44, false),
        Op::DropQueue { id: base + 2 },
    ];
    c.commit(&*store, gone).await;
    // Submitted, not awaited: the snapshot must still hold it.
    let _unawaited = store.commit(vec![put(base + 1, 3), deliveries(base + 1, 1, 1)]);
    let (bytes, summary) = take(c, &store).await;
    let original = store.recover(HEAD).expect("recover the original");
    assert_eq!(
        summary.next_queue_id, original.next_queue_id,
        "{}: next_queue_id",
        c.0
    );
    assert_eq!(
        snapshot::verify(&bytes[..]).expect("the file verifies"),
        summary,
        "{}: the file's end entry",
        c.0
    );
    let q = c.queue(&original, base + 1);
    assert_eq!(seqs(&q.head), [1, 2, 3], "{}: the unawaited commit", c.0);
    let a = c.queue(&original, base);
    assert_eq!(
        (seqs(&a.head), a.next_seq),
        (vec![41, 42, 43], 45),
        "{}: queue a before the snapshot",
        c.0
    );

    let target = backend.open_empty();
    let restored = snapshot::restore(&bytes[..], &*target)
        .await
        .unwrap_or_else(|e| panic!("{}: restore failed: {e}", c.0));
    assert_eq!(restored, summary, "{}: restore's summary", c.0);
    let copy = target.recover(HEAD).expect("recover the copy");
    c.shape(&copy, HEAD);
    assert_eq!(
        copy.next_queue_id, original.next_queue_id,
        "{}: next id",
        c.0
    );
    assert_eq!(copy.meta, original.meta, "{}: metadata", c.0);
    let view = |r: &Recovery| {
        r.queues
            .iter()
            .map(|q| {
                (
                    q.id,
                    q.name.clone(),
                    q.attrs.clone(),
                    q.head.clone(),
                    q.messages,
                    q.bytes,
                    q.next_seq,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(view(&copy), view(&original), "{}: queues", c.0);
    let again = snapshot::restore(&bytes[..], &*target).await;
    assert!(
        again.is_err(),
        "{}: restoring into a store that holds data must be refused",
        c.0
    );
    drop(target);

    let mut cleanup: Vec<Op> = (base..base + 2).map(|id| Op::DropQueue { id }).collect();
    cleanup.push(delete_meta(&key));
    c.commit(&*store, cleanup).await;
}
