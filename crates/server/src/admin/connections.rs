//! The admin routes on client connections: every established STOMP connection (TCP, TLS or
//! WebSocket) with its subscriptions, and closing one.

use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::{api_error, Admin, NoParams, Params, Peer};

#[derive(Serialize)]
struct Connection {
    id: u64,
    peer: String,
    listener: &'static str,
    transport: &'static str,
    principal: String,
    version: String,
    client_id: Option<String>,
    connected_at_ms: u64,
    heartbeat_ms: [u64; 2],
    subscriptions: Vec<Subscription>,
}

#[derive(Serialize)]
struct Subscription {
    id: String,
    destination: String,
    ack: &'static str,
}

pub(super) async fn list(
    State(s): Admin,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    query: Params<NoParams>,
) -> Response {
    let hub = or_answer!(
        s.admit_hub(&headers, peer, "listing connections", query)
            .await
    );
    let connections: Vec<Connection> = hub
        .connections()
        .into_iter()
        .map(|(c, subs)| Connection {
            id: c.id,
            peer: c.peer.to_string(),
            listener: c.listener,
            transport: c.transport,
            principal: c.principal,
            version: c.version,
            client_id: c.client_id,
            connected_at_ms: c.connected_at_ms,
            heartbeat_ms: [c.heartbeat_ms.0, c.heartbeat_ms.1],
            subscriptions: subs
                .into_iter()
                .map(|s| Subscription {
                    id: s.id,
                    destination: s.destination,
                    ack: s.ack,
                })
                .collect(),
        })
        .collect();
    Json(serde_json::json!({ "connections": connections })).into_response()
}

pub(super) async fn close(
    State(s): Admin,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    query: Params<NoParams>,
) -> Response {
    let hub = or_answer!(
        s.admit_hub(&headers, peer, "closing a connection", query)
            .await
    );
    let Ok(Path(id)) = id else {
        return super::bad_request("a connection id is a number");
    };
    let Ok(n) = id.parse::<u64>() else {
        return super::bad_request(format!("{id:?} is not a connection id (a number)"));
    };
    if !hub.close(n) {
        return api_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("there is no connection {n}"),
        );
    }
    Json(serde_json::json!({ "closed": n })).into_response()
}
