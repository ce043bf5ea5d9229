//! Events as flat rows: one row per accepted event, one column per field
//! of any event type (a field another type does not have is null), so an
//! analyst can query the log in DuckDB without decoding protobuf.

use super::{Cell, Column, Kind};
use crate::domain::{EventBody, LeadEvent, Money};

/// The columns of an event row, in order.
pub fn columns() -> Vec<Column> {
    use Kind::*;
    [
        ("seq", Int),
        ("event_id", Text),
        ("lead_id", Text),
        ("occurred_at_ms", Timestamp),
        ("producer", Text),
        ("tenant_id", Text),
        ("type", Text),
        ("channel", Text),
        ("campaign", Text),
        ("pool", Text),
        ("region", Text),
        ("industry", Text),
        ("company_size", Text),
        ("acquisition_cost_minor_units", Int),
        ("acquisition_cost_currency", Text),
        ("contact_fingerprint", Text),
        ("score", Int),
        ("owner_id", Text),
        ("assignment_method", Text),
        ("command_id", Text),
        ("follow_up_kind", Text),
        ("outcome", Text),
        ("recall_reason", Text),
        ("rule_id", Text),
        ("deal_value_minor_units", Int),
        ("deal_value_currency", Text),
        ("customer_id", Text),
        ("lifetime_value_minor_units", Int),
        ("lifetime_value_currency", Text),
        ("decline_reason", Text),
        ("engagement_kind", Text),
        ("engagement_points", Int),
        ("engagement_source", Text),
        ("engagement_detail", Text),
    ]
    .into_iter()
    .map(|(name, kind)| Column {
        name: name.to_string(),
        kind,
    })
    .collect()
}

/// The row of the event with log sequence `seq`, in [`columns`] order.
pub fn row(seq: u64, e: &LeadEvent) -> Vec<Cell> {
    let text = |s: &str| Cell::Text(s.to_string());
    let money = |m: &Money| (Cell::Int(m.minor_units), Cell::Text(m.currency.to_string()));
    let mut r = vec![Cell::Null; columns().len()];
    r[0] = Cell::Int(i64::try_from(seq).unwrap_or(i64::MAX));
    r[1] = text(&e.event_id);
    r[2] = text(&e.lead_id);
    r[3] = Cell::Int(e.occurred_at_ms);
    r[4] = text(&e.producer);
    r[5] = text(&e.tenant_id);
    r[6] = text(e.body.kind().as_str());
    match &e.body {
        EventBody::Created(c) => {
            r[7] = text(&c.channel);
            r[8] = text(&c.campaign);
            r[9] = text(&c.pool);
            r[10] = text(&c.region);
            r[11] = text(&c.industry);
            r[12] = text(&c.company_size);
            (r[13], r[14]) = money(&c.acquisition_cost);
            r[15] = text(&c.contact_fingerprint);
        }
        EventBody::Scored(s) => r[16] = Cell::Int(i64::from(s.score)),
        EventBody::Assigned(a) => {
            r[17] = text(&a.owner_id);
            r[9] = text(&a.pool);
            r[18] = text(&format!("{:?}", a.method).to_lowercase());
            r[19] = text(&a.command_id);
        }
        EventBody::FollowedUp(f) => {
            r[17] = text(&f.owner_id);
            r[20] = text(&format!("{:?}", f.kind).to_lowercase());
            r[21] = text(&f.outcome);
        }
        EventBody::Recalled(x) => {
            r[17] = text(&x.previous_owner_id);
            r[9] = text(&x.to_pool);
            r[22] = text(x.reason.as_str());
            r[19] = text(&x.command_id);
            r[23] = text(&x.rule_id);
        }
        EventBody::Converted(c) => {
            r[17] = text(&c.owner_id);
            (r[24], r[25]) = money(&c.deal_value);
            r[26] = text(&c.customer_id);
            if let Some(v) = &c.expected_lifetime_value {
                (r[27], r[28]) = money(v);
            }
        }
        EventBody::CommandDeclined(d) => {
            r[19] = text(&d.command_id);
            r[29] = text(&d.reason);
        }
        EventBody::ClaimRequested(c) => r[17] = text(&c.rep_id),
        EventBody::Moved(m) => {
            r[9] = text(&m.to_pool);
            r[19] = text(&m.command_id);
        }
        EventBody::Engaged(g) => {
            r[30] = text(&g.kind);
            if let Some(p) = g.points {
                r[31] = Cell::Int(i64::from(p));
            }
            r[32] = text(&g.source);
            r[33] = text(&g.detail);
        }
    }
    r
}
