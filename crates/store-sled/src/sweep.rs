//! Removing the data of dropped queues. A `DropQueue` costs its round O(1) keys (queue record,
//! totals, a tombstone `X id`); the `M`/`D`/`S` keys of its messages are removed afterwards, a
//! bounded number per round, releasing their segment bodies, and the tombstone goes in the batch
//! that removes the last of them. Until then nothing reads them: the queue is gone from the
//! committer's map, which is what `recover` and `read` consult, and the tombstone brings the sweep
//! back after a restart.

use stampede_store::{QueueId, StoreError};

use crate::codec::{self, DATA_TAGS, TAG_SEGMENT, TAG_TOMBSTONE};
use crate::committer::Committer;
use crate::sled_err;
use crate::staged::Staged;

impl Committer {
    /// Stages the removal of up to `budget` keys of dropped queues, lowest id first.
    pub(crate) fn sweep(&mut self, staged: &mut Staged, budget: usize) -> Result<(), StoreError> {
        let mut left = budget;
        while left > 0 {
            let Some(&id) = self.dead.first() else {
                break;
            };
            let (removed, all) = self.remove_data(id, left, staged)?;
            left -= removed;
            if !all {
                break;
            }
            self.dead.remove(&id);
            staged.remove(&codec::queue_key(TAG_TOMBSTONE, id)[..]);
        }
        Ok(())
    }

    /// A `PutQueue` names a queue dropped earlier whose data is not swept yet. The broker never
    /// reuses ids, so this is rare enough to pay for at once: the old messages must be gone in the
    /// same batch that creates the new queue, or the sweep would remove the new one's.
    pub(crate) fn revive(&mut self, id: QueueId, staged: &mut Staged) -> Result<(), StoreError> {
        tracing::warn!(
            queue = id,
            "a dropped queue id is created again; removing its old messages first"
        );
        self.remove_data(id, usize::MAX, staged)?;
        self.dead.remove(&id);
        staged.remove(&codec::queue_key(TAG_TOMBSTONE, id)[..]);
        Ok(())
    }

    /// Stages the removal of up to `limit` of the keys queue `id`'s messages have on disk,
    /// releasing their segment bodies: how many, and whether that was all of them. Keys staged
    /// for removal in an earlier round are gone from the tree, so each call starts afresh.
    fn remove_data(
        &mut self,
        id: QueueId,
        limit: usize,
        staged: &mut Staged,
    ) -> Result<(usize, bool), StoreError> {
        let mut removed = 0;
        for tag in DATA_TAGS {
            for kv in self.tree.scan_prefix(codec::queue_key(tag, id)) {
                if removed == limit {
                    return Ok((removed, false));
                }
                let (key, _) = kv.map_err(sled_err("sweeping a dropped queue"))?;
                if tag == TAG_SEGMENT {
                    if let Some((_, seq)) = codec::parse_message_key(&key) {
                        self.segments.release(id, seq);
                    }
                }
                staged.remove(key);
                removed += 1;
            }
        }
        Ok((removed, true))
    }
}
