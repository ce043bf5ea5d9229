//! Lead events, named in the past tense: each records something that already
//! happened upstream. They mirror `proto/leadflow/v1/events.proto`, but with
//! money parsed, enums closed and the body required; the codec is the only
//! place that converts between the two.

use super::money::Money;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadEvent {
    /// Unique per event: the idempotency key.
    pub event_id: String,
    pub lead_id: String,
    /// Event time, UTC milliseconds.
    pub occurred_at_ms: i64,
    /// Which system emitted it.
    pub producer: String,
    /// The sales organisation the lead belongs to; empty is the
    /// single-tenant default. Fixed at the lead's creation.
    #[serde(default)]
    pub tenant_id: String,
    pub body: EventBody,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventBody {
    Created(LeadCreated),
    Scored(LeadScored),
    Assigned(LeadAssigned),
    FollowedUp(LeadFollowedUp),
    Recalled(LeadRecalled),
    Converted(LeadConverted),
    CommandDeclined(LeadCommandDeclined),
    ClaimRequested(LeadClaimRequested),
    Moved(LeadMoved),
    Engaged(LeadEngaged),
}

/// The type of an event, for counting and display.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventKind {
    Created,
    Scored,
    Assigned,
    FollowedUp,
    Recalled,
    Converted,
    CommandDeclined,
    ClaimRequested,
    Moved,
    Engaged,
}

impl EventKind {
    pub const ALL: [EventKind; 10] = [
        EventKind::Created,
        EventKind::Scored,
        EventKind::Assigned,
        EventKind::FollowedUp,
        EventKind::Recalled,
        EventKind::Converted,
        EventKind::CommandDeclined,
        EventKind::ClaimRequested,
        EventKind::Moved,
        EventKind::Engaged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Scored => "scored",
            EventKind::Assigned => "assigned",
            EventKind::FollowedUp => "followed_up",
            EventKind::Recalled => "recalled",
            EventKind::Converted => "converted",
            EventKind::CommandDeclined => "command_declined",
            EventKind::ClaimRequested => "claim_requested",
            EventKind::Moved => "moved",
            EventKind::Engaged => "engaged",
        }
    }
}

impl EventBody {
    pub fn kind(&self) -> EventKind {
        match self {
            EventBody::Created(_) => EventKind::Created,
            EventBody::Scored(_) => EventKind::Scored,
            EventBody::Assigned(_) => EventKind::Assigned,
            EventBody::FollowedUp(_) => EventKind::FollowedUp,
            EventBody::Recalled(_) => EventKind::Recalled,
            EventBody::Converted(_) => EventKind::Converted,
            EventBody::CommandDeclined(_) => EventKind::CommandDeclined,
            EventBody::ClaimRequested(_) => EventKind::ClaimRequested,
            EventBody::Moved(_) => EventKind::Moved,
            EventBody::Engaged(_) => EventKind::Engaged,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadCreated {
    pub channel: String,
    pub campaign: String,
    pub pool: String,
    pub region: String,
    pub industry: String,
    pub company_size: String,
    pub acquisition_cost: Money,
    /// A hash of the normalised phone/email, never the raw value.
    pub contact_fingerprint: String,
    pub attributes: BTreeMap<String, String>,
}

/// Scores are all in `0..=100`; the lifecycle rejects anything else.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadScored {
    pub score: u32,
    pub attribute_score: u32,
    pub behaviour_score: u32,
    pub predictive_score: u32,
    pub model_version: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadAssigned {
    pub owner_id: String,
    /// The pool the lead is held under; empty keeps the lead's current pool.
    pub pool: String,
    pub method: AssignmentMethod,
    /// The command this assignment carries out, if any (empty otherwise).
    pub command_id: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AssignmentMethod {
    Unspecified,
    Rule,
    Manual,
    Claim,
}

/// The CRM did not carry out a command and will not (see
/// `proto/leadflow/v1/events.proto`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadCommandDeclined {
    pub command_id: String,
    pub reason: String,
}

/// A rep asked to take a lead from a claimable pool; the policy answers
/// (see `proto/leadflow/v1/events.proto`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadClaimRequested {
    pub rep_id: String,
}

/// The lead now belongs to another pool; ownership does not change (see
/// `proto/leadflow/v1/events.proto`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadMoved {
    pub to_pool: String,
    /// The `MoveLead` carried out, if any (empty otherwise).
    pub command_id: String,
}

/// The lead interacted with marketing (see
/// `proto/leadflow/v1/events.proto`): behaviour, never ownership.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadEngaged {
    /// `web_visit`, `email_open`, `email_reply`, `form_submit`,
    /// `event_attended`, `content_download`, or the producer's own.
    pub kind: String,
    /// The producer's own points, if it scores interactions.
    pub points: Option<i32>,
    pub source: String,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadFollowedUp {
    pub owner_id: String,
    pub kind: FollowUpKind,
    pub outcome: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FollowUpKind {
    Unspecified,
    Call,
    Visit,
    Email,
    Message,
    Meeting,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadRecalled {
    pub previous_owner_id: String,
    pub reason: RecallReason,
    /// The pool the lead returns to; empty means the lead's current pool.
    pub to_pool: String,
    pub command_id: String,
    pub rule_id: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RecallReason {
    Unspecified,
    NoFirstFollowUp,
    Stale,
    NotConverted,
    Manual,
    Released,
}

impl RecallReason {
    pub const ALL: [RecallReason; 6] = [
        RecallReason::Unspecified,
        RecallReason::NoFirstFollowUp,
        RecallReason::Stale,
        RecallReason::NotConverted,
        RecallReason::Manual,
        RecallReason::Released,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecallReason::Unspecified => "unspecified",
            RecallReason::NoFirstFollowUp => "no_first_follow_up",
            RecallReason::Stale => "stale",
            RecallReason::NotConverted => "not_converted",
            RecallReason::Manual => "manual",
            RecallReason::Released => "released",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadConverted {
    pub owner_id: String,
    pub deal_value: Money,
    pub customer_id: String,
    pub expected_lifetime_value: Option<Money>,
}
