//! Destination names on the wire and what they mean (BEHAVIOUR.md "Destinations").

use crate::BrokerError;

/// A parsed destination.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Destination {
    /// `/queue/NAME`, `/amq/queue/NAME` or a bare `NAME` (an OCI queue OCID, `DLQ.x`).
    Queue(String),
    /// `/topic/NAME`.
    Topic(String),
}

impl Destination {
    pub fn parse(raw: &str) -> Result<Destination, BrokerError> {
        let invalid = || BrokerError::InvalidDestination(raw.to_owned());
        let (kind, name) = if let Some(n) = raw.strip_prefix("/queue/") {
            (Kind::Queue, n)
        } else if let Some(n) = raw.strip_prefix("/amq/queue/") {
            (Kind::Queue, n)
        } else if let Some(n) = raw.strip_prefix("/topic/") {
            (Kind::Topic, n)
        } else if raw.starts_with('/') {
            return Err(invalid());
        } else {
            (Kind::Queue, raw)
        };
        if name.is_empty() || name.len() > 512 || name.chars().any(char::is_control) {
            return Err(invalid());
        }
        Ok(match kind {
            Kind::Queue => Destination::Queue(name.to_owned()),
            Kind::Topic => Destination::Topic(name.to_owned()),
        })
    }
}

enum Kind {
    Queue,
    Topic,
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
    fn rejects_unknown_prefixes_and_empty_names() {
        for raw in ["/exchange/x", "/queue/", "", "/topic/", "a\nb"] {
            assert!(Destination::parse(raw).is_err(), "{raw:?}");
        }
    }
}
