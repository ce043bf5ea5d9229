//! The formats a message on the events topic may arrive in, and the rule
//! that picks one per message. Upstream systems use whatever their
//! ecosystem gives them: our raw protobuf, proto3 JSON, or the Confluent
//! Schema Registry serializers (protobuf or JSON Schema) whose bytes carry
//! a five-byte frame in front of the payload. None of them needs a registry
//! at run time: the frame is read here, the payload decoded with the
//! schema compiled into the binary.
//!
//! The rule (README, Formats; `docs/integration.md`):
//! 1. A `content-type` header, where present, names the family:
//!    `application/x-protobuf` (or `application/protobuf`,
//!    `application/vnd.google.protobuf`) or `application/json`. Any other
//!    value is rejected: guessing would hide a producer's mistake.
//! 2. The first byte then tells the framing, unambiguously: `0x00` is the
//!    Schema Registry's magic byte (a protobuf `LeadEvent` cannot start
//!    with it, since field number 0 does not exist, and JSON cannot
//!    either); after the magic byte and the 4-byte schema id, a payload of
//!    the JSON family starts with `{`, one of the protobuf family with the
//!    message indexes. Without the frame, `{` (after optional whitespace)
//!    is JSON and anything else raw protobuf.
//! 3. A content type and bytes that disagree are rejected as `undecodable`
//!    with both named.
//!
//! CloudEvents binary-mode headers fill the fields they map onto when the
//! body leaves them empty: `ce_id` → `event_id`, `ce_source` → `producer`,
//! `ce_time` (RFC 3339) → `occurred_at_ms`; `ce_type`, when it names one of
//! our event messages (`leadflow.v1.LeadCreated`, …), must match the body.
//! A header that contradicts a field the body sets is `invalid_field`: the
//! two cannot both be true, and neither is ours to pick.

use super::pb;
use crate::domain::{LeadEvent, Rejection};
use prost::Message;

/// The Schema Registry's magic byte, first in every framed message.
pub const SCHEMA_REGISTRY_MAGIC: u8 = 0;

/// Where `LeadEvent` is in `proto/leadflow/v1/events.proto` (Money is
/// message 0): the message indexes a Schema Registry protobuf serializer
/// writes for it when that file is the registered schema.
pub const LEAD_EVENT_MESSAGE_INDEXES: &[i64] = &[1];

/// Most message indexes read from a frame (nesting depth); real schemas
/// nest a few levels, a hostile frame could claim billions.
const MESSAGE_INDEXES_MAX: usize = 16;

/// How one message was encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Our `LeadEvent`, protobuf, unframed.
    Protobuf,
    /// The proto3 JSON mapping of `LeadEvent`, unframed.
    Json,
    /// Schema Registry frame + message indexes + protobuf `LeadEvent`.
    RegistryProtobuf { schema_id: u32 },
    /// Schema Registry frame + JSON (a JSON Schema serializer's output).
    RegistryJson { schema_id: u32 },
}

impl Format {
    /// The name used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Protobuf => "protobuf",
            Format::Json => "json",
            Format::RegistryProtobuf { .. } => "registry_protobuf",
            Format::RegistryJson { .. } => "registry_json",
        }
    }
}

/// Encodes an event in `format`, as a producer of that kind would; returns
/// the bytes and the `content-type` such a producer would set, if any
/// (Confluent's serializers set none: the frame says it).
pub fn encode_message(event: &LeadEvent, format: Format) -> (Vec<u8>, Option<&'static str>) {
    fn framed(schema_id: u32, indexes: &[u8], body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + indexes.len() + body.len());
        out.push(SCHEMA_REGISTRY_MAGIC);
        out.extend_from_slice(&schema_id.to_be_bytes());
        out.extend_from_slice(indexes);
        out.extend_from_slice(body);
        out
    }
    match format {
        Format::Protobuf => (super::encode_event(event), Some(CONTENT_TYPE_PROTOBUF)),
        Format::Json => (
            super::event_to_json(event).into_bytes(),
            Some(CONTENT_TYPE_JSON),
        ),
        Format::RegistryProtobuf { schema_id } => {
            // Message indexes [1]: count 1, index 1, each a zig-zag varint.
            let indexes = [2u8, 2u8];
            (
                framed(schema_id, &indexes, &super::encode_event(event)),
                None,
            )
        }
        Format::RegistryJson { schema_id } => (
            framed(schema_id, &[], super::event_to_json(event).as_bytes()),
            None,
        ),
    }
}

/// The content type of unframed protobuf `LeadEvent`s.
pub const CONTENT_TYPE_PROTOBUF: &str = "application/x-protobuf";
/// The content type of proto3 JSON `LeadEvent`s.
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// The headers of a message that the decoder reads, by name (Kafka header
/// names are case-sensitive, but producers differ; these are matched
/// ignoring ASCII case).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    pub content_type: Option<String>,
    pub ce_id: Option<String>,
    pub ce_type: Option<String>,
    pub ce_source: Option<String>,
    pub ce_time: Option<String>,
}

impl Headers {
    /// Takes one header; returns false when the name is not one we read.
    /// A value that is not UTF-8 is kept as a lossy string, so that the
    /// rejection shows what arrived.
    pub fn set(&mut self, name: &str, value: &[u8]) -> bool {
        let is = |n: &str| name.eq_ignore_ascii_case(n);
        let slot = if is("content-type") || is("content_type") {
            &mut self.content_type
        } else if is("ce_id") {
            &mut self.ce_id
        } else if is("ce_type") {
            &mut self.ce_type
        } else if is("ce_source") {
            &mut self.ce_source
        } else if is("ce_time") {
            &mut self.ce_time
        } else {
            return false;
        };
        *slot = Some(String::from_utf8_lossy(value).into_owned());
        true
    }
}

/// What a message may be, checked before decoding.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Accept {
    /// Schema ids a framed message may carry; empty: any.
    pub schema_ids: Vec<u32>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Protobuf,
    Json,
}

fn family_of(content_type: &str) -> Result<Family, Rejection> {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let is = |t: &str| essence.eq_ignore_ascii_case(t);
    if is("application/x-protobuf")
        || is("application/protobuf")
        || is("application/vnd.google.protobuf")
    {
        Ok(Family::Protobuf)
    } else if is("application/json") {
        Ok(Family::Json)
    } else {
        Err(undecodable(format!(
            "content-type {content_type:?} is not one the events topic takes \
             (application/x-protobuf or application/json, optionally Schema Registry framed)"
        )))
    }
}

fn undecodable(detail: String) -> Rejection {
    Rejection::Undecodable { detail }
}

fn looks_like_json(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{')
}

/// Decodes one message of the events topic by the rule in the module doc.
pub fn decode_message(
    payload: &[u8],
    headers: &Headers,
    accept: &Accept,
) -> Result<(LeadEvent, Format), Rejection> {
    let declared = headers.content_type.as_deref().map(family_of).transpose()?;
    let (format, body) = if payload.first() == Some(&SCHEMA_REGISTRY_MAGIC) {
        let id_bytes: [u8; 4] = payload
            .get(1..5)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                undecodable(format!(
                    "schema registry frame cut short: {} bytes, the magic byte and a 4-byte schema id need 5",
                    payload.len()
                ))
            })?;
        let schema_id = u32::from_be_bytes(id_bytes);
        if !accept.schema_ids.is_empty() && !accept.schema_ids.contains(&schema_id) {
            return Err(undecodable(format!(
                "schema id {schema_id} is not in kafka.schema_ids_allowed {:?}",
                accept.schema_ids
            )));
        }
        let rest = &payload[5..];
        let json = match declared {
            Some(Family::Json) => true,
            Some(Family::Protobuf) => false,
            None => rest.first() == Some(&b'{'),
        };
        if json {
            (Format::RegistryJson { schema_id }, rest)
        } else {
            let (indexes, body) = message_indexes(rest)?;
            if indexes != LEAD_EVENT_MESSAGE_INDEXES {
                return Err(undecodable(format!(
                    "schema registry message indexes {indexes:?} do not name LeadEvent \
                     ({LEAD_EVENT_MESSAGE_INDEXES:?} in leadflow/v1/events.proto)"
                )));
            }
            (Format::RegistryProtobuf { schema_id }, body)
        }
    } else {
        match declared {
            Some(Family::Json) => (Format::Json, payload),
            Some(Family::Protobuf) => (Format::Protobuf, payload),
            None if looks_like_json(payload) => (Format::Json, payload),
            None => (Format::Protobuf, payload),
        }
    };
    let msg = match format {
        Format::Json | Format::RegistryJson { .. } => {
            let text = std::str::from_utf8(body)
                .map_err(|e| undecodable(format!("{}: not UTF-8: {e}", format.as_str())))?;
            serde_json::from_str::<pb::LeadEvent>(text)
                .map_err(|e| undecodable(format!("{}: {e}", format.as_str())))?
        }
        Format::Protobuf | Format::RegistryProtobuf { .. } => {
            pb::LeadEvent::decode(body).map_err(|e| {
                let hint = if declared == Some(Family::Protobuf) && looks_like_json(body) {
                    " (the content-type says protobuf, the bytes look like JSON)"
                } else {
                    ""
                };
                undecodable(format!("{}: {e}{hint}", format.as_str()))
            })?
        }
    };
    let msg = apply_cloud_events(msg, headers)?;
    Ok((super::from_pb(msg)?, format))
}

/// Reads the Schema Registry's message indexes: a zig-zag varint count,
/// then that many zig-zag varint indexes; a single `0` byte is the common
/// case `[0]`.
fn message_indexes(bytes: &[u8]) -> Result<(Vec<i64>, &[u8]), Rejection> {
    let mut buf = bytes;
    let count = zigzag(&mut buf)?;
    if count == 0 {
        return Ok((vec![0], buf));
    }
    let count = usize::try_from(count)
        .ok()
        .filter(|n| *n <= MESSAGE_INDEXES_MAX)
        .ok_or_else(|| {
            undecodable(format!(
                "schema registry frame claims {count} message indexes (at most {MESSAGE_INDEXES_MAX})"
            ))
        })?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        out.push(zigzag(&mut buf)?);
    }
    Ok((out, buf))
}

fn zigzag(buf: &mut &[u8]) -> Result<i64, Rejection> {
    let raw = prost::encoding::decode_varint(buf)
        .map_err(|e| undecodable(format!("schema registry message indexes: {e}")))?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

fn event_message_name(body: &pb::lead_event::Body) -> &'static str {
    use pb::lead_event::Body;
    match body {
        Body::Created(_) => "leadflow.v1.LeadCreated",
        Body::Scored(_) => "leadflow.v1.LeadScored",
        Body::Assigned(_) => "leadflow.v1.LeadAssigned",
        Body::FollowedUp(_) => "leadflow.v1.LeadFollowedUp",
        Body::Recalled(_) => "leadflow.v1.LeadRecalled",
        Body::Converted(_) => "leadflow.v1.LeadConverted",
        Body::CommandDeclined(_) => "leadflow.v1.LeadCommandDeclined",
        Body::ClaimRequested(_) => "leadflow.v1.LeadClaimRequested",
        Body::Moved(_) => "leadflow.v1.LeadMoved",
        Body::Engaged(_) => "leadflow.v1.LeadEngaged",
    }
}

/// Fills the fields CloudEvents headers map onto (module doc).
fn apply_cloud_events(mut msg: pb::LeadEvent, h: &Headers) -> Result<pb::LeadEvent, Rejection> {
    fn fill(field: &mut String, name: &str, header: &Option<String>) -> Result<(), Rejection> {
        if let Some(v) = header {
            if field.is_empty() {
                v.clone_into(field);
            } else if field != v {
                return Err(Rejection::invalid(
                    name,
                    format!("the body says {field:?}, a CloudEvents header says {v:?}"),
                ));
            }
        }
        Ok(())
    }
    fill(&mut msg.event_id, "event_id", &h.ce_id)?;
    fill(&mut msg.producer, "producer", &h.ce_source)?;
    if let Some(t) = &h.ce_time {
        let at_ms = chrono::DateTime::parse_from_rfc3339(t)
            .map_err(|e| Rejection::invalid("ce_time", format!("{t:?} is not RFC 3339: {e}")))?
            .timestamp_millis();
        if msg.occurred_at_ms == 0 {
            msg.occurred_at_ms = at_ms;
        } else if msg.occurred_at_ms != at_ms {
            return Err(Rejection::invalid(
                "occurred_at_ms",
                format!(
                    "the body says {}, the CloudEvents header ce_time {t:?} says {at_ms}",
                    msg.occurred_at_ms
                ),
            ));
        }
    }
    if let (Some(t), Some(body)) = (&h.ce_type, &msg.body) {
        let ours = event_message_name(body);
        if t.starts_with("leadflow.v1.") && t != ours {
            return Err(Rejection::invalid(
                "ce_type",
                format!("{t:?} names another event than the body's {ours}"),
            ));
        }
    }
    Ok(msg)
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
