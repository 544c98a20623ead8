//! The reader thread, which serves page-in reads off the committer thread so that reading a large
//! batch back does not delay any round, and [`read_range`], which recovery uses too.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;

use stampede_store::{MessageRecord, QueueId, ReadDone, StoreError, StoredMessage};

use crate::codec::{self, BodyRef, TAG_DELIVERIES, TAG_MESSAGE};
use crate::{segments, sled_err};

/// A read forwarded by the committer after the round it was queued in.
pub(crate) struct ReadJob {
    /// `None` when the queue did not exist once that round was applied: a dropped queue's
    /// messages may still be on disk until swept, and must not be returned.
    pub queue: Option<QueueId>,
    pub after: u64,
    pub max: usize,
    pub done: ReadDone,
}

pub(crate) struct Reader {
    pub tree: sled::Tree,
    pub segments_dir: PathBuf,
}

impl Reader {
    pub fn run(self, rx: mpsc::Receiver<ReadJob>) {
        while let Ok(job) = rx.recv() {
            let result = match job.queue {
                Some(id) => read_range(&self.tree, &self.segments_dir, id, job.after, job.max),
                None => Ok(Vec::new()),
            };
            (job.done)(result);
        }
    }
}

/// Up to `max` messages of queue `id` after `after`, bodies and delivery counts included.
pub(crate) fn read_range(
    tree: &sled::Tree,
    segments_dir: &Path,
    id: QueueId,
    after: u64,
    max: usize,
) -> Result<Vec<StoredMessage>, StoreError> {
    if max == 0 || after == u64::MAX {
        return Ok(Vec::new());
    }
    let from = codec::message_key(TAG_MESSAGE, id, after + 1);
    let to = codec::message_key(TAG_MESSAGE, id, u64::MAX);
    let mut out = Vec::new();
    for kv in tree.range(from..=to) {
        if out.len() == max {
            break;
        }
        let (k, v) = kv.map_err(sled_err("reading messages"))?;
        let (_, seq) = codec::parse_message_key(&k)
            .ok_or_else(|| StoreError::Corrupt("message key".into()))?;
        let Some(record) = load(tree, segments_dir, &k, &v)? else {
            continue;
        };
        let deliveries = match tree
            .get(codec::message_key(TAG_DELIVERIES, id, seq))
            .map_err(sled_err("reading delivery counts"))?
        {
            Some(v) => u32::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("delivery count".into()))?,
            ),
            None => 0,
        };
        out.push(StoredMessage {
            seq,
            record: Arc::new(record),
            deliveries,
        });
    }
    Ok(out)
}

/// Decodes a record and fetches its body; `None` when the message was deleted (and its segment
/// removed) by a round that ran while this read was under way.
fn load(
    tree: &sled::Tree,
    segments_dir: &Path,
    key: &[u8],
    raw: &[u8],
) -> Result<Option<MessageRecord>, StoreError> {
    let (mut record, body) = codec::decode_record(raw)?;
    if let BodyRef::Segment { id, offset, len } = body {
        match segments::read_body(segments_dir, id, offset, len) {
            Ok(bytes) => record.body = bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let still_stored = tree
                    .contains_key(key)
                    .map_err(sled_err("reading messages"))?;
                if still_stored {
                    return Err(StoreError::io("reading a segment body", e));
                }
                return Ok(None);
            }
            Err(e) => return Err(StoreError::io("reading a segment body", e)),
        }
    }
    Ok(Some(record))
}
