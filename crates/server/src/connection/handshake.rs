//! CONNECT/STOMP: version negotiation, heart-beat agreement and authentication (the `host` header
//! is accepted whatever it says, since clients put their DNS name there).

use std::net::SocketAddr;
use std::time::Duration;

use stampede_proto::{ClientCommand, Command, Frame, Request, Version};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::ConnError;
use crate::auth::{Credentials, Identity};
use crate::hub::Profile;
use crate::ConnectionSettings;

/// Agreed heart-beat intervals; `None` = not used in that direction.
#[derive(Debug, Clone, Copy, Default)]
pub struct Heartbeat {
    /// We write at least this often.
    pub send: Option<Duration>,
    /// The client must be heard from at least this often (we allow 1.5x).
    pub receive: Option<Duration>,
}

/// What a successful CONNECT established.
pub struct Accepted {
    /// The CONNECTED frame, without `session` (the caller adds it).
    pub connected: Frame,
    pub version: Version,
    pub heartbeat: Heartbeat,
    pub identity: Identity,
    /// ActiveMQ's `client-id`, which scopes durable subscriptions.
    pub client_id: Option<String>,
    /// The listener refuses what OCI Queue refuses.
    pub oci_strict: bool,
}

/// Validates the first frame and decides who the client is, by `deadline` (the connect deadline).
pub async fn accept(
    frame: Frame,
    settings: &ConnectionSettings,
    (peer, listener, cert_login): (SocketAddr, Profile, Option<&str>),
    deadline: Instant,
) -> Result<Accepted, ConnError> {
    if !matches!(frame.command, Command::Connect | Command::Stomp) {
        return Err(ConnError::NotConnect(frame.command));
    }
    let req = Request::from_frame(frame, Version::V1_0)?;
    let ClientCommand::Connect(connect) = req.command else {
        return Err(ConnError::AlreadyConnected);
    };
    // The broker offers the smallest interval it can keep (`protocol.heartbeat`, a floor), so
    // the client's wish decides, as with RabbitMQ and ActiveMQ: a client asking for 1 s hears
    // from the broker every second, not at some larger interval of the broker's own.
    let offer = settings.heartbeat.as_millis() as u64;
    let (cx, cy) = connect.heart_beat;
    // Spec 1.2 "Heart-beating": each direction uses the larger of what one side can do and the
    // other wants, and is off when either side says 0.
    let agree = |ours: u64, theirs: u64| (ours > 0 && theirs > 0).then(|| ours.max(theirs));
    let send = agree(offer, cy);
    let receive = agree(offer, cx);
    let ms = |d: Option<u64>| d.unwrap_or(0).to_string();
    let connected = Frame::new(Command::Connected)
        .header("version", connect.version.as_str())
        .header("server", concat!("Stampede/", env!("CARGO_PKG_VERSION")))
        .header("heart-beat", format!("{},{}", ms(send), ms(receive)));
    let (login, passcode) = (connect.login.as_deref(), connect.passcode.as_deref());
    let identity = settings
        .auth
        .login(
            Credentials {
                login,
                passcode,
                cert_login,
            },
            peer.ip(),
            listener.auth,
            deadline,
        )
        .await
        .map_err(|refusal| {
            let why = refusal.as_str();
            // Throttled refusals are a flood's: counted, and logged only at debug, so a flood
            // cannot fill the log; a checked refusal is at most one per interval per address.
            match refusal {
                crate::auth::Refusal::Throttled => {
                    debug!(%peer, login, reason = why, "login refused")
                }
                crate::auth::Refusal::Credentials => {
                    warn!(%peer, login, reason = why, "login refused")
                }
            }
            let failures = &settings.metrics.auth_failures;
            failures.with_label_values(&[listener.name, why]).inc();
            ConnError::AuthFailed
        })?;
    Ok(Accepted {
        connected,
        version: connect.version,
        heartbeat: Heartbeat {
            send: send.map(Duration::from_millis),
            receive: receive.map(Duration::from_millis),
        },
        identity,
        client_id: connect.client_id,
        oci_strict: listener.oci_strict,
    })
}
