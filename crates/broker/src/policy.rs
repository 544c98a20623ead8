//! Per-queue settings (docs/behaviour.md, "Queue semantics"): the configuration's defaults, overridden by the first
//! matching glob pattern such as `orders.*`, then by what was changed for that queue at run time
//! (kept in its stored attributes). A queue resolves them when it is created or recovered, and
//! again when they change.

use std::time::Duration;

/// Settings of one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    /// A delivered message neither ACKed nor NACKed within this time is delivered again;
    /// `None` = only when its consumer goes away.
    pub visibility_timeout: Option<Duration>,
    /// Deliveries without ACK after which a message is dead-lettered; `None` = never.
    pub max_deliveries: Option<u32>,
    /// Name template of the dead-letter queue; `{queue}` is replaced by the queue's name.
    pub dead_letter_queue: String,
    /// Messages older than this are deleted.
    pub retention: Duration,
    /// A SEND to a queue holding this many messages is refused.
    pub max_messages: Option<u64>,
    /// A SEND to a queue holding this many bytes is refused.
    pub max_bytes: Option<u64>,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            visibility_timeout: Some(Duration::from_secs(30)),
            max_deliveries: Some(5),
            dead_letter_queue: "DLQ.{queue}".to_owned(),
            retention: Duration::from_secs(7 * 86_400),
            max_messages: None,
            max_bytes: None,
        }
    }
}

impl QueueSettings {
    /// The dead-letter queue of `queue`, or `None` when `queue` is itself a dead-letter queue (a
    /// DLQ never dead-letters: its messages stay until ACKed or past retention).
    pub fn dead_letter_queue_of(&self, queue: &str) -> Option<String> {
        let (prefix, suffix) = self
            .dead_letter_queue
            .split_once("{queue}")
            .unwrap_or((self.dead_letter_queue.as_str(), ""));
        let is_dlq = queue.len() > prefix.len() + suffix.len()
            && queue.starts_with(prefix)
            && queue.ends_with(suffix)
            && !(prefix.is_empty() && suffix.is_empty());
        let name = self.dead_letter_queue.replace("{queue}", queue);
        (!is_dlq && name != queue).then_some(name)
    }
}

/// Overrides a pattern sets; `None` keeps the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsOverride {
    pub visibility_timeout: Option<Option<Duration>>,
    pub max_deliveries: Option<Option<u32>>,
    pub dead_letter_queue: Option<String>,
    pub retention: Option<Duration>,
    pub max_messages: Option<Option<u64>>,
    pub max_bytes: Option<Option<u64>>,
}

impl SettingsOverride {
    /// Sets on `s` what this override sets.
    pub fn apply(&self, s: &mut QueueSettings) {
        if let Some(v) = self.visibility_timeout {
            s.visibility_timeout = v;
        }
        if let Some(v) = self.max_deliveries {
            s.max_deliveries = v;
        }
        if let Some(v) = &self.dead_letter_queue {
            s.dead_letter_queue = v.clone();
        }
        if let Some(v) = self.retention {
            s.retention = v;
        }
        if let Some(v) = self.max_messages {
            s.max_messages = v;
        }
        if let Some(v) = self.max_bytes {
            s.max_bytes = v;
        }
    }
}

/// Defaults plus ordered pattern overrides.
#[derive(Debug, Clone, Default)]
pub struct QueuePolicy {
    pub defaults: QueueSettings,
    /// Checked in order; the first pattern matching a queue name applies.
    pub patterns: Vec<(String, SettingsOverride)>,
}

impl QueuePolicy {
    /// Effective settings of queue `name` with the run-time changes `changed` over the
    /// configuration's, and the pattern that shaped them.
    pub fn resolve(&self, name: &str, changed: &SettingsOverride) -> (QueueSettings, Option<&str>) {
        let (mut s, pattern) = self.settings_for(name);
        changed.apply(&mut s);
        (s, pattern)
    }

    /// Effective settings of queue `name`, and the pattern that shaped them.
    pub fn settings_for(&self, name: &str) -> (QueueSettings, Option<&str>) {
        let mut s = self.defaults.clone();
        let Some((pattern, o)) = self
            .patterns
            .iter()
            .find(|(p, _)| crate::glob::glob_match(p, name))
        else {
            return (s, None);
        };
        o.apply(&mut s);
        (s, Some(pattern))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_pattern_overrides_defaults() {
        let policy = QueuePolicy {
            defaults: QueueSettings::default(),
            patterns: vec![
                (
                    "orders.*".into(),
                    SettingsOverride {
                        max_deliveries: Some(Some(3)),
                        ..Default::default()
                    },
                ),
                (
                    "*".into(),
                    SettingsOverride {
                        max_deliveries: Some(None),
                        ..Default::default()
                    },
                ),
            ],
        };
        let (s, p) = policy.settings_for("orders.eu");
        assert_eq!((s.max_deliveries, p), (Some(3), Some("orders.*")));
        assert_eq!(s.visibility_timeout, Some(Duration::from_secs(30)));
        assert_eq!(policy.settings_for("other").0.max_deliveries, None);
    }

    #[test]
    fn dead_letter_queues_do_not_dead_letter() {
        let s = QueueSettings::default();
        assert_eq!(
            s.dead_letter_queue_of("orders").as_deref(),
            Some("DLQ.orders")
        );
        assert_eq!(s.dead_letter_queue_of("DLQ.orders"), None);
        let custom = QueueSettings {
            dead_letter_queue: "{queue}.dead".into(),
            ..QueueSettings::default()
        };
        assert_eq!(custom.dead_letter_queue_of("a").as_deref(), Some("a.dead"));
        assert_eq!(custom.dead_letter_queue_of("a.dead"), None);
        let fixed = QueueSettings {
            dead_letter_queue: "graveyard".into(),
            ..QueueSettings::default()
        };
        assert_eq!(
            fixed.dead_letter_queue_of("a").as_deref(),
            Some("graveyard")
        );
        assert_eq!(fixed.dead_letter_queue_of("graveyard"), None);
    }
}
