//! The admin routes that change one queue: delete it, change its settings at run time, and
//! redrive its dead letters (or move its messages elsewhere). Each answers once its change is
//! durable, and refuses — changing nothing — while the store refuses writes.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Deserializer};
use stampede_broker::{Broker, BrokerError, Redrive, SettingsOverride, Ticket};

use super::{api_error, broker_error, json_body, Admin, Named, NoParams, Params, Peer};
use crate::config::queues::{checked, QueueSection};
use crate::config::ConfigError;

/// Messages one redrive call moves when the request names no `limit`, and the most it may name.
const REDRIVE: usize = 1000;
const MAX_REDRIVE: usize = 10_000;

/// The refusal of a change while the store refuses writes (the change would be made in memory
/// and lost at the next start); `None` while it takes them.
pub(super) fn unwritable(broker: &Broker, what: &str) -> Option<Response> {
    broker.store_failure().map(|why| {
        api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "StoreUnavailable",
            format!("the store refuses writes, {what}: {why}"),
        )
    })
}

/// Waits for `ticket`; a failed commit is a 500 saying what was changed in memory only.
pub(super) async fn durable(ticket: Ticket, what: &str) -> Result<(), Response> {
    ticket.await.map_err(|e| {
        api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "NotDurable",
            format!("{what} in memory but the store failed to record it ({e}); it is undone when the broker restarts"),
        )
    })
}

pub(super) async fn delete(
    State(s): Admin,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    name: Named,
    query: Params<NoParams>,
) -> Response {
    let (broker, name, NoParams {}) = or_answer!(
        s.admit_named(&headers, peer, "deleting a queue", name, query)
            .await
    );
    if let Some(r) = unwritable(&broker, "nothing was deleted") {
        return r;
    }
    let ticket = match broker.delete_queue(&name) {
        Ok(t) => t,
        Err(e @ BrokerError::QueueInUse { .. }) => {
            return api_error(StatusCode::CONFLICT, "QueueInUse", e.to_string())
        }
        Err(e) => return broker_error(e),
    };
    if let Err(r) = durable(ticket, &format!("queue {name:?} was deleted")).await {
        return r;
    }
    Json(serde_json::json!({ "deleted": name })).into_response()
}

/// `Some(None)` for an explicit `null`, `None` for a field left out.
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A settings change as the API takes it: seconds for durations, `null` to turn a limit off.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsChange {
    #[serde(default, deserialize_with = "nullable")]
    visibility_timeout_s: Option<Option<f64>>,
    #[serde(default, deserialize_with = "nullable")]
    max_deliveries: Option<Option<u32>>,
    dead_letter_queue: Option<String>,
    retention_s: Option<f64>,
    #[serde(default, deserialize_with = "nullable")]
    max_messages: Option<Option<u64>>,
    #[serde(default, deserialize_with = "nullable")]
    max_bytes: Option<Option<u64>>,
    redelivery_delay_s: Option<f64>,
    redelivery_multiplier: Option<f64>,
    #[serde(default, deserialize_with = "nullable")]
    redelivery_delay_max_s: Option<Option<f64>>,
}

impl SettingsChange {
    /// The change, range-checked as the configuration's `[queues]` tables are.
    fn checked(&self) -> Result<SettingsOverride, String> {
        let secs = |field: &str, v: f64| {
            Duration::try_from_secs_f64(v)
                .map_err(|_| format!("{field}: {v} is not a number of seconds of 0 or more"))
        };
        let section = QueueSection {
            visibility_timeout: match self.visibility_timeout_s {
                None => None,
                Some(None) => Some(Duration::ZERO),
                Some(Some(v)) => Some(secs("visibility_timeout_s", v)?),
            },
            max_deliveries: self.max_deliveries.map(|n| n.unwrap_or(0)),
            dead_letter_queue: self.dead_letter_queue.clone(),
            retention: self
                .retention_s
                .map(|v| secs("retention_s", v))
                .transpose()?,
            max_messages: self.max_messages.map(|n| n.unwrap_or(0)),
            max_bytes: self
                .max_bytes
                .map(|n| usize::try_from(n.unwrap_or(0)).unwrap_or(usize::MAX)),
            redelivery_delay: self
                .redelivery_delay_s
                .map(|v| secs("redelivery_delay_s", v))
                .transpose()?,
            redelivery_multiplier: self.redelivery_multiplier,
            redelivery_delay_max: match self.redelivery_delay_max_s {
                None => None,
                Some(None) => Some(Duration::ZERO),
                Some(Some(v)) => Some(secs("redelivery_delay_max_s", v)?),
            },
        };
        let key = |field: &str| match field {
            "visibility_timeout" | "retention" | "redelivery_delay" | "redelivery_delay_max" => {
                format!("{field}_s")
            }
            other => other.to_owned(),
        };
        checked(&section, &key).map_err(|e| match e {
            ConfigError::Invalid { key, problem } => format!("{key}: {problem}"),
            other => other.to_string(),
        })
    }
}

/// PATCH changes an existing queue; PUT also creates it.
async fn change(
    s: Admin,
    peer: Peer,
    headers: HeaderMap,
    name: Named,
    query: Params<NoParams>,
    body: Bytes,
    create: bool,
) -> Response {
    let (State(s), ConnectInfo(peer)) = (s, peer);
    let (broker, name, NoParams {}) = or_answer!(
        s.admit_named(&headers, peer, "changing a queue's settings", name, query)
            .await
    );
    let change: SettingsChange = or_answer!(json_body(&body).map_err(super::invalid_json));
    let change = match change.checked() {
        Ok(c) => c,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, "InvalidParameter", e),
    };
    let existed = broker.queue_view(&name).is_some();
    if !existed && !create {
        return super::unknown(&name);
    }
    if let Some(r) = unwritable(&broker, "nothing was changed") {
        return r;
    }
    let ticket = match broker.update_queue(&name, &change) {
        Ok(t) => t,
        Err(e @ (BrokerError::InvalidName { .. } | BrokerError::InvalidDestination(_))) => {
            return api_error(StatusCode::BAD_REQUEST, "InvalidParameter", e.to_string())
        }
        Err(e) => return broker_error(e),
    };
    let what = format!("queue {name:?}'s settings were changed");
    if let Err(r) = durable(ticket, &what).await {
        return r;
    }
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    match super::detail(&broker, &s, &name) {
        Some(d) => (status, Json(d)).into_response(),
        None => super::unknown(&name),
    }
}

pub(super) async fn patch(
    s: Admin,
    peer: Peer,
    headers: HeaderMap,
    name: Named,
    query: Params<NoParams>,
    body: Bytes,
) -> Response {
    change(s, peer, headers, name, query, body, false).await
}

pub(super) async fn put(
    s: Admin,
    peer: Peer,
    headers: HeaderMap,
    name: Named,
    query: Params<NoParams>,
    body: Bytes,
) -> Response {
    change(s, peer, headers, name, query, body, true).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedriveRequest {
    message_ids: Option<Vec<String>>,
    limit: Option<usize>,
    to: Option<String>,
}

pub(super) async fn redrive(
    State(s): Admin,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    name: Named,
    query: Params<NoParams>,
    body: Bytes,
) -> Response {
    let (broker, name, NoParams {}) = or_answer!(
        s.admit_named(&headers, peer, "redriving messages", name, query)
            .await
    );
    let asked: RedriveRequest = or_answer!(json_body(&body).map_err(super::invalid_json));
    let max =
        or_answer!(super::limit(asked.limit, REDRIVE, MAX_REDRIVE).map_err(super::bad_request));
    if asked
        .message_ids
        .as_ref()
        .is_some_and(|ids| ids.len() > MAX_REDRIVE)
    {
        return super::bad_request(format!("at most {MAX_REDRIVE} message_ids in one call"));
    }
    if let Some(r) = unwritable(&broker, "nothing was moved") {
        return r;
    }
    let how = Redrive {
        ids: asked.message_ids,
        to: asked.to,
        max,
    };
    let (done, ticket) = match broker.redrive(&name, &how) {
        Ok(r) => r,
        Err(e @ BrokerError::NotADeadLetterQueue(_)) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "NotADeadLetterQueue",
                e.to_string(),
            )
        }
        Err(e @ (BrokerError::InvalidName { .. } | BrokerError::InvalidDestination(_))) => {
            return api_error(StatusCode::BAD_REQUEST, "InvalidParameter", e.to_string())
        }
        Err(e) => return broker_error(e),
    };
    let what = format!("{} messages were moved", done.moved);
    if let Err(r) = durable(ticket, &what).await {
        return r;
    }
    Json(done).into_response()
}
