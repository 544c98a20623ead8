//! Typed client commands. A raw [`Frame`] from a client becomes a [`Request`] here, with required
//! headers checked and values parsed per the negotiated version, so the broker never reads raw
//! header maps.

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
    pub headers: Headers,
}

/// SEND. `headers` are the application headers to forward (framing headers removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendFrame {
    pub destination: String,
    pub transaction: Option<String>,
    pub headers: Headers,
    pub body: Bytes,
}

/// SUBSCRIBE. `headers` keeps the rest for destination-specific options (durable names, selectors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub destination: String,
    pub id: String,
    pub ack: AckMode,
    /// `prefetch-count` or `activemq.prefetchSize`, when the client bounds unacked messages.
    pub prefetch: Option<u32>,
    pub headers: Headers,
}

/// ACK or NACK. `id` is the 1.2 `id` or the 1.0/1.1 `message-id`; both resolve the same delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckRequest {
    pub id: String,
    pub subscription: Option<String>,
    pub transaction: Option<String>,
    /// NACK `requeue: false` dead-letters at once (RabbitMQ convention).
    pub requeue: bool,
}

/// What a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCommand {
    Connect(Connect),
    Send(SendFrame),
    Subscribe(Subscribe),
    Unsubscribe { id: String },
    Ack(AckRequest),
    Nack(AckRequest),
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
            Command::Unsubscribe => ClientCommand::Unsubscribe {
                id: h
                    .get("id")
                    .or_else(|| h.get("destination"))
                    .ok_or(ProtoError::MissingHeader {
                        command: name,
                        header: "id",
                    })?
                    .to_owned(),
            },
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
    Ok(Connect {
        version,
        host: h.get("host").map(str::to_owned),
        login: h.get("login").map(str::to_owned),
        passcode: h.get("passcode").map(str::to_owned),
        heart_beat,
        headers: h.clone(),
    })
}

fn parse_heart_beat(v: &str) -> Option<(u64, u64)> {
    let (a, b) = v.split_once(',')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// Headers that frame a SEND rather than describe the message; they are not forwarded.
const SEND_FRAMING: &[&str] = &["receipt", "transaction", "content-length"];

fn send(frame: Frame, receipt: Option<String>) -> Result<Request, ProtoError> {
    let destination = required(&frame.headers, "SEND", "destination")?;
    let transaction = frame.headers.get("transaction").map(str::to_owned);
    let mut headers = frame.headers.first_of_each();
    headers.retain(|k| !SEND_FRAMING.contains(&k));
    Ok(Request {
        receipt,
        command: ClientCommand::Send(SendFrame {
            destination,
            transaction,
            headers,
            body: frame.body,
        }),
    })
}

fn subscribe(h: &Headers, version: Version) -> Result<Subscribe, ProtoError> {
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
    Ok(Subscribe {
        destination,
        id,
        ack,
        prefetch,
        headers: h.clone(),
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

fn ack(h: &Headers, command: &'static str) -> Result<AckRequest, ProtoError> {
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
    Ok(AckRequest {
        id,
        subscription: h.get("subscription").map(str::to_owned),
        transaction: h.get("transaction").map(str::to_owned),
        requeue,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(f: Frame, v: Version) -> Result<Request, ProtoError> {
        Request::from_frame(f, v)
    }

    #[test]
    fn connect_negotiates_versions_and_heart_beats() {
        let f = Frame::new(Command::Stomp)
            .header("accept-version", "1.1,1.2")
            .header("heart-beat", "100,200");
        let Request {
            command: ClientCommand::Connect(c),
            ..
        } = req(f, Version::V1_0).unwrap()
        else {
            panic!("not a connect")
        };
        assert_eq!(c.version, Version::V1_2);
        assert_eq!(c.heart_beat, (100, 200));
        let bare = req(Frame::new(Command::Connect), Version::V1_0).unwrap();
        assert!(matches!(
            bare.command,
            ClientCommand::Connect(Connect {
                version: Version::V1_0,
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
    fn send_strips_framing_headers_and_keeps_first_repeat() {
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
        let names: Vec<_> = s.headers.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(names, ["destination=/queue/a", "x=1"]);
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
