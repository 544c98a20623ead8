//! The messages operations: PutMessages, GetMessages (a long poll), DeleteMessage(s),
//! UpdateMessage(s), GetStats, ListChannels.
//!
//! A message's OCI `id` is its sequence number in its queue, its `content` the body (UTF-8),
//! its `customProperties` the headers a STOMP consumer sees, its `channelId` its channel. A
//! receipt names one delivery (`<queue>-<seq>-<delivery count>`, within base64url's alphabet):
//! after a redelivery the old receipt is stale and refused as unknown.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use stampede_broker::{Broker, DeliveryTag, MessageRecord, NewMessage, Pulled};

use super::model::{self, timestamp};
use super::{ApiError, Caller, Oci};
use crate::auth::Access;

/// Headers the broker or STOMP gives meaning to: not custom properties.
const RESERVED: &[&str] = &[
    "destination",
    "content-length",
    "message-id",
    "subscription",
    "ack",
    "redelivered",
    "delivery-count",
    "receipt",
    "transaction",
    "persistent",
    "expires",
    "reply-to",
];

/// A JSON body, or OCI's `CannotParseRequest` naming what is wrong with it.
pub(super) fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::unparsable(format!("request body: {e}")))
}

/// Query parameters, or `InvalidParameter` naming the bad one.
pub(super) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::invalid(e.body_text()))
}

/// `value` seconds, within `0..=max`.
pub(super) fn seconds(value: i64, max: Duration, what: &str) -> Result<Duration, ApiError> {
    if value < 0 || value as u64 > max.as_secs() {
        return Err(ApiError::invalid(format!(
            "{what} must be between 0 and {} seconds, not {value}",
            max.as_secs()
        )));
    }
    Ok(Duration::from_secs(value as u64))
}

/// A receipt as this broker mints them. One with `/` cannot be ours (and could not be a path
/// segment).
fn receipt(raw: &str) -> Result<&str, ApiError> {
    if raw.contains('/') || raw.is_empty() {
        return Err(ApiError::invalid(format!(
            "{raw:?} is not a message receipt"
        )));
    }
    Ok(raw)
}

fn channel(raw: Option<&str>) -> Result<Option<&str>, ApiError> {
    match raw {
        None | Some("") => Ok(None),
        Some(c) if c.len() > 256 || c.contains(['/', '\n', '\r', ':']) => Err(ApiError::invalid(
            format!("{c:?} is not a channel id (at most 256 characters, no '/' or ':')"),
        )),
        Some(c) => Ok(Some(c)),
    }
}

/// When `record` leaves the queue unless consumed: its retention or its own expiry.
fn expire_after(record: &MessageRecord, retention: Duration) -> String {
    let kept = record
        .enqueued_at_ms
        .saturating_add(retention.as_millis() as u64);
    timestamp(record.expires_at_ms.map_or(kept, |e| e.min(kept)))
}

fn retention(broker: &Broker, queue: &str) -> Duration {
    broker
        .queue_view(queue)
        .map_or(Duration::from_secs(86_400), |v| v.settings.retention)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(super) async fn put_messages(
    s: Oci,
    who: Caller,
    Path(queue): Path<String>,
    body: Bytes,
) -> Result<Json<model::PutMessages>, ApiError> {
    let name = s.queue(&queue, &who, Access::Write, true)?;
    let details: model::PutMessagesDetails = json(&body)?;
    let settings = &s.settings;
    if details.messages.is_empty() {
        return Err(ApiError::invalid("messages must hold at least one message"));
    }
    if details.messages.len() > settings.max_messages {
        return Err(ApiError::limit(format!(
            "at most {} messages per request, not {}",
            settings.max_messages,
            details.messages.len()
        )));
    }
    let mut batch = Vec::with_capacity(details.messages.len());
    for (i, m) in details.messages.into_iter().enumerate() {
        if m.content.len() > settings.max_message_size {
            return Err(ApiError::limit(format!(
                "message {i}: content is {} bytes, the most is {}",
                m.content.len(),
                settings.max_message_size
            )));
        }
        let metadata = m.metadata.unwrap_or_default();
        let channel = channel(metadata.channel_id.as_deref())?.map(str::to_owned);
        if channel.as_deref().is_some_and(|c| c.contains('*')) {
            // `*` ends a channel filter; a channel named with one could not be asked for alone.
            return Err(ApiError::invalid(format!(
                "message {i}: a channel id has no '*'"
            )));
        }
        let mut headers = Vec::with_capacity(metadata.custom_properties.len());
        for (k, v) in metadata.custom_properties {
            if k.is_empty() || k.contains([':', '\n', '\r']) || RESERVED.contains(&k.as_str()) {
                return Err(ApiError::invalid(format!(
                    "message {i}: {k:?} cannot be a custom property (empty, reserved, or with ':')"
                )));
            }
            headers.push((k, v));
        }
        batch.push(NewMessage {
            headers,
            body: m.content.into(),
            expires_at_ms: None,
            persistent: true,
            channel,
        });
    }
    let broker = s.broker()?;
    let (put, ticket) = broker.put_messages(name, batch).await?;
    ticket.await?;
    let retention = retention(broker, name);
    Ok(Json(model::PutMessages {
        messages: put
            .iter()
            .map(|(seq, record)| model::PutMessage {
                id: *seq,
                expire_after: expire_after(record, retention),
            })
            .collect(),
    }))
}

pub(super) async fn get_messages(
    s: Oci,
    who: Caller,
    Path(queue): Path<String>,
    q: Result<Query<model::GetMessagesQuery>, QueryRejection>,
) -> Result<Json<model::GetMessages>, ApiError> {
    let q = query(q)?;
    let name = s.queue(&queue, &who, Access::Read, true)?;
    let settings = &s.settings;
    let limit = q.limit.unwrap_or(1);
    if limit < 1 || limit as usize > settings.max_messages {
        return Err(ApiError::invalid(format!(
            "limit must be between 1 and {}, not {limit}",
            settings.max_messages
        )));
    }
    let visibility = q
        .visibility_in_seconds
        .map(|v| seconds(v, settings.max_visibility, "visibilityInSeconds"))
        .transpose()?;
    let broker = s.broker()?;
    let wait = match q.timeout_in_seconds {
        Some(t) => seconds(t, settings.max_poll_timeout, "timeoutInSeconds")?,
        None => super::admin::poll_timeout(broker, name).min(settings.max_poll_timeout),
    };
    if q.consumer_group_id.is_some() {
        return Err(ApiError::invalid(
            "consumer groups are not served by this broker",
        ));
    }
    let channel = channel(q.channel_filter.as_deref())?;
    let polled = broker.pull_wait(name, limit as usize, visibility, channel, wait);
    let (pulled, ticket) = tokio::select! {
        r = polled => r?,
        // At shutdown a waiting poll ends as a poll that found nothing.
        _ = s.shutdown.cancelled() => (Vec::new(), stampede_broker::Ticket::ready(Ok(()))),
    };
    // The delivery counts are stored before the messages are shown, so a restart cannot hand
    // them out again as never delivered.
    ticket.await?;
    let retention = retention(broker, name);
    let now = now_ms();
    Ok(Json(model::GetMessages {
        messages: pulled
            .into_iter()
            .map(|p| get_message(p, retention, now))
            .collect(),
    }))
}

fn get_message(p: Pulled, retention: Duration, now: u64) -> model::GetMessage {
    let record = &p.record;
    let channel = stampede_broker::channel::of(record).map(str::to_owned);
    let custom_properties: std::collections::BTreeMap<String, String> = record
        .headers
        .iter()
        .filter(|(k, _)| !RESERVED.contains(&k.as_str()))
        .cloned()
        .collect();
    let metadata =
        (channel.is_some() || !custom_properties.is_empty()).then_some(model::MessageMetadata {
            channel_id: channel,
            custom_properties,
        });
    model::GetMessage {
        id: p.seq,
        content: String::from_utf8_lossy(&record.body).into_owned(),
        receipt: p.receipt,
        delivery_count: p.delivery_count,
        visible_after: timestamp(p.visible_after_ms.unwrap_or(now)),
        expire_after: expire_after(record, retention),
        created_at: timestamp(record.enqueued_at_ms),
        metadata,
    }
}

pub(super) async fn delete_message(
    s: Oci,
    who: Caller,
    Path((queue, raw)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let name = s.queue(&queue, &who, Access::Read, false)?;
    let receipt = receipt(&raw)?;
    s.broker()?.delete_pulled(name, receipt)?.await?;
    Ok(StatusCode::OK.into_response())
}

pub(super) async fn update_message(
    s: Oci,
    who: Caller,
    Path((queue, raw)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<model::UpdatedMessage>, ApiError> {
    let name = s.queue(&queue, &who, Access::Read, false)?;
    let receipt = receipt(&raw)?;
    let details: model::UpdateMessageDetails = json(&body)?;
    let visibility = seconds(
        details.visibility_in_seconds,
        s.settings.max_visibility,
        "visibilityInSeconds",
    )?;
    let (id, at) = update(s.broker()?, name, receipt, visibility)?;
    Ok(Json(model::UpdatedMessage {
        id,
        visible_after: timestamp(at),
    }))
}

fn update(
    broker: &Broker,
    queue: &str,
    receipt: &str,
    visibility: Duration,
) -> Result<(u64, u64), ApiError> {
    let at = broker.extend_pulled(queue, receipt, visibility)?;
    let id = DeliveryTag::parse(receipt).map_or(0, |t| t.seq);
    Ok((id, at))
}

/// The batch checks OCI makes before looking at entries.
fn batch_size(n: usize, max: usize) -> Result<(), ApiError> {
    if n == 0 {
        return Err(ApiError::invalid("entries must hold at least one entry"));
    }
    if n > max {
        return Err(ApiError::limit(format!(
            "at most {max} entries per request, not {n}"
        )));
    }
    Ok(())
}

fn failed(e: ApiError) -> model::BatchEntry {
    model::BatchEntry {
        error_code: Some(e.status()),
        error_message: Some(e.message),
        ..Default::default()
    }
}

fn batch_result(entries: Vec<model::BatchEntry>) -> model::BatchResult {
    let client_failures = entries.iter().filter(|e| e.error_code.is_some()).count() as u32;
    model::BatchResult {
        server_failures: 0,
        client_failures,
        entries,
    }
}

pub(super) async fn delete_messages(
    s: Oci,
    who: Caller,
    Path(queue): Path<String>,
    body: Bytes,
) -> Result<Json<model::BatchResult>, ApiError> {
    let name = s.queue(&queue, &who, Access::Read, false)?;
    let details: model::DeleteMessagesDetails = json(&body)?;
    batch_size(details.entries.len(), s.settings.max_messages)?;
    let checked: Vec<Result<&str, ApiError>> = details
        .entries
        .iter()
        .map(|e| receipt(&e.receipt))
        .collect();
    let valid: Vec<&str> = checked
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    let (mut deleted, ticket) = s.broker()?.delete_pulled_batch(name, &valid);
    ticket.await?;
    let mut deleted = deleted.drain(..);
    let entries = checked
        .into_iter()
        .map(|r| match r.and_then(|_| Ok(deleted.next().transpose()?)) {
            Ok(_) => model::BatchEntry::default(),
            Err(e) => failed(e),
        })
        .collect();
    Ok(Json(batch_result(entries)))
}

pub(super) async fn update_messages(
    s: Oci,
    who: Caller,
    Path(queue): Path<String>,
    body: Bytes,
) -> Result<Json<model::BatchResult>, ApiError> {
    let name = s.queue(&queue, &who, Access::Read, false)?;
    let details: model::UpdateMessagesDetails = json(&body)?;
    batch_size(details.entries.len(), s.settings.max_messages)?;
    let broker = s.broker()?;
    let max = s.settings.max_visibility;
    let entries = details
        .entries
        .iter()
        .map(|e| {
            let updated = receipt(&e.receipt).and_then(|r| {
                let visibility = seconds(e.visibility_in_seconds, max, "visibilityInSeconds")?;
                update(broker, name, r, visibility)
            });
            match updated {
                Ok((id, at)) => model::BatchEntry {
                    id: Some(id),
                    visible_after: Some(timestamp(at)),
                    ..Default::default()
                },
                Err(e) => failed(e),
            }
        })
        .collect();
    Ok(Json(batch_result(entries)))
}

pub(super) async fn get_stats(
    s: Oci,
    who: Caller,
    Path(queue): Path<String>,
    q: Result<Query<model::StatsQuery>, QueryRejection>,
) -> Result<Json<model::QueueStats>, ApiError> {
    let q = query(q)?;
    let name = s.queue(&queue, &who, Access::Read, true)?;
    if q.consumer_group_id.is_some() {
        return Err(ApiError::invalid(
            "consumer groups are not served by this broker",
        ));
    }
    let broker = s.broker()?;
    let channel = channel(q.channel_id.as_deref())?;
    let dlq = broker
        .queue_view(name)
        .and_then(|v| v.dead_letter_queue)
        .map(|d| d.to_string());
    let stats = |queue: Option<&str>| -> model::Stats {
        let Some(queue) = queue else {
            return model::Stats::default();
        };
        match channel {
            Some(c) => broker
                .channel_view(queue, c)
                .map(|v| stats_of(v.visible, v.in_flight, v.bytes)),
            None => broker
                .queue_view(queue)
                .map(|v| stats_of(v.visible, v.in_flight, v.bytes)),
        }
        .unwrap_or_default()
    };
    Ok(Json(model::QueueStats {
        queue: stats(Some(name)),
        dlq: stats(dlq.as_deref()),
        channel_id: channel.map(str::to_owned),
    }))
}

fn stats_of(visible_messages: u64, in_flight_messages: u64, size_in_bytes: u64) -> model::Stats {
    model::Stats {
        visible_messages,
        in_flight_messages,
        size_in_bytes,
    }
}

pub(super) async fn list_channels(
    s: Oci,
    who: Caller,
    Path(queue): Path<String>,
    q: Result<Query<model::ChannelsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let name = s.queue(&queue, &who, Access::Read, true)?;
    // The same filter as GetMessages' (`orders-*` a prefix); a bare one is a prefix too.
    let filter = q.channel_filter.unwrap_or_default();
    let filter = filter.strip_suffix('*').unwrap_or(&filter).to_owned();
    let channels: Vec<String> = s
        .broker()?
        .channels(name)
        .into_iter()
        .filter(|c| c.starts_with(&filter))
        .collect();
    let (items, next) = super::admin::page(channels, q.limit, q.page.as_deref())?;
    Ok(super::admin::with_next_page(
        Json(model::Collection { items }).into_response(),
        next,
    ))
}
