//! `POST /api/v1/events`: events from systems that cannot speak Kafka (web
//! forms, ad platforms' lead webhooks, SaaS marketing tools).
//!
//! The body is a JSON array of proto3 JSON events (`application/json`),
//! one per line (`application/x-ndjson`), or length-delimited protobuf
//! (`application/x-protobuf`), at most `api.ingest_body_bytes_max` bytes
//! and `api.ingest_events_max` events. It needs `api.ingest_token` (a
//! token of its own: a marketing tool that may push events must not be
//! able to rebuild projections). The events go through the same
//! validation, deduplication, policy and durable append as a Kafka batch
//! (source `http`), and the answer comes once they are durable: one
//! outcome per item, in order (`accepted` with its sequence, `duplicate`
//! with the first copy's, or `rejected` with the code). A retried request
//! changes nothing: every id it carries is answered from the log.

use super::{check_bearer, Api, ApiError};
use crate::codec::{self, stream::EventReader};
use crate::control::ItemOutcome;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

fn check_ingest(api: &Api, headers: &HeaderMap) -> Result<(), ApiError> {
    check_bearer(
        headers,
        api.config.ingest_token.as_deref(),
        (
            "ingest_disabled",
            "no ingest token is configured (api.ingest_token), so HTTP ingest is off",
        ),
        "a valid ingest token is required (Authorization: Bearer ...)",
    )
}

fn bad(code: &'static str, message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

/// The items of a request body, by its content type.
fn items(
    headers: &HeaderMap,
    body: &[u8],
    events_max: usize,
) -> Result<Vec<codec::stream::Record>, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let stream = match essence.as_str() {
        "application/json" => {
            return codec::events_from_json_array(body, events_max).map_err(|m| bad("bad_body", m));
        }
        "application/x-ndjson" | "application/jsonl" => codec::stream::Format::Jsonl,
        "application/x-protobuf" | "application/protobuf" => codec::stream::Format::Protobuf,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "content-type {content_type:?}: send application/json (an array), \
                     application/x-ndjson or application/x-protobuf (length-delimited)"
                ),
            ))
        }
    };
    let mut reader = EventReader::new(body, stream);
    let mut out = Vec::new();
    while let Some(record) = reader
        .next_record()
        .map_err(|e| bad("bad_body", e.to_string()))?
    {
        if let Some(at) = reader.truncated_at() {
            return Err(bad(
                "truncated",
                format!("the body ends inside a record that starts at byte {at}"),
            ));
        }
        if out.len() == events_max {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_events",
                format!("more than {events_max} events in one request (api.ingest_events_max)"),
            ));
        }
        out.push(record);
    }
    Ok(out)
}

pub(super) async fn post_events(
    State(api): State<Api>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    check_ingest(&api, &headers)?;
    // A body over the cap, or one that could not be read, is a JSON error
    // like every other (axum's own rejection is plain text).
    let body = body.map_err(|e| ApiError::new(e.status(), "bad_body", e.body_text()))?;
    let items = items(&headers, &body, api.config.ingest_events_max)?;
    let handle = api.handle.clone();
    // The append waits for the disk: off the server's thread.
    let outcomes = tokio::task::spawn_blocking(move || handle.ingest(items))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("the append failed: {e}"),
            )
        })??;
    let count = |f: fn(&ItemOutcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
    Ok(Json(json!({
        "accepted": count(|o| matches!(o, ItemOutcome::Accepted { .. })),
        "duplicates": count(|o| matches!(o, ItemOutcome::Duplicate { .. })),
        "rejected": count(|o| matches!(o, ItemOutcome::Rejected { .. })),
        "items": outcomes,
    })))
}
