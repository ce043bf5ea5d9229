//! Why an incoming event was not applied. Every rejected event is kept in the
//! log with its reason and counted by [`Rejection::code`]; nothing is dropped
//! without a trace.

use super::event::EventKind;
use serde::{Deserialize, Serialize};

/// A typed reason for refusing an event. Each variant says how a producer
/// should react to it. Stored rejections are bincode, which numbers the
/// variants: add new ones at the end, never in between.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Rejection {
    /// The bytes are not a `LeadEvent` (bad protobuf or JSON). Fix the
    /// producer's encoder; the raw bytes are kept for inspection.
    #[error("undecodable: {detail}")]
    Undecodable { detail: String },
    /// The event carries no body this engine knows, probably from a newer
    /// schema. Upgrade the engine before replaying it.
    #[error("unknown event type: the event has no body this version understands")]
    UnknownEventType,
    /// A required field is empty or absent. Fix the producer.
    #[error("missing required field {field}")]
    MissingField { field: String },
    /// A field is present but not valid (bad currency code, unknown enum
    /// value, malformed id). Fix the producer.
    #[error("invalid field {field}: {detail}")]
    InvalidField { field: String, detail: String },
    /// An event with this id is already in the log. A redelivery: nothing to
    /// do, the original stands.
    #[error("duplicate event id (first stored at sequence {first_seq})")]
    Duplicate { first_seq: u64 },
    /// The lead was never created. Publish its `created` event first, then
    /// send this one again under a **new** id: an id, once seen, is spent.
    #[error("unknown lead: no created event has been seen for it")]
    UnknownLead,
    /// A second `created` event for an existing lead.
    #[error("lead already exists (created at {created_at_ms} ms)")]
    LeadAlreadyExists { created_at_ms: i64 },
    /// A conversion was the lead's last event; nothing but reading it follows.
    #[error("lead is converted: a {attempted:?} event is not allowed after conversion")]
    LeadConverted { attempted: EventKind },
    /// A second conversion of the same lead.
    #[error("lead is already converted")]
    AlreadyConverted,
    /// An assignment to the rep who already holds the lead.
    #[error("lead is already assigned to {owner_id}")]
    AlreadyOwner { owner_id: String },
    /// A follow-up, recall or conversion names someone who does not hold the
    /// lead (`current_owner` is empty when the lead sits in a pool).
    #[error("{actor} is not the owner (current owner: {current_owner:?})")]
    NotOwner {
        actor: String,
        current_owner: Option<String>,
    },
    /// A recall of a lead that no rep holds.
    #[error("lead is not assigned, so it cannot be recalled")]
    NotAssigned,
    /// The event claims to have happened before the lead was created; the
    /// producer's clock or ids are wrong.
    #[error("event time {occurred_at_ms} ms is before the lead's creation at {created_at_ms} ms")]
    BeforeCreation {
        occurred_at_ms: i64,
        created_at_ms: i64,
    },
    /// A score outside `0..=100`.
    #[error("{field} = {value} is out of range 0..=100")]
    ScoreOutOfRange { field: String, value: u32 },
    /// A negative amount of money.
    #[error("{field} is negative ({minor_units} minor units)")]
    NegativeMoney { field: String, minor_units: i64 },
    /// An input with this id was seen before and rejected. An event id is
    /// an idempotency key whatever became of the first copy: a repeat is
    /// never judged again (against a lead that has moved on since). Code
    /// `duplicate`, like [`Rejection::Duplicate`]. To retry a rejected
    /// event on purpose, give it a new id.
    #[error("duplicate event id (first seen and rejected as rejection {first_rseq})")]
    DuplicateOfRejected { first_rseq: u64 },
    /// A record above the configured `log.record_bytes_max`. It is read
    /// past without being held in memory; only a prefix is kept. Split the
    /// data or raise the limit.
    #[error("record of {bytes} bytes{} is above the limit of {max} bytes", at_byte(.byte_offset))]
    RecordTooLarge {
        bytes: u64,
        max: u64,
        /// Where it starts in a file (none for a Kafka message, whose
        /// origin names partition and offset).
        byte_offset: Option<u64>,
    },
    /// The event is stamped earlier than the lead's latest accepted event by
    /// more than the configured tolerance (`log.out_of_order_tolerance_ms`):
    /// a replayed or mis-stamped event, whose time would falsify the
    /// lead's durations. Fix the producer's clock or stop the replay.
    #[error("event time {occurred_at_ms} ms is more than {tolerance_ms} ms before the lead's latest event at {latest_at_ms} ms")]
    OutOfOrder {
        occurred_at_ms: i64,
        latest_at_ms: i64,
        tolerance_ms: i64,
    },
    /// The event names a lead created under another tenant. A lead's
    /// tenant is fixed at its creation; lead ids are unique across tenants
    /// (use UUIDs, or prefix them with the tenant). Fix the producer.
    #[error("lead belongs to tenant {lead_tenant_id:?}, not {event_tenant_id:?}")]
    WrongTenant {
        lead_tenant_id: String,
        event_tenant_id: String,
    },
    /// The event's tenant belongs to another partition of the events
    /// topic than the one it came from: the producer did not key it by
    /// tenant with the Java client's partitioner (murmur2), so the tenant
    /// would be split across engines. Key by `tenant_id`; with librdkafka
    /// clients set `partitioner=murmur2_random` (docs/integration.md).
    #[error("tenant {tenant_id:?} belongs to partition {expected} of {partitions}, not {partition} (key events by tenant_id with the murmur2 partitioner)")]
    WrongPartition {
        tenant_id: String,
        partition: i32,
        expected: i32,
        partitions: i32,
    },
    /// An event sent to this engine over HTTP for a tenant whose partition
    /// another engine owns (`kafka.own_partitions`): taking it here would
    /// split the tenant. Send it to the engine that owns the partition
    /// (`leadflow partitions`), or publish it to the events topic. Code
    /// `wrong_partition`, like [`Rejection::WrongPartition`].
    #[error("tenant {tenant_id:?} belongs to partition {partition} of {partitions}, which this engine does not own (see `leadflow partitions`)")]
    NotOwnedHere {
        tenant_id: String,
        partition: i32,
        partitions: i32,
    },
    /// A lead created with the contact fingerprint of a lead still open
    /// (not converted), under a policy whose `[duplicates] handling` is
    /// `reject`. Work the original instead; if it is a different person,
    /// fix the fingerprint.
    #[error(
        "duplicate contact: lead {original_lead_id} is open with the same contact fingerprint"
    )]
    DuplicateContact { original_lead_id: String },
}

fn at_byte(offset: &Option<u64>) -> String {
    offset.map(|o| format!(" at byte {o}")).unwrap_or_default()
}

impl Rejection {
    /// A stable snake_case code, used as the counter key, the dead-letter
    /// header and the metrics label.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Undecodable { .. } => "undecodable",
            Rejection::UnknownEventType => "unknown_event_type",
            Rejection::MissingField { .. } => "missing_field",
            Rejection::InvalidField { .. } => "invalid_field",
            Rejection::Duplicate { .. } | Rejection::DuplicateOfRejected { .. } => "duplicate",
            Rejection::UnknownLead => "unknown_lead",
            Rejection::LeadAlreadyExists { .. } => "lead_already_exists",
            Rejection::LeadConverted { .. } => "lead_converted",
            Rejection::AlreadyConverted => "already_converted",
            Rejection::AlreadyOwner { .. } => "already_owner",
            Rejection::NotOwner { .. } => "not_owner",
            Rejection::NotAssigned => "not_assigned",
            Rejection::BeforeCreation { .. } => "before_creation",
            Rejection::OutOfOrder { .. } => "out_of_order",
            Rejection::ScoreOutOfRange { .. } => "score_out_of_range",
            Rejection::NegativeMoney { .. } => "negative_money",
            Rejection::RecordTooLarge { .. } => "record_too_large",
            Rejection::WrongTenant { .. } => "wrong_tenant",
            Rejection::WrongPartition { .. } | Rejection::NotOwnedHere { .. } => "wrong_partition",
            Rejection::DuplicateContact { .. } => "duplicate_contact",
        }
    }

    /// A repeat of an id seen before (accepted or rejected).
    pub fn is_duplicate(&self) -> bool {
        matches!(
            self,
            Rejection::Duplicate { .. } | Rejection::DuplicateOfRejected { .. }
        )
    }

    pub(crate) fn missing(field: &str) -> Rejection {
        Rejection::MissingField {
            field: field.to_string(),
        }
    }

    pub(crate) fn invalid(field: &str, detail: impl Into<String>) -> Rejection {
        Rejection::InvalidField {
            field: field.to_string(),
            detail: detail.into(),
        }
    }
}
