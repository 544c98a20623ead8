//! The admin routes on topics and bindings: which topics exist (with subscribers or bound
//! queues), every binding, and binding or unbinding a durable queue at run time. A virtual
//! topic's consumer queue is bound by its name and cannot be unbound here.

use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use stampede_broker::BrokerError;

use super::{api_error, bad_request, broker_error, Admin, NoParams, Params, Peer};

#[derive(Serialize)]
struct Topic {
    name: String,
    subscribers: usize,
    bound: Vec<String>,
}

#[derive(Serialize)]
struct Binding {
    topic: String,
    queue: String,
    #[serde(rename = "virtual")]
    by_name: bool,
}

pub(super) async fn list(
    State(s): Admin,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    query: Params<NoParams>,
) -> Response {
    let (broker, NoParams {}) =
        or_answer!(s.admit_query(&headers, peer, "listing topics", query).await);
    let topics: Vec<Topic> = broker
        .topics()
        .into_iter()
        .map(|t| Topic {
            name: t.name.to_string(),
            subscribers: t.subscribers,
            bound: t.bound.iter().map(|b| b.queue.to_string()).collect(),
        })
        .collect();
    Json(serde_json::json!({ "topics": topics })).into_response()
}

pub(super) async fn bindings(
    State(s): Admin,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    query: Params<NoParams>,
) -> Response {
    let (broker, NoParams {}) = or_answer!(
        s.admit_query(&headers, peer, "listing bindings", query)
            .await
    );
    let bindings: Vec<Binding> = broker
        .topics()
        .into_iter()
        .flat_map(|t| {
            t.bound.into_iter().map(move |b| Binding {
                topic: t.name.to_string(),
                queue: b.queue.to_string(),
                by_name: b.by_name,
            })
        })
        .collect();
    Json(serde_json::json!({ "bindings": bindings })).into_response()
}

type Pair = Result<Path<(String, String)>, PathRejection>;

pub(super) async fn bind(
    State(s): Admin,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    pair: Pair,
    query: Params<NoParams>,
) -> Response {
    let (broker, (topic, queue), NoParams {}) = or_answer!(
        s.admit_named(&headers, peer, "binding a queue", pair, query)
            .await
    );
    if let Some(r) = super::ops::unwritable(&broker, "nothing was bound") {
        return r;
    }
    let ticket = match broker.bind(&topic, &queue) {
        Ok(t) => t,
        Err(e @ (BrokerError::InvalidName { .. } | BrokerError::InvalidDestination(_))) => {
            return bad_request(e.to_string())
        }
        Err(e) => return broker_error(e),
    };
    let what = format!("queue {queue:?} was bound to topic {topic:?}");
    if let Err(r) = super::ops::durable(ticket, &what).await {
        return r;
    }
    let body = serde_json::json!({ "topic": topic, "queue": queue });
    (StatusCode::CREATED, Json(body)).into_response()
}

pub(super) async fn unbind(
    State(s): Admin,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    pair: Pair,
    query: Params<NoParams>,
) -> Response {
    let (broker, (topic, queue), NoParams {}) = or_answer!(
        s.admit_named(&headers, peer, "unbinding a queue", pair, query)
            .await
    );
    match broker
        .bindings_of(&queue)
        .into_iter()
        .find(|(t, _)| *t == topic)
    {
        None => {
            return api_error(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("queue {queue:?} is not bound to topic {topic:?}"),
            )
        }
        Some((_, true)) => {
            return bad_request(format!(
                "queue {queue:?} is bound to {topic:?} by its name (a virtual topic's consumer \
                 queue); delete the queue to end it"
            ))
        }
        Some((_, false)) => {}
    }
    if let Some(r) = super::ops::unwritable(&broker, "nothing was unbound") {
        return r;
    }
    let what = format!("queue {queue:?} was unbound from topic {topic:?}");
    if let Err(r) = super::ops::durable(broker.unbind(&topic, &queue), &what).await {
        return r;
    }
    Json(serde_json::json!({ "topic": topic, "queue": queue })).into_response()
}
