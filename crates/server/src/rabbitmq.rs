//! RabbitMQ's management HTTP API, the subset that test suites of teams leaving RabbitMQ read
//! (docs/rabbitmq-management.md): the overview, queues with their counts, stats, arguments and
//! consumers, a queue's bindings, channels, consumers, `get` (a peek, or a take that removes) and
//! purge. It has a listener of its own (`listeners.rabbitmq_management`, off unless configured)
//! because clients find it on a port of its own (15672), and it answers from the same façade and
//! behind the same gate as `/api`, in RabbitMQ's JSON shapes, errors included
//! (`{"error", "reason"}`). There is one virtual host, `/`.
//!
//! Stampede keeps no AMQP channels: each STOMP session with a consumer on a queue is shown as a
//! connection with one channel, number 1, holding that session's consumers, as RabbitMQ's STOMP
//! plugin shows a STOMP connection.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use stampede_broker::{AckMode, Broker, BrokerError, ConsumerView, MessageView, QueueView};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admin::{purge_queue, AdminState, PurgeError, Refusal};

/// The RabbitMQ release whose management API shapes these answers follow.
const RABBITMQ_VERSION: &str = "3.13.7";
/// The node every object is on.
const NODE: &str = "stampede@localhost";
/// The only virtual host.
const VHOST: &str = "/";
/// Most messages one `get` returns.
const MAX_GET: usize = 1000;

type Rabbit = State<Arc<AdminState>>;
/// A handler's answer: a refusal is a response too, so `?` can return one.
type Answer = Result<Response, Response>;
type Peer = ConnectInfo<SocketAddr>;

/// Serves the API on `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>, shutdown: CancellationToken) {
    crate::http::serve_app(listener, router(state), shutdown, "RabbitMQ management").await;
}

fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/api/overview", get(overview))
        .route("/api/queues", get(list_queues))
        .route("/api/queues/{vhost}", get(list_vhost_queues))
        .route("/api/queues/{vhost}/{name}", get(show_queue))
        .route("/api/queues/{vhost}/{name}/bindings", get(bindings))
        .route("/api/queues/{vhost}/{name}/get", post(get_messages))
        .route("/api/queues/{vhost}/{name}/contents", delete(purge))
        .route("/api/channels", get(list_channels))
        .route("/api/channels/{name}", get(show_channel))
        .route("/api/consumers", get(list_consumers))
        .fallback(not_found)
        .method_not_allowed_fallback(no_method)
        .with_state(state)
}

/// RabbitMQ's error body.
fn error(status: StatusCode, error: &str, reason: impl Into<String>) -> Response {
    (
        status,
        Json(json!({ "error": error, "reason": reason.into() })),
    )
        .into_response()
}

/// What RabbitMQ answers for an unknown object, virtual host or route.
async fn not_found() -> Response {
    object_not_found()
}

fn object_not_found() -> Response {
    error(StatusCode::NOT_FOUND, "Object Not Found", "Not Found")
}

async fn no_method(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method Not Allowed",
        format!("{method} is not served on {}", uri.path()),
    )
}

fn bad_request(reason: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_request", reason)
}

fn broker_error(e: BrokerError) -> Response {
    match e {
        BrokerError::UnknownQueue(_) => object_not_found(),
        e => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            e.to_string(),
        ),
    }
}

/// The broker, once the gate admits the request and recovery is done.
async fn admit(
    s: &AdminState,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<Arc<Broker>, Response> {
    if let Err(refusal) = s.gate.admit(headers, peer.ip()).await {
        return Err(match refusal {
            Refusal::NotAuthenticated => {
                let mut r = error(StatusCode::UNAUTHORIZED, "not_authorized", "Login failed");
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"RabbitMQ Management\""),
                );
                r
            }
            refused @ Refusal::NotAuthorized(_) => {
                error(StatusCode::FORBIDDEN, "not_authorized", refused.to_string())
            }
        });
    }
    s.http.broker().cloned().ok_or_else(|| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "the store is still being recovered",
        )
    })
}

type VhostAndName = Result<Path<(String, String)>, PathRejection>;

/// [`admit`] for a route on one queue: the broker and the queue's name, the virtual host checked
/// after the gate (so a stranger learns nothing from a 404).
async fn admit_queue(
    s: &AdminState,
    headers: &HeaderMap,
    peer: SocketAddr,
    path: VhostAndName,
) -> Result<(Arc<Broker>, String), Response> {
    let broker = admit(s, headers, peer).await?;
    let Path((vhost, name)) = path.map_err(|e| bad_request(e.body_text()))?;
    if vhost != VHOST {
        return Err(object_not_found());
    }
    Ok((broker, name))
}

async fn overview(State(s): Rabbit, ConnectInfo(peer): Peer, headers: HeaderMap) -> Answer {
    let broker = admit(&s, &headers, peer).await?;
    let queues = broker.queues();
    let sum = |f: fn(&QueueView) -> u64| queues.iter().map(f).sum::<u64>();
    let consumers = queues.iter().map(|q| q.consumers.len()).sum::<usize>();
    let sessions = sessions(&queues).len();
    Ok(Json(json!({
        "management_version": RABBITMQ_VERSION,
        "rabbitmq_version": RABBITMQ_VERSION,
        "product_name": "Stampede",
        "product_version": env!("CARGO_PKG_VERSION"),
        "cluster_name": "stampede",
        "node": NODE,
        "object_totals": {
            "queues": queues.len(),
            "consumers": consumers,
            "connections": sessions,
            "channels": sessions,
            // The default exchange and amq.topic, the two STOMP destinations reach.
            "exchanges": 2,
        },
        "queue_totals": {
            "messages": sum(|q| q.visible + q.in_flight),
            "messages_ready": sum(|q| q.visible),
            "messages_unacknowledged": sum(|q| q.in_flight),
        },
        "message_stats": {
            "publish": sum(|q| q.counters.enqueued),
            "deliver_get": sum(|q| q.counters.delivered),
            "ack": sum(|q| q.counters.acked),
            "redeliver": sum(|q| q.counters.redelivered),
        },
    }))
    .into_response())
}

/// `GET /api/queues` filters: `name` (a part of the name), `use_regex` (only `false`), `page`
/// (refused: paged answers have another shape). Others RabbitMQ takes (`columns`, `sort`,
/// `disable_stats`…) are ignored.
#[derive(Deserialize)]
struct ListParams {
    name: Option<String>,
    use_regex: Option<String>,
    page: Option<String>,
}

async fn list_queues(
    State(s): Rabbit,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    params: Params,
) -> Answer {
    let broker = admit(&s, &headers, peer).await?;
    Ok(queue_list(&broker, params))
}

async fn list_vhost_queues(
    State(s): Rabbit,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    vhost: Result<Path<String>, PathRejection>,
    params: Params,
) -> Answer {
    let broker = admit(&s, &headers, peer).await?;
    match vhost {
        Ok(Path(v)) if v == VHOST => Ok(queue_list(&broker, params)),
        Ok(_) => Err(object_not_found()),
        Err(e) => Err(bad_request(e.body_text())),
    }
}

type Params = Result<Query<ListParams>, QueryRejection>;

fn queue_list(broker: &Broker, params: Params) -> Response {
    let Query(params) = match params {
        Ok(p) => p,
        Err(e) => return bad_request(e.body_text()),
    };
    if params.use_regex.as_deref().is_some_and(|r| r != "false") {
        return bad_request("use_regex is not served: name filters by a part of the name");
    }
    if params.page.is_some() {
        return bad_request("paged queue listings are not served");
    }
    // Names first, views for the queues asked for only.
    let mut names = broker.queue_names();
    if let Some(part) = params.name.as_deref().filter(|p| !p.is_empty()) {
        names.retain(|n| n.contains(part));
    }
    names.sort_unstable();
    let queues: Vec<Value> = names
        .iter()
        .filter_map(|n| broker.queue_view(n))
        .map(|q| queue_json(&q, false))
        .collect();
    Json(queues).into_response()
}

async fn show_queue(
    State(s): Rabbit,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    path: VhostAndName,
) -> Answer {
    let (broker, name) = admit_queue(&s, &headers, peer, path).await?;
    let q = broker.queue_view(&name).ok_or_else(object_not_found)?;
    Ok(Json(queue_json(&q, true)).into_response())
}

/// A queue as RabbitMQ describes it; `detail` adds its consumers, as a single queue's answer has.
fn queue_json(q: &QueueView, detail: bool) -> Value {
    let mut arguments = Map::new();
    if let Some(dlq) = &q.dead_letter_queue {
        // Dead letters go to the default exchange with the dead-letter queue's name as the key.
        arguments.insert("x-dead-letter-exchange".into(), "".into());
        arguments.insert("x-dead-letter-routing-key".into(), (**dlq).into());
    }
    let c = &q.counters;
    let mut out = json!({
        "name": &*q.name,
        "vhost": VHOST,
        "durable": q.lifecycle.durable,
        "auto_delete": q.lifecycle.auto_delete,
        "exclusive": q.lifecycle.exclusive,
        "arguments": arguments,
        "node": NODE,
        "state": "running",
        "type": "classic",
        "messages": q.visible + q.in_flight,
        "messages_ready": q.visible,
        "messages_unacknowledged": q.in_flight,
        "message_bytes": q.bytes,
        "consumers": q.consumers.len(),
        "message_stats": {
            "publish": c.enqueued,
            "deliver": c.delivered,
            "deliver_get": c.delivered,
            "ack": c.acked,
            "redeliver": c.redelivered,
        },
    });
    if detail {
        out["consumer_details"] = q.consumers.iter().map(|c| consumer_json(q, c)).collect();
    }
    out
}

/// RabbitMQ's STOMP plugin tags a subscription's consumer `T_<SUBSCRIBE id>`.
fn consumer_json(q: &QueueView, c: &ConsumerView) -> Value {
    json!({
        "consumer_tag": format!("T_{}", c.subscription),
        "queue": { "name": &*q.name, "vhost": VHOST },
        "channel_details": {
            "name": channel_name(c.session),
            "number": 1,
            "connection_name": connection_name(c.session),
            "peer_host": Value::Null,
            "peer_port": Value::Null,
            "node": NODE,
            "user": &*c.principal,
        },
        "ack_required": c.ack != AckMode::Auto,
        "prefetch_count": c.prefetch,
        "exclusive": q.lifecycle.exclusive,
        "active": true,
        "activity_status": "up",
        "arguments": {},
    })
}

/// A session as a connection is named; Stampede keeps no peer addresses for the name RabbitMQ
/// gives one.
fn connection_name(session: u64) -> String {
    format!("stomp session {session}")
}

/// RabbitMQ names a channel after its connection and number.
fn channel_name(session: u64) -> String {
    format!("{} (1)", connection_name(session))
}

async fn bindings(
    State(s): Rabbit,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    path: VhostAndName,
) -> Answer {
    let (broker, name) = admit_queue(&s, &headers, peer, path).await?;
    broker.queue_view(&name).ok_or_else(object_not_found)?;
    let binding = |source: &str, key: &str| {
        json!({
            "source": source,
            "vhost": VHOST,
            "destination": &name,
            "destination_type": "queue",
            "routing_key": key,
            "arguments": {},
            "properties_key": properties_key(key),
        })
    };
    // Every queue is bound to the default exchange by its own name.
    let mut out = vec![binding("", &name)];
    out.extend(
        broker
            .bindings_of(&name)
            .iter()
            .map(|(topic, _virtual)| binding("amq.topic", topic)),
    );
    Ok(Json(out).into_response())
}

/// RabbitMQ's key for a binding without arguments: its routing key, percent-encoded.
fn properties_key(routing_key: &str) -> String {
    routing_key
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// A number RabbitMQ's own UI sends as a string (`"count": "1"`).
#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    N(u64),
    S(String),
}

impl Number {
    fn value(&self, field: &str) -> Result<u64, String> {
        match self {
            Number::N(n) => Ok(*n),
            Number::S(s) => s
                .trim()
                .parse()
                .map_err(|_| format!("{field} {s:?} is not a whole number")),
        }
    }
}

/// The body of `POST …/get`; other fields RabbitMQ's UI sends (`vhost`, `name`) are ignored.
#[derive(Deserialize)]
struct GetBody {
    count: Number,
    ackmode: String,
    encoding: Option<String>,
    truncate: Option<Number>,
}

/// What a `get` does with the messages it returns.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Leaves them waiting where they are.
    Peek,
    /// Removes them.
    Take,
}

/// A checked `get` request.
struct GetRequest {
    count: usize,
    mode: Mode,
    base64: bool,
    truncate: Option<usize>,
}

fn get_request(body: &[u8]) -> Result<GetRequest, String> {
    let b: GetBody = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let count = b.count.value("count")? as usize;
    if count > MAX_GET {
        return Err(format!("count {count} is over {MAX_GET}"));
    }
    let mode = match b.ackmode.as_str() {
        "ack_requeue_true" | "reject_requeue_true" => Mode::Peek,
        "ack_requeue_false" => Mode::Take,
        "reject_requeue_false" => {
            return Err("ackmode reject_requeue_false (dead-lettering) is not served".into())
        }
        other => return Err(format!("ackmode {other:?} is not one of ack_requeue_true, ack_requeue_false, reject_requeue_true")),
    };
    let base64 = match b.encoding.as_deref().unwrap_or("auto") {
        "auto" => false,
        "base64" => true,
        other => return Err(format!("encoding {other:?} is not auto or base64")),
    };
    let truncate = match &b.truncate {
        None => None,
        Some(n) => Some(n.value("truncate")? as usize),
    };
    Ok(GetRequest {
        count,
        mode,
        base64,
        truncate,
    })
}

async fn get_messages(
    State(s): Rabbit,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    path: VhostAndName,
    body: Bytes,
) -> Answer {
    let (broker, name) = admit_queue(&s, &headers, peer, path).await?;
    let req = get_request(&body).map_err(bad_request)?;
    let got = match req.mode {
        Mode::Peek => broker.peek(&name, req.count).await.map_err(broker_error)?,
        Mode::Take => {
            let (taken, ticket) = broker.take(&name, req.count).map_err(broker_error)?;
            ticket.await.map_err(|e| {
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_server_error",
                    format!(
                        "{} messages were removed in memory but the store failed to record it \
                         ({e}); they come back when the broker restarts",
                        taken.len()
                    ),
                )
            })?;
            taken
        }
    };
    // What still waits after each message, as RabbitMQ counts it.
    let waiting = broker.queue_view(&name).map_or(0, |q| q.visible) as usize;
    let n = got.len();
    let left = |i: usize| match req.mode {
        Mode::Peek => waiting.saturating_sub(i + 1),
        Mode::Take => waiting + (n - i - 1),
    };
    let messages: Vec<Value> = got
        .iter()
        .enumerate()
        .map(|(i, m)| message_json(m, &name, left(i), &req))
        .collect();
    Ok(Json(messages).into_response())
}

/// One message as RabbitMQ's `get` answers it.
fn message_json(m: &MessageView, queue: &str, left: usize, req: &GetRequest) -> Value {
    let body = &m.record.body[..];
    let shown = &body[..req.truncate.map_or(body.len(), |t| t.min(body.len()))];
    let text = (!req.base64)
        .then(|| std::str::from_utf8(shown).ok())
        .flatten();
    let (payload, encoding) = match text {
        Some(t) => (t.to_owned(), "string"),
        None => (
            base64::engine::general_purpose::STANDARD.encode(shown),
            "base64",
        ),
    };
    json!({
        "payload_bytes": body.len(),
        "redelivered": m.deliveries > 0,
        "exchange": "",
        "routing_key": queue,
        "message_count": left,
        "properties": properties(&m.record.headers),
        "payload": payload,
        "payload_encoding": encoding,
    })
}

/// STOMP headers as RabbitMQ's STOMP plugin maps them: its AMQP properties by name, the rest as
/// `headers` (the first of repeated headers, as STOMP reads them).
fn properties(headers: &[(String, String)]) -> Value {
    let mut props = Map::new();
    let mut rest = Map::new();
    for (k, v) in headers {
        let property = match k.as_str() {
            "content-type" => "content_type",
            "content-encoding" => "content_encoding",
            "correlation-id" => "correlation_id",
            "reply-to" => "reply_to",
            "expiration" => "expiration",
            "amqp-message-id" => "message_id",
            "type" => "type",
            "user-id" => "user_id",
            "app-id" => "app_id",
            "persistent" => {
                let mode = if v.eq_ignore_ascii_case("true") { 2 } else { 1 };
                props.entry("delivery_mode").or_insert(mode.into());
                continue;
            }
            "priority" | "timestamp" if v.parse::<u64>().is_ok() => {
                props
                    .entry(k.as_str())
                    .or_insert(json!(v.parse::<u64>().ok()));
                continue;
            }
            _ => {
                rest.entry(k.as_str()).or_insert(v.as_str().into());
                continue;
            }
        };
        props.entry(property).or_insert(v.as_str().into());
    }
    props.insert("headers".into(), rest.into());
    props.into()
}

async fn purge(
    State(s): Rabbit,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    path: VhostAndName,
) -> Answer {
    let (broker, name) = admit_queue(&s, &headers, peer, path).await?;
    purge_queue(&broker, &name).await.map_err(|e| match e {
        PurgeError::Broker(e) => broker_error(e),
        e @ PurgeError::StoreRefuses(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            e.to_string(),
        ),
        e @ PurgeError::NotDurable { .. } => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            e.to_string(),
        ),
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// One session's consumers on durable queues, by session number.
type Sessions<'a> = BTreeMap<u64, Vec<(&'a QueueView, &'a ConsumerView)>>;

fn sessions(queues: &[QueueView]) -> Sessions<'_> {
    let mut out: Sessions<'_> = BTreeMap::new();
    for q in queues {
        for c in &q.consumers {
            out.entry(c.session).or_default().push((q, c));
        }
    }
    out
}

/// A session's channel; `detail` adds its consumers, as a single channel's answer has.
fn channel_json(session: u64, consumers: &[(&QueueView, &ConsumerView)], detail: bool) -> Value {
    let user = consumers.first().map_or("", |(_, c)| &*c.principal);
    let mut out = json!({
        "name": channel_name(session),
        "number": 1,
        "vhost": VHOST,
        "user": user,
        "node": NODE,
        "state": "running",
        "connection_details": {
            "name": connection_name(session),
            "peer_host": Value::Null,
            "peer_port": Value::Null,
        },
        "consumer_count": consumers.len(),
        // RabbitMQ's STOMP plugin sets each consumer's prefetch on the channel as it subscribes;
        // with several, the largest stands for them.
        "prefetch_count": consumers.iter().map(|(_, c)| c.prefetch).max().unwrap_or(0),
        "global_prefetch_count": 0,
        "messages_unacknowledged": consumers.iter().map(|(_, c)| c.unacked).sum::<u64>(),
        "messages_unconfirmed": 0,
        "messages_uncommitted": 0,
        "acks_uncommitted": 0,
        "confirm": false,
        "transactional": false,
    });
    if detail {
        out["consumer_details"] = consumers.iter().map(|(q, c)| consumer_json(q, c)).collect();
    }
    out
}

async fn list_channels(State(s): Rabbit, ConnectInfo(peer): Peer, headers: HeaderMap) -> Answer {
    let broker = admit(&s, &headers, peer).await?;
    let queues = broker.queues();
    let channels: Vec<Value> = sessions(&queues)
        .iter()
        .map(|(session, consumers)| channel_json(*session, consumers, false))
        .collect();
    Ok(Json(channels).into_response())
}

async fn show_channel(
    State(s): Rabbit,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
) -> Answer {
    let broker = admit(&s, &headers, peer).await?;
    let Path(name) = name.map_err(|e| bad_request(e.body_text()))?;
    let queues = broker.queues();
    let sessions = sessions(&queues);
    let (session, consumers) = sessions
        .iter()
        .find(|(s, _)| channel_name(**s) == name)
        .ok_or_else(object_not_found)?;
    Ok(Json(channel_json(*session, consumers, true)).into_response())
}

async fn list_consumers(State(s): Rabbit, ConnectInfo(peer): Peer, headers: HeaderMap) -> Answer {
    let broker = admit(&s, &headers, peer).await?;
    let queues = broker.queues();
    let consumers: Vec<Value> = queues
        .iter()
        .flat_map(|q| q.consumers.iter().map(move |c| consumer_json(q, c)))
        .collect();
    Ok(Json(consumers).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_bodies_take_numbers_or_strings_and_refuse_what_is_not_served() {
        let r = get_request(br#"{"count":"2","ackmode":"ack_requeue_false","encoding":"auto","truncate":"50000","vhost":"/"}"#).unwrap();
        assert!(r.count == 2 && r.mode == Mode::Take && !r.base64 && r.truncate == Some(50000));
        let r = get_request(br#"{"count":1,"ackmode":"reject_requeue_true","encoding":"base64"}"#)
            .unwrap();
        assert!(r.mode == Mode::Peek && r.base64 && r.truncate.is_none());
        for bad in [
            &br#"{"count":1"#[..],
            br#"{"ackmode":"ack_requeue_true"}"#,
            br#"{"count":"x","ackmode":"ack_requeue_true"}"#,
            br#"{"count":1,"ackmode":"reject_requeue_false"}"#,
            br#"{"count":1,"ackmode":"nope"}"#,
            br#"{"count":1,"ackmode":"ack_requeue_true","encoding":"hex"}"#,
            br#"{"count":100000,"ackmode":"ack_requeue_true"}"#,
        ] {
            assert!(
                get_request(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn stomp_headers_become_properties_as_rabbitmq_maps_them() {
        let h = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let p = properties(&[
            h("correlation-id", "c-1"),
            h("content-type", "application/json"),
            h("persistent", "true"),
            h("priority", "4"),
            h("tshoot-destination", "/queue/q"),
            h("tshoot-destination", "second"),
        ]);
        assert_eq!(p["correlation_id"], "c-1");
        assert_eq!(p["content_type"], "application/json");
        assert_eq!(p["delivery_mode"], 2);
        assert_eq!(p["priority"], 4);
        assert_eq!(p["headers"], json!({"tshoot-destination": "/queue/q"}));
    }

    #[test]
    fn a_properties_key_is_the_routing_key_percent_encoded() {
        assert_eq!(properties_key("VirtualTopic.a-b_c~"), "VirtualTopic.a-b_c~");
        assert_eq!(properties_key("a/b c#"), "a%2Fb%20c%23");
    }
}
