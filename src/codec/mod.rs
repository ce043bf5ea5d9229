//! Protobuf and JSON <-> domain. The only module that uses the prost types
//! generated from `proto/`, so a schema change touches this file and nothing
//! else.
//!
//! Decoding never panics: bytes that are not a `LeadEvent`, or a `LeadEvent`
//! whose fields cannot form a domain event, come back as a typed
//! [`Rejection`].

use crate::domain::{
    AssignmentMethod, CommandBody, Currency, EventBody, FollowUpKind, LeadAssigned,
    LeadClaimRequested, LeadCommand, LeadCommandDeclined, LeadConverted, LeadCreated, LeadEngaged,
    LeadEvent, LeadFollowedUp, LeadMoved, LeadRecalled, LeadScored, Money, RecallReason, Rejection,
};
use prost::Message;

mod header;
pub mod stream;
pub mod wire;

pub use header::{decode_command_header, CommandHeader};

/// Types generated from `proto/leadflow/v1/*.proto`, with serde impls that
/// follow the proto3 JSON mapping.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/leadflow.v1.rs"));
    include!(concat!(env!("OUT_DIR"), "/leadflow.v1.serde.rs"));
}

/// Decodes one protobuf-encoded `LeadEvent`.
pub fn decode_event(bytes: &[u8]) -> Result<LeadEvent, Rejection> {
    let msg = pb::LeadEvent::decode(bytes).map_err(|e| Rejection::Undecodable {
        detail: format!("protobuf: {e}"),
    })?;
    from_pb(msg)
}

/// Encodes an event as protobuf.
pub fn encode_event(event: &LeadEvent) -> Vec<u8> {
    to_pb(event).encode_to_vec()
}

/// Decodes one event from its proto3 JSON form (one JSONL line).
pub fn event_from_json(text: &str) -> Result<LeadEvent, Rejection> {
    let msg: pb::LeadEvent = serde_json::from_str(text).map_err(|e| Rejection::Undecodable {
        detail: format!("json: {e}"),
    })?;
    from_pb(msg)
}

/// Decodes a JSON array of proto3 JSON events, item by item: an item that
/// is not an event comes back as `undecodable` with its text. `Err` when
/// the body is not a JSON array at all, or holds more than `items_max`.
pub fn events_from_json_array(
    bytes: &[u8],
    items_max: usize,
) -> Result<Vec<stream::Record>, String> {
    let items: Vec<serde_json::Value> =
        serde_json::from_slice(bytes).map_err(|e| format!("not a JSON array of events: {e}"))?;
    if items.len() > items_max {
        return Err(format!(
            "{} events in one request; at most {items_max}",
            items.len()
        ));
    }
    Ok(items
        .into_iter()
        .map(
            |v| match serde_json::from_value::<pb::LeadEvent>(v.clone()) {
                Ok(msg) => from_pb(msg).map_err(|r| (r, v.to_string().into_bytes())),
                Err(e) => Err((
                    Rejection::Undecodable {
                        detail: format!("json: {e}"),
                    },
                    v.to_string().into_bytes(),
                )),
            },
        )
        .collect())
}

/// Encodes an event as one line of proto3 JSON (no trailing newline).
pub fn event_to_json(event: &LeadEvent) -> String {
    serde_json::to_string(&to_pb(event)).expect("generated types always serialise")
}

fn money_from_pb(field: &str, m: Option<pb::Money>) -> Result<Money, Rejection> {
    let m = m.ok_or_else(|| Rejection::missing(field))?;
    let currency = Currency::parse(&m.currency).ok_or_else(|| {
        Rejection::invalid(
            field,
            format!("currency {:?} is not an ISO 4217 code", m.currency),
        )
    })?;
    Ok(Money::new(m.minor_units, currency))
}

fn money_to_pb(m: &Money) -> pb::Money {
    pb::Money {
        minor_units: m.minor_units,
        currency: m.currency.as_str().to_string(),
    }
}

fn enum_value<T>(
    field: &str,
    raw: i32,
    parsed: Result<T, prost::UnknownEnumValue>,
) -> Result<T, Rejection> {
    parsed.map_err(|_| Rejection::invalid(field, format!("unknown enum value {raw}")))
}

/// Converts a decoded protobuf message into a domain event.
pub fn from_pb(msg: pb::LeadEvent) -> Result<LeadEvent, Rejection> {
    use pb::lead_event::Body;
    let body = match msg.body.ok_or(Rejection::UnknownEventType)? {
        Body::Created(c) => EventBody::Created(LeadCreated {
            acquisition_cost: money_from_pb("created.acquisition_cost", c.acquisition_cost)?,
            channel: c.channel,
            campaign: c.campaign,
            pool: c.pool,
            region: c.region,
            industry: c.industry,
            company_size: c.company_size,
            contact_fingerprint: c.contact_fingerprint,
            attributes: c.attributes,
        }),
        Body::Scored(s) => EventBody::Scored(LeadScored {
            score: s.score,
            attribute_score: s.attribute_score,
            behaviour_score: s.behaviour_score,
            predictive_score: s.predictive_score,
            model_version: s.model_version,
        }),
        Body::Assigned(a) => EventBody::Assigned(LeadAssigned {
            method: match enum_value(
                "assigned.method",
                a.method,
                pb::AssignmentMethod::try_from(a.method),
            )? {
                pb::AssignmentMethod::Unspecified => AssignmentMethod::Unspecified,
                pb::AssignmentMethod::Rule => AssignmentMethod::Rule,
                pb::AssignmentMethod::Manual => AssignmentMethod::Manual,
                pb::AssignmentMethod::Claim => AssignmentMethod::Claim,
            },
            owner_id: a.owner_id,
            pool: a.pool,
            command_id: a.command_id,
        }),
        Body::FollowedUp(f) => EventBody::FollowedUp(LeadFollowedUp {
            kind: match enum_value(
                "followed_up.kind",
                f.kind,
                pb::FollowUpKind::try_from(f.kind),
            )? {
                pb::FollowUpKind::Unspecified => FollowUpKind::Unspecified,
                pb::FollowUpKind::Call => FollowUpKind::Call,
                pb::FollowUpKind::Visit => FollowUpKind::Visit,
                pb::FollowUpKind::Email => FollowUpKind::Email,
                pb::FollowUpKind::Message => FollowUpKind::Message,
                pb::FollowUpKind::Meeting => FollowUpKind::Meeting,
            },
            owner_id: f.owner_id,
            outcome: f.outcome,
        }),
        Body::Recalled(r) => EventBody::Recalled(LeadRecalled {
            reason: recall_reason_from_pb("recalled.reason", r.reason)?,
            previous_owner_id: r.previous_owner_id,
            to_pool: r.to_pool,
            command_id: r.command_id,
            rule_id: r.rule_id,
        }),
        Body::CommandDeclined(d) => EventBody::CommandDeclined(LeadCommandDeclined {
            command_id: d.command_id,
            reason: d.reason,
        }),
        Body::ClaimRequested(c) => {
            EventBody::ClaimRequested(LeadClaimRequested { rep_id: c.rep_id })
        }
        Body::Moved(m) => EventBody::Moved(LeadMoved {
            to_pool: m.to_pool,
            command_id: m.command_id,
        }),
        Body::Engaged(e) => EventBody::Engaged(LeadEngaged {
            kind: e.kind,
            points: e.points,
            source: e.source,
            detail: e.detail,
        }),
        Body::Converted(c) => EventBody::Converted(LeadConverted {
            deal_value: money_from_pb("converted.deal_value", c.deal_value)?,
            expected_lifetime_value: match c.expected_lifetime_value {
                Some(m) => Some(money_from_pb("converted.expected_lifetime_value", Some(m))?),
                None => None,
            },
            owner_id: c.owner_id,
            customer_id: c.customer_id,
        }),
    };
    Ok(LeadEvent {
        event_id: msg.event_id,
        lead_id: msg.lead_id,
        occurred_at_ms: msg.occurred_at_ms,
        producer: msg.producer,
        tenant_id: msg.tenant_id,
        body,
    })
}

fn recall_reason_from_pb(field: &str, raw: i32) -> Result<RecallReason, Rejection> {
    Ok(
        match enum_value(field, raw, pb::RecallReason::try_from(raw))? {
            pb::RecallReason::Unspecified => RecallReason::Unspecified,
            pb::RecallReason::NoFirstFollowUp => RecallReason::NoFirstFollowUp,
            pb::RecallReason::Stale => RecallReason::Stale,
            pb::RecallReason::NotConverted => RecallReason::NotConverted,
            pb::RecallReason::Manual => RecallReason::Manual,
            pb::RecallReason::Released => RecallReason::Released,
        },
    )
}

fn recall_reason_to_pb(r: RecallReason) -> pb::RecallReason {
    match r {
        RecallReason::Unspecified => pb::RecallReason::Unspecified,
        RecallReason::NoFirstFollowUp => pb::RecallReason::NoFirstFollowUp,
        RecallReason::Stale => pb::RecallReason::Stale,
        RecallReason::NotConverted => pb::RecallReason::NotConverted,
        RecallReason::Manual => pb::RecallReason::Manual,
        RecallReason::Released => pb::RecallReason::Released,
    }
}

/// Converts a domain event into its protobuf message.
pub fn to_pb(event: &LeadEvent) -> pb::LeadEvent {
    use pb::lead_event::Body;
    let body = match &event.body {
        EventBody::Created(c) => Body::Created(pb::LeadCreated {
            channel: c.channel.clone(),
            campaign: c.campaign.clone(),
            pool: c.pool.clone(),
            region: c.region.clone(),
            industry: c.industry.clone(),
            company_size: c.company_size.clone(),
            acquisition_cost: Some(money_to_pb(&c.acquisition_cost)),
            contact_fingerprint: c.contact_fingerprint.clone(),
            attributes: c.attributes.clone(),
        }),
        EventBody::Scored(s) => Body::Scored(pb::LeadScored {
            score: s.score,
            attribute_score: s.attribute_score,
            behaviour_score: s.behaviour_score,
            predictive_score: s.predictive_score,
            model_version: s.model_version.clone(),
        }),
        EventBody::Assigned(a) => Body::Assigned(pb::LeadAssigned {
            owner_id: a.owner_id.clone(),
            pool: a.pool.clone(),
            method: match a.method {
                AssignmentMethod::Unspecified => pb::AssignmentMethod::Unspecified,
                AssignmentMethod::Rule => pb::AssignmentMethod::Rule,
                AssignmentMethod::Manual => pb::AssignmentMethod::Manual,
                AssignmentMethod::Claim => pb::AssignmentMethod::Claim,
            } as i32,
            command_id: a.command_id.clone(),
        }),
        EventBody::FollowedUp(f) => Body::FollowedUp(pb::LeadFollowedUp {
            owner_id: f.owner_id.clone(),
            kind: match f.kind {
                FollowUpKind::Unspecified => pb::FollowUpKind::Unspecified,
                FollowUpKind::Call => pb::FollowUpKind::Call,
                FollowUpKind::Visit => pb::FollowUpKind::Visit,
                FollowUpKind::Email => pb::FollowUpKind::Email,
                FollowUpKind::Message => pb::FollowUpKind::Message,
                FollowUpKind::Meeting => pb::FollowUpKind::Meeting,
            } as i32,
            outcome: f.outcome.clone(),
        }),
        EventBody::Recalled(r) => Body::Recalled(pb::LeadRecalled {
            previous_owner_id: r.previous_owner_id.clone(),
            reason: recall_reason_to_pb(r.reason) as i32,
            to_pool: r.to_pool.clone(),
            command_id: r.command_id.clone(),
            rule_id: r.rule_id.clone(),
        }),
        EventBody::Converted(c) => Body::Converted(pb::LeadConverted {
            owner_id: c.owner_id.clone(),
            deal_value: Some(money_to_pb(&c.deal_value)),
            customer_id: c.customer_id.clone(),
            expected_lifetime_value: c.expected_lifetime_value.as_ref().map(money_to_pb),
        }),
        EventBody::CommandDeclined(d) => Body::CommandDeclined(pb::LeadCommandDeclined {
            command_id: d.command_id.clone(),
            reason: d.reason.clone(),
        }),
        EventBody::ClaimRequested(c) => Body::ClaimRequested(pb::LeadClaimRequested {
            rep_id: c.rep_id.clone(),
        }),
        EventBody::Moved(m) => Body::Moved(pb::LeadMoved {
            to_pool: m.to_pool.clone(),
            command_id: m.command_id.clone(),
        }),
        EventBody::Engaged(e) => Body::Engaged(pb::LeadEngaged {
            kind: e.kind.clone(),
            points: e.points,
            source: e.source.clone(),
            detail: e.detail.clone(),
        }),
    };
    pb::LeadEvent {
        event_id: event.event_id.clone(),
        lead_id: event.lead_id.clone(),
        occurred_at_ms: event.occurred_at_ms,
        producer: event.producer.clone(),
        tenant_id: event.tenant_id.clone(),
        body: Some(body),
    }
}

/// Converts a domain command into its protobuf message.
/// A command in the schema's JSON mapping (as the commands topic's
/// consumers see it decoded).
pub fn command_to_json(cmd: &LeadCommand) -> serde_json::Value {
    serde_json::to_value(command_to_pb(cmd)).expect("generated types always serialise")
}

pub fn command_to_pb(cmd: &LeadCommand) -> pb::LeadCommand {
    use pb::lead_command::Body;
    let body = match &cmd.body {
        CommandBody::AssignLead { owner_id, pool } => Body::Assign(pb::AssignLead {
            owner_id: owner_id.clone(),
            pool: pool.clone(),
        }),
        CommandBody::RecallLead {
            owner_id,
            reason,
            to_pool,
        } => Body::Recall(pb::RecallLead {
            owner_id: owner_id.clone(),
            reason: recall_reason_to_pb(*reason) as i32,
            to_pool: to_pool.clone(),
        }),
        CommandBody::RemindFollowUp {
            owner_id,
            deadline_ms,
        } => Body::Remind(pb::RemindFollowUp {
            owner_id: owner_id.clone(),
            deadline_ms: *deadline_ms,
        }),
        CommandBody::CancelCommand {
            command_id,
            reason,
            owner_id,
        } => Body::Cancel(pb::CancelCommand {
            command_id: command_id.clone(),
            reason: reason.clone(),
            owner_id: owner_id.clone(),
        }),
        CommandBody::DeclineClaim {
            owner_id,
            pool,
            reason,
            request_event_id,
        } => Body::DeclineClaim(pb::DeclineClaim {
            owner_id: owner_id.clone(),
            pool: pool.clone(),
            reason: reason.clone(),
            request_event_id: request_event_id.clone(),
        }),
        CommandBody::MoveLead { to_pool, from_pool } => Body::Move(pb::MoveLead {
            to_pool: to_pool.clone(),
            from_pool: from_pool.clone(),
        }),
        CommandBody::UpdateScore {
            score,
            attribute_score,
            behaviour_score,
            predictive_score,
            model_version,
            scored_event_id,
        } => Body::UpdateScore(pb::UpdateScore {
            score: *score,
            attribute_score: *attribute_score,
            behaviour_score: *behaviour_score,
            predictive_score: *predictive_score,
            model_version: model_version.clone(),
            scored_event_id: scored_event_id.clone(),
        }),
    };
    pb::LeadCommand {
        command_id: cmd.command_id.clone(),
        lead_id: cmd.lead_id.clone(),
        issued_at_ms: cmd.issued_at_ms,
        causation_event_id: cmd.causation_event_id.clone(),
        rule_id: cmd.rule_id.clone(),
        rule_version: cmd.rule_version,
        explanation: cmd.explanation.clone(),
        facts: cmd
            .facts
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        tenant_id: cmd.tenant_id.clone(),
        body: Some(body),
    }
}

/// Encodes a command as protobuf.
pub fn encode_command(cmd: &LeadCommand) -> Vec<u8> {
    command_to_pb(cmd).encode_to_vec()
}

/// The id of a protobuf-encoded command, read from its first field
/// without decoding the rest: prost writes fields in number order and the
/// id is field 1. Anything else (an empty id, which proto3 leaves out) is
/// decoded whole. The log's command-id index is built with it at open.
pub fn command_id_of(bytes: &[u8]) -> Result<std::borrow::Cow<'_, str>, Rejection> {
    if let Some((&0x0a, mut rest)) = bytes.split_first() {
        if let Ok(len) = prost::encoding::decode_varint(&mut rest) {
            let id = usize::try_from(len).ok().and_then(|n| rest.get(..n));
            if let Some(Ok(id)) = id.map(std::str::from_utf8) {
                return Ok(std::borrow::Cow::Borrowed(id));
            }
        }
    }
    decode_command(bytes).map(|c| std::borrow::Cow::Owned(c.command_id))
}

/// Decodes a protobuf-encoded command.
pub fn decode_command(bytes: &[u8]) -> Result<LeadCommand, Rejection> {
    use pb::lead_command::Body;
    let m = pb::LeadCommand::decode(bytes).map_err(|e| Rejection::Undecodable {
        detail: format!("protobuf: {e}"),
    })?;
    let body = match m.body.ok_or(Rejection::UnknownEventType)? {
        Body::Assign(a) => CommandBody::AssignLead {
            owner_id: a.owner_id,
            pool: a.pool,
        },
        Body::Recall(r) => CommandBody::RecallLead {
            reason: recall_reason_from_pb("recall.reason", r.reason)?,
            owner_id: r.owner_id,
            to_pool: r.to_pool,
        },
        Body::Remind(r) => CommandBody::RemindFollowUp {
            owner_id: r.owner_id,
            deadline_ms: r.deadline_ms,
        },
        Body::Cancel(c) => CommandBody::CancelCommand {
            command_id: c.command_id,
            reason: c.reason,
            owner_id: c.owner_id,
        },
        Body::DeclineClaim(d) => CommandBody::DeclineClaim {
            owner_id: d.owner_id,
            pool: d.pool,
            reason: d.reason,
            request_event_id: d.request_event_id,
        },
        Body::Move(m) => CommandBody::MoveLead {
            to_pool: m.to_pool,
            from_pool: m.from_pool,
        },
        Body::UpdateScore(u) => CommandBody::UpdateScore {
            score: u.score,
            attribute_score: u.attribute_score,
            behaviour_score: u.behaviour_score,
            predictive_score: u.predictive_score,
            model_version: u.model_version,
            scored_event_id: u.scored_event_id,
        },
    };
    Ok(LeadCommand {
        command_id: m.command_id,
        lead_id: m.lead_id,
        issued_at_ms: m.issued_at_ms,
        causation_event_id: m.causation_event_id,
        rule_id: m.rule_id,
        rule_version: m.rule_version,
        explanation: m.explanation,
        facts: m.facts.into_iter().collect(),
        tenant_id: m.tenant_id,
        body,
    })
}

#[cfg(test)]
mod tests;
