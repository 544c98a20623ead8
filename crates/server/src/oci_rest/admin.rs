//! The admin operations a local workflow needs: CreateQueue, GetQueue, ListQueues, UpdateQueue,
//! DeleteQueue, PurgeQueue, and the work requests OCI answers them with.
//!
//! OCI's queue attributes map onto the queue's own settings, stored with it (so they outlive
//! restarts and show in the settings view): `visibilityInSeconds` is its visibility timeout,
//! `deadLetterQueueDeliveryCount` its `max_deliveries` (0: no dead-letter queue),
//! `retentionInSeconds` its retention. What the engine has no setting for (display name,
//! compartment, default long poll, channel consumption limit, encryption key, tags, times) is kept
//! as the queue's labels under `oci.`. Operations complete at once; their work requests answer
//! SUCCEEDED on the first poll, so SDK waiters finish. Work requests live in memory only (the
//! last [`KEPT`]): a client polls one for seconds, not across restarts.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use stampede_broker::{Broker, QueueView, SettingsOverride};

use super::messages::{json, query, seconds};
use super::model::{self, new_id, timestamp, OPC_WORK_REQUEST_ID};
use super::{ApiError, Caller, Oci, OciState};
use crate::auth::Access;

/// Work requests remembered.
const KEPT: usize = 10_000;
/// OCI's retention bounds: 10 s to 7 days.
const RETENTION: (u64, u64) = (10, 7 * 86_400);
/// Most deliveries OCI allows before the dead-letter queue.
const MAX_DELIVERY_COUNT: i64 = 20;
/// The long poll of a queue that names none (OCI's default).
const DEFAULT_POLL: u64 = 30;
/// The compartment of a queue nobody created with CreateQueue (made by its first message).
const DEFAULT_COMPARTMENT: &str = "ocid1.compartment.oc1..stampede";

const DISPLAY_NAME: &str = "oci.displayName";
const COMPARTMENT: &str = "oci.compartmentId";
const TIMEOUT: &str = "oci.timeoutInSeconds";
const CONSUMPTION_LIMIT: &str = "oci.channelConsumptionLimit";
const ENCRYPTION_KEY: &str = "oci.customEncryptionKeyId";
const FREEFORM_TAGS: &str = "oci.freeformTags";
const DEFINED_TAGS: &str = "oci.definedTags";
const CREATED: &str = "oci.timeCreated";
const UPDATED: &str = "oci.timeUpdated";

/// Labels to set (`Some`) or remove (`None`).
type Labels = Vec<(&'static str, Option<String>)>;

/// Recent work requests, oldest first.
#[derive(Default)]
pub(super) struct WorkRequests {
    by_id: HashMap<String, model::WorkRequest>,
    order: VecDeque<String>,
}

impl OciState {
    /// Records a finished operation on queue `id` and answers 202 with its work request.
    fn accepted(
        &self,
        operation: &'static str,
        action: &'static str,
        id: &str,
        compartment: String,
    ) -> Response {
        let now = timestamp(now_ms());
        let work = model::WorkRequest {
            id: format!("ocid1.queueworkrequest.oc1.local.{}", new_id(60)),
            operation_type: operation,
            status: "SUCCEEDED",
            compartment_id: compartment,
            resources: vec![model::WorkRequestResource {
                entity_type: "queue",
                action_type: action,
                identifier: id.to_owned(),
                entity_uri: format!("/20210201/queues/{id}"),
            }],
            percent_complete: 100.0,
            time_accepted: now.clone(),
            time_started: now.clone(),
            time_finished: now,
        };
        let header = HeaderValue::from_str(&work.id).ok();
        {
            let mut w = self.work_requests.lock();
            if w.order.len() >= KEPT {
                if let Some(old) = w.order.pop_front() {
                    w.by_id.remove(&old);
                }
            }
            w.order.push_back(work.id.clone());
            w.by_id.insert(work.id.clone(), work);
        }
        let mut response = StatusCode::ACCEPTED.into_response();
        if let Some(h) = header {
            response.headers_mut().insert(OPC_WORK_REQUEST_ID, h);
        }
        response
    }

    /// Where SDK code should send a queue's messages: the configured endpoint, or this broker
    /// as the request reached it.
    fn messages_endpoint(&self, headers: &HeaderMap) -> String {
        if let Some(e) = &self.settings.messages_endpoint {
            return e.clone();
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost:8161");
        format!("http://{host}")
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The long poll GetMessages waits for when the request names none: the queue's
/// `timeoutInSeconds`, else 30 s.
pub(super) fn poll_timeout(broker: &Broker, queue: &str) -> Duration {
    broker
        .labels(queue)
        .ok()
        .and_then(|l| {
            l.into_iter()
                .find(|(k, _)| k == TIMEOUT)
                .and_then(|(_, v)| v.parse().ok())
        })
        .map_or(Duration::from_secs(DEFAULT_POLL), Duration::from_secs)
}

/// The engine settings and labels an attribute set asks for, checked.
fn attributes(
    s: &OciState,
    a: &model::QueueAttributes,
) -> Result<(SettingsOverride, Labels), ApiError> {
    let mut change = SettingsOverride::default();
    let mut labels = Vec::new();
    if let Some(r) = a.retention_in_seconds {
        if r < RETENTION.0 as i64 || r > RETENTION.1 as i64 {
            return Err(ApiError::invalid(format!(
                "retentionInSeconds must be between {} and {}, not {r}",
                RETENTION.0, RETENTION.1
            )));
        }
        change.retention = Some(Duration::from_secs(r as u64));
    }
    if let Some(v) = a.visibility_in_seconds {
        let v = seconds(v, s.settings.max_visibility, "visibilityInSeconds")?;
        change.visibility_timeout = Some(Some(v));
    }
    if let Some(t) = a.timeout_in_seconds {
        let t = seconds(t, s.settings.max_poll_timeout, "timeoutInSeconds")?;
        labels.push((TIMEOUT, Some(t.as_secs().to_string())));
    }
    if let Some(n) = a.dead_letter_queue_delivery_count {
        if !(0..=MAX_DELIVERY_COUNT).contains(&n) {
            return Err(ApiError::invalid(format!(
                "deadLetterQueueDeliveryCount must be between 0 and {MAX_DELIVERY_COUNT}, not {n}"
            )));
        }
        change.max_deliveries = Some((n > 0).then_some(n as u32));
    }
    if let Some(p) = a.channel_consumption_limit {
        if !(1..=100).contains(&p) {
            return Err(ApiError::invalid(format!(
                "channelConsumptionLimit is a percentage from 1 to 100, not {p}"
            )));
        }
        labels.push((CONSUMPTION_LIMIT, Some(p.to_string())));
    }
    if let Some(k) = &a.custom_encryption_key_id {
        // "" removes the key, as OCI's UpdateQueue documents.
        labels.push((ENCRYPTION_KEY, Some(k.clone()).filter(|k| !k.is_empty())));
    }
    if let Some(t) = &a.freeform_tags {
        labels.push((FREEFORM_TAGS, serde_json::to_string(t).ok()));
    }
    if let Some(t) = &a.defined_tags {
        labels.push((DEFINED_TAGS, serde_json::to_string(t).ok()));
    }
    Ok((change, labels))
}

/// Applies settings and labels to queue `name` (created if need be), durably.
async fn store(
    broker: &Broker,
    name: &str,
    change: &SettingsOverride,
    labels: &[(&str, Option<String>)],
) -> Result<(), ApiError> {
    broker.update_queue(name, change)?.await?;
    let labels: Vec<(&str, Option<&str>)> =
        labels.iter().map(|(k, v)| (*k, v.as_deref())).collect();
    broker.set_labels(name, &labels)?.await?;
    Ok(())
}

/// A queue's labels, by key.
fn labels_of(broker: &Broker, name: &str) -> BTreeMap<String, String> {
    broker
        .labels(name)
        .unwrap_or_default()
        .into_iter()
        .collect()
}

fn time_label(labels: &BTreeMap<String, String>, key: &str, otherwise: u64) -> String {
    timestamp(
        labels
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(otherwise),
    )
}

fn compartment_of(labels: &BTreeMap<String, String>) -> String {
    labels
        .get(COMPARTMENT)
        .cloned()
        .unwrap_or_else(|| DEFAULT_COMPARTMENT.to_owned())
}

fn queue_model(
    view: &QueueView,
    labels: &BTreeMap<String, String>,
    endpoint: String,
) -> model::Queue {
    let tags = |key| {
        labels
            .get(key)
            .and_then(|v| serde_json::from_str(v).ok())
            .unwrap_or_default()
    };
    let settings = &view.settings;
    model::Queue {
        id: view.name.to_string(),
        display_name: labels
            .get(DISPLAY_NAME)
            .cloned()
            .unwrap_or_else(|| view.name.to_string()),
        compartment_id: compartment_of(labels),
        time_created: time_label(labels, CREATED, view.created_at_ms),
        time_updated: time_label(labels, UPDATED, view.created_at_ms),
        lifecycle_state: "ACTIVE",
        messages_endpoint: endpoint,
        retention_in_seconds: settings.retention.as_secs(),
        visibility_in_seconds: settings.visibility_timeout.map_or(0, |v| v.as_secs()),
        timeout_in_seconds: labels
            .get(TIMEOUT)
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_POLL),
        dead_letter_queue_delivery_count: settings.max_deliveries.unwrap_or(0),
        channel_consumption_limit: labels
            .get(CONSUMPTION_LIMIT)
            .and_then(|v| v.parse().ok())
            .unwrap_or(100),
        custom_encryption_key_id: labels.get(ENCRYPTION_KEY).cloned(),
        freeform_tags: tags(FREEFORM_TAGS),
        defined_tags: labels
            .get(DEFINED_TAGS)
            .and_then(|v| serde_json::from_str(v).ok())
            .unwrap_or_else(|| serde_json::json!({})),
        system_tags: BTreeMap::new(),
    }
}

pub(super) async fn create_queue(s: Oci, who: Caller, body: Bytes) -> Result<Response, ApiError> {
    let details: model::CreateQueueDetails = json(&body)?;
    if details.display_name.is_empty() || details.compartment_id.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "MissingParameter",
            "displayName and compartmentId are required",
        ));
    }
    let id = format!("ocid1.queue.oc1.local.{}", new_id(60));
    if !who.permissions.allows(
        Access::Admin,
        &stampede_broker::Destination::Queue(id.clone()),
    ) {
        return Err(ApiError::not_found("you may not create queues"));
    }
    let (change, mut labels) = attributes(&s, &details.attributes)?;
    let now = now_ms().to_string();
    labels.extend([
        (DISPLAY_NAME, Some(details.display_name)),
        (COMPARTMENT, Some(details.compartment_id.clone())),
        (CREATED, Some(now.clone())),
        (UPDATED, Some(now)),
    ]);
    store(s.broker()?, &id, &change, &labels).await?;
    tracing::info!(queue = %id, "OCI queue created");
    Ok(s.accepted("CREATE_QUEUE", "CREATED", &id, details.compartment_id))
}

pub(super) async fn get_queue(
    s: Oci,
    who: Caller,
    headers: HeaderMap,
    Path(queue): Path<String>,
) -> Result<Json<model::Queue>, ApiError> {
    let name = s.queue(&queue, &who, Access::Read, false)?;
    let broker = s.broker()?;
    let view = broker
        .queue_view(name)
        .ok_or_else(|| ApiError::not_found(format!("queue {name} does not exist")))?;
    let labels = labels_of(broker, name);
    Ok(Json(queue_model(
        &view,
        &labels,
        s.messages_endpoint(&headers),
    )))
}

pub(super) async fn list_queues(
    s: Oci,
    who: Caller,
    headers: HeaderMap,
    q: Result<Query<model::ListQueuesQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let broker = s.broker()?;
    let endpoint = s.messages_endpoint(&headers);
    let mut queues: Vec<model::Queue> = broker
        .queues()
        .into_iter()
        .filter(|v| v.name.starts_with("ocid1.queue."))
        .filter(|v| {
            who.permissions.allows(
                Access::Read,
                &stampede_broker::Destination::Queue(v.name.to_string()),
            )
        })
        .map(|v| queue_model(&v, &labels_of(broker, &v.name), endpoint.clone()))
        .filter(|m| {
            q.compartment_id
                .as_ref()
                .is_none_or(|c| *c == m.compartment_id)
        })
        .filter(|m| q.display_name.as_ref().is_none_or(|d| *d == m.display_name))
        .filter(|m| q.id.as_ref().is_none_or(|i| *i == m.id))
        .filter(|m| {
            q.lifecycle_state
                .as_ref()
                .is_none_or(|l| l == m.lifecycle_state)
        })
        .collect();
    match q.sort_by.as_deref() {
        Some("displayName") => queues.sort_by(|a, b| a.display_name.cmp(&b.display_name)),
        None | Some("timeCreated") => {
            queues.sort_by(|a, b| (&a.time_created, &a.id).cmp(&(&b.time_created, &b.id)))
        }
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "sortBy is timeCreated or displayName, not {other:?}"
            )))
        }
    }
    // OCI lists newest first unless told otherwise.
    let descending = match q.sort_order.as_deref() {
        Some("ASC") => false,
        None | Some("DESC") => q.sort_by.as_deref() != Some("displayName"),
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "sortOrder is ASC or DESC, not {other:?}"
            )))
        }
    };
    if descending {
        queues.reverse();
    }
    let (items, next) = page(queues, q.limit, q.page.as_deref())?;
    Ok(with_next_page(
        Json(model::Collection { items }).into_response(),
        next,
    ))
}

/// One page of `items`: `page` is the offset the previous page's `opc-next-page` gave.
pub(super) fn page<T>(
    mut items: Vec<T>,
    limit: Option<i64>,
    page: Option<&str>,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let limit = limit.unwrap_or(1000);
    if limit < 1 {
        return Err(ApiError::invalid(format!(
            "limit must be at least 1, not {limit}"
        )));
    }
    let start: usize = match page.filter(|p| !p.is_empty()) {
        None => 0,
        Some(p) => p
            .parse()
            .map_err(|_| ApiError::invalid(format!("{p:?} is not a page token")))?,
    };
    let end = start.saturating_add(limit as usize);
    let next = (items.len() > end).then(|| end.to_string());
    items.truncate(end);
    let items = items.into_iter().skip(start).collect();
    Ok((items, next))
}

pub(super) fn with_next_page(mut response: Response, next: Option<String>) -> Response {
    if let Some(h) = next.and_then(|n| HeaderValue::from_str(&n).ok()) {
        response.headers_mut().insert("opc-next-page", h);
    }
    response
}

pub(super) async fn update_queue(
    s: Oci,
    who: Caller,
    Path(queue): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let name = s.queue(&queue, &who, Access::Admin, false)?;
    let details: model::UpdateQueueDetails = json(&body)?;
    if details.attributes.retention_in_seconds.is_some() {
        return Err(ApiError::invalid(
            "retentionInSeconds is fixed when a queue is created",
        ));
    }
    let (change, mut labels) = attributes(&s, &details.attributes)?;
    if let Some(d) = details.display_name.filter(|d| !d.is_empty()) {
        labels.push((DISPLAY_NAME, Some(d)));
    }
    labels.push((UPDATED, Some(now_ms().to_string())));
    let broker = s.broker()?;
    store(broker, name, &change, &labels).await?;
    let compartment = compartment_of(&labels_of(broker, name));
    Ok(s.accepted("UPDATE_QUEUE", "UPDATED", name, compartment))
}

pub(super) async fn delete_queue(
    s: Oci,
    who: Caller,
    Path(queue): Path<String>,
) -> Result<Response, ApiError> {
    let name = s.queue(&queue, &who, Access::Admin, false)?;
    let broker = s.broker()?;
    let compartment = compartment_of(&labels_of(broker, name));
    let dlq = own_dead_letter_queue(broker, name);
    broker.delete_queue(name)?.await?;
    // OCI's dead-letter queue is part of its queue and goes with it.
    if let Some(dlq) = dlq.filter(|d| broker.queue_view(d).is_some()) {
        broker.delete_queue(&dlq)?.await?;
    }
    tracing::info!(queue = name, "OCI queue deleted");
    Ok(s.accepted("DELETE_QUEUE", "DELETED", name, compartment))
}

pub(super) async fn purge_queue(
    s: Oci,
    who: Caller,
    Path(queue): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let name = s.queue(&queue, &who, Access::Admin, false)?;
    let details: model::PurgeQueueDetails = json(&body)?;
    if !details.channel_ids.is_empty() {
        return Err(ApiError::invalid(
            "purging single channels is not served by this broker: purge the whole queue",
        ));
    }
    let (normal, dlq) = match details.purge_type.as_str() {
        "NORMAL" => (true, false),
        "DLQ" => (false, true),
        "BOTH" => (true, true),
        other => {
            return Err(ApiError::invalid(format!(
                "purgeType is NORMAL, DLQ or BOTH, not {other:?}"
            )))
        }
    };
    let broker = s.broker()?;
    let view = broker
        .queue_view(name)
        .ok_or_else(|| ApiError::not_found(format!("queue {name} does not exist")))?;
    if normal {
        broker.purge(name)?.1.await?;
    }
    if let Some(d) = own_dead_letter_queue(broker, &view.name).filter(|_| dlq) {
        if broker.queue_view(&d).is_some() {
            broker.purge(&d)?.1.await?;
        }
    }
    let compartment = compartment_of(&labels_of(broker, name));
    Ok(s.accepted("PURGE_QUEUE", "UPDATED", name, compartment))
}

/// The queue's dead-letter queue when it is its own (named after it, as `DLQ.{queue}` makes
/// them): one configured as a fixed name is shared, and no queue's delete or purge may take it.
fn own_dead_letter_queue(broker: &Broker, name: &str) -> Option<String> {
    broker
        .queue_view(name)
        .and_then(|v| v.dead_letter_queue)
        .filter(|d| d.contains(name))
        .map(|d| d.to_string())
}

pub(super) async fn get_work_request(s: Oci, Path(id): Path<String>) -> Result<Response, ApiError> {
    let work = s.work_requests.lock().by_id.get(&id).cloned();
    let work =
        work.ok_or_else(|| ApiError::not_found(format!("work request {id} does not exist")))?;
    let mut response = Json(work).into_response();
    // Done already: an SDK waiter need not wait before it looks again.
    response
        .headers_mut()
        .insert("retry-after", HeaderValue::from_static("0"));
    Ok(response)
}

pub(super) async fn list_work_requests(
    s: Oci,
    q: Result<Query<model::ListWorkRequestsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let all: Vec<model::WorkRequest> = {
        let w = s.work_requests.lock();
        w.order
            .iter()
            .rev()
            .filter_map(|id| w.by_id.get(id))
            .filter(|r| {
                q.compartment_id
                    .as_ref()
                    .is_none_or(|c| *c == r.compartment_id)
            })
            .filter(|r| q.work_request_id.as_ref().is_none_or(|i| *i == r.id))
            .cloned()
            .collect()
    };
    let (items, next) = page(all, q.limit, q.page.as_deref())?;
    Ok(with_next_page(
        Json(model::Collection { items }).into_response(),
        next,
    ))
}
