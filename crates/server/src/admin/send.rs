//! `POST /api/messages`: an operator's test message. It is read as a STOMP SEND with the same
//! headers would be (so `expires`, `persistent` and the other conventions mean the same), and
//! answered once durable, as a RECEIPT would be.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use stampede_broker::{Destination, NewMessage};
use stampede_proto::{ClientCommand, Command, Frame, Request, Version};

use super::{api_error, bad_request, broker_error, json_body, Admin, NoParams, Params, Peer};

/// Headers the broker or the framing sets, which a test message may not name.
const RESERVED: [&str; 8] = [
    "destination",
    "content-length",
    "message-id",
    "subscription",
    "ack",
    "receipt",
    "transaction",
    // The body's own `persistent` field says it; two answers could disagree.
    "persistent",
];

/// How long a test message may wait for producer flow control before it is refused.
const PUBLISH_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Message {
    destination: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    persistent: Option<bool>,
}

pub(super) async fn send(
    State(s): Admin,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    query: Params<NoParams>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let (broker, NoParams {}) = or_answer!(
        s.admit_query(&headers, peer, "sending a message", query)
            .await
    );
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            return api_error(
                e.status(),
                "InvalidBody",
                format!("the request body could not be read: {}", e.body_text()),
            )
        }
    };
    let m: Message = or_answer!(json_body(&body).map_err(super::invalid_json));
    if let Some(k) = m.headers.keys().find(|k| RESERVED.contains(&k.as_str())) {
        return bad_request(format!(
            "header {k:?} is set by the broker, not by a sender"
        ));
    }
    // A header name is one STOMP header line's name: what would break a frame is refused.
    if let Some(k) = m
        .headers
        .keys()
        .find(|k| k.is_empty() || k.contains([':', '\n', '\r']))
    {
        return bad_request(format!(
            "header name {k:?} is not one a STOMP frame can carry (empty, or with ':' or a line break)"
        ));
    }
    if let Some((k, _)) = m.headers.iter().find(|(_, v)| v.contains(['\n', '\r'])) {
        return bad_request(format!("the value of header {k:?} has a line break"));
    }
    let (to, channel) = match Destination::parse_channel(&m.destination) {
        Ok(d) => d,
        Err(e) => return bad_request(e.to_string()),
    };
    let mut frame = Frame::new(Command::Send).header("destination", m.destination.as_str());
    for (k, v) in &m.headers {
        frame = frame.header(k, v.as_str());
    }
    if let Some(p) = m.persistent {
        frame = frame.header("persistent", p.to_string());
    }
    let cmd = match Request::from_frame(frame.body(m.body.into_bytes()), Version::V1_2) {
        Ok(Request {
            command: ClientCommand::Send(cmd),
            ..
        }) => cmd,
        Ok(_) => unreachable!("a SEND frame reads as a SEND"),
        Err(e) => return bad_request(e.to_string()),
    };
    let message = NewMessage {
        headers: cmd.headers,
        body: cmd.body,
        expires_at_ms: cmd.expires,
        persistent: cmd.persistent,
        channel,
    };
    let published = tokio::time::timeout(PUBLISH_WAIT, broker.publish(&to, message)).await;
    let Ok(published) = published else {
        return api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Busy",
            "the broker held the message back for 30 s (its queue's consumers or the store are behind); it was not sent",
        );
    };
    let ticket = match published {
        Ok(t) => t,
        Err(e) if e.is_storage() => {
            return api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "StoreUnavailable",
                e.to_string(),
            )
        }
        Err(e @ stampede_broker::BrokerError::QueueFull { .. }) => {
            return api_error(StatusCode::CONFLICT, "QueueFull", e.to_string())
        }
        Err(e) => return broker_error(e),
    };
    if let Err(e) = ticket.await {
        return api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "NotDurable",
            format!("the message was accepted but the store failed to record it ({e}); it may be lost at the next restart"),
        );
    }
    let body = serde_json::json!({ "destination": m.destination, "at_ms": super::now_ms() });
    (StatusCode::CREATED, Json(body)).into_response()
}
