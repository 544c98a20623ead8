//! Typed client commands. A raw [`Frame`] from a client becomes a [`Request`] here: required
//! headers are checked, values are parsed per the negotiated version, and the STOMP header
//! conventions other brokers established (`expires`, `persistent`, `reply-to`, `priority`,
//! scheduled delivery, dead-letter routing, durable subscription names, RabbitMQ's queue binding)
//! become typed fields. Nothing after this layer reads a raw header map.
//!
//! The conventions are parsed leniently, as the brokers Stampede stands in for treat them: a value
//! that does not parse is ignored (and still forwarded to consumers), never a protocol error.

use std::time::Duration;

use bytes::Bytes;

use crate::{Command, Frame, Headers, ProtoError, Version};

/// How a subscription acknowledges (STOMP 1.2 "SUBSCRIBE ack Header").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    /// Acked as soon as the broker has written the MESSAGE to the socket.
    Auto,
    /// An ACK covers the named message and every earlier one on the same subscription.
    Client,
    /// An ACK covers only the named message.
    ClientIndividual,
}

impl AckMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AckMode::Auto => "auto",
            AckMode::Client => "client",
            AckMode::ClientIndividual => "client-individual",
        }
    }
}

/// CONNECT / STOMP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// Highest version both sides speak.
    pub version: Version,
    pub host: Option<String>,
    pub login: Option<String>,
    pub passcode: Option<String>,
    /// `(cx, cy)`: what the client can send, what it wants to receive, in ms (0 = none).
    pub heart_beat: (u64, u64),
    /// ActiveMQ's `client-id`: names the connection for durable topic subscriptions.
    pub client_id: Option<String>,
}

/// When a message should first be delivered, from ActiveMQ's `AMQ_SCHEDULED_DELAY`,
/// `AMQ_SCHEDULED_PERIOD` and `AMQ_SCHEDULED_REPEAT` or RabbitMQ's `x-delay` (all milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Wait this long before the first delivery.
    pub delay: Duration,
    /// Deliver again every `period`, `repeat` more times (ActiveMQ only).
    pub period: Option<Duration>,
    pub repeat: u32,
}

/// SEND.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendCommand {
    pub destination: String,
    pub transaction: Option<String>,
    /// The application headers to forward to consumers, every repeat in order: the framing
    /// headers (`receipt`, `transaction`, `content-length`) and `destination` (a MESSAGE carries
    /// the subscription's own) are removed. The conventions below stay, for consumers that read
    /// them.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// `expires`: milliseconds since the Unix epoch after which the message is dropped.
    pub expires: Option<u64>,
    /// `persistent`: a message is persistent unless it says `persistent: false`.
    pub persistent: bool,
    /// `reply-to`: where the consumer should answer.
    pub reply_to: Option<String>,
    /// `priority`: 0 (lowest) to 9 (highest), JMS style.
    pub priority: Option<u8>,
    pub schedule: Option<Schedule>,
}

/// A durable topic subscription's name, in whichever dialect the client spoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurableName {
    pub name: String,
    pub dialect: Dialect,
}

/// Where a durable subscription's name came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// ActiveMQ Classic: `activemq.subscriptionName`, scoped by the connection's `client-id`.
    ActiveMq,
    /// ActiveMQ Artemis: `durable-subscription-name`, scoped by the connection's `client-id`.
    Artemis,
    /// RabbitMQ: `durable: true` with `auto-delete: false`; the subscription `id` is the name.
    RabbitMq,
}

/// RabbitMQ's queue flags on a SUBSCRIBE (`durable`, alias `persistent`; `auto-delete`;
/// `exclusive`), each `None` when the header is absent or not a boolean.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueFlags {
    pub durable: Option<bool>,
    pub auto_delete: Option<bool>,
    pub exclusive: Option<bool>,
}

/// SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeCommand {
    pub destination: String,
    pub id: String,
    pub ack: AckMode,
    /// `prefetch-count` or `activemq.prefetchSize`, when the client bounds unacked messages.
    pub prefetch: Option<u32>,
    /// Artemis' `consumer-window-size`: most unsettled message bytes, `Some(0)` one message at a
    /// time; `None` (absent or `-1`) unbounded.
    pub window_bytes: Option<u64>,
    /// RabbitMQ's `x-dead-letter-routing-key`: where this queue's dead letters go.
    pub dead_letter_queue: Option<String>,
    /// A durable topic subscription, in any of the three dialects.
    pub durable: Option<DurableName>,
    /// RabbitMQ's `x-queue-name`: the durable queue a topic subscription binds to.
    pub queue_name: Option<String>,
    pub flags: QueueFlags,
    /// A `client-id` on the SUBSCRIBE itself (django-stomp sends it on both frames); the
    /// connection's, from CONNECT, comes first.
    pub client_id: Option<String>,
}

/// UNSUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubscribeCommand {
    /// The subscription `id` (1.0: the destination).
    pub id: String,
    /// Set when the frame also asks to remove the durable subscription behind it, in its dialect's
    /// way: ActiveMQ and Artemis repeat the subscription name, RabbitMQ repeats `durable: true`
    /// and `auto-delete: false`.
    pub durable: Option<DurableName>,
}

/// ACK or NACK. `id` is the 1.2 `id` or the 1.0/1.1 `message-id`; both resolve the same delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckCommand {
    pub id: String,
    pub subscription: Option<String>,
    pub transaction: Option<String>,
    /// NACK `requeue: false` dead-letters at once (RabbitMQ convention).
    pub requeue: bool,
    /// NACK `x-delay` (ms): visible again after this long instead of the queue's redelivery
    /// delay.
    pub delay_ms: Option<u64>,
}

/// The longest NACK `x-delay` accepted: 12 h, the longest any queue wait may be.
pub const MAX_DELAY_MS: u64 = 12 * 3600 * 1000;

/// What a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCommand {
    Connect(Connect),
    Send(SendCommand),
    Subscribe(SubscribeCommand),
    Unsubscribe(UnsubscribeCommand),
    Ack(AckCommand),
    Nack(AckCommand),
    Begin { transaction: String },
    Commit { transaction: String },
    Abort { transaction: String },
    Disconnect,
}

/// A client command plus the `receipt` it asked for, which any frame may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub receipt: Option<String>,
    pub command: ClientCommand,
}

impl Request {
    /// Validates `frame` as sent by a client speaking `version`.
    pub fn from_frame(frame: Frame, version: Version) -> Result<Request, ProtoError> {
        let receipt = frame.headers.get("receipt").map(str::to_owned);
        let name = frame.command.as_str();
        let h = &frame.headers;
        let command = match frame.command {
            Command::Connect | Command::Stomp => ClientCommand::Connect(connect(h)?),
            Command::Send => return send(frame, receipt),
            Command::Subscribe => ClientCommand::Subscribe(subscribe(h, version)?),
            Command::Unsubscribe => {
                let id = h
                    .get("id")
                    .or_else(|| h.get("destination"))
                    .ok_or(ProtoError::MissingHeader {
                        command: name,
                        header: "id",
                    })?
                    .to_owned();
                ClientCommand::Unsubscribe(UnsubscribeCommand {
                    durable: durable(h, &id),
                    id,
                })
            }
            Command::Ack => ClientCommand::Ack(ack(h, name)?),
            Command::Nack => ClientCommand::Nack(ack(h, name)?),
            Command::Begin => ClientCommand::Begin {
                transaction: required(h, name, "transaction")?,
            },
            Command::Commit => ClientCommand::Commit {
                transaction: required(h, name, "transaction")?,
            },
            Command::Abort => ClientCommand::Abort {
                transaction: required(h, name, "transaction")?,
            },
            Command::Disconnect => ClientCommand::Disconnect,
            Command::Connected | Command::Message | Command::Receipt | Command::Error => {
                return Err(ProtoError::ServerCommand(name))
            }
        };
        Ok(Request { receipt, command })
    }
}

fn required(
    h: &Headers,
    command: &'static str,
    header: &'static str,
) -> Result<String, ProtoError> {
    h.get(header)
        .map(str::to_owned)
        .ok_or(ProtoError::MissingHeader { command, header })
}

fn connect(h: &Headers) -> Result<Connect, ProtoError> {
    let accept = h.get("accept-version");
    let version = Version::negotiate(accept)
        .ok_or_else(|| ProtoError::UnsupportedVersion(accept.unwrap_or_default().to_owned()))?;
    let heart_beat = match h.get("heart-beat") {
        None => (0, 0),
        Some(v) => parse_heart_beat(v).ok_or_else(|| ProtoError::InvalidHeader {
            header: "heart-beat",
            value: v.to_owned(),
            expected: "two comma-separated millisecond counts such as 10000,10000",
        })?,
    };
    let owned = |name| h.get(name).map(str::to_owned);
    Ok(Connect {
        version,
        host: owned("host"),
        login: owned("login"),
        passcode: owned("passcode"),
        heart_beat,
        client_id: owned("client-id").filter(|c| !c.is_empty()),
    })
}

fn parse_heart_beat(v: &str) -> Option<(u64, u64)> {
    let (a, b) = v.split_once(',')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// Headers that frame a SEND rather than describe the message; they are not forwarded.
const SEND_FRAMING: &[&str] = &["receipt", "transaction", "content-length", "destination"];

fn send(frame: Frame, receipt: Option<String>) -> Result<Request, ProtoError> {
    let h = &frame.headers;
    let destination = required(h, "SEND", "destination")?;
    let transaction = h.get("transaction").map(str::to_owned);
    let number = |name: &str| h.get(name).and_then(|v| v.trim().parse::<u64>().ok());
    let expires = number("expires").filter(|&ms| ms > 0);
    let persistent = !h
        .get("persistent")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("false"));
    let reply_to = h
        .get("reply-to")
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    let priority = number("priority").filter(|&p| p <= 9).map(|p| p as u8);
    let schedule = schedule(&number);
    let headers = frame.headers.forwarded(SEND_FRAMING);
    Ok(Request {
        receipt,
        command: ClientCommand::Send(SendCommand {
            destination,
            transaction,
            headers,
            body: frame.body,
            expires,
            persistent,
            reply_to,
            priority,
            schedule,
        }),
    })
}

fn schedule(number: &dyn Fn(&str) -> Option<u64>) -> Option<Schedule> {
    let ms = Duration::from_millis;
    let delay = number("AMQ_SCHEDULED_DELAY").or_else(|| number("x-delay"));
    let period = number("AMQ_SCHEDULED_PERIOD").filter(|&p| p > 0).map(ms);
    let repeat = number("AMQ_SCHEDULED_REPEAT")
        .unwrap_or(0)
        .min(u32::MAX as u64) as u32;
    if delay.unwrap_or(0) == 0 && (period.is_none() || repeat == 0) {
        return None;
    }
    Some(Schedule {
        delay: ms(delay.unwrap_or(0)),
        period: period.filter(|_| repeat > 0),
        repeat: if period.is_some() { repeat } else { 0 },
    })
}

fn subscribe(h: &Headers, version: Version) -> Result<SubscribeCommand, ProtoError> {
    let destination = required(h, "SUBSCRIBE", "destination")?;
    // 1.0 made `id` optional; the destination then names the subscription, as ActiveMQ does.
    let id = match (h.get("id"), version) {
        (Some(id), _) => id.to_owned(),
        (None, Version::V1_0) => destination.clone(),
        (None, _) => {
            return Err(ProtoError::MissingHeader {
                command: "SUBSCRIBE",
                header: "id",
            })
        }
    };
    let ack = match h.get("ack").unwrap_or("auto") {
        "auto" => AckMode::Auto,
        "client" => AckMode::Client,
        "client-individual" => AckMode::ClientIndividual,
        other => {
            return Err(ProtoError::InvalidHeader {
                header: "ack",
                value: other.to_owned(),
                expected: "auto, client or client-individual",
            })
        }
    };
    let prefetch = prefetch(h)?;
    let window_bytes = window_bytes(h)?;
    let present = |name| h.get(name).filter(|v| !v.is_empty()).map(str::to_owned);
    Ok(SubscribeCommand {
        durable: durable(h, &id),
        destination,
        id,
        ack,
        prefetch,
        window_bytes,
        dead_letter_queue: present("x-dead-letter-routing-key"),
        queue_name: present("x-queue-name"),
        flags: QueueFlags {
            durable: flag(h, "durable").or_else(|| flag(h, "persistent")),
            auto_delete: flag(h, "auto-delete"),
            exclusive: flag(h, "exclusive"),
        },
        client_id: present("client-id"),
    })
}

/// A boolean header as the peers read them: `true`/`false` in any case (django-stomp sends
/// Python's `False`); anything else is as good as absent.
fn flag(h: &Headers, name: &str) -> Option<bool> {
    let v = h.get(name)?.trim();
    if v.eq_ignore_ascii_case("true") {
        Some(true)
    } else if v.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// The three ways clients name a durable topic subscription, on SUBSCRIBE and on the UNSUBSCRIBE
/// that removes it. ActiveMQ's header is also read misspelt as `activemq.subcriptionName`
/// (django-stomp sends both spellings), Artemis' also as `durable-subscriber-name`; RabbitMQ's
/// `durable` also as its older alias `persistent`.
fn durable(h: &Headers, id: &str) -> Option<DurableName> {
    let named = |headers: &[&str], dialect| {
        headers
            .iter()
            .find_map(|header| h.get(header).filter(|v| !v.is_empty()))
            .map(|v| DurableName {
                name: v.to_owned(),
                dialect,
            })
    };
    let durable = flag(h, "durable").or_else(|| flag(h, "persistent"));
    named(
        &["activemq.subscriptionName", "activemq.subcriptionName"],
        Dialect::ActiveMq,
    )
    .or_else(|| {
        named(
            &["durable-subscription-name", "durable-subscriber-name"],
            Dialect::Artemis,
        )
    })
    .or_else(|| {
        (durable == Some(true) && flag(h, "auto-delete") == Some(false)).then(|| DurableName {
            name: id.to_owned(),
            dialect: Dialect::RabbitMq,
        })
    })
}

fn prefetch(h: &Headers) -> Result<Option<u32>, ProtoError> {
    for header in ["prefetch-count", "activemq.prefetchSize"] {
        if let Some(v) = h.get(header) {
            let n: u32 = v.trim().parse().map_err(|_| ProtoError::InvalidHeader {
                header,
                value: v.to_owned(),
                expected: "a non-negative integer",
            })?;
            // 0 means "no limit" to ActiveMQ's pull consumers; treat it as the default.
            return Ok((n > 0).then_some(n));
        }
    }
    Ok(None)
}

fn window_bytes(h: &Headers) -> Result<Option<u64>, ProtoError> {
    const HEADER: &str = "consumer-window-size";
    let Some(v) = h.get(HEADER) else {
        return Ok(None);
    };
    match v.trim() {
        "-1" => Ok(None),
        n => n.parse().map(Some).map_err(|_| ProtoError::InvalidHeader {
            header: HEADER,
            value: v.to_owned(),
            expected: "a number of bytes, 0 (one message at a time) or -1 (unbounded)",
        }),
    }
}

fn ack(h: &Headers, command: &'static str) -> Result<AckCommand, ProtoError> {
    // Be liberal: accept the 1.2 `id` and the 1.0/1.1 `message-id` in any version.
    let id = h
        .get("id")
        .or_else(|| h.get("message-id"))
        .ok_or(ProtoError::MissingHeader {
            command,
            header: "id",
        })?
        .to_owned();
    let requeue = match h.get("requeue") {
        None => true,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(v) => {
            return Err(ProtoError::InvalidHeader {
                header: "requeue",
                value: v.to_owned(),
                expected: "true or false",
            })
        }
    };
    // Only a NACK gives a message back; an ACK's `x-delay` is an application header.
    let delay_ms = match h.get("x-delay").filter(|_| command == "NACK") {
        None => None,
        Some(v) => Some(
            v.trim()
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms <= MAX_DELAY_MS)
                .ok_or_else(|| ProtoError::InvalidHeader {
                    header: "x-delay",
                    value: v.to_owned(),
                    expected: "milliseconds from 0 to 43200000 (12 h)",
                })?,
        ),
    };
    Ok(AckCommand {
        id,
        subscription: h.get("subscription").map(str::to_owned),
        transaction: h.get("transaction").map(str::to_owned),
        requeue,
        delay_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(f: Frame, v: Version) -> Result<Request, ProtoError> {
        Request::from_frame(f, v)
    }

    fn send_of(f: Frame) -> SendCommand {
        match req(f, Version::V1_2).unwrap().command {
            ClientCommand::Send(s) => s,
            other => panic!("not a SEND: {other:?}"),
        }
    }

    fn subscribe_of(f: Frame) -> SubscribeCommand {
        match req(f, Version::V1_2).unwrap().command {
            ClientCommand::Subscribe(s) => s,
            other => panic!("not a SUBSCRIBE: {other:?}"),
        }
    }

    #[test]
    fn connect_negotiates_versions_and_heart_beats() {
        let f = Frame::new(Command::Stomp)
            .header("accept-version", "1.1,1.2")
            .header("heart-beat", "100,200")
            .header("client-id", "app-1");
        let Request {
            command: ClientCommand::Connect(c),
            ..
        } = req(f, Version::V1_0).unwrap()
        else {
            panic!("not a connect")
        };
        assert_eq!(c.version, Version::V1_2);
        assert_eq!(c.heart_beat, (100, 200));
        assert_eq!(c.client_id.as_deref(), Some("app-1"));
        let bare = req(Frame::new(Command::Connect), Version::V1_0).unwrap();
        assert!(matches!(
            bare.command,
            ClientCommand::Connect(Connect {
                version: Version::V1_0,
                client_id: None,
                ..
            })
        ));
        let bad = Frame::new(Command::Connect).header("accept-version", "2.0");
        assert!(matches!(
            req(bad, Version::V1_0),
            Err(ProtoError::UnsupportedVersion(_))
        ));
    }

    #[test]
    fn send_strips_framing_headers_and_keeps_every_repeat_in_order() {
        let f = Frame::new(Command::Send)
            .header("destination", "/queue/a")
            .header("receipt", "r1")
            .header("transaction", "t")
            .header("x", "1")
            .header("x", "2")
            .body("hi");
        let r = req(f, Version::V1_2).unwrap();
        assert_eq!(r.receipt.as_deref(), Some("r1"));
        let ClientCommand::Send(s) = r.command else {
            panic!()
        };
        assert_eq!(s.transaction.as_deref(), Some("t"));
        assert_eq!(s.destination, "/queue/a");
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(s.headers, [pair("x", "1"), pair("x", "2")]);
        assert_eq!(s.headers.capacity(), 2, "no room kept for what was dropped");
        assert!(s.persistent);
    }

    #[test]
    fn send_conventions_become_typed_fields_and_stay_forwarded() {
        let s = send_of(
            Frame::new(Command::Send)
                .header("destination", "q")
                .header("expires", "1700000000000")
                .header("persistent", "FALSE")
                .header("reply-to", "/temp-queue/answers")
                .header("priority", "7")
                .header("AMQ_SCHEDULED_DELAY", "1500")
                .header("AMQ_SCHEDULED_PERIOD", "100")
                .header("AMQ_SCHEDULED_REPEAT", "3"),
        );
        assert_eq!(s.expires, Some(1_700_000_000_000));
        assert!(!s.persistent);
        assert_eq!(s.reply_to.as_deref(), Some("/temp-queue/answers"));
        assert_eq!(s.priority, Some(7));
        assert_eq!(
            s.schedule,
            Some(Schedule {
                delay: Duration::from_millis(1500),
                period: Some(Duration::from_millis(100)),
                repeat: 3,
            })
        );
        assert_eq!(s.headers.len(), 7, "conventions are forwarded as they came");
        let rabbit = send_of(
            Frame::new(Command::Send)
                .header("destination", "q")
                .header("x-delay", "250"),
        );
        assert_eq!(
            rabbit.schedule.map(|s| (s.delay, s.period, s.repeat)),
            Some((Duration::from_millis(250), None, 0))
        );
    }

    #[test]
    fn unparseable_conventions_are_ignored_not_errors() {
        let s = send_of(
            Frame::new(Command::Send)
                .header("destination", "q")
                .header("expires", "tomorrow")
                .header("persistent", "maybe")
                .header("priority", "12")
                .header("AMQ_SCHEDULED_DELAY", "-5")
                .header("reply-to", ""),
        );
        assert_eq!(
            (s.expires, s.persistent, s.priority, s.schedule, s.reply_to),
            (None, true, None, None, None)
        );
        let zero = send_of(
            Frame::new(Command::Send)
                .header("destination", "q")
                .header("expires", "0")
                .header("AMQ_SCHEDULED_DELAY", "0"),
        );
        assert_eq!((zero.expires, zero.schedule), (None, None));
    }

    #[test]
    fn durable_subscriptions_in_three_dialects() {
        let sub = |extra: &[(&str, &str)]| {
            let mut f = Frame::new(Command::Subscribe)
                .header("destination", "/topic/t")
                .header("id", "sub-1");
            for (k, v) in extra {
                f = f.header(k, *v);
            }
            subscribe_of(f).durable
        };
        let named = |name: &str, dialect| {
            Some(DurableName {
                name: name.to_owned(),
                dialect,
            })
        };
        assert_eq!(
            sub(&[("activemq.subscriptionName", "audit")]),
            named("audit", Dialect::ActiveMq)
        );
        assert_eq!(
            sub(&[("durable-subscription-name", "audit")]),
            named("audit", Dialect::Artemis)
        );
        assert_eq!(
            sub(&[("activemq.subcriptionName", "misspelt")]),
            named("misspelt", Dialect::ActiveMq),
            "django-stomp's spelling"
        );
        assert_eq!(
            sub(&[("durable-subscriber-name", "audit")]),
            named("audit", Dialect::Artemis)
        );
        assert_eq!(
            sub(&[("persistent", "true"), ("auto-delete", "false")]),
            named("sub-1", Dialect::RabbitMq),
            "RabbitMQ's older alias"
        );
        assert_eq!(
            sub(&[("durable", "true"), ("auto-delete", "false")]),
            named("sub-1", Dialect::RabbitMq)
        );
        assert_eq!(
            sub(&[("durable", "true")]),
            None,
            "auto-delete defaults to true"
        );
        assert_eq!(sub(&[]), None);
    }

    #[test]
    fn subscribe_carries_dead_letter_and_queue_binding_headers() {
        let s = subscribe_of(
            Frame::new(Command::Subscribe)
                .header("destination", "/topic/t")
                .header("id", "1")
                .header("x-dead-letter-routing-key", "/queue/parked")
                .header("x-queue-name", "orders"),
        );
        assert_eq!(s.dead_letter_queue.as_deref(), Some("/queue/parked"));
        assert_eq!(s.queue_name.as_deref(), Some("orders"));
    }

    #[test]
    fn queue_flags_read_any_case_and_unsubscribe_names_what_it_removes() {
        let s = subscribe_of(
            Frame::new(Command::Subscribe)
                .header("destination", "/topic/t")
                .header("id", "1")
                .header("durable", "True")
                .header("auto-delete", "FALSE")
                .header("exclusive", "maybe")
                .header("client-id", "app"),
        );
        assert_eq!(
            s.flags,
            QueueFlags {
                durable: Some(true),
                auto_delete: Some(false),
                exclusive: None,
            }
        );
        assert_eq!(s.client_id.as_deref(), Some("app"));
        let unsub = |f: Frame| match req(f, Version::V1_2).unwrap().command {
            ClientCommand::Unsubscribe(u) => u,
            other => panic!("{other:?}"),
        };
        let plain = unsub(Frame::new(Command::Unsubscribe).header("id", "1"));
        assert_eq!((plain.id.as_str(), plain.durable), ("1", None));
        let removing = unsub(
            Frame::new(Command::Unsubscribe)
                .header("id", "1")
                .header("activemq.subscriptionName", "audit"),
        );
        assert_eq!(
            removing.durable,
            Some(DurableName {
                name: "audit".into(),
                dialect: Dialect::ActiveMq
            })
        );
    }

    #[test]
    fn missing_headers_name_the_header() {
        let e = req(Frame::new(Command::Send), Version::V1_2).unwrap_err();
        assert_eq!(
            e.to_string(),
            "SEND frame is missing the required \"destination\" header"
        );
        let sub = Frame::new(Command::Subscribe).header("destination", "/queue/a");
        assert!(req(sub.clone(), Version::V1_1).is_err());
        let Request {
            command: ClientCommand::Subscribe(s),
            ..
        } = req(sub, Version::V1_0).unwrap()
        else {
            panic!()
        };
        assert_eq!(s.id, "/queue/a");
    }

    #[test]
    fn ack_accepts_id_or_message_id_and_requeue() {
        let f = Frame::new(Command::Nack)
            .header("message-id", "m1")
            .header("requeue", "false");
        let ClientCommand::Nack(a) = req(f, Version::V1_1).unwrap().command else {
            panic!()
        };
        assert_eq!(a.id, "m1");
        assert!(!a.requeue);
        let bad = Frame::new(Command::Subscribe)
            .header("destination", "d")
            .header("id", "1")
            .header("ack", "sometimes");
        assert!(matches!(
            req(bad, Version::V1_2),
            Err(ProtoError::InvalidHeader { header: "ack", .. })
        ));
    }
}
