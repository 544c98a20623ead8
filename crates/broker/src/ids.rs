//! Message ids and delivery tags. A `message-id` is `<queue number>-<sequence>`: stable across
//! redeliveries and restarts (the queue number is kept in the queue's stored attributes, the
//! sequence number with the message). The tag of one delivery — the 1.2 `ack` header, a pull
//! receipt — adds the delivery count, so a token of an earlier delivery of a message that has since
//! been redelivered is recognised as stale.

use std::fmt::Write;

/// The `message-id` of message `seq` in queue number `queue`.
pub fn message_id(queue: u64, seq: u64) -> String {
    format!("{queue}-{seq}")
}

/// The tag of one delivery: `<queue number>-<seq>-<delivery count>`.
pub fn ack_token(queue: u64, seq: u64, deliveries: u32) -> String {
    format!("{queue}-{seq}-{deliveries}")
}

/// Appends `message_id` and, when given, the ack token to `out`, for writers that format into a
/// buffer of their own instead of allocating per delivery.
pub fn write_ids(out: &mut String, queue: u64, seq: u64, deliveries: Option<u32>) {
    let _ = write!(out, "{queue}-{seq}");
    if let Some(n) = deliveries {
        let _ = write!(out, "-{n}");
    }
}

/// A parsed `message-id` or delivery tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryTag {
    pub queue: u64,
    pub seq: u64,
    /// Present in a delivery's tag, absent in a `message-id`.
    pub count: Option<u32>,
}

impl DeliveryTag {
    pub fn parse(token: &str) -> Option<DeliveryTag> {
        let mut parts = token.split('-');
        let queue = parts.next()?.parse().ok()?;
        let seq = parts.next()?.parse().ok()?;
        let count = match parts.next() {
            Some(c) => Some(c.parse().ok()?),
            None => None,
        };
        parts
            .next()
            .is_none()
            .then_some(DeliveryTag { queue, seq, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_parse_and_format() {
        let t = |queue, seq, count| Some(DeliveryTag { queue, seq, count });
        assert_eq!(DeliveryTag::parse("3-17"), t(3, 17, None));
        assert_eq!(DeliveryTag::parse("3-17-2"), t(3, 17, Some(2)));
        assert_eq!(DeliveryTag::parse("x-1"), None);
        assert_eq!(DeliveryTag::parse("1-2-3-4"), None);
        assert_eq!(DeliveryTag::parse(&ack_token(3, 17, 2)), t(3, 17, Some(2)));
        let mut s = String::new();
        write_ids(&mut s, 3, 17, Some(2));
        assert_eq!(s, ack_token(3, 17, 2));
    }
}
