//! [`Staged`]: the writes of one round before they become a `sled::Batch`. Like a batch, a later
//! write to a key replaces an earlier one; unlike a batch, the writes can be found by queue, which
//! dropping a queue in the round that wrote to it needs.

use std::collections::BTreeMap;
use std::ops::Bound;

use sled::IVec;
use stampede_store::QueueId;

use crate::codec::{self, DATA_TAGS, TAG_SEGMENT};

#[derive(Default)]
pub(crate) struct Staged {
    writes: BTreeMap<IVec, Option<IVec>>,
}

impl Staged {
    pub fn put(&mut self, key: impl Into<IVec>, value: impl Into<IVec>) {
        self.writes.insert(key.into(), Some(value.into()));
    }

    pub fn remove(&mut self, key: impl Into<IVec>) {
        self.writes.insert(key.into(), None);
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Turns this round's writes of queue `id`'s messages into removals (a key written earlier in
    /// the round may also be on disk from before); returns the sequence numbers whose segment
    /// reference was among them, whose bodies the caller releases.
    pub fn discard_queue(&mut self, id: QueueId) -> Vec<u64> {
        let mut segment_bodies = Vec::new();
        for tag in DATA_TAGS {
            let from = codec::message_key(tag, id, 0);
            let to = codec::message_key(tag, id, u64::MAX);
            let range = (Bound::Included(&from[..]), Bound::Included(&to[..]));
            for (key, value) in self.writes.range_mut::<[u8], _>(range) {
                if value.take().is_some() && tag == TAG_SEGMENT {
                    if let Some((_, seq)) = codec::parse_message_key(key) {
                        segment_bodies.push(seq);
                    }
                }
            }
        }
        segment_bodies
    }

    pub fn into_batch(self) -> sled::Batch {
        let mut batch = sled::Batch::default();
        for (key, value) in self.writes {
            match value {
                Some(value) => batch.insert(key, value),
                None => batch.remove(key),
            }
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{TAG_DELIVERIES, TAG_MESSAGE};

    #[test]
    fn discarding_a_queue_removes_only_its_message_keys() {
        let mut s = Staged::default();
        s.put(&codec::message_key(TAG_MESSAGE, 3, 1)[..], &b"m"[..]);
        s.put(&codec::message_key(TAG_DELIVERIES, 3, 1)[..], &b"d"[..]);
        s.put(&codec::message_key(TAG_SEGMENT, 3, 1)[..], &b"s"[..]);
        s.remove(&codec::message_key(TAG_SEGMENT, 3, 2)[..]);
        s.put(&codec::message_key(TAG_MESSAGE, 4, 1)[..], &b"other"[..]);
        assert_eq!(
            s.discard_queue(3),
            [1],
            "only a written segment ref is released"
        );
        let live: Vec<_> = s
            .writes
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| codec::parse_message_key(k))
            .collect();
        assert_eq!(live, [Some((4, 1))]);
        assert_eq!(s.writes.len(), 5, "the discarded keys stay as removals");
    }
}
