//! Configuration: embedded defaults (the repository's `broker.toml`) → `--config FILE` →
//! `STAMPEDE__SECTION__KEY` environment variables → CLI flags. Every error names the key and the
//! form it expects, because an operator reads it once, at start-up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod listeners;
pub(crate) mod queues;

pub use listeners::{CertSource, StompSpec, TlsSpec};

use std::collections::{BTreeMap, HashMap};

use config::{Config, Environment, File, FileFormat};
use serde::{Deserialize, Deserializer};
use stampede_broker::QueuePolicy;
use thiserror::Error;

use crate::auth::{canonical_pattern, AuthSettings, Mode, PasscodeEncoding, Permissions, User};

/// The documented defaults; also the lowest configuration layer.
pub const DEFAULTS: &str = include_str!("../../../../broker.toml");

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key `{key}`: {problem}")]
    Invalid {
        key: std::borrow::Cow<'static, str>,
        problem: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub listeners: BTreeMap<String, listeners::ListenerSection>,
    pub storage: Storage,
    pub auth: Auth,
    pub protocol: Protocol,
    pub broker: BrokerSection,
    pub shutdown: Shutdown,
    pub log: Log,
    pub metrics: MetricsSection,
    pub oci: OciSection,
    #[serde(default)]
    pub queues: HashMap<String, queues::QueueSection>,
}

/// `[oci]`: the OCI Queue REST API on the HTTP listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OciSection {
    /// Unset: true in open auth mode, false in users mode.
    #[serde(default)]
    pub auto_create: Option<bool>,
    /// What GetQueue reports as `messagesEndpoint`; unset: the URL the request came to.
    #[serde(default)]
    pub messages_endpoint: Option<String>,
    pub max_messages_per_request: usize,
    #[serde(deserialize_with = "size")]
    pub max_message_size: usize,
    #[serde(deserialize_with = "duration")]
    pub max_visibility: Duration,
    #[serde(deserialize_with = "duration")]
    pub max_poll_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub clock_skew: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    pub max_queue_series: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    #[serde(deserialize_with = "backend")]
    pub backend: Backend,
    pub data_dir: PathBuf,
    #[serde(deserialize_with = "size")]
    pub cache_capacity: usize,
    #[serde(deserialize_with = "size")]
    pub large_body_threshold: usize,
    #[serde(deserialize_with = "size")]
    pub min_free_space: usize,
    #[serde(deserialize_with = "size")]
    pub max_pending_writes: usize,
}

/// Where the broker keeps its queues (`storage.backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// On disk, in `storage.data_dir`.
    Sled,
    /// In memory only: everything is gone when the broker stops.
    Memory,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    pub mode: Mode,
    #[serde(default)]
    pub anonymous_user: Option<String>,
    pub passcode_encoding: PasscodeEncoding,
    pub failed_login_burst: u32,
    #[serde(deserialize_with = "duration")]
    pub failed_login_interval: Duration,
    #[serde(default)]
    pub users: BTreeMap<String, UserSection>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSection {
    pub password_hash: String,
    #[serde(default)]
    pub passcode_encoding: Option<PasscodeEncoding>,
    /// Absent: every destination, every permission.
    #[serde(default)]
    pub permissions: Option<PermissionsSection>,
    /// OCI API signing keys that authenticate this user on the OCI REST API.
    #[serde(default)]
    pub oci_api_keys: Vec<OciKeySection>,
}

/// `[[auth.users.NAME.oci_api_keys]]`: one API signing key, as OCI names it in a request's
/// `keyId` (`<tenancy OCID>/<user OCID>/<fingerprint>`), with its public half.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OciKeySection {
    pub key_id: String,
    #[serde(default)]
    pub public_key_file: Option<PathBuf>,
    /// The PEM itself, instead of a file.
    #[serde(default)]
    pub public_key: Option<String>,
}

/// `[auth.users.NAME.permissions]`: destination patterns per permission; an absent list allows
/// nothing.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionsSection {
    #[serde(default)]
    pub read: Vec<String>,
    #[serde(default)]
    pub write: Vec<String>,
    #[serde(default)]
    pub admin: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocol {
    #[serde(deserialize_with = "duration")]
    pub heartbeat: Duration,
    #[serde(deserialize_with = "duration")]
    pub connect_timeout: Duration,
    #[serde(deserialize_with = "size")]
    pub max_frame_size: usize,
    pub max_headers: usize,
    #[serde(deserialize_with = "size")]
    pub max_header_line: usize,
    #[serde(deserialize_with = "size")]
    pub max_connect_frame: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerSection {
    pub default_prefetch: u32,
    pub topic_subscriber_buffer: usize,
    pub queue_memory_window: usize,
    #[serde(deserialize_with = "size")]
    pub queue_memory_window_bytes: usize,
    #[serde(deserialize_with = "duration")]
    pub consumer_stall: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shutdown {
    #[serde(deserialize_with = "duration")]
    pub grace: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Settings plus the parsed forms `validate` produced.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub settings: Settings,
    /// `listeners.stomp`'s address.
    pub stomp_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// RabbitMQ's management API (`listeners.rabbitmq_management.bind`), when configured.
    pub rabbitmq_management_addr: Option<SocketAddr>,
    /// Every STOMP listener, `stomp` first.
    pub stomp: Vec<StompSpec>,
    pub policy: QueuePolicy,
    pub auth: AuthSettings,
    pub oci: crate::oci_rest::OciSettings,
}

/// Reads the layers. `file` is `--config`; `env` is the process environment (a parameter so tests
/// need not mutate globals).
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Loaded, ConfigError> {
    let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
    if let Some(path) = file {
        builder = builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
    }
    let vars = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("STAMPEDE__"))
        .collect();
    builder = builder.add_source(
        Environment::with_prefix("STAMPEDE")
            .prefix_separator("__")
            .separator("__")
            .source(Some(vars)),
    );
    let settings: Settings = builder.build()?.try_deserialize()?;
    validate(settings)
}

pub(crate) fn invalid(
    key: impl Into<std::borrow::Cow<'static, str>>,
    problem: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

fn validate(settings: Settings) -> Result<Loaded, ConfigError> {
    let listeners::Addresses {
        http: http_addr,
        rabbitmq_management: rabbitmq_management_addr,
        stomp,
    } = listeners::listeners(&settings.listeners)?;
    let stomp_addr = stomp[0].addr;
    check_ranges(&settings)?;
    let policy = queues::policy(&settings.queues)?;
    let auth = auth_settings(&settings.auth)?;
    let oci = oci_settings(&settings.oci, &settings.auth)?;
    let users_listener = stomp.iter().find(|l| l.auth.mode == Some(Mode::Users));
    if let Some(l) = users_listener.filter(|_| auth.users.is_empty()) {
        return Err(invalid(
            format!("listeners.{}.auth", l.name),
            "\"users\" needs at least one [auth.users.NAME] with a password_hash",
        ));
    }
    Ok(Loaded {
        settings,
        stomp_addr,
        http_addr,
        rabbitmq_management_addr,
        stomp,
        policy,
        auth,
        oci,
    })
}

/// `[oci]` checked, and every user's OCI API keys read and parsed.
fn oci_settings(o: &OciSection, a: &Auth) -> Result<crate::oci_rest::OciSettings, ConfigError> {
    use crate::oci_rest::{OciSettings, PublicKey};
    let key = |k: &str| format!("oci.{k}");
    if o.max_messages_per_request == 0 {
        return Err(invalid(
            key("max_messages_per_request"),
            "must be at least 1",
        ));
    }
    if o.max_message_size == 0 {
        return Err(invalid(key("max_message_size"), "must be more than 0"));
    }
    if o.max_poll_timeout > Duration::from_secs(50) {
        // The SDKs' read timeout is 60 s: a longer poll would end as a client-side error.
        return Err(invalid(
            key("max_poll_timeout"),
            "must be at most 50s (OCI SDKs give up reading after 60s)",
        ));
    }
    if let Some(e) = o.messages_endpoint.as_deref() {
        if !(e.starts_with("http://") || e.starts_with("https://")) || e.ends_with('/') {
            return Err(invalid(
                key("messages_endpoint"),
                format!("{e:?} is not a base URL such as \"http://broker.local:8161\""),
            ));
        }
    }
    let mut keys = HashMap::new();
    for (user, u) in &a.users {
        for (i, k) in u.oci_api_keys.iter().enumerate() {
            let at = format!("auth.users.{user}.oci_api_keys[{i}]");
            let pem = match (&k.public_key, &k.public_key_file) {
                (Some(pem), None) => pem.clone(),
                (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
                    invalid(
                        format!("{at}.public_key_file"),
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?,
                _ => {
                    return Err(invalid(
                        at,
                        "give the key as exactly one of public_key_file or public_key",
                    ))
                }
            };
            let parsed = PublicKey::from_pem(&pem)
                .map_err(|e| invalid(format!("{at}.public_key"), e.to_string()))?;
            if keys
                .insert(k.key_id.clone(), (user.clone(), parsed))
                .is_some()
            {
                return Err(invalid(
                    format!("{at}.key_id"),
                    format!("{:?} is configured twice", k.key_id),
                ));
            }
        }
    }
    Ok(OciSettings {
        auto_create: o.auto_create.unwrap_or(a.mode == Mode::Open),
        messages_endpoint: o.messages_endpoint.clone(),
        max_messages: o.max_messages_per_request,
        max_message_size: o.max_message_size,
        max_visibility: o.max_visibility,
        max_poll_timeout: o.max_poll_timeout,
        clock_skew: o.clock_skew,
        keys: std::sync::Arc::new(keys),
    })
}

/// The `[auth]` section checked: every hash parses, the anonymous user exists, users mode has
/// someone to let in.
fn auth_settings(a: &Auth) -> Result<AuthSettings, ConfigError> {
    let mut users = HashMap::new();
    for (name, u) in &a.users {
        crate::auth::check_hash(&u.password_hash)
            .map_err(|e| invalid(format!("auth.users.{name}.password_hash"), e.to_string()))?;
        let permissions = match &u.permissions {
            None => Permissions::all(),
            Some(p) => {
                let list = |kind: &str, patterns: &[String]| {
                    patterns
                        .iter()
                        .map(|p| {
                            canonical_pattern(p).ok_or_else(|| {
                                invalid(
                                    format!("auth.users.{name}.permissions.{kind}"),
                                    format!(
                                        "{p:?} is not a destination pattern such as \
                                         /queue/orders.*, /topic/prices.*, ocid1.queue.* or *"
                                    ),
                                )
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()
                };
                Permissions::lists(
                    list("read", &p.read)?,
                    list("write", &p.write)?,
                    list("admin", &p.admin)?,
                )
            }
        };
        let user = User {
            password_hash: u.password_hash.as_str().into(),
            passcode_encoding: u.passcode_encoding,
            permissions: std::sync::Arc::new(permissions),
        };
        users.insert(name.clone(), user);
    }
    if let Some(anon) = a
        .anonymous_user
        .as_ref()
        .filter(|n| !users.contains_key(*n))
    {
        return Err(invalid(
            "auth.anonymous_user",
            format!("{anon:?} is not a configured user; add [auth.users.{anon}]"),
        ));
    }
    if a.mode == Mode::Users && users.is_empty() {
        return Err(invalid(
            "auth.users",
            "mode \"users\" needs at least one [auth.users.NAME] with a password_hash \
             (`stampede passwd` makes one)",
        ));
    }
    if a.failed_login_burst == 0 || a.failed_login_interval.is_zero() {
        return Err(invalid(
            "auth.failed_login_burst",
            "failed_login_burst must be at least 1 and failed_login_interval more than 0s",
        ));
    }
    Ok(AuthSettings {
        mode: a.mode,
        users,
        anonymous_user: a.anonymous_user.clone(),
        passcode_encoding: a.passcode_encoding,
        failed_login_burst: a.failed_login_burst,
        failed_login_interval: a.failed_login_interval,
    })
}

fn socket_addr(
    key: impl Into<std::borrow::Cow<'static, str>>,
    value: &str,
    example: &str,
) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        invalid(
            key,
            format!("{value:?} is not HOST:PORT with a numeric address, such as {example}"),
        )
    })
}

/// Every rule a value must keep, checked in order: (holds, key, what it must be).
fn check_ranges(s: &Settings) -> Result<(), ConfigError> {
    let (p, b, st) = (&s.protocol, &s.broker, &s.storage);
    let rules: [(bool, &'static str, &str); 12] = [
        (
            p.max_frame_size >= 1024,
            "protocol.max_frame_size",
            "must be at least 1KiB",
        ),
        (
            p.max_header_line >= 128,
            "protocol.max_header_line",
            "must be at least 128 bytes",
        ),
        (
            (1024..=p.max_frame_size).contains(&p.max_connect_frame),
            "protocol.max_connect_frame",
            "must be between 1KiB and protocol.max_frame_size",
        ),
        (
            !p.connect_timeout.is_zero(),
            "protocol.connect_timeout",
            "must be greater than 0",
        ),
        (
            b.default_prefetch > 0,
            "broker.default_prefetch",
            "must be at least 1",
        ),
        (
            b.queue_memory_window >= 2,
            "broker.queue_memory_window",
            "must be at least 2",
        ),
        (
            b.queue_memory_window_bytes >= 64 * 1024,
            "broker.queue_memory_window_bytes",
            "must be at least 64KiB",
        ),
        (
            st.max_pending_writes >= 64 * 1024,
            "storage.max_pending_writes",
            "must be at least 64KiB",
        ),
        (
            !b.consumer_stall.is_zero(),
            "broker.consumer_stall",
            "must be more than 0s",
        ),
        (
            b.topic_subscriber_buffer > 0,
            "broker.topic_subscriber_buffer",
            "must be at least 1",
        ),
        // sled 0.34 stores values over ~128 KiB as one blob file each and does not reclaim them
        // under churn (docs/storage.md, "Large bodies").
        (
            (1024..128 * 1024).contains(&st.large_body_threshold),
            "storage.large_body_threshold",
            "must be at least 1KiB and below 128KiB",
        ),
        (
            st.cache_capacity >= 1024 * 1024,
            "storage.cache_capacity",
            "must be at least 1MiB",
        ),
    ];
    let broken = rules.iter().find(|(holds, _, _)| !holds);
    match broken {
        Some((_, key, problem)) => Err(invalid(*key, (*problem).to_owned())),
        None => Ok(()),
    }
}

/// A duration such as `500ms`, `30s`, `5m`, `2h`, `7d`; a bare integer is seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let ms = match unit.trim() {
        "ms" => n,
        "" | "s" => n.checked_mul(1000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        "d" => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

/// A size such as `65536`, `64KiB`, `4MiB` (also `KB`/`MB`, which mean the same here).
pub fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num.parse().ok()?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "KB" | "K" => 1024,
        "MiB" | "MB" | "M" => 1024 * 1024,
        "GiB" | "GB" | "G" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrText {
    Num(u64),
    Text(String),
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    match NumOrText::deserialize(d)? {
        NumOrText::Num(n) => Ok(Duration::from_secs(n)),
        NumOrText::Text(t) => parse_duration(&t).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{t:?} is not a duration; expected a number with a unit such as 500ms, 30s, 5m, 7d"
            ))
        }),
    }
}

fn backend<'de, D: Deserializer<'de>>(d: D) -> Result<Backend, D::Error> {
    let name = String::deserialize(d)?;
    match name.as_str() {
        "sled" => Ok(Backend::Sled),
        "memory" => Ok(Backend::Memory),
        _ => Err(serde::de::Error::custom(format!(
            "{name:?} is not a storage backend; expected \"sled\" (on disk) or \"memory\" (ephemeral)"
        ))),
    }
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

fn opt_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    size(d).map(Some)
}

fn size<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    match NumOrText::deserialize(d)? {
        NumOrText::Num(n) => Ok(n as usize),
        NumOrText::Text(t) => parse_size(&t).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{t:?} is not a size; expected bytes or a unit such as 64KiB, 4MiB"
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn embedded_defaults_load() {
        let l = load(None, env(&[])).unwrap();
        assert_eq!(l.stomp_addr, "0.0.0.0:61613".parse().unwrap());
        assert_eq!(l.settings.protocol.max_frame_size, 4 * 1024 * 1024);
        assert_eq!(l.settings.protocol.heartbeat, Duration::from_millis(500));
        assert_eq!(l.settings.storage.data_dir, PathBuf::from("./data"));
    }

    #[test]
    fn environment_overrides_nested_keys() {
        let l = load(
            None,
            env(&[
                ("STAMPEDE__LISTENERS__STOMP__BIND", "127.0.0.1:7000"),
                ("STAMPEDE__PROTOCOL__HEARTBEAT", "2s"),
                ("STAMPEDE__BROKER__DEFAULT_PREFETCH", "7"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(l.stomp_addr.port(), 7000);
        assert_eq!(l.settings.protocol.heartbeat, Duration::from_secs(2));
        assert_eq!(l.settings.broker.default_prefetch, 7);
    }

    #[test]
    fn errors_name_the_key_and_the_form() {
        let e = load(
            None,
            env(&[("STAMPEDE__LISTENERS__STOMP__BIND", "nowhere")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("listeners.stomp.bind") && e.contains("HOST:PORT"),
            "{e}"
        );
        let e = load(None, env(&[("STAMPEDE__PROTOCOL__HEARTBEAT", "soon")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("heartbeat") && e.contains("30s"), "{e}");
        let e = load(None, env(&[("STAMPEDE__AUTH__MODE", "users")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("auth.users") && e.contains("stampede passwd"),
            "{e}"
        );
        let e = load(None, env(&[("STAMPEDE__AUTH__MODE", "ldap")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("auth.mode") || e.contains("ldap"), "{e}");
    }

    #[test]
    fn users_keep_their_names_and_bad_hashes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("broker.toml");
        let hash = crate::auth::hash_password("pw").unwrap();
        std::fs::write(
            &file,
            format!(
                "[auth]\nmode = \"users\"\nanonymous_user = \"Guest\"\n\
                 [auth.users.Guest]\npassword_hash = \"{hash}\"\n\
                 [auth.users.\"tenancy/oracleidentitycloudservice/jane.doe\"]\n\
                 password_hash = \"{hash}\"\npasscode_encoding = \"base64\"\n"
            ),
        )
        .unwrap();
        let l = load(Some(&file), env(&[])).unwrap();
        assert_eq!(l.auth.mode, Mode::Users);
        let oci = &l.auth.users["tenancy/oracleidentitycloudservice/jane.doe"];
        assert_eq!(oci.passcode_encoding, Some(PasscodeEncoding::Base64));
        assert!(l.auth.users.contains_key("Guest"));
        let e = load(
            Some(&file),
            env(&[("STAMPEDE__AUTH__USERS__GUEST__PASSWORD_HASH", "plain")]),
        )
        .map(|_| ())
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("password_hash") && e.contains("stampede passwd"),
            "{e}"
        );
    }

    /// docs/configuration.md against broker.toml and the loader: every key broker.toml sets is a
    /// row, and every row's key, with its documented value, is one the loader knows (setting it
    /// may still fail validation alone, e.g. a `cert` without its `key`; never as unknown or of
    /// the wrong type).
    #[test]
    fn the_reference_lists_every_key_and_only_keys_that_exist() {
        let doc = include_str!("../../../../docs/configuration.md");
        let rows: Vec<(String, String)> = doc
            .lines()
            .filter_map(|l| {
                let (key, rest) = l.strip_prefix("| `")?.split_once("` | ")?;
                let value = rest.split(" | ").next()?.trim().trim_matches('`');
                Some((key.to_owned(), value.to_owned()))
            })
            .collect();
        assert!(rows.len() > 40, "{} rows", rows.len());
        fn leaves(t: &toml::Table, prefix: &str, out: &mut Vec<String>) {
            for (k, v) in t {
                let key = format!("{prefix}{k}");
                match v {
                    toml::Value::Table(inner) => leaves(inner, &format!("{key}."), out),
                    _ => out.push(key),
                }
            }
        }
        let mut defaults = Vec::new();
        leaves(&DEFAULTS.parse::<toml::Table>().unwrap(), "", &mut defaults);
        for key in &defaults {
            assert!(
                rows.iter().any(|(k, _)| k == key),
                "broker.toml's {key} is not in docs/configuration.md"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("one.toml");
        for (key, value) in &rows {
            let value = if value == "—" { "\"guest\"" } else { value };
            std::fs::write(&file, format!("{} = {value}\n", key.replace("NAME", "x"))).unwrap();
            match load(Some(&file), env(&[])) {
                Ok(_) | Err(ConfigError::Invalid { .. }) => {}
                Err(e) => {
                    let e = e.to_string();
                    assert!(
                        e.contains("missing configuration field"),
                        "{key} = {value}: {e}"
                    );
                }
            }
        }
    }

    #[test]
    fn units_parse() {
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_duration("3 weeks"), None);
        assert_eq!(parse_size("64KiB"), Some(65536));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("1TB"), None);
    }
}
