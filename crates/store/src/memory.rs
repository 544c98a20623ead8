//! [`MemoryStore`]: the store of an ephemeral broker (`storage.backend = "memory"`, `stampede
//! serve --ephemeral`) and of unit tests. Commits apply at once, under one lock, so every ticket is
//! born resolved; what it holds lasts as long as the process, and `recover` on the same instance
//! behaves as a disk store's would after a restart.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::snapshot::{Entry, Sink, Summary};
use crate::{
    Backlog, Completer, Op, QueueId, ReadDone, RecoveredQueue, Recovery, Store, StoreError,
    StoredMessage,
};

/// Keeps committed state in maps; see the module docs.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    /// Always empty: commits apply at once.
    backlog: Backlog,
}

#[derive(Default)]
struct State {
    queues: HashMap<QueueId, Stored>,
    meta: BTreeMap<Arc<str>, Bytes>,
    next_queue_id: QueueId,
}

struct Stored {
    name: Arc<str>,
    attrs: Bytes,
    messages: BTreeMap<u64, StoredMessage>,
    bytes: u64,
    next_seq: u64,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn apply(st: &mut State, op: Op) {
        match op {
            Op::PutQueue {
                id,
                name,
                attrs,
                next_seq,
            } => {
                st.next_queue_id = st.next_queue_id.max(id.saturating_add(1));
                let q = st.queues.entry(id).or_insert_with(|| Stored {
                    name: name.clone(),
                    attrs: Bytes::new(),
                    messages: BTreeMap::new(),
                    bytes: 0,
                    next_seq: 1,
                });
                q.name = name;
                q.attrs = attrs;
                q.next_seq = q.next_seq.max(next_seq);
            }
            Op::DropQueue { id } => {
                st.queues.remove(&id);
            }
            Op::Put { queue, seq, record } => {
                if let Some(q) = st.queues.get_mut(&queue) {
                    q.bytes += record.size() as u64;
                    q.next_seq = q.next_seq.max(seq.saturating_add(1));
                    let deliveries = 0;
                    let old = q.messages.insert(
                        seq,
                        StoredMessage {
                            seq,
                            record,
                            deliveries,
                        },
                    );
                    if let Some(old) = old {
                        q.bytes = q.bytes.saturating_sub(old.record.size() as u64);
                    }
                }
            }
            Op::Delete { queue, seq, .. } => {
                if let Some(q) = st.queues.get_mut(&queue) {
                    if let Some(m) = q.messages.remove(&seq) {
                        q.bytes = q.bytes.saturating_sub(m.record.size() as u64);
                    }
                }
            }
            Op::SetDeliveries { queue, seq, count } => {
                if let Some(m) = st
                    .queues
                    .get_mut(&queue)
                    .and_then(|q| q.messages.get_mut(&seq))
                {
                    m.deliveries = count;
                }
            }
            Op::PutMeta { key, value } => {
                st.meta.insert(key, value);
            }
            Op::DeleteMeta { key } => {
                st.meta.remove(&key);
            }
        }
    }
}

impl Store for MemoryStore {
    fn submit(&self, ops: Vec<Op>, done: Completer) {
        let mut st = self.state.lock();
        for op in ops {
            Self::apply(&mut st, op);
        }
        drop(st);
        done.complete(Ok(()));
    }

    fn recover(&self, head: usize) -> Result<Recovery, StoreError> {
        let st = self.state.lock();
        let mut queues: Vec<RecoveredQueue> = st
            .queues
            .iter()
            .map(|(&id, q)| RecoveredQueue {
                id,
                name: q.name.clone(),
                attrs: q.attrs.clone(),
                head: q.messages.values().take(head).cloned().collect(),
                messages: q.messages.len() as u64,
                bytes: q.bytes,
                next_seq: q.next_seq,
            })
            .collect();
        queues.sort_by_key(|q| q.id);
        Ok(Recovery {
            queues,
            meta: st
                .meta
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            next_queue_id: st.next_queue_id.max(1),
        })
    }

    fn read(&self, queue: QueueId, after: u64, max: usize, done: ReadDone) {
        let found = {
            let st = self.state.lock();
            st.queues
                .get(&queue)
                .map(|q| {
                    q.messages
                        .range(after.saturating_add(1)..)
                        .take(max)
                        .map(|(_, m)| m.clone())
                        .collect()
                })
                .unwrap_or_default()
        };
        done(Ok(found));
    }

    fn backlog(&self) -> &Backlog {
        &self.backlog
    }

    fn snapshot(&self, mut sink: Box<dyn Sink>) -> Result<Summary, StoreError> {
        // Collected under the lock (shared records, no copies), written without it: the cut falls
        // between two commits, and the sink's i/o does not hold up commits on async workers.
        let (entries, next_queue_id) = {
            let st = self.state.lock();
            let mut ids: Vec<_> = st.queues.keys().copied().collect();
            ids.sort_unstable();
            let mut entries = Vec::new();
            for id in ids {
                let q = &st.queues[&id];
                entries.push(Entry::Queue {
                    id,
                    name: q.name.clone(),
                    attrs: q.attrs.clone(),
                    next_seq: q.next_seq,
                });
                entries.extend(q.messages.values().map(|m| Entry::Message {
                    queue: id,
                    message: m.clone(),
                }));
            }
            entries.extend(st.meta.iter().map(|(key, value)| Entry::Meta {
                key: key.clone(),
                value: value.clone(),
            }));
            (entries, st.next_queue_id.max(1))
        };
        let mut summary = Summary {
            next_queue_id,
            ..Summary::default()
        };
        for entry in entries {
            summary.count(&entry);
            sink.entry(entry)?;
        }
        sink.finish(summary)?;
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MessageRecord;

    fn rec(body: &'static str) -> Arc<MessageRecord> {
        Arc::new(MessageRecord {
            headers: vec![],
            body: Bytes::from_static(body.as_bytes()),
            enqueued_at_ms: 0,
            expires_at_ms: None,
        })
    }

    #[tokio::test]
    async fn ops_for_a_queue_that_does_not_exist_are_ignored() {
        let s = MemoryStore::new();
        s.commit(vec![Op::Put {
            queue: 9,
            seq: 1,
            record: rec("lost"),
        }])
        .await
        .unwrap();
        let got = s.recover(10).unwrap();
        assert!(got.queues.is_empty());
        assert_eq!(got.next_queue_id, 1);
    }
}
