//! The OCI Queue REST API on the HTTP listener, under `/20210201`: the messages operations
//! (`messages`) and the admin ones a local workflow needs (`admin`), so that code written for
//! the `oci` SDKs and CLI runs against Stampede with only its endpoint changed (docs/oci.md).
//!
//! It is a front end like the STOMP connection: every operation is a call on the broker's
//! protocol-neutral API (a GetMessages is a pull delivery on the same queue state machine as a
//! STOMP subscription), and this module owns only OCI's conventions — JSON shapes, error codes,
//! timestamps, limits, request signing. Its rules come from what the SDKs do with an answer:
//! they retry 5xx, 429 and 409 and trip a circuit breaker on them, so normal paths answer 2xx
//! or a 4xx that names the problem; every answer carries `opc-request-id`.

mod admin;
mod identify;
mod messages;
mod model;
mod signature;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use parking_lot::Mutex;
use stampede_broker::{Broker, BrokerError};
use tokio_util::sync::CancellationToken;

use crate::auth::{Access, Authenticator, Identity, Mode};
use crate::http::HttpState;
pub use signature::PublicKey;

/// The API version every path starts with.
const BASE: &str = "/20210201";

/// `[oci]` and the users' API keys, checked.
#[derive(Debug, Clone)]
pub struct OciSettings {
    pub auto_create: bool,
    pub messages_endpoint: Option<String>,
    pub max_messages: usize,
    pub max_message_size: usize,
    pub max_visibility: Duration,
    pub max_poll_timeout: Duration,
    pub clock_skew: Duration,
    /// By `keyId`: the user the key belongs to and the key.
    pub keys: Arc<HashMap<String, (String, PublicKey)>>,
}

/// What the OCI handlers share.
pub struct OciState {
    http: Arc<HttpState>,
    settings: OciSettings,
    mode: Mode,
    authenticator: Arc<Authenticator>,
    /// Cancelled at shutdown: long polls answer with what they have (nothing) at once.
    shutdown: CancellationToken,
    /// Basic credentials already checked (argon2 costs tens of ms; an SDK-style client sends
    /// the same credentials with every request).
    checked: identify::CheckedCredentials,
    work_requests: Mutex<admin::WorkRequests>,
}

impl OciState {
    pub fn new(
        http: Arc<HttpState>,
        settings: OciSettings,
        mode: Mode,
        authenticator: Arc<Authenticator>,
        shutdown: CancellationToken,
    ) -> OciState {
        OciState {
            http,
            settings,
            mode,
            authenticator,
            shutdown,
            checked: Default::default(),
            work_requests: Default::default(),
        }
    }

    fn broker(&self) -> Result<&Arc<Broker>, ApiError> {
        self.http.broker().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "the broker is recovering its store; try again shortly",
            )
        })
    }

    /// Checks `id` names a queue the caller may use with `access`. An unknown queue is created by
    /// the operation when `auto_create` is on; otherwise, as for a queue the caller may not use,
    /// the answer is OCI's 404 (which does not tell the two apart).
    fn queue<'a>(
        &self,
        id: &'a str,
        who: &Identity,
        access: Access,
        create: bool,
    ) -> Result<&'a str, ApiError> {
        let name = queue_id(id)?;
        let denied = !who.permissions.allows(
            access,
            &stampede_broker::Destination::Queue(name.to_owned()),
        );
        let unknown =
            self.broker()?.queue_view(name).is_none() && !(create && self.settings.auto_create);
        if denied || unknown {
            return Err(ApiError::not_found(format!(
                "queue {name} does not exist or you may not use it"
            )));
        }
        Ok(name)
    }
}

/// The OCI routes, all under [`BASE`].
pub fn router(state: Arc<OciState>) -> Router {
    let m = format!("{BASE}/queues/{{queue}}/messages");
    let routes = Router::new()
        .route(&m, get(messages::get_messages).post(messages::put_messages))
        .route(
            &format!("{m}/actions/deleteMessages"),
            post(messages::delete_messages),
        )
        .route(
            &format!("{m}/actions/updateMessages"),
            post(messages::update_messages),
        )
        .route(
            &format!("{m}/{{*receipt}}"),
            axum::routing::delete(messages::delete_message).put(messages::update_message),
        )
        .route(
            &format!("{BASE}/queues/{{queue}}/stats"),
            get(messages::get_stats),
        )
        .route(
            &format!("{BASE}/queues/{{queue}}/channels"),
            get(messages::list_channels),
        )
        .route(
            &format!("{BASE}/queues"),
            get(admin::list_queues).post(admin::create_queue),
        )
        .route(
            &format!("{BASE}/queues/{{queue}}"),
            get(admin::get_queue)
                .put(admin::update_queue)
                .delete(admin::delete_queue),
        )
        .route(
            &format!("{BASE}/queues/{{queue}}/actions/purge"),
            post(admin::purge_queue),
        )
        .route(
            &format!("{BASE}/workRequests/{{id}}"),
            get(admin::get_work_request),
        )
        .route(
            &format!("{BASE}/workRequests"),
            get(admin::list_work_requests),
        )
        // A method a path does not serve is no operation either, as OCI answers it.
        .method_not_allowed_fallback(no_route)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            identify::identify,
        ))
        // `identify` has read the body within OCI's limits already; axum's own 2 MB default
        // would refuse a full batch of large messages, and not as OCI answers.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state);
    Router::new()
        .merge(routes)
        .route(&format!("{BASE}/{{*rest}}"), axum::routing::any(no_route))
        .layer(axum::middleware::from_fn(request_id))
}

/// Every answer names its request: the client's `opc-request-id` when it sent one, else a new one.
async fn request_id(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(model::OPC_REQUEST_ID)
        .filter(|v| !v.is_empty() && v.len() <= 98)
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&model::new_id(32).to_uppercase())
                .unwrap_or(HeaderValue::from_static("0"))
        });
    let mut response = next.run(req).await;
    response.headers_mut().insert(model::OPC_REQUEST_ID, id);
    response
}

async fn no_route(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!(
            "no OCI Queue operation is {} {}",
            req.method(),
            req.uri().path()
        ),
    )
}

/// A queue id as OCI spells one (`ocid1.queue.<realm>.<region>.<unique>`), which is also its
/// STOMP destination.
fn queue_id(id: &str) -> Result<&str, ApiError> {
    let ok = id.starts_with("ocid1.queue.")
        && id.len() <= stampede_broker::MAX_NAME
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
    if ok {
        Ok(id)
    } else {
        Err(ApiError::invalid(format!(
            "{id:?} is not a queue OCID (ocid1.queue.<realm>.<region>.<id>)"
        )))
    }
}

/// An OCI error answer: `{code, message}` with its HTTP status.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "InvalidParameter", message)
    }

    fn unparsable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "CannotParseRequest", message)
    }

    fn limit(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "LimitExceeded", message)
    }

    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "NotAuthorizedOrNotFound", message)
    }

    fn unauthenticated(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "NotAuthenticated", message)
    }

    /// The per-entry error code of a batch operation: the status the single operation answers.
    fn status(&self) -> u16 {
        self.status.as_u16()
    }
}

impl From<BrokerError> for ApiError {
    fn from(e: BrokerError) -> ApiError {
        let message = e.to_string();
        match e {
            BrokerError::UnknownQueue(_) | BrokerError::UnknownMessage(_) => {
                ApiError::not_found(message)
            }
            BrokerError::QueueFull { .. } => ApiError::limit(message),
            BrokerError::InvalidName { .. } | BrokerError::InvalidDestination(_) => {
                ApiError::invalid(message)
            }
            BrokerError::QueueInUse { .. } | BrokerError::ExclusiveQueue(_) => {
                ApiError::new(StatusCode::CONFLICT, "Conflict", message)
            }
            BrokerError::Denied { .. } => ApiError::not_found(message),
            BrokerError::StorageFull(_) => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "InsufficientStorage",
                message,
            ),
            _ => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                message,
            ),
        }
    }
}

impl From<stampede_store::StoreError> for ApiError {
    fn from(e: stampede_store::StoreError) -> ApiError {
        ApiError::from(BrokerError::from(e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(code = self.code, message = %self.message, "OCI request failed");
        }
        let body = model::ErrorBody {
            code: self.code,
            message: &self.message,
        };
        (self.status, Json(body)).into_response()
    }
}

/// The caller's identity, which `identify` put on the request.
pub(crate) type Caller = axum::Extension<Identity>;

/// Answers `State` extraction for the handlers.
pub(crate) type Oci = State<Arc<OciState>>;
