//! OCI Queue channels: a queue's messages may each belong to a channel, named on the wire as
//! `<queue OCID>/<channel>`. A message sent there is stored in the OCID's queue with the channel,
//! a consumer of `<OCID>/<channel>` (or a pull with that channel filter) takes only that channel's
//! messages, a consumer of the OCID takes every channel's, and FIFO holds within each channel.
//!
//! The channel is kept in the record's `destination` header, the destination the message was sent
//! to (as for a topic a wildcard matched): a producer cannot set that header, since SEND's own
//! `destination` is the address, and a whole-queue consumer is told each message's channel by the
//! `destination` of its delivery.

use stampede_store::MessageRecord;

use crate::publish::PUBLISHED_TO;

/// Only queue OCIDs have channels; other queue names may contain `/` and mean just that.
const OCID_PREFIX: &str = "ocid1.queue.";

/// Whether queue `name` can hold channel messages (only OCID queues can): others skip every
/// channel lookup.
pub(crate) fn possible(queue: &str) -> bool {
    queue.starts_with(OCID_PREFIX)
}

/// `(queue, channel)` when `raw` is a bare `<queue OCID>/<channel>`.
pub fn split(raw: &str) -> Option<(&str, &str)> {
    if !raw.starts_with(OCID_PREFIX) {
        return None;
    }
    raw.split_once('/')
}

/// The channel a stored message belongs to.
pub fn of(record: &MessageRecord) -> Option<&str> {
    let sent_to = record.header(PUBLISHED_TO)?;
    if sent_to.starts_with('/') {
        // A topic a wildcard matched, never a channel.
        return None;
    }
    split(sent_to).map(|(_, channel)| channel)
}

/// The `destination` header a message sent to `channel` of `queue` is stored with.
pub(crate) fn sent_to(queue: &str, channel: &str) -> (String, String) {
    (PUBLISHED_TO.to_owned(), format!("{queue}/{channel}"))
}
