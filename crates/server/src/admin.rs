//! The admin API under `/api` on the HTTP listener (docs/admin-api.md): here the gate every
//! route passes, the queue listing, detail, peek and purge; changes to one queue in `ops`,
//! topics and bindings in `topics`, connections in `connections`, test messages in `send`, the
//! overview and rates in `overview`; backups are in `crate::backup`. The gate: in `auth.mode = "users"` HTTP Basic
//! credentials of a user whose `read` and `admin` permissions cover every destination, since these
//! routes see and change every queue. Errors are `{error, message}` with a 4xx status; a refused
//! request changes nothing.
//!
//! Queues are named as the broker names them (`orders`, `DLQ.orders`, an OCI queue OCID), URL-
//! encoded in the path.

/// The value of a `Result` whose error is already the answer: that answer is returned from the
/// handler (the routes answer `Response`, refusals included).
macro_rules! or_answer {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(answer) => return answer,
        }
    };
}

mod connections;
mod ops;
mod overview;
mod send;
mod topics;

pub use overview::Rates;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use stampede_broker::{Broker, BrokerError, QueueView};

use crate::auth::{Access, Authenticator, Mode};
use crate::http::HttpState;

/// How long a request may wait for its password check.
const CHECK_DEADLINE: Duration = Duration::from_secs(10);
/// Queues per page when the request names no `limit`, and the most it may name.
const PAGE: usize = 100;
const MAX_PAGE: usize = 1000;
/// Messages a peek returns when the request names no `limit`, and the most it may name.
const PEEK: usize = 20;
const MAX_PEEK: usize = 500;
/// Body bytes a peek shows of each message.
const PREVIEW: usize = 1024;

/// An `{error, message}` answer.
pub(crate) fn api_error(status: StatusCode, error: &str, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "error": error, "message": message.into() });
    (status, Json(body)).into_response()
}

/// Who may use `/api` (and the RabbitMQ management API, which sees as much).
pub(crate) struct Gate {
    pub mode: Mode,
    pub authenticator: Arc<Authenticator>,
}

/// Why the gate turned a request away; each API answers it in its own error shape.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("HTTP Basic credentials of a user with read and admin permission on `*` are needed")]
    NotAuthenticated,
    #[error("read and admin permission on `*` are needed, which user {0} lacks")]
    NotAuthorized(String),
}

impl Gate {
    /// Admits the request, or says why not. In open mode everyone is admitted.
    pub(crate) async fn admit(&self, headers: &HeaderMap, peer: IpAddr) -> Result<(), Refusal> {
        if self.mode == Mode::Open {
            return Ok(());
        }
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let (user, password) = auth
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .and_then(|(_, rest)| crate::auth::basic_credentials(rest))
            .ok_or(Refusal::NotAuthenticated)?;
        let deadline = tokio::time::Instant::now() + CHECK_DEADLINE;
        let who = self
            .authenticator
            .login_basic(&user, &password, peer, deadline)
            .await
            .map_err(|_| Refusal::NotAuthenticated)?;
        // These routes see every message body and change any queue.
        let p = &who.permissions;
        if !(p.allows_everything(Access::Read) && p.allows_everything(Access::Admin)) {
            return Err(Refusal::NotAuthorized(user));
        }
        Ok(())
    }

    /// [`Gate::admit`], refusals answered 401/403 naming what `what` needs.
    pub(crate) async fn check(
        &self,
        headers: &HeaderMap,
        peer: IpAddr,
        what: &str,
    ) -> Result<(), Response> {
        self.admit(headers, peer)
            .await
            .map_err(|refusal| match refusal {
                Refusal::NotAuthenticated => {
                    let mut r = api_error(
                        StatusCode::UNAUTHORIZED,
                        "NotAuthenticated",
                        format!(
                            "{what} needs HTTP Basic credentials of a user with read and admin \
                         permission on `*`"
                        ),
                    );
                    r.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Basic realm=\"stampede\""),
                    );
                    r
                }
                Refusal::NotAuthorized(user) => api_error(
                    StatusCode::FORBIDDEN,
                    "NotAuthorized",
                    format!(
                        "{what} needs read and admin permission on `*`, which user {user} lacks"
                    ),
                ),
            })
    }
}

/// What the admin routes need.
pub struct AdminState {
    pub(crate) http: Arc<HttpState>,
    pub(crate) gate: Gate,
    pub(crate) rates: Arc<Rates>,
    started_at_ms: u64,
}

impl AdminState {
    pub fn new(http: Arc<HttpState>, mode: Mode, authenticator: Arc<Authenticator>) -> AdminState {
        AdminState {
            http,
            gate: Gate {
                mode,
                authenticator,
            },
            rates: Arc::default(),
            started_at_ms: now_ms(),
        }
    }

    /// The rates this state reports, for the sampler to keep up to date.
    pub fn rates(&self) -> &Arc<Rates> {
        &self.rates
    }

    /// The broker, once the request is admitted and recovery is done.
    async fn admit(
        &self,
        headers: &HeaderMap,
        peer: SocketAddr,
        what: &str,
    ) -> Result<Arc<Broker>, Response> {
        self.gate.check(headers, peer.ip(), what).await?;
        self.http.broker().cloned().ok_or_else(|| {
            api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "NotReady",
                "the store is still being recovered",
            )
        })
    }

    /// [`AdminState::admit`] and the query, checked after the gate (so a stranger learns
    /// nothing from a 400).
    async fn admit_query<T>(
        &self,
        headers: &HeaderMap,
        peer: SocketAddr,
        what: &str,
        query: Params<T>,
    ) -> Result<(Arc<Broker>, T), Response> {
        let broker = self.admit(headers, peer, what).await?;
        let Query(q) = query.map_err(|e| bad_request(e.body_text()))?;
        Ok((broker, q))
    }

    /// [`AdminState::admit_query`] for a route on one object: also its path parameters (a
    /// queue's name, a topic and a queue).
    async fn admit_named<P, T>(
        &self,
        headers: &HeaderMap,
        peer: SocketAddr,
        what: &str,
        path: Result<Path<P>, PathRejection>,
        query: Params<T>,
    ) -> Result<(Arc<Broker>, P, T), Response> {
        let (broker, q) = self.admit_query(headers, peer, what, query).await?;
        let Path(p) = path.map_err(|e| bad_request(e.body_text()))?;
        Ok((broker, p, q))
    }

    /// [`AdminState::admit_query`] for the routes on connections.
    async fn admit_hub<T>(
        &self,
        headers: &HeaderMap,
        peer: SocketAddr,
        what: &str,
        query: Params<T>,
    ) -> Result<crate::hub::ConnectionHub, Response> {
        self.admit_query(headers, peer, what, query).await?;
        self.http.hub().cloned().ok_or_else(|| {
            api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "NotReady",
                "the STOMP listeners are not up yet",
            )
        })
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A JSON request body; an empty one reads as `{}`.
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body)
}

fn invalid_json(e: serde_json::Error) -> Response {
    api_error(
        StatusCode::BAD_REQUEST,
        "InvalidJson",
        format!("the request body is not what this route takes: {e}"),
    )
}

pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/api/overview", get(overview::overview))
        .route("/api/queues", get(list))
        .route(
            "/api/queues/{name}",
            get(show)
                .delete(ops::delete)
                .patch(ops::patch)
                .put(ops::put),
        )
        .route("/api/queues/{name}/messages", get(peek).delete(purge))
        .route("/api/queues/{name}/redrive", post(ops::redrive))
        .route("/api/topics", get(topics::list))
        .route("/api/bindings", get(topics::bindings))
        .route(
            "/api/bindings/{topic}/{queue}",
            put(topics::bind).delete(topics::unbind),
        )
        .route("/api/connections", get(connections::list))
        .route("/api/connections/{id}", delete(connections::close))
        .route("/api/messages", post(send::send))
        .route("/api/openapi.json", get(openapi))
        .route("/api/{*rest}", any(no_route))
        .method_not_allowed_fallback(no_method)
        .with_state(state)
}

/// The OpenAPI document of these routes; open like the health routes, since it says nothing
/// about any queue.
async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("admin/openapi.json"),
    )
        .into_response()
}

async fn no_route(uri: axum::http::Uri) -> Response {
    api_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("no admin API route {}", uri.path()),
    )
}

async fn no_method(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    api_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        format!("{method} is not served on {}", uri.path()),
    )
}

type Admin = State<Arc<AdminState>>;
type Peer = ConnectInfo<SocketAddr>;

fn unknown(name: &str) -> Response {
    api_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("there is no queue {name:?}"),
    )
}

/// A refusal of the broker as an answer: the request's fault (4xx) or the store's (503).
fn broker_error(e: BrokerError) -> Response {
    let (status, code) = match &e {
        BrokerError::UnknownQueue(name) => return unknown(name),
        BrokerError::QueueInUse { .. } => (StatusCode::CONFLICT, "QueueInUse"),
        BrokerError::QueueFull { .. } => (StatusCode::CONFLICT, "QueueFull"),
        BrokerError::NotADeadLetterQueue(_) => (StatusCode::BAD_REQUEST, "NotADeadLetterQueue"),
        e if e.is_storage() => (StatusCode::SERVICE_UNAVAILABLE, "StoreUnavailable"),
        _ => (StatusCode::BAD_REQUEST, "InvalidParameter"),
    };
    api_error(status, code, e.to_string())
}

/// One queue in a listing.
#[derive(Serialize)]
struct QueueSummary {
    name: String,
    /// Waiting, in memory or in the store.
    visible: u64,
    in_flight: u64,
    /// Given back and waiting out a redelivery delay.
    delayed: u64,
    bytes: u64,
    consumers: usize,
    dead_letter_queue: Option<String>,
    /// Waiting messages of its dead-letter queue (0 when it has none yet).
    dead_letters: u64,
    /// How long the oldest message waiting in memory has waited; absent when none waits.
    oldest_age_ms: Option<u64>,
    enqueued: u64,
    delivered: u64,
    acked: u64,
    rates: overview::Rate,
}

impl QueueSummary {
    fn of(q: &QueueView, broker: &Broker, rates: &Rates) -> QueueSummary {
        let dead_letters = q
            .dead_letter_queue
            .as_deref()
            .and_then(|d| broker.queue_view(d))
            .map_or(0, |d| d.visible);
        QueueSummary {
            name: q.name.to_string(),
            visible: q.visible,
            in_flight: q.in_flight,
            delayed: q.delayed,
            bytes: q.bytes,
            consumers: q.consumers.len(),
            dead_letter_queue: q.dead_letter_queue.as_deref().map(str::to_owned),
            dead_letters,
            oldest_age_ms: q
                .oldest_enqueued_at_ms
                .map(|at| now_ms().saturating_sub(at)),
            enqueued: q.counters.enqueued,
            delivered: q.counters.delivered,
            acked: q.counters.acked,
            rates: rates.of(&q.name),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only queues whose name starts with this.
    prefix: Option<String>,
    /// Only queues named after this one (the previous page's `next`).
    after: Option<String>,
    limit: Option<usize>,
}

#[derive(Serialize)]
struct QueueList {
    queues: Vec<QueueSummary>,
    /// Pass as `after` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

fn bad_request(message: impl Into<String>) -> Response {
    api_error(StatusCode::BAD_REQUEST, "InvalidParameter", message)
}

/// The page size asked for, or why it cannot be had.
fn limit(asked: Option<usize>, default: usize, max: usize) -> Result<usize, String> {
    match asked {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(format!("limit {n} is not between 1 and {max}")),
    }
}

async fn list(
    State(s): Admin,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    query: Params<ListQuery>,
) -> Response {
    let broker = or_answer!(s.admit(&headers, peer, "listing queues").await);
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => return bad_request(e.body_text()),
    };
    let n = or_answer!(limit(q.limit, PAGE, MAX_PAGE).map_err(bad_request));
    // Names first, views for the page only: a page costs its own queues' locks, not everyone's.
    let mut names = broker.queue_names();
    names.retain(|name| {
        q.prefix.as_deref().is_none_or(|p| name.starts_with(p))
            && q.after.as_deref().is_none_or(|a| &**name > a)
    });
    if names.len() > n {
        names.select_nth_unstable(n);
        names.truncate(n + 1);
    }
    names.sort_unstable();
    let next = (names.len() > n).then(|| names[n - 1].to_string());
    names.truncate(n);
    let queues = names
        .iter()
        .filter_map(|name| broker.queue_view(name))
        .map(|v| QueueSummary::of(&v, &broker, &s.rates))
        .collect();
    Json(QueueList { queues, next }).into_response()
}

#[derive(Serialize)]
struct Settings {
    /// Seconds; absent: redelivered only when its consumer goes away.
    visibility_timeout_s: Option<f64>,
    max_deliveries: Option<u32>,
    dead_letter_queue: String,
    retention_s: f64,
    max_messages: Option<u64>,
    max_bytes: Option<u64>,
    redelivery_delay_s: f64,
    redelivery_multiplier: f64,
    /// Seconds; absent: no cap below 12 h.
    redelivery_delay_max_s: Option<f64>,
}

#[derive(Serialize)]
struct Consumer {
    subscription: String,
    principal: String,
    ack: String,
    prefetch: u32,
    unacked: u64,
}

#[derive(Serialize)]
struct QueueDetail {
    #[serde(flatten)]
    summary: QueueSummary,
    created_at_ms: u64,
    settings: Settings,
    /// The consumers `consumers` counts.
    subscriptions: Vec<Consumer>,
    bindings: Vec<Bound>,
    long_polls: u64,
    counters: serde_json::Value,
}

/// A topic a queue is bound to.
#[derive(Serialize)]
struct Bound {
    topic: String,
    /// Bound by its name (a virtual topic's consumer queue), not by a stored binding.
    #[serde(rename = "virtual")]
    by_name: bool,
}

/// Routes that take no query parameters refuse any, rather than ignore what a caller meant.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

type Named = Result<Path<String>, PathRejection>;
type Params<T> = Result<Query<T>, QueryRejection>;

async fn show(
    State(s): Admin,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    name: Named,
    query: Params<NoParams>,
) -> Response {
    let (broker, name, NoParams {}) = or_answer!(
        s.admit_named(&headers, peer, "showing a queue", name, query)
            .await
    );
    match detail(&broker, &s, &name) {
        Some(d) => Json(d).into_response(),
        None => unknown(&name),
    }
}

/// Queue `name` as `GET /api/queues/{name}` shows it.
fn detail(broker: &Broker, s: &AdminState, name: &str) -> Option<QueueDetail> {
    let q = broker.queue_view(name)?;
    let st = &q.settings;
    let c = &q.counters;
    Some(QueueDetail {
        summary: QueueSummary::of(&q, broker, &s.rates),
        created_at_ms: q.created_at_ms,
        settings: Settings {
            visibility_timeout_s: st.visibility_timeout.map(|d| d.as_secs_f64()),
            max_deliveries: st.max_deliveries,
            dead_letter_queue: st.dead_letter_queue.clone(),
            retention_s: st.retention.as_secs_f64(),
            max_messages: st.max_messages,
            max_bytes: st.max_bytes,
            redelivery_delay_s: st.redelivery_delay.as_secs_f64(),
            redelivery_multiplier: st.redelivery_multiplier,
            redelivery_delay_max_s: st.redelivery_delay_max.map(|d| d.as_secs_f64()),
        },
        subscriptions: q
            .consumers
            .iter()
            .map(|c| Consumer {
                subscription: c.subscription.to_string(),
                principal: c.principal.to_string(),
                ack: c.ack.as_str().to_owned(),
                prefetch: c.prefetch,
                unacked: c.unacked,
            })
            .collect(),
        bindings: broker
            .bindings_of(name)
            .into_iter()
            .map(|(topic, by_name)| Bound { topic, by_name })
            .collect(),
        long_polls: q.long_polls,
        counters: serde_json::json!({
            "enqueued": c.enqueued, "delivered": c.delivered, "redelivered": c.redelivered,
            "acked": c.acked, "nacked": c.nacked, "timed_out": c.timed_out,
            "dead_lettered": c.dead_lettered, "expired": c.expired, "dropped": c.dropped,
            "purged": c.purged,
        }),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PeekQuery {
    limit: Option<usize>,
}

#[derive(Serialize)]
struct PeekedMessage {
    message_id: String,
    delivery_count: u32,
    enqueued_at_ms: u64,
    expires_at_ms: Option<u64>,
    headers: Vec<(String, String)>,
    /// Body bytes in all.
    size: usize,
    /// The first bytes of the body as text (invalid UTF-8 replaced); `body_truncated` says
    /// whether there is more.
    body_preview: String,
    body_truncated: bool,
}

async fn peek(
    State(s): Admin,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    name: Named,
    query: Params<PeekQuery>,
) -> Response {
    let (broker, name, q) = or_answer!(
        s.admit_named(&headers, peer, "peeking at messages", name, query)
            .await
    );
    let n = or_answer!(limit(q.limit, PEEK, MAX_PEEK).map_err(bad_request));
    let peeked = match broker.peek(&name, n).await {
        Ok(p) => p,
        Err(e) => return broker_error(e),
    };
    let messages: Vec<PeekedMessage> = peeked
        .into_iter()
        .map(|m| {
            let r = &m.record;
            let shown = r.body.len().min(PREVIEW);
            PeekedMessage {
                message_id: m.message_id,
                delivery_count: m.deliveries,
                enqueued_at_ms: r.enqueued_at_ms,
                expires_at_ms: r.expires_at_ms,
                headers: r.headers.clone(),
                size: r.body.len(),
                body_preview: String::from_utf8_lossy(&r.body[..shown]).into_owned(),
                body_truncated: shown < r.body.len(),
            }
        })
        .collect();
    Json(serde_json::json!({ "messages": messages })).into_response()
}

async fn purge(
    State(s): Admin,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    name: Named,
    query: Params<NoParams>,
) -> Response {
    let (broker, name, NoParams {}) = or_answer!(
        s.admit_named(&headers, peer, "purging a queue", name, query)
            .await
    );
    let purged = match purge_queue(&broker, &name).await {
        Ok(n) => n,
        Err(PurgeError::Broker(e)) => return broker_error(e),
        Err(e @ PurgeError::StoreRefuses(_)) => {
            return api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "StoreUnavailable",
                e.to_string(),
            )
        }
        Err(e @ PurgeError::NotDurable { .. }) => {
            return api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "PurgeNotDurable",
                e.to_string(),
            )
        }
    };
    Json(serde_json::json!({ "purged": purged, "at_ms": now_ms() })).into_response()
}

/// Why a purge did nothing, or did not last.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PurgeError {
    #[error("the store refuses writes, nothing was purged: {0}")]
    StoreRefuses(String),
    #[error(transparent)]
    Broker(BrokerError),
    #[error(
        "{purged} messages were purged in memory but the store failed to record it ({source}); \
         they come back when the broker restarts"
    )]
    NotDurable {
        purged: u64,
        source: stampede_store::StoreError,
    },
}

/// Purges queue `name` and answers once the purge is durable, as a RECEIPT would be: how many
/// waiting messages went. Shared by `/api` and the RabbitMQ management API.
pub(crate) async fn purge_queue(broker: &Broker, name: &str) -> Result<u64, PurgeError> {
    // A purge empties the queue in memory before its commit: a store that already refuses
    // writes would leave the two apart until a restart, so nothing is tried.
    if let Some(why) = broker.store_failure() {
        return Err(PurgeError::StoreRefuses(why));
    }
    let (purged, ticket) = broker.purge(name).map_err(PurgeError::Broker)?;
    ticket
        .await
        .map_err(|source| PurgeError::NotDurable { purged, source })?;
    Ok(purged)
}
