//! The stored form of a queue message: what must survive a restart.

use bytes::Bytes;

/// A message as the broker persists it. Headers are the application headers the producer sent
/// (framing headers removed); the body is shared, never copied, between queue, store and sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Milliseconds since the Unix epoch when the queue accepted the message.
    pub enqueued_at_ms: u64,
    /// Milliseconds since the Unix epoch after which the message is dropped (`expires` header).
    /// Never `Some(0)`: stores may keep 0 for "none".
    pub expires_at_ms: Option<u64>,
}

impl MessageRecord {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Bytes the message occupies, for queue byte limits and metrics.
    pub fn size(&self) -> usize {
        Self::size_of(&self.headers, self.body.len())
    }

    /// [`MessageRecord::size`] of a message with these headers and a body of `body_len` bytes,
    /// before it is built.
    pub fn size_of(headers: &[(String, String)], body_len: usize) -> usize {
        body_len
            + headers
                .iter()
                .map(|(k, v)| k.len() + v.len() + 2)
                .sum::<usize>()
    }
}
