//! The broker's durable metadata and its encoding in the store: a queue's attributes (its stable
//! number, settings changed at run time, labels front ends keep for it), topic bindings and durable
//! subscriptions. The store keeps all of it opaque; JSON keeps it readable and lets fields be
//! added without breaking data directories written earlier (unknown fields are ignored, missing
//! ones take their defaults).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::policy::SettingsOverride;

/// What a queue's `PutQueue` carries.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct QueueAttrs {
    /// Prefix of its message ids; 0 in data written before attributes existed (then the store id).
    #[serde(default)]
    pub number: u64,
    #[serde(default)]
    pub created_at_ms: u64,
    #[serde(default, skip_serializing_if = "Overrides::is_empty")]
    pub overrides: Overrides,
    /// Free-form attributes front ends keep for the queue (an OCI display name, say).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Removed, with its messages, when its last consumer leaves (RabbitMQ's `auto-delete`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub auto_delete: bool,
    /// Removed at the next start (RabbitMQ's `durable: false`; exclusive queues).
    #[serde(default, skip_serializing_if = "is_false")]
    pub temporary: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Settings changed at run time. Each applies over the configuration's; `0` means "none" for the
/// optional ones, as in the configuration (no timeout, never dead-letter, no limit).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct Overrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_deliveries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_messages: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redelivery_delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redelivery_multiplier: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redelivery_delay_max_ms: Option<u64>,
}

impl Overrides {
    fn is_empty(&self) -> bool {
        *self == Overrides::default()
    }

    /// Folds `change` in: what it sets replaces what was set before.
    pub fn merge(&mut self, change: &SettingsOverride) {
        let ms = |d: Duration| d.as_millis() as u64;
        if let Some(v) = change.visibility_timeout {
            self.visibility_timeout_ms = Some(v.map_or(0, ms));
        }
        if let Some(v) = change.max_deliveries {
            self.max_deliveries = Some(v.unwrap_or(0));
        }
        if let Some(v) = &change.dead_letter_queue {
            self.dead_letter_queue = Some(v.clone());
        }
        if let Some(v) = change.retention {
            self.retention_ms = Some(ms(v));
        }
        if let Some(v) = change.max_messages {
            self.max_messages = Some(v.unwrap_or(0));
        }
        if let Some(v) = change.max_bytes {
            self.max_bytes = Some(v.unwrap_or(0));
        }
        if let Some(v) = change.redelivery_delay {
            self.redelivery_delay_ms = Some(ms(v));
        }
        if let Some(v) = change.redelivery_multiplier {
            self.redelivery_multiplier = Some(v);
        }
        if let Some(v) = change.redelivery_delay_max {
            self.redelivery_delay_max_ms = Some(v.map_or(0, ms));
        }
    }

    pub fn as_override(&self) -> SettingsOverride {
        let none_if_zero = |v: u64| (v > 0).then_some(v);
        SettingsOverride {
            visibility_timeout: self
                .visibility_timeout_ms
                .map(|v| none_if_zero(v).map(Duration::from_millis)),
            max_deliveries: self.max_deliveries.map(|v| (v > 0).then_some(v)),
            dead_letter_queue: self.dead_letter_queue.clone(),
            retention: self.retention_ms.map(Duration::from_millis),
            max_messages: self.max_messages.map(none_if_zero),
            max_bytes: self.max_bytes.map(none_if_zero),
            redelivery_delay: self.redelivery_delay_ms.map(Duration::from_millis),
            redelivery_multiplier: self.redelivery_multiplier,
            redelivery_delay_max: self
                .redelivery_delay_max_ms
                .map(|v| none_if_zero(v).map(Duration::from_millis)),
        }
    }
}

impl QueueAttrs {
    pub fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Empty attributes (data from before they existed) decode as the defaults.
    pub fn decode(raw: &[u8]) -> Result<QueueAttrs, serde_json::Error> {
        if raw.is_empty() {
            return Ok(QueueAttrs::default());
        }
        serde_json::from_slice(raw)
    }
}

/// A durable subscription: which topic it listens to and which queue holds its messages.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct DurableSub {
    pub topic: String,
    pub queue: String,
}

/// Metadata keys. Names never contain control characters (destination names are checked), so a
/// tab separates their parts.
pub(crate) mod key {
    use std::sync::Arc;

    const BINDING: &str = "binding\t";
    const DURABLE: &str = "durable\t";

    pub fn binding(topic: &str, queue: &str) -> Arc<str> {
        Arc::from(format!("{BINDING}{topic}\t{queue}"))
    }

    pub fn durable(client: &str, name: &str) -> Arc<str> {
        Arc::from(format!("{DURABLE}{client}\t{name}"))
    }

    /// (topic, queue) of a binding key.
    pub fn parse_binding(key: &str) -> Option<(&str, &str)> {
        key.strip_prefix(BINDING)?.split_once('\t')
    }

    /// (client, name) of a durable-subscription key.
    pub fn parse_durable(key: &str) -> Option<(&str, &str)> {
        key.strip_prefix(DURABLE)?.split_once('\t')
    }
}

pub(crate) fn encode_durable(sub: &DurableSub) -> Bytes {
    Bytes::from(serde_json::to_vec(sub).unwrap_or_default())
}

pub(crate) fn decode_durable(raw: &[u8]) -> Option<DurableSub> {
    serde_json::from_slice(raw).ok()
}

/// Shares one allocation per distinct name between the registry and the metadata.
pub(crate) fn arc(name: &str) -> Arc<str> {
    Arc::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip_and_tolerate_old_and_new_fields() {
        let mut attrs = QueueAttrs {
            number: 7,
            created_at_ms: 99,
            ..QueueAttrs::default()
        };
        attrs.overrides.merge(&SettingsOverride {
            visibility_timeout: Some(None),
            max_deliveries: Some(Some(3)),
            ..SettingsOverride::default()
        });
        attrs.labels.insert("displayName".into(), "orders".into());
        let back = QueueAttrs::decode(&attrs.encode()).unwrap();
        assert_eq!(back, attrs);
        let o = back.overrides.as_override();
        assert_eq!(o.visibility_timeout, Some(None), "0 stands for none");
        assert_eq!(o.max_deliveries, Some(Some(3)));
        assert_eq!(o.retention, None, "not overridden");
        assert_eq!(QueueAttrs::decode(b"").unwrap(), QueueAttrs::default());
        let newer = br#"{"number":3,"a_field_from_the_future":true}"#;
        assert_eq!(QueueAttrs::decode(newer).unwrap().number, 3);
    }

    #[test]
    fn keys_split_back_into_their_names() {
        assert_eq!(
            key::parse_binding(&key::binding("prices", "Consumer.a.prices")),
            Some(("prices", "Consumer.a.prices"))
        );
        assert_eq!(
            key::parse_durable(&key::durable("client-1", "audit")),
            Some(("client-1", "audit"))
        );
        assert_eq!(key::parse_binding(&key::durable("a", "b")), None);
    }
}
