//! In-memory [`Store`]: durable for the life of the process only. Used by unit tests and by brokers
//! that run without a data directory.

use std::collections::{BTreeMap, HashMap};

use parking_lot::Mutex;

use std::sync::Arc;

use crate::{Op, ReadDone, Recovered, RecoveredQueue, RecoveredQueues, Store, StoreError, Ticket};

/// Keeps committed ops in maps so `recover` behaves like a disk store's within one process.
#[derive(Default)]
pub struct MemoryStore {
    queues: Mutex<HashMap<String, Stored>>,
    /// Always empty: commits apply at once.
    backlog: crate::Backlog,
}

#[derive(Default)]
struct Stored {
    messages: BTreeMap<u64, Recovered>,
    bytes: u64,
    next_seq: u64,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Store for MemoryStore {
    fn backlog(&self) -> &crate::Backlog {
        &self.backlog
    }

    fn commit(&self, ops: Vec<Op>) -> Ticket {
        let mut queues = self.queues.lock();
        for op in ops {
            match op {
                Op::Put { queue, seq, record } => {
                    let q = queues.entry(queue.to_string()).or_default();
                    q.bytes += record.size() as u64;
                    q.next_seq = q.next_seq.max(seq + 1);
                    q.messages.insert(
                        seq,
                        Recovered {
                            seq,
                            record,
                            deliveries: 0,
                        },
                    );
                }
                Op::Delete {
                    queue, seq, bytes, ..
                } => {
                    if let Some(q) = queues.get_mut(&*queue) {
                        if q.messages.remove(&seq).is_some() {
                            q.bytes = q.bytes.saturating_sub(bytes);
                        }
                    }
                }
                Op::SetDeliveries { queue, seq, count } => {
                    if let Some(m) = queues
                        .get_mut(&*queue)
                        .and_then(|q| q.messages.get_mut(&seq))
                    {
                        m.deliveries = count;
                    }
                }
            }
        }
        Ticket::ready(Ok(()))
    }

    fn recover(&self, head: usize) -> Result<RecoveredQueues, StoreError> {
        let queues = self.queues.lock();
        Ok(queues
            .iter()
            .map(|(name, q)| RecoveredQueue {
                name: name.clone(),
                head: q.messages.values().take(head).cloned().collect(),
                messages: q.messages.len() as u64,
                bytes: q.bytes,
                next_seq: q.next_seq,
            })
            .collect())
    }

    fn read(&self, queue: Arc<str>, after: u64, max: usize, done: ReadDone) {
        let found = {
            let queues = self.queues.lock();
            queues
                .get(&*queue)
                .map(|q| {
                    q.messages
                        .range(after + 1..)
                        .take(max)
                        .map(|(_, m)| m.clone())
                        .collect()
                })
                .unwrap_or_default()
        };
        done(Ok(found));
    }

    fn flush(&self) -> Ticket {
        Ticket::ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MessageRecord;
    use bytes::Bytes;
    use std::sync::Arc;

    fn rec(body: &'static str) -> Arc<MessageRecord> {
        Arc::new(MessageRecord {
            headers: vec![],
            body: Bytes::from_static(body.as_bytes()),
            enqueued_at_ms: 0,
            expires_at_ms: None,
        })
    }

    #[tokio::test]
    async fn recover_returns_live_messages_in_order_with_counts() {
        let s = MemoryStore::new();
        let q: Arc<str> = Arc::from("q");
        let put = |seq, body| Op::Put {
            queue: q.clone(),
            seq,
            record: rec(body),
        };
        s.commit(vec![put(2, "b"), put(1, "a"), put(3, "c")])
            .await
            .unwrap();
        s.commit(vec![
            Op::Delete {
                queue: q.clone(),
                seq: 2,
                bytes: 1,
                counted: false,
            },
            Op::SetDeliveries {
                queue: q.clone(),
                seq: 3,
                count: 4,
            },
        ])
        .await
        .unwrap();
        let got = s.recover(1).unwrap();
        assert_eq!(got.len(), 1);
        let msgs: Vec<_> = got[0].head.iter().map(|m| (m.seq, m.deliveries)).collect();
        assert_eq!(msgs, [(1, 0)], "only the head asked for");
        assert_eq!((got[0].messages, got[0].next_seq), (2, 4));
        let (tx, rx) = std::sync::mpsc::channel();
        s.read(q.clone(), 1, 10, Box::new(move |r| tx.send(r).unwrap()));
        let rest: Vec<_> = rx
            .recv()
            .unwrap()
            .unwrap()
            .iter()
            .map(|m| (m.seq, m.deliveries))
            .collect();
        assert_eq!(rest, [(3, 4)]);
    }
}
