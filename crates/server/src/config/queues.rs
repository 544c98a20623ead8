//! `[queues.defaults]` and `[queues."PATTERN"]`: per-queue settings in the configuration, turned
//! into the broker's [`QueuePolicy`] with every value range-checked and every error naming its key.
//!
//! When several patterns match a queue, the most specific wins: the one with the most literal
//! (non-wildcard) characters, then the alphabetically first. TOML tables have no order the
//! configuration layers could keep, so "first in the file" cannot be the rule.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use stampede_broker::{QueuePolicy, QueueSettings, SettingsOverride};

use super::{invalid, opt_duration, opt_size, ConfigError};

/// Longest visibility timeout accepted (OCI Queue's own maximum).
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);
/// Longest retention accepted.
const MAX_RETENTION: Duration = Duration::from_secs(365 * 86_400);
const MAX_DELIVERIES: u32 = 1000;

/// One `[queues.X]` table as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSection {
    #[serde(default, deserialize_with = "opt_duration")]
    pub visibility_timeout: Option<Duration>,
    pub max_deliveries: Option<u32>,
    pub dead_letter_queue: Option<String>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub retention: Option<Duration>,
    pub max_messages: Option<u64>,
    #[serde(default, deserialize_with = "opt_size")]
    pub max_bytes: Option<usize>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub redelivery_delay: Option<Duration>,
    pub redelivery_multiplier: Option<f64>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub redelivery_delay_max: Option<Duration>,
}

/// Builds the policy, validating every section.
pub fn policy(sections: &HashMap<String, QueueSection>) -> Result<QueuePolicy, ConfigError> {
    let mut defaults = QueueSettings::default();
    if let Some(d) = sections.get("defaults") {
        overrides("defaults", d)?.apply(&mut defaults);
    }
    let mut patterns: Vec<(String, SettingsOverride)> = sections
        .iter()
        .filter(|(k, _)| k.as_str() != "defaults")
        .map(|(k, v)| overrides(k, v).map(|o| (k.clone(), o)))
        .collect::<Result<_, _>>()?;
    patterns.sort_by(|(a, _), (b, _)| specificity(b).cmp(&specificity(a)).then(a.cmp(b)));
    Ok(QueuePolicy { defaults, patterns })
}

/// A duration in the largest unit that divides it, as the configuration writes them.
fn human(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    if ms == 0 {
        "0s".to_owned()
    } else {
        format!("{ms}ms")
    }
}

fn specificity(pattern: &str) -> usize {
    pattern.chars().filter(|c| !matches!(c, '*' | '?')).count()
}

/// Checks one section; `table` is its name for error messages.
fn overrides(table: &str, q: &QueueSection) -> Result<SettingsOverride, ConfigError> {
    if table != "defaults" && table.is_empty() {
        return Err(invalid(
            "queues",
            "a pattern table must not be empty".to_owned(),
        ));
    }
    checked(q, &|field| format!("queues.\"{table}\".{field}"))
}

/// Range-checks `q` (from the configuration or a run-time change through the admin API); `key`
/// names a field for error messages. 0 turns a limit off.
pub(crate) fn checked(
    q: &QueueSection,
    key: &dyn Fn(&str) -> String,
) -> Result<SettingsOverride, ConfigError> {
    let bad = |field: &str, problem: String| invalid(key(field), problem);
    if let Some(v) = q.visibility_timeout {
        if v > MAX_VISIBILITY {
            return Err(bad(
                "visibility_timeout",
                format!(
                    "{} is out of range: at most 12h (0 = only on disconnect)",
                    human(v)
                ),
            ));
        }
    }
    if let Some(n) = q.max_deliveries {
        if n > MAX_DELIVERIES {
            return Err(bad(
                "max_deliveries",
                format!("{n} is out of range: 0 (never) to {MAX_DELIVERIES}"),
            ));
        }
    }
    if let Some(r) = q.retention {
        if r.is_zero() || r > MAX_RETENTION {
            return Err(bad(
                "retention",
                format!("{} is out of range: more than 0 and at most 365d", human(r)),
            ));
        }
    }
    for (field, v) in [
        ("redelivery_delay", q.redelivery_delay),
        ("redelivery_delay_max", q.redelivery_delay_max),
    ] {
        if v.is_some_and(|v| v > MAX_VISIBILITY) {
            return Err(bad(
                field,
                format!(
                    "{} is out of range: at most 12h",
                    human(v.unwrap_or_default())
                ),
            ));
        }
    }
    if let Some(m) = q.redelivery_multiplier {
        if !(1.0..=10.0).contains(&m) {
            return Err(bad(
                "redelivery_multiplier",
                format!("{m} is out of range: 1 (the same delay every time) to 10"),
            ));
        }
    }
    if let Some(d) = &q.dead_letter_queue {
        if d.trim().is_empty() || d.starts_with('/') {
            return Err(bad("dead_letter_queue", format!("{d:?} must be a queue name (no /queue/ prefix), `{{queue}}` standing for the queue")));
        }
    }
    Ok(SettingsOverride {
        visibility_timeout: q.visibility_timeout.map(|v| (!v.is_zero()).then_some(v)),
        max_deliveries: q.max_deliveries.map(|n| (n > 0).then_some(n)),
        dead_letter_queue: q.dead_letter_queue.clone(),
        retention: q.retention,
        max_messages: q.max_messages.map(|n| (n > 0).then_some(n)),
        max_bytes: q.max_bytes.map(|n| (n > 0).then_some(n as u64)),
        redelivery_delay: q.redelivery_delay,
        redelivery_multiplier: q.redelivery_multiplier,
        redelivery_delay_max: q.redelivery_delay_max.map(|v| (!v.is_zero()).then_some(v)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;

    fn load_toml(toml: &str) -> Result<QueuePolicy, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.toml");
        std::fs::write(&path, toml).unwrap();
        load(Some(&path), Vec::new())
            .map(|l| l.policy)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_patterns_combine_most_specific_first() {
        let p = load_toml(
            "[queues.defaults]\nvisibility_timeout = \"5s\"\n\
             [queues.\"orders.*\"]\nmax_deliveries = 3\n\
             [queues.\"orders.eu.*\"]\nmax_deliveries = 2\nretention = \"1d\"\n\
             [queues.\"*\"]\nmax_deliveries = 0\n",
        )
        .unwrap();
        let (s, pat) = p.settings_for("orders.eu.1");
        assert_eq!((s.max_deliveries, pat), (Some(2), Some("orders.eu.*")));
        assert_eq!(s.retention, Duration::from_secs(86_400));
        assert_eq!(s.visibility_timeout, Some(Duration::from_secs(5)));
        assert_eq!(p.settings_for("orders.us").0.max_deliveries, Some(3));
        assert_eq!(p.settings_for("other").0.max_deliveries, None);
    }

    #[test]
    fn durations_in_errors_read_as_written() {
        assert_eq!(human(Duration::from_secs(13 * 3600)), "13h");
        assert_eq!(human(Duration::ZERO), "0s");
        assert_eq!(human(Duration::from_millis(1500)), "1500ms");
        let err = load_toml("[queues.defaults]\nvisibility_timeout = \"13h\"\n").unwrap_err();
        assert!(err.contains("13h is out of range"), "{err}");
    }

    #[test]
    fn zero_means_off_where_documented() {
        let p =
            load_toml("[queues.defaults]\nvisibility_timeout = 0\nmax_deliveries = 0\n").unwrap();
        assert_eq!(p.defaults.visibility_timeout, None);
        assert_eq!(p.defaults.max_deliveries, None);
    }

    #[test]
    fn out_of_range_values_name_the_key() {
        for (toml, key) in [
            (
                "[queues.defaults]\nvisibility_timeout = \"13h\"\n",
                "queues.\"defaults\".visibility_timeout",
            ),
            (
                "[queues.\"orders.*\"]\nmax_deliveries = 5000\n",
                "queues.\"orders.*\".max_deliveries",
            ),
            (
                "[queues.defaults]\nretention = \"0s\"\n",
                "queues.\"defaults\".retention",
            ),
            (
                "[queues.defaults]\ndead_letter_queue = \"/queue/x\"\n",
                "queues.\"defaults\".dead_letter_queue",
            ),
        ] {
            let err = load_toml(toml).unwrap_err();
            assert!(err.contains(key), "{err} should name {key}");
        }
        let err = load_toml("[queues.defaults]\nvisibilty_timeout = \"1s\"\n").unwrap_err();
        assert!(err.contains("visibilty_timeout"), "{err}");
        let err = load_toml("[queues.defaults]\nretention = \"forever\"\n").unwrap_err();
        assert!(
            err.contains("retention") || err.contains("forever"),
            "{err}"
        );
    }
}
