//! The lead lifecycle: a state machine that either applies an event or
//! rejects it with a typed reason. Pure: no I/O, no clock.
//!
//! ```text
//!                 created                assigned(owner)
//!   (none) ──────────────────▶ InPool ─────────────────▶ Assigned(owner) ◀─┐
//!                                ▲                         │   │  │ followed_up(owner)
//!                                └──── recalled(owner) ────┘   │  └───────┘
//!                                                              │ assigned(other): transfer
//!                                                              │ converted(owner)
//!                                                              ▼
//!                                                          Converted (terminal)
//! ```
//!
//! | event        | no lead          | InPool                  | Assigned(o)                          | Converted            |
//! |--------------|------------------|-------------------------|--------------------------------------|----------------------|
//! | created      | → InPool         | LeadAlreadyExists       | LeadAlreadyExists                    | LeadAlreadyExists    |
//! | scored       | UnknownLead      | stays (score kept)      | stays (score kept)                   | LeadConverted        |
//! | assigned(x)  | UnknownLead      | → Assigned(x), gen+1    | x≠o: → Assigned(x), gen+1; x=o: AlreadyOwner | LeadConverted |
//! | followed_up(x)| UnknownLead     | NotOwner                | x=o: stays; x≠o: NotOwner            | LeadConverted        |
//! | recalled(x)  | UnknownLead      | NotAssigned             | x=o: → InPool, recalls+1; x≠o: NotOwner | LeadConverted     |
//! | converted(x) | UnknownLead      | NotOwner                | x=o: → Converted; x≠o: NotOwner      | AlreadyConverted     |
//! | command_declined | UnknownLead  | stays                   | stays                                | LeadConverted        |
//! | claim_requested | UnknownLead   | stays (policy answers)  | stays (policy declines)              | LeadConverted        |
//! | moved(p)     | UnknownLead      | stays, pool p           | stays (owner kept), pool p           | LeadConverted        |
//! | engaged      | UnknownLead      | stays                   | stays                                | LeadConverted        |
//!
//! Checked before the table, in this order: required fields and field
//! validity (ids, event time within [`EVENT_TIME_MS_MIN`]..=[`EVENT_TIME_MS_MAX`],
//! scores in `0..=100`, money in `0..=`[`MONEY_MINOR_UNITS_MAX`]), then lead
//! existence, then event time (an event may not be earlier than the lead's
//! creation), then the order rule (see [`Rules`]: an event stamped earlier
//! than the lead's latest accepted event by more than the tolerance is
//! `out_of_order`). Duplicate event ids are caught by the log, which owns the id
//! index, before the lifecycle is asked.

use super::event::{EventBody, LeadEvent};
use super::money::Money;
use super::rejection::Rejection;
use serde::{Deserialize, Serialize};

/// Longest id (event, lead, owner) accepted, in bytes. Ids become sled keys,
/// so they get a bound like everything else.
pub const ID_LEN_BYTES_MAX: usize = 256;

/// The longest tenant id.
pub const TENANT_ID_LEN_BYTES_MAX: usize = 64;

/// Largest amount of money accepted, in minor units: 10^15, ten trillion
/// in a currency with two decimals. Far above any deal, and far enough
/// below `i64::MAX` that sums (kept in `i128`) and ratios stay exact.
pub const MONEY_MINOR_UNITS_MAX: i64 = 1_000_000_000_000_000;

/// Earliest event time accepted: the Unix epoch (negative times are a
/// producer's bug, not history).
pub const EVENT_TIME_MS_MIN: i64 = 0;
/// Latest event time accepted: 9999-12-31T23:59:59.999Z, the last instant
/// every tool formats as a date; deadlines computed from it cannot overflow.
pub const EVENT_TIME_MS_MAX: i64 = 253_402_300_799_999;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LeadStatus {
    InPool,
    Assigned,
    Converted,
}

impl LeadStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LeadStatus::InPool => "in_pool",
            LeadStatus::Assigned => "assigned",
            LeadStatus::Converted => "converted",
        }
    }
}

/// The lifecycle state of one lead: exactly what validation needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lead {
    pub status: LeadStatus,
    pub pool: String,
    /// The current owner; also kept after conversion (the converting rep).
    pub owner: Option<String>,
    pub created_at_ms: i64,
    /// The tenant the lead was created under (empty: the default).
    pub tenant_id: String,
    /// The latest event time among the lead's accepted events (the order
    /// rule measures late events against it).
    pub latest_at_ms: i64,
    /// Incremented by every assignment; identifies "this holding" of a lead.
    pub generation: u32,
    pub recall_count: u32,
}

/// Returns the pool an event moves the lead to: an empty pool field means
/// "keep the current one".
pub fn resolve_pool<'a>(event_pool: &'a str, current: &'a str) -> &'a str {
    if event_pool.is_empty() {
        current
    } else {
        event_pool
    }
}

/// How far an event may be stamped before its lead's latest accepted event
/// and still be applied, by default: one minute. See [`Rules`].
pub const OUT_OF_ORDER_TOLERANCE_MS_DEFAULT: i64 = 60_000;
/// The largest tolerance a config may set: one day.
pub const OUT_OF_ORDER_TOLERANCE_MS_MAX: i64 = 86_400_000;

/// The rules of the lifecycle that a deployment may tune.
///
/// **The order rule.** A lead's events must arrive in event-time order, up
/// to `out_of_order_tolerance_ms`: an event stamped earlier than the
/// lead's latest accepted event by more than the tolerance is rejected as
/// `out_of_order`. One within the tolerance is applied at its own time,
/// and every duration measured from it is clamped at zero (a follow-up
/// stamped two seconds before its assignment is a first follow-up at
/// 0 ms). Why: events of one lead share a Kafka partition (keyed by lead),
/// so they arrive in the order their producers sent them; what differs is
/// the producers' clocks (marketing stamps creations, the CRM stamps
/// assignments and follow-ups). A small skew is normal and must not lose
/// events; a larger one is a replayed or mis-stamped event, and applying
/// it would falsify SLA compliance, recall cycles and every "as of"
/// question. The verdict depends only on the lead's accepted events, so a
/// replay of the log decides the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    pub out_of_order_tolerance_ms: i64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            out_of_order_tolerance_ms: OUT_OF_ORDER_TOLERANCE_MS_DEFAULT,
        }
    }
}

/// Decides whether `event` may be applied to `state` (`None`: no such lead)
/// under the default [`Rules`].
pub fn decide(state: Option<&Lead>, event: &LeadEvent) -> Result<(), Rejection> {
    decide_with(state, event, &Rules::default())
}

/// Decides whether `event` may be applied to `state` under `rules`.
pub fn decide_with(
    state: Option<&Lead>,
    event: &LeadEvent,
    rules: &Rules,
) -> Result<(), Rejection> {
    check_fields(event)?;
    let lead = match (state, &event.body) {
        (None, EventBody::Created(_)) => return Ok(()),
        (None, _) => return Err(Rejection::UnknownLead),
        (Some(lead), EventBody::Created(_)) => {
            return Err(Rejection::LeadAlreadyExists {
                created_at_ms: lead.created_at_ms,
            })
        }
        (Some(lead), _) => lead,
    };
    if !super::tenant::same_tenant(&event.tenant_id, &lead.tenant_id) {
        return Err(Rejection::WrongTenant {
            lead_tenant_id: lead.tenant_id.clone(),
            event_tenant_id: event.tenant_id.clone(),
        });
    }
    if event.occurred_at_ms < lead.created_at_ms {
        return Err(Rejection::BeforeCreation {
            occurred_at_ms: event.occurred_at_ms,
            created_at_ms: lead.created_at_ms,
        });
    }
    if event.occurred_at_ms < lead.latest_at_ms - rules.out_of_order_tolerance_ms {
        return Err(Rejection::OutOfOrder {
            occurred_at_ms: event.occurred_at_ms,
            latest_at_ms: lead.latest_at_ms,
            tolerance_ms: rules.out_of_order_tolerance_ms,
        });
    }
    if lead.status == LeadStatus::Converted {
        return Err(match event.body {
            EventBody::Converted(_) => Rejection::AlreadyConverted,
            ref body => Rejection::LeadConverted {
                attempted: body.kind(),
            },
        });
    }
    let is_owner = |actor: &str| lead.owner.as_deref() == Some(actor);
    let not_owner = |actor: &str| Rejection::NotOwner {
        actor: actor.to_string(),
        current_owner: lead.owner.clone(),
    };
    match &event.body {
        EventBody::Created(_) => unreachable!("handled above"),
        // A decline says the CRM will not carry out a command; it changes
        // no ownership, so any open state takes it (the policy matches it
        // against the commands it is waiting on).
        // A claim request is a rep's ask, not a change: the policy answers
        // it (granted or declined with the reason), whatever state the lead
        // is in.
        EventBody::Scored(_) | EventBody::CommandDeclined(_) | EventBody::ClaimRequested(_) => {
            Ok(())
        }
        // A move changes the lead's pool, not its owner: any open state.
        EventBody::Moved(_) => Ok(()),
        // An interaction with marketing is behaviour, not ownership: any
        // open state, any number.
        EventBody::Engaged(_) => Ok(()),
        EventBody::Assigned(a) => {
            if lead.status == LeadStatus::Assigned && is_owner(&a.owner_id) {
                Err(Rejection::AlreadyOwner {
                    owner_id: a.owner_id.clone(),
                })
            } else {
                Ok(())
            }
        }
        EventBody::FollowedUp(f) => {
            if lead.status == LeadStatus::Assigned && is_owner(&f.owner_id) {
                Ok(())
            } else {
                Err(not_owner(&f.owner_id))
            }
        }
        EventBody::Recalled(r) => {
            if lead.status != LeadStatus::Assigned {
                Err(Rejection::NotAssigned)
            } else if !is_owner(&r.previous_owner_id) {
                Err(not_owner(&r.previous_owner_id))
            } else {
                Ok(())
            }
        }
        EventBody::Converted(c) => {
            if lead.status == LeadStatus::Assigned && is_owner(&c.owner_id) {
                Ok(())
            } else {
                Err(not_owner(&c.owner_id))
            }
        }
    }
}

/// Folds an accepted event into the lead's state. Only call it with an
/// event that [`decide`] accepted for this state.
pub fn apply(state: Option<Lead>, event: &LeadEvent) -> Lead {
    match (state, &event.body) {
        (None, EventBody::Created(c)) => Lead {
            status: LeadStatus::InPool,
            pool: c.pool.clone(),
            owner: None,
            created_at_ms: event.occurred_at_ms,
            tenant_id: event.tenant_id.clone(),
            latest_at_ms: event.occurred_at_ms,
            generation: 0,
            recall_count: 0,
        },
        (Some(mut lead), body) => {
            lead.latest_at_ms = lead.latest_at_ms.max(event.occurred_at_ms);
            match body {
                EventBody::Created(_)
                | EventBody::Scored(_)
                | EventBody::FollowedUp(_)
                | EventBody::CommandDeclined(_)
                | EventBody::ClaimRequested(_)
                | EventBody::Engaged(_) => {}
                EventBody::Assigned(a) => {
                    lead.pool = resolve_pool(&a.pool, &lead.pool).to_string();
                    lead.status = LeadStatus::Assigned;
                    lead.owner = Some(a.owner_id.clone());
                    lead.generation += 1;
                }
                EventBody::Recalled(r) => {
                    lead.pool = resolve_pool(&r.to_pool, &lead.pool).to_string();
                    lead.status = LeadStatus::InPool;
                    lead.owner = None;
                    lead.recall_count += 1;
                }
                EventBody::Converted(_) => lead.status = LeadStatus::Converted,
                EventBody::Moved(m) => lead.pool = m.to_pool.clone(),
            }
            lead
        }
        (None, body) => panic!(
            "apply called with a {:?} event for an unknown lead; decide() rejects it",
            body.kind()
        ),
    }
}

/// Decides and, if accepted, applies: the whole lifecycle in one call,
/// under the default [`Rules`].
pub fn handle(state: Option<&Lead>, event: &LeadEvent) -> Result<Lead, Rejection> {
    handle_with(state, event, &Rules::default())
}

/// [`handle`] under `rules`.
pub fn handle_with(
    state: Option<&Lead>,
    event: &LeadEvent,
    rules: &Rules,
) -> Result<Lead, Rejection> {
    decide_with(state, event, rules)?;
    Ok(apply(state.cloned(), event))
}

fn check_id(field: &str, value: &str) -> Result<(), Rejection> {
    if value.is_empty() {
        return Err(Rejection::missing(field));
    }
    if value.len() > ID_LEN_BYTES_MAX {
        return Err(Rejection::invalid(
            field,
            format!("longer than {ID_LEN_BYTES_MAX} bytes"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Rejection::invalid(field, "contains control characters"));
    }
    Ok(())
}

/// A tenant id: empty (the default tenant), or up to
/// [`TENANT_ID_LEN_BYTES_MAX`] bytes of ASCII letters, digits, `.`, `_`,
/// `-` and `:` (it names files, metric labels and URL segments).
pub fn check_tenant_id(value: &str) -> Result<(), Rejection> {
    if value.len() > TENANT_ID_LEN_BYTES_MAX {
        return Err(Rejection::invalid(
            "tenant_id",
            format!("longer than {TENANT_ID_LEN_BYTES_MAX} bytes"),
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':')))
    {
        return Err(Rejection::invalid(
            "tenant_id",
            format!("{c:?} is not allowed (ASCII letters, digits, '.', '_', '-', ':')"),
        ));
    }
    Ok(())
}

fn check_money(field: &str, m: &Money) -> Result<(), Rejection> {
    if m.minor_units < 0 {
        return Err(Rejection::NegativeMoney {
            field: field.to_string(),
            minor_units: m.minor_units,
        });
    }
    if m.minor_units > MONEY_MINOR_UNITS_MAX {
        return Err(Rejection::invalid(
            field,
            format!(
                "{} minor units is above the maximum {MONEY_MINOR_UNITS_MAX}",
                m.minor_units
            ),
        ));
    }
    Ok(())
}

fn check_time(field: &str, ms: i64) -> Result<(), Rejection> {
    if !(EVENT_TIME_MS_MIN..=EVENT_TIME_MS_MAX).contains(&ms) {
        return Err(Rejection::invalid(
            field,
            format!(
                "{ms} ms is outside {EVENT_TIME_MS_MIN}..={EVENT_TIME_MS_MAX} (1970-01-01 to 9999-12-31 UTC)"
            ),
        ));
    }
    Ok(())
}

fn check_score(field: &str, value: u32) -> Result<(), Rejection> {
    if value > 100 {
        return Err(Rejection::ScoreOutOfRange {
            field: field.to_string(),
            value,
        });
    }
    Ok(())
}

/// Longest `engaged.kind`, and `engaged.detail`.
pub const ENGAGEMENT_KIND_LEN_BYTES_MAX: usize = 64;
pub const ENGAGEMENT_DETAIL_LEN_BYTES_MAX: usize = 1024;
/// Largest magnitude of a producer's own `engaged.points`.
pub const ENGAGEMENT_POINTS_MAX: i32 = 1000;

/// An interaction: a kind that can name a policy's table key and a metric
/// label (`a-z`, `0-9`, `_`), bounded points and text.
fn check_engaged(e: &crate::domain::LeadEngaged) -> Result<(), Rejection> {
    if e.kind.is_empty() {
        return Err(Rejection::missing("engaged.kind"));
    }
    if e.kind.len() > ENGAGEMENT_KIND_LEN_BYTES_MAX
        || !e
            .kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(Rejection::invalid(
            "engaged.kind",
            format!("{:?} is not 1 to {ENGAGEMENT_KIND_LEN_BYTES_MAX} of a-z, 0-9 and _ (e.g. web_visit)", e.kind),
        ));
    }
    if let Some(p) = e.points {
        if !(-ENGAGEMENT_POINTS_MAX..=ENGAGEMENT_POINTS_MAX).contains(&p) {
            return Err(Rejection::invalid(
                "engaged.points",
                format!("{p} is outside -{ENGAGEMENT_POINTS_MAX}..={ENGAGEMENT_POINTS_MAX}"),
            ));
        }
    }
    if !e.source.is_empty() {
        check_id("engaged.source", &e.source)?;
    }
    if e.detail.len() > ENGAGEMENT_DETAIL_LEN_BYTES_MAX {
        return Err(Rejection::invalid(
            "engaged.detail",
            format!("longer than {ENGAGEMENT_DETAIL_LEN_BYTES_MAX} bytes"),
        ));
    }
    Ok(())
}

/// Field-level rules that hold whatever the lead's state.
fn check_fields(event: &LeadEvent) -> Result<(), Rejection> {
    check_id("event_id", &event.event_id)?;
    check_id("lead_id", &event.lead_id)?;
    check_tenant_id(&event.tenant_id)?;
    check_time("occurred_at_ms", event.occurred_at_ms)?;
    match &event.body {
        EventBody::Created(c) => {
            check_id("created.channel", &c.channel)?;
            check_id("created.pool", &c.pool)?;
            check_money("created.acquisition_cost", &c.acquisition_cost)
        }
        EventBody::Scored(s) => {
            check_score("scored.score", s.score)?;
            check_score("scored.attribute_score", s.attribute_score)?;
            check_score("scored.behaviour_score", s.behaviour_score)?;
            check_score("scored.predictive_score", s.predictive_score)
        }
        EventBody::Assigned(a) => check_id("assigned.owner_id", &a.owner_id),
        EventBody::FollowedUp(f) => check_id("followed_up.owner_id", &f.owner_id),
        EventBody::Recalled(r) => check_id("recalled.previous_owner_id", &r.previous_owner_id),
        EventBody::CommandDeclined(d) => check_id("command_declined.command_id", &d.command_id),
        EventBody::ClaimRequested(c) => check_id("claim_requested.rep_id", &c.rep_id),
        EventBody::Moved(m) => check_id("moved.to_pool", &m.to_pool),
        EventBody::Engaged(e) => check_engaged(e),
        EventBody::Converted(c) => {
            check_id("converted.owner_id", &c.owner_id)?;
            check_money("converted.deal_value", &c.deal_value)?;
            match &c.expected_lifetime_value {
                Some(v) => check_money("converted.expected_lifetime_value", v),
                None => Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests;
