//! Destination names on the wire and what they mean (docs/behaviour.md, "Destinations"):
//! `/queue/NAME`, `/amq/queue/NAME` and a bare `NAME` (an OCI queue OCID, `DLQ.x`) are the same
//! queue; `/topic/NAME` is a topic.

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
    pub fn parse(raw: &str) -> Result<Destination, BrokerError> {
        let invalid = || BrokerError::InvalidDestination(raw.to_owned());
        let (topic, name) = if let Some(n) = raw.strip_prefix("/queue/") {
            (false, n)
        } else if let Some(n) = raw.strip_prefix("/amq/queue/") {
            (false, n)
        } else if let Some(n) = raw.strip_prefix("/topic/") {
            (true, n)
        } else if raw.starts_with('/') {
            return Err(invalid());
        } else {
            (false, raw)
        };
        if !valid_name(name) {
            return Err(invalid());
        }
        Ok(match topic {
            false => Destination::Queue(name.to_owned()),
            true => Destination::Topic(name.to_owned()),
        })
    }

    /// Refuses a queue or topic name no destination could spell.
    pub fn check_name(name: &str) -> Result<(), BrokerError> {
        if valid_name(name) {
            Ok(())
        } else {
            Err(BrokerError::InvalidDestination(name.to_owned()))
        }
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
    fn rejects_unknown_prefixes_and_empty_names() {
        for raw in ["/exchange/x", "/queue/", "", "/topic/", "a\nb"] {
            assert!(Destination::parse(raw).is_err(), "{raw:?}");
        }
        assert!(Destination::check_name("a\tb").is_err());
        assert!(Destination::check_name(&"x".repeat(MAX_NAME + 1)).is_err());
    }
}
