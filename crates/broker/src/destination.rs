//! Destination names on the wire and what they mean (docs/behaviour.md, "Destinations"):
//! `/queue/NAME`, `/amq/queue/NAME` and a bare `NAME` (an OCI queue OCID, `DLQ.x`) are the same
//! queue; `/topic/NAME` and RabbitMQ's `/exchange/amq.topic/NAME` are topic `NAME`. Also the
//! naming rule of ActiveMQ's virtual topics: queue `Consumer.<name>.VirtualTopic.<X>` takes a
//! copy of everything sent to topic `VirtualTopic.<X>`.

use crate::BrokerError;

/// Longest queue or topic name accepted.
pub const MAX_NAME: usize = 512;

/// A parsed destination.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Destination {
    Queue(String),
    Topic(String),
}

impl Destination {
    /// Like [`Destination::parse`], and also the OCI channel form `<queue OCID>/<channel>`: the
    /// OCID's queue and the channel.
    pub fn parse_channel(raw: &str) -> Result<(Destination, Option<String>), BrokerError> {
        let Some((queue, channel)) = crate::channel::split(raw) else {
            return Ok((Destination::parse(raw)?, None));
        };
        if !valid_name(channel) || channel.contains('/') {
            return Err(BrokerError::InvalidName {
                name: raw.to_owned(),
                reason: "a channel is <queue OCID>/<channel>, the channel non-empty and without /",
            });
        }
        Ok((Destination::parse(queue)?, Some(channel.to_owned())))
    }

    pub fn parse(raw: &str) -> Result<Destination, BrokerError> {
        let invalid = || BrokerError::InvalidDestination(raw.to_owned());
        let (topic, name) = if let Some(n) = raw.strip_prefix("/queue/") {
            (false, n)
        } else if let Some(n) = raw.strip_prefix("/amq/queue/") {
            (false, n)
        } else if let Some(n) = raw.strip_prefix("/topic/") {
            (true, n)
        } else if let Some(rest) = raw.strip_prefix("/exchange/") {
            // Only the topic exchange has a meaning here; naming another must not quietly
            // become a queue or a topic of that name.
            match rest.split_once('/') {
                Some(("amq.topic", key)) => (true, key),
                Some((exchange, _)) => {
                    return Err(BrokerError::UnknownExchange(exchange.to_owned()))
                }
                None => return Err(BrokerError::UnknownExchange(rest.to_owned())),
            }
        } else if raw.starts_with('/') {
            return Err(invalid());
        } else {
            (false, raw)
        };
        if !valid_name(name) {
            return Err(invalid());
        }
        check_virtual(name)?;
        Ok(match topic {
            false => Destination::Queue(name.to_owned()),
            true => Destination::Topic(name.to_owned()),
        })
    }

    /// The name, when it is a durable queue (a temporary queue is neither created on first use
    /// nor paced).
    pub(crate) fn durable_queue(&self) -> Option<&str> {
        match self {
            Destination::Queue(name) if !crate::temp::is_temp(name) => Some(name),
            _ => None,
        }
    }

    /// Refuses a queue or topic name no destination could spell.
    /// A temporary queue's name is refused too: a binding or a durable queue cannot take one.
    pub fn check_name(name: &str) -> Result<(), BrokerError> {
        if crate::temp::is_temp(name) {
            return Err(BrokerError::InvalidName {
                name: name.to_owned(),
                reason: "temporary queues are made by /temp-queue/ destinations and reply-to",
            });
        }
        Self::check_plain(name)
    }

    /// [`Destination::check_name`] without the temporary-queue rule.
    pub(crate) fn check_plain(name: &str) -> Result<(), BrokerError> {
        if valid_name(name) {
            check_virtual(name)
        } else {
            Err(BrokerError::InvalidDestination(name.to_owned()))
        }
    }
}

const VIRTUAL_TOPIC: &str = "VirtualTopic.";
const CONSUMER: &str = "Consumer.";

/// The topic whose messages queue `queue` takes a copy of, when its name follows the virtual
/// topic rule: `Consumer.<one word>.VirtualTopic.<X>` → `VirtualTopic.<X>`.
pub(crate) fn virtual_topic_of(queue: &str) -> Option<&str> {
    let rest = queue.strip_prefix(CONSUMER)?;
    let dot = rest.find('.')?;
    let topic = &rest[dot + 1..];
    (dot > 0 && topic.starts_with(VIRTUAL_TOPIC) && topic.len() > VIRTUAL_TOPIC.len())
        .then_some(topic)
}

/// A name that means a virtual topic or one of its consumer queues must have every segment:
/// `Consumer..VirtualTopic.x` or `VirtualTopic.` would otherwise be ordinary names that silently
/// never receive the copies their sender or consumer expects.
fn check_virtual(name: &str) -> Result<(), BrokerError> {
    let topic = match name.strip_prefix(CONSUMER) {
        Some(rest) => match rest.find(VIRTUAL_TOPIC) {
            // `Consumer.VirtualTopic.x`: the consumer's name is missing.
            Some(0) => return Err(empty_segment(name)),
            Some(at) => match rest[..at].strip_suffix('.') {
                Some(consumer) if consumer.split('.').any(str::is_empty) => {
                    return Err(empty_segment(name))
                }
                Some(_) => &rest[at..],
                // `Consumer.xVirtualTopic.y` is not a virtual-topic name at all.
                None => return Ok(()),
            },
            None => return Ok(()),
        },
        None if name.starts_with(VIRTUAL_TOPIC) => name,
        None => return Ok(()),
    };
    if topic.split('.').any(str::is_empty) {
        return Err(empty_segment(name));
    }
    Ok(())
}

fn empty_segment(name: &str) -> BrokerError {
    BrokerError::InvalidName {
        name: name.to_owned(),
        reason: "a virtual-topic name needs every segment: Consumer.<name>.VirtualTopic.<topic>",
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME && !name.chars().any(char::is_control)
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Queue(n) => write!(f, "/queue/{n}"),
            Destination::Topic(n) => write!(f, "/topic/{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_spellings_name_one_queue() {
        for raw in ["/queue/a.b", "/amq/queue/a.b", "a.b"] {
            assert_eq!(
                Destination::parse(raw).unwrap(),
                Destination::Queue("a.b".into())
            );
        }
        assert_eq!(
            Destination::parse("/topic/t").unwrap(),
            Destination::Topic("t".into())
        );
    }

    #[test]
    fn the_topic_exchange_is_the_topic_namespace_and_other_exchanges_are_refused() {
        assert_eq!(
            Destination::parse("/exchange/amq.topic/orders.eu").unwrap(),
            Destination::Topic("orders.eu".into())
        );
        for (raw, exchange) in [
            ("/exchange/amq.direct/k", "amq.direct"),
            ("/exchange/x", "x"),
        ] {
            match Destination::parse(raw) {
                Err(BrokerError::UnknownExchange(e)) => assert_eq!(e, exchange),
                other => panic!("{raw}: {other:?}"),
            }
        }
    }

    #[test]
    fn virtual_topic_consumer_queues_name_their_topic() {
        assert_eq!(
            virtual_topic_of("Consumer.app-A.VirtualTopic.xpto"),
            Some("VirtualTopic.xpto")
        );
        assert_eq!(
            virtual_topic_of("Consumer.a.VirtualTopic.x.y"),
            Some("VirtualTopic.x.y")
        );
        for plain in [
            "orders",
            "Consumer.a",
            "Consumer.a.b.VirtualTopic.x",
            "VirtualTopic.x",
        ] {
            assert_eq!(virtual_topic_of(plain), None, "{plain}");
        }
        for bad in [
            "/queue/Consumer..VirtualTopic.x",
            "/queue/Consumer.a.VirtualTopic.",
            "/queue/Consumer.VirtualTopic.x",
            "/topic/VirtualTopic.",
            "/topic/VirtualTopic.a..b",
        ] {
            assert!(
                matches!(
                    Destination::parse(bad),
                    Err(BrokerError::InvalidName { .. })
                ),
                "{bad}"
            );
        }
        assert!(Destination::parse("/topic/VirtualTopic.orders").is_ok());
    }

    #[test]
    fn rejects_unknown_prefixes_and_empty_names() {
        for raw in ["/queue/", "", "/topic/", "a\nb", "/temp/x"] {
            assert!(Destination::parse(raw).is_err(), "{raw:?}");
        }
        assert!(Destination::check_name("a\tb").is_err());
        assert!(Destination::check_name(&"x".repeat(MAX_NAME + 1)).is_err());
    }
}
