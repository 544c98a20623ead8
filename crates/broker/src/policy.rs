//! Per-queue settings (docs/behaviour.md, "Queue semantics"): the configuration's defaults, overridden by the first
//! matching glob pattern such as `orders.*`, then by what was changed for that queue at run time
//! (kept in its stored attributes). A queue resolves them when it is created or recovered, and
//! again when they change.

use std::time::Duration;

/// Settings of one queue.
#[derive(Debug, Clone, PartialEq)]
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
    /// How long a message given back by a NACK or a visibility timeout waits before it is
    /// visible again (zero: at once)...
    pub redelivery_delay: Duration,
    /// ...multiplied by this for each delivery after the first (1: the same every time)...
    pub redelivery_multiplier: f64,
    /// ...up to this.
    pub redelivery_delay_max: Option<Duration>,
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
            redelivery_delay: Duration::ZERO,
            redelivery_multiplier: 1.0,
            redelivery_delay_max: None,
        }
    }
}

impl QueueSettings {
    /// How long a message given back after its `deliveries`-th delivery waits to be visible.
    pub fn redelivery_wait(&self, deliveries: u32) -> Duration {
        if self.redelivery_delay.is_zero() {
            return Duration::ZERO;
        }
        let steps = deliveries.saturating_sub(1).min(64) as i32;
        let wait = self.redelivery_delay.as_secs_f64() * self.redelivery_multiplier.powi(steps);
        // Past any cap, a wait is bounded by what a queue setting may say at most.
        let cap = self.redelivery_delay_max.unwrap_or(MAX_WAIT);
        Duration::try_from_secs_f64(wait).map_or(cap, |w| w.min(cap))
    }

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

/// The longest redelivery wait: what the longest visibility timeout is (12 h).
pub const MAX_WAIT: Duration = Duration::from_secs(12 * 3600);

/// Overrides a pattern sets; `None` keeps the default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SettingsOverride {
    pub visibility_timeout: Option<Option<Duration>>,
    pub max_deliveries: Option<Option<u32>>,
    pub dead_letter_queue: Option<String>,
    pub retention: Option<Duration>,
    pub max_messages: Option<Option<u64>>,
    pub max_bytes: Option<Option<u64>>,
    pub redelivery_delay: Option<Duration>,
    pub redelivery_multiplier: Option<f64>,
    pub redelivery_delay_max: Option<Option<Duration>>,
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
        if let Some(v) = self.redelivery_delay {
            s.redelivery_delay = v;
        }
        if let Some(v) = self.redelivery_multiplier {
            s.redelivery_multiplier = v;
        }
        if let Some(v) = self.redelivery_delay_max {
            s.redelivery_delay_max = v;
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
    fn redelivery_waits_grow_by_the_multiplier_up_to_the_cap() {
        let s = QueueSettings {
            redelivery_delay: Duration::from_secs(1),
            redelivery_multiplier: 2.0,
            redelivery_delay_max: Some(Duration::from_secs(5)),
            ..QueueSettings::default()
        };
        let waits: Vec<u64> = (1..=5).map(|n| s.redelivery_wait(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 5, 5]);
        assert_eq!(QueueSettings::default().redelivery_wait(3), Duration::ZERO);
        let uncapped = QueueSettings {
            redelivery_delay_max: None,
            ..s
        };
        assert_eq!(uncapped.redelivery_wait(u32::MAX), MAX_WAIT);
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
