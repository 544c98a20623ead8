//! OCI Queue's JSON shapes (model names as in the SDKs), its timestamp format and the ids this
//! front end mints. Requests are read leniently (unknown fields ignored, as OCI does, since SDKs
//! send fields newer than a server); answers carry every field the SDK models call required.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const OPC_REQUEST_ID: &str = "opc-request-id";
pub const OPC_WORK_REQUEST_ID: &str = "opc-work-request-id";

#[derive(Serialize)]
pub struct ErrorBody<'a> {
    pub code: &'a str,
    pub message: &'a str,
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`: what every SDK parses (Go's RFC 3339 parser is the strictest).
pub fn timestamp(ms: u64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        at.month() as u8,
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

/// `n` random lowercase letters and digits (OCID tails, request ids).
pub fn new_id(n: usize) -> String {
    use ring::rand::SecureRandom;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = vec![0u8; n];
    // The system's random source does not fail on Linux once booted; zeros would still be ids.
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

// ---- messages ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutMessagesDetails {
    pub messages: Vec<PutMessagesDetailsEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutMessagesDetailsEntry {
    pub content: String,
    #[serde(default)]
    pub metadata: Option<MessageMetadata>,
}

#[derive(Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct MessageMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_properties: BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PutMessages {
    pub messages: Vec<PutMessage>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PutMessage {
    pub id: u64,
    pub expire_after: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetMessagesQuery {
    pub visibility_in_seconds: Option<i64>,
    pub timeout_in_seconds: Option<i64>,
    pub limit: Option<i64>,
    pub channel_filter: Option<String>,
    pub consumer_group_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GetMessages {
    pub messages: Vec<GetMessage>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GetMessage {
    pub id: u64,
    pub content: String,
    pub receipt: String,
    pub delivery_count: u32,
    pub visible_after: String,
    pub expire_after: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<MessageMetadata>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateMessageDetails {
    pub visibility_in_seconds: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdatedMessage {
    pub id: u64,
    pub visible_after: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateMessagesDetails {
    pub entries: Vec<UpdateMessagesDetailsEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateMessagesDetailsEntry {
    pub receipt: String,
    pub visibility_in_seconds: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteMessagesDetails {
    pub entries: Vec<DeleteMessagesDetailsEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteMessagesDetailsEntry {
    pub receipt: String,
}

/// `UpdateMessagesResult` and `DeleteMessagesResult`: 200 with a result per entry, in order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResult {
    pub server_failures: u32,
    pub client_failures: u32,
    pub entries: Vec<BatchEntry>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct BatchEntry {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visible_after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsQuery {
    pub channel_id: Option<String>,
    pub consumer_group_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueStats {
    pub queue: Stats,
    pub dlq: Stats,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<String>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub visible_messages: u64,
    pub in_flight_messages: u64,
    pub size_in_bytes: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelsQuery {
    pub limit: Option<i64>,
    pub page: Option<String>,
    pub channel_filter: Option<String>,
}

#[derive(Serialize)]
pub struct Collection<T> {
    pub items: Vec<T>,
}

// ---- admin ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateQueueDetails {
    pub display_name: String,
    pub compartment_id: String,
    #[serde(flatten)]
    pub attributes: QueueAttributes,
}

/// What CreateQueue and UpdateQueue may set (UpdateQueue: no retention, which OCI keeps fixed).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct QueueAttributes {
    pub retention_in_seconds: Option<i64>,
    pub visibility_in_seconds: Option<i64>,
    pub timeout_in_seconds: Option<i64>,
    pub channel_consumption_limit: Option<i64>,
    pub dead_letter_queue_delivery_count: Option<i64>,
    pub custom_encryption_key_id: Option<String>,
    pub freeform_tags: Option<BTreeMap<String, String>>,
    pub defined_tags: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateQueueDetails {
    pub display_name: Option<String>,
    #[serde(flatten)]
    pub attributes: QueueAttributes,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PurgeQueueDetails {
    pub purge_type: String,
    #[serde(default)]
    pub channel_ids: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQueuesQuery {
    pub compartment_id: Option<String>,
    pub lifecycle_state: Option<String>,
    pub display_name: Option<String>,
    pub id: Option<String>,
    pub limit: Option<i64>,
    pub page: Option<String>,
    pub sort_order: Option<String>,
    pub sort_by: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListWorkRequestsQuery {
    pub compartment_id: Option<String>,
    pub work_request_id: Option<String>,
    pub limit: Option<i64>,
    pub page: Option<String>,
}

/// GetQueue's answer, and ListQueues' items: a `QueueSummary` is its subset, and the SDKs read
/// only the fields their model has.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Queue {
    pub id: String,
    pub display_name: String,
    pub compartment_id: String,
    pub time_created: String,
    pub time_updated: String,
    pub lifecycle_state: &'static str,
    pub messages_endpoint: String,
    pub retention_in_seconds: u64,
    pub visibility_in_seconds: u64,
    pub timeout_in_seconds: u64,
    pub dead_letter_queue_delivery_count: u32,
    pub channel_consumption_limit: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_encryption_key_id: Option<String>,
    pub freeform_tags: BTreeMap<String, String>,
    pub defined_tags: serde_json::Value,
    pub system_tags: BTreeMap<String, String>,
}

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct WorkRequest {
    pub id: String,
    pub operation_type: &'static str,
    pub status: &'static str,
    pub compartment_id: String,
    pub resources: Vec<WorkRequestResource>,
    pub percent_complete: f32,
    pub time_accepted: String,
    pub time_started: String,
    pub time_finished: String,
}

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct WorkRequestResource {
    pub entity_type: &'static str,
    pub action_type: &'static str,
    pub identifier: String,
    pub entity_uri: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_milliseconds_and_zulu() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(timestamp(1_796_238_689_007), "2026-12-02T19:11:29.007Z");
    }

    #[test]
    fn ids_are_lowercase_alphanumerics() {
        let id = new_id(40);
        assert_eq!(id.len(), 40);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        assert_ne!(id, new_id(40));
    }
}
