//! Helpers shared by the sled store's tests: ops, reads, and a look at the raw tree once the
//! store is closed.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use stampede_store::{MessageRecord, Op, QueueId, Store, StoredMessage};

pub fn rec(body: impl Into<Bytes>, header: &str) -> Arc<MessageRecord> {
    Arc::new(MessageRecord {
        headers: vec![("h".into(), header.into())],
        body: body.into(),
        enqueued_at_ms: 7,
        expires_at_ms: Some(9),
    })
}

pub fn put_queue(id: QueueId, name: &str) -> Op {
    Op::PutQueue {
        id,
        name: Arc::from(name),
        attrs: Bytes::new(),
        next_seq: 1,
    }
}

pub fn put(queue: QueueId, seq: u64, record: &Arc<MessageRecord>) -> Op {
    Op::Put {
        queue,
        seq,
        record: record.clone(),
    }
}

pub fn del(queue: QueueId, seq: u64, record: &MessageRecord) -> Op {
    Op::Delete {
        queue,
        seq,
        bytes: record.size() as u64,
        counted: true,
    }
}

pub async fn read(store: &dyn Store, queue: QueueId, after: u64, max: usize) -> Vec<StoredMessage> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    store.read(
        queue,
        after,
        max,
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    rx.await.expect("read answered").expect("read")
}

pub fn seqs(messages: &[StoredMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

pub fn queue_key(tag: u8, id: u64) -> Vec<u8> {
    let mut k = vec![tag];
    k.extend_from_slice(&id.to_be_bytes());
    k
}

pub fn message_key(tag: u8, id: u64, seq: u64) -> Vec<u8> {
    let mut k = queue_key(tag, id);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Runs `f` on the store's tree opened directly (only while no store is open on `dir`), then
/// flushes and closes it, and waits until sled has released its lock: sled's background jobs can
/// hold it a moment after the last handle is gone, and the next open would find it taken.
pub fn with_raw_tree<T>(dir: &Path, f: impl FnOnce(&sled::Tree) -> T) -> T {
    let db = sled::open(dir.join("sled")).expect("open sled directly");
    let tree = db.open_tree("messages").expect("messages tree");
    let out = f(&tree);
    db.flush().expect("flush");
    drop(tree);
    drop(db);
    let file = std::fs::File::open(dir.join("sled").join("db")).expect("sled's lock file");
    fs2::FileExt::lock_exclusive(&file).expect("wait for sled's lock");
    out
}

/// Keys starting with `prefix` in a closed store's tree.
pub fn count_keys(dir: &Path, prefix: &[u8]) -> usize {
    with_raw_tree(dir, |tree| tree.scan_prefix(prefix).count())
}
