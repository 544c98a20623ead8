//! In-memory [`Store`]: durable for the life of the process only. Used by unit tests and by brokers
//! that run without a data directory.

use std::collections::{BTreeMap, HashMap};

use parking_lot::Mutex;

use crate::{Op, Recovered, RecoveredQueues, Store, StoreError, Ticket};

/// Keeps committed ops in maps so `recover` behaves like a disk store's within one process.
#[derive(Default)]
pub struct MemoryStore {
    queues: Mutex<HashMap<String, BTreeMap<u64, Recovered>>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Store for MemoryStore {
    fn commit(&self, ops: Vec<Op>) -> Ticket {
        let mut queues = self.queues.lock();
        for op in ops {
            match op {
                Op::Put { queue, seq, record } => {
                    queues.entry(queue.to_string()).or_default().insert(
                        seq,
                        Recovered {
                            seq,
                            record,
                            deliveries: 0,
                        },
                    );
                }
                Op::Delete { queue, seq } => {
                    if let Some(q) = queues.get_mut(&*queue) {
                        q.remove(&seq);
                    }
                }
                Op::SetDeliveries { queue, seq, count } => {
                    if let Some(m) = queues.get_mut(&*queue).and_then(|q| q.get_mut(&seq)) {
                        m.deliveries = count;
                    }
                }
            }
        }
        Ticket::ready(Ok(()))
    }

    fn recover(&self) -> Result<RecoveredQueues, StoreError> {
        let queues = self.queues.lock();
        Ok(queues
            .iter()
            .map(|(name, msgs)| (name.clone(), msgs.values().cloned().collect()))
            .collect())
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
            },
            Op::SetDeliveries {
                queue: q.clone(),
                seq: 3,
                count: 4,
            },
        ])
        .await
        .unwrap();
        let got = s.recover().unwrap();
        assert_eq!(got.len(), 1);
        let msgs: Vec<_> = got[0].1.iter().map(|m| (m.seq, m.deliveries)).collect();
        assert_eq!(msgs, [(1, 0), (3, 4)]);
    }
}
