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
const RESERVED: [&str; 7] = [
    "destination",
    "content-length",
    "message-id",
    "subscription",
    "ack",
    "receipt",
    "transaction",
];

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
    body: Bytes,
) -> Response {
    let broker = match s
        .admit_query(&headers, peer, "sending a message", query)
        .await
    {
        Ok((b, NoParams {})) => b,
        Err(r) => return r,
    };
    let m: Message = match json_body(&body) {
        Ok(m) => m,
        Err(e) => return super::invalid_json(e),
    };
    if let Some(k) = m.headers.keys().find(|k| RESERVED.contains(&k.as_str())) {
        return bad_request(format!(
            "header {k:?} is set by the broker, not by a sender"
        ));
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
    let ticket = match broker.publish(&to, message).await {
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
            StatusCode::SERVICE_UNAVAILABLE,
            "StoreUnavailable",
            format!("the message could not be stored: {e}"),
        );
    }
    let body = serde_json::json!({ "destination": m.destination, "at_ms": super::now_ms() });
    (StatusCode::CREATED, Json(body)).into_response()
}
